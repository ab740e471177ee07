//! The compiled evaluator: the checked [`Model`] turned into a form built for
//! evaluation. The plain walk in [`crate::eval`] stays the reference; this
//! one must give the identical decision (same deciding rule) for all facts,
//! which `tests/compiled.rs` checks with random policies and facts.
//!
//! Two levers:
//! - **A decision table over the enum and bool facts** (`direction`,
//!   `scanner`, `forges_sender`, `authenticated`, custom enums/bools): each
//!   fact's values plus *unknown* (its own value) pick a cell, and each cell
//!   holds, in rule order, only the rules whose condition can still be *true*
//!   given those values. A rule that does not test a fact is in every cell
//!   along that fact. Membership is decided at compile time by an abstract
//!   Kleene evaluation (each leaf on another fact may be false, unknown or
//!   true), which over-approximates: a rule that can be true is never left
//!   out, so the first rule of the cell whose condition is true is the first
//!   rule of the whole policy whose condition is true. A cell's list also
//!   stops at the first rule that is certainly true there (e.g.
//!   `when scanner == infected` in the `scanner == infected` cells).
//!   Identical cells share one list. The table is at most [`MAX_CELLS`]
//!   cells; facts are taken most-tested first while the product of their
//!   domains fits, and dropped again if the lists would exceed a memory
//!   budget proportional to the rule count.
//! - **Gates** ([`gate`]): a rule with a required conjunct that tests one
//!   string or IP fact positively (`recipient == "a@b"`, `client_ip in NETS`,
//!   `virus matches "Trojan.Gen*"`) is not listed in the cells; instead the
//!   fact's value is looked up once (hash map, CIDR segment table, glob
//!   prefix/suffix tries) to get the few such rules that may apply. The
//!   cell's rules and the gates' rules are merged in rule order; a gate is
//!   consulted only when the merge reaches its first rule that can be true
//!   in the cell, so a decision made by an early rule reads no gate fact.
//!   A lookup yields ranges of rules (one per exact name, trie node or
//!   network segment it finds). Up to [`PER_GATE`] (5) are merged as they
//!   are; past that (a set of many names, `virus` has up to 1,024, or a
//!   string deep in a prefix chain `a*`, `ab*`, `abc*`, ...) their rules
//!   are marked in a thread-local bitset of rules ([`collect`]), whose set
//!   bits join the merge in ascending rule order. Several gates that
//!   overflow in one evaluation share it (their union). So an evaluation
//!   tries at most the rules of the ranges its lookups pushed, never every
//!   rule of a gate: marking costs the ranges' length, the walk the words
//!   between the lowest and highest rule marked plus the rules, and only
//!   those words are cleared. Collected rules have no posting that proves
//!   their gate conjunct: their whole condition is evaluated. Where the
//!   bitset cannot be used (a policy of more rules than it covers, the
//!   default [`crate::Limits::max_rules`]; the bitset already in use by
//!   an evaluation on the same thread; the thread ending), every rule of
//!   the overflowing gate is tried ([`gate::Gate::all`]): the same
//!   decision, slower.
//! - **Compiled leaves** ([`expr`]): enum/bool tests as bitmasks, string
//!   sets sorted, CIDR lists as merged interval tables (binary search), globs
//!   as exact/prefix/suffix comparisons where they are of that form (bytewise
//!   on ASCII), lists of 16+ ASCII globs as one regex.
//!
//! With both, the rules tried per evaluation depend on how many rules can
//! match the message, not on how many the policy has: on generated policies
//! of 10 to 10,000 rules the time per evaluation stays flat (see
//! `benches/README.md`).
//!
//! Evaluation allocates nothing: the facts are read in place (or through the
//! reference's stack-allocated memo table for lazy providers); the bitset
//! of collected rules is the thread's, made once (12.5 KB).
//!
//! **Lazy providers** ([`crate::Policy::evaluate_lazy`]) do not use the
//! table: reading the table's facts first would ask the provider for
//! `direction`, `scanner`, ... even when no rule that is tried needs them.
//! Instead the compiled conditions are tried in rule order with the
//! reference's short-circuit order, so a provider is asked for exactly the
//! facts the reference walk asks for, in the same order, each at most once.
//! Except for a policy whose rules together take more steps than
//! [`crate::Limits::max_eval_steps`] ([`work`]): trying them all could pass
//! the per-evaluation cost bound, so a provider's evaluation goes through
//! the table too (same decision; the table's facts are asked first).

mod collect;
mod expr;
mod gate;
mod work;

use crate::analysis::truth::{and_mask, bit, not_mask, or_mask, Truth, ANY, F, T, U};
use crate::check::model::{Expr, ExprKind, Model, Val};
use crate::decision::Decision;
use crate::eval::{eval_expr_traced, leaf_fact, test_leaf, FactSource, LeafRecorder};
use crate::facts::{FactId, FactType};
use crate::scan::{MaskCache, ScanGroup, ScanMemo};
use collect::{NoSpill, Spill};
use expr::CExpr;
use gate::{Gate, MAX_GATES};
use std::collections::HashMap;

/// Most cells in the decision table.
pub(crate) const MAX_CELLS: usize = 4096;

/// A policy compiled for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// One condition per rule, in rule order.
    conds: Box<[CExpr]>,
    /// Some leaves read shared scans ([`crate::scan`]): evaluate through a
    /// [`ScanSource`] to keep their answers.
    scans: bool,
    /// The most passes ([`crate::Limits::max_scan_passes`]) an evaluation
    /// makes over one fact's value (see [`expr::passes_past`]).
    passes_max: usize,
    /// The steps ([`crate::Limits::max_eval_steps`]) of every rule: what
    /// [`Compiled::walk`] may take.
    walk_steps: u64,
    /// Per rule: the top-level conjuncts of its condition (bit `i`: part
    /// `i` of its `and`, or bit 0 for a lone leaf) that test only a table
    /// key. Every rule a cell proposes is certainly true on those there
    /// (else it would not be a candidate), so the direct path skips them.
    skip: Box<[u64]>,
    /// Per rule: its gate conjunct as a skip mask (see [`gate::Gates`]),
    /// skipped too when a proving posting proposed the rule.
    proves: Box<[u64]>,
    /// Bit `i`: position `i` of `lists` is a proving posting.
    proved: Box<[u64]>,
    /// The facts the table is indexed by.
    keys: Box<[Key]>,
    /// Per cell: its candidates (see [`Cell`]).
    cells: Box<[Cell]>,
    /// Rule indices, ascending within each range a cell or a gate names.
    lists: Box<[u32]>,
    /// Value indexes over string/ip facts (see [`gate`]).
    gates: Box<[Gate]>,
    /// Per cell and gate: the gate's first rule after the cell's head that
    /// can be true in the cell (`u32::MAX`: none). A gate is only consulted
    /// once the merge reaches that rule.
    gate_min: Box<[u32]>,
    /// Per key and coordinate, the rules that can be true there: a bitset
    /// of `words` (the rules / 64, rounded up) words at
    /// `(key.base + code) * words`.
    member: Box<[u64]>,
    /// Per cell and key: the first word of its coordinate's bitset in
    /// `member` (`(key.base + code) * words`), for [`Compiled::in_cell`].
    rows: Box<[u32]>,
    /// Per value code of the first key (see [`early_answers`]): the rule
    /// every cell with that code decides unevaluated, or `u32::MAX`; empty
    /// when no code has one (then the first key decides nothing alone).
    early: Box<[u32]>,
}

