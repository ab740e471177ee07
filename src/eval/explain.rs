//! `explain`: which rules were tried, and why each did or did not apply.

use super::{LeafRecorder, Truth};
use crate::check::model::{Expr, Model, Val};
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

/// Evaluates rule `i`'s condition, reporting each leaf it evaluates (in
/// the reference walk's order, as [`super::eval_expr_traced`] does).
pub(crate) type RuleEval<'e> = dyn FnMut(usize, &Expr, &mut LeafRecorder<'_>) -> Truth + 'e;

/// Explains a decision. Its size is bounded by the policy, not the facts:
/// each fact's value is described once (later checks of the same fact copy
/// that text) and, like each condition's text, cut to
/// [`crate::Limits::max_explain_chars`] characters (with `…`), so a 64 KB
/// value read by 10,000 rules is not copied 10,000 times. `eval` gives the
/// conditions' truth: the facade passes the compiled form's tracer
/// (`crate::compile::Tracer`: shared scans, so the time is bounded as
/// evaluation's is), the tests also the reference walk.
pub(crate) fn explain<'p>(
    model: &'p Model,
    source: &str,
    lines: &crate::diagnostics::LineIndex,
    max_chars: usize,
    eval: &mut RuleEval<'_>,
) -> Explanation<'p> {
    let mut trace = Vec::new();
    // Each fact's value, described once (the source gives the same value
    // every time it is asked within one evaluation).
    let mut described: Vec<Option<String>> = vec![None; model.facts.len()];
    for (i, rule) in model.rules.iter().enumerate() {
        let mut checks = Vec::new();
        let result = match &rule.when {
            None => Truth::True,
            Some(e) => eval(i, e, &mut |leaf, fact, value, result| {
                let text = source.get(leaf.start..leaf.end).unwrap_or("");
                let condition = condition_text(text, max_chars);
                let value = fact.map(|id| match value {
                    None => "unknown".to_owned(),
                    Some(v) => match described.get_mut(id.index()) {
                        Some(Some(text)) => text.clone(),
                        Some(slot) => slot.insert(show(model, id, v, max_chars)).clone(),
                        None => show(model, id, v, max_chars),
                    },
                });
                checks.push(CheckTrace {
                    condition,
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

/// A condition as written, whitespace runs as one space, cut to
/// `max_chars` characters with `…` when more would follow: in one pass and
/// one allocation (the [`Bounded`] writer, word by word, grew the string
/// and rescanned each word).
fn condition_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)) + 3);
    let mut left = max_chars;
    let mut cut = false;
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            if left == 0 {
                cut = true;
                break;
            }
            out.push(' ');
            left -= 1;
        }
        // At most `left` bytes is at most `left` characters.
        let fits = word.len() <= left || word.char_indices().nth(left).is_none();
        if fits {
            out.push_str(word);
            left -= word.chars().count();
        } else {
            let at = word
                .char_indices()
                .nth(left)
                .map_or(word.len(), |(at, _)| at);
            out.push_str(word.get(..at).unwrap_or(""));
            cut = true;
            break;
        }
    }
    if cut {
        out.push('…');
    }
    out
}

/// A fact's value as a policy writes it, cut to `max_chars` characters.
fn show(model: &Model, id: crate::facts::FactId, v: Val<'_>, max_chars: usize) -> String {
    let mut out = Bounded::new(max_chars);
    // A long string is described from its first `max_chars + 1` characters:
    // they give the same cut text (escaping is per character, and the
    // opening quote and those characters already pass the cut), without
    // reading the rest of a 64 KB value.
    let v = match v {
        Val::Str(s) => Val::Str(
            s.char_indices()
                .nth(max_chars.saturating_add(1))
                .and_then(|(at, _)| s.get(..at))
                .unwrap_or(s),
        ),
        other => other,
    };
    // An error only means it was cut.
    let _ = v.describe_into(&model.facts.get(id).ty, &mut out);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// The condition text as it was built before: word by word through
    /// [`Bounded`].
    fn by_words(text: &str, max_chars: usize) -> String {
        let mut condition = Bounded::new(max_chars);
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
        condition.finish()
    }

    #[test]
    fn condition_text_is_the_word_by_word_text() {
        let texts = [
            "",
            "a",
            "sender == \"a@b\"",
            "  virus   matches\n\t\"é*\"  ",
            "x in [\"ééé\", \"b\",\n   \"c\"]",
            "İİİ KKK kkk",
            "aaaa bbbb cccc dddd",
        ];
        let mut checked = 0;
        for t in texts {
            for max in 0..24 {
                assert_eq!(
                    condition_text(t, max),
                    by_words(t, max),
                    "{t:?} cut at {max}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, texts.len() * 24);
    }

    #[test]
    fn a_long_string_is_described_from_its_start_alone() {
        let model = crate::Policy::parse("rule \"r\" { when sender == \"x\" then reject }")
            .expect("parses")
            .model;
        let id = crate::facts::FactId::SENDER;
        let ty = &model.facts.get(id).ty;
        for s in ["", "abc", "a\"b\\c\n", "ééééééé", "\u{301}x\u{301}y"] {
            for max in 0..12 {
                let mut whole = Bounded::new(max);
                let _ = Val::Str(s).describe_into(ty, &mut whole);
                assert_eq!(
                    show(&model, id, Val::Str(s), max),
                    whole.finish(),
                    "{s:?} cut at {max}"
                );
            }
        }
    }
}
