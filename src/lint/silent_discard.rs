//! `silent-discard`: `discard` without `quarantine` loses the mail for good.

use super::table::{ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::SilentDiscard,
    about: |a: &Actions<'_>| a.is(Disposition::Discard) && !a.quarantines(),
    asks: &[],
    message: |f: &Found<'_>| format!("{} discards mail without `quarantine`", f.via),
    help: "add `quarantine` so the recipient can still review and rescue the message: a bare `discard` loses mail for good",
};