/// One cell of the decision table: the rules that can be true there, in
/// rule order, cut after the first one that is certainly true.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// All candidates when there are at most [`HEAD`], else the first one,
    /// gated or not, and the ungated ones right after it, at most [`HEAD`]
    /// (`start..end` in `lists`): tried directly,
    /// before any gate is read, so that an early decision costs what a
    /// plain loop over them costs.
    head: (u32, u32),
    /// The head's last rule is certainly true here: it decides unevaluated.
    sure: bool,
    /// Some candidate follows the head (in `rest` or behind a gate).
    more: bool,
    /// The ungated candidates after the head (`start..end` in `lists`).
    rest: (u32, u32),
}

/// Most candidates tried directly per cell before the gates.
const HEAD: usize = 4;

/// The most keys a table can have (every domain has at least 3 values).
const MAX_KEYS: usize = 12;
/// Lists one gate may contribute before falling back to all its rules.
const PER_GATE: usize = 5;
/// The cell's list plus every gate's lists.
const MAX_LISTS: usize = 1 + MAX_GATES * PER_GATE;

/// `from` of [`Compiled::merge_run`]'s smallest head when it is the
/// lowest collected rule (in the [`Spill`], not in `heads`).
const SPILLED: usize = usize::MAX - 1;

/// The state of [`Compiled::merge`]'s loop, handed over when a lookup
/// overflows.
#[derive(Clone, Copy)]
struct MergeState {
    /// The lists being merged, each as `(next, end)` in `Compiled::lists`.
    heads: [(u32, u32); MAX_LISTS],
    /// How many of `heads` are in use.
    n: usize,
    /// Bit `i`: gate `i` is not consulted yet.
    pending: u32,
    /// The last rule taken (`u32::MAX`: none yet).
    last: u32,
}

/// Where [`Compiled::merge`] runs: per gate, its first rule that can be
/// true in the cell; the cell's member rows; the first rule after the head.
struct Place<'c> {
    mins: &'c [u32],
    rows: &'c [u32],
    floor: u32,
}

/// The lowest rule that the merge may still take after `last` (`u32::MAX`:
/// none taken) from `floor` on: the rules an overflowing lookup collects.
/// A lower rule of the gate is not a candidate of the cell (a gate is
/// consulted before the merge passes its first candidate), or was taken.
#[inline]
fn low(floor: u32, last: u32) -> u32 {
    if last == u32::MAX {
        floor
    } else {
        floor.max(last + 1)
    }
}

/// One indexed fact.
#[derive(Debug, Clone, Copy)]
struct Key {
    id: FactId,
    /// Values before *unknown* (2 for a bool).
    known: u32,
    bool: bool,
    stride: u32,
    /// This key's first coordinate in `Compiled::member`.
    base: u32,
}

impl Key {
    /// The value for coordinate `code` (`None`: unknown).
    fn value(&self, code: u32) -> Option<Val<'static>> {
        if code >= self.known {
            None
        } else if self.bool {
            Some(Val::Bool(code == 1))
        } else {
            // `code < known <= 64`, so it fits.
            Some(Val::Enum(code as u16))
        }
    }
}

/// The facts that hold sets of names (bit `id`).
fn set_facts(model: &Model) -> u64 {
    (0..model.facts.len().min(64))
        .filter(|&i| model.facts.get(FactId(i as u16)).ty == FactType::StringSet)
        .fold(0u64, |m, i| m | 1 << i)
}

/// A rule's index and decision.
pub(crate) fn decision(model: &Model, rule: Option<usize>) -> Decision<'_> {
    match rule.and_then(|i| model.rules.get(i)) {
        Some(r) => Decision {
            actions: &r.actions,
            rule: Some(&r.name),
        },
        None => Decision {
            actions: &model.default.actions,
            rule: None,
        },
    }
}

impl Compiled {
    /// Compiles a checked model.
    pub(crate) fn new(model: &Model) -> Compiled {
        let mut shared = expr::Shared::new(model.regex_budget);
        let conds: Box<[CExpr]> = model
            .rules
            .iter()
            .map(|r| match &r.when {
                None => CExpr::Const(true),
                Some(e) => expr::compile(e, &model.facts, &mut shared),
            })
            .collect();
        let mut conds = conds;
        let sets = set_facts(model);
        let (scans, passes_max) = expr::share_scans(&mut conds, sets, &mut shared.regex_budget);
        let whens: Vec<Option<&Expr>> = model.rules.iter().map(|r| r.when.as_ref()).collect();
        let gate::Gates {
            gates,
            gated,
            proves,
            pool,
        } = gate::build(&whens, &model.facts);
        let mut proved = vec![0u64; pool.proved.len().div_ceil(64)];
        for (i, _) in pool.proved.iter().enumerate().filter(|(_, &p)| p) {
            if let Some(w) = proved.get_mut(i / 64) {
                *w |= 1u64 << (i % 64);
            }
        }
        let pool = pool.rules;
        let words = model.rules.len().div_ceil(64);
        let gate_bits: Vec<Vec<u64>> = gates
            .iter()
            .map(|g| {
                let mut bits = vec![0u64; words];
                for &r in pool
                    .get(g.all.0 as usize..g.all.1 as usize)
                    .unwrap_or_default()
                {
                    if let Some(x) = bits.get_mut(r as usize / 64) {
                        *x |= 1u64 << (r % 64);
                    }
                }
                bits
            })
            .collect();
        let masks: Vec<u64> = model
            .rules
            .iter()
            .map(|r| r.when.as_ref().map_or(0, mentions))
            .collect();
        let mut keys = choose_keys(model, &masks);
        let budget = 64 * model.rules.len() + 4096;
        loop {
            let mut lists = pool.clone();
            // With no keys there is one cell: its lists hold each rule at most once.
            let limit = if keys.is_empty() { usize::MAX } else { budget };
            let built = build_table(model, &keys, &gated, &gate_bits, &masks, &mut lists, limit);
            if let Some(t) = built {
                let skip = model
                    .rules
                    .iter()
                    .map(|r| r.when.as_ref().map_or(0, |e| key_conjuncts(e, &keys)))
                    .collect();
                let early = early_answers(&keys, &t.cells, &lists);
                let rows = cell_rows(&keys, t.cells.len(), t.words);
                return Compiled {
                    walk_steps: work::walk_steps(&conds, work::custom_read_steps(model)),
                    conds,
                    scans,
                    passes_max,
                    skip,
                    proves: proves.into(),
                    proved: proved.into(),
                    early,
                    keys: keys.into(),
                    cells: t.cells,
                    gate_min: t.gate_min,
                    lists: lists.into(),
                    gates: gates.into(),
                    rows,
                    member: t.member,
                };
            }
            keys.pop();
            set_strides(&mut keys);
        }
    }

    /// The first leaf past [`crate::Limits::max_scan_passes`]: the passes
    /// over a fact's value that its shared scans and the regex and glob
    /// leaves no scan answers cost per evaluation, counted per fact in
    /// rule order ([`expr::passes_past`]).
    pub(crate) fn passes_past(&self, model: &Model, limit: usize) -> Option<expr::Past> {
        // Counted while the leaves were rewritten; the leaf is looked for
        // (with the checked conditions' spans) only past the limit.
        if self.passes_max <= limit {
            return None;
        }
        let whens: Vec<Option<&Expr>> = model.rules.iter().map(|r| r.when.as_ref()).collect();
        expr::passes_past(&self.conds, &whens, set_facts(model), limit)
    }

