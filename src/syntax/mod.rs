//! Syntax: the lexical pre-pass, the pest grammar binding and the AST.

pub mod ast;
mod parser;
mod prescan;

use crate::diagnostics::Diagnostic;
use crate::limits::Limits;

/// The result of parsing: the AST and the errors found on the way.
pub(crate) struct Parsed {
    pub(crate) file: ast::File,
    pub(crate) errors: Vec<Diagnostic>,
    /// The text did not follow the grammar (or broke a limit): the AST is
    /// empty and checking it would only add noise.
    pub(crate) fatal: bool,
}

/// Parses `src` into an AST. Errors in literals (bad escapes, oversized
/// strings) leave the AST usable, so that checking can report more errors.
pub(crate) fn parse(src: &str, limits: &Limits) -> Parsed {
    let scanned = match prescan::prescan(src, limits) {
        Ok(s) => s,
        Err(d) => {
            return Parsed {
                file: ast::File {
                    items: Vec::new(),
                    comments: Vec::new(),
                },
                errors: vec![*d],
                fatal: true,
            }
        }
    };
    let mut errors = Vec::new();
    let (items, fatal) = parser::parse_items(src, &scanned.batches, limits, &mut errors);
    Parsed {
        file: ast::File {
            items,
            comments: scanned.comments,
        },
        errors,
        fatal,
    }
}
