//! The linter: the experts' advice about a checked policy.
//!
//! Value lints ("infected mail can reach `pass`") and `unreachable-rule` are
//! decided by a sound analysis, not by reading the text: every fact ranges
//! over abstract classes of its values plus *unknown*
//! ([`crate::analysis::classes`]), and a search ([`crate::analysis::search`]) asks "is there an assignment under which this rule
//! decides (every earlier condition not true, this one true) and the facts
//! have these values?" with the evaluator's Kleene semantics.
//!
//! The abstraction over-approximates the messages that exist, so a rule is
//! only called unreachable when no message can reach it, and a value lint is
//! never missed. When a query exceeds its work budget the linter falls back
//! conservatively: it skips `unreachable-rule` and judges value lints from
//! the rule's own condition alone.

mod rules;

use crate::diagnostics::Diagnostic;
use crate::Policy;

/// All warnings for `policy`, honoring `allow(...)`, sorted by position.
pub(crate) fn lint(policy: &Policy, coverage: bool) -> Vec<Diagnostic> {
    let mut out = rules::run(policy, coverage);
    out.sort_by_key(|d| (d.span.start, d.code));
    out
}
