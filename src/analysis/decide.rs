//! First-match questions: "can rule `r` of this list decide a message (be
//! its first rule whose condition is true), with these fact values?" —
//! answered soundly both ways.
//!
//! The search ([`super::search`]) works on the abstraction; the answer is
//! confirmed on concrete facts, refining the question as it goes
//! (counterexample-guided):
//!
//! 1. look for an assignment under which the target rule is true (and the
//!    rules collected so far are not), with the asked fact values;
//! 2. turn it into concrete facts (class representatives, witness strings,
//!    every fact the search left free unknown) and ask the caller which rule
//!    really decides them (the compiled evaluator: it only tries the rules
//!    its decision table and value indexes say can apply);
//! 3. the target: the answer, with these facts as the example; an earlier
//!    rule: collect it and go back to 1.
//!
//! So every "yes" is a message that evaluation confirms, and a rule is only
//! checked against the few earlier rules that actually overlap it, instead
//! of all of them. A "no" is a proof within the abstraction, which
//! over-approximates the facts that exist. After [`REFINE_LIMIT`]
//! refinements the question is asked once with every earlier rule that can
//! be true together with the target (by each fact's projection), then
//! refined again. Anything the budget or the theory cannot settle is
//! [`Verdict::Unknown`]: never a guess.

use super::classes::{intersect, intersects, Abstraction, Ranges};
use super::classes::{Rep, NONE};
use super::search::{Con, Need, Outcome, Solver, Witness};
use crate::check::model::{Lit, Val};

/// Required values: per fact variable, the classes (or unknown) it may take.
pub(crate) type Phi = Vec<(u32, Vec<u32>)>;

/// A concrete fact value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    One(Lit),
    /// A set fact's names (no duplicates).
    Set(Vec<String>),
}

impl Value {
    /// As the evaluator reads it.
    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            Value::One(l) => l.as_val(),
            Value::Set(names) => Val::Set(names),
        }
    }
}

/// Concrete facts: per fact, its value (`None`: unknown).
pub(crate) type Values = Vec<Option<Value>>;

/// An example: the abstract assignment and the concrete facts.
#[derive(Debug, Clone)]
pub(crate) struct Example {
    pub(crate) witness: Witness,
    pub(crate) values: Values,
}

/// The answer to a first-match question.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// It can: evaluation of these facts confirms it.
    Decides(Example),
    /// It cannot; the earlier rules that were needed to show it.
    Never(Vec<usize>),
    /// Not settled (budget, regexes, opaque leaves).
    Unknown,
}

/// Refinements before asking with every overlapping earlier rule.
pub(crate) const REFINE_LIMIT: usize = 24;

/// Work counted for one concrete evaluation.
const EVAL_WORK: u64 = 64;

/// Asks first-match questions about the rule lists of an abstraction.
pub(crate) struct Decider<'a> {
    pub(crate) abs: &'a Abstraction,
    pub(crate) solver: Solver<'a>,
    /// Number of fact variables (the others are atoms).
    facts: usize,
    /// Per rule: the classes of each fact it reads under which it can be
    /// true (only where that is not every value); built on first use.
    proj: Option<Vec<Vec<(u32, Ranges)>>>,
}

impl<'a> Decider<'a> {
    /// A decider over `abs`, whose first `facts` variables are the facts.
    pub(crate) fn new(abs: &'a Abstraction, facts: usize) -> Decider<'a> {
        Decider {
            abs,
            solver: Solver::new(abs),
            facts,
            proj: None,
        }
    }

    /// Work done so far.
    pub(crate) fn work(&self) -> u64 {
        self.solver.work
    }

    /// Adds work done outside the search.
    pub(crate) fn add_work(&mut self, w: u64) {
        self.solver.work = self.solver.work.saturating_add(w);
    }

    /// The constraint "rule `i` is true" / "is not true".
    fn con(&self, i: usize, need: Need) -> Option<Con<'a>> {
        let abs = self.abs;
        abs.rules
            .get(i)
            .zip(abs.rule_vars.get(i))
            .map(|(expr, vars)| Con {
                expr,
                need,
                vars: vars.as_slice(),
            })
    }

