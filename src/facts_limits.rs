//! Facts built in code, checked against the facts limits of [`Limits`].
//!
//! Facts JSON and `NAME=VALUE` assignments are checked as they are read
//! (`facts_json`): a value over [`Limits::max_fact_value_bytes`] or a set
//! over [`Limits::max_set_names`] is refused with its position. Facts built
//! with the [`Facts`] builder have no text and no position, and the builder
//! cannot fail; an embedder that builds them from untrusted input (a
//! scanner's reply, an SMTP session) checks them here before evaluating, so
//! that the per-evaluation cost bound of `docs/LIMITS.md` holds for them too.

use crate::facts::{FactValue, Facts};
use crate::limits::Limits;

/// A fact value built in code that is over one of the facts limits
/// ([`crate::Policy::check_facts`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactsLimitError {
    /// A string, or a set's names together (plus one byte per name, as in
    /// facts JSON), over [`Limits::max_fact_value_bytes`].
    #[error("the value of fact `{name}` is {bytes} bytes, more than the limit of {limit} bytes")]
    ValueBytes {
        /// The fact.
        name: String,
        /// The value's size.
        bytes: usize,
        /// [`Limits::max_fact_value_bytes`].
        limit: usize,
    },
    /// A set with more names than [`Limits::max_set_names`].
    #[error("the set of fact `{name}` has {names} names, more than the limit of {limit} names")]
    SetNames {
        /// The fact.
        name: String,
        /// The names in the set.
        names: usize,
        /// [`Limits::max_set_names`].
        limit: usize,
    },
}

/// Checks every value of `facts` against `limits`; the first value over a
/// limit, in [`Facts::iter`] order, is the error.
pub(crate) fn check(facts: &Facts, limits: &Limits) -> Result<(), FactsLimitError> {
    for (name, value) in facts.iter() {
        let bytes = match value {
            FactValue::Str(s) => s.len(),
            FactValue::Set(names) => {
                if names.len() > limits.max_set_names {
                    return Err(FactsLimitError::SetNames {
                        name: name.to_owned(),
                        names: names.len(),
                        limit: limits.max_set_names,
                    });
                }
                names
                    .iter()
                    .fold(0usize, |n, s| n.saturating_add(s.len() + 1))
            }
            // Fixed size.
            _ => 0,
        };
        if bytes > limits.max_fact_value_bytes {
            return Err(FactsLimitError::ValueBytes {
                name: name.to_owned(),
                bytes,
                limit: limits.max_fact_value_bytes,
            });
        }
    }
    Ok(())
}
