//! The lexical pre-pass: runs before pest to enforce the size and nesting
//! limits (pest and the AST builder recurse on parentheses) and to collect
//! comments for `fmt`.
//!
//! It knows just enough of the lexical grammar to skip strings, regex
//! literals and comments; everything else is left to the grammar.
//!
//! It also bounds pest's memory before pest runs. The parser reads one
//! top-level item at a time, and pest keeps every token pair of the item in
//! one queue until the item is built; the pre-pass cuts the text into
//! segments that each hold whole items (a segment ends where a bracket
//! opened at the top level closes, or before an item keyword that starts a
//! line at the top level), counts an upper bound of the token pairs each
//! can produce (see [`PairCount`]), and refuses the policy with a `limit`
//! error at the densest segment when its queue could pass the budget
//! ([`queue_budget`]).

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::Limits;
use crate::syntax::ast::Comment;

/// What the pre-pass found: the comments, and where pest may be run on
/// whole items at once.
pub(crate) struct Prescanned<'s> {
    /// The comments, in order.
    pub(crate) comments: Vec<Comment<'s>>,
    /// Consecutive ranges of the text covering it all, each cut between two
    /// top-level items (when the text parses) and holding at most
    /// [`BATCH_PAIRS`] token pairs unless a single segment holds more.
    pub(crate) batches: Vec<(usize, usize)>,
    /// The item keywords that start a line at the top level: about how
    /// many items there are (the parser reserves room for them, within
    /// one per 8 bytes of text).
    pub(crate) items: usize,
}

/// Checks the limits and collects comments. On a limit error the caller
/// stops: the input is not handed to pest.
pub(crate) fn prescan<'s>(
    src: &'s str,
    limits: &Limits,
) -> Result<Prescanned<'s>, Box<Diagnostic>> {
    prescan_with_budget(src, limits, queue_budget(src.len()))
}

/// [`prescan`] with the token-pair budget given.
fn prescan_with_budget<'s>(
    src: &'s str,
    limits: &Limits,
    budget: usize,
) -> Result<Prescanned<'s>, Box<Diagnostic>> {
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
    let mut pairs = PairCount::new();
    let mut comments = Vec::new();
    let mut depth = 0usize;
    let mut nots = Vec::<usize>::new(); // `not`s pending at each paren depth
    nots.push(0);
    // The last token was the word `matches`: a `/` starts a regex.
    let mut after_matches = false;
    let mut code_on_line = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                code_on_line = false;
                i += 1;
            }
            b'#' => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                let text = src[i + 1..end].trim_end_matches('\r');
                comments.push(Comment {
                    text,
                    span: Span::new(i, end),
                    trailing: code_on_line,
                });
                i = end;
            }
            b'"' => {
                code_on_line = true;
                let start = i;
                let mut escapes = 0;
                i += 1;
                // To the closing quote, over escapes (`\"` included).
                while let Some(n) = memchr::memchr2(b'"', b'\\', bytes.get(i..).unwrap_or_default())
                {
                    i += n;
                    if bytes.get(i) == Some(&b'"') {
                        break;
                    }
                    escapes += 1;
                    i += 2;
                }
                i = i.min(bytes.len()) + 1;
                after_matches = false;
                pairs.string(start, escapes);
            }
            b'/' if after_matches => {
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
                after_matches = false;
                pairs.unit(2, false);
            }
            b'(' | b')' => {
                code_on_line = true;
                pairs.bracket(i, b);
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
                after_matches = false;
            }
            _ if is_word_byte(b) => {
                let first_on_line = !code_on_line;
                code_on_line = true;
                let start = i;
                while bytes.get(i).is_some_and(|&c| is_word_byte(c)) {
                    i += 1;
                }
                let word = bytes.get(start..i).unwrap_or_default();
                after_matches = false;
                if b.is_ascii_digit() {
                    // A number or an address (one token): `10.1.2.0/24`, `2.5e3`.
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric()
                            || matches!(bytes[i], b'.' | b':' | b'/'))
                    {
                        i += 1;
                    }
                    pairs.unit(1, false);
                    continue;
                }
                let kind = classify(word);
                pairs.word(start, kind, first_on_line);
                match kind {
                    Word::Matches => after_matches = true,
                    Word::Not => {
                        if let Some(n) = nots.last_mut() {
                            *n += 1;
                        }
                        if depth + nots.iter().sum::<usize>() > limits.max_nesting {
                            return Err(Box::new(nesting_error(src, start, limits)));
                        }
                    }
                    // A new condition starts: earlier `not`s are done.
                    Word::AndOr | Word::Clause | Word::Item { resets: true, .. } => {
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
                    after_matches = false;
                    pairs.punct(i, b);
                }
                i += 1;
            }
        }
    }
    pairs.end(src.len());
    if pairs.densest.pairs > budget {
        let at = pairs.densest.start;
        return Err(Box::new(
            Diagnostic::new(
                Code::Limit,
                src,
                Span::new(at, (at + 1).min(src.len())),
                format!(
                    "the item here has too many grammar tokens to parse: up to {} token pairs \
                     before byte {}, more than the {budget} allowed for a policy of {} bytes",
                    pairs.densest.pairs,
                    pairs.densest.end,
                    src.len()
                ),
            )
            .with_help(
                "split the condition over several rules or use named lists: \
                 parsing keeps every token of an item until the item is read",
            ),
        ));
    }
    Ok(Prescanned {
        comments,
        batches: pairs.batches,
        items: pairs.items.min(src.len() / 8),
    })
}

