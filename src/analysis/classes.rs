//! Abstract fact domains: every fact's values cut into finitely many classes
//! on which every condition leaf of the policy is constant, plus *unknown*.
//!
//! - enums and bools: each value is a class;
//! - numbers ([`super::numbers`]): the open intervals and points cut by the
//!   literals the policy compares the fact with, exactly at any magnitude;
//! - IPs ([`super::ips`]): the regions cut by every address and network;
//! - strings: each literal the policy compares the fact with is a class (the
//!   empty string always is one), plus one *other* class. On *other*, each
//!   distinct glob list and regex the policy tests is an **atom**: a boolean
//!   variable of the search, whose combinations [`super::strings`] decides
//!   exactly (glob inside glob, glob inside list, disjoint globs).
//!
//! - sets of strings (`virus`, `[string]` facts): up to [`MAX_SLOTS`]
//!   element **slots**, each a string variable with the classes above plus
//!   *absent*; `virus matches G` is "some slot matches", `all virus matches
//!   G` "some slot is present and every present slot matches", `!=` is
//!   `not ==`. A "no" is exact when the slots suffice
//!   ([`Abstraction::set_exact`]): if some set satisfies a question, so does
//!   the subset keeping, for each condition whose truth must not change, one
//!   element (a witness for a true "any", a counterexample for a false
//!   "all"). Dropping elements makes an "any" less true and an "all" more
//!   true, so those are, in the rule that must be true, the "any" outside a
//!   `not` and the "all" under one, and in the rules that must stay not
//!   true the reverse (plus one element when an "all" must stay true).
//!
//! Every known class except *other* has a representative value, and leaves
//! are computed from the literals (binary searches over the sorted classes,
//! prefix/suffix indexes for globs) so that their truth on each class is
//! what the evaluator's own [`test_leaf`] gives on the representative. All
//! of it is counted as work; past the budget a leaf becomes **opaque** (a
//! free boolean on every class): coarser, never unsound, and any answer that
//! depends on it is confirmed by evaluation or reported as not finished.

use super::ips::ip_classes;
use super::numbers::{number_classes, Num};
use super::strings::{AtomTest, StringFact};
use super::truth::{Truth, F, T, U};
use crate::check::model::{Expr, ExprKind, Lit, Model, Op, Val};
use crate::eval::{leaf_fact, test_leaf};
use crate::facts::{FactId, FactTable, FactType};
use crate::glob::fold;
use ipnet::IpNet;
use std::collections::HashMap;

/// "No value" in assignments and indexes.
pub(crate) const NONE: u32 = u32::MAX;

/// A representative value of a class, owned.
#[derive(Debug, Clone)]
pub(crate) enum Rep {
    /// This very value.
    Value(Lit),
    /// Any string other than the literals (atoms decide the rest).
    Other,
    /// A set fact's element slot that holds no element.
    Absent,
}

impl Rep {
    fn as_val(&self) -> Option<Val<'_>> {
        match self {
            Rep::Value(lit) => Some(lit.as_val()),
            Rep::Other | Rep::Absent => None,
        }
    }
}

/// An atom variable: a glob list or regex on a string fact's *other* class,
/// or an opaque leaf.
#[derive(Debug, Clone)]
pub(crate) struct AtomVar {
    /// The fact variable it belongs to.
    pub(crate) fact: u32,
    /// Its index among the fact's string atoms; [`NONE`] for an opaque leaf
    /// (no theory: any truth on any class).
    pub(crate) index: u32,
}

/// A search variable: a fact (its class) or an atom.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    /// Number of known classes; the value `unknown` is the index `known`.
    /// Atoms have two values (0 = false, 1 = true) and no unknown.
    pub(crate) known: u32,
    /// The *other* class index, or [`NONE`].
    pub(crate) other: u32,
    /// For an atom: what it is; `None` for a fact.
    pub(crate) atom: Option<AtomVar>,
    /// The class representatives (facts only).
    pub(crate) reps: Vec<Rep>,
    /// Whether assignments to it are checked by the string theory (a string
    /// fact with atoms, or one of its atoms).
    pub(crate) theory: bool,
    /// For a set fact's extra element slot: the set fact variable (whose
    /// *unknown* is the set's); the slot itself is never unknown.
    pub(crate) slot_of: Option<u32>,
}

impl Var {
    /// Whether this is a fact variable (with an unknown value).
    pub(crate) fn is_fact(&self) -> bool {
        self.atom.is_none()
    }
}

/// How a leaf behaves on its fact's *other* class (or, for an opaque leaf, on every known class).
#[derive(Debug, Clone, Copy)]
pub(crate) enum OtherTruth {
    Const(Truth),
    Atom(u32),
}

