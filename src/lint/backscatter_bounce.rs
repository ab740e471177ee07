//! `backscatter-bounce`: `bounce` can happen for infected mail whose virus
//! forges senders, or may (`forges_sender` unknown counts).

use super::table::{values, ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::BackscatterBounce,
    about: |a: &Actions<'_>| a.is(Disposition::Bounce),
    asks: &[
        (FactId::SCANNER, &[values::INFECTED]),
        (FactId::FORGES_SENDER, &[values::TRUE, values::UNKNOWN]),
    ],
    message: |f: &Found<'_>| {
        let how = match f.forges_sender {
            Some("true") => "whose virus forges senders",
            _ => "whose virus may forge senders (`forges_sender` unknown)",
        };
        format!("infected mail {how} reaches `bounce` via {}", f.via)
    },
    help: "discard and quarantine instead, or guard the bounce with `forges_sender == false`: the DSN goes to the forged sender, an innocent party (backscatter)",
};
