//! `backscatter-alert`: `alert sender` can happen for infected mail.

use super::table::{values, ActionLint, Actions, Found};
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::BackscatterAlert,
    about: |a: &Actions<'_>| a.alerts_sender(),
    asks: &[(FactId::SCANNER, &[values::INFECTED])],
    message: |f: &Found<'_>| {
        format!(
            "infected{} mail reaches `alert sender` via {}",
            f.direction_words(),
            f.via
        )
    },
    help: "alert the admin or the recipient instead: mass-mailing viruses forge the envelope sender, so the notice reaches an innocent party (backscatter)",
};
