//! `policy diff OLD NEW [--format json]` as a user runs it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SITE: &str = include_str!("fixtures/spec_example.policy");

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailpolicy-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn diff(old: &Path, new: &Path, json: bool) -> Output {
    let mut args = vec![
        "diff".to_owned(),
        old.display().to_string(),
        new.display().to_string(),
    ];
    if json {
        args.extend(["--format".to_owned(), "json".to_owned()]);
    }
    Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(&args)
        .output()
        .expect("run policy")
}

fn eval(policy: &Path, facts: &Value) -> Value {
    let f = file("facts.json", &facts.to_string());
    let o = Command::new(env!("CARGO_BIN_EXE_policy"))
        .args([
            "eval",
            policy.to_str().unwrap(),
            "--facts",
            f.to_str().unwrap(),
        ])
        .output()
        .expect("run policy");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("decision JSON")
}

#[test]
fn the_same_policy_renamed_and_reformatted_is_no_difference() {
    let old = file("site.policy", SITE);
    let renamed = SITE
        .replace("rule \"", "rule \"site: ")
        .replace("    ", "  ");
    let new = file("site-renamed.policy", &renamed);
    let o = diff(&old, &new, false);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("decide the same"));
    let o = diff(&old, &new, true);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, Value::Array(Vec::new()));
}

#[test]
fn reordering_rules_that_never_overlap_is_no_difference() {
    let old = file(
        "a.policy",
        "rule \"failed\" { when scanner in [error, timeout] then tempfail }\n\
         rule \"enc\" { when scanner == encrypted then pass, tag \"U\" }\n\
         rule \"virus\" { when scanner == infected then discard, quarantine }\n",
    );
    let new = file(
        "b.policy",
        "rule \"virus\" { when scanner == infected then discard, quarantine }\n\
         rule \"enc\" { when scanner == encrypted then pass, tag \"U\" }\n\
         rule \"failed\" { when scanner in [error, timeout] then tempfail }\n",
    );
    let o = diff(&old, &new, false);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_real_change_is_shown_with_examples_both_decisions_confirm() {
    let old = file("site.policy", SITE);
    // Every virus discarded safely: the clean-DSN rule goes, and outbound
    // mail gets no alert any more.
    let changed = SITE
        .replace(
            "then discard, quarantine \"outbound\", alert admin",
            "then discard, quarantine \"outbound\"",
        )
        .replace(
            "    then bounce, quarantine\n",
            "    then discard, quarantine\n",
        );
    let new = file("site-new.policy", &changed);
    let o = diff(&old, &new, true);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let regions = v.as_array().unwrap();
    let rules: Vec<(&str, &str)> = regions
        .iter()
        .map(|r| {
            (
                r["old"]["rule"].as_str().unwrap_or("default"),
                r["new"]["rule"].as_str().unwrap_or("default"),
            )
        })
        .collect();
    assert!(
        rules.contains(&("we emit no viruses", "we emit no viruses")),
        "{rules:?}"
    );
    assert!(
        rules.contains(&(
            "known non-forging viruses get a clean DSN",
            "known non-forging viruses get a clean DSN"
        )),
        "{rules:?}"
    );
    for r in regions {
        // `policy eval` on the example gives exactly the decisions shown.
        assert_eq!(eval(&old, &r["example"]), r["old"], "{r}");
        assert_eq!(eval(&new, &r["example"]), r["new"], "{r}");
        assert_ne!(
            r["old"]["disposition"].to_string() + &r["old"]["alerts"].to_string(),
            r["new"]["disposition"].to_string() + &r["new"]["alerts"].to_string()
        );
    }
    // The human form: a unified diff of behaviour, grouped by the old rules.
    let o = diff(&old, &new, false);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("--- "), "{text}");
    assert!(
        text.contains("@@ old rule \"we emit no viruses\" @@"),
        "{text}"
    );
    assert!(
        text.contains("- discard, quarantine \"outbound\", alert admin"),
        "{text}"
    );
    assert!(
        text.contains("+ discard, quarantine \"outbound\""),
        "{text}"
    );
    assert!(text.contains("- bounce, quarantine"), "{text}");
}

#[test]
fn trouble_exits_2() {
    let good = file("good.policy", SITE);
    let bad = file(
        "bad.policy",
        "rule \"x\" { when scaner == clean then pass }\n",
    );
    let o = diff(&good, &bad, false);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown-fact"));
    let missing = PathBuf::from("/nonexistent/policy");
    assert_eq!(diff(&good, &missing, false).status.code(), Some(2));
    let a = file(
        "fa.policy",
        "fact level: int\nrule \"x\" { when level > 3 then reject }\n",
    );
    let b = file(
        "fb.policy",
        "fact level: string\nrule \"x\" { when level == \"3\" then reject }\n",
    );
    let o = diff(&a, &b, false);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fact `level`"));
}

#[test]
fn custom_facts_only_one_side_declares_are_compared() {
    let a = file(
        "ca.policy",
        "rule \"v\" { when scanner == infected then discard, quarantine }\n",
    );
    let b = file(
        "cb.policy",
        "fact vip: bool\n\
         rule \"vip\" { when vip and scanner == infected then pass, tag \"VIRUS\" }\n\
         rule \"v\" { when scanner == infected then discard, quarantine }\n",
    );
    let o = diff(&a, &b, true);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["example"]["vip"], true);
    assert_eq!(v[0]["example"]["scanner"], "infected");
}
