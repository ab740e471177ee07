//! Regexes as size-limited dense DFAs.
//!
//! A policy's regexes (and merged glob lists) are compiled ahead of time
//! into full DFAs (`regex-automata`'s dense DFA) with a size limit: a match
//! is then one pass over the text with no allocation and no cache that
//! grows or thrashes while matching (a lazy DFA that gives up falls back to
//! an NFA simulation, O(text × pattern): 50 rules like `[ab]{10000}` on a
//! 64 KB value took minutes). The compiled size is known exactly, so a
//! policy's regexes count against one total budget
//! ([`crate::Limits::max_regex_total_bytes`]).
//!
//! The one construct a dense DFA cannot run on all text is a Unicode word
//! boundary (`\b` without `(?-u)`) on non-ASCII text; such a pattern also
//! keeps an NFA-based regex (within the same size limit, counted too) for
//! the non-ASCII texts it is given: O(text × pattern) there, the pattern
//! being at most the size limit.

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{meta, Input};

/// One compiled regex.
#[derive(Clone)]
pub(crate) struct Re {
    pattern: String,
    case_insensitive: bool,
    dfa: dense::DFA<Vec<u32>>,
    /// For patterns with a Unicode word boundary (see the module docs).
    fallback: Option<meta::Regex>,
    /// Bytes charged to the budget.
    size: usize,
}

impl std::fmt::Debug for Re {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Re").field(&self.pattern).finish()
    }
}

/// Why a regex was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReError {
    /// Not valid regex syntax: `regex`'s own message.
    Syntax(String),
    /// Its DFA would exceed the size limit given.
    TooBig,
}

/// How the policy's regexes are read: Rust `regex` syntax, case-insensitive
/// unless the pattern says otherwise, nested at most 100 deep.
fn syntax_config(case_insensitive: bool) -> syntax::Config {
    syntax::Config::new()
        .case_insensitive(case_insensitive)
        .nest_limit(100)
}

impl Re {
    /// Checks the syntax only.
    pub(crate) fn syntax_only(pattern: &str, case_insensitive: bool) -> Result<(), ReError> {
        syntax::parse_with(pattern, &syntax_config(case_insensitive))
            .map(|_| ())
            .map_err(|e| ReError::Syntax(e.to_string()))
    }

    /// Compiles `pattern` into a DFA of at most `limit` bytes (its NFA and
    /// the work of building it are held to `limit` too).
    pub(crate) fn new(pattern: &str, case_insensitive: bool, limit: usize) -> Result<Re, ReError> {
        let cfg = syntax_config(case_insensitive);
        // Syntax first, for `regex`'s own error messages.
        syntax::parse_with(pattern, &cfg).map_err(|e| ReError::Syntax(e.to_string()))?;
        let build = |unicode_word_boundary: bool| {
            dense::Builder::new()
                .syntax(cfg)
                .thompson(thompson::Config::new().nfa_size_limit(Some(limit)))
                .configure(
                    dense::DFA::config()
                        .start_kind(StartKind::Unanchored)
                        .unicode_word_boundary(unicode_word_boundary)
                        .dfa_size_limit(Some(limit))
                        .determinize_size_limit(Some(limit)),
                )
                .build(pattern)
                .map_err(|_| ReError::TooBig)
        };
        let (dfa, fallback) = match build(false) {
            Ok(dfa) => (dfa, None),
            // Too big (a word boundary is written `\\b` or `\\B`).
            Err(e) if !pattern.contains("\\b") && !pattern.contains("\\B") => return Err(e),
            Err(_) => {
                // Either too big, or a Unicode word boundary: try the latter.
                let dfa = build(true)?;
                let re = meta::Regex::builder()
                    .syntax(cfg)
                    .configure(
                        meta::Config::new()
                            .nfa_size_limit(Some(limit))
                            .onepass_size_limit(Some(limit))
                            .hybrid(false)
                            .dfa(false),
                    )
                    .build(pattern)
                    .map_err(|_| ReError::TooBig)?;
                (dfa, Some(re))
            }
        };
        let size = dfa.memory_usage() + fallback.as_ref().map_or(0, meta::Regex::memory_usage);
        if size > limit.saturating_mul(2) {
            return Err(ReError::TooBig);
        }
        Ok(Re {
            pattern: pattern.to_owned(),
            case_insensitive,
            dfa,
            fallback,
            size,
        })
    }

