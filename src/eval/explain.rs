//! `explain`: which rules were tried, and why each did or did not apply.

use super::{eval_expr_traced, FactSource, Truth};
use crate::check::model::{Model, Val};
use crate::decision::Decision;
use serde::Serialize;
use std::fmt::Write;

/// Why a policy decided what it did.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation<'p> {
    /// The decision (the same as [`crate::Policy::evaluate`] gives).
    #[serde(skip)]
    pub decision: Decision<'p>,
    /// The rules tried, in order, up to the one that applied.
    pub trace: Vec<RuleTrace>,
}

/// One rule tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    /// The rule's name.
    pub rule: String,
    /// The line of its `rule` keyword.
    pub line: usize,
    /// `"true"`, `"false"` or `"unknown"`: the condition's value (`true` for a rule without `when`).
    pub result: &'static str,
    /// Whether the rule applied (decided).
    pub applied: bool,
    /// The comparisons evaluated, in order (short-circuited ones are absent).
    pub checks: Vec<CheckTrace>,
}

/// One comparison evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckTrace {
    /// The comparison as written in the policy (whitespace runs as one
    /// space), cut to [`crate::Limits::max_explain_chars`] characters with `…`.
    pub condition: String,
    /// `"true"`, `"false"` or `"unknown"`.
    pub result: &'static str,
    /// The fact it read, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
    /// The fact's value, or `null` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Writes at most `left` characters, then fails (which stops a `write!`
/// early) and remembers that it cut.
struct Bounded {
    out: String,
    left: usize,
    cut: bool,
}

impl Bounded {
    fn new(max_chars: usize) -> Bounded {
        Bounded {
            out: String::new(),
            left: max_chars,
            cut: false,
        }
    }

    /// The text, with `…` when it was cut.
    fn finish(mut self) -> String {
        if self.cut {
            self.out.push('…');
        }
        self.out
    }
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.cut {
            return Err(std::fmt::Error);
        }
        match s.char_indices().nth(self.left) {
            None => {
                self.left -= s.chars().count();
                self.out.push_str(s);
                Ok(())
            }
            Some((at, _)) => {
                self.out.push_str(s.get(..at).unwrap_or(""));
                self.left = 0;
                self.cut = true;
                Err(std::fmt::Error)
            }
        }
    }
}

/// Explains a decision. Its size is bounded by the policy, not the facts:
/// each fact's value is described once (later checks of the same fact copy
/// that text) and, like each condition's text, cut to
/// [`crate::Limits::max_explain_chars`] characters (with `…`), so a 64 KB
/// value read by 10,000 rules is not copied 10,000 times.
pub(crate) fn explain<'p>(
    model: &'p Model,
    source: &str,
    lines: &crate::diagnostics::LineIndex,
    max_chars: usize,
    src: &mut dyn FactSource,
) -> Explanation<'p> {
    let mut trace = Vec::new();
    // Each fact's value, described once (the source gives the same value
    // every time it is asked within one evaluation).
    let mut described: Vec<Option<String>> = vec![None; model.facts.len()];
    for rule in &model.rules {
        let mut checks = Vec::new();
        let result = match &rule.when {
            None => Truth::True,
            Some(e) => eval_expr_traced(e, src, &mut |leaf, fact, value, result| {
                let mut condition = Bounded::new(max_chars);
                let text = source.get(leaf.start..leaf.end).unwrap_or("");
                for (i, word) in text.split_whitespace().enumerate() {
                    let sep = if i > 0 { " " } else { "" };
                    if condition
                        .write_str(sep)
                        .and(condition.write_str(word))
                        .is_err()
                    {
                        break;
                    }
                }
                let value = fact.map(|id| match value {
                    None => "unknown".to_owned(),
                    Some(v) => match described.get_mut(id.index()) {
                        Some(Some(text)) => text.clone(),
                        Some(slot) => slot.insert(show(model, id, v, max_chars)).clone(),
                        None => show(model, id, v, max_chars),
                    },
                });
                checks.push(CheckTrace {
                    condition: condition.finish(),
                    result: result.as_str(),
                    fact: fact.map(|id| model.facts.get(id).name.clone()),
                    value,
                });
            }),
        };
        let applied = result == Truth::True;
        let line = lines.line(rule.keyword.start);
        trace.push(RuleTrace {
            rule: rule.name.clone(),
            line,
            result: result.as_str(),
            applied,
            checks,
        });
        if applied {
            return Explanation {
                decision: Decision {
                    actions: &rule.actions,
                    rule: Some(&rule.name),
                },
                trace,
            };
        }
    }
    Explanation {
        decision: Decision {
            actions: &model.default.actions,
            rule: None,
        },
        trace,
    }
}

/// A fact's value as a policy writes it, cut to `max_chars` characters.
fn show(model: &Model, id: crate::facts::FactId, v: Val<'_>, max_chars: usize) -> String {
    let mut out = Bounded::new(max_chars);
    // An error only means it was cut.
    let _ = v.describe_into(&model.facts.get(id).ty, &mut out);
    out.finish()
}
