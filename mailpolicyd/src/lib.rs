//! # mailpolicyd
//!
//! The filter that carries out a [`mailpolicy`] policy: it scans each
//! message with clamd, evaluates the policy once per recipient, and does
//! what the decision says — reject, tempfail, discard, per-recipient
//! removal, the filter's own clean DSN, quarantine with release, alerts,
//! subject tags — logging one JSON line per message.
//!
//! The core ([`filter::Filter`] with [`config`], [`clamd`], [`quarantine`],
//! [`notify`], [`decision_log`]) knows nothing of the front ends; the
//! milter front end ([`milter`]) drives it before the queue, the SMTP
//! content filter ([`smtp`]) after the queue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clamd;
pub mod config;
pub mod decision_log;
pub mod filter;
pub mod logfile;
pub mod message;
pub mod milter;
pub mod notify;
pub mod quarantine;
pub mod run;
pub mod sanitize;
pub mod smtp;
