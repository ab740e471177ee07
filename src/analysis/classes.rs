//! Abstract fact domains: every fact's values cut into finitely many classes
//! on which every condition leaf of the policy is constant, plus *unknown*.
//!
//! - enums and bools: each value is a class;
//! - numbers: the open intervals and points cut by the literals the policy
//!   compares the fact with (a class is kept only if it holds a value);
//! - IPs: the regions cut by every address and network the policy uses
//!   (networks are prefixes, so they nest: the classes are "network N minus
//!   the networks inside it", numbered in pre-order so that a network is a
//!   contiguous range of classes);
//! - strings: each literal the policy compares the fact with is a class, plus
//!   one "other string" class on which each pattern (glob list or regex) is a
//!   free boolean variable. A literal's pattern results are computed exactly.
//!
//! Every known class has a representative value (except "other"), and leaves
//! are tabulated by testing the representative with the evaluator's own
//! [`test_leaf`], so the abstraction agrees with evaluation by construction.
//! When a fact has too many classes × leaves to tabulate, it falls back to the
//! "other" class alone with every leaf a free boolean: coarser, never unsound.

mod sets;

pub(crate) use sets::SetVars;

use super::truth::{Truth, F, T, U};
use crate::check::model::{cmp_numbers, Expr, ExprKind, Lit, Model, Val};
use crate::eval::{leaf_fact, test_leaf};
use crate::facts::{FactId, FactType};
use ipnet::IpNet;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// "No value" in assignments and indexes.
pub(crate) const NONE: u32 = u32::MAX;

/// Tabulation budget per fact (classes × leaves) before falling back.
const TABULATE_LIMIT: usize = 4_000_000;

/// A representative value of a class, owned.
#[derive(Debug, Clone)]
pub(crate) enum Rep {
    /// This very value.
    Value(Lit),
    /// Any string other than the literals (patterns decided by variables).
    Other,
}

impl Rep {
    fn as_val(&self) -> Option<Val<'_>> {
        match self {
            Rep::Value(lit) => Some(lit.as_val()),
            Rep::Other => None,
        }
    }
}

/// A search variable: a fact (its class) or a pattern on a fact's "other" class.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    /// Number of known classes; the value `unknown` is the index `known`.
    /// Pattern variables have two values (0 = false, 1 = true) and no unknown.
    pub(crate) known: u32,
    /// The "other" class index, or [`NONE`].
    pub(crate) other: u32,
    /// For a pattern variable: its fact and the condition text; else `None`.
    pub(crate) pattern: Option<(FactId, String)>,
    /// The class representatives (facts only).
    pub(crate) reps: Vec<Rep>,
}

impl Var {
    /// Whether this is a fact variable (with an unknown value).
    pub(crate) fn is_fact(&self) -> bool {
        self.pattern.is_none()
    }
}

/// How a leaf behaves on its fact's "other" class.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OtherTruth {
    Const(Truth),
    Pat(u32),
}

/// A tabulated condition leaf.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// The fact variable.
    pub(crate) var: u32,
    /// Sorted, disjoint half-open class ranges (not including "other") where it is true.
    pub(crate) ranges: Vec<(u32, u32)>,
    /// Its truth when the fact is unknown.
    pub(crate) unknown: Truth,
    /// Its truth on the "other" class.
    pub(crate) other: OtherTruth,
    /// Its possible truths over the known non-"other" classes and unknown.
    pub(crate) free: u8,
}

impl Leaf {
    /// Its truth on known, non-"other" class `c`.
    pub(crate) fn on_class(&self, c: u32) -> bool {
        let i = self.ranges.partition_point(|r| r.1 <= c);
        self.ranges.get(i).is_some_and(|r| r.0 <= c)
    }
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    Const(Truth),
    Leaf(u32),
    Not(Box<CExpr>),
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
}

/// The abstraction of a whole policy: variables, leaves and compiled rules.
#[derive(Debug)]
pub(crate) struct Abstraction {
    pub(crate) vars: Vec<Var>,
    pub(crate) leaves: Vec<Leaf>,
    /// One per rule; `Const(True)` for a rule without `when`.
    pub(crate) rules: Vec<CExpr>,
    /// Per rule: the variables its condition may read (sorted, deduplicated).
    pub(crate) rule_vars: Vec<Vec<u32>>,
    /// The variables describing each set fact (see [`sets`]), by fact id.
    pub(crate) sets: Vec<SetVars>,
}

