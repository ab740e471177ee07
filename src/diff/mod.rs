//! `policy diff`: where two policies decide differently.
//!
//! Both policies' conditions go on one fact table ([`joint`]) and into one
//! abstraction (`crate::analysis`, built over the two rule lists), so every
//! fact's values are cut by the literals of both. A *region* is a pair (old
//! deciding item, new deciding item) — an item is a rule or the default —
//! whose decisions differ (disposition, reply, quarantine, alerts, tags; the
//! rule's name does not count).
//!
//! Each candidate pair is a first-match question on both lists at once,
//! answered the way the linter's questions are (counterexample-guided, see
//! `crate::analysis::decide`): look for an assignment under which both
//! targets are true and the earlier rules collected so far are not; make it
//! concrete (class representatives, the string theory's witness strings)
//! and evaluate both policies; if both decide by the targets it is the
//! example, else the earlier rule that fired is collected and the search
//! goes on. So every example is confirmed by evaluation (sound), an
//! unsatisfiable question is a proof that the region is empty, and a pair
//! the budget or the theory leaves open is *unsettled*: the diff then says
//! it is incomplete rather than call the policies equivalent. Every
//! differing pair an evaluation meets on the way is a region too.
//!
//! Pairs are pruned without search: equal effects never differ; if old rule
//! `i`'s condition also appears (as text, over the joint fact ids) at new
//! position `c`, the new policy can only decide at `j <= c` when `i` decides
//! (and symmetrically), so renamed and unchanged rules cost nothing and a
//! moved rule only pairs with the rules it crosses; and the values each rule
//! can be true under (its projection on each fact) must overlap.

mod joint;

use crate::analysis::classes::{intersect, intersects, Abstraction, CExpr, Ranges};
use crate::analysis::decide::{Decider, Value, Values, REFINE_LIMIT};
use crate::analysis::search::{Con, Need, Outcome, Witness};
use crate::check::model::{Lit, Model, Val};
use crate::compile::Compiled;
use crate::eval::FactSource;
use crate::facts::{FactId, FactTable, FactType, FactValue, Facts};
use std::collections::HashMap;

/// Work budget of one pair (search, theory, refinements).
const PAIR_BUDGET: u64 = 400_000;
/// Work budget of building the abstraction.
const ABSTRACTION_BUDGET: u64 = 20_000_000;
/// Unsettled pairs listed, at most (past it the diff stops).
const MAX_UNSETTLED: usize = 1_000;
/// Work counted for one concrete evaluation of both policies.
const EVAL_WORK: u64 = 128;

/// How much work a diff may do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Analysis work in all (search steps, theory, evaluations); past it the
    /// remaining pairs are unsettled and the diff incomplete.
    pub work_budget: u64,
    /// Most regions reported; past it the diff stops (and is incomplete).
    pub max_regions: usize,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            work_budget: 60_000_000,
            max_regions: 10_000,
        }
    }
}

/// Why two policies cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// Both declare a custom fact of this name, with different types.
    #[error("fact `{name}` is `{old}` in the old policy and `{new}` in the new one")]
    FactType {
        /// The fact.
        name: String,
        /// Its type in the old policy.
        old: String,
        /// Its type in the new policy.
        new: String,
    },
    /// More facts than a fact id can number.
    #[error("the two policies declare too many facts between them")]
    TooManyFacts,
}

/// One place where the policies decide differently.
#[derive(Debug, Clone)]
pub struct Region {
    /// Facts under which they differ (facts left out are unknown). Evaluate
    /// each policy on them to see both decisions.
    pub example: Facts,
    /// The old policy's deciding rule (`None`: its default).
    pub old_rule: Option<String>,
    /// The new policy's deciding rule (`None`: its default).
    pub new_rule: Option<String>,
    /// The example as a policy writes values: `scanner = infected, virus =
    /// ["W32/Sobig.F@MM"], sender = ""` (`any facts` when none is needed).
    pub example_text: String,
}

