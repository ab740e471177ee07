//! A hand-written fast path for the common item shapes.
//!
//! pest (grammar/policy.pest) stays the grammar of record and the only
//! source of diagnostics: this reader builds, for an item it fully
//! understands, exactly the `ast::Item` that pest and the AST builder
//! (parser.rs) would build — same nodes, same spans, same decoded literals —
//! and gives up (`None`) on anything else: any syntax error, any literal the
//! builder would report (bad escape, oversize string or regex, number out of
//! range, list over the limit), any shape it does not read. The item is then
//! parsed by pest as before, so every message still comes from there.
//!
//! It is a byte-level single-pass recursive descent. Where the grammar has
//! an ordered choice, the alternative is decided the way PEG decides it:
//! either from the first token (the alternatives start differently), or by
//! an exact copy of the earlier alternative's match (`ip_lit`, `number`),
//! so that a later alternative is only taken when pest takes it too. Once an
//! alternative is chosen, any failure inside it gives the item up. Paren
//! nesting is bounded by the pre-pass and again by [`MAX_DEPTH`] here.
//!
//! `tests/fast_syntax.rs` (through [`crate::syntax::differential`]) checks
//! every policy of the repository, generated policies and byte mutations of
//! them: the fast path and pest-only give the same AST and diagnostics.

use crate::diagnostics::Span;
use crate::limits::Limits;
use crate::syntax::ast::*;
use std::borrow::Cow;

/// Deeper parentheses are left to pest (the pre-pass bounds them anyway).
const MAX_DEPTH: usize = 64;

/// Whether `w` is a word that is never a name (the grammar's `keyword`:
/// `and or not in matches known true then false when`); one match on the
/// bytes, which the compiler dispatches on the length first.
fn is_keyword(w: &str) -> bool {
    matches!(
        w.as_bytes(),
        b"and"
            | b"or"
            | b"not"
            | b"in"
            | b"matches"
            | b"known"
            | b"true"
            | b"then"
            | b"false"
            | b"when"
    )
}

/// Whether the word `w` (a run of `ident_char`s) is an `ident`.
fn is_ident(w: &str) -> bool {
    w.as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && !is_keyword(w)
}

/// Reads items of `src[at..end]` from `at` (an item start or the whitespace
/// before one) into `items`, as long as the fast path reads them; `previous`
/// becomes the start of the last item read. Returns where pest must go on:
/// `end` when every item of the range was read.
pub(crate) fn items<'s>(
    src: &'s str,
    at: usize,
    end: usize,
    limits: &Limits,
    items: &mut Vec<Item<'s>>,
    previous: &mut usize,
) -> usize {
    let (Some(text), Some(bytes)) = (src.get(..end), src.as_bytes().get(..end)) else {
        return at;
    };
    let mut r = Reader {
        s: text,
        b: bytes,
        pos: at,
        limits,
        depth: 0,
    };
    r.skip();
    while r.pos < end {
        let start = r.pos;
        let Some(item) = r.item() else {
            return start;
        };
        items.push(item);
        *previous = start;
        r.skip();
    }
    end
}

struct Reader<'s, 'l> {
    s: &'s str,
    b: &'s [u8],
    pos: usize,
    limits: &'l Limits,
    depth: usize,
}

/// The grammar's `ident_char`s: ASCII letters, digits and `_` (the
/// pre-pass's word bytes).
#[inline]
fn is_ident_char(c: u8) -> bool {
    crate::syntax::prescan::is_word_byte(c)
}

