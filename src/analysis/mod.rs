//! The analysis layer: what the linter, the compiler and the what-if tools
//! know about conditions without evaluating them on one message.
//!
//! - [`truth`]: Kleene's three-valued logic (the evaluators' `and`/`or` and
//!   sets of truth values for abstract evaluation);
//! - [`classes`]: every fact's values cut into finitely many classes on which
//!   each condition leaf is constant, plus *unknown*, and the conditions
//!   compiled over them;
//! - [`search`]: "is there an assignment of classes under which these
//!   conditions are true / not true?", a small DPLL search with a work budget.
//!
//! The abstraction over-approximates the messages that exist, so "no
//! assignment" is a proof; an assignment found is a candidate that callers
//! confirm by evaluating concrete facts.

pub(crate) mod classes;
pub(crate) mod decide;
pub(crate) mod ips;
pub(crate) mod numbers;
pub(crate) mod search;
pub(crate) mod strings;
pub(crate) mod truth;
