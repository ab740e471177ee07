//! `policy check --format sarif`: SARIF 2.1.0 for code scanning in CI (one
//! run; every lint code a rule with its description and help; each result
//! with its file, line and column).
//!
//! Columns count Unicode code points (`columnKind: unicodeCodePoints`), as the
//! diagnostics do.

use mailpolicy::{Code, Diagnostic, Severity};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Value};
use std::path::Path;

/// What to do about each code, for the rules' `help` (a result carries the
/// help of its own diagnostic, which is more specific).
const HELP: &[(&str, &str)] = &[
    ("syntax", "fix the text at the caret so that it follows the grammar (docs/LANGUAGE.md)"),
    ("unknown-fact", "use a built-in fact or declare it with `fact NAME: TYPE`"),
    ("type-mismatch", "compare the fact with a value of its type (enum values are bare words; `matches` needs a string fact)"),
    ("unknown-enum-value", "use one of the fact's values (the message suggests the closest)"),
    ("invalid-cidr", "write the address or the network address of the prefix (`10.0.0.0/8`, not `10.1.2.3/8`)"),
    ("invalid-glob", "globs know only `*` and `?`; fix the pattern"),
    ("invalid-regex", "use Rust `regex` syntax (no look-around or back-references) within the size limit"),
    ("invalid-escape", "use only `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{HEX}` in strings"),
    ("undefined-list", "declare the list with `list NAME = [...]` or fix its name"),
    ("duplicate-list", "give each list its own name"),
    ("duplicate-rule", "give each rule its own name: tests and logs name rules"),
    ("disposition-count", "give the action list exactly one of pass, discard, bounce, reject, tempfail"),
    ("duplicate-quarantine", "keep one `quarantine` per action list"),
    ("duplicate-item", "keep one of each (`policy`, `mode`, `default`, a fact's declaration)"),
    ("limit", "make the policy smaller, or raise the limit where it is embedded (`Limits`)"),
    ("unknown-rule", "name a rule of the policy in `expect rule`, or `expect default`"),
    ("backscatter-alert", "alert the admin or the recipient instead: mass-mailing viruses forge the envelope sender, so the notice reaches an innocent party (backscatter)"),
    ("backscatter-bounce", "discard and quarantine instead, or guard the bounce with `forges_sender == false`: the DSN goes to the forged sender, an innocent party (backscatter)"),
    ("reject-after-queue", "discard and quarantine instead (or `bounce` for non-forging viruses): after the queue the MTA turns a reject into a DSN that carries the infected original to the (forged) sender"),
    ("silent-discard", "add `quarantine` so the recipient can still review and rescue the mail"),
    ("fail-open", "answer `tempfail` when the scanner fails or times out; pass unscannable mail only with a `tag` or an `alert`"),
    ("virus-passes", "discard and quarantine infected mail (a `scanner == infected` rule before this one): a `pass` delivers the virus"),
    ("outbound-virus-escapes", "discard and quarantine outbound and internal infected mail and `alert admin`: a site must emit no viruses"),
    ("unreachable-rule", "remove the rule, or move it before the rules that cover it if it should win"),
    ("tempfail-permanent", "decide for good (discard and quarantine infected mail; pass encrypted mail with a tag): the condition is permanent, so the sender's MTA retries until it gives up"),
    ("alert-null-sender", "guard it with `sender != \"\"`: nothing may be sent back to the null sender (RFC 5321)"),
    ("unused-list", "remove the list, or use it in a condition"),
    ("unused-fact", "remove the declaration, or test the fact in a rule's condition"),
    ("untested-rule", "add a `test` whose facts make this rule decide (`expect rule \"NAME\"`)"),
    ("unknown-lint", "name an existing lint code in `allow(...)`"),
    ("analysis-incomplete", "the rules named were not fully checked within the linter's work budget: simpler conditions (fewer regexes, smaller lists) let it finish; no warning was guessed"),
];

fn help(code: Code) -> &'static str {
    HELP.iter()
        .find(|(c, _)| *c == code.as_str())
        .map_or_else(|| code.description(), |(_, h)| h)
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        _ => "note",
    }
}

/// `FooBar` from `foo-bar`: SARIF's `name` is a PascalCase identifier.
fn pascal(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

/// A relative or absolute URI reference for a path (forward slashes,
/// characters outside RFC 3986's unreserved set and `/` percent-encoded).
pub fn uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if path.is_absolute() && !out.starts_with('/') {
        out.insert(0, '/');
    }
    if path.is_absolute() {
        out.insert_str(0, "file://");
    }
    out
}

