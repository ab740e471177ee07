//! # mailpolicy
//!
//! Decides what a mail filter does with a message after a virus scanner
//! looked at it. A site writes its policy in a small rule language; this crate
//! parses it, checks it, lints it against the experts' advice (backscatter,
//! lost mail, fail-open scanners, outbound viruses), and evaluates it over
//! message facts into a [`Decision`]: one disposition (`pass`, `discard`,
//! `bounce`, `reject`, `tempfail`) plus side actions (quarantine, alerts, tags).
//!
//! ```
//! use mailpolicy::{Direction, Disposition, Facts, Policy, Scanner};
//!
//! let policy = Policy::parse(r#"
//!     rule "scanner failed: try later" {
//!         when scanner in [error, timeout]
//!         then tempfail "451 4.7.1 virus scanner unavailable, try again later"
//!     }
//!     rule "every virus is discarded safely" {
//!         when scanner == infected
//!         then discard, quarantine
//!     }
//!     default pass
//! "#)?;
//!
//! let facts = Facts::new()
//!     .direction(Direction::Inbound)
//!     .scanner(Scanner::Infected)
//!     .virus("W32/Sobig.F@MM");
//! let decision = policy.evaluate(&facts);
//! assert_eq!(decision.disposition(), Disposition::Discard);
//! assert_eq!(decision.quarantine(), Some("default"));
//! # Ok::<(), mailpolicy::ParseError>(())
//! ```
//!
//! The crate is pure: no I/O, no global state, no clock, no randomness, and
//! it never panics on any input. See `docs/LANGUAGE.md` for the language and
//! `docs/EMBEDDING.md` for embedding it in a filter.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// pest's generated parser names `alloc` when pest runs without `std`
// (Cargo.toml says why it does).
extern crate alloc;

mod analysis;
mod check;
mod compile;
mod decision;
mod diagnostics;
mod diff;
mod eval;
mod facts;
mod facts_json;
mod facts_limits;
mod fmt;
mod glob;
mod limits;
mod lint;
mod policy;
mod re;
mod scan;
mod scan_parts;
mod syntax;
mod testing;

pub use decision::{Action, AlertTarget, Decision, Disposition, MessageVerdict, Verdict};
pub use diagnostics::{Code, Diagnostic, Severity, Span};
pub use diff::{DiffError, DiffOptions, PolicyDiff, Region};
pub use eval::explain::{CheckTrace, Explanation, RuleTrace};
pub use facts::{
    Direction, FactId, FactKey, FactProvider, FactType, FactValue, Facts, Scanner, BUILTIN_FACTS,
};
pub use facts_json::{FactsError, FactsInput};
pub use facts_limits::FactsLimitError;
pub use fmt::format;
pub use limits::{
    Limits, REGEX_BYTES_PER_SOURCE_BYTE, TEST_WORK_PER_SOURCE_BYTE, UNICODE_BOUNDARY_PASSES,
};
pub use policy::{Mode, ParseError, Policy};
pub use testing::{TestReport, TestResult};

#[doc(hidden)]
pub use syntax::differential as __syntax_differential;