/// A number literal, ordered exactly.
#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn lit(self) -> Lit {
        match self {
            Num::I(i) => Lit::Int(i),
            Num::F(f) => Lit::Float(f),
        }
    }
    fn val(self) -> Val<'static> {
        match self {
            Num::I(i) => Val::Int(i),
            Num::F(f) => Val::Float(f),
        }
    }
    fn cmp(self, other: Num) -> Ordering {
        cmp_numbers(self.val(), &other.lit()).unwrap_or(Ordering::Equal)
    }
}

/// Per-fact facts gathered from the rules.
#[derive(Default)]
struct Gathered {
    nums: Vec<Num>,
    strs: Vec<Box<str>>,
    nets: Vec<IpNet>,
    leaves: usize,
}

fn gather(e: &Expr, g: &mut [Gathered]) {
    match &e.kind {
        ExprKind::Not(i) => gather(i, g),
        ExprKind::And(ps) | ExprKind::Or(ps) => ps.iter().for_each(|p| gather(p, g)),
        ExprKind::Const(_) => {}
        ExprKind::Known(id) => {
            if let Some(x) = g.get_mut(id.index()) {
                x.leaves += 1;
            }
        }
        kind => {
            let Some(id) = leaf_fact(kind) else { return };
            let Some(x) = g.get_mut(id.index()) else {
                return;
            };
            x.leaves += 1;
            let mut lit = |l: &Lit| match l {
                Lit::Int(i) => x.nums.push(Num::I(*i)),
                Lit::Float(f) => x.nums.push(Num::F(*f)),
                Lit::Str(s) => x.strs.push(s.clone()),
                Lit::Ip(ip) => x.nets.push(IpNet::from(*ip)),
                Lit::Bool(_) | Lit::Enum(_) => {}
            };
            // `all C` reads the literals of `C`.
            let kind = match kind {
                ExprKind::All(inner) => inner,
                k => k,
            };
            match kind {
                ExprKind::Compare(_, _, l) => lit(l),
                ExprKind::InSet(_, ls) => ls.iter().for_each(lit),
                ExprKind::InNets(_, nets) => x.nets.extend(nets.iter().copied()),
                _ => {}
            }
        }
    }
}

/// The classes of one fact.
struct FactClasses {
    reps: Vec<Rep>,
    other: u32,
    /// IP facts: network → its class range.
    net_ranges: HashMap<IpNet, (u32, u32)>,
    /// Whether leaves are free booleans on "other" (fallback) instead of tabulated.
    opaque: bool,
    is_ip: bool,
}

impl Abstraction {
    /// Builds the abstraction of `model`'s rules.
    pub(crate) fn new(model: &Model, source: &str) -> Abstraction {
        let nfacts = model.facts.facts.len();
        let mut g: Vec<Gathered> = (0..nfacts).map(|_| Gathered::default()).collect();
        for r in &model.rules {
            if let Some(e) = &r.when {
                gather(e, &mut g);
            }
        }
        // The empty string is always a class of its own (the null sender for
        // `alert-null-sender`; `virus != ""` after `virus matches "?*"`).
        for (info, x) in model.facts.facts.iter().zip(g.iter_mut()) {
            if info.ty == FactType::String {
                x.strs.push("".into());
            }
        }
        let mut classes = Vec::with_capacity(nfacts);
        let mut vars = Vec::with_capacity(nfacts);
        for (info, gath) in model.facts.facts.iter().zip(g) {
            let fc = fact_classes(&info.ty, gath);
            let known = fc.reps.len() as u32;
            vars.push(Var {
                known,
                other: fc.other,
                pattern: None,
                reps: fc.reps.clone(),
            });
            classes.push(fc);
        }
        let mut b = Builder {
            classes,
            vars,
            leaves: Vec::new(),
            pats: HashMap::new(),
            source,
            sets: HashMap::new(),
            aux_leaves: HashMap::new(),
        };
        sets::prepare(model, &mut b);
        let mut rules = Vec::with_capacity(model.rules.len());
        let mut rule_vars = Vec::with_capacity(model.rules.len());
        for r in &model.rules {
            let c = match &r.when {
                None => CExpr::Const(Truth::True),
                Some(e) => b.compile(e),
            };
            let mut vs = Vec::new();
            b.collect_vars(&c, &mut vs);
            vs.sort_unstable();
            vs.dedup();
            rule_vars.push(vs);
            rules.push(c);
        }
        Abstraction {
            sets: b.set_vars(),
            vars: b.vars,
            leaves: b.leaves,
            rules,
            rule_vars,
        }
    }
}