/// The end of the run of ASCII digits from `p`.
fn digits(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

/// `ip_lit` as pest matches it from `p`: its end, or `None` where it fails.
fn ip_lit(b: &[u8], p: usize) -> Option<usize> {
    // `(ipv4_text | ipv6_text)`: the first that matches is kept.
    let mut e = ipv4(b, p).or_else(|| ipv6(b, p))?;
    if b.get(e) == Some(&b'/') {
        let d = digits(b, e + 1);
        if d > e + 1 {
            e = d;
        }
    }
    match b.get(e) {
        Some(&c) if is_ident_char(c) || matches!(c, b'.' | b':' | b'/') => None,
        _ => Some(e),
    }
}

fn ipv4(b: &[u8], p: usize) -> Option<usize> {
    let mut e = digits(b, p);
    if e == p {
        return None;
    }
    for _ in 0..3 {
        if b.get(e) != Some(&b'.') {
            return None;
        }
        let d = digits(b, e + 1);
        if d == e + 1 {
            return None;
        }
        e = d;
    }
    Some(e)
}

fn ipv6(b: &[u8], p: usize) -> Option<usize> {
    let mut e = p;
    while b.get(e).is_some_and(u8::is_ascii_hexdigit) {
        e += 1;
    }
    if b.get(e) != Some(&b':') {
        return None;
    }
    e += 1;
    while b
        .get(e)
        .is_some_and(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
    {
        e += 1;
    }
    Some(e)
}

/// `number` as pest matches it from `p`.
fn number(b: &[u8], p: usize) -> Option<usize> {
    let mut e = p;
    if b.get(e) == Some(&b'-') {
        e += 1;
    }
    let d = digits(b, e);
    if d == e {
        return None;
    }
    e = d;
    if b.get(e) == Some(&b'.') {
        let d = digits(b, e + 1);
        if d > e + 1 {
            e = d;
        }
    }
    if matches!(b.get(e), Some(b'e' | b'E')) {
        let mut f = e + 1;
        if matches!(b.get(f), Some(b'+' | b'-')) {
            f += 1;
        }
        let d = digits(b, f);
        if d > f {
            e = d;
        }
    }
    match b.get(e) {
        Some(&c) if is_ident_char(c) || matches!(c, b'.' | b':') => None,
        _ => Some(e),
    }
}

/// `parts` joined by `join` (two or more), or the single part (the builder's `group`).
fn group<'s>(
    mut parts: Vec<Cond<'s>>,
    join: fn(Vec<Cond<'s>>, Span) -> Cond<'s>,
) -> Option<Cond<'s>> {
    if parts.len() == 1 {
        return parts.pop();
    }
    let start = parts.first()?.span().start;
    let end = parts.last()?.span().end;
    Some(join(parts, Span::new(start, end)))
}

fn disposition_kind(w: &str) -> Option<DispositionKind> {
    Some(match w {
        "pass" => DispositionKind::Pass,
        "discard" => DispositionKind::Discard,
        "bounce" => DispositionKind::Bounce,
        "reject" => DispositionKind::Reject,
        "tempfail" => DispositionKind::Tempfail,
        _ => return None,
    })
}

fn starts_action(w: &str) -> bool {
    disposition_kind(w).is_some() || matches!(w, "quarantine" | "alert" | "tag")
}

impl<'s> Reader<'s, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// The grammar's `WHITESPACE*` (blanks, line ends, `#` comments, BOM).
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                0xEF if self.b.get(self.pos + 1..self.pos + 3) == Some(&[0xBB, 0xBF]) => {
                    self.pos += 3;
                }
                _ => return,
            }
        }
    }

    /// The run of `ident_char`s at the current place (maybe empty).
    fn word(&self) -> &'s str {
        let mut e = self.pos;
        while self.b.get(e).is_some_and(|&c| is_ident_char(c)) {
            e += 1;
        }
        self.s.get(self.pos..e).unwrap_or("")
    }

    /// Whether the word here ([`Reader::word`]) is `w`: its bytes, then no
    /// `ident_char` (without scanning a longer word to its end).
    fn at_word(&self, w: &[u8]) -> bool {
        self.b.get(self.pos..self.pos + w.len()) == Some(w)
            && !self
                .b
                .get(self.pos + w.len())
                .is_some_and(|&c| is_ident_char(c))
    }

    /// Takes `c` or gives up.
    fn punct(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    /// Whether an `ident` starts here.
    fn at_ident(&self) -> bool {
        is_ident(self.word())
    }

    fn ident(&mut self) -> Option<Name<'s>> {
        let w = self.word();
        self.name(w)
    }

    /// The `ident` `w` (the word at the current place), taken; `None` if
    /// `w` is not one.
    fn name(&mut self, w: &'s str) -> Option<Name<'s>> {
        if !is_ident(w) {
            return None;
        }
        let start = self.pos;
        self.pos += w.len();
        Some(Name {
            text: w,
            span: Span::new(start, self.pos),
        })
    }

    fn item(&mut self) -> Option<Item<'s>> {
        let start = self.pos;
        let w = self.word();
        self.pos += w.len();
        let kw_end = self.pos;
        self.skip();
        Some(match w {
            "rule" => Item::Rule(self.rule(start, kw_end)?),
            "test" => Item::Test(self.test(start)?),
            "list" => {
                let name = self.ident()?;
                self.skip();
                self.punct(b'=')?;
                self.skip();
                let (values, _) = self.list_literal()?;
                Item::List(ListDecl {
                    name,
                    values,
                    span: Span::new(start, self.pos),
                })
            }
            "fact" => {
                let name = self.ident()?;
                self.skip();
                self.punct(b':')?;
                self.skip();
                let ty = self.fact_type()?;
                Item::Fact(FactDecl {
                    name,
                    ty,
                    span: Span::new(start, self.pos),
                })
            }
            "allow" => {
                self.punct(b'(')?;
                self.skip();
                let names = self.separated(Self::lint_name, |p| {
                    p.peek().is_some_and(|c| c.is_ascii_alphabetic())
                })?;
                self.skip();
                self.punct(b')')?;
                Item::Allow(names, Span::new(start, self.pos))
            }
            "default" => {
                let actions = self.actions()?;
                let end = actions.last()?.span().end;
                Item::Default(actions, Span::new(start, end))
            }
            "policy" => {
                let s = self.string()?;
                let span = Span::new(start, s.span.end);
                Item::Policy(s, span)
            }
            "admin" => {
                let s = self.string()?;
                let span = Span::new(start, s.span.end);
                Item::Admin(s, span)
            }
            "mode" => {
                let name = self.ident()?;
                let span = Span::new(start, name.span.end);
                Item::Mode(name, span)
            }
            _ => return None,
        })
    }

    fn lint_name(&mut self) -> Option<Name<'s>> {
        let start = self.pos;
        if !self.peek()?.is_ascii_alphabetic() {
            return None;
        }
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            self.pos += 1;
        }
        Some(Name {
            text: self.s.get(start..self.pos)?,
            span: Span::new(start, self.pos),
        })
    }

    fn fact_type(&mut self) -> Option<TypeExpr<'s>> {
        let start = self.pos;
        if self.peek() == Some(b'[') {
            self.pos += 1;
            self.skip();
            let elem = self.ident()?;
            self.skip();
            self.punct(b']')?;
            return Some(TypeExpr::Set(elem, Span::new(start, self.pos)));
        }
        if self.at_word(b"enum") {
            self.pos += 4;
            self.skip();
            if self.peek() == Some(b'(') {
                self.pos += 1;
                self.skip();
                let names = self.separated(Self::ident, |p| p.at_ident())?;
                self.skip();
                self.punct(b')')?;
                return Some(TypeExpr::Enum(names, Span::new(start, self.pos)));
            }
            // A type named `enum` (the checker refuses it).
            self.pos = start;
        }
        Some(TypeExpr::Simple(self.ident()?))
    }

    fn rule(&mut self, start: usize, kw_end: usize) -> Option<Rule<'s>> {
        let name = self.string()?;
        self.skip();
        self.punct(b'{')?;
        self.skip();
        let mut when = None;
        if self.at_word(b"when") {
            self.pos += 4;
            self.skip();
            when = Some(self.operands()?);
            self.skip();
        }
        if !self.at_word(b"then") {
            return None;
        }
        self.pos += 4;
        self.skip();
        let actions = self.actions()?;
        self.skip();
        self.punct(b'}')?;
        Some(Rule {
            name,
            when,
            actions,
            keyword: Span::new(start, kw_end),
            span: Span::new(start, self.pos),
        })
    }

    fn test(&mut self, start: usize) -> Option<Test<'s>> {
        let name = self.string()?;
        self.skip();
        self.punct(b'{')?;
        self.skip();
        let mut given = Vec::new();
        if self.at_word(b"given") {
            self.pos += 5;
            self.skip();
            // Another `NAME =`, or the comma was the last.
            given = self.separated(Self::given, |p| {
                let next = p.pos;
                let another = p.at_ident() && {
                    p.pos += p.word().len();
                    p.skip();
                    p.peek() == Some(b'=')
                };
                p.pos = next;
                another
            })?;
            self.skip();
        }
        let mut expects = Vec::new();
        while self.at_word(b"expect") {
            expects.push(self.expect()?);
            self.skip();
        }
        if expects.is_empty() {
            return None;
        }
        self.punct(b'}')?;
        Some(Test {
            name,
            given,
            expects,
            span: Span::new(start, self.pos),
        })
    }

    fn given(&mut self) -> Option<(Name<'s>, Value<'s>)> {
        let fact = self.ident()?;
        self.skip();
        self.punct(b'=')?;
        self.skip();
        let value = if self.peek() == Some(b'[') {
            let (values, span) = self.list_literal()?;
            Value::List(values, span)
        } else {
            self.value()?
        };
        Some((fact, value))
    }

    fn expect(&mut self) -> Option<Expect<'s>> {
        let start = self.pos;
        self.pos += 6;
        self.skip();
        let w = self.word();
        match w {
            "rule" => {
                self.pos += 4;
                self.skip();
                let s = self.string()?;
                let span = Span::new(start, s.span.end);
                Some(Expect::Rule(s, span))
            }
            "default" => {
                self.pos += 7;
                Some(Expect::Default(Span::new(start, self.pos)))
            }
            _ if starts_action(w) => {
                let actions = self.actions()?;
                let end = actions.last()?.span().end;
                Some(Expect::Actions(actions, Span::new(start, end)))
            }
            _ => None,
        }
    }

    /// `action ("," action)* ","?`
    fn actions(&mut self) -> Option<Vec<Action<'s>>> {
        self.separated(Self::action, |p| starts_action(p.word()))
    }

    /// `item ("," item)* ","?`, the grammar's shape for names, `given`
    /// bindings and actions: items are read while `another` sees one start
    /// after a comma. A trailing comma is consumed; the space after the
    /// last item or comma is not.
    fn separated<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Option<T>,
        another: impl Fn(&mut Self) -> bool,
    ) -> Option<Vec<T>> {
        // Room for a few items at once (a `Vec` of one grows to four).
        let mut out = Vec::with_capacity(4);
        out.push(item(self)?);
        loop {
            let save = self.pos;
            self.skip();
            if self.punct(b',').is_none() {
                self.pos = save;
                break;
            }
            let after = self.pos;
            self.skip();
            if !another(self) {
                self.pos = after;
                break;
            }
            out.push(item(self)?);
        }
        Some(out)
    }

    fn action(&mut self) -> Option<Action<'s>> {
        let start = self.pos;
        let w = self.word();
        self.pos += w.len();
        let kw_end = self.pos;
        self.skip();
        let optional_string = |r: &mut Self| -> Option<Option<StrLit<'s>>> {
            if r.peek() == Some(b'"') {
                Some(Some(r.string()?))
            } else {
                r.pos = kw_end;
                Some(None)
            }
        };
        if let Some(kind) = disposition_kind(w) {
            let reply = optional_string(self)?;
            let end = reply.as_ref().map_or(kw_end, |r| r.span.end);
            return Some(Action::Disposition(kind, reply, Span::new(start, end)));
        }
        match w {
            "quarantine" => {
                let bucket = optional_string(self)?;
                let end = bucket.as_ref().map_or(kw_end, |b| b.span.end);
                Some(Action::Quarantine(bucket, Span::new(start, end)))
            }
            "alert" => {
                let to = if self.peek() == Some(b'"') {
                    AlertTo::Address(self.string()?)
                } else {
                    let to = match self.word() {
                        "admin" => AlertTo::Admin,
                        "sender" => AlertTo::Sender,
                        "recipient" => AlertTo::Recipient,
                        _ => return None,
                    };
                    self.pos += self.word().len();
                    to
                };
                Some(Action::Alert(to, Span::new(start, self.pos)))
            }
            "tag" => {
                let s = self.string()?;
                let span = Span::new(start, s.span.end);
                Some(Action::Tag(s, span))
            }
            _ => None,
        }
    }

    /// `not_expr ((or | and) not_expr)*`, grouped as the builder groups it.
    fn operands(&mut self) -> Option<Cond<'s>> {
        let mut ors = Vec::new();
        // Room for a few operands at once (a `Vec` of one grows to four).
        let mut ands = Vec::with_capacity(4);
        ands.push(self.not_expr()?);
        loop {
            let save = self.pos;
            self.skip();
            let w = self.word();
            let or = w == "or";
            if !or && w != "and" {
                self.pos = save;
                break;
            }
            self.pos += w.len();
            self.skip();
            let c = self.not_expr()?;
            if or {
                ors.push(group(std::mem::take(&mut ands), Cond::And)?);
            }
            ands.push(c);
        }
        if ors.is_empty() {
            return group(ands, Cond::And);
        }
        ors.push(group(ands, Cond::And)?);
        group(ors, Cond::Or)
    }

    fn not_expr(&mut self) -> Option<Cond<'s>> {
        if !self.at_word(b"not") {
            return self.atom();
        }
        let mut nots = Vec::new();
        while self.at_word(b"not") {
            nots.push(self.pos);
            self.pos += 3;
            self.skip();
        }
        let mut cond = self.atom()?;
        for start in nots.into_iter().rev() {
            let s = Span::new(start, cond.span().end);
            cond = Cond::Not(Box::new(cond), s);
        }
        Some(cond)
    }

    fn atom(&mut self) -> Option<Cond<'s>> {
        let start = self.pos;
        if self.peek()? == b'(' {
            if self.depth >= MAX_DEPTH {
                return None;
            }
            self.depth += 1;
            self.pos += 1;
            self.skip();
            let inner = self.operands()?;
            self.skip();
            self.punct(b')')?;
            self.depth -= 1;
            return Some(Cond::Paren(Box::new(inner), Span::new(start, self.pos)));
        }
        let w = self.word();
        match w {
            "known" => {
                self.pos += 5;
                self.skip();
                let fact = self.ident()?;
                let span = Span::new(start, fact.span.end);
                return Some(Cond::Known(fact, span));
            }
            "true" | "false" => {
                self.pos += w.len();
                return Some(Cond::Bool(w == "true", Span::new(start, self.pos)));
            }
            _ => {}
        }
        let name = self.name(w)?;
        let save = self.pos;
        self.skip();
        if self.at_tail() {
            return self.tail(name);
        }
        if let ("any" | "all", true) = (w, self.at_ident()) {
            let quant = if w == "all" { Quant::All } else { Quant::Any };
            let fact = self.ident()?;
            self.skip();
            if self.at_tail() {
                let inner = self.tail(fact)?;
                let span = Span::new(start, inner.span().end);
                return Some(Cond::Quant(quant, name.span, Box::new(inner), span));
            }
        }
        self.pos = save;
        Some(Cond::Fact(name))
    }

    /// Whether a `comparison_tail` starts here (its first token).
    fn at_tail(&self) -> bool {
        matches!(self.peek(), Some(b'<' | b'>'))
            || matches!(self.b.get(self.pos..self.pos + 2), Some(b"==" | b"!="))
            || self.at_word(b"in")
            || self.at_word(b"matches")
    }

    fn tail(&mut self, fact: Name<'s>) -> Option<Cond<'s>> {
        let start = fact.span.start;
        let w = self.word();
        if w == "in" || w == "matches" {
            self.pos += w.len();
            self.skip();
            let operand = match self.peek()? {
                b'[' if w == "in" => {
                    let (values, span) = self.list_literal()?;
                    Operand::List(values, span)
                }
                b'"' if w == "matches" => Operand::Value(Value::Str(self.string()?)),
                b'/' if w == "matches" => Operand::Value(self.regex()?),
                _ => match ip_lit(self.b, self.pos) {
                    Some(e) if w == "in" => {
                        let span = Span::new(self.pos, e);
                        let text = self.s.get(self.pos..e)?;
                        self.pos = e;
                        Operand::Value(Value::Ip(text, span))
                    }
                    _ => Operand::ListRef(self.ident()?),
                },
            };
            let end = match &operand {
                Operand::List(_, s) => s.end,
                Operand::ListRef(n) => n.span.end,
                Operand::Value(v) => v.span().end,
            };
            let span = Span::new(start, end);
            return Some(if w == "in" {
                Cond::In(fact, operand, span)
            } else {
                Cond::Matches(fact, operand, span)
            });
        }
        let two = self.b.get(self.pos..self.pos + 2);
        let (op, len) = match two {
            Some(b"==") => (CmpOp::Eq, 2),
            Some(b"!=") => (CmpOp::Ne, 2),
            Some(b"<=") => (CmpOp::Le, 2),
            Some(b">=") => (CmpOp::Ge, 2),
            _ => match self.peek()? {
                b'<' => (CmpOp::Lt, 1),
                b'>' => (CmpOp::Gt, 1),
                _ => return None,
            },
        };
        self.pos += len;
        self.skip();
        let value = self.value()?;
        let span = Span::new(start, value.span().end);
        Some(Cond::Compare(fact, op, value, span))
    }

    /// `"[" (value ("," value)* ","?)? "]"`: the values and the list's place.
    fn list_literal(&mut self) -> Option<(Vec<Value<'s>>, Span)> {
        let start = self.pos;
        self.punct(b'[')?;
        self.skip();
        let mut values = Vec::new();
        if self.peek() != Some(b']') {
            loop {
                values.push(self.value()?);
                self.skip();
                if self.punct(b',').is_none() {
                    break;
                }
                self.skip();
                if self.peek() == Some(b']') {
                    break;
                }
            }
        }
        self.punct(b']')?;
        if values.len() > self.limits.max_list_items {
            return None;
        }
        Some((values, Span::new(start, self.pos)))
    }

    /// `string | regex | ip_lit | number | bool_lit | ident`
    fn value(&mut self) -> Option<Value<'s>> {
        let start = self.pos;
        match self.peek()? {
            b'"' => return Some(Value::Str(self.string()?)),
            b'/' => return self.regex(),
            _ => {}
        }
        if let Some(e) = ip_lit(self.b, start) {
            let text = self.s.get(start..e)?;
            self.pos = e;
            return Some(Value::Ip(text, Span::new(start, e)));
        }
        if let Some(e) = number(self.b, start) {
            let text = self.s.get(start..e)?;
            let span = Span::new(start, e);
            self.pos = e;
            return if text.contains(['.', 'e', 'E']) {
                let f = text.parse::<f64>().ok().filter(|f| f.is_finite())?;
                Some(Value::Float(f, text, span))
            } else {
                Some(Value::Int(text.parse::<i64>().ok()?, span))
            };
        }
        match self.word() {
            w @ ("true" | "false") => {
                self.pos += w.len();
                Some(Value::Bool(w == "true", Span::new(start, self.pos)))
            }
            _ => Some(Value::Word(self.ident()?)),
        }
    }

    /// `/regex/`; over the string limit is left to the builder.
    fn regex(&mut self) -> Option<Value<'s>> {
        let start = self.pos;
        self.punct(b'/')?;
        let mut e = self.pos;
        loop {
            match self.b.get(e) {
                Some(b'\\') if self.b.get(e + 1) == Some(&b'/') => e += 2,
                Some(b'/' | b'\n') | None => break,
                Some(_) => e += 1,
            }
        }
        if self.b.get(e) != Some(&b'/') {
            return None;
        }
        let body = self.s.get(self.pos..e)?;
        if body.len() > self.limits.max_string_bytes {
            return None;
        }
        self.pos = e + 1;
        let value = if body.contains("\\/") {
            Cow::Owned(body.replace("\\/", "/"))
        } else {
            Cow::Borrowed(body)
        };
        Some(Value::Regex(value, Span::new(start, self.pos)))
    }

    /// A string literal; its escapes decoded as the builder decodes them,
    /// or `None` for anything the builder would report.
    fn string(&mut self) -> Option<StrLit<'s>> {
        let start = self.pos;
        self.punct(b'"')?;
        let mut e = self.pos;
        let mut escaped = false;
        loop {
            match self.b.get(e)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    // `string_escape` is `\` and any character; the bytes
                    // of a longer character are never `"` or `\`.
                    e += 2;
                }
                _ => e += 1,
            }
        }
        let body = self.s.get(self.pos..e)?;
        if body.len() > self.limits.max_string_bytes {
            return None;
        }
        self.pos = e + 1;
        let span = Span::new(start, self.pos);
        if !escaped {
            return Some(StrLit {
                value: Cow::Borrowed(body),
                span,
            });
        }
        let mut value = String::with_capacity(body.len());
        let mut rest = body;
        while let Some(i) = rest.find('\\') {
            value.push_str(rest.get(..i)?);
            let esc = rest.get(i + 1..)?;
            let mut chars = esc.chars();
            let (c, used) = match chars.next()? {
                '"' => ('"', 1),
                '\\' => ('\\', 1),
                'n' => ('\n', 1),
                't' => ('\t', 1),
                'u' => {
                    let hex_and_rest = esc.get(1..)?.strip_prefix('{')?;
                    let close = hex_and_rest.find('}')?;
                    let hex = hex_and_rest.get(..close)?;
                    if hex.is_empty()
                        || hex.len() > 6
                        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return None;
                    }
                    let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                    (c, hex.len() + 3)
                }
                _ => return None,
            };
            value.push(c);
            rest = esc.get(used..)?;
        }
        value.push_str(rest);
        Some(StrLit {
            value: Cow::Owned(value),
            span,
        })
    }
}