    /// The index of the first rule whose condition is true (facts already in memory).
    #[inline]
    pub(crate) fn decide<S: FactSource + ?Sized>(&self, src: &mut S) -> Option<usize> {
        let mut cell = 0u32;
        let mut keys = self.keys.iter();
        if let Some(k) = keys.next() {
            // The first key has stride 1: its code is the cell so far.
            match src.code(k.id, k.known, k.bool) {
                Some(c) => cell = c,
                None => return self.walk(src),
            }
            // It may decide alone: then the other keys are not read.
            if let Some(&r) = self.early.get(cell as usize) {
                if r != u32::MAX {
                    return Some(r as usize);
                }
            }
        }
        for k in keys {
            match src.code(k.id, k.known, k.bool) {
                Some(c) => cell += c * k.stride,
                None => return self.walk(src),
            }
        }
        let Some(info) = self.cells.get(cell as usize) else {
            return self.walk(src);
        };
        let head = self
            .lists
            .get(info.head.0 as usize..info.head.1 as usize)
            .unwrap_or_default();
        if let Some((&last, first)) = head.split_last() {
            for &r in first {
                if self.holds_in_cell(r, src) {
                    return Some(r as usize);
                }
            }
            if info.sure || self.holds_in_cell(last, src) {
                return Some(last as usize);
            }
        }
        if !info.more {
            return None;
        }
        let floor = head.last().map_or(0, |&r| r + 1);
        self.merge(cell, info, floor, src)
    }

    /// Whether rule `r`, a candidate of the current cell, is true: its
    /// condition without the conjuncts the cell already decided.
    #[inline]
    fn holds_in_cell<S: FactSource + ?Sized>(&self, r: u32, src: &mut S) -> bool {
        #[cfg(test)]
        work::tried(r);
        let skip = self.skip.get(r as usize).copied().unwrap_or(0);
        self.conds
            .get(r as usize)
            .is_some_and(|c| c.holds_skipping(skip, src))
    }

    /// After the head: the cell's other ungated candidates, plus the gated
    /// rules the facts' values let through, tried in rule order (a merge of
    /// sorted ranges of `self.lists`, each as `(next, end)`). A gate is
    /// consulted (its fact read and looked up) only when the merge reaches
    /// the gate's first rule after the head that can be true in this cell.
    /// A lookup that pushes more than [`PER_GATE`] ranges hands the merge
    /// over to [`Compiled::merge_collecting`].
    #[inline(never)]
    fn merge<S: FactSource + ?Sized>(
        &self,
        cell: u32,
        info: &Cell,
        floor: u32,
        src: &mut S,
    ) -> Option<usize> {
        let ng = self.gates.len();
        let mins = self
            .gate_min
            .get(cell as usize * ng..(cell as usize + 1) * ng)
            .unwrap_or_default();
        let mut pending: u32 = 0;
        for (i, &m) in mins.iter().enumerate() {
            if m != u32::MAX {
                pending |= 1 << i;
            }
        }
        let rows = self.cell_rows(cell);
        if info.rest.0 >= info.rest.1 && pending != 0 && pending & (pending - 1) == 0 {
            // Only one gate's rules are left: no merge with the cell's.
            let g = self.gates.get(pending.trailing_zeros() as usize)?;
            return self.one_gate(g, rows, floor, src);
        }
        let mut heads: [(u32, u32); MAX_LISTS] = [(0, 0); MAX_LISTS];
        // Index 0 exists: `MAX_LISTS` is at least 1.
        heads[0] = info.rest;
        let state = MergeState {
            heads,
            n: 1,
            pending,
            last: u32::MAX,
        };
        let at = Place { mins, rows, floor };
        match self.merge_run(state, &at, src, &mut NoSpill::<false>) {
            Ok(r) => r,
            Err((i, state)) => self.merge_collecting(i, state, &at, src),
        }
    }

    /// [`Compiled::merge`] from `state` on, after gate `i`'s lookup pushed
    /// more than [`PER_GATE`] ranges: its rules, and those of any other
    /// gate that overflows later in this evaluation, are collected in the
    /// thread's bitset ([`collect`]: their union, one bitset) and tried in
    /// rule order with the other lists; when the bitset cannot be used,
    /// every rule of such a gate is tried ([`Gate::all`]).
    #[cold]
    #[inline(never)]
    fn merge_collecting<S: FactSource + ?Sized>(
        &self,
        i: usize,
        state: MergeState,
        at: &Place<'_>,
        src: &mut S,
    ) -> Option<usize> {
        let g = self.gates.get(i)?;
        if self.conds.len() <= collect::COLLECT_BITS {
            let done = collect::with_bitset(|c| {
                if let Some(v) = src.value(g.id) {
                    c.collect(&self.lists, g, v, low(at.floor, state.last));
                }
                // A bitset takes every overflow: no `Err`.
                self.merge_run(state, at, src, c).ok().flatten()
            });
            if let Some(r) = done {
                return r;
            }
        }
        let mut state = state;
        if let Some(slot) = state.heads.get_mut(state.n) {
            *slot = g.all;
            state.n += 1;
        }
        self.merge_run(state, at, src, &mut NoSpill::<true>)
            .ok()
            .flatten()
    }

