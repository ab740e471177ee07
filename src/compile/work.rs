//! The work one evaluation may do, bounded at compile time
//! ([`crate::Limits::max_eval_steps`]).
//!
//! An evaluation reads the table's facts, picks a cell, and tries the
//! cell's candidates in rule order, and, once the merge reaches a gate's
//! rules, the rules the gate's lookup proposes; it stops at the first rule
//! that is true. In the worst case none is, and every rule it could try is
//! tried. So the most it can try is, over the cells, the cell's own
//! candidates plus what each gate consulted there can propose
//! ([`Gate::worst`]: one value finds one exact string, one path of each
//! trie, one network segment; a set's names at most `max_set_names` times
//! that). Each rule tried costs one *step* plus one per node of its
//! compiled condition (a leaf, `and`, `or`, `not`), and a gate's postings
//! cost a step per [`POSTINGS_PER_STEP`] (marking them before the rules
//! are tried in order). What the leaves read of a fact's value is bounded
//! apart, per fact, by [`crate::Limits::max_scan_passes`].
//!
//! The count over-approximates: a rule a gate proposes that the cell rules
//! out costs a bit test, not its condition, and an evaluation stops at the
//! first true rule. It never under-approximates what [`Compiled::decide`]
//! does on facts within the facts limits. The lazy-provider path
//! ([`Compiled::walk`]) tries rules in order without the table, as the
//! reference does, asking a provider for a fact only when a rule needs it:
//! it may take every rule's steps ([`walk_steps`]), so a policy heavier
//! than the limit is evaluated for a provider through the table instead
//! ([`Compiled::walk_within`]; the provider is then asked for the table's
//! enum and bool facts first, each still at most once).

use super::collect::COLLECT_BITS;
use super::expr::CExpr;
use super::gate::Proposed;
use super::Compiled;
use crate::check::model::Model;
use crate::eval::leaf_fact;
use crate::facts::{FactId, FactType, BUILTIN_COUNT};

/// Postings a gate's lookup marks per step (a posting is a bit set in a
/// bitset of rules; a step is a rule tried, ~10 ns or more).
pub(crate) const POSTINGS_PER_STEP: u64 = 8;

/// The first rule at which the steps an evaluation may take pass the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepsPast {
    /// The rule (index): with the rules before it, the worst evaluation
    /// is within the limit; with it, past it.
    pub(crate) rule: usize,
    /// The steps the worst evaluation may take counting the rules up to
    /// `rule`.
    pub(crate) steps: u64,
}

/// The steps trying a condition costs at most: one per node; a leaf that
/// searches a table one more per halving of it (`sender in LIST`: a binary
/// search of the list, by each rule that uses it), or that compares a long
/// string one more per [`STR_BYTES_PER_STEP`] bytes of it; and a leaf that
/// reads a declared fact `custom` more (the facts hold declared facts by
/// name, found by comparing names: `custom` is one step per
/// [`NAMES_PER_STEP`] declared facts).
fn nodes(c: &CExpr, custom: u64) -> u64 {
    let own = match c {
        CExpr::Not(inner) => return 1 + nodes(inner, custom),
        CExpr::And(parts) | CExpr::Or(parts) => {
            return parts
                .iter()
                .fold(1u64, |n, p| n.saturating_add(nodes(p, custom)))
        }
        CExpr::All { inner, .. } => return 1 + nodes(inner, custom),
        CExpr::StrSet { set, .. } => 1 + halvings(set.len()),
        CExpr::Nets { table, .. } => 1 + halvings(table.len()),
        CExpr::StrEq { text, .. } => 1 + text.len() as u64 / STR_BYTES_PER_STEP,
        _ => 1,
    };
    let declared = read_fact(c).is_some_and(|id| id.index() >= BUILTIN_COUNT);
    own + if declared { custom } else { 0 }
}

/// The fact a leaf reads, if any.
fn read_fact(c: &CExpr) -> Option<FactId> {
    match c {
        CExpr::Known(id)
        | CExpr::Enum { id, .. }
        | CExpr::Bool { id, .. }
        | CExpr::StrEq { id, .. }
        | CExpr::StrSet { id, .. }
        | CExpr::Nets { id, .. }
        | CExpr::Globs { id, .. }
        | CExpr::All { id, .. } => Some(*id),
        CExpr::Scan { group, .. } | CExpr::ScanAny { group, .. } => Some(group.fact),
        CExpr::Leaf(kind) => leaf_fact(kind),
        _ => None,
    }
}

