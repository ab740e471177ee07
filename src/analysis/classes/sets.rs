//! Set facts (`virus`, `fact NAME: [string]`) in the abstraction.
//!
//! A set's value is any finite set of names. What a leaf can tell about it
//! depends only on which *kinds* of name it holds. The fact's variable has
//! one known class (the set is known) and *unknown*; on the known class,
//! boolean variables — handled by the search like the pattern variables of
//! a string's "other" class, so they only matter when the set is known —
//! describe the names:
//!
//! - one per **group** of literals (the strings the policy compares the
//!   fact with, grouped when every leaf on the fact treats them alike):
//!   does the set hold a name of this group?
//! - "does the set hold another name" (no literal: every `==`/`in` is false
//!   on it);
//! - per pattern (glob list, regex) on the fact: does one of those other
//!   names match it, and does one of them fail it?
//!
//! Every set of names maps to one assignment, and each leaf is an exact
//! formula of these variables (every part reads the fact, so the formula
//! is unknown when the set is):
//!
//! - `any C` (and plain `C`): some present group satisfies `C`, or there
//!   are other names and one of them does;
//! - `all C`: some name satisfies `C` and no name fails it — non-vacuous,
//!   and visibly implying `any C`;
//! - `!=`: `not ==`.
//!
//! Assignments no real names realise (two patterns no one name can both
//! match) are allowed, as for single strings: the abstraction
//! over-approximates, so it stays sound. When the formulas would be too
//! large (many literals times many `all` leaves) the fact falls back to one
//! free boolean per leaf.

use super::{Builder, CExpr, Leaf, OtherTruth, Var, NONE, TABULATE_LIMIT};
use crate::analysis::truth::{Truth, U};
use crate::check::model::{Expr, ExprKind, Lit, Model, Op, Val};
use crate::eval::{leaf_fact, test_leaf};
use crate::facts::{FactId, FactType};
use std::collections::HashMap;

/// Most formula nodes the leaves on one set fact may take before it falls
/// back to free booleans.
const NODE_LIMIT: usize = 1_000_000;

/// The search variables that describe one set fact (all boolean, read on
/// the fact's known class).
#[derive(Debug, Clone)]
pub(crate) struct SetVars {
    /// The fact's own variable (its id).
    pub(crate) fact: u32,
    /// Per literal group: a representative literal and its membership variable.
    pub(crate) groups: Vec<(Box<str>, u32)>,
    /// "The set holds another name".
    pub(crate) other: u32,
    /// Per pattern: how it reads (`match "PUA.*"`), "one of the other names
    /// matches", "one of the other names does not".
    pub(crate) pats: Vec<(String, u32, u32)>,
}

/// What the builder keeps per set fact while compiling leaves.
pub(super) struct SetFact {
    vars: SetVars,
    /// Pattern key → index into `vars.pats`.
    pat_index: HashMap<String, usize>,
}
/// The leaf kinds of a condition that test a set fact, as `(fact, kind)`.
fn set_leaves<'e>(e: &'e Expr, sets: &[bool], out: &mut Vec<(FactId, &'e ExprKind)>) {
    match &e.kind {
        ExprKind::Not(i) => set_leaves(i, sets, out),
        ExprKind::And(ps) | ExprKind::Or(ps) => ps.iter().for_each(|p| set_leaves(p, sets, out)),
        ExprKind::Const(_) | ExprKind::Known(_) => {}
        kind => {
            if let Some(id) = leaf_fact(kind) {
                if sets.get(id.index()).copied().unwrap_or(false) {
                    out.push((id, kind));
                }
            }
        }
    }
}

/// The per-name test inside a leaf: without `all`, and `!=` turned into `==`.
/// Returns (name test, `all`?, negated?).
fn element_test(kind: &ExprKind) -> (ExprKind, bool, bool) {
    let (all, base) = match kind {
        ExprKind::All(inner) => (true, &**inner),
        k => (false, k),
    };
    match base {
        ExprKind::Compare(id, Op::Ne, lit) => {
            (ExprKind::Compare(*id, Op::Eq, lit.clone()), all, true)
        }
        k => (k.clone(), all, false),
    }
}

/// How a name that is no literal fares: a constant, or a pattern (key, description).
enum OnOther {
    Const(bool),
    Pattern(String, String),
}

fn on_other(kind: &ExprKind) -> OnOther {
    match kind {
        ExprKind::Globs(_, globs) => {
            if globs.iter().any(|g| g.source.chars().all(|c| c == '*')) {
                OnOther::Const(true)
            } else if globs.is_empty() {
                OnOther::Const(false)
            } else {
                let mut srcs: Vec<&str> = globs.iter().map(|g| g.source.as_str()).collect();
                srcs.sort_unstable();
                srcs.dedup();
                let desc = srcs
                    .iter()
                    .map(|s| crate::fmt::string(s))
                    .collect::<Vec<_>>()
                    .join(" or ");
                OnOther::Pattern(format!("g:{}", srcs.join("\u{0}")), format!("match {desc}"))
            }
        }
        ExprKind::Regex(_, re) => OnOther::Pattern(
            format!("r:{}", re.as_str()),
            format!("match /{}/", re.as_str().replace('/', "\\/")),
        ),
        // A name that is no literal equals none of them.
        _ => OnOther::Const(false),
    }
}

