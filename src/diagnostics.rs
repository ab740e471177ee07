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
pub enum Severity {
    /// Advice: the policy works, but breaks the experts' advice.
    Warning,
    /// The policy cannot be used.
    Error,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, $sev:ident; )*) => {
        /// Every diagnostic's stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// All codes.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The kebab-case code, e.g. `silent-discard`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// Whether it is an error or a warning.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
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
    /// The text of the line it points at (for rendering without the source);
    /// a very long line is cut to a window around the column.
    #[serde(skip)]
    pub source_line: String,
    /// The 1-based column, in characters, within [`Diagnostic::source_line`]
    /// (equal to `column` unless the line was cut).
    #[serde(skip)]
    pub snippet_column: usize,
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
pub(crate) fn place_all(src: &str, diagnostics: &mut [Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let index = LineIndex::new(src);
    for d in diagnostics {
        let (line, column, text, snippet_column) = index.locate_with_window(src, d.span.start);
        d.line = line;
        d.column = column;
        d.source_line = text;
        d.snippet_column = snippet_column;
    }
}

/// Where each line starts, for turning byte offsets into lines and columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(src: &str) -> LineIndex {
        // `match_indices` on a char uses core's memchr: fast on a 16 MB line
        // even in a debug build.
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// 1-based line and column (in characters) of byte `offset`.
    #[cfg(test)]
    pub(crate) fn locate(&self, src: &str, offset: usize) -> (usize, usize) {
        let (line, column, _, _) = self.locate_with_window(src, offset);
        (line, column)
    }

    /// Line, column, the line's text (a window around the column when the
    /// line is very long), and the column within that text.
    fn locate_with_window(&self, src: &str, offset: usize) -> (usize, usize, String, usize) {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line(offset);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0).min(offset);
        let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
        let column = src[line_start..offset].chars().count() + 1;
        let text = &src[line_start..line_end];
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.len() <= MAX_RENDERED_LINE {
            return (line, column, text.to_owned(), column);
        }
        let first = column.saturating_sub(1).saturating_sub(WINDOW);
        let shown: String = text.chars().skip(first).take(2 * WINDOW).collect();
        (line, column, shown, column - first)
    }
}

/// "did you mean" help: the closest candidate within a small edit distance.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let d = edit_distance(word, cand);
        let limit = (word.chars().count().max(cand.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
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