/// Declared facts whose names a read of one compares per step.
const NAMES_PER_STEP: u64 = 4;

/// Bytes of a string compared per step.
const STR_BYTES_PER_STEP: u64 = 256;

/// The halvings of a binary search over `n` entries: ⌈log2(n + 1)⌉.
fn halvings(n: usize) -> u64 {
    u64::from(usize::BITS - n.leading_zeros())
}

/// The steps a read of a declared fact costs on top of the leaf's.
pub(crate) fn custom_read_steps(model: &Model) -> u64 {
    let declared = model.facts.facts.len().saturating_sub(BUILTIN_COUNT) as u64;
    declared.div_ceil(NAMES_PER_STEP)
}

/// The steps of every rule of `conds`: what [`Compiled::walk`] may take.
pub(crate) fn walk_steps(conds: &[CExpr], custom: u64) -> u64 {
    conds
        .iter()
        .fold(0u64, |a, c| a.saturating_add(1 + nodes(c, custom)))
}

impl Compiled {
    /// Per rule: the steps trying it costs at most.
    fn rule_steps(&self, model: &Model) -> Vec<u64> {
        let custom = custom_read_steps(model);
        self.conds.iter().map(|c| 1 + nodes(c, custom)).collect()
    }

    /// Whether the lazy-provider path ([`Compiled::walk`], every rule in
    /// order) is within `limit` steps; if not, a provider's evaluation
    /// goes through the table as [`Compiled::decide`] does.
    pub(crate) fn walk_within(&self, limit: u64) -> bool {
        self.walk_steps <= limit
    }

    /// The most steps one evaluation ([`Compiled::decide`]) may take, each
    /// rule weighing `weights[rule]`, on facts whose sets have at most
    /// `set_names` names.
    fn worst_steps(&self, model: &Model, weights: &[u64], set_names: usize) -> u64 {
        // Prefix sums over the pool: any range's weight in O(1).
        let mut sums = Vec::with_capacity(self.lists.len() + 1);
        let mut acc = 0u64;
        sums.push(acc);
        for &r in self.lists.iter() {
            acc = acc.saturating_add(weights.get(r as usize).copied().unwrap_or(0));
            sums.push(acc);
        }
        let weight = |(a, b): (u32, u32)| {
            let at = |i: u32| sums.get(i as usize).copied().unwrap_or(0);
            at(b).saturating_sub(at(a))
        };
        let gates: Vec<u64> = self
            .gates
            .iter()
            .map(|g| {
                let set = model.facts.get(g.id).ty == FactType::StringSet;
                // Past the bitset's rules an overflowing lookup tries
                // every rule of the gate ([`super::collect`]).
                let Proposed {
                    weight: w,
                    postings,
                } = if self.conds.len() > COLLECT_BITS {
                    Proposed {
                        weight: weight(g.all),
                        postings: 0,
                    }
                } else {
                    g.worst(&weight, set.then_some(set_names.max(1)))
                };
                w.saturating_add(postings.div_ceil(POSTINGS_PER_STEP))
            })
            .collect();
        let ng = self.gates.len();
        self.cells
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let mins = self.gate_min.get(c * ng..(c + 1) * ng).unwrap_or_default();
                mins.iter()
                    .zip(&gates)
                    .filter(|(&m, _)| m != u32::MAX)
                    .fold(
                        // A sure head's last rule decides untried.
                        weight((
                            cell.head.0,
                            cell.head.1.saturating_sub(u32::from(cell.sure)),
                        ))
                        .saturating_add(weight(cell.rest)),
                        |a, (_, &g)| a.saturating_add(g),
                    )
            })
            .max()
            .unwrap_or(0)
    }

    /// The most steps one evaluation may take, and the steps of every rule
    /// (what the lazy-provider path may take).
    pub(crate) fn steps(&self, model: &Model, set_names: usize) -> (u64, u64) {
        let weights = self.rule_steps(model);
        (
            self.worst_steps(model, &weights, set_names),
            self.walk_steps,
        )
    }

    /// The first rule at which the steps one evaluation may take pass
    /// `limit` ([`crate::Limits::max_eval_steps`]), for facts whose sets
    /// have at most `set_names` names; `None` when the policy is within it.
    pub(crate) fn steps_past(
        &self,
        model: &Model,
        limit: u64,
        set_names: usize,
    ) -> Option<StepsPast> {
        let mut weights = self.rule_steps(model);
        if self.worst_steps(model, &weights, set_names) <= limit {
            return None;
        }
        // The smallest `r` such that the rules up to `r` pass the limit, by
        // bisection (each count is linear in the compiled form): rules past
        // `r` weigh nothing.
        let full = weights.clone();
        let count = |r: usize, weights: &mut Vec<u64>| {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = if i <= r {
                    full.get(i).copied().unwrap_or(0)
                } else {
                    0
                };
            }
            self.worst_steps(model, weights, set_names)
        };
        let (mut lo, mut hi) = (0usize, full.len().saturating_sub(1));
        let mut past = count(hi, &mut weights);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let steps = count(mid, &mut weights);
            if steps > limit {
                hi = mid;
                past = steps;
            } else {
                lo = mid + 1;
            }
        }
        Some(StepsPast {
            rule: hi,
            steps: past,
        })
    }
}

