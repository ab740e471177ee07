//! The abstract syntax tree: what the file says, with a span on every node.
//!
//! The AST is the output of [`crate::syntax::parse`] and the input of the
//! checker and of `fmt`. It keeps the author's words (fact and list names as
//! written, literals as written) so that `fmt` can print them back; meaning
//! (fact ids, types, compiled globs) is added by [`crate::check`].

use crate::diagnostics::Span;

/// A whole policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Items in source order.
    pub items: Vec<Item>,
    /// Comments, in source order, for `fmt`.
    pub comments: Vec<Comment>,
}

/// A `# ...` comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The text after `#`, without the line end.
    pub text: String,
    /// Where the `#` is.
    pub span: Span,
    /// Whether code precedes the comment on its line.
    pub trailing: bool,
}

/// A name as written, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    /// The text.
    pub text: String,
    /// Its place.
    pub span: Span,
}

/// A string literal after escape processing.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    /// The decoded value.
    pub value: String,
    /// Its place, quotes included.
    pub span: Span,
}

/// One top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `policy "NAME"`
    Policy(StrLit, Span),
    /// `mode before_queue|after_queue`
    Mode(Name, Span),
    /// `admin "ADDRESS"`
    Admin(StrLit, Span),
    /// `fact NAME: TYPE`
    Fact(FactDecl),
    /// `list NAME = [...]`
    List(ListDecl),
    /// `allow(code, ...)`
    Allow(Vec<Name>, Span),
    /// `rule "NAME" { ... }`
    Rule(Rule),
    /// `default ACTIONS`
    Default(Vec<Action>, Span),
    /// `test "NAME" { ... }`
    Test(Test),
}

impl Item {
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
pub struct FactDecl {
    /// The declared name.
    pub name: Name,
    /// The declared type.
    pub ty: TypeExpr,
    /// The whole item.
    pub span: Span,
}

/// A type in a `fact` declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `bool`, `int`, `number`, `string`, `ip` (validated by the checker).
    Simple(Name),
    /// `enum(a, b, c)`
    Enum(Vec<Name>, Span),
    /// `[string]`: a set (the element type as written; the checker allows `string`).
    Set(Name, Span),
}

/// `list NAME = [ ... ]`
#[derive(Debug, Clone, PartialEq)]
pub struct ListDecl {
    /// The list's name.
    pub name: Name,
    /// Its elements.
    pub values: Vec<Value>,
    /// The whole item.
    pub span: Span,
}

/// `rule "NAME" { when ... then ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name.
    pub name: StrLit,
    /// The condition; `None` means the rule always applies.
    pub when: Option<Cond>,
    /// The actions after `then`.
    pub actions: Vec<Action>,
    /// The `rule` keyword (where diagnostics about the rule point).
    pub keyword: Span,
    /// The whole item.
    pub span: Span,
}

/// `test "NAME" { given ... expect ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The test's name.
    pub name: StrLit,
    /// `given FACT = VALUE, ...`
    pub given: Vec<(Name, Value)>,
    /// One or more `expect` lines.
    pub expects: Vec<Expect>,
    /// The whole item.
    pub span: Span,
}

/// One `expect` line of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// `expect ACTIONS`
    Actions(Vec<Action>, Span),
    /// `expect rule "NAME"`
    Rule(StrLit, Span),
    /// `expect default`
    Default(Span),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `"text"`
    Str(StrLit),
    /// `/regex/` (the text between the slashes, `\/` already turned into `/`).
    Regex(String, Span),
    /// An IP address or CIDR as written.
    Ip(String, Span),
    /// An integer.
    Int(i64, Span),
    /// A number with a fraction or exponent (kept as written for `fmt`).
    Float(f64, String, Span),
    /// `true` / `false`
    Bool(bool, Span),
    /// A bare word: an enum value.
    Word(Name),
    /// `[a, b]`: a set of values (only in a test's `given`).
    List(Vec<Value>, Span),
}

impl Value {
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
pub enum Cond {
    /// `a or b or ...` (two or more)
    Or(Vec<Cond>, Span),
    /// `a and b and ...` (two or more)
    And(Vec<Cond>, Span),
    /// `not c`
    Not(Box<Cond>, Span),
    /// `( c )`
    Paren(Box<Cond>, Span),
    /// `true` / `false`
    Bool(bool, Span),
    /// `known FACT`
    Known(Name, Span),
    /// a bare (bool) fact
    Fact(Name),
    /// `FACT op VALUE`
    Compare(Name, CmpOp, Value, Span),
    /// `FACT in [..]`, `FACT in LIST`, `FACT in CIDR`
    In(Name, Operand, Span),
    /// `FACT matches "glob"`, `/regex/`, `LIST`
    Matches(Name, Operand, Span),
    /// `any C` / `all C` on a set fact, `C` a comparison, `in` or `matches`;
    /// the first span is the keyword's.
    Quant(Quant, Span, Box<Cond>, Span),
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

impl Cond {
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
pub enum Operand {
    /// `[a, b, c]`
    List(Vec<Value>, Span),
    /// a named list
    ListRef(Name),
    /// a single value (a CIDR after `in`, a glob or regex after `matches`)
    Value(Value),
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
pub enum Action {
    /// `pass|discard|bounce|reject|tempfail ["reply"]`
    Disposition(DispositionKind, Option<StrLit>, Span),
    /// `quarantine ["bucket"]`
    Quarantine(Option<StrLit>, Span),
    /// `alert admin|sender|recipient|"address"`
    Alert(AlertTo, Span),
    /// `tag "text"`
    Tag(StrLit, Span),
}

impl Action {
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
pub enum AlertTo {
    /// `admin`
    Admin,
    /// `sender`
    Sender,
    /// `recipient`
    Recipient,
    /// `"address"`
    Address(StrLit),
}
