//! The checked policy: names resolved to fact ids, literals typed, globs and
//! regexes compiled, lists inlined. Evaluators, the linter and `policy test`
//! work on this model; nothing here can be ill-typed.

use crate::decision::Action;
use crate::diagnostics::{Code, Span};
use crate::facts::{FactId, FactTable, Facts};
use crate::glob::Glob;
use ipnet::IpNet;
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

/// Where the filter sits relative to the MTA's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The filter answers during the SMTP dialogue (milter, proxy): `reject` is clean.
    #[default]
    BeforeQueue,
    /// The filter runs after the MTA accepted the mail: `reject` makes the MTA
    /// send a DSN that carries the original.
    AfterQueue,
}

/// The checked policy.
#[derive(Debug, Clone)]
#[allow(dead_code)] // lint inputs (allows, declarations) are read by the linter
pub(crate) struct Model {
    pub(crate) name: Option<String>,
    pub(crate) mode: Mode,
    pub(crate) admins: Vec<String>,
    pub(crate) facts: FactTable,
    /// Declaration spans of custom facts (index = id - builtins), for `unused-fact`.
    pub(crate) fact_decls: Vec<Span>,
    /// Whether a rule condition uses each custom fact (same indexing).
    pub(crate) fact_used: Vec<bool>,
    pub(crate) lists: Vec<ListInfo>,
    pub(crate) rules: Vec<RuleModel>,
    pub(crate) default: DefaultModel,
    pub(crate) tests: Vec<TestModel>,
    /// `allow(...)` that cover the whole file.
    pub(crate) file_allows: Vec<Code>,
    /// What is left of [`crate::Limits::max_regex_total_bytes`] after the
    /// policy's regexes: what merged glob lists may use when compiled.
    pub(crate) regex_budget: usize,
}

/// A named list, for `unused-list`.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) struct ListInfo {
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) used: bool,
}

/// One rule.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) struct RuleModel {
    pub(crate) name: String,
    /// The `rule` keyword.
    pub(crate) keyword: Span,
    /// `None`: always applies.
    pub(crate) when: Option<Expr>,
    pub(crate) actions: Vec<Action>,
    pub(crate) allows: Vec<Code>,
}

/// The default actions.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) struct DefaultModel {
    pub(crate) actions: Vec<Action>,
    /// The `default` keyword; `None` when the policy has no `default` (implicit `pass`).
    pub(crate) keyword: Option<Span>,
    pub(crate) allows: Vec<Code>,
}

/// One `test` block.
#[derive(Debug, Clone)]
pub(crate) struct TestModel {
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) given: Facts,
    pub(crate) expects: Vec<ExpectModel>,
}

/// One `expect` line.
#[derive(Debug, Clone)]
pub(crate) enum ExpectModel {
    Actions(Vec<Action>, Span),
    Rule(String, Span),
    Default(Span),
}

/// A typed condition.
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) span: Span,
}

/// The condition forms after checking.
#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    /// `true` / `false`
    Const(bool),
    /// `known FACT`
    Known(FactId),
    /// A bare bool fact.
    IsTrue(FactId),
    /// `FACT op LITERAL` (`==`, `!=` on any type; ordering on numbers).
    Compare(FactId, Op, Lit),
    /// Exact membership: `FACT in [..]` for strings, numbers, enums, bools.
    InSet(FactId, Arc<[Lit]>),
    /// IP membership in addresses and networks.
    InNets(FactId, Arc<[IpNet]>),
    /// Any of the globs matches (case-insensitive, whole string).
    Globs(FactId, Arc<[Glob]>),
    /// The regex finds a match (case-insensitive unless the pattern says otherwise).
    Regex(FactId, Arc<crate::re::Re>),
    /// `all ...` on a set fact: the set holds a name and every name
    /// satisfies the inner leaf (`Compare` with `==`, `InSet`, `Globs` or
    /// `Regex` on the same fact). Without `all`, a leaf on a set holds when
    /// any name satisfies it.
    All(Box<ExprKind>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Whether `ord` (fact compared to literal) satisfies the operator.
    pub(crate) fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    Ip(IpAddr),
    /// An enum value's index in its fact's type.
    Enum(u16),
}

/// A fact's value during evaluation, borrowed from the facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Ip(IpAddr),
    Enum(u16),
    /// A set fact's names (a single name may also come as [`Val::Str`]).
    Set(&'a [String]),
}

impl Val<'_> {
    /// The value as a policy writes it (enum values by name, strings quoted).
    pub(crate) fn describe(&self, ty: &crate::facts::FactType) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.describe_into(ty, &mut out);
        out
    }

    /// [`Val::describe`] written to `w`, which may stop it early by failing
    /// (see `eval::explain`: a 64 KB value is not described in full).
    pub(crate) fn describe_into(
        &self,
        ty: &crate::facts::FactType,
        w: &mut impl std::fmt::Write,
    ) -> std::fmt::Result {
        match *self {
            Val::Bool(b) => write!(w, "{b}"),
            Val::Int(i) => write!(w, "{i}"),
            Val::Float(f) => write!(w, "{f}"),
            Val::Str(s) => write!(w, "{s:?}"),
            Val::Set(names) => crate::facts::write_set(w, names),
            Val::Ip(ip) => write!(w, "{ip}"),
            Val::Enum(i) => match ty {
                crate::facts::FactType::Enum(values) => match values.get(usize::from(i)) {
                    Some(v) => w.write_str(v),
                    None => write!(w, "{i}"),
                },
                _ => write!(w, "{i}"),
            },
        }
    }
}

/// Compares two numbers exactly (an `i64` and an `f64` are compared without
/// rounding the integer). Non-finite floats never reach here.
pub(crate) fn cmp_numbers(a: Val<'_>, b: &Lit) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Lit::Int(y)) => Some(x.cmp(y)),
        (Val::Float(x), Lit::Float(y)) => x.partial_cmp(y),
        (Val::Int(x), Lit::Float(y)) => Some(cmp_int_float(x, *y)),
        (Val::Float(x), Lit::Int(y)) => Some(cmp_int_float(*y, x).reverse()),
        _ => None,
    }
}

/// `i` compared with `f`, exactly.
pub(crate) fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // Every i64 lies in [-2^63, 2^63); floats outside are simply beyond it.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let fl = f.floor();
    // `fl` is integral and within i64 range here, so the cast is exact.
    let fi = fl as i64;
    match i.cmp(&fi) {
        Ordering::Equal if f > fl => Ordering::Less,
        other => other,
    }
}

impl Lit {
    /// The literal as a fact value.
    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(s),
            Lit::Ip(ip) => Val::Ip(*ip),
            Lit::Enum(e) => Val::Enum(*e),
        }
    }

    /// Whether a fact value equals this literal (exact; numbers numerically).
    pub(crate) fn equals(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Lit::Bool(a), Val::Bool(b)) => *a == b,
            (Lit::Str(a), Val::Str(b)) => &**a == b,
            (Lit::Ip(a), Val::Ip(b)) => *a == b,
            (Lit::Enum(a), Val::Enum(b)) => *a == b,
            (Lit::Int(_) | Lit::Float(_), _) => cmp_numbers(v, self) == Some(Ordering::Equal),
            _ => false,
        }
    }
}
