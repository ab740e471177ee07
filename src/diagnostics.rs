//! Diagnostics: errors and warnings with a code, a place and a help line.

use serde::Serialize;
use std::fmt;

/// A byte range in the policy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Information about the check itself (e.g. an analysis that did not
    /// finish): neither a problem with the policy nor advice.
    Note,
    /// Advice: the policy works, but breaks the experts' advice.
    Warning,
    /// The policy cannot be used.
    Error,
}

impl Severity {
    /// `"error"`, `"warning"` or `"note"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( #[doc = $doc:literal] $variant:ident = $text:literal, $sev:ident; )*) => {
        /// Every diagnostic's stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( #[doc = $doc] $variant, )*
        }

        impl Code {
            /// All codes.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The kebab-case code, e.g. `silent-discard`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// Whether it is an error, a warning or a note.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// What the code is about, in one sentence (its doc comment), e.g.
            /// for `silent-discard`: "`discard` without `quarantine`."
            pub fn description(self) -> &'static str {
                match self { $(Code::$variant => $doc.trim_ascii(),)* }
            }

            /// The code for a kebab-case name.
            pub fn from_name(name: &str) -> Option<Code> {
                match name { $($text => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    /// The text does not follow the grammar.
    Syntax = "syntax", Error;
    /// A fact name that is neither built in nor declared.
    UnknownFact = "unknown-fact", Error;
    /// A value or operator that does not fit the fact's type.
    TypeMismatch = "type-mismatch", Error;
    /// An enum value the fact does not have.
    UnknownEnumValue = "unknown-enum-value", Error;
    /// A malformed IP address or CIDR.
    InvalidCidr = "invalid-cidr", Error;
    /// A malformed glob.
    InvalidGlob = "invalid-glob", Error;
    /// A malformed or oversized regex.
    InvalidRegex = "invalid-regex", Error;
    /// A string escape other than `\"`, `\\`, `\n`, `\t`, `\u{HEX}`.
    InvalidEscape = "invalid-escape", Error;
    /// A list name that is not declared.
    UndefinedList = "undefined-list", Error;
    /// A list declared twice.
    DuplicateList = "duplicate-list", Error;
    /// Two rules with the same name.
    DuplicateRule = "duplicate-rule", Error;
    /// An action list without exactly one disposition.
    DispositionCount = "disposition-count", Error;
    /// A second `quarantine` in one action list.
    DuplicateQuarantine = "duplicate-quarantine", Error;
    /// A second `default`, `policy`, `mode`, or a fact declared twice.
    DuplicateItem = "duplicate-item", Error;
    /// A size, nesting or count limit exceeded.
    Limit = "limit", Error;
    /// A test's `expect rule "NAME"` names no rule of the policy.
    UnknownRule = "unknown-rule", Error;
    /// `alert sender` can happen for infected mail.
    BackscatterAlert = "backscatter-alert", Warning;
    /// `bounce` can happen for infected mail whose virus forges senders.
    BackscatterBounce = "backscatter-bounce", Warning;
    /// `reject` of infected mail after the queue.
    RejectAfterQueue = "reject-after-queue", Warning;
    /// `discard` without `quarantine`.
    SilentDiscard = "silent-discard", Warning;
    /// A failed scan can pass, or unscannable mail passes unmarked.
    FailOpen = "fail-open", Warning;
    /// Infected mail can pass.
    VirusPasses = "virus-passes", Warning;
    /// Outbound or internal infected mail can leave.
    OutboundVirusEscapes = "outbound-virus-escapes", Warning;
    /// A rule that can never apply.
    UnreachableRule = "unreachable-rule", Warning;
    /// `tempfail` for a permanent condition.
    TempfailPermanent = "tempfail-permanent", Warning;
    /// `alert sender` or `bounce` with the null sender.
    AlertNullSender = "alert-null-sender", Warning;
    /// A list declared and never used.
    UnusedList = "unused-list", Warning;
    /// A custom fact declared and never used by a rule.
    UnusedFact = "unused-fact", Warning;
    /// No test reaches the rule (only with `--coverage`).
    UntestedRule = "untested-rule", Warning;
    /// `allow(...)` names a code that does not exist.
    UnknownLint = "unknown-lint", Warning;
    /// The linter did not finish some rules within its work budget: their warnings may be missing (none is invented).
    AnalysisIncomplete = "analysis-incomplete", Note;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One error or warning about a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong, in lowercase, naming the rule where there is one.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What to do instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The rule (or `default`) the diagnostic is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Facts that lead to the problem (lint warnings), as `fact = value` text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// The byte range it points at.
    #[serde(skip)]
    pub span: Span,
    /// The text of the line it points at, cut to a window around the column
    /// when very long (see [`Diagnostic::source_line`]).
    #[serde(skip)]
    pub(crate) source_line: String,
    /// The 1-based column within `source_line` (see
    /// [`Diagnostic::snippet_column`]).
    #[serde(skip)]
    pub(crate) snippet_column: usize,
}

impl Diagnostic {
    /// A diagnostic at `span` of `src`. Its line and column are filled in by
    /// [`place_all`] before it leaves the crate (one pass for all of them, so
    /// that 10,000 diagnostics on a large policy stay linear).
    pub(crate) fn new(
        code: Code,
        _src: &str,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column, source_line, snippet_column) = (0, 0, String::new(), 0);
        Diagnostic {
            severity: code.severity(),
            code,
            message: shorten(message.into()),
            line,
            column,
            help: None,
            rule: None,
            example: None,
            span,
            source_line,
            snippet_column,
        }
    }

    /// Adds a help line.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Names the rule it is about.
    pub(crate) fn in_rule(mut self, rule: Option<&str>) -> Diagnostic {
        self.rule = rule.map(str::to_owned);
        self
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The text of the line it points at, for rendering without the source;
    /// a very long line is cut to a window around the column.
    pub fn source_line(&self) -> &str {
        &self.source_line
    }

    /// The 1-based column, in characters, within
    /// [`Diagnostic::source_line`] (equal to `column` unless the line was cut).
    pub fn snippet_column(&self) -> usize {
        self.snippet_column
    }

    /// The caret line under [`Diagnostic::source_line`]: spaces then `^`s.
    pub fn caret(&self) -> String {
        let pad: usize = self
            .source_line
            .chars()
            .take(self.snippet_column.saturating_sub(1))
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum();
        let remaining = self
            .source_line
            .chars()
            .count()
            .saturating_sub(self.snippet_column.saturating_sub(1));
        let width = (self.span.end.saturating_sub(self.span.start)).clamp(1, remaining.max(1));
        format!("{}{}", " ".repeat(pad), "^".repeat(width))
    }
}

impl fmt::Display for Diagnostic {
    /// `error[code]: LINE:COL: message`, the line, a caret, and the help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}[{}]: {}:{}: {}",
            self.severity.as_str(),
            self.code,
            self.line,
            self.column,
            self.message
        )?;
        let gutter = self.line.to_string();
        let blank = " ".repeat(gutter.len());
        writeln!(f, "{blank} |")?;
        writeln!(f, "{gutter} | {}", self.source_line.replace('\t', "    "))?;
        write!(f, "{blank} | {}", self.caret())?;
        if let Some(help) = &self.help {
            write!(f, "\n{blank} = help: {help}")?;
        }
        Ok(())
    }
}

