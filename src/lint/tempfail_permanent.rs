//! `tempfail-permanent`: `tempfail` for `infected` or `encrypted` mail, a
//! permanent condition retried until the sender's MTA gives up.

use super::table::{values, ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::TempfailPermanent,
    about: |a: &Actions<'_>| a.is(Disposition::Tempfail),
    asks: &[(FactId::SCANNER, &[values::INFECTED, values::ENCRYPTED])],
    message: |f: &Found<'_>| {
        format!(
            "`{}` mail reaches `tempfail` via {}",
            f.scanner.unwrap_or("infected"),
            f.via
        )
    },
    help: "decide for good (discard and quarantine infected mail; pass encrypted mail with a tag): the condition is permanent, so the sender's MTA retries until it gives up and bounces",
};