/// The semantic difference of two policies.
#[derive(Debug, Clone)]
pub struct PolicyDiff {
    /// Every region found, ordered by the old deciding item, then the new
    /// one; one example each.
    pub regions: Vec<Region>,
    /// Pairs of (old, new) deciding rules (`None`: the default) the analysis
    /// could not settle within its budget: neither proved apart nor shown
    /// with an example. Empty when the diff is complete.
    pub unsettled: Vec<(Option<String>, Option<String>)>,
    /// Whether the regions are all there are (nothing unsettled, no limit hit).
    pub complete: bool,
    /// Pairs searched (after the pruning).
    pub pairs_searched: usize,
    /// Analysis work spent.
    pub work: u64,
}

impl PolicyDiff {
    /// Whether the policies decide the same everywhere (as far as proved:
    /// `false` when the diff is incomplete).
    pub fn is_equivalent(&self) -> bool {
        self.complete && self.regions.is_empty()
    }
}

/// One side of the comparison.
pub(crate) struct Side<'a> {
    pub(crate) model: &'a Model,
    pub(crate) compiled: &'a Compiled,
}

/// Concrete facts (indexed by joint fact id) as one policy's evaluator reads
/// them: `ids` maps the policy's fact ids to joint ones (`None`: the same).
struct Concrete<'v> {
    values: &'v Values,
    ids: Option<&'v [FactId]>,
}

impl FactSource for Concrete<'_> {
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        let j = match self.ids {
            Some(map) => *map.get(id.index())?,
            None => id,
        };
        self.values.get(j.index())?.as_ref().map(Value::as_val)
    }
}

/// Per item of one side: effect signature and condition key (rules, then
/// the default); and the position of the first item with the same
/// condition on the other side.
struct Items {
    sig: Vec<u32>,
    key: Vec<String>,
    bound: Vec<usize>,
}

fn items(
    model: &Model,
    conds: &[Option<crate::check::model::Expr>],
    sigs: &mut HashMap<String, u32>,
    keys: &mut joint::Keys,
) -> Items {
    let mut sig_of = |actions: &[crate::decision::Action]| {
        let s = joint::signature(actions);
        let n = sigs.len() as u32;
        *sigs.entry(s).or_insert(n)
    };
    let mut sig: Vec<u32> = model.rules.iter().map(|r| sig_of(&r.actions)).collect();
    sig.push(sig_of(&model.default.actions));
    let mut key: Vec<String> = conds.iter().map(|c| keys.condition(c.as_ref())).collect();
    key.push(keys.condition(None));
    Items {
        sig,
        key,
        bound: Vec::new(),
    }
}

fn first_at(keys: &[String]) -> HashMap<&str, usize> {
    let mut m: HashMap<&str, usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        m.entry(k.as_str()).or_insert(i);
    }
    m
}