struct Builder<'s> {
    classes: Vec<FactClasses>,
    vars: Vec<Var>,
    leaves: Vec<Leaf>,
    pats: HashMap<(u16, String), u32>,
    source: &'s str,
    /// Set facts with exact formulas, by fact id.
    sets: HashMap<u16, sets::SetFact>,
    /// Leaves "variable in lo..hi" made for set formulas, shared.
    aux_leaves: HashMap<(u32, u32, u32), u32>,
}

impl Builder<'_> {
    fn collect_vars(&self, c: &CExpr, out: &mut Vec<u32>) {
        match c {
            CExpr::Const(_) => {}
            CExpr::Leaf(i) => {
                if let Some(l) = self.leaves.get(*i as usize) {
                    out.push(l.var);
                    if let OtherTruth::Pat(p) = l.other {
                        out.push(p);
                    }
                }
            }
            CExpr::Not(i) => self.collect_vars(i, out),
            CExpr::And(ps) | CExpr::Or(ps) => ps.iter().for_each(|p| self.collect_vars(p, out)),
        }
    }

    fn compile(&mut self, e: &Expr) -> CExpr {
        match &e.kind {
            ExprKind::Const(b) => CExpr::Const(Truth::from_bool(*b)),
            ExprKind::Not(i) => CExpr::Not(Box::new(self.compile(i))),
            ExprKind::And(ps) => CExpr::And(ps.iter().map(|p| self.compile(p)).collect()),
            ExprKind::Or(ps) => CExpr::Or(ps.iter().map(|p| self.compile(p)).collect()),
            ExprKind::Known(id) => self.known_leaf(*id),
            kind => match leaf_fact(kind) {
                Some(id) => self.leaf(id, e),
                None => CExpr::Const(Truth::Unknown),
            },
        }
    }

    fn push_leaf(&mut self, leaf: Leaf) -> CExpr {
        self.leaves.push(leaf);
        CExpr::Leaf(self.leaves.len() as u32 - 1)
    }

    fn known_leaf(&mut self, id: FactId) -> CExpr {
        let Some(fc) = self.classes.get(id.index()) else {
            return CExpr::Const(Truth::Unknown);
        };
        let n = fc.reps.len() as u32;
        let upto = if fc.other == NONE { n } else { fc.other };
        let ranges = if upto > 0 { vec![(0, upto)] } else { vec![] };
        let free = F | if upto > 0 { T } else { 0 };
        let leaf = Leaf {
            var: u32::from(id.0),
            ranges,
            unknown: Truth::False,
            other: OtherTruth::Const(Truth::True),
            free,
        };
        self.push_leaf(leaf)
    }

    fn pattern_var(&mut self, id: FactId, key: String) -> u32 {
        if let Some(v) = self.pats.get(&(id.0, key.clone())) {
            return *v;
        }
        let v = self.vars.len() as u32;
        self.vars.push(Var {
            known: 2,
            other: NONE,
            pattern: Some((id, key.clone())),
            reps: Vec::new(),
        });
        self.pats.insert((id.0, key), v);
        v
    }

    fn leaf(&mut self, id: FactId, e: &Expr) -> CExpr {
        if let Some(c) = self.set_leaf(id, &e.kind) {
            return c;
        }
        let Some(fc) = self.classes.get(id.index()) else {
            return CExpr::Const(Truth::Unknown);
        };
        let text = self
            .source
            .get(e.span.start..e.span.end)
            .unwrap_or("a condition")
            .to_owned();
        let kind = &e.kind;
        let upto = if fc.other == NONE {
            fc.reps.len() as u32
        } else {
            fc.other
        };
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let other;
        if fc.opaque {
            // Fallback: the leaf is its own free boolean.
            let key = format!("#{}:{text}", self.leaves.len());
            other = OtherTruth::Pat(self.pattern_var(id, key));
        } else if fc.is_ip {
            let full = |fc: &FactClasses, net: &IpNet| fc.net_ranges.get(net).copied();
            let mut rs: Vec<(u32, u32)> = Vec::new();
            let mut complement = false;
            let mut fallback = false;
            match kind {
                ExprKind::InNets(_, nets) => {
                    for n in nets.iter() {
                        match full(fc, n) {
                            Some(r) => rs.push(r),
                            None => fallback = true,
                        }
                    }
                }
                ExprKind::Compare(_, op, Lit::Ip(ip)) => {
                    match full(fc, &IpNet::from(*ip)) {
                        Some(r) => rs.push(r),
                        None => fallback = true,
                    }
                    complement = *op == crate::check::model::Op::Ne;
                }
                _ => fallback = true,
            }
            if fallback {
                rs = tabulate(kind, &fc.reps, upto);
            } else {
                rs.sort_unstable();
                rs = merge(rs);
                if complement {
                    rs = complement_ranges(&rs, upto);
                }
            }
            ranges = rs;
            other = OtherTruth::Const(Truth::False);
        } else {
            ranges = tabulate(kind, &fc.reps, upto);
            other = match kind {
                ExprKind::Globs(_, globs) => {
                    if globs.iter().any(|g| g.source.chars().all(|c| c == '*')) {
                        OtherTruth::Const(Truth::True)
                    } else if globs.is_empty() {
                        OtherTruth::Const(Truth::False)
                    } else {
                        let mut srcs: Vec<&str> = globs.iter().map(|g| g.source.as_str()).collect();
                        srcs.sort_unstable();
                        srcs.dedup();
                        let key = format!("g:{}", srcs.join("\u{0}"));
                        OtherTruth::Pat(self.pattern_var(id, key))
                    }
                }
                ExprKind::Regex(_, re) => {
                    let key = format!("r:{}", re.as_str());
                    OtherTruth::Pat(self.pattern_var(id, key))
                }
                // "other" differs from every literal.
                ExprKind::Compare(_, crate::check::model::Op::Ne, _) => {
                    OtherTruth::Const(Truth::True)
                }
                _ => OtherTruth::Const(Truth::False),
            };
        }
        // Name pattern variables after the condition that made them.
        if let OtherTruth::Pat(p) = other {
            if let Some(Var {
                pattern: Some((_, desc)),
                ..
            }) = self.vars.get_mut(p as usize)
            {
                if desc.starts_with("g:") || desc.starts_with("r:") || desc.starts_with('#') {
                    *desc = text.clone();
                }
            }
        }
        let covered: u32 = ranges.iter().map(|r| r.1 - r.0).sum();
        let mut free = U;
        if covered > 0 {
            free |= T;
        }
        if covered < upto {
            free |= F;
        }
        self.push_leaf(Leaf {
            var: u32::from(id.0),
            ranges,
            unknown: Truth::Unknown,
            other,
            free,
        })
    }
}

