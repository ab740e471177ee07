//! The linter: the experts' advice about a checked policy.

use crate::diagnostics::Diagnostic;
use crate::Policy;

/// All warnings for `policy`, honoring `allow(...)`.
pub(crate) fn lint(_policy: &Policy, _coverage: bool) -> Vec<Diagnostic> {
    Vec::new()
}