    /// Whether the regex matches anywhere in `text`: one pass, stopping at
    /// the first match.
    #[inline]
    pub(crate) fn is_match(&self, text: &str) -> bool {
        match self.dfa.try_search_fwd(&Input::new(text).earliest(true)) {
            Ok(m) => m.is_some(),
            // Only a Unicode word boundary on non-ASCII text quits.
            Err(_) => self.fallback.as_ref().is_some_and(|re| re.is_match(text)),
        }
    }

    /// The compiled DFA (unanchored start; with a Unicode word boundary it
    /// quits on non-ASCII bytes, see [`Re::unicode_word_boundary`]). The
    /// linter runs it in its string automata.
    pub(crate) fn dfa(&self) -> &dense::DFA<Vec<u32>> {
        &self.dfa
    }

    /// The pattern's syntax tree, read as it was compiled.
    pub(crate) fn hir(&self) -> Option<regex_syntax::hir::Hir> {
        syntax::parse_with(&self.pattern, &syntax_config(self.case_insensitive)).ok()
    }

    /// Whether the DFA quits on non-ASCII text (a Unicode word boundary).
    pub(crate) fn unicode_word_boundary(&self) -> bool {
        self.fallback.is_some()
    }

    /// Whether it was compiled case-insensitive (the policy's default).
    pub(crate) fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The bytes it counts against the policy's regex budget.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_regex() {
        let cases = [
            ("sobig", "W32/Sobig.F@MM", true),
            ("^w32/", "W32/Sobig", true),
            ("^w32/", "xW32/Sobig", false),
            ("mm$", "W32/Sobig.F@MM", true),
            (r"\bfoo\b", "a foo b", true),
            (r"\bfoo\b", "afoob", false),
            (r"\bfoo\b", "é foo é", true),
            (r"\bfoo\b", "éfooé", false),
            ("(?-i)Foo", "foo", false),
            ("a.c", "a\nc", false),
            ("", "", true),
        ];
        for (p, t, want) in cases {
            let re = Re::new(p, true, 1 << 20).unwrap();
            let reference = regex::RegexBuilder::new(p)
                .case_insensitive(true)
                .build()
                .unwrap();
            assert_eq!(re.is_match(t), want, "{p} on {t}");
            assert_eq!(reference.is_match(t), want, "regex: {p} on {t}");
        }
    }

    #[test]
    #[ignore]
    fn costs() {
        for p in [
            "sobig",
            r"\w+@\w+\.com",
            r"^[a-z0-9._%+-]+@example\.(org|com)$",
            "[ab]{100}",
            "[ab]{300}",
            "[ab]{1000}",
            r"(a|b|c|d|e|f|g|h)*x(a|b){20}",
            r"\bfoo\b",
            r"(?:.*a){20}",
            r"\p{L}{50}",
            ".*.*.*.*=.*",
        ] {
            let t = std::time::Instant::now();
            let r = Re::new(p, true, 1 << 20);
            eprintln!(
                "{p}: {:?} {:?} {:?}",
                r.as_ref().map(|r| r.size()),
                r.as_ref().err(),
                t.elapsed()
            );
        }
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(
            Re::new("[ab]{1000}x", true, 10_000).unwrap_err(),
            ReError::TooBig
        );
        assert!(matches!(
            Re::new("(", true, 1 << 20),
            Err(ReError::Syntax(_))
        ));
        // Its DFA's construction alone would be quadratic in the count.
        assert_eq!(
            Re::new("[ab]{10000}", true, 1 << 20).unwrap_err(),
            ReError::TooBig
        );
        // Big but within the limit: linear to run.
        let re = Re::new("[ab]{200}", true, 1 << 20).unwrap();
        assert!(re.size() <= 2 << 20);
        assert!(!re.is_match(&"ab".repeat(99)));
        assert!(re.is_match(&format!("x{}x", "aB".repeat(100))));
    }
}
