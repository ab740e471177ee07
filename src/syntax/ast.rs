//! The abstract syntax tree: what the file says, with a span on every node.
//!
//! The AST is the output of [`crate::syntax::parse`] and the input of the
//! checker and of `fmt`. It keeps the author's words (fact and list names as
//! written, literals as written) so that `fmt` can print them back; meaning
//! (fact ids, types, compiled globs) is added by [`crate::check`].
//!
//! It borrows the source text (`'s`): names, addresses, numbers' texts and
//! comments are slices of it, and so are strings and regexes without
//! escapes. Parsing allocates no copy of them.

use crate::diagnostics::Span;
use std::borrow::Cow;

/// A whole policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct File<'s> {
    /// Items in source order.
    pub items: Vec<Item<'s>>,
    /// Comments, in source order, for `fmt`.
    pub comments: Vec<Comment<'s>>,
}

/// A `# ...` comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment<'s> {
    /// The text after `#`, without the line end.
    pub text: &'s str,
    /// Where the `#` is.
    pub span: Span,
    /// Whether code precedes the comment on its line.
    pub trailing: bool,
}

/// A name as written, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Name<'s> {
    /// The text (names are always written as they are read).
    pub text: &'s str,
    /// Its place.
    pub span: Span,
}

/// A string literal after escape processing.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit<'s> {
    /// The decoded value (borrowed from the source unless it had escapes).
    pub value: Cow<'s, str>,
    /// Its place, quotes included.
    pub span: Span,
}