/// The token pairs pest is given at once when the items are many and small
/// (one `parse` call per batch instead of one per item: each call sets up
/// its own state and queue). 10 MB of queue at most.
pub(crate) const BATCH_PAIRS: usize = 1 << 16;

/// Bytes of pest's queue per token pair: two 40-byte tokens, and up to twice
/// that while the queue (a `Vec`) grows by doubling.
const QUEUE_BYTES_PER_PAIR: usize = 160;

/// The most token pairs one segment may produce: half the SPEC's memory bound
/// for a policy of `len` bytes (100 bytes per byte, and 256 MB below 1 MB),
/// the other half being for the AST and what follows.
pub(crate) fn queue_budget(len: usize) -> usize {
    let bound = if len < 1_000_000 {
        256_000_000
    } else {
        len.saturating_mul(100)
    };
    bound / 2 / QUEUE_BYTES_PER_PAIR
}

/// A segment of the text and the most token pairs it can produce.
#[derive(Clone, Copy, Default)]
struct Segment {
    start: usize,
    end: usize,
    pairs: usize,
}

/// Counts, per segment, an upper bound of the token pairs pest produces for
/// it: each lexical unit is charged the most pairs the grammar makes for it
/// anywhere (`tests/cost.rs` checks the bound against pest's real queue):
/// - a name: 2 (`not_expr` and `ident` for a bare fact; a comparison's
///   `comparison` pair is charged to its operator); `and`, `or`, `not`: 1;
///   an item keyword, `when`, `then`, `any`, `all`, `known`, a disposition,
///   `quarantine`, `tag`: 3 (e.g. `one_item`, `rule_item`, `kw_rule`; `then`
///   also opens `actions`); `alert`: 4 (its `alert_target`);
/// - a string or regex: 2, plus one per escape; a number or address: 1;
/// - an operator character (`=`, `!`, `<`, `>`): 3 (`comparison`,
///   `cmp_tail`, `cmp_op`); `:`: 2 (`fact_type` and the type's pair);
/// - `(`: 2 (`paren` and its operand's `not_expr`); `[`: 1; `}`: 1; `)` and
///   `]`: 1 when they close a top-level bracket (`enum(...)`, `allow(...)`,
///   `[string]`), else 0 (matched behind `&` in conditions and lists);
/// - inside `[...]`, names are values: 1.
struct PairCount {
    /// The open brackets (`(`, `[`, `{`).
    open: Vec<u8>,
    current: Segment,
    densest: Segment,
    /// The batches closed so far, and the one being filled.
    batches: Vec<(usize, usize)>,
    batch: Segment,
    /// The previous word or punctuation was `alert`, `fact`, `mode`,
    /// `list`, `:` or `=`: an item keyword here is a name, not a new item.
    names_next: bool,
    /// The item keywords that started a segment.
    items: usize,
}

