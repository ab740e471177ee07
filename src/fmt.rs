//! `policy fmt`: the canonical form of a policy, comments kept.
//!
//! Layout: one item per line (rules and tests as indented blocks), one blank
//! line between items except within a run of the same one-line item (`admin`,
//! `fact`, `list`, `allow`), and `allow(...)` stays glued to the rule it
//! covers. Comments stay before the item or clause they preceded, and
//! end-of-line comments stay at the end of their line. Formatting is
//! idempotent and keeps the meaning (`parse(format(x))` is the same policy).

use crate::diagnostics::Span;
use crate::limits::Limits;
use crate::policy::ParseError;
use crate::syntax::{self, ast::*};
use std::fmt::Write as _;

/// The canonical form of a policy's source. Only syntax errors stop it (a
/// policy with type errors is still formatted).
///
/// ```
/// let src = "rule \"x\"{when scanner==infected then discard,quarantine}";
/// assert_eq!(
///     mailpolicy::format(src).unwrap(),
///     "rule \"x\" {\n    when scanner == infected\n    then discard, quarantine\n}\n"
/// );
/// ```
pub fn format(source: &str) -> Result<String, ParseError> {
    let parsed = syntax::parse(source, &Limits::default());
    if !parsed.errors.is_empty() {
        return Err(ParseError::from_diagnostics(source, parsed.errors));
    }
    let file = parsed.file;
    let mut p = Printer {
        src: source,
        comments: &file.comments,
        next_comment: 0,
        out: String::new(),
    };
    p.file(&file);
    Ok(p.out)
}

/// Widest `when` line before its `and`/`or` parts go on lines of their own.
const MAX_WIDTH: usize = 96;
const INDENT: &str = "    ";

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment<'a>],
    next_comment: usize,
    out: String,
}

fn kind(item: &Item) -> u8 {
    match item {
        Item::Policy(..) | Item::Mode(..) | Item::Admin(..) => 0,
        Item::Fact(_) => 1,
        Item::List(_) => 2,
        Item::Allow(..) => 3,
        Item::Rule(_) => 4,
        Item::Default(..) => 5,
        Item::Test(_) => 6,
    }
}

