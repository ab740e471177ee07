//! The lexical pre-pass: runs before pest to enforce the size and nesting
//! limits (pest and the AST builder recurse on parentheses) and to collect
//! comments for `fmt`.
//!
//! It knows just enough of the lexical grammar to skip strings, regex
//! literals and comments; everything else is left to the grammar.

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::Limits;
use crate::syntax::ast::Comment;

/// Checks the limits and collects comments. On a limit error the caller
/// stops: the input is not handed to pest.
pub(crate) fn prescan(src: &str, limits: &Limits) -> Result<Vec<Comment>, Box<Diagnostic>> {
    if src.len() > limits.max_source_bytes {
        return Err(Box::new(
            Diagnostic::new(
                Code::Limit,
                src,
                Span::new(limits.max_source_bytes, limits.max_source_bytes),
                format!(
                    "policy is {} bytes, more than the limit of {} bytes",
                    src.len(),
                    limits.max_source_bytes
                ),
            )
            .with_help("split the policy or raise `Limits::max_source_bytes`"),
        ));
    }
    let bytes = src.as_bytes();
    let mut comments = Vec::new();
    let mut depth = 0usize;
    let mut nots = Vec::<usize>::new(); // `not`s pending at each paren depth
    nots.push(0);
    let mut last_word: &str = "";
    let mut code_on_line = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                code_on_line = false;
                i += 1;
            }
            b'#' => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                let text = src[i + 1..end].trim_end_matches('\r').to_owned();
                comments.push(Comment {
                    text,
                    span: Span::new(i, end),
                    trailing: code_on_line,
                });
                i = end;
            }
            b'"' => {
                code_on_line = true;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                last_word = "";
            }
            b'/' if last_word == "matches" => {
                // A regex literal: ends at the first `/` not preceded by `\`.
                code_on_line = true;
                i += 1;
                while i < bytes.len() && bytes[i] != b'/' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'/') {
                        2
                    } else {
                        1
                    };
                }
                i += 1;
                last_word = "";
            }
            b'(' | b')' => {
                code_on_line = true;
                if b == b'(' {
                    depth += 1;
                    nots.push(0);
                } else {
                    depth = depth.saturating_sub(1);
                    if nots.len() > 1 {
                        nots.pop();
                    }
                }
                let total = depth + nots.iter().sum::<usize>();
                if total > limits.max_nesting {
                    return Err(Box::new(nesting_error(src, i, limits)));
                }
                i += 1;
                last_word = "";
            }
            _ if b.is_ascii_alphanumeric() || b == b'_' => {
                code_on_line = true;
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                last_word = &src[start..i];
                match last_word {
                    "not" => {
                        if let Some(n) = nots.last_mut() {
                            *n += 1;
                        }
                        if depth + nots.iter().sum::<usize>() > limits.max_nesting {
                            return Err(Box::new(nesting_error(src, start, limits)));
                        }
                    }
                    // A new condition starts: earlier `not`s are done.
                    "and" | "or" | "when" | "then" | "rule" | "test" => {
                        if let Some(n) = nots.last_mut() {
                            *n = 0;
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    code_on_line = true;
                    last_word = "";
                }
                i += 1;
            }
        }
    }
    Ok(comments)
}

fn nesting_error(src: &str, at: usize, limits: &Limits) -> Diagnostic {
    Diagnostic::new(
        Code::Limit,
        src,
        Span::new(at, at + 1),
        format!(
            "condition nests deeper than the limit of {} levels",
            limits.max_nesting
        ),
    )
    .with_help("flatten the condition: `and`/`or` chains and named lists need no nesting")
}
