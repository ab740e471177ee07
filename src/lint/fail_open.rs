//! `fail-open`: a scanner `error`/`timeout` result can reach `pass`, or
//! `encrypted` mail can reach a `pass` with neither a `tag` nor an `alert`.

use super::table::{values, ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const SCANNER_FAILURE: ActionLint = ActionLint {
    code: Code::FailOpen,
    about: |a: &Actions<'_>| a.is(Disposition::Pass),
    asks: &[(FactId::SCANNER, &[values::ERROR, values::TIMEOUT])],
    message: |f: &Found<'_>| {
        format!(
            "a scanner `{}` result reaches `pass` via {}: unscanned mail is delivered",
            f.scanner.unwrap_or("error"),
            f.via
        )
    },
    help: "answer `tempfail` when the scanner fails or times out, so the client retries later: passing unscanned mail lets viruses through",
};

pub(crate) const UNMARKED_ENCRYPTED: ActionLint = ActionLint {
    code: Code::FailOpen,
    about: |a: &Actions<'_>| a.is(Disposition::Pass) && !a.marks(),
    asks: &[(FactId::SCANNER, &[values::ENCRYPTED])],
    message: |f: &Found<'_>| {
        format!(
            "unscannable (`encrypted`) mail reaches `pass` via {} with neither a `tag` nor an `alert`",
            f.via
        )
    },
    help: "add a `tag` (e.g. \"***UNCHECKED***\") or an `alert` to this `pass`: unscannable mail may hide a virus, so deliver it only marked",
};