    /// The merge loop of [`Compiled::merge`] from `state`, with the rules
    /// of overflowing lookups in `spill`; `Err` with the gate and the state
    /// when a lookup overflows and `spill` cannot take it (nor falls back).
    // The state goes back by value, only when a lookup overflows: no
    // allocation, and inlined into its two callers.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    fn merge_run<S: FactSource + ?Sized, W: Spill>(
        &self,
        state: MergeState,
        at: &Place<'_>,
        src: &mut S,
        spill: &mut W,
    ) -> Result<Option<usize>, (usize, MergeState)> {
        let MergeState {
            mut heads,
            mut n,
            mut pending,
            mut last,
        } = state;
        let (mins, rows, floor) = (at.mins, at.rows, at.floor);
        loop {
            let (mut best, mut from) = self.smallest_head(heads.get(..n).unwrap_or_default());
            let collected = spill.peek();
            if collected < best {
                best = collected;
                from = SPILLED;
            }
            if pending != 0 {
                let mut consulted = false;
                for (i, (g, &m)) in self.gates.iter().zip(mins).enumerate() {
                    if pending & (1 << i) == 0 || m > best {
                        continue;
                    }
                    pending &= !(1 << i);
                    consulted = true;
                    let Some(v) = src.value(g.id) else {
                        // Unknown: the gate's test is unknown, so its rules are not true.
                        continue;
                    };
                    let first = n;
                    let fits = g.lookup(v, &mut |range| {
                        if n - first < PER_GATE {
                            if let Some(slot) = heads.get_mut(n) {
                                *slot = range;
                                n += 1;
                                return true;
                            }
                        }
                        false
                    });
                    if !fits {
                        n = first;
                        if spill.collect(&self.lists, g, v, low(floor, last)) {
                            continue;
                        }
                        if !W::FALLBACK {
                            let state = MergeState {
                                heads,
                                n,
                                pending,
                                last,
                            };
                            return Err((i, state));
                        }
                        if let Some(slot) = heads.get_mut(n) {
                            *slot = g.all;
                            n += 1;
                        }
                    }
                }
                if consulted {
                    continue;
                }
            }
            if from == SPILLED {
                spill.take(best);
                if best == last {
                    continue;
                }
                last = best;
                if self.collected_holds(best, rows, src) {
                    return Ok(Some(best as usize));
                }
                continue;
            }
            // No list has a rule left and no gate is pending: no rule applies.
            let Some(head) = heads.get_mut(from) else {
                return Ok(None);
            };
            let Some(at) = pop_head(head, best, &mut last, floor) else {
                continue;
            };
            let holds = if from == 0 {
                self.holds_in_cell(best, src)
            } else {
                self.gated_holds(at, best, rows, src)
            };
            if holds {
                return Ok(Some(best as usize));
            }
        }
    }

    /// [`Compiled::merge`] when the cell's only candidates after the head
    /// are one gate's: its lists merged alone.
    #[inline(always)]
    fn one_gate<S: FactSource + ?Sized>(
        &self,
        g: &Gate,
        rows: &[u32],
        floor: u32,
        src: &mut S,
    ) -> Option<usize> {
        // Unknown: the gate's test is unknown, so its rules are not true.
        let v = src.value(g.id)?;
        let mut heads = [(0u32, 0u32); PER_GATE];
        let mut n = 0usize;
        let fits = g.lookup(v, &mut |range| match heads.get_mut(n) {
            Some(slot) => {
                *slot = range;
                n += 1;
                true
            }
            None => false,
        });
        if !fits {
            return self.one_gate_collecting(g, rows, floor, src);
        }
        if n == 1 {
            // One list (the usual case): in order, no merge.
            return self.first_in_range(heads[0], rows, floor, src);
        }
        let heads = heads.get_mut(..n)?;
        let mut last = u32::MAX;
        loop {
            let (best, from) = self.smallest_head(heads);
            let Some(at) = pop_head(heads.get_mut(from)?, best, &mut last, floor) else {
                continue;
            };
            if self.gated_holds(at, best, rows, src) {
                return Some(best as usize);
            }
        }
    }

    /// [`Compiled::one_gate`] when the lookup pushed more than
    /// [`PER_GATE`] ranges: their rules collected in the thread's bitset
    /// ([`collect`]) and tried in rule order; when the bitset cannot be
    /// used, every rule of the gate ([`Gate::all`]).
    #[cold]
    #[inline(never)]
    fn one_gate_collecting<S: FactSource + ?Sized>(
        &self,
        g: &Gate,
        rows: &[u32],
        floor: u32,
        src: &mut S,
    ) -> Option<usize> {
        if self.conds.len() <= collect::COLLECT_BITS {
            let done = collect::with_bitset(|c| {
                let v = src.value(g.id)?;
                c.collect(&self.lists, g, v, floor);
                loop {
                    let r = c.peek();
                    if r == u32::MAX {
                        return None;
                    }
                    c.take(r);
                    if self.collected_holds(r, rows, src) {
                        return Some(r as usize);
                    }
                }
            });
            if let Some(r) = done {
                return r;
            }
        }
        self.first_in_range(g.all, rows, floor, src)
    }

    /// The first rule from `floor` on, of one gate's range `(start, end)`
    /// of the lists, that is a candidate of the cell and true.
    #[inline(always)]
    fn first_in_range<S: FactSource + ?Sized>(
        &self,
        (start, end): (u32, u32),
        rows: &[u32],
        floor: u32,
        src: &mut S,
    ) -> Option<usize> {
        for at in start..end {
            let r = *self.lists.get(at as usize)?;
            if r >= floor && self.gated_holds(at, r, rows, src) {
                return Some(r as usize);
            }
        }
        None
    }

    /// The smallest rule at the head of the merge's lists `heads` (each
    /// `(next, end)` in `self.lists`) and the index of its list, or
    /// `(u32::MAX, usize::MAX)` when every list is empty.
    #[inline(always)]
    fn smallest_head(&self, heads: &[(u32, u32)]) -> (u32, usize) {
        let mut best = u32::MAX;
        let mut from = usize::MAX;
        for (i, &(next, end)) in heads.iter().enumerate() {
            if next < end {
                if let Some(&r) = self.lists.get(next as usize) {
                    if r < best {
                        best = r;
                        from = i;
                    }
                }
            }
        }
        (best, from)
    }

    /// Whether rule `r`, proposed by a gate at position `at` of the lists,
    /// is a candidate of the cell (its member rows `rows`) and true: its
    /// condition without the conjuncts the cell decided and, when the
    /// posting proves it, its gate conjunct.
    #[inline(always)]
    fn gated_holds<S: FactSource + ?Sized>(
        &self,
        at: u32,
        r: u32,
        rows: &[u32],
        src: &mut S,
    ) -> bool {
        if !self.in_cell(r, rows) {
            return false;
        }
        let at = at as usize;
        let mut skip = self.skip.get(r as usize).copied().unwrap_or(0);
        if self
            .proved
            .get(at / 64)
            .is_some_and(|w| w >> (at % 64) & 1 == 1)
        {
            skip |= self.proves.get(r as usize).copied().unwrap_or(0);
        }
        self.holds_without(r, skip, src)
    }

    /// [`Compiled::gated_holds`] for a rule collected in the bitset: it has
    /// no posting, so nothing proves its gate conjunct (the whole condition
    /// but the cell's conjuncts is evaluated).
    #[inline]
    fn collected_holds<S: FactSource + ?Sized>(&self, r: u32, rows: &[u32], src: &mut S) -> bool {
        self.in_cell(r, rows)
            && self.holds_without(r, self.skip.get(r as usize).copied().unwrap_or(0), src)
    }

    /// Whether rule `r`'s condition is true without the conjuncts in `skip`.
    #[inline(always)]
    fn holds_without<S: FactSource + ?Sized>(&self, r: u32, skip: u64, src: &mut S) -> bool {
        #[cfg(test)]
        work::tried(r);
        let Some(c) = self.conds.get(r as usize) else {
            return false;
        };
        // Every conjunct decided: true without a call.
        let every = match c {
            // (Parts past 64 are never skipped.)
            CExpr::And(parts) if parts.len() <= 64 => u64::MAX.checked_shr(64 - parts.len() as u32),
            CExpr::And(_) => None,
            _ => Some(1),
        };
        every.is_some_and(|m| skip & m == m) || c.holds_skipping(skip, src)
    }

    /// The member rows of a cell (see [`Compiled::rows`]).
    #[inline(always)]
    fn cell_rows(&self, cell: u32) -> &[u32] {
        let k = self.keys.len();
        self.rows
            .get(cell as usize * k..(cell as usize + 1) * k)
            .unwrap_or_default()
    }

    /// Whether rule `r` can be true in the cell with these member rows.
    #[inline(always)]
    fn in_cell(&self, r: u32, rows: &[u32]) -> bool {
        let (w, b) = (r as usize / 64, r % 64);
        rows.iter().all(|&row| {
            self.member
                .get(row as usize + w)
                .is_some_and(|x| x & (1u64 << b) != 0)
        })
    }

    /// Tries every rule in order (the lazy-provider path; see the module docs).
    #[inline]
    pub(crate) fn walk<S: FactSource + ?Sized>(&self, src: &mut S) -> Option<usize> {
        self.conds.iter().position(|c| c.eval(src) == Truth::True)
    }

    /// [`Compiled::decide`], keeping the answers of shared scans
    /// ([`crate::scan`]) for the evaluation when the policy has any.
    #[inline]
    pub(crate) fn decide_scanning<S: FactSource + ?Sized>(&self, src: &mut S) -> Option<usize> {
        if self.scans {
            self.decide(&mut ScanSource::new(src))
        } else {
            self.decide(src)
        }
    }

    /// [`Compiled::walk`], keeping the answers of shared scans.
    #[inline]
    pub(crate) fn walk_scanning<S: FactSource + ?Sized>(&self, src: &mut S) -> Option<usize> {
        if self.scans {
            self.walk(&mut ScanSource::new(src))
        } else {
            self.walk(src)
        }
    }

    /// Heap bytes owned by the compiled form (an estimate).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.conds
            .iter()
            .map(|c| std::mem::size_of::<CExpr>() + c.heap_bytes())
            .sum::<usize>()
            + self.keys.len() * std::mem::size_of::<Key>()
            + self.cells.len() * std::mem::size_of::<Cell>()
            + self.skip.len() * 8
            + self.proves.len() * 8
            + self.proved.len() * 8
            + self.lists.len() * 4
            + self.member.len() * 8
            + self.rows.len() * 4
            + self.early.len() * 4
            + self.gates.iter().map(|g| g.heap_bytes()).sum::<usize>()
    }

    /// How many cells the decision table has, and how many facts index it.
    pub(crate) fn table_shape(&self) -> (usize, usize) {
        (self.cells.len(), self.keys.len())
    }
}

