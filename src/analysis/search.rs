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
//! The search is iterative (no recursion depth to worry about), re-evaluates
//! only the constraints that read the variable just assigned, and stops with
//! `GaveUp` when its work budget runs out.

use super::classes::{complement_ranges, Abstraction, CExpr, Leaf, OtherTruth, NONE};
use super::truth::{and_mask, bit, not_mask, or_mask, F, T, U};

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

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Satisfiable; the assignment found (variable, value), every other fact free.
    Sat(Vec<(u32, u32)>),
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
    cursor: (usize, usize),
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
}

impl<'a> Solver<'a> {
    pub(crate) fn new(abs: &'a Abstraction) -> Solver<'a> {
        Solver {
            abs,
            assign: vec![NONE; abs.vars.len()],
            occ_slot: vec![NONE; abs.vars.len()],
            work: 0,
        }
    }

    fn value(&self, v: u32) -> u32 {
        self.assign.get(v as usize).copied().unwrap_or(NONE)
    }

    fn set(&mut self, v: u32, val: u32) {
        if let Some(a) = self.assign.get_mut(v as usize) {
            *a = val;
        }
    }

    fn other_mask(&self, l: &Leaf) -> u8 {
        match l.other {
            OtherTruth::Const(t) => bit(t),
            OtherTruth::Pat(p) => match self.value(p) {
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
        match self.value(l.var) {
            NONE => {
                if var.other == NONE {
                    l.free
                } else {
                    l.free | self.other_mask(l)
                }
            }
            c if c == var.known => bit(l.unknown),
            c if c == var.other => self.other_mask(l),
            c => {
                if l.on_class(c) {
                    T
                } else {
                    F
                }
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
        avoid: &[u32],
    ) -> Option<(u32, Vec<(u32, u32)>)> {
        // Depth-first, iteratively, tracking polarity.
        let mut stack: Vec<(&CExpr, bool)> = vec![(e, want_true)];
        while let Some((e, want)) = stack.pop() {
            match e {
                CExpr::Const(_) => {}
                CExpr::Not(inner) => stack.push((inner, !want)),
                CExpr::And(ps) | CExpr::Or(ps) => {
                    for p in ps.iter().rev() {
                        stack.push((p, want));
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
                    if val == NONE && avoid.binary_search(&l.var).is_err() {
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
                        let unknown = (var.known, var.known + 1);
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
                        return Some((l.var, seq));
                    }
                    if val == var.other {
                        if let OtherTruth::Pat(p) = l.other {
                            if self.value(p) == NONE && avoid.binary_search(&p).is_err() {
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
            // Phase one: satisfy the earlier rules (constraints after the
            // first) through variables the first constraint does not read,
            // so the search does not enumerate the target's values for them.
            // Phase two: everything else, in order.
            let avoid: &[u32] = match cons.first() {
                Some(c) if c.need == Need::True => c.vars,
                _ => &[],
            };
            let mut cursor = (usize::from(!avoid.is_empty()), 0usize);
            loop {
                let mut picked = None;
                if !avoid.is_empty() {
                    while let Some(c) = cons.get(cursor.0) {
                        if !done.get(cursor.0).copied().unwrap_or(true) {
                            picked = self.pick(
                                c.expr,
                                c.need == Need::True,
                                c.need == Need::NotTrue,
                                avoid,
                            );
                            if picked.is_some() {
                                break;
                            }
                        }
                        cursor.0 += 1;
                    }
                }
                if picked.is_none() {
                    while done.get(cursor.1).copied().unwrap_or(false) {
                        cursor.1 += 1;
                    }
                    let Some(c) = cons.get(cursor.1) else {
                        let mut w: Vec<(u32, u32)> = init.to_vec();
                        w.extend(frames.iter().map(|f| (f.var, self.value(f.var))));
                        break 'search Outcome::Sat(w);
                    };
                    picked = self.pick(c.expr, c.need == Need::True, c.need == Need::NotTrue, &[]);
                }
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
                frames.push(Frame {
                    var,
                    pos: 0,
                    seq,
                    seg: 0,
                    trail_len: trail.len(),
                    cursor,
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
                        // Every value failed: the undecided constraints are
                        // unsatisfiable under the frames below. Frames whose
                        // variable none of them reads cannot change that, so
                        // skip their other values (backjumping).
                        frames.pop();
                        while let Some(top) = frames.last() {
                            let slot = self.occ_slot.get(top.var as usize).copied().unwrap_or(NONE);
                            let needed = occ.get(slot as usize).is_some_and(|list| {
                                list.iter()
                                    .any(|&c| !done.get(c as usize).copied().unwrap_or(true))
                            });
                            if needed {
                                break;
                            }
                            let (var, len) = (top.var, top.trail_len);
                            while trail.len() > len {
                                if let Some(d) = trail.pop().and_then(|i| done.get_mut(i as usize))
                                {
                                    *d = false;
                                }
                            }
                            self.set(var, NONE);
                            frames.pop();
                        }
                        continue;
                    };
                    if self.work > limit {
                        break 'search Outcome::GaveUp;
                    }
                    self.set(var, val);
                    let mut conflict = false;
                    let slot = self.occ_slot.get(var as usize).copied().unwrap_or(NONE);
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
                                conflict = true;
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
                    if !conflict {
                        cursor = resume;
                        break;
                    }
                }
            }
        };
        for f in &frames {
            self.set(f.var, NONE);
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
