//! `outbound-virus-escapes`: outbound or internal infected mail can leave
//! (`pass`, `bounce`, `reject`). `open_relay` is not outbound.

use super::table::{values, ActionLint, Actions, Found};
use crate::decision::Disposition;
use crate::diagnostics::Code;
use crate::facts::FactId;

pub(crate) const LINT: ActionLint = ActionLint {
    code: Code::OutboundVirusEscapes,
    about: |a: &Actions<'_>| {
        a.is(Disposition::Pass) || a.is(Disposition::Bounce) || a.is(Disposition::Reject)
    },
    asks: &[
        (FactId::SCANNER, &[values::INFECTED]),
        (FactId::DIRECTION, &[values::OUTBOUND, values::INTERNAL]),
    ],
    message: |f: &Found<'_>| {
        format!(
            "infected `{}` mail reaches `{}` via {}: the virus leaves the site",
            f.direction.unwrap_or("outbound"),
            f.disposition,
            f.via
        )
    },
    help: "discard and quarantine outbound and internal infected mail and `alert admin`: a site must emit no viruses, and a pass, bounce or reject sends the virus (or a DSN carrying it) on",
};
