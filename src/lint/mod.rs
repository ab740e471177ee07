//! The linter: the experts' advice about a checked policy.
//!
//! Value lints ("infected mail can reach `pass`") and `unreachable-rule` are
//! decided by the analysis layer ([`crate::analysis`]), not by reading the
//! text: every fact ranges over abstract classes of its values plus
//! *unknown*, strings with exact glob reasoning, and a first-match question
//! ("can this rule decide a message with these values?") is answered by a
//! search whose every "yes" is confirmed by evaluating concrete facts. So
//! a warning always comes with an example that really leads there, and a
//! rule is only called unreachable when no message can reach it. What the
//! work budget cannot settle is named in one `analysis-incomplete` note.
//!
//! Each action lint is one table entry in its own file ([`table`]);
//! [`engine`] asks the questions, `unused` and `untested` read declarations
//! and tests.

mod alert_null_sender;
mod backscatter_alert;
mod backscatter_bounce;
mod engine;
mod fail_open;
mod outbound_virus_escapes;
mod reject_after_queue;
mod silent_discard;
mod table;
mod tempfail_permanent;
#[cfg(test)]
mod tests;
mod untested;
mod unused;
mod virus_passes;

use crate::check::model::Model;
use crate::compile::Compiled;
use crate::diagnostics::Diagnostic;
use crate::limits::Limits;

/// All warnings (and notes) for a checked policy, honoring `allow(...)`,
/// sorted by position. `compiled` is the model's evaluation form.
pub(crate) fn lint(
    model: &Model,
    source: &str,
    compiled: &Compiled,
    limits: &Limits,
    coverage: bool,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    unused::run(model, source, &mut out);
    if coverage {
        untested::run(model, source, compiled, &mut out);
    }
    let budget = engine::budget(source, limits.lint_work_per_mb);
    out.extend(engine::run(model, source, compiled, budget));
    out.retain(|d| !model.file_allows.contains(&d.code));
    out.sort_by_key(|d| (d.span.start, d.code));
    out
}