/// Decides, for every set fact, between exact formulas and the fallback,
/// and creates the variables. Set facts that fall back keep the opaque
/// classes `fact_classes` gave them.
pub(super) fn prepare(model: &Model, b: &mut Builder<'_>) {
    let is_set: Vec<bool> = model
        .facts
        .facts
        .iter()
        .map(|f| f.ty == FactType::StringSet)
        .collect();
    if !is_set.contains(&true) {
        return;
    }
    let mut leaves: Vec<(FactId, &ExprKind)> = Vec::new();
    for r in &model.rules {
        if let Some(e) = &r.when {
            set_leaves(e, &is_set, &mut leaves);
        }
    }
    for (i, _) in is_set.iter().enumerate().filter(|(_, s)| **s) {
        let id = FactId(i as u16);
        let tests: Vec<(ExprKind, bool, bool)> = leaves
            .iter()
            .filter(|(f, _)| *f == id)
            .map(|(_, k)| element_test(k))
            .collect();
        let mut lits: Vec<Box<str>> = Vec::new();
        for (t, _, _) in &tests {
            match t {
                ExprKind::Compare(_, _, Lit::Str(s)) => lits.push(s.clone()),
                ExprKind::InSet(_, ls) => lits.extend(ls.iter().filter_map(|l| match l {
                    Lit::Str(s) => Some(s.clone()),
                    _ => None,
                })),
                _ => {}
            }
        }
        lits.sort_unstable();
        lits.dedup();
        if lits.len().saturating_mul(tests.len()) > TABULATE_LIMIT {
            continue;
        }
        // Group the literals by how every leaf treats them.
        let mut groups: HashMap<Vec<bool>, u32> = HashMap::new();
        let mut reps: Vec<Box<str>> = Vec::new();
        let mut sigs: Vec<Vec<bool>> = Vec::new();
        for l in &lits {
            let sig: Vec<bool> = tests
                .iter()
                .map(|(t, _, _)| test_leaf(t, Val::Str(l)))
                .collect();
            let n = groups.len() as u32;
            groups.entry(sig.clone()).or_insert_with(|| {
                reps.push(l.clone());
                sigs.push(sig);
                n
            });
        }
        // Formula size: each leaf lists the groups it holds on (or fails on).
        let nodes: usize = tests
            .iter()
            .enumerate()
            .map(|(k, (_, all, _))| {
                let holds = sigs.iter().filter(|s| s.get(k) == Some(&true)).count();
                if *all {
                    sigs.len() + 6
                } else {
                    holds + 4
                }
            })
            .sum();
        if nodes > NODE_LIMIT {
            continue;
        }
        let name = model.facts.get(id).name.clone();
        let groups: Vec<(Box<str>, u32)> = reps
            .into_iter()
            .map(|r| {
                let desc = format!("{name} holds {}", crate::fmt::string(&r));
                let v = b.bool_var(id, desc);
                (r, v)
            })
            .collect();
        let other = b.bool_var(id, format!("{name} holds another name"));
        // The fact: one known class, whose variables are the ones above.
        if let Some(c) = b.classes.get_mut(i) {
            c.opaque = false;
        }
        b.sets.insert(
            id.0,
            SetFact {
                vars: SetVars {
                    fact: u32::from(id.0),
                    groups,
                    other,
                    pats: Vec::new(),
                },
                pat_index: HashMap::new(),
            },
        );
    }
}

