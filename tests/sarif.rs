//! `policy check --format sarif` against the SARIF 2.1.0 schema's required
//! shape (OASIS sarif-schema-2.1.0.json, errata01): for every object the
//! output holds, its required properties, `anyOf` requirements, enums,
//! integer minimums, and no property the schema does not define
//! (`additionalProperties: false`). The tables below are transcribed from
//! the schema's `definitions`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// (definition, properties it allows, properties it requires, one-of-these-required).
type Def = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const DEFS: &[Def] = &[
    (
        "sarifLog",
        &[
            "$schema",
            "inlineExternalProperties",
            "properties",
            "runs",
            "version",
        ],
        &["version", "runs"],
        &[],
    ),
    (
        "run",
        &[
            "addresses",
            "artifacts",
            "automationDetails",
            "baselineGuid",
            "columnKind",
            "conversion",
            "defaultEncoding",
            "defaultSourceLanguage",
            "externalPropertyFileReferences",
            "graphs",
            "invocations",
            "language",
            "logicalLocations",
            "newlineSequences",
            "originalUriBaseIds",
            "policies",
            "properties",
            "redactionTokens",
            "results",
            "runAggregates",
            "specialLocations",
            "taxonomies",
            "threadFlowLocations",
            "tool",
            "translations",
            "versionControlProvenance",
            "webRequests",
            "webResponses",
        ],
        &["tool"],
        &[],
    ),
    (
        "tool",
        &["driver", "extensions", "properties"],
        &["driver"],
        &[],
    ),
    (
        "toolComponent",
        &[
            "associatedComponent",
            "contents",
            "dottedQuadFileVersion",
            "downloadUri",
            "fullDescription",
            "fullName",
            "globalMessageStrings",
            "guid",
            "informationUri",
            "isComprehensive",
            "language",
            "localizedDataSemanticVersion",
            "locations",
            "minimumRequiredLocalizedDataSemanticVersion",
            "name",
            "notifications",
            "organization",
            "product",
            "productSuite",
            "properties",
            "releaseDateUtc",
            "rules",
            "semanticVersion",
            "shortDescription",
            "supportedTaxonomies",
            "taxa",
            "translationMetadata",
            "version",
        ],
        &["name"],
        &[],
    ),
    (
        "reportingDescriptor",
        &[
            "defaultConfiguration",
            "deprecatedGuids",
            "deprecatedIds",
            "deprecatedNames",
            "fullDescription",
            "guid",
            "help",
            "helpUri",
            "id",
            "messageStrings",
            "name",
            "properties",
            "relationships",
            "shortDescription",
        ],
        &["id"],
        &[],
    ),
    (
        "multiformatMessageString",
        &["markdown", "properties", "text"],
        &["text"],
        &[],
    ),
    (
        "reportingConfiguration",
        &["enabled", "level", "parameters", "properties", "rank"],
        &[],
        &[],
    ),
    (
        "result",
        &[
            "analysisTarget",
            "attachments",
            "baselineState",
            "codeFlows",
            "correlationGuid",
            "fingerprints",
            "fixes",
            "graphTraversals",
            "graphs",
            "guid",
            "hostedViewerUri",
            "kind",
            "level",
            "locations",
            "message",
            "occurrenceCount",
            "partialFingerprints",
            "properties",
            "provenance",
            "rank",
            "relatedLocations",
            "rule",
            "ruleId",
            "ruleIndex",
            "stacks",
            "suppressions",
            "taxa",
            "webRequest",
            "webResponse",
            "workItemUris",
        ],
        &["message"],
        &[],
    ),
    (
        "message",
        &["arguments", "id", "markdown", "properties", "text"],
        &[],
        &["text", "id"],
    ),
    (
        "location",
        &[
            "annotations",
            "id",
            "logicalLocations",
            "message",
            "physicalLocation",
            "properties",
            "relationships",
        ],
        &[],
        &[],
    ),
    (
        "physicalLocation",
        &[
            "address",
            "artifactLocation",
            "contextRegion",
            "properties",
            "region",
        ],
        &[],
        &["address", "artifactLocation"],
    ),
    (
        "artifactLocation",
        &["description", "index", "properties", "uri", "uriBaseId"],
        &[],
        &[],
    ),
    (
        "region",
        &[
            "byteLength",
            "byteOffset",
            "charLength",
            "charOffset",
            "endColumn",
            "endLine",
            "message",
            "properties",
            "snippet",
            "sourceLanguage",
            "startColumn",
            "startLine",
        ],
        &[],
        &["startLine", "charOffset", "byteOffset"],
    ),
];

