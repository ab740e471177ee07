//! A small DPLL-style search over the abstract fact classes.
//!
//! A query is a list of constraints "condition C must be true" or "must not
//! be true" (false or unknown). Conditions are evaluated under a partial
//! assignment with Kleene logic lifted to *sets* of truth values (a bit mask
//! of false / unknown / true): an unassigned fact contributes every truth
//! value its leaf can take. This over-approximates, so a constraint whose
//! mask misses what it needs is a sound conflict, and one whose mask holds
//! only what it needs is satisfied by every completion. Under a complete
//! assignment the evaluation is exact, so the search is complete: `Unsat` is
//! a proof (within the abstraction, which itself over-approximates).
//!
//! String facts on their *other* class carry atoms (glob lists, regexes);
//! every assignment to a string fact or its atoms is checked at once by the
//! string theory ([`super::strings`]), which keeps a witness string per fact,
//! so a conflict between globs ("`*@MM` but not the list holding it") is
//! found exactly, and every satisfying assignment comes with real strings.
//! When the theory cannot decide (regexes, budget), the branch is treated as
//! a conflict and the search ends in `GaveUp` instead of `Unsat`.
//!
//! The search is iterative (no recursion depth to worry about), re-evaluates
//! only the constraints that read the variable just assigned, and stops with
//! `GaveUp` when its work budget runs out.

use super::classes::{complement_ranges, Abstraction, CExpr, Leaf, OtherTruth, NONE};
use super::strings::{Check, FoldInverse};
use super::truth::{and_mask, bit, not_mask, or_mask, F, T, U};
use std::collections::HashMap;

/// What a constraint asks of its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    True,
    NotTrue,
}

impl Need {
    fn mask(self) -> u8 {
        match self {
            Need::True => T,
            Need::NotTrue => F | U,
        }
    }
}

/// One constraint of a query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Con<'a> {
    pub(crate) expr: &'a CExpr,
    pub(crate) need: Need,
    /// The variables `expr` may read.
    pub(crate) vars: &'a [u32],
}

/// A satisfying assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Witness {
    /// (variable, value) for the variables assigned; every other fact is free
    /// (any value, unknown included, satisfies the constraints).
    pub(crate) assign: Vec<(u32, u32)>,
    /// For each string fact assigned its *other* class: a string with the
    /// assigned atom values (none when the theory could not find one).
    pub(crate) strings: Vec<(u32, String)>,
}

impl Witness {
    /// The value assigned to `var`, if any.
    pub(crate) fn value(&self, var: u32) -> Option<u32> {
        self.assign.iter().find(|(v, _)| *v == var).map(|(_, x)| *x)
    }
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Satisfiable, with the assignment found.
    Sat(Witness),
    /// Not satisfiable under the abstraction.
    Unsat,
    /// The work budget ran out.
    GaveUp,
}

/// One value per segment of `seq` between the `cuts` (all values of a
/// segment are alike to every leaf of the query).
fn representatives(seq: Vec<(u32, u32)>, cuts: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(seq.len());
    for (lo, hi) in seq {
        if lo >= hi {
            continue;
        }
        out.push((lo, lo + 1));
        let from = cuts.partition_point(|c| *c <= lo);
        for &c in cuts.iter().skip(from) {
            if c >= hi {
                break;
            }
            out.push((c, c + 1));
        }
    }
    out
}

struct Frame {
    var: u32,
    seq: Vec<(u32, u32)>,
    seg: usize,
    pos: u32,
    trail_len: usize,
    cursor: usize,
    /// The earlier frames' variables that explain why this frame's values
    /// failed so far (conflict-directed backjumping).
    conf: Vec<u32>,
}