/// Tests the leaf on every class representative below `upto`; run-length encodes.
fn tabulate(kind: &ExprKind, reps: &[Rep], upto: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (i, rep) in reps.iter().enumerate().take(upto as usize) {
        let Some(v) = rep.as_val() else { continue };
        if test_leaf(kind, v) {
            let i = i as u32;
            match out.last_mut() {
                Some(last) if last.1 == i => last.1 = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
    }
    out
}

fn merge(rs: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(rs.len());
    for r in rs {
        if r.0 >= r.1 {
            continue;
        }
        match out.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    out
}

/// The classes in `[0, upto)` outside `rs` (sorted, disjoint).
pub(crate) fn complement_ranges(rs: &[(u32, u32)], upto: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(rs.len() + 1);
    let mut at = 0;
    for r in rs {
        if r.0 > at {
            out.push((at, r.0.min(upto)));
        }
        at = at.max(r.1);
    }
    if at < upto {
        out.push((at, upto));
    }
    out.retain(|r| r.0 < r.1);
    out
}

fn fact_classes(ty: &FactType, g: Gathered) -> FactClasses {
    let plain = |reps: Vec<Rep>| FactClasses {
        reps,
        other: NONE,
        net_ranges: HashMap::new(),
        opaque: false,
        is_ip: false,
    };
    let opaque = || FactClasses {
        reps: vec![Rep::Other],
        other: 0,
        net_ranges: HashMap::new(),
        opaque: true,
        is_ip: false,
    };
    match ty {
        FactType::Bool => plain(vec![
            Rep::Value(Lit::Bool(false)),
            Rep::Value(Lit::Bool(true)),
        ]),
        FactType::Enum(values) => {
            if values.len() > 64 && values.len().saturating_mul(g.leaves) > TABULATE_LIMIT {
                return opaque();
            }
            plain(
                (0..values.len().min(usize::from(u16::MAX)))
                    .map(|i| Rep::Value(Lit::Enum(i as u16)))
                    .collect(),
            )
        }
        FactType::Int | FactType::Number => {
            let reps = number_classes(g.nums, *ty == FactType::Int);
            if reps.len().saturating_mul(g.leaves) > TABULATE_LIMIT {
                opaque()
            } else {
                plain(reps)
            }
        }
        FactType::String => {
            let mut strs = g.strs;
            strs.sort_unstable();
            strs.dedup();
            if (strs.len() + 1).saturating_mul(g.leaves) > TABULATE_LIMIT {
                return opaque();
            }
            let other = strs.len() as u32;
            let mut reps: Vec<Rep> = strs.into_iter().map(|s| Rep::Value(Lit::Str(s))).collect();
            reps.push(Rep::Other);
            FactClasses {
                reps,
                other,
                net_ranges: HashMap::new(),
                opaque: false,
                is_ip: false,
            }
        }
        FactType::Ip => ip_classes(g.nets),
        // A set of names: every leaf is its own free boolean when the set is
        // known (sound: any combination of leaf results is allowed).
        FactType::StringSet => opaque(),
    }
}

/// The number classes: intervals and points cut by the literals, each with
/// a representative (classes without a value of the fact's type are dropped).
fn number_classes(mut nums: Vec<Num>, int: bool) -> Vec<Rep> {
    nums.retain(|n| match n {
        Num::F(f) => f.is_finite(),
        Num::I(_) => true,
    });
    nums.sort_by(|a, b| a.cmp(*b));
    nums.dedup_by(|a, b| a.cmp(*b) == Ordering::Equal);
    let mut reps = Vec::with_capacity(nums.len() * 2 + 1);
    let mut lo: Option<Num> = None;
    for &n in &nums {
        if let Some(r) = between(lo, Some(n), int) {
            reps.push(r);
        }
        if let Some(r) = point(n, int) {
            reps.push(r);
        }
        lo = Some(n);
    }
    if let Some(r) = between(lo, None, int) {
        reps.push(r);
    }
    reps
}

fn point(n: Num, int: bool) -> Option<Rep> {
    match n {
        Num::I(i) => Some(Rep::Value(Lit::Int(i))),
        Num::F(f) if !int => Some(Rep::Value(Lit::Float(f))),
        // An int fact only holds whole values in i64 range.
        Num::F(f) => int_above_or_at(f)
            .filter(|i| Num::I(*i).cmp(n) == Ordering::Equal)
            .map(|i| Rep::Value(Lit::Int(i))),
    }
}

/// 2^63 as a float: every `i64` lies in `[-2^63, 2^63)`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// The smallest `i64` at or above the finite float `f`, computed exactly.
fn int_above_or_at(f: f64) -> Option<i64> {
    if f >= TWO_63 {
        return None;
    }
    if f < -TWO_63 {
        return Some(i64::MIN);
    }
    // `ceil(f)` is integral and in [-2^63, 2^63]; only 2^63 itself does not fit.
    let c = f.ceil();
    if c >= TWO_63 {
        None
    } else {
        Some(c as i64)
    }
}

/// The smallest `i64` strictly above `n`.
fn int_above(n: Num) -> Option<i64> {
    match n {
        Num::I(i) => i.checked_add(1),
        Num::F(f) => {
            let i = int_above_or_at(f)?;
            if Num::I(i).cmp(n) == Ordering::Equal {
                i.checked_add(1)
            } else {
                Some(i)
            }
        }
    }
}

/// The largest `i64` strictly below `n`.
fn int_below(n: Num) -> Option<i64> {
    match n {
        Num::I(i) => i.checked_sub(1),
        Num::F(f) => {
            if f <= -TWO_63 {
                return None;
            }
            if f > TWO_63 {
                return Some(i64::MAX);
            }
            // `floor(f)` is integral and in [-2^63, 2^63].
            let fl = f.floor();
            if fl >= TWO_63 {
                return Some(i64::MAX);
            }
            let i = fl as i64;
            if Num::I(i).cmp(n) == Ordering::Equal {
                i.checked_sub(1)
            } else {
                Some(i)
            }
        }
    }
}

/// The smallest finite float strictly above `n`.
fn float_above(n: Num) -> Option<f64> {
    let f = match n {
        Num::F(f) => next_up(f),
        Num::I(i) => {
            // `i as f64` rounds; step up until it is above `i`.
            let mut f = i as f64;
            while Num::F(f).cmp(n) != Ordering::Greater {
                f = next_up(f);
            }
            f
        }
    };
    f.is_finite().then_some(f)
}

/// The largest finite float strictly below `n`.
fn float_below(n: Num) -> Option<f64> {
    let f = match n {
        Num::F(f) => next_down(f),
        Num::I(i) => {
            let mut f = i as f64;
            while Num::F(f).cmp(n) != Ordering::Less {
                f = next_down(f);
            }
            f
        }
    };
    f.is_finite().then_some(f)
}

/// A value of the fact's type strictly between `lo` and `hi` (either may be
/// unbounded), or `None` when there is none. Exact at any magnitude: the
/// smallest int and the smallest float above `lo` are computed without
/// rounding, so if the interval holds a value, one of them is it.
fn between(lo: Option<Num>, hi: Option<Num>, int: bool) -> Option<Rep> {
    let inside = |c: Num| {
        lo.is_none_or(|l| c.cmp(l) == Ordering::Greater)
            && hi.is_none_or(|h| c.cmp(h) == Ordering::Less)
    };
    let mut cands: Vec<Num> = Vec::with_capacity(6);
    // Readable values first.
    cands.push(Num::I(0));
    match (lo, hi) {
        (Some(l), _) => cands.extend(int_above(l).map(Num::I)),
        (None, Some(h)) => cands.extend(int_below(h).map(Num::I)),
        (None, None) => {}
    }
    if !int {
        cands.push(Num::F(0.5));
        match (lo, hi) {
            (Some(l), _) => cands.extend(float_above(l).map(Num::F)),
            (None, Some(h)) => cands.extend(float_below(h).map(Num::F)),
            (None, None) => {}
        }
    }
    cands.into_iter().find(|c| inside(*c)).map(|c| match c {
        Num::I(i) => Rep::Value(Lit::Int(i)),
        Num::F(f) => Rep::Value(Lit::Float(f)),
    })
}

fn next_up(f: f64) -> f64 {
    if !f.is_finite() {
        return f;
    }
    if f == 0.0 {
        return f64::from_bits(1);
    }
    let b = f.to_bits();
    f64::from_bits(if f > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(f: f64) -> f64 {
    -next_up(-f)
}

/// A network as a closed range of integers and its address family.
fn net_bounds(n: &IpNet) -> (bool, u128, u128) {
    match n {
        IpNet::V4(v4) => (
            true,
            u128::from(u32::from(v4.network())),
            u128::from(u32::from(v4.broadcast())),
        ),
        IpNet::V6(v6) => (false, u128::from(v6.network()), u128::from(v6.broadcast())),
    }
}

/// The IPv6 block whose addresses evaluation sees as IPv4 (never a v6 value).
fn mapped_block() -> (u128, u128) {
    let lo = u128::from(Ipv6Addr::from(0xffff_0000_0000u128));
    (lo, lo + u128::from(u32::MAX))
}

fn ip_classes(mut nets: Vec<IpNet>) -> FactClasses {
    nets.push(IpNet::V4(ipnet::Ipv4Net::default()));
    nets.push(IpNet::V6(ipnet::Ipv6Net::default()));
    let mut items: Vec<(bool, u128, u128, IpNet)> = nets
        .into_iter()
        .map(|n| {
            let n = n.trunc();
            let (v4, lo, hi) = net_bounds(&n);
            (v4, lo, hi, n)
        })
        .collect();
    // Family (v4 first), then start ascending, then widest first: a pre-order of the nesting.
    items.sort_by(|a, b| {
        (!a.0, a.1, std::cmp::Reverse(a.2)).cmp(&(!b.0, b.1, std::cmp::Reverse(b.2)))
    });
    items.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    let n = items.len();
    // Parent of each node, and where its subtree ends (exclusive, in pre-order
    // positions): prefixes nest, so a stack of open ancestors suffices.
    // All indexes below are < n by construction of the loops.
    let mut parent = vec![usize::MAX; n];
    let mut end = vec![n; n];
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..n {
        let (fam, lo, hi, _) = items[i];
        while let Some(&top) = stack.last() {
            let (tf, tlo, thi, _) = items[top];
            if tf == fam && tlo <= lo && hi <= thi {
                break;
            }
            end[top] = i;
            stack.pop();
        }
        if let Some(&top) = stack.last() {
            parent[i] = top;
        }
        stack.push(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(c) = children.get_mut(*p) {
            c.push(i);
        }
    }
    let (mlo, mhi) = mapped_block();
    // A representative for each node: an address in it outside its children.
    let mut reps: Vec<Option<IpAddr>> = Vec::with_capacity(n);
    for i in 0..n {
        let (v4, lo, hi, _) = items[i];
        let mut blocks: Vec<(u128, u128)> = children[i]
            .iter()
            .map(|&c| (items[c].1, items[c].2))
            .collect();
        if !v4 && lo <= mlo && mhi <= hi {
            blocks.push((mlo, mhi));
            blocks.sort_unstable();
        }
        let mut cursor = Some(lo);
        for (blo, bhi) in blocks {
            match cursor {
                Some(c) if blo > c => break,
                Some(c) if bhi >= c => cursor = bhi.checked_add(1),
                _ => {}
            }
        }
        let rep = cursor.filter(|c| *c <= hi).map(|c| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from(c as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(c))
            }
        });
        reps.push(rep);
    }
    // Compact: keep nonempty nodes; pre-order keeps subtrees contiguous.
    let mut compact = vec![0u32; n + 1];
    let mut count = 0u32;
    for i in 0..n {
        compact[i] = count;
        if reps[i].is_some() {
            count += 1;
        }
    }
    compact[n] = count;
    let mut net_ranges = HashMap::with_capacity(n);
    for i in 0..n {
        net_ranges.insert(items[i].3, (compact[i], compact[end[i]]));
    }
    FactClasses {
        reps: reps
            .into_iter()
            .flatten()
            .map(|ip| Rep::Value(Lit::Ip(ip)))
            .collect(),
        other: NONE,
        net_ranges,
        opaque: false,
        is_ip: true,
    }
}

/// Sorted, disjoint half-open ranges of values.
pub(crate) type Ranges = Vec<(u32, u32)>;

/// The union of two range lists.
pub(crate) fn union(a: &[(u32, u32)], b: &[(u32, u32)]) -> Ranges {
    let mut all: Ranges = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    merge(all)
}

/// The intersection of two range lists.
pub(crate) fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Ranges {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let lo = x.0.max(y.0);
        let hi = x.1.min(y.1);
        if lo < hi {
            out.push((lo, hi));
        }
        if x.1 < y.1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Whether two range lists share a value.
pub(crate) fn intersects(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.0.max(y.0) < x.1.min(y.1) {
            return true;
        }
        if x.1 < y.1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

impl Abstraction {
    /// Every value of fact variable `v` (its known classes and unknown).
    pub(crate) fn all_values(&self, v: u32) -> Ranges {
        let n = self.vars.get(v as usize).map_or(0, |x| x.known + 1);
        vec![(0, n)]
    }

    /// Over-approximations of the values of fact variable `v` under which
    /// `e` can be true, and under which it can be false.
    pub(crate) fn project(&self, e: &CExpr, v: u32) -> (Ranges, Ranges) {
        match e {
            CExpr::Const(Truth::True) => (self.all_values(v), Vec::new()),
            CExpr::Const(Truth::False) => (Vec::new(), self.all_values(v)),
            CExpr::Const(Truth::Unknown) => (Vec::new(), Vec::new()),
            CExpr::Not(inner) => {
                let (t, f) = self.project(inner, v);
                (f, t)
            }
            CExpr::And(ps) | CExpr::Or(ps) => {
                let is_and = matches!(e, CExpr::And(_));
                let mut acc: Option<(Ranges, Ranges)> = None;
                for p in ps {
                    let (t, f) = self.project(p, v);
                    acc = Some(match acc {
                        None => (t, f),
                        Some((at, af)) if is_and => (intersect(&at, &t), union(&af, &f)),
                        Some((at, af)) => (union(&at, &t), intersect(&af, &f)),
                    });
                }
                acc.unwrap_or_else(|| {
                    if is_and {
                        (self.all_values(v), Vec::new())
                    } else {
                        (Vec::new(), self.all_values(v))
                    }
                })
            }
            CExpr::Leaf(i) => {
                let Some(l) = self.leaves.get(*i as usize) else {
                    return (self.all_values(v), self.all_values(v));
                };
                let Some(var) = self.vars.get(v as usize) else {
                    return (self.all_values(v), self.all_values(v));
                };
                if l.var != v {
                    return (self.all_values(v), self.all_values(v));
                }
                let upto = if var.other == NONE {
                    var.known
                } else {
                    var.other
                };
                let mut t = l.ranges.clone();
                let mut f = complement_ranges(&l.ranges, upto);
                let mut extra_t = Vec::new();
                let mut extra_f = Vec::new();
                if var.other != NONE {
                    let o = (var.other, var.other + 1);
                    match l.other {
                        OtherTruth::Const(Truth::True) => extra_t.push(o),
                        OtherTruth::Const(Truth::False) => extra_f.push(o),
                        OtherTruth::Const(Truth::Unknown) => {}
                        OtherTruth::Pat(_) => {
                            extra_t.push(o);
                            extra_f.push(o);
                        }
                    }
                }
                let u = (var.known, var.known + 1);
                match l.unknown {
                    Truth::True => extra_t.push(u),
                    Truth::False => extra_f.push(u),
                    Truth::Unknown => {}
                }
                if !extra_t.is_empty() {
                    t = union(&t, &extra_t);
                }
                if !extra_f.is_empty() {
                    f = union(&f, &extra_f);
                }
                (t, f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a value compares with each literal.
    fn signature(v: Num, lits: &[Num]) -> Vec<Ordering> {
        lits.iter().map(|l| v.cmp(*l)).collect()
    }

    fn rep_num(r: &Rep) -> Num {
        match r {
            Rep::Value(Lit::Int(i)) => Num::I(*i),
            Rep::Value(Lit::Float(f)) => Num::F(*f),
            other => panic!("not a number: {other:?}"),
        }
    }

    /// Every value near the literals (ints and floats, at any magnitude)
    /// compares with the literals like some class representative does.
    #[test]
    fn number_classes_cover_every_value() {
        let two53 = 9_007_199_254_740_992i64;
        let sets: Vec<Vec<Num>> = vec![
            vec![Num::F(1e16)],
            vec![Num::F(9.223_372_036_854_776e18)],
            vec![Num::F(-9.223_372_036_854_776e18)],
            vec![Num::I(i64::MAX), Num::F(9.223_372_036_854_776e18)],
            vec![Num::I(i64::MIN)],
            vec![Num::I(two53 + 1), Num::F(two53 as f64 + 2.0)],
            vec![Num::I(two53), Num::I(two53 + 1), Num::F(two53 as f64)],
            vec![Num::F(0.5), Num::I(1), Num::F(1.5)],
            vec![Num::F(1e300), Num::F(-1e300), Num::I(0)],
            vec![Num::I(5), Num::F(5.0), Num::I(6)],
        ];
        for lits in sets {
            for int in [true, false] {
                let reps = number_classes(lits.clone(), int);
                let sigs: Vec<Vec<Ordering>> =
                    reps.iter().map(|r| signature(rep_num(r), &lits)).collect();
                let mut probes: Vec<Num> = vec![Num::I(0), Num::I(i64::MIN), Num::I(i64::MAX)];
                for l in &lits {
                    let (i, f) = match *l {
                        Num::I(i) => (i, i as f64),
                        Num::F(f) => (f.clamp(-9.2e18, 9.2e18) as i64, f),
                    };
                    for d in -3i64..=3 {
                        probes.extend(i.checked_add(d).map(Num::I));
                    }
                    let mut up = f;
                    let mut down = f;
                    for _ in 0..3 {
                        up = next_up(up);
                        down = next_down(down);
                        probes.push(Num::F(up));
                        probes.push(Num::F(down));
                    }
                    probes.push(Num::F(f));
                }
                for p in probes {
                    if int && matches!(p, Num::F(_)) {
                        continue;
                    }
                    let s = signature(p, &lits);
                    assert!(
                        sigs.contains(&s),
                        "{p:?} (int fact: {int}) against {lits:?} has no class; reps {reps:?}"
                    );
                }
            }
        }
    }
}