const LEVELS: [&str; 4] = ["none", "note", "warning", "error"];

fn check(v: &Value, def: &str, at: &str, errors: &mut Vec<String>) {
    let Some((_, allowed, required, any_of)) = DEFS.iter().find(|d| d.0 == def) else {
        errors.push(format!("{at}: no definition {def}"));
        return;
    };
    let Some(obj) = v.as_object() else {
        errors.push(format!("{at}: {def} is not an object"));
        return;
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            errors.push(format!("{at}: {def} has no property {k:?}"));
        }
    }
    for r in *required {
        if !obj.contains_key(*r) {
            errors.push(format!("{at}: {def} lacks required {r:?}"));
        }
    }
    if !any_of.is_empty() && !any_of.iter().any(|k| obj.contains_key(*k)) {
        errors.push(format!("{at}: {def} needs one of {any_of:?}"));
    }
    let int_min = |key: &str, min: i64, errors: &mut Vec<String>| {
        if let Some(x) = obj.get(key) {
            if x.as_i64().is_none_or(|n| n < min) {
                errors.push(format!(
                    "{at}: {def}.{key} = {x} is not an integer >= {min}"
                ));
            }
        }
    };
    let string = |key: &str, errors: &mut Vec<String>| {
        if let Some(x) = obj.get(key) {
            if !x.is_string() {
                errors.push(format!("{at}: {def}.{key} is not a string"));
            }
        }
    };
    let sub = |key: &str, d: &str, errors: &mut Vec<String>| {
        if let Some(x) = obj.get(key) {
            check(x, d, &format!("{at}.{key}"), errors);
        }
    };
    let list = |key: &str, d: &str, errors: &mut Vec<String>| {
        if let Some(x) = obj.get(key) {
            match x.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check(item, d, &format!("{at}.{key}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: {def}.{key} is not an array")),
            }
        }
    };
    match def {
        "sarifLog" => {
            if obj.get("version") != Some(&Value::from("2.1.0")) {
                errors.push(format!("{at}: version must be \"2.1.0\""));
            }
            string("$schema", errors);
            list("runs", "run", errors);
        }
        "run" => {
            sub("tool", "tool", errors);
            list("results", "result", errors);
            if let Some(k) = obj.get("columnKind") {
                if !["utf16CodeUnits", "unicodeCodePoints"].contains(&k.as_str().unwrap_or("")) {
                    errors.push(format!("{at}: bad columnKind {k}"));
                }
            }
        }
        "tool" => sub("driver", "toolComponent", errors),
        "toolComponent" => {
            for k in ["name", "fullName", "version", "semanticVersion"] {
                string(k, errors);
            }
            list("rules", "reportingDescriptor", errors);
        }
        "reportingDescriptor" => {
            string("id", errors);
            string("name", errors);
            for k in ["shortDescription", "fullDescription", "help"] {
                sub(k, "multiformatMessageString", errors);
            }
            sub("defaultConfiguration", "reportingConfiguration", errors);
        }
        "multiformatMessageString" | "message" => string("text", errors),
        "reportingConfiguration" | "result" => {
            if let Some(l) = obj.get("level") {
                if !LEVELS.contains(&l.as_str().unwrap_or("")) {
                    errors.push(format!("{at}: bad level {l}"));
                }
            }
            if def == "result" {
                string("ruleId", errors);
                int_min("ruleIndex", -1, errors);
                sub("message", "message", errors);
                list("locations", "location", errors);
            }
        }
        "location" => sub("physicalLocation", "physicalLocation", errors),
        "physicalLocation" => {
            sub("artifactLocation", "artifactLocation", errors);
            sub("region", "region", errors);
        }
        "artifactLocation" => string("uri", errors),
        "region" => {
            for k in ["startLine", "startColumn", "endLine", "endColumn"] {
                int_min(k, 1, errors);
            }
        }
        _ => {}
    }
}