impl Frame {
    fn next_value(&mut self) -> Option<u32> {
        // `pos` is the next value within segment `seg`; segments need not be
        // in ascending order, so entering a segment starts at its low end.
        while let Some(&(lo, hi)) = self.seq.get(self.seg) {
            let at = self.pos.max(lo);
            if at < hi {
                self.pos = at + 1;
                return Some(at);
            }
            self.seg += 1;
            self.pos = 0;
        }
        None
    }
}

/// The solver: the abstraction plus reusable scratch space.
pub(crate) struct Solver<'a> {
    pub(crate) abs: &'a Abstraction,
    /// The current value of every variable ([`NONE`]: unassigned). All
    /// [`NONE`] between queries.
    assign: Vec<u32>,
    /// Variable → index into the current query's occurrence lists.
    occ_slot: Vec<u32>,
    /// Work done so far (expression nodes visited and values tried).
    pub(crate) work: u64,
    /// Per string fact variable: a string with its currently assigned atom
    /// values, if one is known (kept valid as atoms are assigned; still valid
    /// when they are unassigned).
    witness: Vec<Option<String>>,
    inverse: FoldInverse,
    /// Per string fact variable: its atom variables currently assigned.
    assigned_atoms: Vec<Vec<u32>>,
    /// Per variable: the depth of its frame in the current search ([`NONE`]: none).
    depth: Vec<u32>,
    /// Theory answers already found: (string variable, its atoms' values).
    theory_memo: HashMap<(u32, Vec<(u32, bool)>), Check>,
    /// Pairs of atoms found to contradict (or not): (string, positive
    /// atom, other atom, its value).
    pair_memo: HashMap<(u32, u32, u32, bool), bool>,
    /// Budget of one theory check.
    pub(crate) theory_budget: u64,
}

/// Work budget of one string theory check (automaton states explored).
const THEORY_BUDGET: u64 = 200_000;
/// Most theory answers remembered.
const THEORY_MEMO: usize = 100_000;
/// Most atom pairs tried before a theory question's own search.
const PAIR_CHECKS: usize = 16;

impl<'a> Solver<'a> {
    pub(crate) fn new(abs: &'a Abstraction) -> Solver<'a> {
        Solver {
            abs,
            assign: vec![NONE; abs.vars.len()],
            occ_slot: vec![NONE; abs.vars.len()],
            work: 0,
            witness: vec![None; abs.vars.len()],
            inverse: FoldInverse::default(),
            assigned_atoms: vec![Vec::new(); abs.vars.len()],
            depth: vec![NONE; abs.vars.len()],
            theory_memo: HashMap::new(),
            pair_memo: HashMap::new(),
            theory_budget: THEORY_BUDGET,
        }
    }

    /// After `var` was assigned: whether the string fact it concerns (if
    /// any) still has a string with the assigned class and atom values. The
    /// fact's witness string, when known, satisfies every atom assigned so
    /// far, so usually only the new atom is tested on it.
    fn theory_check(&mut self, var: u32) -> Check {
        let abs = self.abs;
        let Some(v) = abs.vars.get(var as usize) else {
            return Check::Unknown;
        };
        if !v.theory {
            return Check::Sat(String::new());
        }
        let fact = match &v.atom {
            Some(a) => a.fact,
            None => var,
        };
        let Some(fv) = abs.vars.get(fact as usize) else {
            return Check::Unknown;
        };
        if self.value(fact) != fv.other || fv.other == NONE {
            // Atoms only matter on *other*.
            return Check::Sat(String::new());
        }
        let Some(Some(sf)) = abs.strings.get(fact as usize) else {
            return Check::Unknown;
        };
        self.work += 1;
        if let Some(Some(w)) = self.witness.get(fact as usize) {
            let still = match &v.atom {
                Some(a) => {
                    self.work += 1;
                    sf.holds(a.index, w) == Some(self.value(var) == 1)
                }
                None => true,
            };
            if still {
                return Check::Sat(String::new());
            }
        }
        let assigned: Vec<(u32, bool)> = self
            .assigned_atoms
            .get(fact as usize)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| {
                let index = abs
                    .vars
                    .get(i as usize)
                    .and_then(|x| x.atom.as_ref())
                    .map_or(NONE, |a| a.index);
                (index, self.value(i) == 1)
            })
            .collect();
        // Remembered by the string fact (a set's element slots share) and
        // the shared ids of the atoms.
        let owner = fv.slot_of.unwrap_or(fact);
        let mut shared: Vec<(u32, bool)> = assigned
            .iter()
            .map(|&(a, v)| (sf.shared_id(a), v))
            .collect();
        shared.sort_unstable();
        let key = assigned;
        let r = match self.theory_memo.get(&(owner, shared.clone())) {
            Some(r) => r.clone(),
            None => {
                let r = if self.pair_conflict(owner, sf, &key) {
                    Check::Unsat
                } else {
                    sf.witness(&key, &mut self.inverse, &mut self.work, self.theory_budget)
                };
                // A bounded memo: the same question comes back as the search backtracks.
                if self.theory_memo.len() >= THEORY_MEMO {
                    self.theory_memo.clear();
                }
                self.theory_memo.insert((owner, shared), r.clone());
                r
            }
        };
        if let Some(slot) = self.witness.get_mut(fact as usize) {
            *slot = match r {
                Check::Sat(w) => Some(w),
                Check::Unsat => return Check::Unsat,
                Check::Unknown => return Check::Unknown,
            };
        }
        Check::Sat(String::new())
    }