impl Printer<'_> {
    /// Emits own-line comments that start before `pos`, at `indent`.
    fn comments_before(&mut self, pos: usize, indent: &str) {
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.span.start >= pos {
                break;
            }
            let _ = writeln!(self.out, "{indent}#{}", c.text.trim_end());
            self.next_comment += 1;
            // Keep a blank line that separates a top-level comment block from what follows.
            let after = self.src.get(c.span.end..).unwrap_or("");
            let gap = &after[..after
                .find(|ch: char| !ch.is_whitespace())
                .unwrap_or(after.len())];
            if indent.is_empty() && gap.matches('\n').count() >= 2 && pos != usize::MAX {
                self.out.push('\n');
            }
        }
    }

    /// Backs `end` up over trailing blanks and comments: pest's implicit
    /// whitespace makes a rule that ends in an optional part (`pass` without
    /// a reply, `a ~ b*`) span the blanks and comments after it, which would
    /// otherwise pull the next line's comment onto this line.
    fn code_end(&self, mut end: usize) -> usize {
        loop {
            end = self.src.get(..end).map_or(end, |s| s.trim_end().len());
            // Comments are sorted by position: the last one starting before `end`.
            let i = self.comments.partition_point(|c| c.span.start < end);
            match i.checked_sub(1).and_then(|i| self.comments.get(i)) {
                Some(c) if end <= c.span.end => end = c.span.start,
                _ => return end,
            }
        }
    }

    /// Ends the current line, with the trailing comment that follows `end` on
    /// the same source line, if any.
    fn end_line(&mut self, end: usize) {
        let end = self.code_end(end);
        if let Some(c) = self.comments.get(self.next_comment) {
            let between = self.src.get(end..c.span.start).unwrap_or("\n");
            if c.trailing && !between.contains('\n') {
                let _ = write!(self.out, "  #{}", c.text.trim_end());
                self.next_comment += 1;
            }
        }
        self.out.push('\n');
    }

    fn file(&mut self, file: &File) {
        let mut prev: Option<&Item> = None;
        for item in &file.items {
            if let Some(p) = prev {
                let glued = matches!(p, Item::Allow(..))
                    && matches!(item, Item::Rule(_) | Item::Default(..) | Item::Allow(..));
                let same_line_kind = kind(p) == kind(item) && kind(item) <= 3;
                if !glued && !same_line_kind {
                    self.out.push('\n');
                }
            }
            self.comments_before(item.span().start, "");
            self.item(item);
            prev = Some(item);
        }
        if !file.items.is_empty() && self.next_comment < self.comments.len() {
            self.out.push('\n');
        }
        self.comments_before(usize::MAX, "");
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Policy(s, span) => {
                let _ = write!(self.out, "policy {}", string(&s.value));
                self.end_line(span.end);
            }
            Item::Mode(m, span) => {
                let _ = write!(self.out, "mode {}", m.text);
                self.end_line(span.end);
            }
            Item::Admin(s, span) => {
                let _ = write!(self.out, "admin {}", string(&s.value));
                self.end_line(span.end);
            }
            Item::Fact(f) => {
                let ty = match &f.ty {
                    TypeExpr::Simple(n) => n.text.to_owned(),
                    TypeExpr::Set(n, _) => format!("[{}]", n.text),
                    TypeExpr::Enum(values, _) => {
                        format!(
                            "enum({})",
                            values.iter().map(|v| v.text).collect::<Vec<_>>().join(", ")
                        )
                    }
                };
                let _ = write!(self.out, "fact {}: {ty}", f.name.text);
                self.end_line(f.span.end);
            }
            Item::List(l) => self.list_item(l),
            Item::Allow(names, span) => {
                let names: Vec<&str> = names.iter().map(|n| n.text).collect();
                let _ = write!(self.out, "allow({})", names.join(", "));
                self.end_line(span.end);
            }
            Item::Rule(r) => {
                let _ = write!(self.out, "rule {} {{", string(&r.name.value));
                self.end_line(r.name.span.end);
                if let Some(c) = &r.when {
                    self.comments_before(c.span().start, INDENT);
                    self.when(c);
                }
                let then_at = r.actions.first().map_or(r.span.end, |a| a.span().start);
                self.comments_before(then_at, INDENT);
                let _ = write!(self.out, "{INDENT}then {}", actions(&r.actions));
                self.end_line(r.actions.last().map_or(r.span.end, |a| a.span().end));
                self.comments_before(r.span.end, INDENT);
                self.out.push('}');
                self.end_line(r.span.end);
            }
            Item::Default(acts, span) => {
                let _ = write!(self.out, "default {}", actions(acts));
                self.end_line(span.end);
            }
            Item::Test(t) => {
                let _ = write!(self.out, "test {} {{", string(&t.name.value));
                self.end_line(t.name.span.end);
                if let (Some(first), Some(last)) = (t.given.first(), t.given.last()) {
                    self.comments_before(first.0.span.start, INDENT);
                    let given: Vec<String> = t
                        .given
                        .iter()
                        .map(|(n, v)| format!("{} = {}", n.text, value(v)))
                        .collect();
                    let _ = write!(self.out, "{INDENT}given {}", given.join(", "));
                    self.end_line(last.1.span().end);
                }
                for e in &t.expects {
                    let (text, span) = match e {
                        Expect::Actions(a, s) => (actions(a), *s),
                        Expect::Rule(n, s) => (format!("rule {}", string(&n.value)), *s),
                        Expect::Default(s) => ("default".to_owned(), *s),
                    };
                    self.comments_before(span.start, INDENT);
                    let _ = write!(self.out, "{INDENT}expect {text}");
                    self.end_line(span.end);
                }
                self.comments_before(t.span.end, INDENT);
                self.out.push('}');
                self.end_line(t.span.end);
            }
        }
    }

    fn list_item(&mut self, l: &ListDecl) {
        let inner = Span::new(l.name.span.end, l.span.end);
        // Comments are sorted by position: find the first one after the
        // list's name by binary search (a scan of all remaining comments per
        // list would be quadratic in a file of many lists and comments).
        let rest = self.comments.get(self.next_comment..).unwrap_or_default();
        let first_after = rest.partition_point(|c| c.span.start <= inner.start);
        let had_comment = rest
            .get(first_after)
            .is_some_and(|c| c.span.start < inner.end);
        let multiline = had_comment
            || self
                .src
                .get(inner.start..inner.end)
                .is_some_and(|t| t.contains('\n'));
        if !multiline || l.values.is_empty() {
            let values: Vec<String> = l.values.iter().map(value).collect();
            let _ = write!(self.out, "list {} = [{}]", l.name.text, values.join(", "));
            self.end_line(l.span.end);
            return;
        }
        let _ = write!(self.out, "list {} = [", l.name.text);
        self.end_line(l.name.span.end);
        for v in &l.values {
            self.comments_before(v.span().start, INDENT);
            let _ = write!(self.out, "{INDENT}{},", value(v));
            // A trailing comment may follow the comma.
            let end = self
                .src
                .get(v.span().end..)
                .and_then(|r| {
                    r.find(',')
                        .filter(|i| !r[..*i].contains('\n'))
                        .map(|i| v.span().end + i + 1)
                })
                .unwrap_or(v.span().end);
            self.end_line(end);
        }
        self.comments_before(l.span.end, INDENT);
        self.out.push(']');
        self.end_line(l.span.end);
    }

    fn when(&mut self, c: &Cond) {
        let flat = cond(c);
        let span = c.span();
        // Only comments *between* the top-level parts keep the condition split
        // over lines; a comment inside a part moves before `then` either way, so
        // counting it would make the layout change on a second `fmt`.
        let parts: &[Cond] = match c {
            Cond::Or(parts, _) | Cond::And(parts, _) => parts,
            other => std::slice::from_ref(other),
        };
        let inside_a_part = |pos: usize| {
            parts
                .iter()
                .any(|p| p.span().start < pos && pos < p.span().end)
        };
        let has_comment = self.comments[self.next_comment..].iter().any(|k| {
            k.span.start > span.start && k.span.start < span.end && !inside_a_part(k.span.start)
        });
        if !has_comment && INDENT.len() + 5 + flat.len() <= MAX_WIDTH {
            let _ = write!(self.out, "{INDENT}when {flat}");
            self.end_line(c.span().end);
            return;
        }
        let (parts, word) = match c {
            Cond::Or(parts, _) => (parts, "or"),
            Cond::And(parts, _) => (parts, "and"),
            _ => {
                let _ = write!(self.out, "{INDENT}when {flat}");
                self.end_line(c.span().end);
                return;
            }
        };
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.comments_before(p.span().start, INDENT);
            }
            let text = cond_in(p, if word == "or" { 0 } else { 1 });
            if i == 0 {
                let _ = write!(self.out, "{INDENT}when {text}");
            } else {
                let _ = write!(self.out, "{INDENT}     {word} {text}");
            }
            self.end_line(p.span().end);
        }
    }
}