/// The enum (≤ 64 values) and bool facts tested by rules, built-in facts
/// first (they are read in place; a declared fact is found by name, and
/// [`early_answers`] may make reading it unnecessary), each group
/// most-tested first, while the table stays within [`MAX_CELLS`].
fn choose_keys(model: &Model, masks: &[u64]) -> Vec<Key> {
    let n = model.facts.facts.len();
    let mut uses = vec![0usize; n];
    for m in masks {
        for (i, u) in uses.iter_mut().enumerate().take(64) {
            *u += usize::from(m & (1u64 << i) != 0);
        }
    }
    let mut cands: Vec<(usize, Key)> = Vec::new();
    for (i, info) in model.facts.facts.iter().enumerate() {
        let (known, bool) = match &info.ty {
            FactType::Bool => (2, true),
            FactType::Enum(v) if v.len() <= 64 => (v.len() as u32, false),
            _ => continue,
        };
        let u = uses.get(i).copied().unwrap_or(0);
        if u > 0 {
            let id = FactId(i as u16);
            cands.push((
                u,
                Key {
                    id,
                    known,
                    bool,
                    stride: 0,
                    base: 0,
                },
            ));
        }
    }
    cands.sort_by_key(|(u, k)| {
        (
            k.id.index() >= crate::facts::BUILTIN_COUNT,
            std::cmp::Reverse(*u),
            k.id,
        )
    });
    let mut keys = Vec::new();
    let mut cells = 1usize;
    for (_, k) in cands {
        let d = k.known as usize + 1;
        if cells * d <= MAX_CELLS && keys.len() < MAX_KEYS {
            cells *= d;
            keys.push(k);
        }
    }
    set_strides(&mut keys);
    keys
}

/// Per value code of the first key (stride 1: the code is the cell index
/// modulo the first key's domain): the rule that every cell with that code
/// decides unevaluated, i.e. whose head is that one rule, certainly true
/// there (the list was cut after it, so nothing is tried before or after).
/// Then the other keys need not be read: `scanner == timeout` in a policy
/// whose first rule is `when scanner in [error, timeout]` costs one read.
/// Empty when no code decides alone, or with fewer than two keys.
fn early_answers(keys: &[Key], cells: &[Cell], lists: &[u32]) -> Box<[u32]> {
    let (Some(first), Some(_)) = (keys.first(), keys.get(1)) else {
        return Box::default();
    };
    let width = first.known as usize + 1;
    // The rule a cell decides unevaluated, if it does.
    let sure_rule = |c: &Cell| -> Option<u32> {
        if c.sure && c.head.1 == c.head.0 + 1 {
            lists.get(c.head.0 as usize).copied()
        } else {
            None
        }
    };
    let mut answers = vec![u32::MAX; width];
    let mut any = false;
    for (code, answer) in answers.iter_mut().enumerate() {
        let mut rule = None;
        for c in cells.iter().skip(code).step_by(width) {
            match (sure_rule(c), rule) {
                (Some(r), None) => rule = Some(r),
                (Some(r), Some(q)) if r == q => {}
                _ => {
                    rule = None;
                    break;
                }
            }
        }
        if let Some(r) = rule {
            *answer = r;
            any = true;
        }
    }
    if any {
        answers.into()
    } else {
        Box::default()
    }
}

/// Per cell and key, the first word of the key's coordinate's bitset in
/// the member table (see [`Compiled::rows`]).
fn cell_rows(keys: &[Key], cells: usize, words: usize) -> Box<[u32]> {
    let mut rows = Vec::with_capacity(cells * keys.len());
    for cell in 0..cells as u32 {
        for k in keys {
            let code = (cell / k.stride) % (k.known + 1);
            rows.push((k.base + code) * words as u32);
        }
    }
    rows.into()
}

fn set_strides(keys: &mut [Key]) {
    let mut stride = 1u32;
    let mut base = 0u32;
    for k in keys.iter_mut() {
        k.stride = stride;
        k.base = base;
        stride *= k.known + 1;
        base += k.known + 1;
    }
}

/// The facts a condition tests, as a bit per fact id (ids beyond 63 are
/// counted as bit 63; the fact limit keeps ids below 64).
fn mentions(e: &Expr) -> u64 {
    match &e.kind {
        ExprKind::Const(_) => 0,
        ExprKind::Known(id) => fact_bit(*id),
        ExprKind::Not(inner) => mentions(inner),
        ExprKind::And(parts) | ExprKind::Or(parts) => parts.iter().fold(0, |m, p| m | mentions(p)),
        leaf => leaf_fact(leaf).map_or(0, fact_bit),
    }
}

/// The one fact `e` tests, if it tests exactly one (`None` also for a
/// constant).
fn single_fact(e: &Expr) -> Option<FactId> {
    match &e.kind {
        ExprKind::Const(_) => None,
        ExprKind::Known(id) => Some(*id),
        ExprKind::Not(inner) => single_fact(inner),
        ExprKind::And(parts) | ExprKind::Or(parts) => {
            let first = single_fact(parts.first()?)?;
            parts
                .iter()
                .all(|p| single_fact(p) == Some(first))
                .then_some(first)
        }
        leaf => leaf_fact(leaf),
    }
}

/// The top-level conjuncts of `e` (bit `i` for part `i` of an `and`, bit 0
/// for `e` itself otherwise) that test one fact only, a table key. Such a
/// conjunct's truth in a cell is exact (the key's value is fixed there), so
/// in every cell where the rule is a candidate it is true.
fn key_conjuncts(e: &Expr, keys: &[Key]) -> u64 {
    let on_key = |p: &Expr| single_fact(p).is_some_and(|id| keys.iter().any(|k| k.id == id));
    match &e.kind {
        ExprKind::And(parts) => parts
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, p)| on_key(p))
            .fold(0, |m, (i, _)| m | (1u64 << i)),
        _ => u64::from(on_key(e)),
    }
}

fn fact_bit(id: FactId) -> u64 {
    1u64 << id.0.min(63)
}

/// The truth values `e` can take when fact `f` is `v` (`None`: unknown) and
/// every other fact is anything.
fn abstract_eval(e: &Expr, f: FactId, v: Option<Val<'_>>) -> u8 {
    match &e.kind {
        ExprKind::Const(b) => bit(Truth::from_bool(*b)),
        ExprKind::Known(id) if *id == f => bit(Truth::from_bool(v.is_some())),
        ExprKind::Known(_) => F | T,
        ExprKind::Not(inner) => not_mask(abstract_eval(inner, f, v)),
        ExprKind::And(parts) => parts.iter().fold(T, |acc, p| {
            if acc == F {
                F
            } else {
                and_mask(acc, abstract_eval(p, f, v))
            }
        }),
        ExprKind::Or(parts) => parts.iter().fold(F, |acc, p| {
            if acc == T {
                T
            } else {
                or_mask(acc, abstract_eval(p, f, v))
            }
        }),
        leaf => match leaf_fact(leaf) {
            Some(id) if id == f => match v {
                Some(v) => bit(Truth::from_bool(test_leaf(leaf, v))),
                None => U,
            },
            _ => ANY,
        },
    }
}

