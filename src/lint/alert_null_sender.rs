//! `alert-null-sender`: `alert sender` or `bounce` with the null sender `<>`.

use super::table::{ActionLint, Actions, Found, EMPTY_STRING};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::AlertNullSender,
    about: |a: &Actions<'_>| a.alerts_sender() || a.is(Disposition::Bounce),
    asks: &[(FactId::SENDER, &[EMPTY_STRING])],
    message: |f: &Found<'_>| {
        let what = if f.actions.alerts_sender() {
            "alert sender"
        } else {
            "bounce"
        };
        format!(
            "mail with the null sender `<>` reaches `{what}` via {}",
            f.via
        )
    },
    help: "guard it with `sender != \"\"`: the null sender marks bounces and notices themselves, and nothing may be sent back to it (RFC 5321), so the notice is lost or loops",
};
