//! The rules of gates whose lookups push more ranges than the merge keeps
//! apart ([`super::PER_GATE`] per gate), collected in a bitset of rules.
//!
//! A set fact (`virus`, up to 1,024 names) or a deep prefix trie (`a*`,
//! `ab*`, `abc*`, ... on one string) can make one lookup push many ranges
//! of `Compiled::lists`. Their rules are marked in a thread-local bitset
//! ([`COLLECT`]) and tried in ascending rule order, merged with the other
//! lists: an evaluation tries at most the union of the ranges the lookups
//! pushed (what the compile-time bound on the work of one evaluation
//! counts), never every rule of the gate.
//!
//! Cost, with no allocation: marking costs the ranges' total length;
//! iterating costs the words between the lowest and highest marked rule
//! plus the set bits; only those words are cleared again (when the
//! [`Collected`] is dropped), never the whole bitset.
//!
//! The bitset covers [`COLLECT_BITS`] rules (the default
//! [`crate::Limits::max_rules`]). A policy with more rules (an embedder
//! raised the limit), an evaluation that finds the bitset in use (a fact
//! provider that evaluates a policy from inside an evaluation) or gone (the
//! thread is ending) tries every rule of the gate instead (`Gate::all`):
//! the same decision, only slower.

use super::gate::Gate;
use crate::check::model::Val;
use std::cell::RefCell;

/// Words of the thread's bitset: one bit per rule of a policy of the
/// default [`crate::Limits::max_rules`] (100,000 rules: 1,563 words, 12.5 KB).
pub(super) const COLLECT_WORDS: usize = 100_000usize.div_ceil(64);

/// Rules the bitset covers.
pub(super) const COLLECT_BITS: usize = COLLECT_WORDS * 64;

thread_local! {
    /// The thread's bitset of collected rules: all zero between evaluations.
    static COLLECT: RefCell<[u64; COLLECT_WORDS]> = const {
        RefCell::new([0; COLLECT_WORDS])
    };
}

/// Runs `f` with the thread's bitset, empty, or returns `None` when it is
/// in use (re-entry) or gone (the thread is ending). The bitset is left
/// empty again whatever `f` does ([`Collected`] clears what it marked when
/// dropped).
pub(super) fn with_bitset<R>(f: impl FnOnce(&mut Collected<'_>) -> R) -> Option<R> {
    COLLECT
        .try_with(|c| {
            let mut words = c.try_borrow_mut().ok()?;
            let mut collected = Collected {
                words: &mut words,
                lo: usize::MAX,
                hi: 0,
                at: u32::MAX,
            };
            Some(f(&mut collected))
        })
        .ok()
        .flatten()
}

/// Where the merge puts the rules of a gate whose lookup overflowed.
pub(super) trait Spill {
    /// Whether an overflowing lookup falls back to every rule of its gate
    /// (`Gate::all`) when [`Spill::collect`] cannot take it; otherwise the
    /// merge stops and hands its state back (to go on with the bitset).
    const FALLBACK: bool;

    /// Looks `v` up in `g` again and collects the rules of every range it
    /// pushes (of `lists`) from rule `low` on; `false` when this spill
    /// keeps no rules.
    fn collect(&mut self, lists: &[u32], g: &Gate, v: Val<'_>, low: u32) -> bool;

    /// The lowest collected rule not taken yet (`u32::MAX`: none).
    fn peek(&mut self) -> u32;

    /// Takes rule `r`, the one [`Spill::peek`] returned.
    fn take(&mut self, r: u32);
}

/// No bitset: an overflowing lookup stops the merge (`FALLBACK` false) or
/// falls back to all the gate's rules (`FALLBACK` true).
pub(super) struct NoSpill<const FALLBACK: bool>;

impl<const F: bool> Spill for NoSpill<F> {
    const FALLBACK: bool = F;

    #[inline(always)]
    fn collect(&mut self, _: &[u32], _: &Gate, _: Val<'_>, _: u32) -> bool {
        false
    }

    #[inline(always)]
    fn peek(&mut self) -> u32 {
        u32::MAX
    }

    #[inline(always)]
    fn take(&mut self, _: u32) {}
}

/// The rules collected in one evaluation, in the thread's bitset.
pub(super) struct Collected<'b> {
    words: &'b mut [u64; COLLECT_WORDS],
    /// The lowest and highest word marked (`lo > hi`: none): cleared on drop.
    lo: usize,
    hi: usize,
    /// No rule below this one is collected and not taken (`u32::MAX`: no
    /// rule marked yet).
    at: u32,
}

impl Collected<'_> {
    /// Marks the rules of range `(start, end)` of `lists` (ascending) from
    /// rule `low` on. Rules past the bitset are not marked: the caller
    /// checks that the policy's rules fit ([`COLLECT_BITS`]).
    #[inline]
    pub(super) fn mark(&mut self, lists: &[u32], (start, end): (u32, u32), low: u32) {
        let rules = lists.get(start as usize..end as usize).unwrap_or_default();
        let rules = rules
            .get(rules.partition_point(|&r| r < low)..)
            .unwrap_or_default();
        let (Some(&first), Some(&last)) = (rules.first(), rules.last()) else {
            return;
        };
        self.lo = self.lo.min(first as usize / 64);
        self.hi = self.hi.max(last as usize / 64);
        self.at = self.at.min(first);
        for &r in rules {
            if let Some(w) = self.words.get_mut(r as usize / 64) {
                *w |= 1u64 << (r % 64);
            }
        }
    }
}