/// A tabulated condition leaf.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// The fact variable.
    pub(crate) var: u32,
    /// Sorted, disjoint half-open class ranges (not including *other*) where it is true.
    pub(crate) ranges: Vec<(u32, u32)>,
    /// Its truth when the fact is unknown.
    pub(crate) unknown: Truth,
    /// Its truth on the *other* class.
    pub(crate) other: OtherTruth,
    /// Its possible truths over the known non-*other* classes and unknown.
    pub(crate) free: u8,
    /// Not tabulated (budget): on every known class its truth is the atom in `other`.
    pub(crate) opaque: bool,
    /// For a leaf on a set's extra slot: the set fact variable; when the set
    /// is unknown the leaf is `unknown`. [`NONE`] otherwise.
    pub(crate) gate: u32,
}

impl Leaf {
    /// Its truth on known, non-*other* class `c` (not for opaque leaves).
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

/// The abstraction of one or more rule lists over one fact table:
/// variables, leaves, compiled rules and the string theory.
#[derive(Debug)]
pub(crate) struct Abstraction {
    pub(crate) vars: Vec<Var>,
    pub(crate) leaves: Vec<Leaf>,
    /// One per rule (of every list, one list after the other); `Const(True)`
    /// for a rule without `when`.
    pub(crate) rules: Vec<CExpr>,
    /// Per rule: the variables its condition may read (sorted, deduplicated).
    pub(crate) rule_vars: Vec<Vec<u32>>,
    /// Per fact variable: its strings (string facts only).
    pub(crate) strings: Vec<Option<StringFact>>,
    /// Work spent building it.
    pub(crate) work: u64,
    /// Per fact variable: its element slots (the fact's own variable first;
    /// empty for facts that are not sets).
    pub(crate) slots: Vec<Vec<u32>>,
    /// Per rule: per set fact variable, its set conditions.
    pub(crate) rule_set_leaves: Vec<Vec<SetCount>>,
}

/// What one rule needs of one set fact's elements to keep its truth when
/// elements are dropped (see [`Abstraction::set_exact`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SetCount {
    pub(crate) fact: u32,
    /// Elements to keep so that the rule stays at least as true.
    pub(crate) up: u32,
    /// Elements to keep so that it stays at most as true.
    pub(crate) down: u32,
    /// Whether staying at least (`up_nonempty`) / at most as true needs a
    /// non-empty set (an "all" that must stay true).
    pub(crate) up_nonempty: bool,
    pub(crate) down_nonempty: bool,
}

/// Elements of set fact `fact` to keep so that `e` stays at least (`up`) or
/// at most as true, when the other elements of a set are dropped, and
/// whether the set must stay non-empty. Dropping elements makes an "any"
/// less true and an "all" more true (until the set is empty): a true "any"
/// keeps its witness, a false "all" its counterexample; `and` needs all its
/// parts up but one part down, `or` the reverse.
fn set_need(e: &Expr, fact: FactId, up: bool) -> (u32, bool) {
    match &e.kind {
        ExprKind::Not(x) => set_need(x, fact, !up),
        ExprKind::And(ps) | ExprKind::Or(ps) => {
            let sum = matches!(e.kind, ExprKind::And(_)) == up;
            let mut n = 0u32;
            let mut flag = false;
            for p in ps {
                let (m, f) = set_need(p, fact, up);
                n = if sum { n.saturating_add(m) } else { n.max(m) };
                flag |= f;
            }
            (n, flag)
        }
        kind if leaf_fact(kind) == Some(fact) => match kind {
            ExprKind::All(_) => {
                if up {
                    (0, true)
                } else {
                    (1, false)
                }
            }
            // `!=` is `not ==`.
            ExprKind::Compare(_, Op::Ne, _) => (u32::from(!up), false),
            _ => (u32::from(up), false),
        },
        _ => (0, false),
    }
}

/// Most element slots of a set fact.
pub(crate) const MAX_SLOTS: usize = 3;

/// Per-fact values gathered from the rules.
#[derive(Default)]
struct Gathered {
    nums: Vec<Num>,
    strs: Vec<Box<str>>,
    nets: Vec<IpNet>,
    /// Conditions on the fact (for sets: how many slots are useful).
    leaves: usize,
}