/// Per key and coordinate: the rules that can be true, and those certainly true.
struct KeySets {
    can: Vec<Vec<u64>>,
    sure: Vec<Vec<u64>>,
}

fn key_sets(model: &Model, k: &Key, words: usize, base: &[u8], masks: &[u64]) -> KeySets {
    let codes = k.known as usize + 1;
    let mut can = vec![vec![0u64; words]; codes];
    let mut sure = vec![vec![0u64; words]; codes];
    for (i, r) in model.rules.iter().enumerate() {
        let mentioned = masks.get(i).is_none_or(|m| m & fact_bit(k.id) != 0);
        // The truth values per code, each code a bit (at most 65 codes).
        let sets = match &r.when {
            None => PerCode::all(T, codes),
            // One walk for all the key's values.
            Some(e) if mentioned => per_code(e, k, codes),
            // Not tested: the same for every value of this fact.
            Some(_) => PerCode::all(base.get(i).copied().unwrap_or(ANY), codes),
        };
        let (w, b) = (i / 64, 1u64 << (i % 64));
        // The codes where the rule can be true, and where it is surely true
        // (true and neither false nor unknown: `mask(code) == T`), bit by bit.
        let mut can_codes = sets.t;
        let mut sure_codes = sets.t & !sets.f & !sets.u;
        while can_codes != 0 {
            let code = can_codes.trailing_zeros() as usize;
            can_codes &= can_codes - 1;
            if let Some(x) = can.get_mut(code).and_then(|c| c.get_mut(w)) {
                *x |= b;
            }
        }
        while sure_codes != 0 {
            let code = sure_codes.trailing_zeros() as usize;
            sure_codes &= sure_codes - 1;
            if let Some(x) = sure.get_mut(code).and_then(|s| s.get_mut(w)) {
                *x |= b;
            }
        }
    }
    KeySets { can, sure }
}

/// Per value code of one key, the truth values a condition can take: bit
/// `code` of `f`, `u`, `t` when it can be false, unknown, true there.
#[derive(Clone, Copy)]
struct PerCode {
    f: u128,
    u: u128,
    t: u128,
}

impl PerCode {
    /// `m` at every one of `codes` codes.
    fn all(m: u8, codes: usize) -> PerCode {
        let every = if codes >= 128 {
            u128::MAX
        } else {
            (1u128 << codes) - 1
        };
        let on = |x: u8| if m & x != 0 { every } else { 0 };
        PerCode {
            f: on(F),
            u: on(U),
            t: on(T),
        }
    }

    /// The mask at one code (the tests compare it with [`abstract_eval`]).
    #[cfg(test)]
    fn mask(&self, code: usize) -> u8 {
        let at = |s: u128| code < 128 && (s >> code) & 1 == 1;
        (if at(self.f) { F } else { 0 })
            | (if at(self.u) { U } else { 0 })
            | (if at(self.t) { T } else { 0 })
    }
}

/// [`abstract_eval`] of `e` for every value code of key `k` at once (code
/// `k.known` is *unknown*): one walk of the condition instead of one per
/// value. Kleene `and`/`or` of two masks are taken code by code with bit
/// operations (the members of [`and_mask`] and [`or_mask`]).
fn per_code(e: &Expr, k: &Key, codes: usize) -> PerCode {
    match &e.kind {
        ExprKind::Const(b) => PerCode::all(bit(Truth::from_bool(*b)), codes),
        ExprKind::Known(id) if *id == k.id => {
            // Known for every value, not for *unknown*.
            let unknown = 1u128 << k.known.min(127);
            PerCode {
                f: unknown,
                u: 0,
                t: PerCode::all(T, codes).t & !unknown,
            }
        }
        ExprKind::Known(_) => PerCode::all(F | T, codes),
        ExprKind::Not(inner) => {
            let x = per_code(inner, k, codes);
            PerCode {
                f: x.t,
                u: x.u,
                t: x.f,
            }
        }
        ExprKind::And(parts) => parts.iter().fold(PerCode::all(T, codes), |a, p| {
            let b = per_code(p, k, codes);
            PerCode {
                f: a.f | b.f,
                t: a.t & b.t,
                u: (a.u & (b.u | b.t)) | (b.u & (a.u | a.t)),
            }
        }),
        ExprKind::Or(parts) => parts.iter().fold(PerCode::all(F, codes), |a, p| {
            let b = per_code(p, k, codes);
            PerCode {
                t: a.t | b.t,
                f: a.f & b.f,
                u: (a.u & (b.u | b.f)) | (b.u & (a.u | a.f)),
            }
        }),
        leaf => match leaf_fact(leaf) {
            Some(id) if id == k.id => {
                if let Some(out) = per_code_eq(leaf, k, codes) {
                    return out;
                }
                let mut out = PerCode { f: 0, u: 0, t: 0 };
                for code in 0..codes.min(128) {
                    let b = 1u128 << code;
                    match k.value(code as u32) {
                        Some(v) if test_leaf(leaf, v) => out.t |= b,
                        Some(_) => out.f |= b,
                        None => out.u |= b,
                    }
                }
                out
            }
            _ => PerCode::all(ANY, codes),
        },
    }
}

/// [`per_code`] of a leaf on `k` that is true at one value only (or at all
/// but one): `== V` / `!= V` on an enum or bool key, or a bare bool. Its
/// bits are that value's and the other known values', without testing each
/// code; `None` for any other leaf. (Exactly [`test_leaf`]'s answers: an
/// enum literal equals only its own code's `Val::Enum`, a bool literal
/// only its own `Val::Bool`, and *unknown* is never tested.)
fn per_code_eq(leaf: &ExprKind, k: &Key, codes: usize) -> Option<PerCode> {
    use crate::check::model::{Lit, Op};
    let (eq, code) = match leaf {
        ExprKind::Compare(_, op @ (Op::Eq | Op::Ne), Lit::Enum(v)) if !k.bool => {
            (*op == Op::Eq, u32::from(*v))
        }
        ExprKind::Compare(_, op @ (Op::Eq | Op::Ne), Lit::Bool(b)) if k.bool => {
            (*op == Op::Eq, u32::from(*b))
        }
        ExprKind::IsTrue(_) if k.bool => (true, 1),
        _ => return None,
    };
    if codes > 128 || k.known as usize + 1 != codes {
        return None;
    }
    let unknown = 1u128 << k.known;
    let known = unknown - 1;
    let hit = if code < k.known { 1u128 << code } else { 0 };
    let (t, f) = if eq {
        (hit, known & !hit)
    } else {
        (known & !hit, hit)
    };
    Some(PerCode { f, u: unknown, t })
}

/// Whether the candidates (`can`, cut after the first rule in `sure`) are at
/// most [`HEAD`].
fn few_candidates(can: &[u64], sure: &[u64], n: usize) -> bool {
    let mut count = 0usize;
    for (w, (&c, &d)) in can.iter().zip(sure).enumerate() {
        let mut bits = c;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if w * 64 + b >= n {
                return true;
            }
            count += 1;
            if count > HEAD {
                return false;
            }
            if d & (1u64 << b) != 0 {
                return true;
            }
        }
    }
    true
}

