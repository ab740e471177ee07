//! The decision: one disposition plus side actions, and the per-message verdict.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;

/// Who an `alert` goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlertTarget {
    /// The policy's `admin` addresses.
    Admin,
    /// The envelope sender (beware: viruses forge it).
    Sender,
    /// The envelope recipient this decision is for.
    Recipient,
    /// A literal address.
    Address(String),
}

impl AlertTarget {
    /// `"admin"`, `"sender"`, `"recipient"` or the address.
    pub fn as_str(&self) -> &str {
        match self {
            AlertTarget::Admin => "admin",
            AlertTarget::Sender => "sender",
            AlertTarget::Recipient => "recipient",
            AlertTarget::Address(a) => a,
        }
    }
}

impl Serialize for AlertTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One action of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Deliver the message.
    Pass {
        /// Optional SMTP reply text.
        reply: Option<String>,
    },
    /// Accept and drop the message.
    Discard {
        /// Optional SMTP reply text.
        reply: Option<String>,
    },
    /// Accept, drop, and send the sender a clean DSN (without the original).
    Bounce {
        /// Optional text for the DSN.
        reply: Option<String>,
    },
    /// Refuse with a permanent (5xx) SMTP error.
    Reject {
        /// Optional SMTP reply text.
        reply: Option<String>,
    },
    /// Refuse with a temporary (4xx) SMTP error: the client retries.
    Tempfail {
        /// Optional SMTP reply text.
        reply: Option<String>,
    },
    /// Keep a copy in a quarantine bucket.
    Quarantine {
        /// The bucket; `"default"` when the policy names none.
        bucket: String,
    },
    /// Notify someone.
    Alert {
        /// Who.
        to: AlertTarget,
    },
    /// Tag the subject (e.g. `***UNCHECKED***`).
    Tag {
        /// The tag text.
        text: String,
    },
}

/// The five dispositions, without reply texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Deliver.
    Pass,
    /// Accept and drop.
    Discard,
    /// Accept, drop, send a clean DSN.
    Bounce,
    /// 5xx.
    Reject,
    /// 4xx.
    Tempfail,
}

impl Disposition {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Pass => "pass",
            Disposition::Discard => "discard",
            Disposition::Bounce => "bounce",
            Disposition::Reject => "reject",
            Disposition::Tempfail => "tempfail",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// The disposition, if this action is one, with its reply text.
    pub fn disposition(&self) -> Option<(Disposition, Option<&str>)> {
        let (d, r) = match self {
            Action::Pass { reply } => (Disposition::Pass, reply),
            Action::Discard { reply } => (Disposition::Discard, reply),
            Action::Bounce { reply } => (Disposition::Bounce, reply),
            Action::Reject { reply } => (Disposition::Reject, reply),
            Action::Tempfail { reply } => (Disposition::Tempfail, reply),
            _ => return None,
        };
        Some((d, r.as_deref()))
    }

    /// A disposition action.
    pub fn from_disposition(d: Disposition, reply: Option<String>) -> Action {
        match d {
            Disposition::Pass => Action::Pass { reply },
            Disposition::Discard => Action::Discard { reply },
            Disposition::Bounce => Action::Bounce { reply },
            Disposition::Reject => Action::Reject { reply },
            Disposition::Tempfail => Action::Tempfail { reply },
        }
    }
}

/// What to do with a message for one recipient: the actions of the rule
/// that decided (or of the default), borrowed from the policy.
///
/// Evaluation never allocates: a `Decision` points into the [`crate::Policy`].
///
/// ```
/// use mailpolicy::{Disposition, Facts, Policy, Scanner};
/// let policy = Policy::parse(r#"
///     rule "viruses" { when scanner == infected then discard, quarantine "virus" }
/// "#).unwrap();
/// let d = policy.evaluate(&Facts::new().scanner(Scanner::Infected));
/// assert_eq!(d.disposition(), Disposition::Discard);
/// assert_eq!(d.quarantine(), Some("virus"));
/// assert_eq!(d.rule(), Some("viruses"));
/// assert_eq!(
///     serde_json::to_string(&d).unwrap(),
///     r#"{"disposition":"discard","reply":null,"quarantine":"virus","alerts":[],"tags":[],"rule":"viruses"}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision<'p> {
    pub(crate) actions: &'p [Action],
    pub(crate) rule: Option<&'p str>,
}

/// The disposition used if an action list somehow lacks one (the checker
/// guarantees exactly one, so this is never observed).
const FALLBACK: (Disposition, Option<&str>) = (Disposition::Tempfail, None);

impl<'p> Decision<'p> {
    /// All actions: exactly one disposition plus side actions, in policy order.
    pub fn actions(&self) -> &'p [Action] {
        self.actions
    }

    /// The deciding rule's name; `None` when the default decided.
    pub fn rule(&self) -> Option<&'p str> {
        self.rule
    }

    /// The disposition.
    pub fn disposition(&self) -> Disposition {
        self.disposition_and_reply().0
    }

    /// The disposition's reply text, if the policy gave one.
    pub fn reply(&self) -> Option<&'p str> {
        self.disposition_and_reply().1
    }

    fn disposition_and_reply(&self) -> (Disposition, Option<&'p str>) {
        self.actions
            .iter()
            .find_map(Action::disposition)
            .unwrap_or(FALLBACK)
    }

    /// The quarantine bucket, if the message is quarantined.
    pub fn quarantine(&self) -> Option<&'p str> {
        self.actions.iter().find_map(|a| match a {
            Action::Quarantine { bucket } => Some(bucket.as_str()),
            _ => None,
        })
    }

    /// Who is alerted, in policy order.
    pub fn alerts(&self) -> impl Iterator<Item = &'p AlertTarget> + 'p {
        self.actions.iter().filter_map(|a| match a {
            Action::Alert { to } => Some(to),
            _ => None,
        })
    }

    /// Subject tags, in policy order.
    pub fn tags(&self) -> impl Iterator<Item = &'p str> + 'p {
        self.actions.iter().filter_map(|a| match a {
            Action::Tag { text } => Some(text.as_str()),
            _ => None,
        })
    }
}