/// Gathers the literals of `e`'s leaves into `g`. A list (shared `Arc`)
/// is read once however many rules use it: `seen` holds the lists read.
fn gather(
    e: &Expr,
    g: &mut [Gathered],
    seen: &mut std::collections::HashSet<(usize, usize)>,
    work: &mut u64,
) {
    // Iterative: conditions may nest deeply.
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        *work += 1;
        match &e.kind {
            ExprKind::Not(i) => stack.push(i),
            ExprKind::And(ps) | ExprKind::Or(ps) => stack.extend(ps.iter()),
            ExprKind::Const(_) | ExprKind::Known(_) => {}
            kind => {
                let Some(id) = leaf_fact(kind) else { continue };
                let Some(x) = g.get_mut(id.index()) else {
                    continue;
                };
                x.leaves += 1;
                // `all C` reads the literals of `C`.
                let kind = match kind {
                    ExprKind::All(inner) => inner,
                    k => k,
                };
                let mut lit = |l: &Lit| match l {
                    Lit::Int(i) => x.nums.push(Num::I(*i)),
                    Lit::Float(f) => x.nums.push(Num::F(*f)),
                    Lit::Str(s) => x.strs.push(s.clone()),
                    Lit::Ip(ip) => x.nets.push(IpNet::from(*ip)),
                    Lit::Bool(_) | Lit::Enum(_) => {}
                };
                match kind {
                    ExprKind::Compare(_, _, l) => lit(l),
                    ExprKind::InSet(_, ls)
                        if seen.insert((id.index(), ls.as_ptr() as *const u8 as usize)) =>
                    {
                        *work += ls.len() as u64;
                        ls.iter().for_each(lit)
                    }
                    ExprKind::InNets(_, nets)
                        if seen.insert((id.index(), nets.as_ptr() as *const u8 as usize)) =>
                    {
                        *work += nets.len() as u64;
                        x.nets.extend(nets.iter().copied())
                    }
                    _ => {}
                }
            }
        }
    }
}

/// How a fact's classes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Bools and enums: class = value index.
    Index,
    /// Numbers: classes in ascending order.
    Ordered,
    /// Strings: sorted literals, then *other*.
    Strings,
    /// IPs: networks are class ranges.
    Ip,
}

/// Folded literals (or reversed folded literals) with their classes, sorted.
type Folded = Vec<(String, u32)>;

/// The classes of one fact.
struct FactClasses {
    reps: Vec<Rep>,
    other: u32,
    shape: Shape,
    /// IP facts: network → its class range.
    net_ranges: HashMap<IpNet, (u32, u32)>,
    /// String facts: (folded literal, class) sorted, and the same reversed,
    /// for globs with a literal prefix or suffix (built on first use).
    folded: Option<(Folded, Folded)>,
    /// Set facts: the *absent* class (just before *other*); [`NONE`] otherwise.
    absent: u32,
}

impl FactClasses {
    /// Classes below this are known and not *other*.
    fn upto(&self) -> u32 {
        if self.other == NONE {
            self.reps.len() as u32
        } else {
            self.other
        }
    }
}

fn fact_classes(ty: &FactType, g: Gathered, work: &mut u64) -> FactClasses {
    let plain = |reps: Vec<Rep>, shape| FactClasses {
        reps,
        other: NONE,
        shape,
        net_ranges: HashMap::new(),
        folded: None,
        absent: NONE,
    };
    match ty {
        FactType::Bool => plain(
            vec![Rep::Value(Lit::Bool(false)), Rep::Value(Lit::Bool(true))],
            Shape::Index,
        ),
        FactType::Enum(values) => {
            *work += values.len() as u64;
            plain(
                (0..values.len().min(usize::from(u16::MAX)))
                    .map(|i| Rep::Value(Lit::Enum(i as u16)))
                    .collect(),
                Shape::Index,
            )
        }
        FactType::Int | FactType::Number => {
            *work += g.nums.len() as u64 * 8;
            plain(number_classes(g.nums, *ty == FactType::Int), Shape::Ordered)
        }
        FactType::String | FactType::StringSet => {
            let set = *ty == FactType::StringSet;
            let mut strs = g.strs;
            *work += strs.len() as u64 * 8;
            strs.sort_unstable();
            strs.dedup();
            let absent = if set { strs.len() as u32 } else { NONE };
            let mut reps: Vec<Rep> = strs.into_iter().map(|s| Rep::Value(Lit::Str(s))).collect();
            if set {
                reps.push(Rep::Absent);
            }
            let other = reps.len() as u32;
            reps.push(Rep::Other);
            FactClasses {
                reps,
                other,
                shape: Shape::Strings,
                net_ranges: HashMap::new(),
                folded: None,
                absent,
            }
        }
        FactType::Ip => {
            *work += g.nets.len() as u64 * 8;
            let c = ip_classes(g.nets);
            FactClasses {
                reps: c.reps,
                other: NONE,
                shape: Shape::Ip,
                net_ranges: c.net_ranges,
                folded: None,
                absent: NONE,
            }
        }
    }
}

impl Abstraction {
    /// Builds the abstraction of `model`'s rules within `budget` units of work.
    pub(crate) fn new(model: &Model, budget: u64) -> Abstraction {
        let rules: Vec<Option<&Expr>> = model.rules.iter().map(|r| r.when.as_ref()).collect();
        Abstraction::build(&model.facts, &[&rules], budget)
    }