/// One top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'s> {
    /// `policy "NAME"`
    Policy(StrLit<'s>, Span),
    /// `mode before_queue|after_queue`
    Mode(Name<'s>, Span),
    /// `admin "ADDRESS"`
    Admin(StrLit<'s>, Span),
    /// `fact NAME: TYPE`
    Fact(FactDecl<'s>),
    /// `list NAME = [...]`
    List(ListDecl<'s>),
    /// `allow(code, ...)`
    Allow(Vec<Name<'s>>, Span),
    /// `rule "NAME" { ... }`
    Rule(Rule<'s>),
    /// `default ACTIONS`
    Default(Vec<Action<'s>>, Span),
    /// `test "NAME" { ... }`
    Test(Test<'s>),
}

impl Item<'_> {
    /// The span of the whole item.
    pub fn span(&self) -> Span {
        match self {
            Item::Policy(_, s) | Item::Mode(_, s) | Item::Admin(_, s) => *s,
            Item::Allow(_, s) | Item::Default(_, s) => *s,
            Item::Fact(f) => f.span,
            Item::List(l) => l.span,
            Item::Rule(r) => r.span,
            Item::Test(t) => t.span,
        }
    }
}

/// `fact NAME: TYPE`
#[derive(Debug, Clone, PartialEq)]
pub struct FactDecl<'s> {
    /// The declared name.
    pub name: Name<'s>,
    /// The declared type.
    pub ty: TypeExpr<'s>,
    /// The whole item.
    pub span: Span,
}

/// A type in a `fact` declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr<'s> {
    /// `bool`, `int`, `number`, `string`, `ip` (validated by the checker).
    Simple(Name<'s>),
    /// `enum(a, b, c)`
    Enum(Vec<Name<'s>>, Span),
    /// `[string]`: a set (the element type as written; the checker allows `string`).
    Set(Name<'s>, Span),
}

/// `list NAME = [ ... ]`
#[derive(Debug, Clone, PartialEq)]
pub struct ListDecl<'s> {
    /// The list's name.
    pub name: Name<'s>,
    /// Its elements.
    pub values: Vec<Value<'s>>,
    /// The whole item.
    pub span: Span,
}

/// `rule "NAME" { when ... then ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Rule<'s> {
    /// The rule's name.
    pub name: StrLit<'s>,
    /// The condition; `None` means the rule always applies.
    pub when: Option<Cond<'s>>,
    /// The actions after `then`.
    pub actions: Vec<Action<'s>>,
    /// The `rule` keyword (where diagnostics about the rule point).
    pub keyword: Span,
    /// The whole item.
    pub span: Span,
}

/// `test "NAME" { given ... expect ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Test<'s> {
    /// The test's name.
    pub name: StrLit<'s>,
    /// `given FACT = VALUE, ...`
    pub given: Vec<(Name<'s>, Value<'s>)>,
    /// One or more `expect` lines.
    pub expects: Vec<Expect<'s>>,
    /// The whole item.
    pub span: Span,
}

/// One `expect` line of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect<'s> {
    /// `expect ACTIONS`
    Actions(Vec<Action<'s>>, Span),
    /// `expect rule "NAME"`
    Rule(StrLit<'s>, Span),
    /// `expect default`
    Default(Span),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'s> {
    /// `"text"`
    Str(StrLit<'s>),
    /// `/regex/` (the text between the slashes, `\/` already turned into `/`).
    Regex(Cow<'s, str>, Span),
    /// An IP address or CIDR as written.
    Ip(&'s str, Span),
    /// An integer.
    Int(i64, Span),
    /// A number with a fraction or exponent (kept as written for `fmt`).
    Float(f64, &'s str, Span),
    /// `true` / `false`
    Bool(bool, Span),
    /// A bare word: an enum value.
    Word(Name<'s>),
    /// `[a, b]`: a set of values (only in a test's `given`).
    List(Vec<Value<'s>>, Span),
}

impl Value<'_> {
    /// The value's place.
    pub fn span(&self) -> Span {
        match self {
            Value::Str(s) => s.span,
            Value::Regex(_, s) | Value::Ip(_, s) | Value::Int(_, s) => *s,
            Value::Float(_, _, s) | Value::Bool(_, s) | Value::List(_, s) => *s,
            Value::Word(n) => n.span,
        }
    }
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond<'s> {
    /// `a or b or ...` (two or more)
    Or(Vec<Cond<'s>>, Span),
    /// `a and b and ...` (two or more)
    And(Vec<Cond<'s>>, Span),
    /// `not c`
    Not(Box<Cond<'s>>, Span),
    /// `( c )`
    Paren(Box<Cond<'s>>, Span),
    /// `true` / `false`
    Bool(bool, Span),
    /// `known FACT`
    Known(Name<'s>, Span),
    /// a bare (bool) fact
    Fact(Name<'s>),
    /// `FACT op VALUE`
    Compare(Name<'s>, CmpOp, Value<'s>, Span),
    /// `FACT in [..]`, `FACT in LIST`, `FACT in CIDR`
    In(Name<'s>, Operand<'s>, Span),
    /// `FACT matches "glob"`, `/regex/`, `LIST`
    Matches(Name<'s>, Operand<'s>, Span),
    /// `any C` / `all C` on a set fact, `C` a comparison, `in` or `matches`;
    /// the first span is the keyword's.
    Quant(Quant, Span, Box<Cond<'s>>, Span),
}

/// `any` or `all` before a condition on a set fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quant {
    /// `any`: some name satisfies it (the same as writing no quantifier).
    Any,
    /// `all`: there is a name, and every name satisfies it.
    All,
}

impl Quant {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Quant::Any => "any",
            Quant::All => "all",
        }
    }
}

impl Cond<'_> {
    /// The condition's place.
    pub fn span(&self) -> Span {
        match self {
            Cond::Or(_, s) | Cond::And(_, s) | Cond::Not(_, s) | Cond::Paren(_, s) => *s,
            Cond::Bool(_, s) | Cond::Known(_, s) => *s,
            Cond::Fact(n) => n.span,
            Cond::Compare(_, _, _, s) | Cond::In(_, _, s) | Cond::Matches(_, _, s) => *s,
            Cond::Quant(_, _, _, s) => *s,
        }
    }
}

/// The right-hand side of `in` / `matches`.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand<'s> {
    /// `[a, b, c]`
    List(Vec<Value<'s>>, Span),
    /// a named list
    ListRef(Name<'s>),
    /// a single value (a CIDR after `in`, a glob or regex after `matches`)
    Value(Value<'s>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// One action as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<'s> {
    /// `pass|discard|bounce|reject|tempfail ["reply"]`
    Disposition(DispositionKind, Option<StrLit<'s>>, Span),
    /// `quarantine ["bucket"]`
    Quarantine(Option<StrLit<'s>>, Span),
    /// `alert admin|sender|recipient|"address"`
    Alert(AlertTo<'s>, Span),
    /// `tag "text"`
    Tag(StrLit<'s>, Span),
}

impl Action<'_> {
    /// The action's place.
    pub fn span(&self) -> Span {
        match self {
            Action::Disposition(_, _, s)
            | Action::Quarantine(_, s)
            | Action::Alert(_, s)
            | Action::Tag(_, s) => *s,
        }
    }
}

/// The five dispositions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DispositionKind {
    /// Deliver.
    Pass,
    /// Accept and drop.
    Discard,
    /// Accept, drop, and send a clean DSN.
    Bounce,
    /// Refuse with a 5xx.
    Reject,
    /// Refuse with a 4xx.
    Tempfail,
}

impl DispositionKind {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            DispositionKind::Pass => "pass",
            DispositionKind::Discard => "discard",
            DispositionKind::Bounce => "bounce",
            DispositionKind::Reject => "reject",
            DispositionKind::Tempfail => "tempfail",
        }
    }
}

/// Who an alert goes to, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertTo<'s> {
    /// `admin`
    Admin,
    /// `sender`
    Sender,
    /// `recipient`
    Recipient,
    /// `"address"`
    Address(StrLit<'s>),
}