    /// Whether two of the assigned atoms already contradict each other: a
    /// positive one inside a negative one, or two disjoint positive ones.
    /// Pairs recur across questions with other atoms beside them, so each
    /// pair's answer is remembered (the pair's own question is small).
    fn pair_conflict(
        &mut self,
        owner: u32,
        sf: &super::strings::StringFact,
        assigned: &[(u32, bool)],
    ) -> bool {
        if assigned.len() < 3 {
            return false;
        }
        let positives: Vec<u32> = assigned.iter().filter(|a| a.1).map(|a| a.0).collect();
        let mut pairs = 0;
        for &p in &positives {
            for &(q, v) in assigned {
                if q == p || (v && q < p) {
                    continue;
                }
                pairs += 1;
                if pairs > PAIR_CHECKS {
                    return false;
                }
                let key = (owner, sf.shared_id(p), sf.shared_id(q), v);
                let conflict = match self.pair_memo.get(&key) {
                    Some(c) => *c,
                    None => {
                        let q2 = [(p, true), (q, v)];
                        let c =
                            sf.witness(&q2, &mut self.inverse, &mut self.work, self.theory_budget)
                                == Check::Unsat;
                        if self.pair_memo.len() >= THEORY_MEMO {
                            self.pair_memo.clear();
                        }
                        self.pair_memo.insert(key, c);
                        c
                    }
                };
                if conflict {
                    return true;
                }
            }
        }
        false
    }

    /// The strings of the string facts assigned *other* (`None`: not found).
    fn strings(&mut self, assigned: &[(u32, u32)]) -> Option<Vec<(u32, String)>> {
        let mut out = Vec::new();
        for &(v, val) in assigned {
            let Some(var) = self.abs.vars.get(v as usize) else {
                continue;
            };
            if var.is_fact() && var.other != NONE && val == var.other {
                if !var.theory {
                    // No atoms: any string other than the literals.
                    let sf = self.abs.strings.get(v as usize)?.as_ref()?;
                    match sf.witness(&[], &mut self.inverse, &mut self.work, self.theory_budget) {
                        Check::Sat(s) => out.push((v, s)),
                        _ => return None,
                    }
                    continue;
                }
                match self.theory_check(v) {
                    Check::Sat(_) => out.push((v, self.witness.get(v as usize)?.clone()?)),
                    _ => return None,
                }
            }
        }
        Some(out)
    }

