//! The pest binding: turns the grammar's pairs into the typed AST.

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::Limits;
use crate::syntax::ast::*;
use pest::iterators::Pair;
use pest::Parser as _;
use std::borrow::Cow;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/policy.pest"]
struct PestParser;

/// Parses `src` (already pre-scanned) into items; errors are pushed to `errors`.
/// The flag is true when the grammar rejected the text.
///
/// pest keeps every token pair of what it parses in one queue until the AST
/// is built, so it is never given the whole file: the pre-pass cut the text
/// between items into `batches` of a bounded number of pairs, each parsed
/// (`file` on that part of the text) and built before the next. A batch that
/// does not parse is read again one item at a time from its start, which
/// words the error as a parse of the whole file would (and reads on, should
/// the cut have been wrong).
pub(crate) fn parse_items<'s>(
    src: &'s str,
    batches: &[(usize, usize)],
    expected: usize,
    limits: &Limits,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<Item<'s>>, bool) {
    parse_items_with(src, batches, expected, limits, errors, true)
}

/// [`parse_items`], with the hand-written fast path (`fast`, see
/// src/syntax/fast.rs) tried first on each item, or pest alone. `expected`:
/// about how many items there are (the pre-pass's count), room reserved.
pub(crate) fn parse_items_with<'s>(
    src: &'s str,
    batches: &[(usize, usize)],
    expected: usize,
    limits: &Limits,
    errors: &mut Vec<Diagnostic>,
    fast: bool,
) -> (Vec<Item<'s>>, bool) {
    let mut b = Builder {
        src,
        base: 0,
        limits,
        errors,
        context: None,
    };
    let mut items = Vec::with_capacity(expected);
    // Where the last item read starts.
    let mut previous = 0;
    for &(start, end) in batches {
        // The items the fast path reads; pest reads on from the first it leaves.
        let start = if fast {
            super::fast::items(src, start, end, limits, &mut items, &mut previous)
        } else {
            start
        };
        if start >= end {
            continue;
        }
        let Ok(pairs) = PestParser::parse(Rule::file, &src[start..end]) else {
            let read = read_items(src, start, previous, |base, pair| {
                b.base = base;
                items.push(b.item(pair));
            });
            return match read {
                Ok(()) => (items, false),
                Err(first) => {
                    recover(src, *first, b.errors);
                    (Vec::new(), true)
                }
            };
        };
        b.base = start;
        // `file`'s children: each item, then `EOI`.
        for pair in pairs.flat_map(|file| file.into_inner()) {
            if pair.as_rule() == Rule::EOI {
                break;
            }
            previous = start + pair.as_span().start();
            items.push(b.item(pair));
        }
    }
    (items, false)
}

/// After the first syntax error: resume at the next line that starts an
/// item, so that one run reports the syntax errors of every broken item.
fn recover(src: &str, first: Diagnostic, errors: &mut Vec<Diagnostic>) {
    let mut at = first.span.start;
    errors.push(first);
    while errors.len() < MAX_SYNTAX_ERRORS {
        let Some(next) = next_item_start(src, at) else {
            break;
        };
        match read_items(src, next, next, |_, _| {}) {
            Ok(()) => break,
            Err(d) => {
                at = d.span.start.max(next + 1);
                errors.push(*d);
            }
        }
    }
}

/// Reads the items of `src[from..]` one at a time, handing each item's pair
/// (with the offset its positions are relative to) to `each`, up to the end
/// of the text; or the syntax error of the first item that does not parse.
/// `previous` is where the item before `from` starts (`from` if none).
fn read_items<'s>(
    src: &'s str,
    from: usize,
    mut previous: usize,
    mut each: impl FnMut(usize, Pair<'s, Rule>),
) -> Result<(), Box<Diagnostic>> {
    let mut at = from;
    loop {
        let rest = &src[at..];
        match PestParser::parse(Rule::one_item, rest) {
            Ok(pairs) => {
                // `one_item` holds the item (its only child), which ends where
                // the next read starts.
                let Some(item) = pairs.flatten().nth(1) else {
                    return Ok(());
                };
                let (start, end) = (item.as_span().start(), item.as_span().end());
                each(at, item);
                previous = at + start;
                // Every item is at least its keyword: the loop advances.
                at += end.max(1);
            }
            Err(_) if PestParser::parse(Rule::file_end, rest).is_ok() => return Ok(()),
            Err(_) => return Err(Box::new(item_error(src, previous))),
        }
    }
}