pub(crate) fn diff(
    old: Side<'_>,
    new: Side<'_>,
    opts: &DiffOptions,
) -> Result<PolicyDiff, DiffError> {
    let joint = joint::Joint::new(old.model, new.model)?;
    let (n_old, n_new) = (old.model.rules.len(), new.model.rules.len());
    let old_conds: Vec<Option<&crate::check::model::Expr>> =
        joint.old.iter().map(Option::as_ref).collect();
    let new_conds: Vec<Option<&crate::check::model::Expr>> =
        joint.new.iter().map(Option::as_ref).collect();
    let abs = Abstraction::build(&joint.facts, &[&old_conds, &new_conds], ABSTRACTION_BUDGET);
    let mut sigs: HashMap<String, u32> = HashMap::new();
    let mut keys = joint::Keys::default();
    let mut o = items(old.model, &joint.old, &mut sigs, &mut keys);
    let mut n = items(new.model, &joint.new, &mut sigs, &mut keys);
    drop(keys);
    let (new_first, old_first) = (first_at(&n.key), first_at(&o.key));
    o.bound = o
        .key
        .iter()
        .map(|k| new_first.get(k.as_str()).copied().unwrap_or(usize::MAX))
        .collect();
    n.bound = n
        .key
        .iter()
        .map(|k| old_first.get(k.as_str()).copied().unwrap_or(usize::MAX))
        .collect();
    // Joint rule → a number for its condition: a condition both lists share
    // is constrained once.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let cond_ids: Vec<u32> = o.key[..n_old]
        .iter()
        .chain(&n.key[..n_new])
        .map(|k| {
            let next = ids.len() as u32;
            *ids.entry(k.as_str()).or_insert(next)
        })
        .collect();
    let nfacts = joint.facts.facts.len();
    let mut decider = Decider::new(&abs, nfacts);
    decider.add_work(abs.work);
    let proj = projections(&abs);
    let mut search = Pairs {
        abs: &abs,
        decider,
        proj: &proj,
        nfacts,
        cond_ids: &cond_ids,
        n_old,
    };
    let mut out = PolicyDiff {
        regions: Vec::new(),
        unsettled: Vec::new(),
        complete: true,
        pairs_searched: 0,
        work: 0,
    };
    let name = |model: &Model, i: usize| model.rules.get(i).map(|r| r.name.clone());
    let mut found: HashMap<(usize, usize), ()> = HashMap::new();
    let mut limited = false;
    let never = |r: usize| {
        proj.get(r)
            .is_some_and(|p| p.iter().any(|(_, t)| t.is_empty()))
    };
    'pairs: for i in 0..=n_old {
        if i < n_old && never(i) {
            continue;
        }
        let jmax = o.bound.get(i).copied().unwrap_or(usize::MAX).min(n_new);
        for j in 0..=jmax {
            let (Some(si), Some(sj)) = (o.sig.get(i), n.sig.get(j)) else {
                continue;
            };
            if si == sj
                || i > n.bound.get(j).copied().unwrap_or(usize::MAX)
                || found.contains_key(&(i, j))
                || (j < n_new && never(n_old + j))
            {
                continue;
            }
            let targets = [(i < n_old).then_some(i), (j < n_new).then_some(n_old + j)];
            if search.allowed(targets).is_none() {
                continue;
            }
            if search.decider.work() >= opts.work_budget || out.regions.len() >= opts.max_regions {
                limited = true;
                out.unsettled.push((name(old.model, i), name(new.model, j)));
                if out.unsettled.len() > MAX_UNSETTLED {
                    break 'pairs;
                }
                continue;
            }
            out.pairs_searched += 1;
            // Both policies on concrete facts: every differing pair met is a region.
            let mut met: Vec<(usize, usize, Values)> = Vec::new();
            let mut evaluate = |values: &Values| -> (usize, usize) {
                let a = old
                    .compiled
                    .decide(&mut Concrete { values, ids: None })
                    .unwrap_or(n_old);
                let b = new
                    .compiled
                    .decide(&mut Concrete {
                        values,
                        ids: Some(&joint.new_ids),
                    })
                    .unwrap_or(n_new);
                if o.sig.get(a) != n.sig.get(b) && !met.iter().any(|m| (m.0, m.1) == (a, b)) {
                    met.push((a, b, values.clone()));
                }
                (a, b)
            };
            let settled = search.pair(i, j, n_new, &mut evaluate);
            if !settled {
                out.unsettled.push((name(old.model, i), name(new.model, j)));
            }
            for (a, b, values) in met {
                if found.insert((a, b), ()).is_none() {
                    let example = facts_of(&values, &joint.facts);
                    out.regions.push(Region {
                        example_text: describe(&example, &joint.facts),
                        example,
                        old_rule: name(old.model, a),
                        new_rule: name(new.model, b),
                    });
                }
            }
        }
    }
    // A pair left unsettled and later found (from another pair's evaluation) is settled.
    let index = |model: &Model, r: &Option<String>| match r {
        Some(r) => model.rules.iter().position(|x| &x.name == r),
        None => Some(model.rules.len()),
    };
    out.unsettled
        .retain(|(a, b)| match (index(old.model, a), index(new.model, b)) {
            (Some(a), Some(b)) => !found.contains_key(&(a, b)),
            _ => true,
        });
    out.complete = !limited && out.unsettled.is_empty();
    out.regions.sort_by_key(|r| {
        (
            index(old.model, &r.old_rule).unwrap_or(usize::MAX),
            index(new.model, &r.new_rule).unwrap_or(usize::MAX),
        )
    });
    out.work = search.decider.work();
    Ok(out)
}