impl PairCount {
    fn new() -> Self {
        PairCount {
            open: Vec::new(),
            current: Segment::default(),
            densest: Segment::default(),
            batches: Vec::new(),
            batch: Segment::default(),
            names_next: false,
            items: 0,
        }
    }

    fn in_list(&self) -> bool {
        self.open.last() == Some(&b'[')
    }

    /// A unit of `pairs` token pairs; `names_next`: a name follows it.
    fn unit(&mut self, pairs: usize, names_next: bool) {
        self.current.pairs += pairs;
        self.names_next = names_next;
    }

    /// Ends the current segment before `at`.
    fn cut(&mut self, at: usize) {
        self.current.end = at;
        if self.current.pairs > self.densest.pairs {
            self.densest = self.current;
        }
        // The segment joins the batch, or starts the next one.
        if self.batch.pairs > 0 && self.batch.pairs + self.current.pairs > BATCH_PAIRS {
            self.batches.push((self.batch.start, self.batch.end));
            self.batch = self.current;
        } else {
            self.batch.end = at;
            self.batch.pairs += self.current.pairs;
        }
        self.current = Segment {
            start: at,
            end: at,
            pairs: 0,
        };
    }

    fn word(&mut self, at: usize, kind: Word, first_on_line: bool) {
        let item_keyword = matches!(kind, Word::Item { .. });
        if self.open.is_empty() && first_on_line && item_keyword && !self.names_next {
            self.cut(at);
            self.items += 1;
        }
        let pairs = if self.in_list() {
            1
        } else {
            match kind {
                Word::AndOr | Word::Not => 1,
                Word::Alert => 4,
                Word::Item { .. } | Word::Clause | Word::Heavy => 3,
                Word::Matches | Word::Other => 2,
            }
        };
        let names_next = matches!(
            kind,
            Word::Alert
                | Word::Item {
                    names_next: true,
                    ..
                }
        );
        self.unit(pairs, names_next);
    }

    fn string(&mut self, _at: usize, escapes: usize) {
        self.unit(2 + escapes, false);
    }

    fn bracket(&mut self, at: usize, b: u8) {
        match b {
            b'(' | b'[' | b'{' => {
                self.open.push(b);
                let pairs = match b {
                    b'(' => 2,
                    b'[' => 1,
                    _ => 0,
                };
                self.unit(pairs, false);
            }
            _ => {
                let top_level = self.open.len() <= 1;
                self.open.pop();
                let pairs = usize::from(b == b'}' || top_level);
                self.unit(pairs, false);
                // A closer at the top level (or a stray one) ends a segment.
                if top_level {
                    self.cut(at + 1);
                }
            }
        }
    }

    fn punct(&mut self, at: usize, b: u8) {
        match b {
            b'[' | b']' | b'{' | b'}' => self.bracket(at, b),
            b'=' => self.unit(3, true),
            b'!' | b'<' | b'>' => self.unit(3, false),
            b':' => self.unit(2, true),
            _ => self.unit(0, false),
        }
    }

    fn end(&mut self, len: usize) {
        self.cut(len);
        self.batches.push((self.batch.start, len));
    }
}

/// Bytes of words and numbers: ASCII letters, digits and `_`.
static WORD_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

#[inline]
pub(crate) fn is_word_byte(b: u8) -> bool {
    WORD_BYTES[b as usize]
}

/// What the pre-pass needs to know of a word.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    /// A keyword that starts a top-level item; `resets`: `rule` and `test`
    /// also start a new condition; `names_next`: a name follows (`fact`,
    /// `mode`, `list`).
    Item {
        resets: bool,
        names_next: bool,
    },
    /// `and`, `or`: a new condition starts.
    AndOr,
    Not,
    /// `when`, `then`: a new condition starts.
    Clause,
    Alert,
    /// `any`, `all`, `known`, the dispositions, `quarantine`, `tag`.
    Heavy,
    /// `matches`: a `/` after it starts a regex literal.
    Matches,
    Other,
}