/// The decision table and the per-key membership bitsets.
struct Table {
    cells: Box<[Cell]>,
    gate_min: Box<[u32]>,
    member: Box<[u64]>,
    words: usize,
}

fn build_table(
    model: &Model,
    keys: &[Key],
    gated: &[bool],
    gate_bits: &[Vec<u64>],
    masks: &[u64],
    lists: &mut Vec<u32>,
    budget: usize,
) -> Option<Table> {
    let n = model.rules.len();
    let pool_len = lists.len();
    let words = n.div_ceil(64);
    // Each rule's truth values with no fact fixed (an id no leaf tests).
    let none = FactId(u16::MAX);
    let base: Vec<u8> = model
        .rules
        .iter()
        .map(|r| r.when.as_ref().map_or(T, |e| abstract_eval(e, none, None)))
        .collect();
    let sets: Vec<KeySets> = keys
        .iter()
        .map(|k| key_sets(model, k, words, &base, masks))
        .collect();
    let mut always = vec![0u64; words];
    for (i, r) in model.rules.iter().enumerate() {
        let certain = match &r.when {
            None => true,
            Some(e) => matches!(e.kind, ExprKind::Const(true)),
        };
        if certain {
            if let Some(x) = always.get_mut(i / 64) {
                *x |= 1u64 << (i % 64);
            }
        }
    }
    let ncells: usize = keys.iter().map(|k| k.known as usize + 1).product();
    let mut cells = Vec::with_capacity(ncells);
    let mut seen: HashMap<Vec<u32>, (u32, u32)> = HashMap::new();
    // Gated rules are proposed by their gates, not by the cells.
    let mut ungated = vec![!0u64; words];
    for (i, g) in gated.iter().enumerate() {
        if *g {
            if let Some(x) = ungated.get_mut(i / 64) {
                *x &= !(1u64 << (i % 64));
            }
        }
    }
    let mut can = vec![0u64; words];
    let mut sure = vec![0u64; words];
    let mut gate_min = Vec::with_capacity(ncells * gate_bits.len());
    for cell in 0..ncells {
        can.fill(!0);
        sure.copy_from_slice(&always);
        for (k, s) in keys.iter().zip(&sets) {
            let code = (cell / k.stride as usize) % (k.known as usize + 1);
            if let (Some(c), Some(d)) = (s.can.get(code), s.sure.get(code)) {
                for (x, y) in can.iter_mut().zip(c) {
                    *x &= y;
                }
                for (x, y) in sure.iter_mut().zip(d) {
                    *x |= y;
                }
            }
        }
        // The candidates in rule order, cut after the first rule that is
        // certainly true here. The head: all of them when they are few,
        // else the first candidate and the ungated ones that follow it, up
        // to `HEAD` (trying more gated rules would cost more than reading
        // their gate). The rest: the ungated candidates after the head; the
        // gates propose the others.
        let mut head: Vec<u32> = Vec::new();
        let mut rest: Vec<u32> = Vec::new();
        let mut head_open = true;
        let mut cut = u32::MAX;
        // A cell with at most `HEAD` candidates tries them all directly:
        // that costs less than reading a gate.
        let few = few_candidates(&can, &sure, n);
        'words: for (w, (&c, &d)) in can.iter().zip(&sure).enumerate() {
            let only_ungated = ungated.get(w).copied().unwrap_or(!0);
            let mut bits = if head_open { c } else { c & only_ungated };
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let i = w * 64 + b;
                if i >= n {
                    break 'words;
                }
                let is_gated = gated.get(i).copied().unwrap_or(false);
                if head_open && head.len() < HEAD && (head.is_empty() || few || !is_gated) {
                    head.push(i as u32);
                } else {
                    if head_open {
                        head_open = false;
                        bits &= only_ungated;
                    }
                    if !is_gated {
                        rest.push(i as u32);
                    }
                }
                if d & (1u64 << b) != 0 {
                    cut = i as u32;
                    break 'words;
                }
            }
        }
        let floor = head.last().map_or(0, |&r| r + 1);
        // Each gate's first rule after the head that can be true in this
        // cell, up to the cut.
        let mut gated_after = false;
        let from_word = floor as usize / 64;
        for bits in gate_bits {
            let mut first = u32::MAX;
            for (w, (c, b)) in can.iter().zip(bits).enumerate().skip(from_word) {
                let mut x = c & b;
                if w == from_word {
                    // Only the rules at or after `floor` in its word.
                    x &= !0u64 << (floor % 64);
                }
                if x != 0 {
                    first = (w * 64) as u32 + x.trailing_zeros();
                    break;
                }
            }
            if first > cut {
                first = u32::MAX;
            }
            gated_after |= first != u32::MAX;
            gate_min.push(first);
        }
        let mut store = |l: Vec<u32>| {
            *seen.entry(l).or_insert_with_key(|l| {
                let start = lists.len() as u32;
                lists.extend_from_slice(l);
                (start, lists.len() as u32)
            })
        };
        let more = !rest.is_empty() || gated_after;
        // The head ends with the cut: its last rule is certainly true.
        let sure = head.last() == Some(&cut);
        cells.push(Cell {
            head: store(head),
            sure,
            more,
            rest: store(rest),
        });
        // Checked as the lists grow, not after: cells × rules can be far
        // more memory than the budget (4,096 cells of 100,000 rules).
        if lists.len() - pool_len > budget {
            return None;
        }
    }
    let mut member = Vec::new();
    for s in &sets {
        for c in &s.can {
            member.extend_from_slice(c);
        }
    }
    Some(Table {
        cells: cells.into(),
        gate_min: gate_min.into(),
        member: member.into(),
        words,
    })
}

/// Evaluates rule conditions for `explain` leaf by leaf, each leaf's truth
/// read from its compiled form through the shared scans: a 64 KB value read
/// by 1,000 regex rules is scanned once per group, as in
/// [`Compiled::decide_scanning`], not once per leaf. The walk (and so the
/// trace: which leaves are evaluated, in which order) is the reference's.
pub(crate) struct Tracer<'c, 's> {
    conds: &'c [CExpr],
    src: ScanSource<'s, dyn FactSource + 's>,
}