/// Per joint rule, the classes of each fact it reads under which it can be
/// true (only where that is not every value).
fn projections(abs: &Abstraction) -> Vec<Vec<(u32, Ranges)>> {
    abs.rules
        .iter()
        .zip(&abs.rule_vars)
        .map(|(expr, vars)| {
            vars.iter()
                .filter(|v| abs.vars.get(**v as usize).is_some_and(|x| x.is_fact()))
                .filter_map(|&v| {
                    let (t, _) = abs.project(expr, v);
                    (t != abs.all_values(v)).then_some((v, t))
                })
                .collect()
        })
        .collect()
}

/// The pair questions.
struct Pairs<'a> {
    abs: &'a Abstraction,
    decider: Decider<'a>,
    proj: &'a [Vec<(u32, Ranges)>],
    nfacts: usize,
    /// Per joint rule, its condition's number.
    cond_ids: &'a [u32],
    n_old: usize,
}

impl<'a> Pairs<'a> {
    /// The values each fact may take if both targets are true (`None`: no value).
    fn allowed(&self, targets: [Option<usize>; 2]) -> Option<Vec<Option<Ranges>>> {
        let mut allowed: Vec<Option<Ranges>> = vec![None; self.nfacts];
        for t in targets.into_iter().flatten() {
            for (v, r) in self.proj.get(t).map_or(&[][..], |p| p.as_slice()) {
                let Some(a) = allowed.get_mut(*v as usize) else {
                    continue;
                };
                let next = match a.take() {
                    Some(prev) => intersect(&prev, r),
                    None => r.clone(),
                };
                if next.is_empty() {
                    return None;
                }
                *a = Some(next);
            }
        }
        Some(allowed)
    }