/// Each item of `src` (which parses): where it starts and ends, and how many
/// token pairs pest kept for it (`one_item`'s included).
#[cfg(test)]
pub(crate) fn item_pairs(src: &str) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(pairs) = PestParser::parse(Rule::one_item, &src[at..]) {
        let count = pairs.clone().flatten().count();
        let Some(item) = pairs.flatten().nth(1) else {
            break;
        };
        let (start, end) = (item.as_span().start(), item.as_span().end());
        out.push((at + start, at + end, count));
        at += end.max(1);
    }
    out
}

/// The syntax error of an item that does not parse, worded as a parse of the
/// whole file would word it: `file` from the start of the item before it
/// (which parses, then the broken one fails), so that pest's list of what it
/// expected also has what could have continued the item before.
fn item_error(src: &str, previous: usize) -> Diagnostic {
    match PestParser::parse(Rule::file, &src[previous..]) {
        Err(e) => syntax_error(src, previous, &e),
        // Not reached: the item failed alone, so `file` fails too.
        Ok(_) => Diagnostic::new(
            Code::Syntax,
            src,
            Span::new(previous, previous),
            "syntax error",
        ),
    }
}

/// The pair's place, as pest matched it. Rules that end in an optional or
/// repeated part also swallow the whitespace and comments pest skipped while
/// looking for it: the builder ends those where their last part ends (taken
/// from the part it built, so that a comment after `then discard` stays
/// outside the action's span), without walking the pairs again.
fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

/// The same place recomputed from the pairs, by walking the chain of last
/// children of rules that end loosely: debug builds check the builder's
/// spans against it (every test parse), release builds never walk.
#[cfg(debug_assertions)]
fn walked_span(base: usize, pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    let ends_loosely = matches!(
        pair.as_rule(),
        Rule::disposition
            | Rule::quarantine
            | Rule::actions
            | Rule::condition
            | Rule::when_clause
            | Rule::then_clause
            | Rule::given_clause
            | Rule::expect_clause
            | Rule::default_item
    );
    let end = if ends_loosely {
        // The recursion follows the chain of last children only: its depth is
        // the nesting depth, which the pre-pass bounds.
        pair.clone()
            .into_inner()
            .last()
            .map_or(base + s.end(), |last| walked_span(base, &last).end)
    } else {
        base + s.end()
    };
    Span::new(base + s.start(), end)
}

/// `start` to the end of the last action (or `fallback` without actions).
fn actions_span(start: usize, actions: &[Action<'_>], fallback: usize) -> Span {
    Span::new(start, actions.last().map_or(fallback, |a| a.span().end))
}

/// `parts` joined by `join` (two or more), or the single part itself; the
/// whole runs from the first part to the last.
fn group<'s>(mut parts: Vec<Cond<'s>>, join: fn(Vec<Cond<'s>>, Span) -> Cond<'s>) -> Cond<'s> {
    if parts.len() == 1 {
        if let Some(only) = parts.pop() {
            return only;
        }
    }
    let start = parts.first().map_or(0, |p| p.span().start);
    let end = parts.last().map_or(0, |p| p.span().end);
    join(parts, Span::new(start, end))
}