impl Serialize for Decision<'_> {
    /// The command line's shape: `{"disposition","reply","quarantine","alerts","tags","rule"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("disposition", &self.disposition())?;
        m.serialize_entry("reply", &self.reply())?;
        m.serialize_entry("quarantine", &self.quarantine())?;
        m.serialize_entry("alerts", &self.alerts().collect::<Vec<_>>())?;
        m.serialize_entry("tags", &self.tags().collect::<Vec<_>>())?;
        m.serialize_entry("rule", &self.rule)?;
        m.end()
    }
}

/// The one SMTP answer for a whole message, from its recipients' decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Accept the message (and handle recipients one by one).
    Accept,
    /// Accept and drop it for everyone.
    Discard,
    /// Refuse it with a 5xx.
    Reject,
    /// Refuse it with a 4xx.
    Tempfail,
}

impl Verdict {
    /// The SMTP reply a filter gives when the policy has no text of its own.
    pub fn default_smtp_reply(self) -> &'static str {
        match self {
            Verdict::Accept => "250 2.0.0 Ok: message accepted",
            Verdict::Discard => "250 2.7.0 Ok: message discarded",
            Verdict::Reject => "554 5.7.1 Message rejected by content policy",
            Verdict::Tempfail => "451 4.7.1 Message deferred, try again later",
        }
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Discard => "discard",
            Verdict::Reject => "reject",
            Verdict::Tempfail => "tempfail",
        }
    }
}

/// A message's verdict with what to do for each recipient after `accept`.
///
/// amavisd-new's reduction: any `tempfail` → tempfail; all `discard` →
/// discard; all `discard`/`reject` with at least one `reject` → reject;
/// otherwise accept — deliver to `pass` recipients, drop the `discard` and
/// `bounce` ones (sending the filter's own clean DSN for `bounce`), and drop
/// `reject` ones with a DSN from the filter as well (the SMTP answer can only
/// be given once).
///
/// ```
/// use mailpolicy::{Facts, MessageVerdict, Policy, Scanner, Verdict};
/// let policy = Policy::parse(r#"
///     rule "infected" { when scanner == infected then discard, quarantine }
/// "#).unwrap();
/// let infected = Facts::new().scanner(Scanner::Infected);
/// let clean = Facts::new().scanner(Scanner::Clean);
/// let decisions = [policy.evaluate(&infected), policy.evaluate(&clean)];
/// let verdict = MessageVerdict::combine(&decisions).unwrap();
/// assert_eq!(verdict.verdict, Verdict::Accept);
/// assert_eq!(verdict.deliver_to, vec![1]);
/// assert_eq!(verdict.drop, vec![0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageVerdict {
    /// The SMTP answer for the message.
    pub verdict: Verdict,
    /// With `accept`: indexes of recipients to deliver to.
    pub deliver_to: Vec<usize>,
    /// With `accept`: indexes of recipients to drop silently (`discard`).
    pub drop: Vec<usize>,
    /// With `accept`: indexes of recipients for which the filter sends its own
    /// clean DSN and drops the copy (`bounce`, and `reject` outvoted by others).
    pub bounce: Vec<usize>,
    /// With `reject` or `tempfail`: the policy's reply text for the SMTP
    /// answer (the first deciding recipient's that has one), if any.
    pub reply: Option<String>,
}

impl MessageVerdict {
    /// Reduces per-recipient decisions to one answer. `None` for no recipients.
    pub fn combine(decisions: &[Decision<'_>]) -> Option<MessageVerdict> {
        if decisions.is_empty() {
            return None;
        }
        let dispositions = || decisions.iter().map(Decision::disposition);
        let verdict = if dispositions().any(|d| d == Disposition::Tempfail) {
            Verdict::Tempfail
        } else if dispositions().all(|d| d == Disposition::Discard) {
            Verdict::Discard
        } else if dispositions().all(|d| matches!(d, Disposition::Discard | Disposition::Reject)) {
            Verdict::Reject
        } else {
            Verdict::Accept
        };
        let wanted = match verdict {
            Verdict::Tempfail => Some(Disposition::Tempfail),
            Verdict::Reject => Some(Disposition::Reject),
            _ => None,
        };
        let reply = decisions
            .iter()
            .filter(|d| Some(d.disposition()) == wanted)
            .find_map(|d| d.reply())
            .map(str::to_owned);
        let mut v = MessageVerdict {
            verdict,
            deliver_to: Vec::new(),
            drop: Vec::new(),
            bounce: Vec::new(),
            reply,
        };
        if verdict == Verdict::Accept {
            for (i, d) in dispositions().enumerate() {
                match d {
                    Disposition::Pass => v.deliver_to.push(i),
                    Disposition::Discard => v.drop.push(i),
                    Disposition::Bounce | Disposition::Reject => v.bounce.push(i),
                    Disposition::Tempfail => {}
                }
            }
        }
        Some(v)
    }
}