    fn value(&self, v: u32) -> u32 {
        self.assign.get(v as usize).copied().unwrap_or(NONE)
    }

    fn set(&mut self, v: u32, val: u32) {
        let Some(a) = self.assign.get_mut(v as usize) else {
            return;
        };
        let was = std::mem::replace(a, val);
        // Keep each string fact's list of assigned atoms.
        if (was == NONE) != (val == NONE) {
            if let Some(atom) = self
                .abs
                .vars
                .get(v as usize)
                .and_then(|x| x.atom.as_ref())
                .filter(|a| a.index != NONE)
            {
                if let Some(list) = self.assigned_atoms.get_mut(atom.fact as usize) {
                    if val == NONE {
                        if let Some(p) = list.iter().rposition(|x| *x == v) {
                            list.swap_remove(p);
                        }
                    } else {
                        list.push(v);
                    }
                }
            }
        }
    }

    fn other_mask(&self, l: &Leaf) -> u8 {
        match l.other {
            OtherTruth::Const(t) => bit(t),
            OtherTruth::Atom(p) => match self.value(p) {
                NONE => F | T,
                0 => F,
                _ => T,
            },
        }
    }

    fn leaf_mask(&self, l: &Leaf) -> u8 {
        let Some(var) = self.abs.vars.get(l.var as usize) else {
            return F | U | T;
        };
        let own = self.slot_mask(l, var);
        if l.gate == NONE {
            return own;
        }
        // A set's extra element slot: unknown when the set is.
        let gate_known = self.abs.vars.get(l.gate as usize).map_or(0, |g| g.known);
        match self.value(l.gate) {
            NONE => own | bit(l.unknown),
            g if g == gate_known => bit(l.unknown),
            _ => own,
        }
    }

    fn slot_mask(&self, l: &Leaf, var: &super::classes::Var) -> u8 {
        // An element slot is never unknown itself.
        let free = if var.slot_of.is_some() {
            l.free & !U
        } else {
            l.free
        };
        match self.value(l.var) {
            NONE => {
                if var.other == NONE {
                    free
                } else {
                    free | self.other_mask(l)
                }
            }
            c if c == var.known => bit(l.unknown),
            c if c == var.other || l.opaque => self.other_mask(l),
            c => {
                if l.on_class(c) {
                    T
                } else {
                    F
                }
            }
        }
    }

    /// Like [`Solver::eval`], without counting work.
    fn mask(&self, e: &CExpr) -> u8 {
        match e {
            CExpr::Const(t) => bit(*t),
            CExpr::Leaf(i) => match self.abs.leaves.get(*i as usize) {
                Some(l) => self.leaf_mask(l),
                None => F | U | T,
            },
            CExpr::Not(inner) => not_mask(self.mask(inner)),
            CExpr::And(ps) => {
                let mut acc = T;
                for p in ps {
                    acc = and_mask(acc, self.mask(p));
                    if acc == F {
                        break;
                    }
                }
                acc
            }
            CExpr::Or(ps) => {
                let mut acc = F;
                for p in ps {
                    acc = or_mask(acc, self.mask(p));
                    if acc == T {
                        break;
                    }
                }
                acc
            }
        }
    }

    /// The possible truths of `e` under the current partial assignment.
    pub(crate) fn eval(&mut self, e: &CExpr) -> u8 {
        self.work += 1;
        match e {
            CExpr::Const(t) => bit(*t),
            CExpr::Leaf(i) => match self.abs.leaves.get(*i as usize) {
                Some(l) => self.leaf_mask(l),
                None => F | U | T,
            },
            CExpr::Not(inner) => not_mask(self.eval(inner)),
            CExpr::And(ps) => {
                let mut acc = T;
                for p in ps {
                    acc = and_mask(acc, self.eval(p));
                    if acc == F {
                        break;
                    }
                }
                acc
            }
            CExpr::Or(ps) => {
                let mut acc = F;
                for p in ps {
                    acc = or_mask(acc, self.eval(p));
                    if acc == T {
                        break;
                    }
                }
                acc
            }
        }
    }