/// Longest message kept: messages quote names from the source, and a
/// megabyte-long name must not make a megabyte-long message.
const MAX_MESSAGE_CHARS: usize = 500;

fn shorten(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Longest line kept for rendering; longer lines are cut around the column.
const MAX_RENDERED_LINE: usize = 300;
/// Characters shown on each side of the column in a cut line.
const WINDOW: usize = 100;

/// Fills in the line, column and line text of every diagnostic.
///
/// Linear in the source plus the diagnostics (n log n to order them): the
/// diagnostics are visited by position, and a column is counted on from the
/// previous diagnostic's when both are on one line, so 200,000 errors on
/// one long line do not each count the line again from its start. The
/// shown text is a window of bounded size around the column.
pub(crate) fn place_all(src: &str, diagnostics: &mut [Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let index = LineIndex::new(src);
    let mut order: Vec<usize> = (0..diagnostics.len()).collect();
    order.sort_by_key(|&i| diagnostics.get(i).map_or(0, |d| d.span.start));
    // The last place counted: (line, byte offset, column there).
    let mut cursor: Option<(usize, usize, usize)> = None;
    for i in order {
        let Some(d) = diagnostics.get_mut(i) else {
            continue;
        };
        let offset = char_floor(src, d.span.start);
        let line = index.line(offset);
        let mut line_start = index.start(line).min(offset);
        // A UTF-8 byte order mark is no column (editors do not show it).
        if line_start == 0 && src.starts_with('\u{FEFF}') {
            line_start = '\u{FEFF}'.len_utf8().min(offset);
        }
        let column = match cursor {
            Some((l, at, col)) if l == line && at <= offset => {
                col + src.get(at..offset).map_or(0, |t| t.chars().count())
            }
            _ => src.get(line_start..offset).map_or(0, |t| t.chars().count()) + 1,
        };
        cursor = Some((line, offset, column));
        let line_end = index
            .start(line + 1)
            .saturating_sub(1)
            .max(offset)
            .min(src.len());
        let (text, snippet_column) = window(src, line_start, line_end, offset, column);
        d.line = line;
        d.column = column;
        // Help lines quote names from the source too.
        d.help = d.help.take().map(shorten);
        d.source_line = text;
        d.snippet_column = snippet_column;
    }
}

/// `offset` moved back to a character boundary of `src` (and into it).
fn char_floor(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The line `line_start..line_end` as shown: whole when short, else a
/// window of about `WINDOW` characters each side of `offset` (found by
/// walking at most that many characters from it, not from the line's
/// start). Returns the text and the column within it.
fn window(
    src: &str,
    line_start: usize,
    line_end: usize,
    offset: usize,
    column: usize,
) -> (String, usize) {
    let text = src.get(line_start..line_end).unwrap_or("");
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.len() <= MAX_RENDERED_LINE {
        return (text.to_owned(), column);
    }
    let before = src.get(line_start..offset).unwrap_or("");
    let from = before
        .char_indices()
        .rev()
        .take(WINDOW)
        .last()
        .map_or(offset, |(i, _)| line_start + i);
    let shown_before = src.get(from..offset).map_or(0, |t| t.chars().count());
    let line_end = line_start + text.len();
    let after = src.get(offset..line_end).unwrap_or("");
    let to = after
        .char_indices()
        .nth(2 * WINDOW - shown_before)
        .map_or(line_end, |(i, _)| offset + i);
    let shown = src.get(from..to).unwrap_or("").to_owned();
    (shown, shown_before + 1)
}

/// Where each line starts, for turning byte offsets into lines and columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(src: &str) -> LineIndex {
        // The memchr crate's iterator: fast on a 16 MB line even in a debug
        // build, and on many short lines (no search set up per line).
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', src.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// Where 1-based line `line` starts (`usize::MAX` past the last line).
    fn start(&self, line: usize) -> usize {
        line.checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .copied()
            .unwrap_or(usize::MAX)
    }

    /// 1-based line and column (in characters) of byte `offset`.
    #[cfg(test)]
    pub(crate) fn locate(&self, src: &str, offset: usize) -> (usize, usize) {
        let offset = char_floor(src, offset);
        let line = self.line(offset);
        let start = self.start(line).min(offset);
        (line, src[start..offset].chars().count() + 1)
    }
}

/// Work (edit-distance cells) all "did you mean" searches of one check may
/// do together: each error scans the candidates (every enum value, list or
/// fact name), so 100,000 errors against 100,000 candidates must not each
/// pay in full. Once spent, errors come without the hint.
pub(crate) const SUGGEST_BUDGET: usize = 16_000_000;

/// "did you mean" help: the closest candidate within a small edit distance,
/// with a budget of its own (for a single error).
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    did_you_mean_within(word, candidates, &mut SUGGEST_BUDGET.clone())
}

/// [`did_you_mean`] charging its work to `budget` (cells of the
/// edit-distance table, and one per candidate); stops when it is spent.
pub(crate) fn did_you_mean_within<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    budget: &mut usize,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    let wlen = word.chars().take(65).count();
    for cand in candidates {
        if *budget == 0 {
            break;
        }
        let clen = cand.chars().take(65).count();
        let limit = (wlen.max(clen) / 3).max(1);
        // Lengths further apart than the limit cannot be within it.
        if wlen.abs_diff(clen) > limit {
            *budget -= 1;
            continue;
        }
        *budget = budget.saturating_sub(1 + wlen.min(64) * clen.min(64));
        let d = edit_distance(word, cand);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// At most this many values are listed in a help line; the rest are counted.
const MAX_LISTED: usize = 20;

/// `` `a`, `b`, `c` `` for a help line, cut after [`MAX_LISTED`] values with
/// "and N more" (an enum of 100,000 values must not make each error's help
/// line a megabyte).
pub(crate) fn list_values<'a>(
    values: impl ExactSizeIterator<Item = &'a str>,
    quote: &str,
) -> String {
    let n = values.len();
    let mut out: Vec<String> = values
        .take(MAX_LISTED)
        .map(|v| format!("{quote}{}{quote}", shorten_to(v, 64)))
        .collect();
    if n > MAX_LISTED {
        out.push(format!("and {} more", n - MAX_LISTED));
    }
    out.join(", ")
}

/// `s` cut to `max` characters (with `…`).
pub(crate) fn shorten_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_chars() {
        let src = "a\nbé c\n";
        let index = LineIndex::new(src);
        assert_eq!(index.locate(src, 5), (2, 3));
        assert_eq!(index.locate(src, 0), (1, 1));
        assert_eq!(index.locate(src, 2), (2, 1));
        assert_eq!(index.locate(src, 1), (1, 2));
        assert_eq!(index.locate(src, 99), (3, 1));
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let src = format!("{}^{}", "a".repeat(10_000), "b".repeat(10_000));
        let mut d = [Diagnostic::new(
            Code::Syntax,
            &src,
            Span::new(10_000, 10_001),
            "x",
        )];
        place_all(&src, &mut d);
        assert_eq!((d[0].line, d[0].column), (1, 10_001));
        assert!(d[0].source_line.chars().count() <= 2 * WINDOW);
        assert_eq!(
            d[0].source_line.chars().nth(d[0].snippet_column - 1),
            Some('^')
        );
        assert_eq!(d[0].caret().trim_start().len(), 1);
        assert_eq!(d[0].caret().len() - 1, d[0].snippet_column - 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("scaner", ["scanner", "sender"]),
            Some("scanner")
        );
        assert_eq!(did_you_mean("zzz", ["scanner", "sender"]), None);
    }
}