impl Compiled {
    /// A tracer reading facts from `src`, keeping the scans' answers for
    /// as long as it lives (one explanation).
    pub(crate) fn tracer<'c, 's>(&'c self, src: &'s mut (dyn FactSource + 's)) -> Tracer<'c, 's> {
        Tracer {
            conds: &self.conds,
            src: ScanSource::new(src),
        }
    }
}

impl Tracer<'_, '_> {
    /// The truth of rule `rule`'s condition `e`, reporting every leaf it
    /// evaluates to `record` as [`eval_expr_traced`] does.
    pub(crate) fn rule(&mut self, rule: usize, e: &Expr, record: &mut LeafRecorder<'_>) -> Truth {
        match self.conds.get(rule) {
            Some(c) => traced(e, c, &mut self.src, record),
            None => eval_expr_traced(e, &mut self.src, record),
        }
    }
}

/// [`eval_expr_traced`] over `e` and its compiled form `c` side by side
/// (compiling keeps the shape: `not`, `and`, `or` part for part, a leaf for
/// a leaf); the leaves' truth comes from `c`.
fn traced<S: FactSource>(e: &Expr, c: &CExpr, src: &mut S, record: &mut LeafRecorder<'_>) -> Truth {
    match (&e.kind, c) {
        (ExprKind::Not(inner), CExpr::Not(ci)) => traced(inner, ci, src, record).not(),
        (ExprKind::And(parts), CExpr::And(cs)) if parts.len() == cs.len() => {
            crate::analysis::truth::all(parts.iter().zip(cs.iter()), |(p, c)| {
                traced(p, c, src, record)
            })
        }
        (ExprKind::Or(parts), CExpr::Or(cs)) if parts.len() == cs.len() => {
            crate::analysis::truth::any(parts.iter().zip(cs.iter()), |(p, c)| {
                traced(p, c, src, record)
            })
        }
        // Constants and `known` are cheap; any shape that differed would
        // be walked by the reference.
        (
            ExprKind::Not(_)
            | ExprKind::And(_)
            | ExprKind::Or(_)
            | ExprKind::Const(_)
            | ExprKind::Known(_),
            _,
        ) => eval_expr_traced(e, src, record),
        (leaf, c) => {
            let t = c.eval(src);
            let id = leaf_fact(leaf);
            let v = id.and_then(|id| src.value(id));
            record(e.span, id, v, t);
            t
        }
    }
}

/// Used by `Policy::memory_bytes` and the benches.
pub(crate) fn describe(c: &Compiled) -> (usize, usize, usize) {
    let (cells, keys) = c.table_shape();
    (c.heap_bytes(), cells, keys)
}

/// A fact source that keeps the answers of shared scans for one
/// evaluation: each group's fact is scanned at most once.
struct ScanSource<'s, S: FactSource + ?Sized> {
    inner: &'s mut S,
    memo: ScanMemo,
    /// Made at the first many-literal leaf (most policies have none: an
    /// evaluation pays nothing for it).
    lists: Option<MaskCache>,
}

impl<'s, S: FactSource + ?Sized> ScanSource<'s, S> {
    #[inline]
    fn new(inner: &'s mut S) -> Self {
        ScanSource {
            inner,
            memo: ScanMemo::new(),
            lists: None,
        }
    }
}

impl<S: FactSource + ?Sized> FactSource for ScanSource<'_, S> {
    #[inline(always)]
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        self.inner.value(id)
    }

    #[inline(always)]
    fn code(&mut self, id: FactId, known: u32, is_bool: bool) -> Option<u32> {
        self.inner.code(id, known, is_bool)
    }

    fn scan(&mut self, group: &ScanGroup, i: usize) -> Option<Truth> {
        self.memo.answer(&mut *self.inner, group, i)
    }

    fn scan_any(&mut self, group: &ScanGroup, masks: &[(u16, u64)], list: u32) -> Option<Truth> {
        if let Some(t) = self.lists.as_ref().and_then(|c| c.get(list)) {
            return Some(t);
        }
        let t = self.memo.answer_any(&mut *self.inner, group, masks)?;
        self.lists.get_or_insert_with(MaskCache::new).put(list, t);
        Some(t)
    }
}

/// Takes the head (rule `best`) off a merged list `head`: its position in
/// the lists, or `None` when the rule was tried already (the previous
/// rule taken, `last`, or one before the cell's `floor`).
#[inline(always)]
fn pop_head(head: &mut (u32, u32), best: u32, last: &mut u32, floor: u32) -> Option<u32> {
    let at = head.0;
    head.0 += 1;
    if best == *last || best < floor {
        return None;
    }
    *last = best;
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random condition over enum, bool and other facts, with
    /// `known`, `not`, `and`, `or` and constants.
    fn cond(seed: &mut u64, depth: u32) -> String {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (*seed >> 33) as usize;
        let leaves = [
            "scanner == infected",
            "scanner != clean",
            "scanner in [error, timeout]",
            "direction == outbound",
            "direction != inbound",
            "forges_sender",
            "forges_sender == false",
            "authenticated != true",
            "known scanner",
            "known forges_sender",
            "known sender",
            "sender == \"a@b\"",
            "size > 10",
            "true",
            "false",
        ];
        if depth == 0 || r % 3 == 0 {
            return leaves[r / 3 % leaves.len()].to_owned();
        }
        let (a, b) = (cond(seed, depth - 1), cond(seed, depth - 1));
        match r / 3 % 3 {
            0 => format!("not ({a})"),
            1 => format!("({a}) and ({b})"),
            _ => format!("({a}) or ({b})"),
        }
    }

    #[test]
    fn overflowing_gates_decide_the_same_with_or_without_the_bitset() {
        // A prefix chain on `sender` (one gate) and, with ungated rules in
        // between, one on `virus` too (a merge of two overflowing gates).
        let mut src = String::new();
        for k in 1..=12 {
            let p = &"abcdefghijkl"[..k];
            let size = 1200 - 100 * k;
            src.push_str(&format!(
                "rule \"p{k}\" {{ when sender matches \"{p}*\" and size > {size} then reject }}\n\
                 rule \"v{k}\" {{ when virus matches \"{p}*\" and size > {} then reject }}\n\
                 rule \"u{k}\" {{ when scanner == infected and size == {size} then reject }}\n",
                size + 50
            ));
        }
        let policy = crate::Policy::parse(&src).expect("parses");
        let only_sender = crate::Policy::parse(
            &src.lines()
                .filter(|l| l.contains("sender"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .expect("parses");
        let mut facts = Vec::new();
        for size in (0..1300).step_by(25) {
            let f = crate::Facts::new()
                .size(size)
                .sender("abcdefghijklm")
                .scanner(crate::Scanner::Infected);
            facts.push(f.clone().viruses(["abcdefghijkl", "abc", "abcdefg"]));
            facts.push(f);
        }
        for p in [&policy, &only_sender] {
            let want: Vec<Option<String>> = facts
                .iter()
                .map(|f| p.evaluate_reference(f).rule().map(str::to_owned))
                .collect();
            let run = || -> Vec<Option<String>> {
                facts
                    .iter()
                    .map(|f| p.evaluate(f).rule().map(str::to_owned))
                    .collect()
            };
            assert_eq!(run(), want);
            // The bitset in use (as in a nested evaluation): every rule of
            // an overflowing gate is tried instead.
            assert_eq!(collect::with_bitset(|_| run()), Some(want.clone()));
            assert!(want.iter().flatten().count() > 20, "{want:?}");
        }
    }

    #[test]
    fn per_code_is_abstract_eval_at_every_code() {
        let mut seed = 7u64;
        let mut src = String::new();
        for i in 0..400 {
            let c = cond(&mut seed, 4);
            src.push_str(&format!("rule \"r{i}\" {{ when {c} then discard }}\n"));
        }
        let policy = crate::Policy::parse(&src).expect("the generated policy parses");
        let model = &policy.model;
        let mut keys: Vec<Key> = Vec::new();
        for (i, info) in model.facts.facts.iter().enumerate() {
            let (known, bool) = match &info.ty {
                FactType::Bool => (2, true),
                FactType::Enum(v) if v.len() <= 64 => (v.len() as u32, false),
                _ => continue,
            };
            keys.push(Key {
                id: FactId(i as u16),
                known,
                bool,
                stride: 0,
                base: 0,
            });
        }
        assert!(keys.len() >= 4);
        let mut checked = 0;
        for k in &keys {
            let codes = k.known as usize + 1;
            for r in &model.rules {
                let Some(e) = &r.when else { continue };
                let all = per_code(e, k, codes);
                for code in 0..codes {
                    let one = abstract_eval(e, k.id, k.value(code as u32));
                    assert_eq!(all.mask(code), one, "code {code} of {:?}", k.id);
                    checked += 1;
                }
            }
        }
        assert!(checked > 4000);
    }
}
