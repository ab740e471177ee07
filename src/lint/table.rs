//! The action lints as a table: each lint is one entry (in its own file)
//! saying which action lists it is about, which fact values it asks about,
//! and how to word the warning. The driver ([`super::engine`]) asks the
//! analysis, for every rule and the default whose actions an entry is about,
//! whether that item can decide a message with those fact values; each
//! confirmed answer is a warning with its example. Whether a rule needs any
//! value question at all is read from the same table, so the two cannot
//! drift apart.

use crate::check::model::Mode;
use crate::decision::{Action, AlertTarget, Disposition};
use crate::diagnostics::Code;
use crate::facts::FactId;

/// The parts of an action list the lints look at.
pub(crate) struct Actions<'a> {
    pub(crate) disposition: Option<Disposition>,
    pub(crate) actions: &'a [Action],
    pub(crate) mode: Mode,
}

impl Actions<'_> {
    pub(crate) fn quarantines(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Quarantine { .. }))
    }

    pub(crate) fn alerts_sender(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a,
                Action::Alert {
                    to: AlertTarget::Sender
                }
            )
        })
    }

    /// A `tag` or an `alert`: the mail is marked.
    pub(crate) fn marks(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Tag { .. } | Action::Alert { .. }))
    }

    pub(crate) fn is(&self, d: Disposition) -> bool {
        self.disposition == Some(d)
    }
}

/// What a warning's message may say about the example that triggered it.
pub(crate) struct Found<'a> {
    /// `rule "NAME"`, `the default` or `the implicit default (`pass`)`.
    pub(crate) via: &'a str,
    /// The example's value of each built-in enum/bool fact (name), if known.
    pub(crate) direction: Option<&'a str>,
    pub(crate) scanner: Option<&'a str>,
    pub(crate) forges_sender: Option<&'a str>,
    /// The action list's disposition.
    pub(crate) disposition: &'a str,
    pub(crate) actions: &'a Actions<'a>,
}

impl Found<'_> {
    /// ` `outbound`` when the example knows the direction.
    pub(crate) fn direction_words(&self) -> String {
        match self.direction {
            Some(d) => format!(" `{d}`"),
            None => String::new(),
        }
    }
}

/// One lint about an action list.
pub(crate) struct ActionLint {
    pub(crate) code: Code,
    /// Whether it is about this action list.
    pub(crate) about: fn(&Actions<'_>) -> bool,
    /// The fact values it asks about: every listed fact has one of its
    /// values (enum/bool value indexes; [`EMPTY_STRING`] for the empty string).
    pub(crate) asks: &'static [(FactId, &'static [u32])],
    pub(crate) message: fn(&Found<'_>) -> String,
    pub(crate) help: &'static str,
}

/// In [`ActionLint::asks`]: the empty string's class.
pub(crate) const EMPTY_STRING: u32 = u32::MAX - 1;

/// Value indexes of the built-in enums.
pub(crate) mod values {
    pub(crate) const INFECTED: u32 = 1;
    pub(crate) const ENCRYPTED: u32 = 2;
    pub(crate) const ERROR: u32 = 3;
    pub(crate) const TIMEOUT: u32 = 4;
    pub(crate) const OUTBOUND: u32 = 1;
    pub(crate) const INTERNAL: u32 = 2;
    pub(crate) const TRUE: u32 = 1;
    /// The index of *unknown* is resolved per fact by the driver.
    pub(crate) const UNKNOWN: u32 = u32::MAX - 2;
}

/// Every action lint, in the order they are asked (for one item, a code
/// already reported is not asked again).
pub(crate) const ACTION_LINTS: &[&ActionLint] = &[
    &super::silent_discard::LINT,
    &super::virus_passes::LINT,
    &super::fail_open::SCANNER_FAILURE,
    &super::fail_open::UNMARKED_ENCRYPTED,
    &super::outbound_virus_escapes::LINT,
    &super::backscatter_alert::LINT,
    &super::backscatter_bounce::LINT,
    &super::reject_after_queue::LINT,
    &super::tempfail_permanent::LINT,
    &super::alert_null_sender::LINT,
];