/// Sorts a word into its [`Word`] kind: one match on its bytes (the
/// compiler dispatches on the length first), instead of a string
/// comparison per keyword list.
fn classify(word: &[u8]) -> Word {
    match word {
        b"rule" | b"test" => Word::Item {
            resets: true,
            names_next: false,
        },
        b"fact" | b"mode" | b"list" => Word::Item {
            resets: false,
            names_next: true,
        },
        b"policy" | b"admin" | b"allow" | b"default" => Word::Item {
            resets: false,
            names_next: false,
        },
        b"and" | b"or" => Word::AndOr,
        b"not" => Word::Not,
        b"when" | b"then" => Word::Clause,
        b"alert" => Word::Alert,
        b"any" | b"all" | b"known" | b"pass" | b"discard" | b"bounce" | b"reject" | b"tempfail"
        | b"quarantine" | b"tag" => Word::Heavy,
        b"matches" => Word::Matches,
        _ => Word::Other,
    }
}

/// The keywords that start a top-level item.
pub(crate) const ITEM_KEYWORDS: [&str; 9] = [
    "policy", "mode", "admin", "fact", "list", "allow", "rule", "default", "test",
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parser::item_pairs;

    /// The pre-pass's count for the densest segment of `src`.
    fn estimate(src: &str) -> usize {
        let limits = Limits {
            max_source_bytes: usize::MAX,
            max_nesting: usize::MAX,
            ..Limits::default()
        };
        let mut big = String::with_capacity(src.len() + 1);
        big.push_str(src);
        // The count itself, without the refusal: a budget of zero refuses
        // every segment and reports the densest one's count.
        match prescan_with_budget(&big, &limits, 0) {
            Err(d) => d
                .message
                .split("up to ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            Ok(_) => 0,
        }
    }

    /// Every item of every policy the tests ship, and the token-dense
    /// shapes: the pre-pass's count bounds pest's pairs for the item.
    #[test]
    fn the_count_bounds_the_pairs_pest_keeps() {
        let mut sources = Vec::new();
        for dir in [
            "tests/corpus/valid",
            "tests/fixtures",
            "tests/fmt",
            "tests/lint_fixtures",
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "policy") {
                    sources.push(std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        assert!(sources.len() > 10, "{} policies", sources.len());
        sources.push(
            "fact a: bool\nrule \"r\" { when ((a)) or ((a))or((a)) and not (a) then reject }\n"
                .into(),
        );
        sources.push("rule \"r\" { when size < 1 or size>=2 or any virus matches \"x\\\\\" then tag \"\\\"\", alert \"a@b\" }\n".into());
        sources.push("default alert admin, tag \"x\", quarantine \"q\", pass \"p\"\n".into());
        sources.push("fact e: enum(a, b, c)\nfact s: [string]\nlist l = [a, 1, 1.5, 10.0.0.0/8, ::1, \"x\", /r/]\n".into());
        sources.push("test \"t\" { given s = [\"a\"], e = a expect rule \"r\" expect default expect discard }\n".into());
        sources.push("rule \"r\" { when known a and all s in l and client_ip in 10.0.0.0/8 and not true then pass }\n".into());
        let mut items = 0;
        for src in &sources {
            for (start, end, pairs) in item_pairs(src) {
                let text = &src[start..end];
                let est = estimate(text);
                assert!(est >= pairs, "{pairs} pairs, counted {est}: {text}");
                items += 1;
            }
        }
        assert!(items > 50, "{items} items");
    }

    #[test]
    fn a_dense_item_is_refused_where_it_starts() {
        let mut src = String::from("fact a: bool\nrule \"r\" { when (a)");
        while src.len() < 2_000_000 {
            src.push_str(" or (a)");
        }
        src.push_str(" then reject }\n");
        let Err(d) = prescan(&src, &Limits::default()) else {
            panic!("not refused");
        };
        assert_eq!(d.code, Code::Limit);
        assert_eq!(d.span.start, 13);
        // Many small items of the same density pass: each is its own segment.
        let rules: String = (0..20_000)
            .map(|i| format!("rule \"r{i}\" {{ when (a) or (a) or (a) then reject }}\n"))
            .collect();
        assert!(prescan(&rules, &Limits::default()).is_ok());
    }
}