    /// Builds the abstraction of several rule lists over one fact table
    /// (e.g. two versions of a policy), their rules one list after the other.
    pub(crate) fn build(facts: &FactTable, lists: &[&[Option<&Expr>]], budget: u64) -> Abstraction {
        let mut work = 0u64;
        let nfacts = facts.facts.len();
        let mut g: Vec<Gathered> = (0..nfacts).map(|_| Gathered::default()).collect();
        let mut seen = std::collections::HashSet::new();
        for rules in lists {
            for e in rules.iter().flatten() {
                gather(e, &mut g, &mut seen, &mut work);
            }
        }
        // The empty string is always a class of its own (the null sender for
        // `alert-null-sender`; `virus != ""` after `virus matches "?*"`).
        for (info, x) in facts.facts.iter().zip(g.iter_mut()) {
            if matches!(info.ty, FactType::String | FactType::StringSet) {
                x.strs.push("".into());
            }
        }
        let set_leaves: Vec<usize> = g.iter().map(|x| x.leaves).collect();
        let mut classes = Vec::with_capacity(nfacts);
        let mut vars = Vec::with_capacity(nfacts);
        let mut strings = Vec::with_capacity(nfacts);
        for (info, gath) in facts.facts.iter().zip(g) {
            let fc = fact_classes(&info.ty, gath, &mut work);
            vars.push(Var {
                known: fc.reps.len() as u32,
                other: fc.other,
                atom: None,
                reps: fc.reps.clone(),
                theory: false,
                slot_of: None,
            });
            strings.push((fc.shape == Shape::Strings).then(|| {
                let lits: Vec<Box<str>> = fc
                    .reps
                    .iter()
                    .filter_map(|r| match r {
                        Rep::Value(Lit::Str(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                StringFact::new(lits, &mut work)
            }));
            classes.push(fc);
        }
        // The extra element slots of set facts, as many as useful.
        let mut slots: Vec<Vec<u32>> = vec![Vec::new(); nfacts];
        for (f, fc) in classes.iter().enumerate() {
            if fc.absent == NONE {
                continue;
            }
            let k = set_leaves.get(f).copied().unwrap_or(0).clamp(1, MAX_SLOTS);
            let mut list = vec![f as u32];
            for _ in 1..k {
                let v = vars.len() as u32;
                let Some(base) = vars.get(f).cloned() else {
                    break;
                };
                vars.push(Var {
                    slot_of: Some(f as u32),
                    ..base
                });
                let lits = match strings.get(f) {
                    Some(Some(sf)) => sf.literals().to_vec(),
                    _ => Vec::new(),
                };
                strings.push(Some(StringFact::new(lits, &mut work)));
                list.push(v);
            }
            if let Some(x) = slots.get_mut(f) {
                *x = list;
            }
        }
        // Every variable has a `strings` entry.
        strings.resize_with(vars.len(), || None);
        let mut b = Builder {
            classes,
            vars,
            strings,
            leaves: Vec::new(),
            atoms: HashMap::new(),
            shared: HashMap::new(),
            by_ptr: HashMap::new(),
            work,
            limit: budget,
            slots,
        };
        let total: usize = lists.iter().map(|r| r.len()).sum();
        let set_facts: Vec<FactId> = (0..nfacts)
            .filter(|f| b.slots.get(*f).is_some_and(|s| !s.is_empty()))
            .map(|f| FactId(f as u16))
            .collect();
        let mut rules = Vec::with_capacity(total);
        let mut rule_vars = Vec::with_capacity(total);
        let mut rule_set_leaves = Vec::with_capacity(total);
        for list in lists {
            for r in list.iter() {
                let c = match r {
                    None => CExpr::Const(Truth::True),
                    Some(e) => b.compile(e),
                };
                let needs: Vec<SetCount> = match r {
                    Some(e) => set_facts
                        .iter()
                        .map(|&f| {
                            let (up, up_nonempty) = set_need(e, f, true);
                            let (down, down_nonempty) = set_need(e, f, false);
                            SetCount {
                                fact: u32::from(f.0),
                                up,
                                down,
                                up_nonempty,
                                down_nonempty,
                            }
                        })
                        .filter(|c| c.up > 0 || c.down > 0 || c.up_nonempty || c.down_nonempty)
                        .collect(),
                    None => Vec::new(),
                };
                rule_set_leaves.push(needs);
                let mut vs = Vec::new();
                b.collect_vars(&c, &mut vs);
                vs.sort_unstable();
                vs.dedup();
                rule_vars.push(vs);
                rules.push(c);
            }
        }
        Abstraction {
            vars: b.vars,
            leaves: b.leaves,
            rules,
            rule_vars,
            strings: b.strings,
            work: b.work,
            slots: b.slots,
            rule_set_leaves,
        }
    }

    /// Whether "no set satisfies every one of `targets` true and `others`
    /// not true" is exact with the slots there are (see the module docs).
    /// The linter asks with one target (or none: the default), `policy diff`
    /// with the two lists' deciding rules.
    pub(crate) fn set_exact(&self, targets: &[usize], others: &[usize]) -> bool {
        // Per set fact: the elements a satisfying set may need to keep (the
        // target must stay true, the others not true), and whether it must
        // stay non-empty.
        let mut need: Vec<(u32, u32, bool)> = Vec::new();
        let mut add =
            |fact: u32, n: u32, nonempty: bool| match need.iter_mut().find(|x| x.0 == fact) {
                Some(x) => {
                    x.1 += n;
                    x.2 |= nonempty;
                }
                None => need.push((fact, n, nonempty)),
            };
        let counts = |r: usize| self.rule_set_leaves.get(r).map_or(&[][..], Vec::as_slice);
        for c in targets.iter().flat_map(|&t| counts(t)) {
            add(c.fact, c.up, c.up_nonempty);
        }
        for &r in others {
            for c in counts(r) {
                add(c.fact, c.down, c.down_nonempty);
            }
        }
        need.iter().all(|&(f, n, nonempty)| {
            // An "all" that must stay true needs some element, which any
            // other element kept provides.
            let n = n.max(u32::from(nonempty));
            self.slots
                .get(f as usize)
                .is_some_and(|s| n as usize <= s.len())
        })
    }

    /// The value a class stands for (`None`: *other*, unknown or out of range).
    pub(crate) fn rep(&self, var: u32, class: u32) -> Option<&Lit> {
        match self.vars.get(var as usize)?.reps.get(class as usize)? {
            Rep::Value(l) => Some(l),
            Rep::Other | Rep::Absent => None,
        }
    }
}

/// The identity of a leaf whose operands are shared (`Arc`), to tabulate
/// a list used many times once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PtrKey {
    var: u32,
    kind: u8,
    ptr: usize,
}

struct Builder {
    classes: Vec<FactClasses>,
    vars: Vec<Var>,
    strings: Vec<Option<StringFact>>,
    leaves: Vec<Leaf>,
    /// (string variable, content key) → atom variable.
    atoms: HashMap<(u32, String), u32>,
    /// (string fact, content key) → shared atom id.
    shared: HashMap<(u32, String), u32>,
    /// Leaves already built from shared operands.
    by_ptr: HashMap<PtrKey, u32>,
    work: u64,
    limit: u64,
    /// Per fact: its element slots (sets only).
    slots: Vec<Vec<u32>>,
}

impl Builder {
    fn collect_vars(&self, c: &CExpr, out: &mut Vec<u32>) {
        let mut stack = vec![c];
        while let Some(c) = stack.pop() {
            match c {
                CExpr::Const(_) => {}
                CExpr::Leaf(i) => {
                    if let Some(l) = self.leaves.get(*i as usize) {
                        out.push(l.var);
                        if let OtherTruth::Atom(p) = l.other {
                            out.push(p);
                        }
                        if l.gate != NONE {
                            out.push(l.gate);
                        }
                    }
                }
                CExpr::Not(i) => stack.push(i),
                CExpr::And(ps) | CExpr::Or(ps) => stack.extend(ps.iter()),
            }
        }
    }

    fn compile(&mut self, e: &Expr) -> CExpr {
        // Nesting is bounded by the checker's limit, so recursion is fine.
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
        let upto = fc.upto();
        let ranges = if upto > 0 { vec![(0, upto)] } else { vec![] };
        let free = F | if upto > 0 { T } else { 0 };
        let leaf = Leaf {
            var: u32::from(id.0),
            ranges,
            unknown: Truth::False,
            other: OtherTruth::Const(Truth::True),
            free,
            opaque: false,
            gate: NONE,
        };
        self.push_leaf(leaf)
    }

    /// "The slot holds an element" (`present`) or "holds none", on slot `var`.
    fn presence_leaf(&mut self, id: FactId, var: u32, gate: u32, present: bool) -> CExpr {
        let Some(fc) = self.classes.get(id.index()) else {
            return CExpr::Const(Truth::Unknown);
        };
        let absent = fc.absent;
        let ranges = if present {
            if absent > 0 {
                vec![(0, absent)]
            } else {
                Vec::new()
            }
        } else {
            vec![(absent, absent + 1)]
        };
        let free = U | if present && absent == 0 { F } else { F | T };
        self.push_leaf(Leaf {
            var,
            ranges,
            unknown: Truth::Unknown,
            other: OtherTruth::Const(Truth::from_bool(present)),
            free,
            opaque: false,
            gate,
        })
    }

    /// A condition on a set fact, over its element slots.
    fn set_leaf(&mut self, id: FactId, kind: &ExprKind) -> CExpr {
        let slots = self.slots.get(id.index()).cloned().unwrap_or_default();
        let fact = u32::from(id.0);
        let gate = |k: usize| if k == 0 { NONE } else { fact };
        match kind {
            ExprKind::All(inner) => {
                let mut present = Vec::with_capacity(slots.len());
                let mut each = Vec::with_capacity(slots.len());
                for (k, &s) in slots.iter().enumerate() {
                    present.push(self.presence_leaf(id, s, gate(k), true));
                    let absent = self.presence_leaf(id, s, gate(k), false);
                    let holds = self.leaf_on(id, s, inner, gate(k));
                    each.push(CExpr::Or(vec![absent, holds]));
                }
                CExpr::And(vec![CExpr::Or(present), CExpr::And(each)])
            }
            // `!=` on a set is `not ==`.
            ExprKind::Compare(f, Op::Ne, lit) => {
                let eq = ExprKind::Compare(*f, Op::Eq, lit.clone());
                CExpr::Not(Box::new(self.set_leaf(id, &eq)))
            }
            kind => CExpr::Or(
                slots
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| self.leaf_on(id, s, kind, gate(k)))
                    .collect(),
            ),
        }
    }

    /// A new atom variable on fact variable `fact` (string atom `index`, or [`NONE`]).
    fn new_atom(&mut self, fact: u32, index: u32) -> u32 {
        let v = self.vars.len() as u32;
        self.vars.push(Var {
            known: 2,
            other: NONE,
            atom: Some(AtomVar { fact, index }),
            reps: Vec::new(),
            theory: index != NONE,
            slot_of: None,
        });
        self.strings.push(None);
        if index != NONE {
            if let Some(f) = self.vars.get_mut(fact as usize) {
                f.theory = true;
            }
        }
        v
    }

    /// The atom for a glob list or regex on a string variable's *other* class.
    fn string_atom(&mut self, var: u32, kind: &ExprKind) -> Option<u32> {
        let (key, test) = match kind {
            ExprKind::Globs(_, globs) => {
                let mut srcs: Vec<String> = globs
                    .iter()
                    .map(|g| g.source.chars().map(fold).collect())
                    .collect();
                self.work += globs.len() as u64;
                srcs.sort_unstable();
                srcs.dedup();
                (
                    format!("g:{}", srcs.join("\u{0}")),
                    AtomTest::Globs(globs.clone()),
                )
            }
            ExprKind::Regex(_, re) => (format!("r:{}", re.as_str()), AtomTest::Regex(re.clone())),
            _ => return None,
        };
        if let Some(v) = self.atoms.get(&(var, key.clone())) {
            return Some(*v);
        }
        // The same test on another element slot of the same set shares an id.
        let owner = self
            .vars
            .get(var as usize)
            .and_then(|v| v.slot_of)
            .unwrap_or(var);
        let next = self.shared.len() as u32;
        let id = *self.shared.entry((owner, key.clone())).or_insert(next);
        let index = self
            .strings
            .get_mut(var as usize)?
            .as_mut()?
            .add_shared_atom(test, id);
        let v = self.new_atom(var, index);
        self.atoms.insert((var, key), v);
        Some(v)
    }

    fn ptr_key(var: u32, kind: &ExprKind) -> Option<PtrKey> {
        let (k, ptr) = match kind {
            ExprKind::InSet(_, l) => (0, l.as_ptr() as *const u8 as usize),
            ExprKind::InNets(_, l) => (1, l.as_ptr() as *const u8 as usize),
            ExprKind::Globs(_, l) => (2, l.as_ptr() as *const u8 as usize),
            ExprKind::Regex(_, r) => (3, std::sync::Arc::as_ptr(r) as *const u8 as usize),
            _ => return None,
        };
        Some(PtrKey { var, kind: k, ptr })
    }

    fn leaf(&mut self, id: FactId, e: &Expr) -> CExpr {
        let is_set = self
            .classes
            .get(id.index())
            .is_some_and(|fc| fc.absent != NONE);
        if is_set {
            return self.set_leaf(id, &e.kind);
        }
        let kind = match &e.kind {
            ExprKind::All(inner) => inner,
            k => k,
        };
        self.leaf_on(id, u32::from(id.0), kind, NONE)
    }

    /// Leaf `kind` on fact `id`'s classes, read from variable `var` (the
    /// fact, or a set's element slot gated by the set fact `gate`).
    fn leaf_on(&mut self, id: FactId, var: u32, kind: &ExprKind, gate: u32) -> CExpr {
        let pk = Self::ptr_key(var, kind);
        if let Some(l) = pk.and_then(|k| self.by_ptr.get(&k)) {
            return CExpr::Leaf(*l);
        }
        let Some(fc) = self.classes.get(id.index()) else {
            return CExpr::Const(Truth::Unknown);
        };
        let upto = fc.upto();
        let shape = fc.shape;
        let ranges = if self.work > self.limit {
            None
        } else {
            self.tabulate(id, kind)
        };
        let c = match ranges {
            None => {
                // Over budget: a free boolean on every class.
                let atom = self.new_atom(var, NONE);
                self.push_leaf(Leaf {
                    var,
                    ranges: Vec::new(),
                    unknown: Truth::Unknown,
                    other: OtherTruth::Atom(atom),
                    free: F | U | T,
                    opaque: true,
                    gate,
                })
            }
            Some(ranges) => {
                let other = if shape != Shape::Strings {
                    OtherTruth::Const(Truth::False)
                } else {
                    match kind {
                        ExprKind::Globs(_, globs) => {
                            if globs
                                .iter()
                                .any(|g| !g.source.is_empty() && g.source.chars().all(|c| c == '*'))
                            {
                                OtherTruth::Const(Truth::True)
                            } else if globs.is_empty() {
                                OtherTruth::Const(Truth::False)
                            } else {
                                match self.string_atom(var, kind) {
                                    Some(a) => OtherTruth::Atom(a),
                                    None => OtherTruth::Const(Truth::Unknown),
                                }
                            }
                        }
                        ExprKind::Regex(..) => match self.string_atom(var, kind) {
                            Some(a) => OtherTruth::Atom(a),
                            None => OtherTruth::Const(Truth::Unknown),
                        },
                        // *other* differs from every literal.
                        ExprKind::Compare(_, Op::Ne, _) => OtherTruth::Const(Truth::True),
                        _ => OtherTruth::Const(Truth::False),
                    }
                };
                let covered: u32 = ranges.iter().map(|r| r.1 - r.0).sum();
                let mut free = U;
                if covered > 0 {
                    free |= T;
                }
                if covered < upto {
                    free |= F;
                }
                self.push_leaf(Leaf {
                    var,
                    ranges,
                    unknown: Truth::Unknown,
                    other,
                    free,
                    opaque: false,
                    gate,
                })
            }
        };
        if let (Some(k), CExpr::Leaf(l)) = (pk, &c) {
            self.by_ptr.insert(k, *l);
        }
        c
    }

    /// The classes (below *other*) where the leaf is true; `None` past the budget.
    fn tabulate(&mut self, id: FactId, kind: &ExprKind) -> Option<Ranges> {
        let fc = self.classes.get_mut(id.index())?;
        let upto = fc.upto();
        let point = |c: u32| -> Ranges { vec![(c, c + 1)] };
        match (fc.shape, kind) {
            (Shape::Index, ExprKind::IsTrue(_)) => Some(point(1)),
            (Shape::Index, ExprKind::Compare(_, op @ (Op::Eq | Op::Ne), lit)) => {
                let c = match lit {
                    Lit::Bool(b) => u32::from(*b),
                    Lit::Enum(i) => u32::from(*i),
                    _ => return Some(Vec::new()),
                };
                let eq = if c < upto { point(c) } else { Vec::new() };
                Some(if *op == Op::Ne {
                    complement_ranges(&eq, upto)
                } else {
                    eq
                })
            }
            (Shape::Index, ExprKind::InSet(_, lits)) => {
                self.work += lits.len() as u64;
                let mut pts: Vec<u32> = lits
                    .iter()
                    .filter_map(|l| match l {
                        Lit::Bool(b) => Some(u32::from(*b)),
                        Lit::Enum(i) => Some(u32::from(*i)),
                        _ => None,
                    })
                    .filter(|c| *c < upto)
                    .collect();
                Some(points(&mut pts))
            }
            (Shape::Ordered | Shape::Strings, ExprKind::Compare(_, op, lit)) => {
                let reps = &fc.reps[..upto as usize];
                self.work += 64;
                let find = |reps: &[Rep]| -> Ranges {
                    // Classes ascend: the one equal to `lit`, if any.
                    let i = reps.partition_point(|r| rep_below(r, lit));
                    match reps.get(i).and_then(Rep::as_val) {
                        Some(v) if lit.equals(v) => vec![(i as u32, i as u32 + 1)],
                        _ => Vec::new(),
                    }
                };
                Some(match op {
                    Op::Eq => find(reps),
                    Op::Ne => complement_ranges(&find(reps), upto),
                    // Monotone in the value: a prefix or a suffix of the classes.
                    Op::Lt | Op::Le => {
                        let i = reps
                            .partition_point(|r| r.as_val().is_some_and(|v| test_leaf(kind, v)));
                        if i > 0 {
                            vec![(0, i as u32)]
                        } else {
                            Vec::new()
                        }
                    }
                    Op::Gt | Op::Ge => {
                        let i = reps
                            .partition_point(|r| !r.as_val().is_some_and(|v| test_leaf(kind, v)));
                        if (i as u32) < upto {
                            vec![(i as u32, upto)]
                        } else {
                            Vec::new()
                        }
                    }
                })
            }
            (Shape::Ordered | Shape::Strings, ExprKind::InSet(_, lits)) => {
                let reps = &fc.reps[..upto as usize];
                self.work += lits.len() as u64 * 8;
                let mut pts: Vec<u32> = lits
                    .iter()
                    .filter_map(|lit| {
                        let i = reps.partition_point(|r| rep_below(r, lit));
                        let v = reps.get(i).and_then(Rep::as_val)?;
                        lit.equals(v).then_some(i as u32)
                    })
                    .collect();
                Some(points(&mut pts))
            }
            (Shape::Strings, ExprKind::Globs(_, globs)) => {
                if fc.folded.is_none() {
                    let mut fw: Vec<(String, u32)> = Vec::with_capacity(upto as usize);
                    for (i, r) in fc.reps.iter().enumerate().take(upto as usize) {
                        if let Rep::Value(Lit::Str(s)) = r {
                            fw.push((s.chars().map(fold).collect(), i as u32));
                        }
                    }
                    let mut bw: Vec<(String, u32)> = fw
                        .iter()
                        .map(|(s, i)| (s.chars().rev().collect(), *i))
                        .collect();
                    self.work += fw.iter().map(|(s, _)| s.len() as u64 + 8).sum::<u64>() * 2;
                    fw.sort_unstable();
                    bw.sort_unstable();
                    fc.folded = Some((fw, bw));
                }
                let (fw, bw) = fc.folded.as_ref()?;
                let mut pts: Vec<u32> = Vec::new();
                for g in globs.iter() {
                    let prefix: String = g
                        .source
                        .chars()
                        .take_while(|c| !matches!(c, '*' | '?'))
                        .map(fold)
                        .collect();
                    let suffix: String = g
                        .source
                        .chars()
                        .rev()
                        .take_while(|c| !matches!(c, '*' | '?'))
                        .map(fold)
                        .collect();
                    let (index, key) = if prefix.len() >= suffix.len() {
                        (fw, prefix)
                    } else {
                        (bw, suffix)
                    };
                    let from = index.partition_point(|(s, _)| s.as_str() < key.as_str());
                    for (s, c) in index.iter().skip(from) {
                        if !s.starts_with(key.as_str()) {
                            break;
                        }
                        self.work += 1 + g.source.len() as u64 / 8;
                        if self.work > self.limit {
                            return None;
                        }
                        if let Some(Rep::Value(Lit::Str(lit))) = fc.reps.get(*c as usize) {
                            if g.matches(lit) {
                                pts.push(*c);
                            }
                        }
                    }
                }
                Some(points(&mut pts))
            }
            (Shape::Ip, _) => {
                let full = |net: &IpNet| fc.net_ranges.get(net).copied();
                let mut rs: Vec<(u32, u32)> = Vec::new();
                let mut complement = false;
                let mut found = true;
                match kind {
                    ExprKind::InNets(_, nets) => {
                        self.work += nets.len() as u64;
                        for n in nets.iter() {
                            match full(n) {
                                Some(r) => rs.push(r),
                                None => found = false,
                            }
                        }
                    }
                    ExprKind::Compare(_, op, Lit::Ip(ip)) => {
                        match full(&IpNet::from(*ip)) {
                            Some(r) => rs.push(r),
                            None => found = false,
                        }
                        complement = *op == Op::Ne;
                    }
                    _ => found = false,
                }
                if !found {
                    return self.tabulate_all(id, kind);
                }
                rs.sort_unstable();
                rs = merge(rs);
                Some(if complement {
                    complement_ranges(&rs, upto)
                } else {
                    rs
                })
            }
            _ => self.tabulate_all(id, kind),
        }
    }

    /// Tests the leaf on every class representative below *other*; `None` past the budget.
    fn tabulate_all(&mut self, id: FactId, kind: &ExprKind) -> Option<Ranges> {
        let fc = self.classes.get(id.index())?;
        let upto = fc.upto();
        let cost = u64::from(upto)
            * match kind {
                ExprKind::InSet(_, l) => l.len() as u64 + 1,
                ExprKind::InNets(_, l) => l.len() as u64 + 1,
                ExprKind::Globs(_, l) => l.iter().map(|g| g.source.len() as u64 / 8 + 1).sum(),
                _ => 4,
            };
        self.work = self.work.saturating_add(cost);
        if self.work > self.limit {
            return None;
        }
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (i, rep) in fc.reps.iter().enumerate().take(upto as usize) {
            let Some(v) = rep.as_val() else { continue };
            if test_leaf(kind, v) {
                let i = i as u32;
                match out.last_mut() {
                    Some(last) if last.1 == i => last.1 = i + 1,
                    _ => out.push((i, i + 1)),
                }
            }
        }
        Some(out)
    }
}

/// Whether a class representative lies below `lit` in the class order
/// (numbers numerically, strings bytewise).
fn rep_below(r: &Rep, lit: &Lit) -> bool {
    match (r, lit) {
        (Rep::Value(Lit::Str(a)), Lit::Str(b)) => a < b,
        (Rep::Value(a), Lit::Int(_) | Lit::Float(_)) => {
            crate::check::model::cmp_numbers(a.as_val(), lit) == Some(std::cmp::Ordering::Less)
        }
        _ => false,
    }
}

/// Sorted class indices as ranges.
fn points(pts: &mut Vec<u32>) -> Ranges {
    pts.sort_unstable();
    pts.dedup();
    let mut out: Ranges = Vec::with_capacity(pts.len());
    for &c in pts.iter() {
        match out.last_mut() {
            Some(last) if last.1 == c => last.1 = c + 1,
            _ => out.push((c, c + 1)),
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
                if l.var != v || l.opaque {
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
                        OtherTruth::Atom(_) => {
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