impl Builder<'_> {
    /// A boolean variable read on set fact `id`'s known class.
    fn bool_var(&mut self, id: FactId, desc: String) -> u32 {
        let v = self.vars.len() as u32;
        self.vars.push(Var {
            known: 2,
            other: NONE,
            pattern: Some((id, desc)),
            reps: Vec::new(),
        });
        v
    }

    /// The leaf "set `fact` is known and variable `var` is true" (unknown
    /// when the set is), or a constant on the known class (`var` = NONE).
    fn set_part(&mut self, fact: u32, var: u32, constant: bool) -> CExpr {
        if let Some(&i) = self.aux_leaves.get(&(fact, var, u32::from(constant))) {
            return CExpr::Leaf(i);
        }
        let other = if var == NONE {
            OtherTruth::Const(Truth::from_bool(constant))
        } else {
            OtherTruth::Pat(var)
        };
        self.leaves.push(Leaf {
            var: fact,
            ranges: Vec::new(),
            unknown: Truth::Unknown,
            other,
            free: U,
        });
        let i = self.leaves.len() as u32 - 1;
        self.aux_leaves.insert((fact, var, u32::from(constant)), i);
        CExpr::Leaf(i)
    }

    /// The (matches, fails) variables of a pattern on set fact `id`.
    fn set_pattern(&mut self, id: FactId, key: String, desc: String) -> Option<(u32, u32)> {
        let s = self.sets.get(&id.0)?;
        if let Some(&i) = s.pat_index.get(&key) {
            return s.vars.pats.get(i).map(|p| (p.1, p.2));
        }
        let matches = self.bool_var(id, format!("another name does {desc}"));
        let fails = self.bool_var(id, format!("another name does not {desc}"));
        let s = self.sets.get_mut(&id.0)?;
        s.pat_index.insert(key, s.vars.pats.len());
        s.vars.pats.push((desc, matches, fails));
        Some((matches, fails))
    }

    /// The exact formula of a leaf on a set fact; `None` when `id` is no
    /// set fact with variables (a fallback set, or another type).
    pub(super) fn set_leaf(&mut self, id: FactId, kind: &ExprKind) -> Option<CExpr> {
        let s = self.sets.get(&id.0)?;
        let (test, all, neg) = element_test(kind);
        let fact = u32::from(id.0);
        let other = s.vars.other;
        // Per group: does a name of it pass the test? (from its representative)
        let verdicts: Vec<(u32, bool)> = s
            .vars
            .groups
            .iter()
            .map(|(rep, v)| (*v, test_leaf(&test, Val::Str(rep))))
            .collect();
        let (pat, other_passes) = match on_other(&test) {
            OnOther::Pattern(key, desc) => (Some(self.set_pattern(id, key, desc)?), false),
            OnOther::Const(c) => (None, c),
        };
        let not = |e: CExpr| CExpr::Not(Box::new(e));
        // Some name passes.
        let mut some: Vec<CExpr> = Vec::new();
        for &(v, pass) in &verdicts {
            if pass {
                some.push(self.set_part(fact, v, true));
            }
        }
        let has_other = self.set_part(fact, other, true);
        match pat {
            Some((m, _)) => {
                let one_matches = self.set_part(fact, m, true);
                some.push(CExpr::And(vec![has_other.clone(), one_matches]));
            }
            None if other_passes => some.push(has_other.clone()),
            None => {}
        }
        let some = if some.is_empty() {
            self.set_part(fact, NONE, false)
        } else {
            or(some)
        };
        Some(if all {
            // ... and no name fails.
            let mut parts: Vec<CExpr> = vec![some];
            for &(v, pass) in &verdicts {
                if !pass {
                    parts.push(not(self.set_part(fact, v, true)));
                }
            }
            match pat {
                Some((_, f)) => {
                    let one_fails = self.set_part(fact, f, true);
                    parts.push(not(CExpr::And(vec![has_other, one_fails])));
                }
                None if other_passes => {}
                None => parts.push(not(has_other)),
            }
            CExpr::And(parts)
        } else if neg {
            not(some)
        } else {
            some
        })
    }

    /// The set facts' variables, for rendering examples.
    pub(super) fn set_vars(&self) -> Vec<SetVars> {
        let mut out: Vec<SetVars> = self.sets.values().map(|s| s.vars.clone()).collect();
        out.sort_by_key(|s| s.fact);
        out
    }
}

fn or(mut parts: Vec<CExpr>) -> CExpr {
    match parts.len() {
        0 => CExpr::Const(Truth::False),
        1 => parts.pop().unwrap_or(CExpr::Const(Truth::False)),
        _ => CExpr::Or(parts),
    }
}

impl SetVars {
    /// The set an assignment describes, as `["A", other names where ...]`;
    /// `None` when the assignment leaves the fact unknown or unset.
    /// Unassigned variables count as "no" (the assignment holds for every
    /// completion).
    pub(crate) fn describe(&self, known: u32, w: &[(u32, u32)]) -> Option<String> {
        let value = |v: u32| w.iter().find(|(x, _)| *x == v).map(|(_, val)| *val);
        match value(self.fact) {
            Some(v) if v < known => {}
            _ => return None,
        }
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, v)| value(*v) == Some(1))
            .map(|(rep, _)| serde_json::to_string(&**rep).unwrap_or_else(|_| format!("{rep:?}")))
            .collect();
        if value(self.other) == Some(1) {
            let how: Vec<String> = self
                .pats
                .iter()
                .filter_map(
                    |(desc, m, f)| match (value(*m) == Some(1), value(*f) == Some(1)) {
                        (true, false) => Some(format!("all {desc}")),
                        (true, true) => Some(format!("some but not all {desc}")),
                        (false, true) => Some(format!("none {desc}")),
                        (false, false) => None,
                    },
                )
                .collect();
            if how.is_empty() {
                parts.push("another name".to_owned());
            } else {
                parts.push(format!("other names where {}", how.join(" and ")));
            }
        }
        Some(format!("[{}]", parts.join(", ")))
    }
}