struct Builder<'s, 'e> {
    src: &'s str,
    /// Where the text pest parsed starts in `src`: pest's positions are
    /// relative to it.
    base: usize,
    limits: &'e Limits,
    errors: &'e mut Vec<Diagnostic>,
    /// `("rule", name)` while building a rule (or test): messages end with
    /// ` in rule "name"` (written only when there is an error).
    context: Option<(&'static str, String)>,
}

impl<'s> Builder<'s, '_> {
    /// The pair's place in `src`.
    fn sp(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = span_of(pair);
        Span::new(self.base + s.start, self.base + s.end)
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let mut message = message.into();
        if let Some((kind, name)) = &self.context {
            message = format!("{message} in {kind} {name:?}");
        }
        self.errors
            .push(Diagnostic::new(code, self.src, span, message));
        // Just pushed, so the vector is not empty and `last` is in bounds.
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn item(&mut self, pair: Pair<'s, Rule>) -> Item<'s> {
        self.context = None;
        #[cfg(debug_assertions)]
        let walked = walked_span(self.base, &pair);
        let span = self.sp(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        // Every item starts with its keyword; the grammar guarantees the parts
        // below, so a missing one would be a grammar/builder mismatch: we fall
        // back to empty values rather than panic.
        let keyword = inner.next().map(|p| self.sp(&p)).unwrap_or(span);
        match rule {
            Rule::policy_item => Item::Policy(self.string_opt(inner.next(), span), span),
            Rule::mode_item => Item::Mode(self.name_opt(inner.next(), span), span),
            Rule::admin_item => Item::Admin(self.string_opt(inner.next(), span), span),
            Rule::fact_item => {
                let name = self.name_opt(inner.next(), span);
                let ty = match inner.next().and_then(|t| t.into_inner().next()) {
                    Some(t) if t.as_rule() == Rule::set_type => {
                        let tspan = self.sp(&t);
                        let elem = t.into_inner().find(|p| p.as_rule() == Rule::ident);
                        TypeExpr::Set(self.name_opt(elem, tspan), tspan)
                    }
                    Some(t) if t.as_rule() == Rule::enum_type => {
                        let tspan = self.sp(&t);
                        let values = t
                            .into_inner()
                            .filter(|p| p.as_rule() == Rule::ident)
                            .map(|p| self.name(p))
                            .collect();
                        TypeExpr::Enum(values, tspan)
                    }
                    Some(t) => TypeExpr::Simple(self.name_opt(t.into_inner().next(), span)),
                    None => TypeExpr::Simple(Name { text: "", span }),
                };
                Item::Fact(FactDecl { name, ty, span })
            }
            Rule::list_item => {
                let name = self.name_opt(inner.next(), span);
                let values = match inner.next() {
                    Some(list) => self.list_values(list),
                    None => Vec::new(),
                };
                Item::List(ListDecl { name, values, span })
            }
            Rule::allow_item => Item::Allow(
                inner
                    .filter(|p| p.as_rule() == Rule::lint_name)
                    .map(|p| self.name(p))
                    .collect(),
                span,
            ),
            Rule::rule_item => {
                let name = self.string_opt(inner.next(), span);
                self.context = Some(("rule", name.value.to_string()));
                let mut when = None;
                let mut actions = Vec::new();
                for part in inner {
                    match part.as_rule() {
                        Rule::when_clause => {
                            when = part.into_inner().nth(1).map(|c| self.condition(c));
                        }
                        Rule::then_clause => {
                            if let Some(a) = part.into_inner().nth(1) {
                                actions = self.actions(a);
                            }
                        }
                        _ => {}
                    }
                }
                Item::Rule(Rule_ {
                    name,
                    when,
                    actions,
                    keyword,
                    span,
                })
            }
            Rule::default_item => {
                let actions = inner.next().map(|a| self.actions(a)).unwrap_or_default();
                let span = actions_span(span.start, &actions, keyword.end);
                #[cfg(debug_assertions)]
                debug_assert_eq!(span, walked, "default span");
                Item::Default(actions, span)
            }
            Rule::test_item => {
                let name = self.string_opt(inner.next(), span);
                self.context = Some(("test", name.value.to_string()));
                let mut given = Vec::new();
                let mut expects = Vec::new();
                for part in inner {
                    match part.as_rule() {
                        Rule::given_clause => {
                            for g in part.into_inner().filter(|p| p.as_rule() == Rule::given) {
                                let gspan = self.sp(&g);
                                let mut gi = g.into_inner();
                                let fact = self.name_opt(gi.next(), gspan);
                                let value = match gi.next() {
                                    Some(v) if v.as_rule() == Rule::list_literal => {
                                        let lspan = self.sp(&v);
                                        Value::List(self.list_values(v), lspan)
                                    }
                                    Some(v) => self.value(v),
                                    None => Value::Bool(false, gspan),
                                };
                                given.push((fact, value));
                            }
                        }
                        Rule::expect_clause => {
                            #[cfg(debug_assertions)]
                            let walked = walked_span(self.base, &part);
                            let start = self.sp(&part).start;
                            let Some(what) = part.into_inner().nth(1) else {
                                continue;
                            };
                            // `expect rule "x"` and `expect default` end where
                            // pest ends them; `expect ACTIONS` at its last action.
                            let espan = Span::new(start, self.sp(&what).end);
                            let expect = match what.as_rule() {
                                Rule::expect_rule => {
                                    let s = what.into_inner().nth(1);
                                    Expect::Rule(self.string_opt(s, espan), espan)
                                }
                                Rule::expect_default => Expect::Default(espan),
                                _ => {
                                    let actions = self.actions(what);
                                    let espan = actions_span(start, &actions, espan.end);
                                    Expect::Actions(actions, espan)
                                }
                            };
                            #[cfg(debug_assertions)]
                            debug_assert_eq!(
                                match &expect {
                                    Expect::Actions(_, s)
                                    | Expect::Rule(_, s)
                                    | Expect::Default(s) => *s,
                                },
                                walked,
                                "expect span"
                            );
                            expects.push(expect);
                        }
                        _ => {}
                    }
                }
                Item::Test(Test {
                    name,
                    given,
                    expects,
                    span,
                })
            }
            _ => Item::Allow(Vec::new(), keyword),
        }
    }

    fn name(&mut self, pair: Pair<'s, Rule>) -> Name<'s> {
        Name {
            text: pair.as_str(),
            span: self.sp(&pair),
        }
    }

    fn name_opt(&mut self, pair: Option<Pair<'s, Rule>>, fallback: Span) -> Name<'s> {
        match pair {
            Some(p) => self.name(p),
            None => Name {
                text: "",
                span: fallback,
            },
        }
    }

    fn string_opt(&mut self, pair: Option<Pair<'s, Rule>>, fallback: Span) -> StrLit<'s> {
        match pair {
            Some(p) => self.string(p),
            None => StrLit {
                value: Cow::Borrowed(""),
                span: fallback,
            },
        }
    }

    /// Decodes a string literal's escapes; a bad escape is an `invalid-escape` error.
    fn string(&mut self, pair: Pair<'s, Rule>) -> StrLit<'s> {
        let span = self.sp(&pair);
        let raw = pair.as_str();
        let body = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
        let body_start = span.start + 1;
        if body.len() > self.limits.max_string_bytes {
            let max = self.limits.max_string_bytes;
            self.error(
                Code::Limit,
                span,
                format!(
                    "string is {} bytes, more than the limit of {max}",
                    body.len()
                ),
            );
            return StrLit {
                value: Cow::Borrowed(""),
                span,
            };
        }
        if !body.contains('\\') {
            return StrLit {
                value: Cow::Borrowed(body),
                span,
            };
        }
        let mut value = String::with_capacity(body.len());
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            let esc_start = body_start + i;
            match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((j, 'u')) => {
                    // \u{HEX}: up to six hex digits naming a Unicode scalar value.
                    let rest = &body[j + 1..];
                    let decoded = rest
                        .strip_prefix('{')
                        .and_then(|r| r.find('}').map(|end| &r[..end]))
                        .filter(|hex| !hex.is_empty() && hex.len() <= 6)
                        .and_then(|hex| {
                            u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .map(|c| (c, hex.len()))
                        });
                    match decoded {
                        Some((c, n)) => {
                            value.push(c);
                            for _ in 0..n + 2 {
                                chars.next();
                            }
                        }
                        None => {
                            let end = esc_start + 2 + rest.find('}').map_or(0, |e| e + 1).min(10);
                            self.error(
                                Code::InvalidEscape,
                                Span::new(esc_start, end),
                                "invalid unicode escape: expected `\\u{HEX}` naming a character",
                            )
                            .help = Some(
                                "write `\\u{E9}` for `é`: one to six hex digits in braces".into(),
                            );
                        }
                    }
                }
                Some((_, other)) => {
                    let len = 1 + other.len_utf8();
                    self.error(Code::InvalidEscape, Span::new(esc_start, esc_start + len), format!("unknown escape `\\{other}` in string"))
                        .help = Some("the escapes are `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{HEX}`; write `\\\\` for a backslash".into());
                }
                None => {}
            }
        }
        StrLit {
            value: Cow::Owned(value),
            span,
        }
    }

    fn value(&mut self, pair: Pair<'s, Rule>) -> Value<'s> {
        let span = self.sp(&pair);
        let text = pair.as_str();
        match pair.as_rule() {
            Rule::string => Value::Str(self.string(pair)),
            Rule::regex => {
                let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
                if body.len() > self.limits.max_string_bytes {
                    let max = self.limits.max_string_bytes;
                    self.error(
                        Code::Limit,
                        span,
                        format!(
                            "regex is {} bytes, more than the limit of {max}",
                            body.len()
                        ),
                    );
                }
                let value = if body.contains("\\/") {
                    Cow::Owned(body.replace("\\/", "/"))
                } else {
                    Cow::Borrowed(body)
                };
                Value::Regex(value, span)
            }
            Rule::ip_lit => Value::Ip(text, span),
            Rule::number => {
                if text.contains(['.', 'e', 'E']) {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Value::Float(f, text, span),
                        _ => {
                            self.error(
                                Code::Syntax,
                                span,
                                format!("number `{text}` is out of range"),
                            );
                            Value::Int(0, span)
                        }
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(i) => Value::Int(i, span),
                        Err(_) => {
                            self.error(
                                Code::Syntax,
                                span,
                                format!("integer `{text}` does not fit in 64 bits"),
                            );
                            Value::Int(0, span)
                        }
                    }
                }
            }
            Rule::bool_lit => Value::Bool(text == "true", span),
            _ => Value::Word(self.name(pair)),
        }
    }

    fn list_values(&mut self, pair: Pair<'s, Rule>) -> Vec<Value<'s>> {
        let span = self.sp(&pair);
        let values: Vec<Value> = pair.into_inner().map(|v| self.value(v)).collect();
        if values.len() > self.limits.max_list_items {
            let max = self.limits.max_list_items;
            self.error(
                Code::Limit,
                span,
                format!(
                    "list has {} items, more than the limit of {max}",
                    values.len()
                ),
            );
        }
        values
    }

    fn condition(&mut self, pair: Pair<'s, Rule>) -> Cond<'s> {
        #[cfg(debug_assertions)]
        let walked = walked_span(self.base, &pair);
        let span = self.sp(&pair);
        let cond = self.operands(pair.into_inner(), span);
        #[cfg(debug_assertions)]
        debug_assert_eq!(cond.span(), walked, "condition span");
        cond
    }

    /// `OPERAND (and|or OPERAND)*` as the grammar gives it, one flat run:
    /// grouped here, `and` binding tighter than `or`. A group of one is the
    /// operand itself; a group's place runs from its first operand to its
    /// last (pest's end would include what it skipped looking for more).
    fn operands(&mut self, pairs: impl Iterator<Item = Pair<'s, Rule>>, span: Span) -> Cond<'s> {
        let mut ors: Vec<Cond<'s>> = Vec::new();
        let mut ands: Vec<Cond<'s>> = Vec::new();
        for p in pairs {
            match p.as_rule() {
                Rule::not_expr => {
                    let c = self.not_expr(p);
                    ands.push(c);
                }
                Rule::kw_or => ors.push(group(std::mem::take(&mut ands), Cond::And)),
                _ => {}
            }
        }
        ors.push(group(ands, Cond::And));
        let cond = group(ors, Cond::Or);
        // Only an empty run (which the grammar does not produce) has no span.
        match cond {
            Cond::And(ref v, _) | Cond::Or(ref v, _) if v.is_empty() => Cond::Bool(false, span),
            c => c,
        }
    }

    fn not_expr(&mut self, pair: Pair<'s, Rule>) -> Cond<'s> {
        let span = self.sp(&pair);
        let mut nots = Vec::new();
        let mut atom = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::kw_not {
                nots.push(self.sp(&p).start);
            } else {
                atom = Some(self.atom(p));
            }
        }
        let mut cond = atom.unwrap_or(Cond::Bool(false, span));
        // The pre-pass bounded the number of `not`s, so this nesting is shallow.
        for start in nots.into_iter().rev() {
            let s = Span::new(start, cond.span().end);
            cond = Cond::Not(Box::new(cond), s);
        }
        cond
    }

    fn atom(&mut self, pair: Pair<'s, Rule>) -> Cond<'s> {
        let span = self.sp(&pair);
        match pair.as_rule() {
            Rule::paren => {
                let inner = self.operands(pair.into_inner(), span);
                Cond::Paren(Box::new(inner), span)
            }
            Rule::bool_lit => Cond::Bool(pair.as_str() == "true", span),
            Rule::known_test => {
                let fact = self.name_opt(pair.into_inner().nth(1), span);
                Cond::Known(fact, span)
            }
            Rule::ident => Cond::Fact(self.name(pair)),
            Rule::comparison => {
                let mut inner = pair.into_inner().peekable();
                let quant = match inner.peek() {
                    Some(q) if q.as_rule() == Rule::quantifier => {
                        let qspan = self.sp(q);
                        let kind = if q.as_str() == "all" {
                            Quant::All
                        } else {
                            Quant::Any
                        };
                        inner.next();
                        Some((kind, qspan))
                    }
                    _ => None,
                };
                let fact = self.name_opt(inner.next(), span);
                if let Some((kind, qspan)) = quant {
                    // The condition after the keyword, then the whole.
                    let rest = Span::new(fact.span.start, span.end);
                    let cond = self.comparison(fact, inner, rest);
                    return Cond::Quant(kind, qspan, Box::new(cond), span);
                }
                self.comparison(fact, inner, span)
            }
            _ => Cond::Bool(false, span),
        }
    }

    /// `FACT` followed by its comparison, `in` or `matches` tail.
    fn comparison(
        &mut self,
        fact: Name<'s>,
        mut inner: impl Iterator<Item = Pair<'s, Rule>>,
        span: Span,
    ) -> Cond<'s> {
        let Some(tail) = inner.next() else {
            return Cond::Bool(false, span);
        };
        let tail_rule = tail.as_rule();
        let mut ti = tail.into_inner();
        match tail_rule {
            Rule::cmp_tail => {
                let op = match ti.next().map(|p| p.as_str()) {
                    Some("==") => CmpOp::Eq,
                    Some("!=") => CmpOp::Ne,
                    Some("<") => CmpOp::Lt,
                    Some("<=") => CmpOp::Le,
                    Some(">") => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let value = match ti.next() {
                    Some(v) => self.value(v),
                    None => Value::Bool(false, span),
                };
                Cond::Compare(fact, op, value, span)
            }
            Rule::in_tail | Rule::matches_tail => {
                let operand = match ti.nth(1) {
                    Some(p) if p.as_rule() == Rule::list_literal => {
                        let lspan = self.sp(&p);
                        Operand::List(self.list_values(p), lspan)
                    }
                    Some(p) if p.as_rule() == Rule::list_ref => {
                        Operand::ListRef(self.name_opt(p.into_inner().next(), span))
                    }
                    Some(p) => Operand::Value(self.value(p)),
                    None => Operand::List(Vec::new(), span),
                };
                if tail_rule == Rule::in_tail {
                    Cond::In(fact, operand, span)
                } else {
                    Cond::Matches(fact, operand, span)
                }
            }
            _ => Cond::Bool(false, span),
        }
    }

    fn actions(&mut self, pair: Pair<'s, Rule>) -> Vec<Action<'s>> {
        let mut out = Vec::new();
        for a in pair.into_inner() {
            #[cfg(debug_assertions)]
            let walked = walked_span(self.base, &a);
            let span = self.sp(&a);
            let rule = a.as_rule();
            let mut inner = a.into_inner();
            let action = match rule {
                // `KEYWORD ["text"]`: pest's end includes what it skipped
                // looking for the text; the action ends at the keyword or text.
                Rule::disposition => {
                    let kw = inner.next();
                    let kind = match kw.as_ref().map(|k| k.as_str()) {
                        Some("pass") => DispositionKind::Pass,
                        Some("discard") => DispositionKind::Discard,
                        Some("bounce") => DispositionKind::Bounce,
                        Some("reject") => DispositionKind::Reject,
                        _ => DispositionKind::Tempfail,
                    };
                    let kw_end = kw.map_or(span.end, |k| self.sp(&k).end);
                    let reply = inner.next().map(|s| self.string(s));
                    let end = reply.as_ref().map_or(kw_end, |r| r.span.end);
                    Action::Disposition(kind, reply, Span::new(span.start, end))
                }
                Rule::quarantine => {
                    let kw_end = inner.next().map_or(span.end, |k| self.sp(&k).end);
                    let bucket = inner.next().map(|s| self.string(s));
                    let end = bucket.as_ref().map_or(kw_end, |b| b.span.end);
                    Action::Quarantine(bucket, Span::new(span.start, end))
                }
                Rule::alert => {
                    let target = inner.nth(1).and_then(|t| t.into_inner().next());
                    let to = match target {
                        Some(t) if t.as_rule() == Rule::string => AlertTo::Address(self.string(t)),
                        Some(t) if t.as_str() == "admin" => AlertTo::Admin,
                        Some(t) if t.as_str() == "sender" => AlertTo::Sender,
                        _ => AlertTo::Recipient,
                    };
                    Action::Alert(to, span)
                }
                _ => {
                    let text = self.string_opt(inner.nth(1), span);
                    Action::Tag(text, span)
                }
            };
            #[cfg(debug_assertions)]
            debug_assert_eq!(action.span(), walked, "action span");
            out.push(action);
        }
        out
    }
}

// `Rule` is pest's rule enum here; the AST's rule struct is imported under another name.
use crate::syntax::ast::Rule as Rule_;

/// Most syntax errors reported for one file.
const MAX_SYNTAX_ERRORS: usize = 20;

use crate::syntax::prescan::ITEM_KEYWORDS;

/// The byte offset of the first line after `after` whose first word starts an item.
fn next_item_start(src: &str, after: usize) -> Option<usize> {
    let mut line_start = src.get(after..)?.find('\n').map(|i| after + i + 1)?;
    loop {
        let line = &src[line_start..];
        let indent = line.len() - line.trim_start_matches([' ', '\t', '\r']).len();
        let rest = &line[indent..];
        let word: &str = &rest[..rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())];
        if ITEM_KEYWORDS.contains(&word) {
            return Some(line_start + indent);
        }
        line_start += line.find('\n')? + 1;
    }
}

/// Turns pest's error (from parsing `src[offset..]`) into a `syntax`
/// diagnostic with friendly expectations.
fn syntax_error(src: &str, offset: usize, e: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = offset
        + match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((s, _)) => s,
        };
    let found = describe_found(src, pos);
    let mut name_expected = false;
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<&str> =
                positives.iter().filter_map(|r| describe_rule(*r)).collect();
            name_expected = expected.contains(&"a name");
            expected.sort_unstable();
            expected.dedup();
            match expected.len() {
                0 => format!("unexpected {found}"),
                1 => format!("expected {}, found {found}", expected[0]),
                _ => {
                    let last = expected.pop().unwrap_or_default();
                    format!("expected {} or {last}, found {found}", expected.join(", "))
                }
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    if let Some(help) = unterminated_regex(src, pos) {
        let end = src
            .get(pos..)
            .and_then(|r| r.find('\n'))
            .map_or(src.len(), |i| pos + i);
        return Diagnostic::new(
            Code::Syntax,
            src,
            Span::new(pos, end),
            "unterminated regex: no closing `/` on this line",
        )
        .with_help(help);
    }
    let end = (pos + found_len(src, pos)).min(src.len());
    let mut d = Diagnostic::new(Code::Syntax, src, Span::new(pos, end), message);
    if let Some(help) = syntax_help(src, pos, name_expected) {
        d.help = Some(help);
    }
    d
}

/// When `pos` is a `/` that starts a regex the line does not close (as the
/// grammar reads it: `\/` is an escaped slash), the help for it.
fn unterminated_regex(src: &str, pos: usize) -> Option<String> {
    let line = src.get(pos..)?.strip_prefix('/')?;
    let line = line.split('\n').next().unwrap_or("");
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' => return None,
            '\\' if chars.peek() == Some(&'/') => {
                chars.next();
            }
            _ => {}
        }
    }
    Some(if line.ends_with("\\/") || line.contains("\\/ ") {
        "`\\/` is an escaped `/`, not the end of the regex: to end a regex with a backslash, write `[\\\\]`".into()
    } else {
        "end the regex with `/` on the same line".into()
    })
}

fn found_len(src: &str, pos: usize) -> usize {
    let rest = src.get(pos..).unwrap_or("");
    let word: usize = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if word > 0 {
        word
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    }
}

fn describe_found(src: &str, pos: usize) -> String {
    let rest = src.get(pos..).unwrap_or("");
    match rest.chars().next() {
        None => "end of file".to_owned(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            format!("`{}`", &rest[..found_len(src, pos)])
        }
        Some('\n') | Some('\r') => "end of line".to_owned(),
        Some(c) if c.is_control() => format!("control character U+{:04X}", c as u32),
        Some(c) => format!("`{c}`"),
    }
}

fn syntax_help(src: &str, pos: usize, name_expected: bool) -> Option<String> {
    let rest = src.get(pos..).unwrap_or("");
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    match word.as_str() {
        "and" | "or" | "not" | "in" | "matches" | "known" | "when" | "then" | "true" | "false"
            if name_expected =>
        {
            Some(format!(
                "`{word}` is a keyword and cannot be used as a name"
            ))
        }
        "if" => Some("conditions start with `when`".into()),
        "AND" | "OR" | "NOT" => Some(format!(
            "keywords are lowercase: write `{}`",
            word.to_lowercase()
        )),
        _ if rest.starts_with('=') && !rest.starts_with("==") => Some("compare with `==`".into()),
        _ if rest.starts_with("&&") => Some("write `and`".into()),
        _ if rest.starts_with("||") => Some("write `or`".into()),
        _ if rest.starts_with('!') && !rest.starts_with("!=") => Some("write `not`".into()),
        _ if rest.starts_with('\'') => Some("strings use double quotes".into()),
        _ => None,
    }
}

fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::policy_item | Rule::kw_policy => "`policy`",
        Rule::mode_item | Rule::kw_mode => "`mode`",
        Rule::admin_item | Rule::kw_admin => "`admin`",
        Rule::fact_item | Rule::kw_fact => "`fact`",
        Rule::list_item | Rule::kw_list => "`list`",
        Rule::allow_item | Rule::kw_allow => "`allow`",
        Rule::rule_item | Rule::kw_rule | Rule::expect_rule => "`rule`",
        Rule::default_item | Rule::kw_default | Rule::expect_default => "`default`",
        Rule::test_item | Rule::kw_test => "`test`",
        Rule::given_clause | Rule::kw_given => "`given`",
        Rule::expect_clause | Rule::kw_expect => "`expect`",
        Rule::when_clause | Rule::kw_when => "`when`",
        Rule::then_clause | Rule::kw_then => "`then`",
        Rule::fact_type | Rule::simple_type | Rule::set_type => "a type",
        Rule::quantifier | Rule::kw_any | Rule::kw_all => "`any` or `all`",
        Rule::enum_type | Rule::kw_enum => "`enum(...)`",
        Rule::lint_name => "a lint name",
        Rule::given => "`FACT = VALUE`",
        Rule::condition | Rule::not_expr => "a condition",
        Rule::paren => "`(`",
        Rule::known_test | Rule::kw_known => "`known`",
        Rule::comparison | Rule::ident => "a name",
        Rule::cmp_tail | Rule::cmp_op => "a comparison operator",
        Rule::in_tail | Rule::kw_in => "`in`",
        Rule::matches_tail | Rule::kw_matches => "`matches`",
        Rule::list_ref => "a list name",
        Rule::list_literal => "`[`",
        Rule::bool_lit => "`true` or `false`",
        Rule::number => "a number",
        Rule::ip_lit | Rule::ipv4_text | Rule::ipv6_text => "an IP address",
        Rule::string | Rule::string_inner | Rule::string_escape => "a string",
        Rule::regex | Rule::regex_inner => "a `/regex/`",
        Rule::actions | Rule::disposition | Rule::disposition_kw => "an action",
        Rule::quarantine | Rule::kw_quarantine => "`quarantine`",
        Rule::alert | Rule::kw_alert => "`alert`",
        Rule::alert_target | Rule::alert_role => "`admin`, `sender`, `recipient` or an address",
        Rule::tag | Rule::kw_tag => "`tag`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_not => "`not`",
        Rule::rbrace => "`}`",
        Rule::rparen => "`)`",
        Rule::rbracket => "`]`",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough rules for several batches, with a mix of every item kind.
    fn many_items(n: usize) -> String {
        let mut src = String::from("policy \"p\"\nfact mode_x: enum(a, b)\nlist l = [\"x\", 1]\n");
        for i in 0..n {
            src.push_str(&format!(
                "# rule {i}\nrule \"r{i}\" {{ when (virus matches \"W{i}*\" or not known virus) and size > {i} then discard, quarantine \"q\" }}\ndefault tag \"t{i}\"\n"
            ));
        }
        src.push_str("test \"t\" { given size = 1 expect pass }\n");
        src
    }

    fn batches_of(src: &str) -> Vec<(usize, usize)> {
        let limits = Limits::default();
        match crate::syntax::prescan::prescan(src, &limits) {
            Ok(s) => s.batches,
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn batches_build_what_one_item_at_a_time_builds() {
        let src = many_items(3_000);
        let batches = batches_of(&src);
        assert!(batches.len() > 2, "{} batches", batches.len());
        let limits = Limits::default();
        let mut errors = Vec::new();
        let (batched, fatal) = parse_items(&src, &batches, 0, &limits, &mut errors);
        assert!(!fatal && errors.is_empty(), "{errors:?}");
        let mut errors = Vec::new();
        let mut b = Builder {
            src: &src,
            base: 0,
            limits: &limits,
            errors: &mut errors,
            context: None,
        };
        let mut one_by_one = Vec::new();
        let read = read_items(&src, 0, 0, |base, pair| {
            b.base = base;
            one_by_one.push(b.item(pair));
        });
        assert!(read.is_ok());
        assert_eq!(batched.len(), 6_004);
        assert_eq!(batched, one_by_one);
    }

    #[test]
    fn an_error_in_a_later_batch_is_worded_as_for_the_whole_file() {
        let good = many_items(3_000);
        for broken in [
            "rule \"x\" { when size > then pass }\n",
            "rule \"x\" { when (a or b then pass }\n",
            "default pass pass\n",
            "garbage\n",
            "rule \"x\" { when a == 1 then pass\n",
        ] {
            let src = format!("{good}{broken}{good}");
            let whole = match PestParser::parse(Rule::file, &src) {
                Err(e) => syntax_error(&src, 0, &e),
                Ok(_) => panic!("parses: {broken}"),
            };
            let limits = Limits::default();
            let mut errors = Vec::new();
            let (_, fatal) = parse_items(&src, &batches_of(&src), 0, &limits, &mut errors);
            assert!(fatal);
            assert_eq!(errors[0], whole, "{broken}");
        }
    }
}