#[cfg(test)]
thread_local! {
    /// The rules [`Compiled::decide`] tried on this thread (tests only).
    static TRIED: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records that rule `r`'s condition is evaluated (tests only).
#[cfg(test)]
pub(super) fn tried(r: u32) {
    TRIED.with(|t| t.borrow_mut().push(r));
}

#[cfg(test)]
mod tests {
    use super::TRIED;
    use crate::{Direction, Facts, Limits, Policy, Scanner};

    /// A small pseudo-random generator (deterministic).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// A leaf: gated tests (exact, prefix, suffix, networks, sets), table
    /// keys, and tests nothing narrows.
    fn leaf(r: &mut Rng) -> String {
        let k = r.below(6);
        match r.below(14) {
            0 => format!("recipient == \"u{k}@x\""),
            1 => format!("recipient in [\"u{k}@x\", \"u{}@x\"]", r.below(6)),
            2 => format!("sender matches \"p{k}*\""),
            3 => format!("sender matches \"*@d{k}\""),
            4 => format!("virus matches \"W32/F{k}*\""),
            5 => format!("virus == \"V{k}\""),
            6 => format!("(virus matches \"W32/F{k}*\" or virus matches \"*.{k}@MM\")"),
            7 => format!("client_ip in 10.{k}.0.0/16"),
            8 => "scanner == infected".to_owned(),
            9 => "direction != inbound".to_owned(),
            10 => "forges_sender".to_owned(),
            11 => format!("size > {}", r.below(100)),
            12 => format!("not sender matches \"p{k}*\""),
            _ => format!("all virus matches \"W32/F{k}*\""),
        }
    }

    fn cond(r: &mut Rng) -> String {
        let parts: Vec<String> = (0..1 + r.below(3))
            .map(|_| {
                if r.below(5) == 0 {
                    format!("({} or {})", leaf(r), leaf(r))
                } else {
                    leaf(r)
                }
            })
            .collect();
        parts.join(" and ")
    }

    fn facts(r: &mut Rng, names: usize) -> Facts {
        let mut f = Facts::new();
        if r.below(4) > 0 {
            f = f.recipient(format!("u{}@x", r.below(7)));
        }
        if r.below(4) > 0 {
            let s = match r.below(3) {
                0 => format!("p{}{}@d{}", r.below(6), r.below(6), r.below(7)),
                1 => format!("p{}", r.below(7)),
                _ => format!("q@d{}", r.below(7)),
            };
            f = f.sender(s);
        }
        let n = r.below(names + 1);
        let mut virus = Vec::new();
        for _ in 0..n {
            virus.push(match r.below(3) {
                0 => format!("W32/F{}.A", r.below(7)),
                1 => format!("V{}", r.below(7)),
                _ => format!("X.{}@MM", r.below(7)),
            });
        }
        if !virus.is_empty() {
            f = f.viruses(virus);
        }
        if r.below(3) > 0 {
            f = f.client_ip(
                format!("10.{}.1.2", r.below(7))
                    .parse()
                    .expect("an address"),
            );
        }
        if r.below(4) > 0 {
            f = f.scanner([Scanner::Clean, Scanner::Infected, Scanner::Error][r.below(3)]);
        }
        if r.below(4) > 0 {
            f = f.direction([Direction::Inbound, Direction::Outbound][r.below(2)]);
        }
        if r.below(3) > 0 {
            f = f.forges_sender(r.below(2) == 0);
        }
        f.size(r.below(120) as i64)
    }

    /// What an evaluation tries, weighed as the bound weighs it, never
    /// exceeds the bound, on random policies (gates, cells, sets) and
    /// facts within the facts limits.
    #[test]
    fn no_evaluation_takes_more_steps_than_the_bound() {
        let mut r = Rng(11);
        let names = 8;
        let limits = Limits {
            max_eval_steps: u64::MAX,
            max_set_names: names,
            ..Limits::default()
        };
        let mut tight = 0;
        for case in 0..150 {
            let rules = 1 + r.below(60);
            let src: String = (0..rules)
                .map(|i| format!("rule \"r{i}\" {{ when {} then reject }}\n", cond(&mut r)))
                .collect();
            let policy = match Policy::parse_with_limits(&src, &limits) {
                Ok(p) => p,
                Err(e) => panic!("case {case}: {e}\n{src}"),
            };
            let weights = policy.compiled.rule_steps(&policy.model);
            let (worst, _) = policy.compiled.steps(&policy.model, names);
            for _ in 0..40 {
                let f = facts(&mut r, names);
                TRIED.with(|t| t.borrow_mut().clear());
                let d = policy.evaluate(&f);
                let tried = TRIED.with(|t| t.take());
                let steps: u64 = tried
                    .iter()
                    .map(|&i| weights.get(i as usize).copied().unwrap_or(u64::MAX))
                    .sum();
                assert!(
                    steps <= worst,
                    "case {case}: {steps} steps > bound {worst} ({tried:?})\n{src}\n{f:?}"
                );
                if steps * 2 > worst {
                    tight += 1;
                }
                // In rule order, each rule once.
                assert!(tried.windows(2).all(|w| w[0] < w[1]), "{tried:?}");
                assert_eq!(d, policy.evaluate_reference(&f), "case {case}");
            }
        }
        // Some evaluations come close to the bound: it is not vacuous.
        assert!(tight > 100, "{tight} evaluations past half the bound");
    }

    /// A set's names each find their own rules: the bound counts
    /// `max_set_names` lookups, and an evaluation whose names all find a
    /// rule (none true) comes within the postings' share of it.
    #[test]
    fn a_set_of_names_is_counted_per_name() {
        let src: String = (0..30)
            .map(|i| {
                format!("rule \"r{i}\" {{ when virus == \"V{i}\" and size > 1000 then reject }}\n")
            })
            .collect();
        for names in [1, 4, 8] {
            let limits = Limits {
                max_set_names: names,
                ..Limits::default()
            };
            let policy = Policy::parse_with_limits(&src, &limits).expect("parses");
            let weights = policy.compiled.rule_steps(&policy.model);
            let (worst, _) = policy.compiled.steps(&policy.model, names);
            let f = Facts::new()
                .viruses((0..names).map(|i| format!("V{}", 3 * i)))
                .size(5);
            TRIED.with(|t| t.borrow_mut().clear());
            assert_eq!(policy.evaluate(&f).rule(), None);
            let tried = TRIED.with(|t| t.take());
            assert_eq!(tried.len(), names, "{tried:?}");
            let steps: u64 = tried.iter().map(|&i| weights[i as usize]).sum();
            assert!(steps <= worst, "{names} names: {steps} > {worst}");
            // Slack: the cell's head (its first rule, counted there and in
            // its gate) and the postings marked.
            assert!(
                worst <= steps + 8,
                "{names} names: {worst} is loose ({steps})"
            );
        }
    }
}