/// A condition on one line.
fn cond(c: &Cond) -> String {
    cond_in(c, 0)
}

/// A condition inside a context of precedence `ctx` (0: or, 1: and, 2: not).
/// Parentheses are kept as written; none are added, since the AST's shape
/// already follows precedence.
fn cond_in(c: &Cond, _ctx: u8) -> String {
    match c {
        Cond::Or(parts, _) => parts
            .iter()
            .map(|p| cond_in(p, 0))
            .collect::<Vec<_>>()
            .join(" or "),
        Cond::And(parts, _) => parts
            .iter()
            .map(|p| cond_in(p, 1))
            .collect::<Vec<_>>()
            .join(" and "),
        Cond::Not(inner, _) => format!("not {}", cond_in(inner, 2)),
        Cond::Paren(inner, _) => format!("({})", cond_in(inner, 0)),
        Cond::Bool(b, _) => b.to_string(),
        Cond::Known(n, _) => format!("known {}", n.text),
        Cond::Fact(n) => n.text.to_owned(),
        Cond::Compare(n, op, v, _) => format!("{} {} {}", n.text, op.as_str(), value(v)),
        Cond::In(n, o, _) => format!("{} in {}", n.text, operand(o)),
        Cond::Matches(n, o, _) => format!("{} matches {}", n.text, operand(o)),
        Cond::Quant(q, _, inner, _) => format!("{} {}", q.as_str(), cond_in(inner, 2)),
    }
}

fn operand(o: &Operand) -> String {
    match o {
        Operand::List(values, _) => format!(
            "[{}]",
            values.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
        Operand::ListRef(n) => n.text.to_owned(),
        Operand::Value(v) => value(v),
    }
}

/// A literal as `fmt` prints it (also used in the checker's help texts).
pub(crate) fn value_text(v: &Value) -> String {
    value(v)
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => string(&s.value),
        Value::Regex(r, _) => format!("/{}/", r.replace('/', "\\/")),
        Value::Ip(t, _) | Value::Float(_, t, _) => (*t).to_owned(),
        Value::Int(i, _) => i.to_string(),
        Value::Bool(b, _) => b.to_string(),
        Value::Word(n) => n.text.to_owned(),
        Value::List(values, _) => format!(
            "[{}]",
            values.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A string literal with the language's escapes.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn actions(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::Disposition(k, None, _) => k.as_str().to_owned(),
            Action::Disposition(k, Some(r), _) => format!("{} {}", k.as_str(), string(&r.value)),
            Action::Quarantine(None, _) => "quarantine".to_owned(),
            Action::Quarantine(Some(b), _) => format!("quarantine {}", string(&b.value)),
            Action::Alert(AlertTo::Admin, _) => "alert admin".to_owned(),
            Action::Alert(AlertTo::Sender, _) => "alert sender".to_owned(),
            Action::Alert(AlertTo::Recipient, _) => "alert recipient".to_owned(),
            Action::Alert(AlertTo::Address(a), _) => format!("alert {}", string(&a.value)),
            Action::Tag(t, _) => format!("tag {}", string(&t.value)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