impl Spill for Collected<'_> {
    const FALLBACK: bool = false;

    /// Marking stops once the postings pushed would pass the gate's rules
    /// (many names finding the same big range: 1,024 names each pushing a
    /// range of 1,000 rules are a million postings); then every rule of the
    /// gate is marked instead. So marking costs at most twice `Gate::all`'s
    /// length, which the work bound counts.
    #[inline]
    fn collect(&mut self, lists: &[u32], g: &Gate, v: Val<'_>, low: u32) -> bool {
        let cap = g.all.1.saturating_sub(g.all.0) as usize;
        let mut pushed = 0usize;
        let complete = g.lookup(v, &mut |range| {
            pushed += range.1.saturating_sub(range.0) as usize;
            if pushed > cap {
                return false;
            }
            self.mark(lists, range, low);
            true
        });
        if !complete {
            self.mark(lists, g.all, low);
        }
        true
    }

    #[inline]
    fn peek(&mut self) -> u32 {
        loop {
            let w = self.at as usize / 64;
            if w > self.hi {
                return u32::MAX;
            }
            // Taken rules are cleared: the lowest bit from `at` on is next.
            let x = self
                .words
                .get(w)
                .map_or(0, |&x| x & (!0u64 << (self.at % 64)));
            if x != 0 {
                return self.at - self.at % 64 + x.trailing_zeros();
            }
            // (`w < COLLECT_WORDS`, so this does not overflow.)
            self.at = (w as u32 + 1) * 64;
        }
    }

    #[inline]
    fn take(&mut self, r: u32) {
        if let Some(w) = self.words.get_mut(r as usize / 64) {
            *w &= !(1u64 << (r % 64));
        }
        self.at = r.saturating_add(1);
    }
}

impl Drop for Collected<'_> {
    /// Clears the words marked (`lo..=hi`): the bitset is empty for the
    /// next evaluation.
    fn drop(&mut self) {
        if let Some(words) = self.words.get_mut(self.lo..=self.hi) {
            words.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitset_covers_the_default_rule_limit() {
        assert!(COLLECT_BITS >= crate::Limits::default().max_rules);
    }

    #[test]
    fn marked_rules_come_back_ascending_once_and_the_bitset_is_left_empty() {
        let lists: Vec<u32> = vec![5, 64, 70, 99_999, 3, 64, 200, 0, 1, 2];
        let got = with_bitset(|c| {
            c.mark(&lists, (0, 4), 0);
            c.mark(&lists, (4, 7), 0);
            // Below `low`: not marked.
            c.mark(&lists, (7, 10), 2);
            let mut out = Vec::new();
            loop {
                let r = c.peek();
                if r == u32::MAX {
                    break;
                }
                c.take(r);
                out.push(r);
                if r == 64 {
                    // Marked after the walk passed it: tried in order.
                    c.mark(&[65, 66, 10], (0, 2), 65);
                    c.mark(&[10], (0, 1), 65);
                }
            }
            out
        });
        assert_eq!(
            got,
            Some(vec![2, 3, 5, 64, 65, 66, 70, 200, 99_999]),
            "ascending, each once"
        );
        // In use: a nested call gets `None`.
        let nested = with_bitset(|_| with_bitset(|_| ()));
        assert_eq!(nested, Some(None));
        // Left empty, also after an early stop.
        with_bitset(|c| {
            c.mark(&lists, (0, 4), 0);
            c.mark(&lists, (4, 7), 0);
            assert_eq!(c.peek(), 3);
        });
        COLLECT.with(|c| assert!(c.borrow().iter().all(|&w| w == 0)));
    }
}