    /// Concrete facts for a witness: class representatives, the witness
    /// strings, unknown for every fact it leaves free. `None` when a string
    /// is missing.
    pub(crate) fn concretize(&self, w: &Witness) -> Option<Values> {
        let mut values: Values = vec![None; self.facts];
        // One class of a string variable as a string (`None`: absent).
        let string = |v: u32, c: u32| -> Option<Option<String>> {
            let var = self.abs.vars.get(v as usize)?;
            if c == var.other {
                let s = w.strings.iter().find(|(x, _)| *x == v)?;
                return Some(Some(s.1.clone()));
            }
            match var.reps.get(c as usize)? {
                Rep::Value(Lit::Str(s)) => Some(Some(s.to_string())),
                Rep::Absent => Some(None),
                _ => None,
            }
        };
        for &(v, c) in &w.assign {
            let Some(var) = self.abs.vars.get(v as usize).filter(|x| x.is_fact()) else {
                continue;
            };
            if (v as usize) >= self.facts {
                continue;
            }
            let slots = self
                .abs
                .slots
                .get(v as usize)
                .map_or(&[][..], Vec::as_slice);
            let value = if c == var.known {
                None
            } else if !slots.is_empty() {
                // A set: the elements its slots hold (a slot left free holds none).
                let mut names: Vec<String> = Vec::new();
                for &s in slots {
                    let sc = if s == v {
                        c
                    } else {
                        w.value(s).unwrap_or(NONE)
                    };
                    if sc == NONE {
                        continue;
                    }
                    if let Some(name) = string(s, sc)? {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                names.sort_unstable();
                Some(Value::Set(names))
            } else if c == var.other {
                Some(Value::One(Lit::Str(string(v, c)??.into())))
            } else {
                Some(Value::One(self.abs.rep(v, c)?.clone()))
            };
            if let Some(slot) = values.get_mut(v as usize) {
                *slot = value;
            }
        }
        Some(values)
    }

    /// Solves `cons` under every combination of the values `phi` allows.
    fn solve_phi(&mut self, cons: &[Con<'_>], phi: &Phi, budget: u64) -> Outcome {
        let mut combos: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        for (v, vals) in phi {
            let mut next = Vec::with_capacity(combos.len() * vals.len());
            for c in &combos {
                for &val in vals {
                    let mut c = c.clone();
                    c.push((*v, val));
                    next.push(c);
                }
            }
            combos = next;
        }
        let mut gave_up = false;
        let limit = self.solver.work.saturating_add(budget);
        for init in combos {
            let left = limit.saturating_sub(self.solver.work);
            if left == 0 {
                return Outcome::GaveUp;
            }
            match self.solver.solve(cons, &init, left) {
                Outcome::Sat(w) => return Outcome::Sat(w),
                Outcome::GaveUp => gave_up = true,
                Outcome::Unsat => {}
            }
        }
        if gave_up {
            Outcome::GaveUp
        } else {
            Outcome::Unsat
        }
    }

    fn projections(&mut self) -> &[Vec<(u32, Ranges)>] {
        if self.proj.is_none() {
            let abs = self.abs;
            let mut proj = Vec::with_capacity(abs.rules.len());
            let mut work = 0u64;
            for (expr, vars) in abs.rules.iter().zip(&abs.rule_vars) {
                let mut p = Vec::new();
                for &v in vars {
                    if !abs.vars.get(v as usize).is_some_and(|x| x.is_fact()) {
                        continue;
                    }
                    work += 8;
                    let (t, _) = abs.project(expr, v);
                    if t != abs.all_values(v) {
                        p.push((v, t));
                    }
                }
                proj.push(p);
            }
            self.solver.work += work;
            self.proj = Some(proj);
        }
        self.proj.as_deref().unwrap_or_default()
    }

    /// The rules in `earlier` that can be true together with `target` (or
    /// any rule, for `None`) and `phi`, judged fact by fact.
    fn overlapping(
        &mut self,
        earlier: std::ops::Range<usize>,
        target: Option<usize>,
        phi: &Phi,
    ) -> Vec<usize> {
        let nvars = self.abs.vars.len();
        let proj = self.projections();
        let mut allowed: Vec<Option<Ranges>> = vec![None; nvars];
        if let Some(r) = target {
            for (v, t) in proj.get(r).map_or(&[][..], |p| p.as_slice()) {
                if let Some(a) = allowed.get_mut(*v as usize) {
                    *a = Some(t.clone());
                }
            }
        }
        for (v, vals) in phi {
            if let Some(a) = allowed.get_mut(*v as usize) {
                let mut rs: Ranges = vals.iter().map(|c| (*c, *c + 1)).collect();
                rs.sort_unstable();
                *a = Some(match a.take() {
                    Some(prev) => intersect(&prev, &rs),
                    None => rs,
                });
            }
        }
        let mut out = Vec::new();
        let mut work = 0u64;
        for e in earlier {
            let p = proj.get(e).map_or(&[][..], |p| p.as_slice());
            work += 1 + p.len() as u64;
            let can = p.iter().all(|(v, t)| match allowed.get(*v as usize) {
                Some(Some(a)) => intersects(t, a),
                _ => !t.is_empty(),
            });
            if can {
                out.push(e);
            }
        }
        self.solver.work += work;
        out
    }

    /// Can rule `target` of the list `rules` (or, for `None`, no rule of it:
    /// the default) decide with facts meeting `phi`? `first_true` tells
    /// which rule of the list (index within it) really decides concrete
    /// facts. At most `budget` units of work.
    pub(crate) fn decides(
        &mut self,
        rules: std::ops::Range<usize>,
        target: Option<usize>,
        phi: &Phi,
        budget: u64,
        first_true: &mut dyn FnMut(&Values) -> Option<usize>,
    ) -> Verdict {
        let limit = self.solver.work.saturating_add(budget);
        let base = rules.start;
        let end = match target {
            Some(t) => base + t,
            None => rules.end,
        };
        let target_abs = target.map(|t| base + t);
        let mut collected: Vec<usize> = Vec::new();
        let mut widened = false;
        loop {
            let left = limit.saturating_sub(self.solver.work);
            if left == 0 {
                return Verdict::Unknown;
            }
            let mut cons: Vec<Con<'a>> = Vec::with_capacity(collected.len() + 1);
            if let Some(t) = target_abs {
                match self.con(t, Need::True) {
                    Some(c) => cons.push(c),
                    None => return Verdict::Unknown,
                }
            }
            for &e in &collected {
                cons.extend(self.con(e, Need::NotTrue));
            }
            let w = match self.solve_phi(&cons, phi, left) {
                Outcome::Sat(w) => w,
                Outcome::Unsat => {
                    // With more set conditions than slots, "no" is not a proof.
                    if !self.abs.set_exact(target_abs.as_slice(), &collected) {
                        return Verdict::Unknown;
                    }
                    return Verdict::Never(collected);
                }
                Outcome::GaveUp => return Verdict::Unknown,
            };
            let Some(values) = self.concretize(&w) else {
                return Verdict::Unknown;
            };
            self.solver.work += EVAL_WORK;
            let first = first_true(&values).map(|i| base + i);
            match first {
                f if f == target_abs => {
                    return Verdict::Decides(Example { witness: w, values });
                }
                Some(e) if e < end && !collected.contains(&e) => {
                    collected.push(e);
                    if collected.len() > REFINE_LIMIT && !widened {
                        // Many earlier rules overlap it: take them all at once.
                        widened = true;
                        let all = self.overlapping(base..end, target_abs, phi);
                        for e in all {
                            if !collected.contains(&e) {
                                collected.push(e);
                            }
                        }
                        collected.sort_unstable();
                    }
                }
                // The abstraction and evaluation disagree (an opaque leaf):
                // nothing sound to say.
                _ => return Verdict::Unknown,
            }
        }
    }

    /// Whether `rule` being true forces `earlier` to be true (so `earlier`
    /// alone covers it).
    pub(crate) fn covers(&mut self, earlier: usize, rule: usize, budget: u64) -> bool {
        let (Some(a), Some(b)) = (self.con(rule, Need::True), self.con(earlier, Need::NotTrue))
        else {
            return false;
        };
        self.solver.solve(&[a, b], &[], budget) == Outcome::Unsat
            && self.abs.set_exact(&[rule], &[earlier])
    }
}
