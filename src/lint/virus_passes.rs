//! `virus-passes`: infected mail can reach `pass` (the default included).

use super::table::{values, ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::VirusPasses,
    about: |a: &Actions<'_>| a.is(Disposition::Pass),
    asks: &[(FactId::SCANNER, &[values::INFECTED])],
    message: |f: &Found<'_>| {
        format!(
            "infected{} mail reaches `pass` via {}",
            f.direction_words(),
            f.via
        )
    },
    help: "discard and quarantine infected mail (add a `scanner == infected` rule before this one): a `pass` delivers the virus",
};
