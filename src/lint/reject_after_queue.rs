//! `reject-after-queue`: `reject` of infected mail in `mode after_queue`,
//! where the MTA's DSN carries the virus.

use super::table::{values, ActionLint, Actions, Found};
use crate::check::model::Mode;
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::RejectAfterQueue,
    about: |a: &Actions<'_>| a.is(Disposition::Reject) && a.mode == Mode::AfterQueue,
    asks: &[(FactId::SCANNER, &[values::INFECTED])],
    message: |f: &Found<'_>| {
        format!(
            "infected mail reaches `reject` via {} in `mode after_queue`",
            f.via
        )
    },
    help: "discard and quarantine instead (or `bounce` for non-forging viruses): after the queue the MTA turns a reject into a DSN that carries the infected original to the (forged) sender",
};
