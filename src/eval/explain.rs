//! `explain`: which rules were tried, and why each did or did not apply.

use super::{eval_expr_traced, FactSource, Truth};
use crate::check::model::{Model, Val};
use crate::decision::Decision;
use serde::Serialize;

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
    /// The comparison as written in the policy.
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

pub(crate) fn explain<'p>(
    model: &'p Model,
    source: &str,
    lines: &crate::diagnostics::LineIndex,
    src: &mut dyn FactSource,
) -> Explanation<'p> {
    let mut trace = Vec::new();
    for rule in &model.rules {
        let mut checks = Vec::new();
        let result = match &rule.when {
            None => Truth::True,
            Some(e) => eval_expr_traced(e, src, &mut |leaf, fact, value, result| {
                let condition = source
                    .get(leaf.start..leaf.end)
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                checks.push(CheckTrace {
                    condition,
                    result: result.as_str(),
                    fact: fact.map(|id| model.facts.get(id).name.clone()),
                    value: fact.map(|_| {
                        value.map_or_else(|| "unknown".to_owned(), |v| show(model, fact, v))
                    }),
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

fn show(model: &Model, fact: Option<crate::facts::FactId>, v: Val<'_>) -> String {
    match fact {
        Some(id) => v.describe(&model.facts.get(id).ty),
        None => v.describe(&crate::facts::FactType::Bool),
    }
}