    /// A variable to branch on in `e` and the order to try its values in,
    /// given whether the leaf should come out true.
    fn pick(
        &self,
        e: &CExpr,
        want_true: bool,
        unknown_first: bool,
    ) -> Option<(u32, Vec<(u32, u32)>)> {
        // Depth-first, iteratively, with the truth values wanted of each
        // part, into the parts still open: a part whose possible values are
        // all wanted, or none, is settled and not branched on (an open part
        // always has an open child, so this finds a variable).
        let goal = if want_true { T } else { F | U };
        let mut stack: Vec<(&CExpr, u8)> = vec![(e, goal)];
        while let Some((e, goal)) = stack.pop() {
            let want = goal & T != 0;
            match e {
                CExpr::Const(_) => {}
                CExpr::Not(inner) => {
                    let m = self.mask(inner);
                    let g = not_mask(goal);
                    if m & !g != 0 && m & g != 0 {
                        stack.push((inner, g));
                    }
                }
                CExpr::And(ps) | CExpr::Or(ps) => {
                    for p in ps.iter().rev() {
                        let m = self.mask(p);
                        // Only parts that can still take more than one
                        // value, one of them wanted, matter.
                        if m.count_ones() > 1 && m & goal != 0 {
                            stack.push((p, goal));
                        }
                    }
                }
                CExpr::Leaf(i) => {
                    let Some(l) = self.abs.leaves.get(*i as usize) else {
                        continue;
                    };
                    let Some(var) = self.abs.vars.get(l.var as usize) else {
                        continue;
                    };
                    let val = self.value(l.var);
                    // A leaf on a set's later slot whose set is not yet
                    // known: decide the set's first slot first, toward what
                    // this leaf wants (the slots are interchangeable).
                    let (lv, var, val) = match self.abs.vars.get(l.gate as usize) {
                        Some(g) if self.value(l.gate) == NONE => (l.gate, g, NONE),
                        _ => (l.var, var, val),
                    };
                    if val == NONE {
                        let upto = if var.other == NONE {
                            var.known
                        } else {
                            var.other
                        };
                        let (first, rest) = if want {
                            (l.ranges.clone(), complement_ranges(&l.ranges, upto))
                        } else {
                            (complement_ranges(&l.ranges, upto), l.ranges.clone())
                        };
                        // An element slot has no unknown of its own.
                        let unknown = if var.slot_of.is_some() {
                            (0, 0)
                        } else {
                            (var.known, var.known + 1)
                        };
                        let mut seq = Vec::with_capacity(first.len() + rest.len() + 2);
                        if unknown_first {
                            seq.push(unknown);
                        }
                        seq.extend(first);
                        if var.other != NONE {
                            seq.push((var.other, var.other + 1));
                        }
                        seq.extend(rest);
                        if !unknown_first {
                            seq.push(unknown);
                        }
                        // A set's slot that should not match: holding no element
                        // first (examples without stray names).
                        let is_slot = var.slot_of.is_some()
                            || self.abs.slots.get(lv as usize).is_some_and(|x| x.len() > 1);
                        if is_slot && !want && var.other > 0 {
                            let absent = var.other - 1;
                            seq.insert(usize::from(unknown_first), (absent, absent + 1));
                        }
                        return Some((lv, self.slot_order(lv, seq)));
                    }
                    if l.gate != NONE && self.value(l.gate) == NONE {
                        let known = self.abs.vars.get(l.gate as usize).map_or(0, |g| g.known);
                        let seq = if unknown_first {
                            vec![(known, known + 1), (0, known)]
                        } else {
                            vec![(0, known), (known, known + 1)]
                        };
                        return Some((l.gate, self.slot_order(l.gate, seq)));
                    }
                    if val != NONE && val != var.known && (val == var.other || l.opaque) {
                        if let OtherTruth::Atom(p) = l.other {
                            if self.value(p) == NONE {
                                let seq = if want {
                                    vec![(1, 2), (0, 1)]
                                } else {
                                    vec![(0, 1), (1, 2)]
                                };
                                return Some((p, seq));
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// For a set's element slot: only the values that keep the slots in
    /// order (literal classes ascending, then *other*, then *absent*) with
    /// the neighbouring slots already assigned. Every set has such an
    /// arrangement, so this only cuts permutations of the same set.
    fn slot_order(&self, var: u32, seq: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
        let abs = self.abs;
        let Some(v) = abs.vars.get(var as usize) else {
            return seq;
        };
        let fact = v.slot_of.unwrap_or(var);
        let Some(slots) = abs.slots.get(fact as usize).filter(|s| s.len() > 1) else {
            return seq;
        };
        let Some(k) = slots.iter().position(|s| *s == var) else {
            return seq;
        };
        let (known, other) = (v.known, v.other);
        // *absent* is the class just before *other*.
        let absent = other.saturating_sub(1);
        let key = |c: u32| {
            if c == absent {
                other
            } else if c == other {
                absent
            } else {
                c
            }
        };
        let value = |i: usize| {
            slots
                .get(i)
                .map(|s| self.value(*s))
                .filter(|c| *c != NONE && *c != known)
        };
        let lo = k.checked_sub(1).and_then(value).map_or(0, key);
        let hi = value(k + 1).map_or(other, key);
        let ok = |c: u32| c == known || (lo..=hi).contains(&key(c));
        let mut out = Vec::with_capacity(seq.len());
        for (a, b) in seq {
            // Literal classes in [lo, hi] stay a range; the rest one by one.
            let lits = (a.max(lo), b.min(hi.saturating_add(1)).min(absent));
            if lits.0 < lits.1 {
                out.push(lits);
            }
            for c in [absent, other, known] {
                if (a..b).contains(&c) && ok(c) {
                    out.push((c, c + 1));
                }
            }
        }
        out
    }

    fn collect_cuts(&self, e: &CExpr, var: u32, cuts: &mut Vec<u32>) {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                CExpr::Const(_) => {}
                CExpr::Not(i) => stack.push(i),
                CExpr::And(ps) | CExpr::Or(ps) => stack.extend(ps.iter()),
                CExpr::Leaf(i) => {
                    if let Some(l) = self.abs.leaves.get(*i as usize).filter(|l| l.var == var) {
                        for r in &l.ranges {
                            cuts.push(r.0);
                            cuts.push(r.1);
                        }
                    }
                }
            }
        }
    }

    /// Removes the top frame: its variable unassigned, its constraints undone.
    fn pop_frame(&mut self, frames: &mut Vec<Frame>, trail: &mut Vec<u32>, done: &mut [bool]) {
        let Some(f) = frames.pop() else { return };
        while trail.len() > f.trail_len {
            if let Some(d) = trail.pop().and_then(|i| done.get_mut(i as usize)) {
                *d = false;
            }
        }
        self.set(f.var, NONE);
        if let Some(d) = self.depth.get_mut(f.var as usize) {
            *d = NONE;
        }
    }

    /// Records that the top frame's current value failed because of the
    /// variables in `reason` (only those with frames count).
    fn add_conflict(&self, frames: &mut [Frame], reason: &[u32]) {
        let Some(f) = frames.last_mut() else { return };
        for &v in reason {
            let framed = self.depth.get(v as usize).is_some_and(|d| *d != NONE);
            if framed && v != f.var && !f.conf.contains(&v) {
                f.conf.push(v);
            }
        }
    }

    /// The variables a theory verdict about `var`'s string depends on: the
    /// string variable and its assigned atoms.
    fn theory_reason(&self, var: u32) -> Vec<u32> {
        let fact = match self
            .abs
            .vars
            .get(var as usize)
            .and_then(|v| v.atom.as_ref())
        {
            Some(a) => a.fact,
            None => var,
        };
        let mut out = vec![fact, var];
        out.extend(
            self.assigned_atoms
                .get(fact as usize)
                .map_or(&[][..], Vec::as_slice),
        );
        out
    }

    /// Searches for an assignment satisfying every constraint, starting from
    /// `init` (variables fixed beforehand), within `budget` units of work.
    pub(crate) fn solve(&mut self, cons: &[Con<'_>], init: &[(u32, u32)], budget: u64) -> Outcome {
        let limit = self.work.saturating_add(budget);
        for &(v, val) in init {
            self.set(v, val);
        }
        // Occurrence lists of this query.
        let mut occ: Vec<Vec<u32>> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        for (i, c) in cons.iter().enumerate() {
            for &v in c.vars {
                let Some(slot) = self.occ_slot.get_mut(v as usize) else {
                    continue;
                };
                if *slot == NONE {
                    *slot = occ.len() as u32;
                    occ.push(Vec::new());
                    touched.push(v);
                }
                if let Some(list) = occ.get_mut(*slot as usize) {
                    if list.last() != Some(&(i as u32)) {
                        list.push(i as u32);
                    }
                }
            }
        }
        let mut done = vec![false; cons.len()];
        // Whether a branch was cut because the theory could not decide it.
        let mut undecided = false;
        let mut trail: Vec<u32> = Vec::new();
        let mut frames: Vec<Frame> = Vec::new();
        let outcome = 'search: {
            for (i, c) in cons.iter().enumerate() {
                let m = self.eval(c.expr);
                if m & c.need.mask() == 0 {
                    break 'search Outcome::Unsat;
                }
                if m & !c.need.mask() == 0 {
                    done[i] = true;
                }
            }
            // In order: the target first (its values are chosen once, and
            // the earlier rules then only need to stay not true under them),
            // then each earlier rule. Choosing the earlier rules' other
            // facts first ("phase one" before) made the search enumerate
            // those facts' values under every value of the target's facts
            // when the real conflict was on the target's own facts: a rule
            // of 4 comparisons behind 6 overlapping rules went from 400,000
            // work units (budget spent, unknown) to 52,000 (proved), and
            // 1,000 mixed rules from 4.2 M units to 2.1 M.
            let mut cursor = 0usize;
            loop {
                while done.get(cursor).copied().unwrap_or(false) {
                    cursor += 1;
                }
                let Some(c) = cons.get(cursor) else {
                    let mut w: Vec<(u32, u32)> = init.to_vec();
                    w.extend(frames.iter().map(|f| (f.var, self.value(f.var))));
                    break 'search match self.strings(&w) {
                        Some(strings) => Outcome::Sat(Witness { assign: w, strings }),
                        None => Outcome::GaveUp,
                    };
                };
                let picked = self.pick(c.expr, c.need == Need::True, c.need == Need::NotTrue);
                let Some((var, seq)) = picked else {
                    // Cannot happen (an undecided condition reads an
                    // unassigned variable); be safe rather than sorry.
                    break 'search Outcome::GaveUp;
                };
                // Values between two cuts of the undecided constraints' leaves
                // on this variable are alike to all of them: try one of each.
                let seq = {
                    let slot = self.occ_slot.get(var as usize).copied().unwrap_or(NONE);
                    let mut cuts: Vec<u32> = Vec::new();
                    if let Some(list) = occ.get(slot as usize) {
                        for &ci in list {
                            if done.get(ci as usize).copied().unwrap_or(true) {
                                continue;
                            }
                            if let Some(c) = cons.get(ci as usize) {
                                self.collect_cuts(c.expr, var, &mut cuts);
                            }
                        }
                    }
                    cuts.sort_unstable();
                    cuts.dedup();
                    representatives(seq, &cuts)
                };
                if let Some(d) = self.depth.get_mut(var as usize) {
                    *d = frames.len() as u32;
                }
                frames.push(Frame {
                    var,
                    pos: 0,
                    seq,
                    seg: 0,
                    trail_len: trail.len(),
                    cursor,
                    conf: Vec::new(),
                });
                // Try values, backtracking as needed.
                loop {
                    let Some(f) = frames.last_mut() else {
                        break 'search Outcome::Unsat;
                    };
                    while trail.len() > f.trail_len {
                        if let Some(d) = trail.pop().and_then(|i| done.get_mut(i as usize)) {
                            *d = false;
                        }
                    }
                    let var = f.var;
                    let resume = f.cursor;
                    let next = f.next_value();
                    self.set(var, NONE);
                    let Some(val) = next else {
                        // Every value failed, each for reasons among the
                        // variables in `conf`: keep those fixed and no value
                        // works. Jump back to the latest of them (the frames
                        // in between cannot change that) and try its next
                        // value, remembering why.
                        let conf = std::mem::take(&mut f.conf);
                        self.pop_frame(&mut frames, &mut trail, &mut done);
                        while let Some(top) = frames.last() {
                            if conf.contains(&top.var) {
                                break;
                            }
                            self.pop_frame(&mut frames, &mut trail, &mut done);
                        }
                        match frames.last_mut() {
                            None => break 'search Outcome::Unsat,
                            Some(g) => {
                                for v in conf {
                                    if v != g.var && !g.conf.contains(&v) {
                                        g.conf.push(v);
                                    }
                                }
                            }
                        }
                        continue;
                    };
                    if self.work > limit {
                        break 'search Outcome::GaveUp;
                    }
                    self.set(var, val);
                    // Why this value fails, if it does: the variables (with
                    // frames) of the failing check.
                    let theory: Option<Vec<u32>> = match self.theory_check(var) {
                        Check::Sat(_) => None,
                        Check::Unsat => Some(self.theory_reason(var)),
                        Check::Unknown => {
                            undecided = true;
                            Some(self.theory_reason(var))
                        }
                    };
                    let slot = self.occ_slot.get(var as usize).copied().unwrap_or(NONE);
                    if let Some(r) = theory {
                        self.add_conflict(&mut frames, &r);
                        continue;
                    }
                    // The constraint that fails, if one does (its variables
                    // are the reason).
                    let mut reason: Option<&[u32]> = None;
                    if let Some(list) = occ.get_mut(slot as usize) {
                        for k in 0..list.len() {
                            let Some(&ci) = list.get(k) else { break };
                            let i = ci as usize;
                            if done.get(i).copied().unwrap_or(true) {
                                continue;
                            }
                            let Some(c) = cons.get(i) else { continue };
                            let m = self.eval(c.expr);
                            if m & c.need.mask() == 0 {
                                reason = Some(c.vars);
                                // Move the conflict to the front: the next
                                // value of this variable likely meets it too.
                                list.swap(0, k);
                                break;
                            }
                            if m & !c.need.mask() == 0 {
                                if let Some(d) = done.get_mut(i) {
                                    *d = true;
                                }
                                trail.push(ci);
                            }
                        }
                    }
                    match reason {
                        Some(r) => self.add_conflict(&mut frames, r),
                        None => {
                            cursor = resume;
                            break;
                        }
                    }
                }
            }
        };
        let outcome = match outcome {
            Outcome::Unsat if undecided => Outcome::GaveUp,
            o => o,
        };
        for f in &frames {
            self.set(f.var, NONE);
            if let Some(d) = self.depth.get_mut(f.var as usize) {
                *d = NONE;
            }
        }
        for &(v, _) in init {
            self.set(v, NONE);
        }
        for v in touched {
            if let Some(s) = self.occ_slot.get_mut(v as usize) {
                *s = NONE;
            }
        }
        outcome
    }
}
