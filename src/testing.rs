//! `policy test`: runs a policy's `test` blocks.

use crate::check::model::ExpectModel;
use crate::decision::{Action, Decision};
use crate::Policy;
use serde::Serialize;

/// The outcome of all `test` blocks of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestReport {
    /// One entry per test, in file order.
    pub results: Vec<TestResult>,
}

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// The line of its `test` keyword.
    pub line: usize,
    /// What did not hold; empty when the test passed.
    pub failures: Vec<String>,
}

impl TestResult {
    /// Whether every `expect` held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Runs the tests in order within the policy's test work budget
/// ([`crate::Limits::max_test_work`]): tests × rules is quadratic, so once
/// the budget is spent the remaining tests are not run; each fails with a
/// `limit` message at its own line.
pub(crate) fn run(policy: &Policy) -> TestReport {
    let model = &policy.model;
    let budget = policy
        .limits
        .max_test_work
        .max(crate::limits::TEST_WORK_PER_SOURCE_BYTE.saturating_mul(policy.source.len()));
    let mut spent = 0usize;
    let results = model
        .tests
        .iter()
        .map(|t| {
            let line = policy.lines.line(t.span.start);
            if spent > budget {
                return TestResult {
                    name: t.name.clone(),
                    line,
                    failures: vec![format!(
                        "line {line}: limit: not run: the tests before it used the test work \
                         budget of {budget} rule evaluations (`Limits::max_test_work`)"
                    )],
                };
            }
            let index = policy
                .compiled
                .decide_scanning(&mut crate::eval::DirectSource {
                    facts: &t.given,
                    table: &model.facts,
                });
            let tried = index.map_or(model.rules.len(), |i| i + 1);
            spent = spent.saturating_add(tried.saturating_mul(1 + given_bytes(&t.given) / 4096));
            let decision = crate::compile::decision(model, index);
            let mut failures = Vec::new();
            for e in &t.expects {
                if let Some(f) = check_expect(e, &decision) {
                    let line = policy.lines.line(expect_span(e).start);
                    failures.push(format!("line {line}: {f}"));
                }
            }
            TestResult {
                name: t.name.clone(),
                line,
                failures,
            }
        })
        .collect();
    TestReport { results }
}

/// The bytes of text a test gives (strings and set names): what a string
/// leaf may have to read.
fn given_bytes(facts: &crate::Facts) -> usize {
    facts
        .iter()
        .map(|(_, v)| match v {
            crate::FactValue::Str(s) => s.len(),
            crate::FactValue::Set(names) => names.iter().map(|n| n.len() + 1).sum(),
            _ => 0,
        })
        .sum()
}

fn expect_span(e: &ExpectModel) -> crate::diagnostics::Span {
    match e {
        ExpectModel::Actions(_, s) | ExpectModel::Rule(_, s) | ExpectModel::Default(s) => *s,
    }
}

/// Describes a decision the way a policy would write it.
pub(crate) fn describe(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::Quarantine { bucket } if bucket == "default" => "quarantine".to_owned(),
            Action::Quarantine { bucket } => format!("quarantine {bucket:?}"),
            Action::Alert { to } => match to {
                crate::AlertTarget::Address(a) => format!("alert {a:?}"),
                other => format!("alert {}", other.as_str()),
            },
            Action::Tag { text } => format!("tag {text:?}"),
            other => match other.disposition() {
                Some((d, Some(r))) => format!("{d} {r:?}"),
                Some((d, None)) => d.to_string(),
                None => String::new(),
            },
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_expect(e: &ExpectModel, d: &Decision<'_>) -> Option<String> {
    let got = || {
        let by = d
            .rule()
            .map_or_else(|| "the default".to_owned(), |r| format!("rule {r:?}"));
        format!("got `{}` from {by}", describe(d.actions()))
    };
    match e {
        ExpectModel::Rule(name, _) => match d.rule() {
            Some(r) if r == name => None,
            _ => Some(format!("expected rule {name:?} to decide, {}", got())),
        },
        ExpectModel::Default(_) => d
            .rule()
            .map(|_| format!("expected the default to decide, {}", got())),
        ExpectModel::Actions(expected, _) => {
            let want = Decision {
                actions: expected,
                rule: None,
            };
            let mut ok =
                want.disposition() == d.disposition() && want.quarantine() == d.quarantine();
            if let Some(reply) = want.reply() {
                ok &= d.reply() == Some(reply);
            }
            let sorted = |mut v: Vec<String>| {
                v.sort();
                v
            };
            ok &= sorted(want.alerts().map(|a| a.as_str().to_owned()).collect())
                == sorted(d.alerts().map(|a| a.as_str().to_owned()).collect());
            ok &= sorted(want.tags().map(str::to_owned).collect())
                == sorted(d.tags().map(str::to_owned).collect());
            (!ok).then(|| format!("expected `{}`, {}", describe(expected), got()))
        }
    }
}
