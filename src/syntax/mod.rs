//! Syntax: the lexical pre-pass, the pest grammar binding and the AST.

pub mod ast;
mod fast;
mod parser;
mod prescan;

use crate::diagnostics::Diagnostic;
use crate::limits::Limits;

/// The result of parsing: the AST and the errors found on the way.
pub(crate) struct Parsed<'s> {
    pub(crate) file: ast::File<'s>,
    pub(crate) errors: Vec<Diagnostic>,
    /// The text did not follow the grammar (or broke a limit): the AST is
    /// empty and checking it would only add noise.
    pub(crate) fatal: bool,
}

/// Parses `src` into an AST. Errors in literals (bad escapes, oversized
/// strings) leave the AST usable, so that checking can report more errors.
pub(crate) fn parse<'s>(src: &'s str, limits: &Limits) -> Parsed<'s> {
    parse_with(src, limits, true)
}

/// [`parse`], with the fast path for common items (`fast`) or pest alone.
fn parse_with<'s>(src: &'s str, limits: &Limits, fast: bool) -> Parsed<'s> {
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
    let (items, fatal) = if fast {
        parser::parse_items(src, &scanned.batches, scanned.items, limits, &mut errors)
    } else {
        parser::parse_items_with(
            src,
            &scanned.batches,
            scanned.items,
            limits,
            &mut errors,
            false,
        )
    };
    Parsed {
        file: ast::File {
            items,
            comments: scanned.comments,
        },
        errors,
        fatal,
    }
}

/// The differential check of the fast path (tests and fuzzing only): `src`
/// parsed with the fast path and with pest alone must give the same AST,
/// diagnostics and verdict. `Ok` holds how many items there are and how many
/// of them the fast path read itself (it stops at the first item of a batch
/// it leaves to pest, so this is a lower bound).
#[doc(hidden)]
pub fn differential(src: &str) -> Result<(usize, usize), String> {
    let limits = Limits::default();
    let fast = parse_with(src, &limits, true);
    let pest = parse_with(src, &limits, false);
    if fast.fatal != pest.fatal || fast.errors != pest.errors {
        return Err(format!(
            "diagnostics differ\nfast path: fatal {} {:#?}\npest only: fatal {} {:#?}",
            fast.fatal, fast.errors, pest.fatal, pest.errors
        ));
    }
    if fast.file != pest.file {
        let at = fast
            .file
            .items
            .iter()
            .zip(&pest.file.items)
            .position(|(a, b)| a != b);
        return Err(match at {
            Some(i) => format!(
                "item {i} differs\nfast path: {:#?}\npest only: {:#?}",
                fast.file.items[i], pest.file.items[i]
            ),
            None => format!(
                "{} items with the fast path, {} with pest only",
                fast.file.items.len(),
                pest.file.items.len()
            ),
        });
    }
    let mut read = 0;
    if let Ok(scanned) = prescan::prescan(src, &limits) {
        for &(start, end) in &scanned.batches {
            let mut items = Vec::new();
            let mut previous = 0;
            fast::items(src, start, end, &limits, &mut items, &mut previous);
            read += items.len();
        }
    }
    Ok((pest.file.items.len(), read))
}