fn run(args: &[&str]) -> (Option<i32>, Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_policy"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run policy");
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code(), v)
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailpolicy-sarif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_validator_rejects_what_the_schema_rejects() {
    let bad = serde_json::json!({
        "version": "2.0.0",
        "runs": [{"tool": {"driver": {}}, "results": [
            {"ruleId": 3, "level": "fatal", "message": {}, "extra": 1,
             "locations": [{"physicalLocation": {"region": {"startLine": 0}}}]}
        ]}]
    });
    let mut errors = Vec::new();
    check(&bad, "sarifLog", "$", &mut errors);
    for want in [
        "version must be",
        "lacks required \"name\"",
        "bad level",
        "ruleId is not a string",
        "needs one of [\"text\", \"id\"]",
        "has no property \"extra\"",
        "needs one of [\"address\", \"artifactLocation\"]",
        "startLine = 0",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want}: {errors:#?}"
        );
    }
}

#[test]
fn check_sarif_has_the_schemas_required_shape_and_the_json_locations() {
    let warn = temp(
        "warn.policy",
        "rule \"lose it\" {\n    when scanner == infected\n    then discard\n}\nrule \"é\" { when scanner == infected then pass }\n",
    );
    let broken = temp(
        "broken policy.policy",
        "rule \"x\" { when scaner == clean then pass }\n",
    );
    let files = [
        "examples/site.policy",
        warn.to_str().unwrap(),
        broken.to_str().unwrap(),
    ];
    let mut args = vec!["check"];
    args.extend_from_slice(&files);
    let (code, json) = run(&[args.as_slice(), &["--format", "json"]].concat());
    let (sarif_code, sarif) = run(&[args.as_slice(), &["--format", "sarif"]].concat());
    assert_eq!(code, sarif_code, "same exit code as the other formats");
    assert_eq!(sarif_code, Some(1), "the broken file has errors");
    let mut errors = Vec::new();
    check(&sarif, "sarifLog", "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");

    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one run");
    let rules = runs[0]["tool"]["driver"]["rules"].as_array().unwrap();
    for code in [
        "silent-discard",
        "unreachable-rule",
        "unknown-fact",
        "virus-passes",
    ] {
        let r = rules.iter().find(|r| r["id"] == code).expect(code);
        assert!(!r["help"]["text"].as_str().unwrap().is_empty());
    }
    let results = runs[0]["results"].as_array().unwrap();
    let diags = json.as_array().unwrap();
    assert_eq!(results.len(), diags.len());
    assert!(results.len() >= 3, "{results:#?}");
    for (r, d) in results.iter().zip(diags) {
        assert_eq!(r["ruleId"], d["code"]);
        assert_eq!(r["level"], d["severity"]);
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"], "ruleIndex points at the rule");
        assert!(r["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with(d["message"].as_str().unwrap()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["region"]["startLine"], d["line"]);
        assert_eq!(loc["region"]["startColumn"], d["column"]);
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        let file = d["file"].as_str().unwrap();
        assert_eq!(uri.replace("%20", " "), {
            if file.starts_with('/') {
                format!("file://{file}")
            } else {
                file.to_owned()
            }
        });
    }
    // The silent discard points at its `rule` keyword, 4 characters wide.
    let silent = results
        .iter()
        .find(|r| r["ruleId"] == "silent-discard")
        .expect("silent-discard");
    let region = &silent["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 1);
    assert_eq!(region["startColumn"], 1);
    assert_eq!(region["endColumn"], 5);
}