/// The last column (inclusive, in code points) the diagnostic's span covers
/// on its own line, when it ends there.
fn end_column(d: &Diagnostic) -> Option<usize> {
    if d.snippet_column() != d.column {
        return None; // a cut line: the span's width is not known here
    }
    let line = d.source_line();
    let start: usize = line
        .chars()
        .take(d.column.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let width = d.span.end.saturating_sub(d.span.start).max(1);
    let text = line.get(start..start.checked_add(width)?)?;
    Some(d.column + text.chars().count().max(1) - 1)
}

/// The SARIF log for the diagnostics of each file, serialized as it is
/// written: one result's JSON at a time, not a tree of the whole log (50,000
/// diagnostics of a 1 MB policy made a 60 MB log, held three times over).
pub struct Log<'a>(pub &'a [(std::path::PathBuf, Vec<Diagnostic>)]);

impl Serialize for Log<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("$schema", "https://json.schemastore.org/sarif-2.1.0.json")?;
        m.serialize_entry("version", "2.1.0")?;
        m.serialize_entry("runs", &[Run(self.0)])?;
        m.end()
    }
}

/// The one run: the tool, then its results.
struct Run<'a>(&'a [(std::path::PathBuf, Vec<Diagnostic>)]);

impl Serialize for Run<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rules: Vec<Value> = Code::ALL
            .iter()
            .map(|c| {
                json!({
                    "id": c.as_str(),
                    "name": pascal(c.as_str()),
                    "shortDescription": {"text": c.description()},
                    "fullDescription": {"text": c.description()},
                    "help": {"text": help(*c)},
                    "defaultConfiguration": {"level": level(c.severity())},
                })
            })
            .collect();
        let tool = json!({
            "driver": {
                "name": "policy",
                "fullName": "mailpolicy's policy checker",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }
        });
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("tool", &tool)?;
        m.serialize_entry("columnKind", "unicodeCodePoints")?;
        m.serialize_entry("results", &Results(self.0))?;
        m.end()
    }
}

/// Every diagnostic of every file, each made into JSON as it is written.
struct Results<'a>(&'a [(std::path::PathBuf, Vec<Diagnostic>)]);

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0.iter().map(|(_, d)| d.len()).sum();
        let mut seq = s.serialize_seq(Some(n))?;
        for (path, diags) in self.0 {
            let uri = uri(path);
            for d in diags {
                seq.serialize_element(&result(&uri, d))?;
            }
        }
        seq.end()
    }
}

/// One diagnostic as a SARIF result.
fn result(uri: &str, d: &Diagnostic) -> Value {
    let index = Code::ALL.iter().position(|c| *c == d.code);
    let mut text = d.message.clone();
    if let Some(h) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(h);
    }
    if let Some(e) = &d.example {
        text.push_str("\nfor example: ");
        text.push_str(e);
    }
    let mut region = json!({
        "startLine": d.line.max(1),
        "startColumn": d.column.max(1),
    });
    if let (Some(end), Some(r)) = (end_column(d), region.as_object_mut()) {
        r.insert("endLine".into(), json!(d.line.max(1)));
        r.insert("endColumn".into(), json!(end + 1));
    }
    let mut result = json!({
        "ruleId": d.code.as_str(),
        "level": level(d.severity),
        "message": {"text": text},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": uri},
                "region": region,
            }
        }],
    });
    if let Some(obj) = result.as_object_mut() {
        if let Some(i) = index {
            obj.insert("ruleIndex".into(), json!(i));
        }
        let mut props = serde_json::Map::new();
        if let Some(r) = &d.rule {
            props.insert("rule".into(), json!(r));
        }
        if let Some(e) = &d.example {
            props.insert("example".into(), json!(e));
        }
        if !props.is_empty() {
            obj.insert("properties".into(), Value::Object(props));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_help() {
        for c in Code::ALL {
            assert!(
                HELP.iter().any(|(name, _)| *name == c.as_str()),
                "no help for {c}"
            );
            assert!(!c.description().is_empty());
        }
    }

    #[test]
    fn names_and_uris() {
        assert_eq!(pascal("outbound-virus-escapes"), "OutboundVirusEscapes");
        assert_eq!(uri(Path::new("dir/a b.policy")), "dir/a%20b.policy");
        assert_eq!(uri(Path::new("/etc/x.policy")), "file:///etc/x.policy");
    }
}
