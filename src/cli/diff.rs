//! `policy diff OLD NEW`: the semantic difference of two policies, as a
//! unified diff of behaviour grouped by the old policy's rules, or as JSON
//! (`[{"example":{FACTS},"old":DECISION,"new":DECISION}]`).

use mailpolicy::{FactValue, Facts, Limits, Policy, PolicyDiff};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// Exit code when the policies decide the same everywhere.
const SAME: i32 = 0;
/// Exit code when they differ.
const DIFFERENT: i32 = 1;
/// Exit code for trouble (usage, I/O, policy errors, an unfinished analysis).
const TROUBLE: i32 = 2;

fn load(path: &Path, limits: &Limits) -> Result<Option<Policy>, String> {
    let bytes = super::read(path)?;
    match super::parse(&bytes, limits) {
        Ok(p) => Ok(Some(p)),
        Err(d) => {
            super::print_errors(path, &d);
            Ok(None)
        }
    }
}

/// Runs the diff, parsing both policies with `limits`; returns the exit code.
pub fn run(
    old_path: &Path,
    new_path: &Path,
    limits: &Limits,
    json_out: bool,
) -> Result<i32, String> {
    let (Some(old), Some(new)) = (load(old_path, limits)?, load(new_path, limits)?) else {
        return Ok(TROUBLE);
    };
    let diff = match old.diff(&new) {
        Ok(d) => d,
        Err(e) => {
            super::errln!("error: cannot compare the policies: {e}");
            return Ok(TROUBLE);
        }
    };
    if json_out {
        let arr: Vec<Value> = diff
            .regions
            .iter()
            .map(|r| {
                json!({
                    "example": facts_json(&r.example),
                    "old": decision(&old, &r.example),
                    "new": decision(&new, &r.example),
                })
            })
            .collect();
        super::outln!(
            "{}",
            serde_json::to_string_pretty(&arr).unwrap_or_else(|_| "[]".into())
        );
    } else {
        super::out!("{}", human(old_path, new_path, &old, &new, &diff));
    }
    if !diff.complete {
        super::errln!(
            "note: the analysis did not finish within its budget: {} pair(s) of rules unsettled{}",
            diff.unsettled.len(),
            unsettled_list(&diff)
        );
    }
    Ok(if !diff.regions.is_empty() {
        DIFFERENT
    } else if diff.complete {
        SAME
    } else {
        TROUBLE
    })
}

fn item(rule: Option<&str>) -> String {
    rule.map_or_else(|| "the default".to_owned(), |r| format!("rule {r:?}"))
}

fn unsettled_list(diff: &PolicyDiff) -> String {
    let shown: Vec<String> = diff
        .unsettled
        .iter()
        .take(5)
        .map(|(a, b)| format!("old {} / new {}", item(a.as_deref()), item(b.as_deref())))
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        let more = diff.unsettled.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(", and {more} more")
        } else {
            String::new()
        };
        format!(": {}{tail}", shown.join("; "))
    }
}

/// The decision JSON `policy eval` prints.
fn decision(policy: &Policy, facts: &Facts) -> Value {
    serde_json::to_value(policy.evaluate(facts)).unwrap_or(Value::Null)
}

/// Facts as a facts-JSON object (what `policy eval --facts` reads back).
pub fn facts_json(facts: &Facts) -> Value {
    let mut m = serde_json::Map::new();
    for (name, v) in facts.iter() {
        let v = match v {
            FactValue::Bool(b) => json!(b),
            FactValue::Int(i) => json!(i),
            FactValue::Number(n) => json!(n),
            FactValue::Str(s) => json!(s),
            FactValue::Ip(ip) => json!(ip.to_string()),
            FactValue::Direction(d) => json!(d.as_str()),
            FactValue::Scanner(s) => json!(s.as_str()),
            FactValue::Set(names) => json!(names),
            _ => Value::Null,
        };
        m.insert(name.to_owned(), v);
    }
    Value::Object(m)
}

/// What a decision does, as a policy writes it.
fn actions(policy: &Policy, facts: &Facts) -> String {
    let d = policy.evaluate(facts);
    let mut parts = vec![match d.reply() {
        Some(r) => format!("{} {r:?}", d.disposition()),
        None => d.disposition().to_string(),
    }];
    if let Some(q) = d.quarantine() {
        parts.push(if q == "default" {
            "quarantine".to_owned()
        } else {
            format!("quarantine {q:?}")
        });
    }
    for a in d.alerts() {
        parts.push(match a {
            mailpolicy::AlertTarget::Address(x) => format!("alert {x:?}"),
            other => format!("alert {}", other.as_str()),
        });
    }
    for t in d.tags() {
        parts.push(format!("tag {t:?}"));
    }
    parts.join(", ")
}

fn human(
    old_path: &Path,
    new_path: &Path,
    old: &Policy,
    new: &Policy,
    diff: &PolicyDiff,
) -> String {
    let mut s = String::new();
    if diff.regions.is_empty() {
        if diff.complete {
            let _ = writeln!(
                s,
                "{} and {} decide the same for every message",
                old_path.display(),
                new_path.display()
            );
        } else {
            let _ = writeln!(
                s,
                "no difference found between {} and {}, but the analysis did not finish (see the note)",
                old_path.display(),
                new_path.display()
            );
        }
        return s;
    }
    let _ = writeln!(s, "--- {}", old_path.display());
    let _ = writeln!(s, "+++ {}", new_path.display());
    let mut current: Option<Option<&str>> = None;
    for r in &diff.regions {
        let old_rule = r.old_rule.as_deref();
        if current != Some(old_rule) {
            current = Some(old_rule);
            let _ = writeln!(s, "@@ old {} @@", item(old_rule));
        }
        let _ = writeln!(s, "  when {}", r.example_text);
        let _ = writeln!(s, "- {}    ({})", actions(old, &r.example), item(old_rule));
        let _ = writeln!(
            s,
            "+ {}    ({})",
            actions(new, &r.example),
            item(r.new_rule.as_deref())
        );
    }
    let _ = writeln!(
        s,
        "\n{} region(s) where the decisions differ{}",
        diff.regions.len(),
        if diff.complete {
            ""
        } else {
            " (the analysis did not finish: there may be more)"
        }
    );
    s
}