    fn con(&self, r: usize, need: Need) -> Option<Con<'a>> {
        let abs: &'a Abstraction = self.abs;
        let expr: &'a CExpr = abs.rules.get(r)?;
        let vars = abs.rule_vars.get(r)?;
        Some(Con { expr, need, vars })
    }

    /// The earlier rules of both lists (old `..i`, new `..j`) that can be
    /// true together with both targets, by projection; a condition both
    /// lists share once.
    fn overlapping(&mut self, i: usize, j: usize, targets: [Option<usize>; 2]) -> Vec<usize> {
        let Some(allowed) = self.allowed(targets) else {
            return Vec::new();
        };
        let mut seen: Vec<bool> = vec![false; self.cond_ids.len()];
        let mut out = Vec::new();
        let n_old = self.n_old;
        let earlier = (0..i.min(n_old)).chain(n_old..n_old + j);
        let mut work = 0u64;
        for e in earlier {
            let p = self.proj.get(e).map_or(&[][..], |p| p.as_slice());
            work += 1 + p.len() as u64;
            if let Some(c) = self.cond_ids.get(e) {
                if let Some(s) = seen.get_mut(*c as usize) {
                    if *s {
                        continue;
                    }
                    *s = true;
                }
            }
            let can = p.iter().all(|(v, t)| match allowed.get(*v as usize) {
                Some(Some(a)) => intersects(t, a),
                _ => !t.is_empty(),
            });
            if can {
                out.push(e);
            }
        }
        self.decider.add_work(work);
        out
    }

    /// Can old item `i` and new item `j` decide the same message? Every
    /// concrete evaluation goes through `evaluate` (which records regions);
    /// `true` when settled (an example for the pair, or a proof there is none).
    fn pair(
        &mut self,
        i: usize,
        j: usize,
        n_new: usize,
        evaluate: &mut dyn FnMut(&Values) -> (usize, usize),
    ) -> bool {
        let n_old = self.n_old;
        let limit = self.decider.work().saturating_add(PAIR_BUDGET);
        let targets = [(i < n_old).then_some(i), (j < n_new).then_some(n_old + j)];
        let target_list: Vec<usize> = targets.iter().flatten().copied().collect();
        let mut collected: Vec<usize> = Vec::new();
        let mut widened = false;
        loop {
            let left = limit.saturating_sub(self.decider.work());
            if left == 0 {
                return false;
            }
            let mut cons: Vec<Con<'a>> = Vec::with_capacity(collected.len() + 2);
            for t in &target_list {
                match self.con(*t, Need::True) {
                    Some(c) => cons.push(c),
                    None => return false,
                }
            }
            for &e in &collected {
                cons.extend(self.con(e, Need::NotTrue));
            }
            let w: Witness = match self.decider.solver.solve(&cons, &[], left) {
                Outcome::Sat(w) => w,
                Outcome::Unsat => return self.abs.set_exact(&target_list, &collected),
                Outcome::GaveUp => return false,
            };
            let Some(values) = self.decider.concretize(&w) else {
                return false;
            };
            self.decider.add_work(EVAL_WORK);
            let (a, b) = evaluate(&values);
            if (a, b) == (i, j) {
                return true;
            }
            // An earlier rule of either list decided: keep it not true.
            let mut added = false;
            if a < i && a < n_old && !collected.contains(&a) {
                collected.push(a);
                added = true;
            }
            if b < j && b < n_new && !collected.contains(&(n_old + b)) {
                collected.push(n_old + b);
                added = true;
            }
            if !added {
                // The abstraction and evaluation disagree (an opaque leaf).
                return false;
            }
            if collected.len() > REFINE_LIMIT && !widened {
                widened = true;
                for e in self.overlapping(i, j, targets) {
                    if !collected.contains(&e) {
                        collected.push(e);
                    }
                }
                collected.sort_unstable();
            }
        }
    }
}

/// Concrete values (joint fact ids) as `Facts`.
fn facts_of(values: &Values, table: &FactTable) -> Facts {
    let mut facts = Facts::new();
    for (info, v) in table.facts.iter().zip(values) {
        let Some(v) = v else { continue };
        let fv = match v {
            Value::Set(names) => FactValue::set(names.iter().cloned()),
            Value::One(lit) => match lit {
                Lit::Bool(b) => FactValue::Bool(*b),
                Lit::Int(i) => FactValue::Int(*i),
                Lit::Float(f) => FactValue::Number(*f),
                Lit::Str(s) => FactValue::Str(s.to_string().into()),
                Lit::Ip(ip) => FactValue::Ip(*ip),
                Lit::Enum(e) => match &info.ty {
                    FactType::Enum(names) => match names.get(usize::from(*e)) {
                        Some(n) => FactValue::Str(n.clone().into()),
                        None => continue,
                    },
                    _ => continue,
                },
            },
        };
        facts.set(&info.name, fv);
    }
    facts
}

/// Facts as `name = value, ...` in table order, values as a policy writes them.
fn describe(facts: &Facts, table: &FactTable) -> String {
    let mut parts = Vec::new();
    for info in &table.facts {
        let Some(v) = facts.get(&info.name) else {
            continue;
        };
        let text = match (v, &info.ty) {
            (FactValue::Str(s), FactType::Enum(_)) => s.to_string(),
            (FactValue::Str(s), _) => crate::fmt::string(s),
            (FactValue::Set(names), _) => {
                let mut out = String::new();
                let _ = crate::facts::write_set(&mut out, names);
                out
            }
            (other, _) => other.to_string(),
        };
        parts.push(format!("{} = {text}", info.name));
    }
    if parts.is_empty() {
        "any facts".to_owned()
    } else {
        parts.join(", ")
    }
}
