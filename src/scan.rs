//! Shared scans: one pass over a value for many regex and glob leaves.
//!
//! A policy may test one fact with hundreds of regexes and globs, each of
//! which reads the whole value: 1,000 glob rules on a 64 KB value read
//! 64 MB per evaluation (310 ms). Here the regexes and globs that read one
//! fact are answered together, and the answers kept for the rest of the
//! evaluation ([`ScanMemo`]): an evaluation reads a value at most once per
//! group, however many leaves test it. A group is one of four kinds:
//!
//! - **Literals** ([`Lits`]): exact, prefix and suffix globs without `?`
//!   (`"W32/Fam*"`, `"*.exe"`) and anchored literal regexes (`/^q1\./`,
//!   `/\.scr$/`), all ASCII. They are byte tries, built in time linear in
//!   their bytes: the value is walked once forward (prefixes, exact
//!   strings) and once backward (suffixes), each step one child lookup, and
//!   every literal met sets its bit. One literal group per fact, as wide as
//!   the memo allows; equal literals share a bit, and a leaf with several
//!   globs holds when any of its bits is set.
//! - **DFAs**: the other patterns, in rule order, in groups of up to
//!   [`GROUP_PATTERNS`], each one multi-pattern dense DFA (`regex-automata`,
//!   `MatchKind::All`): a single pass tells which of its patterns match
//!   anywhere. Building one costs about its DFA bytes × its patterns, so
//!   these have a work budget ([`BUILD_WORK`]) and count against the
//!   policy's compiled-regex budget
//!   ([`crate::Limits::max_regex_total_bytes`]).
//! - **Pairs**: globs `*a*b*` and `*a*b` on a one-string fact, answered by
//!   where the first `a` ends and the last `b` starts (a forward and a
//!   reverse DFA of the parts, see [`Kind::Pairs`]).
//! - **Parts** ([`crate::scan_parts`]): other globs with an open start
//!   (`*a*b*c*`, `*a*b*c`, `*x*` in a list of those) on a one-string fact,
//!   parts ASCII without `?`: one Aho–Corasick pass over all their parts,
//!   each glob waiting for its next part in order.
//!
//! Patterns that fit none (a regex with a Unicode word boundary, a glob
//! with non-ASCII literals or `?` in an open-start glob of three parts or
//! more, the leaves past the budgets, the memo or [`MAX_GROUPS`]) are
//! matched leaf by leaf, each a pass over the value.

use crate::analysis::truth::Truth;
use crate::check::model::Val;
use crate::eval::FactSource;
use crate::facts::FactId;
use crate::scan_parts::Parts;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Patterns in one DFA group.
pub(crate) const GROUP_PATTERNS: usize = 256;

/// Words of the per-evaluation memo of most policies: all groups' answers
/// together, one bit per pattern (DFA groups) or literal (literal groups).
pub(crate) const MEMO_WORDS: usize = 128;

/// Words all groups of a policy may take: a policy whose groups need more
/// than [`MEMO_WORDS`] (literal groups of more than ~8,000 keys: a
/// generated policy of one virus family per rule, up to the 100,000 rules
/// [`crate::Limits::max_rules`] allows) keeps the groups past them in the
/// thread's [`WideMemo`].
pub(crate) const WIDE_MEMO_WORDS: usize = 2048;

/// Bits of the widest memo: what all groups of a policy may take.
pub(crate) const MEMO_BITS: usize = WIDE_MEMO_WORDS * 64;

/// Bits of one literal group (its tries mark bit + 1 in 16 bits): a fact
/// with more literal keys has several groups.
pub(crate) const LITERAL_GROUP_BITS: usize = u16::MAX as usize;

/// Groups in one policy (each has a done and an unknown bit in the memo).
pub(crate) const MAX_GROUPS: usize = 32;

/// The work all DFA group builds of a policy may do. Building a DFA costs
/// about its size times the patterns in it (each DFA state is a set of the
/// patterns' NFA states), so an attempt is charged its DFA's bytes × its
/// patterns, or its size limit × its patterns when it does not fit (and
/// the limit is lowered to what the budget has left). Measured in a release
/// build under a load average of ~7: 1,000 single-part globs (a third with
/// `?`, a third with a middle `*`) spent all of it, in 0.9 s of parsing,
/// when their suffix globs were DFA patterns too; 1,000 literal-like
/// regexes or contains-globs need a third of it.
pub(crate) const BUILD_WORK: usize = 192 << 20;

/// Largest DFA tried for one group (the regex budget may allow less).
pub(crate) const GROUP_MAX_BYTES: usize = 512 << 10;

/// The second part of a pair-group glob, as given to
/// [`ScanGroup::pairs`]: `*a*b*`'s `b` as a pattern ([`glob_pattern`] of
/// `*b*`), or the glob `*a*b` itself (its `b` is tested at the end).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PairEnd<'p> {
    Last(&'p str),
    End(&'p crate::glob::Glob),
}

/// A pair's second part: a pattern of the reverse DFA, or a glob whose last
/// part must match at the end.
#[derive(Debug, Clone)]
enum Second {
    Last(u16),
    End(Box<crate::glob::Glob>),
}

/// Patterns of one fact, answered together.
#[derive(Clone)]
pub(crate) struct ScanGroup {
    /// The fact every pattern reads.
    pub(crate) fact: FactId,
    /// Its done/unknown bit in the evaluation's [`ScanMemo`] (below
    /// [`MAX_GROUPS`]).
    pub(crate) slot: usize,
    /// Its first word in the memo.
    base: usize,
    /// Its words in the memo.
    words: usize,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Dfa {
        dfa: Box<dense::DFA<Vec<u32>>>,
        /// Bit `i` set: pattern `i` exists.
        all: Box<[u64]>,
    },
    Lits(Box<Lits>),
    /// Globs `*a*b*` and `*a*b`: bit `i` when the first `a` of pair `i`
    /// (a pattern of `fwd`) ends at or before its `b` starts: the last `b`
    /// (a pattern of `rev`, a reverse DFA run from the end), or the `b`
    /// at the end.
    Pairs {
        fwd: Box<dense::DFA<Vec<u32>>>,
        rev: Option<Box<dense::DFA<Vec<u32>>>>,
        pairs: Box<[(u16, Second)]>,
    },
    /// Globs with an open start and parts in order (`*a*b*c*`): one
    /// Aho-Corasick pass ([`crate::scan_parts`]).
    Parts(Box<Parts>),
}

impl std::fmt::Debug for ScanGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanGroup")
            .field("fact", &self.fact)
            .field("slot", &self.slot)
            .field("base", &self.base)
            .field("words", &self.words)
            .field(
                "kind",
                &match self.kind {
                    Kind::Dfa { .. } => "dfa",
                    Kind::Lits(_) => "literals",
                    Kind::Pairs { .. } => "pairs",
                    Kind::Parts(_) => "parts",
                },
            )
            .finish()
    }
}

impl ScanGroup {
    /// Whether this is a fact's literal group (exact, prefix and suffix
    /// tests: each reads only its own length of a value or name).
    pub(crate) fn is_literal(&self) -> bool {
        matches!(self.kind, Kind::Lits(_))
    }

    /// Compiles `patterns` (regex syntax as [`crate::re::Re`] reads it:
    /// case-insensitive unless a pattern says otherwise) into one DFA of
    /// at most `limit` bytes, answering in memo words from `base`; `None`
    /// when it does not fit (or a pattern needs more than a dense DFA).
    pub(crate) fn build(
        fact: FactId,
        slot: usize,
        base: usize,
        patterns: &[&str],
        limit: usize,
    ) -> Option<ScanGroup> {
        if patterns.is_empty() || patterns.len() > GROUP_PATTERNS {
            return None;
        }
        let words = patterns.len().div_ceil(64);
        if base + words > WIDE_MEMO_WORDS || slot >= MAX_GROUPS {
            return None;
        }
        let dfa = build_dfa(patterns, false, limit)?;
        let mut all = vec![0u64; words].into_boxed_slice();
        for i in 0..patterns.len() {
            set_bit(&mut all, i);
        }
        Some(ScanGroup {
            fact,
            slot,
            base,
            words,
            kind: Kind::Dfa {
                dfa: Box::new(dfa),
                all,
            },
        })
    }

    /// A group for globs `*a*b*` and `*a*b` given as their first part's
    /// pattern ([`glob_pattern`] of `*a*`) and their second part,
    /// answering in memo words from `base` (bit `i`: glob `i`); its two
    /// DFAs together within `limit` bytes and [`PAIR_STATES`] states each;
    /// `None` when they do not fit.
    pub(crate) fn pairs(
        fact: FactId,
        slot: usize,
        base: usize,
        globs: &[(&str, PairEnd<'_>)],
        limit: usize,
    ) -> Option<ScanGroup> {
        if globs.is_empty() || globs.len() > GROUP_PATTERNS {
            return None;
        }
        let words = globs.len().div_ceil(64);
        if base + words > WIDE_MEMO_WORDS || slot >= MAX_GROUPS {
            return None;
        }
        // Each side's distinct patterns, and each glob's two indexes.
        let mut firsts: Vec<&str> = Vec::new();
        let mut seconds: Vec<&str> = Vec::new();
        fn index<'p>(v: &mut Vec<&'p str>, p: &'p str) -> Option<u16> {
            let i = match v.iter().position(|q| *q == p) {
                Some(i) => i,
                None => {
                    v.push(p);
                    v.len() - 1
                }
            };
            u16::try_from(i).ok()
        }
        let mut pairs = Vec::with_capacity(globs.len());
        for (a, b) in globs {
            let second = match b {
                PairEnd::Last(b) => Second::Last(index(&mut seconds, b)?),
                PairEnd::End(g) => Second::End(Box::new((*g).clone())),
            };
            pairs.push((index(&mut firsts, a)?, second));
        }
        let fwd = build_dfa(&firsts, false, limit)?;
        let rev = if seconds.is_empty() {
            None
        } else {
            let rev = build_dfa(&seconds, true, limit.saturating_sub(fwd.memory_usage()))?;
            if states_bound(&rev) > PAIR_STATES {
                return None;
            }
            Some(Box::new(rev))
        };
        if states_bound(&fwd) > PAIR_STATES {
            return None;
        }
        Some(ScanGroup {
            fact,
            slot,
            base,
            words,
            kind: Kind::Pairs {
                fwd: Box::new(fwd),
                rev,
                pairs: pairs.into(),
            },
        })
    }

    /// A group for globs with an open start whose parts are found in order
    /// by one pass ([`crate::scan_parts`]), answering in memo words from
    /// `base` (bit `i`: glob `i`); `None` when they do not make one.
    pub(crate) fn parts(
        fact: FactId,
        slot: usize,
        base: usize,
        globs: &[&crate::glob::Glob],
    ) -> Option<ScanGroup> {
        let words = globs.len().div_ceil(64);
        if words == 0 || base + words > WIDE_MEMO_WORDS || slot >= MAX_GROUPS {
            return None;
        }
        let parts = Parts::build(globs)?;
        Some(ScanGroup {
            fact,
            slot,
            base,
            words,
            kind: Kind::Parts(Box::new(parts)),
        })
    }

    /// A literal group answering in memo words from `base`; `None` when
    /// it has no literals or does not fit the memo.
    pub(crate) fn literals(
        fact: FactId,
        slot: usize,
        base: usize,
        lits: LitsBuilder,
    ) -> Option<ScanGroup> {
        let words = lits.bits().div_ceil(64);
        if words == 0 || base + words > WIDE_MEMO_WORDS || slot >= MAX_GROUPS {
            return None;
        }
        Some(ScanGroup {
            fact,
            slot,
            base,
            words,
            kind: Kind::Lits(Box::new(lits.freeze())),
        })
    }

    /// The memo words it answers in.
    pub(crate) fn words(&self) -> usize {
        self.words
    }

    /// The passes over its fact's value that one scan of the group costs
    /// ([`crate::Limits::max_scan_passes`]): a DFA group 1 (measured on
    /// 64 KB of a byte every pattern starts with: 0.07–0.14 ms, load 3–5,
    /// whatever its size), a pair group 1 per DFA it runs, a parts group
    /// 1 (one Aho-Corasick pass), a literal group 0 (a walk reads at most
    /// its deepest key's length of the value).
    pub(crate) fn passes(&self) -> usize {
        match &self.kind {
            Kind::Dfa { .. } | Kind::Parts(_) => 1,
            Kind::Lits(_) => 0,
            Kind::Pairs { rev, .. } => 1 + usize::from(rev.is_some()),
        }
    }

    /// The bytes it counts against the regex budget (a DFA's), or the
    /// bytes its tries take.
    pub(crate) fn size(&self) -> usize {
        match &self.kind {
            Kind::Dfa { dfa, .. } => dfa.memory_usage(),
            Kind::Lits(l) => l.size(),
            Kind::Pairs { fwd, rev, .. } => {
                fwd.memory_usage() + rev.as_ref().map_or(0, |r| r.memory_usage())
            }
            Kind::Parts(p) => p.size(),
        }
    }

    /// Adds to `hits` (this group's memo words) the patterns that match
    /// anywhere in `text` (bit `i`: pattern `i`); `None` if the DFA had
    /// to give up (it cannot: no pattern needs a quit byte).
    pub(crate) fn scan(&self, text: &str, hits: &mut [u64]) -> Option<()> {
        match &self.kind {
            Kind::Dfa { dfa, all } => scan_dfa(dfa, all, text, hits),
            Kind::Lits(l) => {
                l.scan(text, hits);
                Some(())
            }
            Kind::Pairs { fwd, rev, pairs } => scan_pairs(fwd, rev.as_deref(), pairs, text, hits),
            Kind::Parts(p) => p.scan(text, hits),
        }
    }

    /// [`ScanGroup::scan`] for each of `names` (stopping once every
    /// pattern of a DFA group has matched).
    pub(crate) fn scan_names(&self, names: &[String], hits: &mut [u64]) -> Option<()> {
        match &self.kind {
            Kind::Dfa { dfa, all } => {
                for n in names {
                    scan_dfa(dfa, all, n, hits)?;
                    if *hits == **all {
                        break;
                    }
                }
            }
            Kind::Lits(l) => {
                for n in names {
                    l.scan(n, hits);
                }
            }
            Kind::Pairs { fwd, rev, pairs } => {
                for n in names {
                    scan_pairs(fwd, rev.as_deref(), pairs, n, hits)?;
                }
            }
            Kind::Parts(p) => {
                for n in names {
                    p.scan(n, hits)?;
                }
            }
        }
        Some(())
    }
}

/// States a pair group's DFA may have: a pass marks the match states it
/// has seen in a bit set of this many bits on the stack, so that each
/// match state's patterns are read once per pass.
pub(crate) const PAIR_STATES: usize = 4096;

/// A bound on a DFA's states: its transition table is states × stride
/// 32-bit entries, within its memory usage.
fn states_bound(dfa: &dense::DFA<Vec<u32>>) -> usize {
    dfa.memory_usage() / (dfa.stride() * 4).max(1)
}

/// A multi-pattern dense DFA (`MatchKind::All`, unanchored) of at most
/// `limit` bytes; `reverse`: of the reversed patterns, to run from the
/// end of the text.
fn build_dfa(patterns: &[&str], reverse: bool, limit: usize) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .syntax(syntax::Config::new().case_insensitive(true).nest_limit(100))
        .thompson(
            thompson::Config::new()
                .nfa_size_limit(Some(limit))
                .reverse(reverse),
        )
        .configure(
            dense::DFA::config()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Unanchored)
                .accelerate(true)
                .unicode_word_boundary(false)
                .dfa_size_limit(Some(limit))
                .determinize_size_limit(Some(limit)),
        )
        .build_many(patterns)
        .ok()
}

/// A pair group's answer on `text` (see [`Kind::Pairs`]): one forward
/// pass for the first end of every first part, one backward pass for the
/// last start of every second part, each stopping once all are found.
fn scan_pairs(
    fwd: &dense::DFA<Vec<u32>>,
    rev: Option<&dense::DFA<Vec<u32>>>,
    pairs: &[(u16, Second)],
    text: &str,
    hits: &mut [u64],
) -> Option<()> {
    // Offsets + 1; 0: not found.
    let mut first_end = [0u32; GROUP_PATTERNS];
    let mut last_start = [0u32; GROUP_PATTERNS];
    positions::<false>(fwd, text, &mut first_end)?;
    if first_end.iter().all(|&e| e == 0) {
        return Some(());
    }
    if let Some(rev) = rev {
        positions::<true>(rev, text, &mut last_start)?;
    }
    for (i, (a, second)) in pairs.iter().enumerate() {
        let e = first_end.get(usize::from(*a)).copied().unwrap_or(0);
        if e == 0 {
            continue;
        }
        let s = match second {
            Second::Last(b) => last_start.get(usize::from(*b)).copied().unwrap_or(0),
            // Reads only as many characters as the glob's last part has.
            Second::End(g) => g
                .end_start(text)
                .map_or(0, |at| u32::try_from(at + 1).unwrap_or(u32::MAX)),
        };
        if s != 0 && e <= s {
            set_bit(hits, i);
        }
    }
    Some(())
}

/// For each pattern of `dfa`, the offset + 1 where it is first found in
/// `text`: where its first match ends (forward), or where its last match
/// starts (`REVERSE`: the DFA of the reversed patterns, run from the end).
/// Each match state's patterns are read on its first visit only, so a pass
/// costs the text's length plus the DFA's match lists at most.
fn positions<const REVERSE: bool>(
    dfa: &dense::DFA<Vec<u32>>,
    text: &str,
    out: &mut [u32; GROUP_PATTERNS],
) -> Option<()> {
    let bytes = text.as_bytes();
    let input = Input::new(text);
    let mut visited = [0u64; PAIR_STATES / 64];
    let mut left = dfa.pattern_len();
    let stride2 = dfa.stride2();
    // Records the patterns of match state `sid` found at `pos`; whether
    // every pattern has been found.
    let mut record = |sid: regex_automata::util::primitives::StateID, pos: usize| -> bool {
        let s = sid.as_usize() >> stride2;
        if let Some(w) = visited.get_mut(s / 64) {
            if *w >> (s % 64) & 1 == 1 {
                return left == 0;
            }
            *w |= 1u64 << (s % 64);
        }
        for i in 0..dfa.match_len(sid) {
            let p = dfa.match_pattern(sid, i).as_usize();
            if let Some(o) = out.get_mut(p) {
                if *o == 0 {
                    *o = u32::try_from(pos + 1).unwrap_or(u32::MAX);
                    left = left.saturating_sub(1);
                }
            }
        }
        left == 0
    };
    let n = bytes.len();
    let mut sid = if REVERSE {
        dfa.start_state_reverse(&input)
    } else {
        dfa.start_state_forward(&input)
    }
    .ok()?;
    // Bytes read so far, from the start (forward) or the end (reverse).
    let mut read = 0usize;
    while read < n {
        let at = if REVERSE { n - 1 - read } else { read };
        let Some(&b) = bytes.get(at) else { break };
        read += 1;
        sid = dfa.next_state(sid, b);
        if dfa.is_special_state(sid) {
            if dfa.is_match_state(sid) {
                // A match is seen one byte late: it ends before `at`
                // (forward), or starts after it (reverse).
                if record(sid, if REVERSE { at + 1 } else { at }) {
                    return Some(());
                }
            } else if dfa.is_dead_state(sid) {
                return Some(());
            } else if dfa.is_quit_state(sid) {
                return None;
            }
            if dfa.is_accel_state(sid) {
                // The state loops on every byte but these: skip to the
                // next one (or the end, for the end-of-input transition).
                read = if REVERSE {
                    let rest = bytes.get(..at).unwrap_or_default();
                    match *dfa.accelerator(sid) {
                        [a] => memchr::memrchr(a, rest),
                        [a, b] => memchr::memrchr2(a, b, rest),
                        [a, b, c] => memchr::memrchr3(a, b, c, rest),
                        _ => rest.len().checked_sub(1),
                    }
                    .map_or(n, |i| n - 1 - i)
                } else {
                    let rest = bytes.get(read..).unwrap_or_default();
                    match *dfa.accelerator(sid) {
                        [a] => memchr::memchr(a, rest),
                        [a, b] => memchr::memchr2(a, b, rest),
                        [a, b, c] => memchr::memchr3(a, b, c, rest),
                        _ => Some(0),
                    }
                    .map_or(n, |i| read + i)
                };
            }
        }
    }
    sid = dfa.next_eoi_state(sid);
    if dfa.is_match_state(sid) {
        record(sid, if REVERSE { 0 } else { n });
    }
    Some(())
}

/// One pass of a group's DFA over `text` (see [`ScanGroup::scan`]).
fn scan_dfa(dfa: &dense::DFA<Vec<u32>>, all: &[u64], text: &str, hits: &mut [u64]) -> Option<()> {
    let bytes = text.as_bytes();
    let mut sid = dfa.start_state_forward(&Input::new(text)).ok()?;
    let record = |sid, hits: &mut [u64]| {
        for i in 0..dfa.match_len(sid) {
            set_bit(hits, dfa.match_pattern(sid, i).as_usize());
        }
    };
    let mut at = 0usize;
    while let Some(&b) = bytes.get(at) {
        sid = dfa.next_state(sid, b);
        if dfa.is_special_state(sid) {
            if dfa.is_match_state(sid) {
                record(sid, hits);
                if *hits == *all {
                    return Some(());
                }
            } else if dfa.is_dead_state(sid) {
                return Some(());
            } else if dfa.is_quit_state(sid) {
                return None;
            }
            if dfa.is_accel_state(sid) {
                // The state loops on every byte but these: skip to the
                // next one (or the end, for the end-of-input transition).
                let from = at + 1;
                let rest = bytes.get(from..).unwrap_or_default();
                at = match *dfa.accelerator(sid) {
                    [a] => memchr::memchr(a, rest),
                    [a, b] => memchr::memchr2(a, b, rest),
                    [a, b, c] => memchr::memchr3(a, b, c, rest),
                    _ => Some(0),
                }
                .map_or(bytes.len(), |i| from + i);
                continue;
            }
        }
        at += 1;
    }
    sid = dfa.next_eoi_state(sid);
    if dfa.is_match_state(sid) {
        record(sid, hits);
    }
    Some(())
}

/// Sets bit `i` of `hits` (nothing past the end).
#[inline]
pub(crate) fn set_bit(hits: &mut [u64], i: usize) {
    if let Some(w) = hits.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

/// Bit `i` of `hits`.
#[inline]
pub(crate) fn bit(hits: &[u64], i: usize) -> bool {
    hits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// The answers of the groups scanned so far in one evaluation. The first
/// [`SMALL_WORDS`] words are zeroed with the memo; the rest of the first
/// [`MEMO_WORDS`] only at the first scan of a group that needs them. The
/// groups of a wide policy past them are kept in the thread's
/// [`WideMemo`].
#[derive(Debug, Clone)]
pub(crate) struct ScanMemo {
    /// Bit `slot`: that group was scanned.
    done: u32,
    /// Bit `slot`: the fact was unknown.
    unknown: u32,
    /// The groups within the first [`SMALL_WORDS`] words (zeroed with the
    /// memo: a few stores).
    small: [u64; SMALL_WORDS],
    /// The others (zeroed at their first scan).
    big: Option<[u64; MEMO_WORDS]>,
}

/// Memo words kept inline and zeroed with the memo.
const SMALL_WORDS: usize = 16;

const _: () = assert!(MAX_GROUPS <= 32);

/// The answers of the groups that end past [`MEMO_WORDS`] (a policy with
/// more than ~8,000 literal keys: the per-evaluation memo stays 1 KB, and
/// is not made wider for every policy), one per thread: 16 KB of static
/// thread-local storage, zeroed a group at a time when the group is
/// scanned. Each group's words belong to the memo that scanned them last
/// (`owner`: its address, unique among the memos alive), so that two
/// evaluations alive on one thread at once (a lazy provider that evaluates
/// another policy) never read each other's answers: a memo whose group was
/// scanned over by another scans it again.
struct WideMemo {
    owner: [usize; MAX_GROUPS],
    words: [u64; WIDE_MEMO_WORDS],
}

thread_local! {
    static WIDE: std::cell::RefCell<WideMemo> = const {
        std::cell::RefCell::new(WideMemo {
            owner: [0; MAX_GROUPS],
            words: [0; WIDE_MEMO_WORDS],
        })
    };
}

impl ScanMemo {
    /// An empty memo.
    #[inline]
    pub(crate) fn new() -> ScanMemo {
        ScanMemo {
            done: 0,
            unknown: 0,
            small: [0; SMALL_WORDS],
            big: None,
        }
    }

    /// The words of `group` (zeroed when first asked for); `None` for a
    /// group past [`MEMO_WORDS`].
    #[inline]
    fn region(&mut self, group: &ScanGroup) -> Option<&mut [u64]> {
        let end = group.base + group.words;
        if end <= SMALL_WORDS {
            self.small.get_mut(group.base..end)
        } else {
            self.big
                .get_or_insert([0; MEMO_WORDS])
                .get_mut(group.base..end)
        }
    }

    /// Whether pattern `i` of `group` matches `src`'s value of the group's
    /// fact (a set: any of its names), scanning the value the first time
    /// the group is asked; unknown for an unknown fact; `None` when the
    /// scan gave up (the leaf then tests the value itself).
    #[inline]
    pub(crate) fn answer<S: FactSource + ?Sized>(
        &mut self,
        src: &mut S,
        group: &ScanGroup,
        i: usize,
    ) -> Option<Truth> {
        let b = 1u32.checked_shl(group.slot as u32)?;
        if self.done & b == 0 {
            let Some(region) = self.region(group) else {
                return self.answer_wide(src, group, i);
            };
            let scanned = match src.value(group.fact) {
                None => Some(false),
                Some(Val::Str(s)) => group.scan(s, region).map(|()| true),
                Some(Val::Set(names)) => group.scan_names(names, region).map(|()| true),
                Some(_) => Some(true),
            };
            let Some(known) = scanned else {
                region.fill(0);
                return None;
            };
            self.done |= b;
            if !known {
                self.unknown |= b;
            }
        }
        if self.unknown & b != 0 {
            return Some(Truth::Unknown);
        }
        let Some(region) = self.region(group) else {
            return self.answer_wide(src, group, i);
        };
        Some(Truth::from_bool(bit(region, i)))
    }

    /// [`ScanMemo::answer`] for a group past [`MEMO_WORDS`]: its words are
    /// in the thread's [`WideMemo`], scanned again when another memo
    /// scanned over them since. `None` when the thread's memo is in use
    /// (it is not: no scan calls out) or gone (the thread is ending).
    #[cold]
    #[inline(never)]
    fn answer_wide<S: FactSource + ?Sized>(
        &mut self,
        src: &mut S,
        group: &ScanGroup,
        i: usize,
    ) -> Option<Truth> {
        let b = 1u32.checked_shl(group.slot as u32)?;
        let me = std::ptr::from_ref(self) as usize;
        let range = group.base..group.base + group.words;
        if self.done & b != 0 {
            if self.unknown & b != 0 {
                return Some(Truth::Unknown);
            }
            let kept = WIDE
                .try_with(|w| {
                    let w = w.try_borrow().ok()?;
                    if w.owner.get(group.slot) != Some(&me) {
                        return None;
                    }
                    Some(bit(w.words.get(range.clone())?, i))
                })
                .ok()
                .flatten();
            if let Some(hit) = kept {
                return Some(Truth::from_bool(hit));
            }
        }
        // Scan (again): the value first, as a provider may be asked for it
        // (and evaluate something else) while nothing is borrowed.
        let value = src.value(group.fact);
        let hit = match value {
            None => {
                self.done |= b;
                self.unknown |= b;
                return Some(Truth::Unknown);
            }
            Some(v) => WIDE.try_with(|w| {
                let mut w = w.try_borrow_mut().ok()?;
                let region = w.words.get_mut(range)?;
                region.fill(0);
                let scanned = match v {
                    Val::Str(s) => group.scan(s, region),
                    Val::Set(names) => group.scan_names(names, region),
                    _ => Some(()),
                };
                if scanned.is_none() {
                    region.fill(0);
                    return None;
                }
                let hit = bit(region, i);
                *w.owner.get_mut(group.slot)? = me;
                Some(hit)
            }),
        };
        let hit = hit.ok().flatten()?;
        self.done |= b;
        self.unknown &= !b;
        Some(Truth::from_bool(hit))
    }
}

impl ScanMemo {
    /// Whether any bit of `masks` (a word of `group`'s answers and a mask)
    /// is set, scanning the value the first time the group is asked; unknown
    /// for an unknown fact; `None` when the scan gave up.
    #[inline]
    pub(crate) fn answer_any<S: FactSource + ?Sized>(
        &mut self,
        src: &mut S,
        group: &ScanGroup,
        masks: &[(u16, u64)],
    ) -> Option<Truth> {
        // Scans the group once (bit 0 is any of its answers).
        if self.answer(src, group, 0)? == Truth::Unknown {
            return Some(Truth::Unknown);
        }
        let Some(region) = self.region(group) else {
            return self.answer_any_wide(group, masks);
        };
        Some(Truth::from_bool(any_masked(region, masks)))
    }

    /// [`ScanMemo::answer_any`] for a group past [`MEMO_WORDS`], once
    /// scanned ([`ScanMemo::answer_wide`]): its words in the thread's
    /// [`WideMemo`]; `None` when another memo scanned over them since.
    #[cold]
    #[inline(never)]
    fn answer_any_wide(&mut self, group: &ScanGroup, masks: &[(u16, u64)]) -> Option<Truth> {
        let me = std::ptr::from_ref(self) as usize;
        WIDE.try_with(|w| {
            let w = w.try_borrow().ok()?;
            if w.owner.get(group.slot) != Some(&me) {
                return None;
            }
            let region = w.words.get(group.base..group.base + group.words)?;
            Some(Truth::from_bool(any_masked(region, masks)))
        })
        .ok()
        .flatten()
    }
}

/// Whether any bit of `masks` (a word of `region` and a mask) is set.
#[inline]
fn any_masked(region: &[u64], masks: &[(u16, u64)]) -> bool {
    masks
        .iter()
        .any(|&(w, m)| region.get(usize::from(w)).is_some_and(|x| x & m != 0))
}

/// Lines of a [`MaskCache`].
pub(crate) const MASK_CACHE_LINES: usize = 4;

/// The last answer of a many-literal leaf ([`crate::compile`]'s `ScanAny`)
/// per line ([`mask_line`] of the leaf's list number), for one evaluation:
/// the uses of one list in consecutive rules are answered once. Rules are
/// tried in ascending order and a condition's leaves left to right, so each
/// line misses at most as often as the leaves of its lists, in rule order,
/// change list — which is what the pass budget counts. (List numbers, not
/// addresses: what is counted, and so whether a policy is accepted, is the
/// same on every machine.)
#[derive(Debug, Clone)]
pub(crate) struct MaskCache {
    lines: [(u32, Truth); MASK_CACHE_LINES],
}

impl MaskCache {
    /// An empty cache (lists are numbered from 1).
    #[inline]
    pub(crate) fn new() -> MaskCache {
        MaskCache {
            lines: [(0, Truth::False); MASK_CACHE_LINES],
        }
    }

    /// The kept answer for list `list`, if it is its line's last one.
    #[inline]
    pub(crate) fn get(&self, list: u32) -> Option<Truth> {
        let (key, t) = self.lines.get(mask_line(list))?;
        (*key == list).then_some(*t)
    }

    /// Keeps `t` as the answer for list `list`.
    #[inline]
    pub(crate) fn put(&mut self, list: u32, t: Truth) {
        if let Some(line) = self.lines.get_mut(mask_line(list)) {
            *line = (list, t);
        }
    }
}

/// The [`MaskCache`] line of list `list`.
#[inline]
pub(crate) fn mask_line(list: u32) -> usize {
    list as usize % MASK_CACHE_LINES
}

/// Which trie a literal lives in: globs and regexes fold case differently
/// (a glob's `i` also matches `İ`, a regex's `s` also matches `ſ`), and
/// prefixes are walked forward, suffixes backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Exact and prefix globs.
    GlobStart = 0,
    /// Suffix globs (bytes reversed).
    GlobEnd = 1,
    /// `^lit` and `^lit$` regexes.
    RegexStart = 2,
    /// `lit$` regexes (bytes reversed).
    RegexEnd = 3,
    /// `^lit\b` regexes (a Unicode word boundary right after the literal):
    /// in the `RegexStart` trie, marked apart ([`Mark::wb`]).
    RegexStartWord = 4,
}

impl Side {
    /// The trie a literal of this side lives in.
    fn trie(self) -> usize {
        match self {
            Side::RegexStartWord => Side::RegexStart as usize,
            s => s as usize,
        }
    }
}

/// One literal test: the value starts with `bytes` (or is `bytes`, when
/// `whole`), on `side`. `bytes` are ASCII, letters lowercase, in walk order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Literal {
    pub(crate) side: Side,
    pub(crate) bytes: Vec<u8>,
    pub(crate) whole: bool,
}

/// A glob character's trie key: ASCII lowercase, and the two non-ASCII
/// characters whose [`crate::glob::fold`] is ASCII (checked by a test).
#[inline]
fn glob_key(c: char) -> Option<u8> {
    match c {
        c if c.is_ascii() => Some(c.to_ascii_lowercase() as u8),
        '\u{130}' => Some(b'i'),
        '\u{212A}' => Some(b'k'),
        _ => None,
    }
}

/// A text character's trie key for case-insensitive regex literals:
/// ASCII lowercase, and the two non-ASCII characters that simple case
/// folding puts with an ASCII letter (`ſ` with `s`, the Kelvin sign with
/// `k`). A regex literal is only put in a trie when each of its letters'
/// classes is exactly the characters with that key (see [`regex_literal`]).
#[inline]
fn regex_key(c: char) -> Option<u8> {
    match c {
        c if c.is_ascii() => Some(c.to_ascii_lowercase() as u8),
        '\u{17F}' => Some(b's'),
        '\u{212A}' => Some(b'k'),
        _ => None,
    }
}

/// A trie being built: children kept sorted by label.
#[derive(Debug, Default, Clone)]
struct BuildNode {
    children: Vec<(u8, u32)>,
    /// Bit + 1 of the literal ending here as a prefix test (0: none).
    pre: u16,
    /// Bit + 1 of the literal ending here as a whole-value test.
    end: u16,
    /// Bit + 1 of the literal ending here followed by a Unicode word
    /// boundary (`^lit\b`).
    wb: u16,
    /// The exact trie's keys whose strings end here (their bits).
    keys: Vec<u16>,
}

/// Literals being gathered for one fact's literal group.
#[derive(Debug, Clone, Default)]
pub(crate) struct LitsBuilder {
    tries: [Vec<BuildNode>; 4],
    /// Exact, case-sensitive strings (`==`, `in [...]` on a set fact),
    /// as [`exact_key`] bytes.
    exact: Vec<BuildNode>,
    bits: usize,
}

/// Keys of exact strings that may end at one node of the exact trie (a
/// name that ends there sets all of them): past this a key is not shared.
pub(crate) const EXACT_NODE_KEYS: usize = 16;

/// The escape byte of [`exact_key`].
const ESC: u8 = 0x01;

/// The bytes a string is walked by in the exact trie: its own, but an
/// ASCII capital as [`ESC`] and its small letter, and [`ESC`] as two
/// [`ESC`]s (the tries' child lookups fold capitals; these bytes hold none,
/// and the escaping cannot make two strings equal).
#[inline(always)]
fn exact_key(b: u8, mut step: impl FnMut(u8) -> bool) -> bool {
    if b.is_ascii_uppercase() {
        step(ESC) && step(b | 0x20)
    } else if b == ESC {
        step(ESC) && step(ESC)
    } else {
        step(b)
    }
}

impl LitsBuilder {
    /// Bits given out so far.
    pub(crate) fn bits(&self) -> usize {
        self.bits
    }

    /// The bit of `lit`: the one an equal literal has, else a new one,
    /// unless that would make more than `max_bits` (`None`). Linear in
    /// the literal's bytes (each step a binary search among ≤ 256 labels).
    pub(crate) fn add(&mut self, lit: &Literal, max_bits: usize) -> Option<u16> {
        let trie = self.tries.get_mut(lit.side.trie())?;
        if trie.is_empty() {
            trie.push(BuildNode::default());
        }
        let mut at = 0usize;
        for &b in &lit.bytes {
            let node = trie.get_mut(at)?;
            at = match node.children.binary_search_by_key(&b, |&(l, _)| l) {
                Ok(i) => node.children.get(i)?.1 as usize,
                Err(i) => {
                    if self.bits >= max_bits {
                        return None;
                    }
                    let next = u32::try_from(trie.len()).ok()?;
                    trie.get_mut(at)?.children.insert(i, (b, next));
                    trie.push(BuildNode::default());
                    next as usize
                }
            };
        }
        let node = trie.get_mut(at)?;
        let slot = if lit.side == Side::RegexStartWord {
            &mut node.wb
        } else if lit.whole {
            &mut node.end
        } else {
            &mut node.pre
        };
        if *slot == 0 {
            if self.bits >= max_bits.min(LITERAL_GROUP_BITS) {
                return None;
            }
            self.bits += 1;
            *slot = u16::try_from(self.bits).ok()?;
        }
        Some(*slot - 1)
    }

    /// A new bit for a key of exact strings ([`LitsBuilder::add_exact`]),
    /// unless that would make more than `max_bits`.
    pub(crate) fn new_bit(&mut self, max_bits: usize) -> Option<u16> {
        if self.bits >= max_bits.min(LITERAL_GROUP_BITS) {
            return None;
        }
        self.bits += 1;
        u16::try_from(self.bits - 1).ok()
    }

    /// Adds `s` to the exact trie as one of the strings of the key of bit
    /// `bit`; `None` when the node where it ends has
    /// [`EXACT_NODE_KEYS`] keys already (then the key is not shared; what
    /// it added stays, setting only its own bit). Linear in `s`.
    pub(crate) fn add_exact(&mut self, s: &str, bit: u16) -> Option<()> {
        let trie = &mut self.exact;
        if trie.is_empty() {
            trie.push(BuildNode::default());
        }
        let mut at = 0usize;
        for &b in s.as_bytes() {
            let ok = exact_key(b, |k| {
                let len = trie.len();
                let Some(node) = trie.get_mut(at) else {
                    return false;
                };
                at = match node.children.binary_search_by_key(&k, |&(l, _)| l) {
                    Ok(i) => node.children.get(i).map_or(0, |c| c.1 as usize),
                    Err(i) => {
                        let Ok(next) = u32::try_from(len) else {
                            return false;
                        };
                        node.children.insert(i, (k, next));
                        trie.push(BuildNode::default());
                        next as usize
                    }
                };
                true
            });
            if !ok {
                return None;
            }
        }
        let node = trie.get_mut(at)?;
        if node.keys.contains(&bit) {
            return Some(());
        }
        if node.keys.len() >= EXACT_NODE_KEYS {
            return None;
        }
        node.keys.push(bit);
        Some(())
    }

    fn freeze(mut self) -> Lits {
        let exact = Exact::freeze(std::mem::take(&mut self.exact));
        let [a, b, c, d] = self.tries.map(Trie::freeze);
        Lits {
            tries: [a, b, c, d],
            exact,
        }
    }
}

/// The children of a breadth-first byte trie's nodes (node `0` is the
/// root; a node's children are consecutive nodes), in one of two forms:
/// - *dense*: each byte present in the trie has a class, and each node a
///   row of child ids by class (0: none; the root is no one's child), so a
///   step is two loads. Used while the rows take at most
///   [`DENSE_PER_NODE`] entries per node (plus [`DENSE_SLACK`]) and
///   [`DENSE_MAX`] in all: tries over short alphabets (virus names,
///   addresses, digits).
/// - *sparse*: per node its first child and their number, the labels side
///   by side, searched 8 at a time ([`find_label`]).
#[derive(Debug, Clone)]
pub(crate) struct Kids {
    /// Per byte, its class (0: no node has it as a label). Labels are never
    /// ASCII capitals (the tries hold folded text), so a capital takes its
    /// small letter's class: a dense step needs no lowering.
    class: Box<[u8; 256]>,
    stride: usize,
    next: Box<[u32]>,
    span: Box<[(u32, u32)]>,
    labels: Box<[u8]>,
}

impl Default for Kids {
    fn default() -> Kids {
        Kids {
            class: Box::new([0; 256]),
            stride: 0,
            next: Box::default(),
            span: Box::default(),
            labels: Box::default(),
        }
    }
}

/// Dense rows may take this many entries per node on average...
const DENSE_PER_NODE: usize = 32;
/// ...plus this many (small tries over any alphabet)...
const DENSE_SLACK: usize = 8192;
/// ...and never more than this many in all (4 MB).
const DENSE_MAX: usize = 1 << 20;

impl Kids {
    /// From each node's `(first child, children)` and each node's label
    /// (the byte leading to it; the root's is unused), children sorted by
    /// label.
    pub(crate) fn new(span: Vec<(u32, u32)>, label: &[u8]) -> Kids {
        Kids::build(span, label, None)
    }

    /// [`Kids::new`], dense or sparse as `form` says (dense needs fewer
    /// than 256 labels), or as the budget allows.
    fn build(span: Vec<(u32, u32)>, label: &[u8], form: Option<bool>) -> Kids {
        let mut class = Box::new([0u8; 256]);
        let mut classes = 0usize;
        for &b in label.iter().skip(1) {
            if let Some(c) = class.get_mut(usize::from(b)) {
                if *c == 0 {
                    classes += 1;
                    // At most 256 labels: the 256th takes class 255 + 1 below.
                    *c = u8::try_from(classes).unwrap_or(u8::MAX);
                }
            }
        }
        for b in b'A'..=b'Z' {
            let small = class.get(usize::from(b.to_ascii_lowercase())).copied();
            if let (Some(c), Some(small)) = (class.get_mut(usize::from(b)), small) {
                if *c == 0 {
                    *c = small;
                }
            }
        }
        let stride = classes + 1;
        let entries = span.len().saturating_mul(stride);
        let dense = classes < 256
            && form.unwrap_or(
                entries <= DENSE_MAX && entries <= DENSE_PER_NODE * span.len() + DENSE_SLACK,
            );
        if dense {
            let mut next = vec![0u32; entries];
            for (node, &(first, len)) in span.iter().enumerate() {
                for child in first..first + len {
                    let c = label.get(child as usize).map_or(0, |&b| {
                        class.get(usize::from(b)).map_or(0, |&c| usize::from(c))
                    });
                    if let Some(slot) = next.get_mut(node * stride + c) {
                        *slot = child;
                    }
                }
            }
            Kids {
                class,
                stride,
                next: next.into(),
                ..Kids::default()
            }
        } else {
            let mut labels = label.to_vec();
            labels.extend_from_slice(&[0; 8]);
            Kids {
                span: span.into(),
                labels: labels.into(),
                ..Kids::default()
            }
        }
    }

    /// Whether the rows are dense ([`Kids::dense_child`] answers) or not
    /// ([`Kids::sparse_child`] does).
    #[inline(always)]
    pub(crate) fn is_dense(&self) -> bool {
        self.stride != 0
    }

    /// The child of `node` labelled `b` (an ASCII capital: its small
    /// letter), in either form.
    #[inline(always)]
    pub(crate) fn child(&self, node: usize, b: u8) -> Option<usize> {
        let n = if self.is_dense() {
            self.dense_child(node, b)
        } else {
            self.sparse_child(node, b)
        };
        (n != 0).then_some(n)
    }

    /// [`Kids::child`] when dense, 0 for none (the root is no one's child).
    #[inline(always)]
    pub(crate) fn dense_child(&self, node: usize, b: u8) -> usize {
        let c = usize::from(self.class.get(usize::from(b)).copied().unwrap_or(0));
        self.next
            .get(node * self.stride + c)
            .map_or(0, |&n| n as usize)
    }

    /// [`Kids::child`] when sparse, 0 for none.
    #[inline(always)]
    pub(crate) fn sparse_child(&self, node: usize, b: u8) -> usize {
        let Some(&(first, len)) = self.span.get(node) else {
            return 0;
        };
        let first = first as usize;
        find_label(&self.labels, first, len as usize, b.to_ascii_lowercase())
            .map_or(0, |i| first + i)
    }

    pub(crate) fn size(&self) -> usize {
        256 + self.next.len() * 4 + self.span.len() * 8 + self.labels.len()
    }
}

/// Freezes a built trie breadth-first (node `0` the root, a node's
/// children consecutive): `visit` gets each node in that order with its
/// frozen index and its label (the byte leading to it; the root's 0).
/// Returns the children ([`Kids`]); none for an empty trie.
fn breadth_first(mut nodes: Vec<BuildNode>, mut visit: impl FnMut(usize, u8, &BuildNode)) -> Kids {
    if nodes.is_empty() {
        return Kids::default();
    }
    // `order[i]`: the build node of frozen node `i`, and its label.
    let mut order: Vec<(u32, u8)> = Vec::with_capacity(nodes.len());
    order.push((0, 0));
    let mut span = Vec::with_capacity(nodes.len());
    let mut i = 0;
    while let Some(&(b, label)) = order.get(i) {
        let n = nodes
            .get_mut(b as usize)
            .map(std::mem::take)
            .unwrap_or_default();
        span.push((order.len() as u32, n.children.len() as u32));
        visit(i, label, &n);
        order.extend(n.children.iter().map(|&(l, t)| (t, l)));
        i += 1;
    }
    let label: Vec<u8> = order.iter().map(|&(_, l)| l).collect();
    Kids::new(span, &label)
}

/// A frozen literal trie (see [`Kids`]), with each node's bits.
#[derive(Debug, Clone, Default)]
struct Trie {
    /// Per node, the bits + 1 of the literals ending there (0: none).
    marks: Box<[Mark]>,
    kids: Kids,
}

/// What a trie node marks.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    /// The literal ending here as a prefix test.
    pre: u16,
    /// As a whole-value test.
    end: u16,
    /// As a prefix followed by a Unicode word boundary.
    wb: u16,
    /// Whether the node's label (the literal's last byte) is a word
    /// character (the root's: no, as the start of the text).
    word: bool,
}

impl Trie {
    fn freeze(nodes: Vec<BuildNode>) -> Trie {
        let mut marks = Vec::with_capacity(nodes.len());
        let kids = breadth_first(nodes, |i, label, n| {
            marks.push(Mark {
                pre: n.pre,
                end: n.end,
                wb: n.wb,
                word: i > 0 && (label.is_ascii_alphanumeric() || label == b'_'),
            });
        });
        Trie {
            marks: marks.into(),
            kids,
        }
    }

    fn size(&self) -> usize {
        self.marks.len() * std::mem::size_of::<Mark>() + self.kids.size()
    }

    /// Walks `text`'s characters from the root (from its end when `BACK`),
    /// each turned into a key by `key`, setting the bit of every prefix
    /// literal passed and, when the text runs out at a node, of the whole
    /// literal there. A character without a key, or a node without the
    /// child, ends the walk. ASCII characters are read as bytes (the child
    /// lookup lowers capitals).
    #[inline]
    fn walk<const BACK: bool>(
        &self,
        text: &str,
        key: impl Fn(char) -> Option<u8>,
        hits: &mut [u64],
    ) {
        if self.marks.is_empty() {
            return;
        }
        if self.kids.is_dense() {
            self.walk_with::<BACK>(text, key, hits, |n, b| self.kids.dense_child(n, b));
        } else {
            self.walk_with::<BACK>(text, key, hits, |n, b| self.kids.sparse_child(n, b));
        }
    }

    /// [`Trie::walk`] with one form's child lookup.
    #[inline(always)]
    fn walk_with<const BACK: bool>(
        &self,
        text: &str,
        key: impl Fn(char) -> Option<u8>,
        hits: &mut [u64],
        child: impl Fn(usize, u8) -> usize,
    ) {
        let bytes = text.as_bytes();
        let mut it = bytes.iter();
        let mut node = 0usize;
        loop {
            let Some(&Mark { pre, end, wb, word }) = self.marks.get(node) else {
                return;
            };
            mark(hits, pre);
            if wb != 0 && !BACK {
                // A word boundary where the text's next character's
                // wordness differs from the literal's last one's.
                let rest = it.as_slice();
                let next = match rest.first() {
                    None => false,
                    Some(&b) if b < 0x80 => b.is_ascii_alphanumeric() || b == b'_',
                    Some(_) => char_at::<false>(text, rest.len())
                        .is_some_and(|c| regex_syntax::try_is_word_character(c).unwrap_or(false)),
                };
                if next != word {
                    mark(hits, wb);
                }
            }
            let b = if BACK { it.next_back() } else { it.next() };
            let Some(&b) = b else {
                mark(hits, end);
                return;
            };
            let k = if b < 0x80 {
                b
            } else {
                // The bytes left, this character's included.
                let rest = it.as_slice().len() + 1;
                let Some(c) = char_at::<BACK>(text, rest) else {
                    return;
                };
                let rest = rest.saturating_sub(c.len_utf8());
                let left = if BACK {
                    bytes.get(..rest)
                } else {
                    bytes.get(bytes.len().saturating_sub(rest)..)
                };
                it = left.unwrap_or_default().iter();
                match key(c) {
                    Some(k) => k,
                    None => return,
                }
            };
            node = child(node, k);
            if node == 0 {
                return;
            }
        }
    }
}

/// The character that starts `text`'s last `rest` bytes (forwards), or
/// ends its first `rest` bytes (`BACK`).
#[cold]
#[inline(never)]
pub(crate) fn char_at<const BACK: bool>(text: &str, rest: usize) -> Option<char> {
    if BACK {
        text.get(..rest)?.chars().next_back()
    } else {
        text.get(text.len().checked_sub(rest)?..)?.chars().next()
    }
}

/// The index of `b` among `labels[first..first + len]` (distinct bytes),
/// compared 8 at a time as one word: `labels` must hold 8 bytes past the
/// last index ever asked for (a trie pads its labels with 8 bytes).
#[inline(always)]
pub(crate) fn find_label(labels: &[u8], first: usize, len: usize, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pat = ONES * u64::from(b);
    let mut at = 0;
    while at < len {
        let chunk: [u8; 8] = labels.get(first + at..first + at + 8)?.try_into().ok()?;
        let x = u64::from_le_bytes(chunk) ^ pat;
        // The lowest set bit is at the first zero byte (bits above it may
        // be set falsely, never below).
        let z = x.wrapping_sub(ONES) & !x & HIGH;
        if z != 0 {
            let i = at + (z.trailing_zeros() / 8) as usize;
            return (i < len).then_some(i);
        }
        at += 8;
    }
    None
}

#[inline]
fn mark(hits: &mut [u64], b: u16) {
    if b != 0 {
        set_bit(hits, usize::from(b - 1));
    }
}

/// A literal group's tries (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lits {
    tries: [Trie; 4],
    exact: Exact,
}

impl Lits {
    fn size(&self) -> usize {
        self.tries.iter().map(Trie::size).sum::<usize>() + self.exact.size()
    }

    /// Sets the bits of the literals `text` passes: each trie walked once,
    /// as far as the text follows it.
    #[inline]
    fn scan(&self, text: &str, hits: &mut [u64]) {
        let [gs, ge, rs, re] = &self.tries;
        gs.walk::<false>(text, glob_key, hits);
        ge.walk::<true>(text, glob_key, hits);
        rs.walk::<false>(text, regex_key, hits);
        re.walk::<true>(text, regex_key, hits);
        self.exact.walk(text, hits);
    }
}

/// The exact trie of a literal group: case-sensitive whole strings (`==`
/// and `in [...]` on a set fact), walked by [`exact_key`] bytes; a node
/// where strings end sets the bits of the keys (at most
/// [`EXACT_NODE_KEYS`]) that hold them, so one walk per name answers
/// every such leaf of the fact.
#[derive(Debug, Clone, Default)]
struct Exact {
    /// Per node, its keys: a range of `keys`.
    ends: Box<[(u32, u32)]>,
    keys: Box<[u16]>,
    kids: Kids,
}

impl Exact {
    fn freeze(nodes: Vec<BuildNode>) -> Exact {
        let mut ends = Vec::with_capacity(nodes.len());
        let mut keys = Vec::new();
        let kids = breadth_first(nodes, |_, _, n| {
            ends.push((keys.len() as u32, n.keys.len() as u32));
            keys.extend_from_slice(&n.keys);
        });
        Exact {
            ends: ends.into(),
            keys: keys.into(),
            kids,
        }
    }

    fn size(&self) -> usize {
        self.ends.len() * 8 + self.keys.len() * 2 + self.kids.size()
    }

    /// Sets the bits of the keys holding exactly `text`: one child lookup
    /// per byte (two per capital), stopping where the trie does.
    #[inline]
    fn walk(&self, text: &str, hits: &mut [u64]) {
        if self.ends.is_empty() {
            return;
        }
        let mut node = 0usize;
        for &b in text.as_bytes() {
            let ok = exact_key(b, |k| {
                node = self.kids.child(node, k).unwrap_or(0);
                node != 0
            });
            if !ok {
                return;
            }
        }
        let Some(&(first, n)) = self.ends.get(node) else {
            return;
        };
        for &k in self
            .keys
            .get(first as usize..(first + n) as usize)
            .unwrap_or_default()
        {
            set_bit(hits, usize::from(k));
        }
    }
}

/// An anchored literal regex (`^abc`, `abc$`, `^abc$`, `\Aabc\z`, and
/// `^abc\b` with a Unicode word boundary after the literal: ASCII,
/// each letter case-insensitive) as a [`Literal`]; `None` for anything
/// else, or when a letter's class is not exactly the characters
/// [`regex_key`] gives its key (then only the regex engine knows it).
/// `case_insensitive`: the policy's default, as [`crate::re::Re`] reads it.
pub(crate) fn regex_literal(pattern: &str, case_insensitive: bool) -> Option<Literal> {
    let cfg = syntax::Config::new()
        .case_insensitive(case_insensitive)
        .nest_limit(100);
    let hir = syntax::parse_with(pattern, &cfg).ok()?;
    let mut items: Vec<&Hir> = Vec::new();
    flatten(&hir, &mut items)?;
    let start = matches!(
        items.first().map(|h| h.kind()),
        Some(HirKind::Look(Look::Start))
    );
    if start {
        items.remove(0);
    }
    let end = matches!(
        items.last().map(|h| h.kind()),
        Some(HirKind::Look(Look::End))
    );
    if end {
        items.pop();
    }
    // `^lit\b`: a Unicode word boundary right after the literal.
    let word = start
        && !end
        && matches!(
            items.last().map(|h| h.kind()),
            Some(HirKind::Look(Look::WordUnicode))
        );
    if word {
        items.pop();
    }
    if !start && !end {
        return None;
    }
    let mut bytes = Vec::new();
    for h in items {
        match h.kind() {
            HirKind::Literal(l) => {
                for &b in l.0.iter() {
                    // Letters in a literal are case-sensitive.
                    if !b.is_ascii() || b.is_ascii_alphabetic() {
                        return None;
                    }
                    bytes.push(b);
                }
            }
            HirKind::Class(Class::Unicode(c)) => {
                let first = c.ranges().first()?.start();
                let key = regex_key(first)?;
                if !key.is_ascii_alphabetic() {
                    return None;
                }
                // The class must be exactly the characters with this key.
                let mut want: Vec<char> =
                    vec![char::from(key.to_ascii_uppercase()), char::from(key)];
                match key {
                    b's' => want.push('\u{17F}'),
                    b'k' => want.push('\u{212A}'),
                    _ => {}
                }
                let mut got: Vec<char> = Vec::new();
                for r in c.ranges() {
                    let n = (u32::from(r.end()) - u32::from(r.start())) as usize + 1;
                    if got.len() + n > want.len() {
                        return None;
                    }
                    got.extend(r.start()..=r.end());
                }
                want.sort_unstable();
                if got != want {
                    return None;
                }
                bytes.push(key);
            }
            _ => return None,
        }
    }
    Some(match (start, end) {
        (true, _) if word => Literal {
            side: Side::RegexStartWord,
            bytes,
            whole: false,
        },
        (true, whole) => Literal {
            side: Side::RegexStart,
            bytes,
            whole,
        },
        (false, _) => {
            bytes.reverse();
            Literal {
                side: Side::RegexEnd,
                bytes,
                whole: false,
            }
        }
    })
}

/// The items of a concatenation (groups opened), each a literal, a class
/// or a look-around; `None` for anything else.
fn flatten<'h>(h: &'h Hir, out: &mut Vec<&'h Hir>) -> Option<()> {
    match h.kind() {
        HirKind::Concat(parts) => {
            for p in parts {
                flatten(p, out)?;
            }
            Some(())
        }
        HirKind::Capture(c) => flatten(&c.sub, out),
        HirKind::Empty => Some(()),
        HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => {
            out.push(h);
            Some(())
        }
        _ => None,
    }
}

/// A glob (as [`crate::glob::Glob`] matches it: the whole text, ignoring
/// case by [`crate::glob::fold`]) as a pattern for an unanchored search,
/// or `None` when it has a non-ASCII character (then only the glob
/// matcher knows its folding). A side that starts or ends with `*` is left
/// open instead of written as `.*`, so that many globs make a small DFA.
///
/// Equivalence: an ASCII letter matches its two cases and the non-ASCII
/// characters that fold to it (`İ` to `i`, the Kelvin sign to `k`: the
/// only ones, checked over every character by a test); any other ASCII
/// character only itself; `?` any one character; `*` any run.
pub(crate) fn glob_pattern(glob: &str) -> Option<String> {
    if !glob.is_ascii() {
        return None;
    }
    let start_open = glob.starts_with('*');
    let end_open = glob.ends_with('*');
    let body = glob.trim_matches('*');
    let mut p = String::from("(?s-i:");
    if !start_open {
        p.push_str(r"\A");
    }
    for c in body.chars() {
        match c {
            '*' => p.push_str(".*"),
            '?' => p.push('.'),
            c if c.is_ascii_alphabetic() => {
                p.push('[');
                p.push(c.to_ascii_lowercase());
                p.push(c.to_ascii_uppercase());
                match c.to_ascii_lowercase() {
                    'i' => p.push_str(r"\x{130}"),
                    'k' => p.push_str(r"\x{212A}"),
                    _ => {}
                }
                p.push(']');
            }
            c => p.push_str(&regex_syntax_escape(c)),
        }
    }
    if !end_open {
        p.push_str(r"\z");
    }
    p.push(')');
    Some(p)
}

fn regex_syntax_escape(c: char) -> String {
    regex::escape(c.encode_utf8(&mut [0u8; 4]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::{fold, Glob};

    #[test]
    fn only_two_non_ascii_characters_fold_to_ascii() {
        let folding: Vec<char> = (0x80..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| fold(*c).is_ascii())
            .collect();
        assert_eq!(folding, ['\u{130}', '\u{212A}']);
        assert_eq!(fold('\u{130}'), 'i');
        assert_eq!(fold('\u{212A}'), 'k');
    }

    #[test]
    fn glob_patterns_match_as_globs_do() {
        let globs = [
            "*", "", "a", "A*", "*x", "*x*", "a*b", "a?c", "*.Worm.*", "W32/*@MM", "?", "**",
            "*i*", "*k?", "a*b*c*", "[x]*", "a.b", "*\\*", "*a*a*",
        ];
        let texts = [
            "",
            "a",
            "A",
            "x",
            "ab",
            "abc",
            "aXc",
            "a\nc",
            "W32/Sobig@mm",
            "w32.worm.x",
            "Trojan.Worm.A",
            "İ",
            "\u{212A}",
            "ı",
            "aab",
            "[X]y",
            "a.b",
            "axb",
            "\\",
            "ǅ",
            "é",
            "aaaa",
        ];
        for g in globs {
            let glob = Glob::new(g);
            let pat = glob_pattern(g).expect("ASCII");
            let group = ScanGroup::build(FactId(0), 0, 0, &[&pat], 1 << 20).expect("builds");
            for t in texts {
                let mut hits = [0u64; 4];
                assert_eq!(group.scan(t, &mut hits), Some(()));
                assert_eq!(
                    bit(&hits, 0),
                    glob.matches(t),
                    "glob {g:?} ({pat}) on {t:?}"
                );
            }
        }
    }

    #[test]
    fn a_group_answers_each_pattern() {
        let pats = ["sobig", "^w32/", "mm$", r"\d{3}", "(?-i)Foo", ""];
        let group = ScanGroup::build(FactId(0), 0, 0, &pats, 1 << 20).expect("builds");
        for t in ["W32/Sobig.F@MM", "foo 123", "Foo", "", "x"] {
            let mut hits = [0u64; 4];
            group.scan(t, &mut hits).expect("scans");
            for (i, p) in pats.iter().enumerate() {
                let re = crate::re::Re::new(p, true, 1 << 20).expect("regex");
                assert_eq!(bit(&hits, i), re.is_match(t), "{p} on {t:?}");
            }
        }
    }
}

#[cfg(test)]
mod literal_tests {
    use super::*;

    #[test]
    fn dense_and_sparse_children_agree() {
        // A breadth-first trie (labels are never ASCII capitals: a capital
        // finds its small letter): node 0 has 200 children, node 1 has all
        // 228 other bytes but 7 and 9, node 2 one (so 229 bytes have a class).
        let small = |b: &u8| !b.is_ascii_uppercase();
        let mut label = vec![0u8];
        label.extend(
            (0..=255u8)
                .filter(small)
                .filter(|&b| b % 5 != 1 && b != 9)
                .take(200),
        );
        let n0 = label.len() as u32 - 1;
        label.extend((0..=255u8).filter(small).filter(|&b| b != 7 && b != 9));
        let n1 = label.len() as u32 - 1 - n0;
        label.push(7);
        let mut span = vec![(1u32, n0), (1 + n0, n1), (1 + n0 + n1, 1)];
        span.resize(label.len(), (0, 0));
        let dense = Kids::build(span.clone(), &label, Some(true));
        let sparse = Kids::build(span.clone(), &label, Some(false));
        assert_eq!(Kids::new(span.clone(), &label).stride, 0, "over budget");
        assert!(dense.stride != 0 && sparse.stride == 0);
        for node in 0..label.len() + 2 {
            for b in 0..=255u8 {
                let want = span.get(node).and_then(|&(f, n)| {
                    (f..f + n)
                        .find(|&c| label.get(c as usize) == Some(&b.to_ascii_lowercase()))
                        .map(|c| c as usize)
                });
                assert_eq!(dense.child(node, b), want, "dense {node} {b}");
                assert_eq!(sparse.child(node, b), want, "sparse {node} {b}");
            }
        }
    }

    #[test]
    fn find_label_finds_each_label_and_nothing_else() {
        // Labels with padding, runs of 1 to 20 distinct bytes at every
        // offset (bytes next to the run must not be found).
        let all: Vec<u8> = (0u8..=255).rev().chain([0u8; 8]).collect();
        for first in [0usize, 1, 7, 100, 230] {
            for len in 1..=20usize.min(256 - first) {
                for b in 0u8..=255 {
                    let want = all
                        .get(first..first + len)
                        .and_then(|r| r.iter().position(|&x| x == b));
                    assert_eq!(find_label(&all, first, len, b), want, "{first} {len} {b}");
                }
            }
        }
        assert_eq!(find_label(&[5, 0, 0, 0, 0, 0, 0, 0, 0], 0, 1, 5), Some(0));
        assert_eq!(find_label(&[5, 0, 0, 0, 0, 0, 0, 0, 0], 0, 0, 5), None);
    }
    use crate::glob::Glob;
    use crate::re::Re;

    /// Texts around the folding corners: İ, the Kelvin sign, ſ, ı.
    const TEXTS: [&str; 24] = [
        "",
        "a",
        "A",
        "abc",
        "ABC",
        "abcd",
        "xabc",
        "xABC",
        "ab",
        "İ",
        "i",
        "I",
        "ı",
        "\u{212A}",
        "k",
        "K",
        "ſ",
        "s",
        "S",
        "\u{212A}ſİ",
        "ksi",
        "q1.x",
        "Q1.exe",
        "w32/fam1.a",
    ];

    fn glob_literal(g: &str) -> Option<Literal> {
        let body = g.trim_end_matches('*');
        if !g.is_ascii() || g.contains('?') {
            return None;
        }
        let lower = |s: &str| {
            s.bytes()
                .map(|b| b.to_ascii_lowercase())
                .collect::<Vec<u8>>()
        };
        if !body.contains('*') {
            return Some(Literal {
                side: Side::GlobStart,
                bytes: lower(body),
                whole: body.len() == g.len(),
            });
        }
        let body = g.trim_start_matches('*');
        if !body.contains('*') {
            let mut bytes = lower(body);
            bytes.reverse();
            return Some(Literal {
                side: Side::GlobEnd,
                bytes,
                whole: false,
            });
        }
        None
    }

    #[test]
    fn literal_groups_answer_as_globs_and_regexes_do() {
        let globs = [
            "abc",
            "ab*",
            "*bc",
            "",
            "*",
            "i",
            "k*",
            "*s",
            "KSI",
            "q1.*",
            "*.exe",
            "W32/Fam1.*",
            "a",
            "ABC*",
        ];
        let regexes = [
            "^abc", "bc$", "^abc$", r"\Aab", "^$", "^", "$", "^k", "s$", "^ksi$", r"^q1\.",
            r"\.exe$", "^(ab)c", "^i$",
        ];
        let mut b = LitsBuilder::default();
        let mut gbits = Vec::new();
        for g in globs {
            let lit = glob_literal(g).expect("literal glob");
            gbits.push(b.add(&lit, MEMO_BITS).expect("fits"));
        }
        let mut rbits = Vec::new();
        for r in regexes {
            let lit = regex_literal(r, true).unwrap_or_else(|| panic!("{r} is a literal"));
            rbits.push(b.add(&lit, MEMO_BITS).expect("fits"));
        }
        // Equal literals share a bit.
        assert_eq!(
            gbits[0],
            b.add(&glob_literal("ABC").expect("lit"), 0).expect("same")
        );
        let g = ScanGroup::literals(FactId(0), 0, 0, b).expect("fits");
        for t in TEXTS {
            let mut hits = [0u64; MEMO_WORDS];
            let region = &mut hits[..g.words()];
            g.scan(t, region).expect("scans");
            for (glob, bit_) in globs.iter().zip(&gbits) {
                assert_eq!(
                    bit(region, usize::from(*bit_)),
                    Glob::new(glob).matches(t),
                    "glob {glob:?} on {t:?}"
                );
            }
            for (re, bit_) in regexes.iter().zip(&rbits) {
                let want = Re::new(re, true, 1 << 20).expect("regex").is_match(t);
                assert_eq!(
                    bit(region, usize::from(*bit_)),
                    want,
                    "regex {re:?} on {t:?}"
                );
            }
        }
    }

    #[test]
    fn only_anchored_case_insensitive_literals_are_literal_regexes() {
        for r in [
            "abc",
            "^a.c",
            "^a|^b",
            "(?-i)^a",
            "^é",
            "^a+",
            r"^a\b$",
            r"a\b",
            r"^a(?-u:\b)",
            "(?m)^a",
            "^ab$c",
            "a^",
            r"^\ba",
        ] {
            assert_eq!(regex_literal(r, true), None, "{r}");
        }
        // A Unicode word boundary right after a start-anchored literal.
        assert_eq!(
            regex_literal(r"^Worm\.X1\b", true),
            Some(Literal {
                side: Side::RegexStartWord,
                bytes: b"worm.x1".to_vec(),
                whole: false,
            })
        );
        // Case-sensitive policies: letters are not, other characters are.
        assert_eq!(regex_literal("^a", false), None);
        assert_eq!(
            regex_literal(r"^1\.$", false),
            Some(Literal {
                side: Side::RegexStart,
                bytes: b"1.".to_vec(),
                whole: true,
            })
        );
        assert_eq!(
            regex_literal(r"(?i)\.EXE$", false),
            Some(Literal {
                side: Side::RegexEnd,
                bytes: b"exe.".to_vec(),
                whole: false,
            })
        );
    }

    #[test]
    fn the_memo_limits_the_bits() {
        let mut b = LitsBuilder::default();
        let lit = |s: &str| Literal {
            side: Side::GlobStart,
            bytes: s.as_bytes().to_vec(),
            whole: false,
        };
        assert_eq!(b.add(&lit("a"), 2), Some(0));
        assert_eq!(b.add(&lit("b"), 2), Some(1));
        assert_eq!(b.add(&lit("c"), 2), None);
        assert_eq!(b.add(&lit("a"), 2), Some(0));
        assert_eq!(b.bits(), 2);
    }
}

#[cfg(test)]
mod pair_tests {
    use super::*;
    use crate::glob::Glob;

    #[test]
    fn pair_groups_answer_as_globs_do() {
        let globs = [
            "*a*b*", "*ab*ba*", "*x?y*z*", "*b*a*", "*i*k*", "*aa*aa*", "*.*@*", "*a*a*",
        ];
        let parts: Vec<(String, String)> = globs
            .iter()
            .map(|g| {
                let glob = Glob::new(g);
                let (a, b) = glob.open_pair().expect("a pair");
                (
                    glob_pattern(&format!("*{a}*")).expect("ascii"),
                    glob_pattern(&format!("*{b}*")).expect("ascii"),
                )
            })
            .collect();
        let ends = ["*a*b", "*x?y*z", "*i*\u{212A}", "*aa*aa", "*.*@"];
        let end_globs: Vec<Glob> = ends.iter().map(|g| Glob::new(g)).collect();
        let end_parts: Vec<String> = end_globs
            .iter()
            .map(|g| {
                let a = g.open_end_pair().expect("a pair");
                glob_pattern(&format!("*{a}*")).expect("ascii")
            })
            .collect();
        let mut refs: Vec<(&str, PairEnd<'_>)> = parts
            .iter()
            .map(|(a, b)| (a.as_str(), PairEnd::Last(b.as_str())))
            .collect();
        for (p, g) in end_parts.iter().zip(&end_globs) {
            refs.push((p.as_str(), PairEnd::End(g)));
        }
        let globs: Vec<&str> = globs.iter().chain(ends.iter()).copied().collect();
        let g = ScanGroup::pairs(FactId(0), 0, 0, &refs, 1 << 20).expect("builds");
        let texts = [
            "",
            "ab",
            "ba",
            "aab",
            "abba",
            "aba",
            "abab",
            "bab",
            "xqyz",
            "xyz",
            "x\u{e9}yZZ",
            "İ\u{212A}",
            "İ",
            "aaaa",
            "aaa",
            "a.b@c",
            "@.",
            "xxxxxxxxxxxxab",
            "b a",
            "AB",
            "a\nb",
            "zzz x y z",
        ];
        for t in texts {
            let mut hits = [0u64; 4];
            g.scan(t, &mut hits).expect("scans");
            for (i, glob) in globs.iter().enumerate() {
                assert_eq!(bit(&hits, i), Glob::new(glob).matches(t), "{glob} on {t:?}");
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn pass_speed() {
        let text = "ab".repeat(32 * 1024);
        for n in [1usize, 8, 64, 256] {
            let pats: Vec<String> = (0..n).map(|i| format!("x{i}y")).collect();
            let refs: Vec<&str> = pats.iter().map(String::as_str).collect();
            let t = std::time::Instant::now();
            let g = ScanGroup::build(FactId(0), 0, 0, &refs, 1 << 20).expect("builds");
            let built = t.elapsed();
            let t = std::time::Instant::now();
            for _ in 0..100 {
                std::hint::black_box(g.scan(&text, &mut [0u64; 4]));
            }
            eprintln!(
                "{n} literals: build {built:?}, {} bytes, {:.2} ns/byte",
                g.size(),
                t.elapsed().as_nanos() as f64 / 100.0 / text.len() as f64
            );
        }
    }
}

#[cfg(test)]
mod build_cost {
    use super::*;

    #[test]
    #[ignore]
    fn glob_group_build() {
        for kind in 0..3 {
            let pats: Vec<String> = (0..128)
                .map(|i| {
                    let g = match kind {
                        0 => format!("*x{i}?y*"),
                        1 => format!("x*{i}y"),
                        _ => format!("*X{i}Y"),
                    };
                    glob_pattern(&g).expect("ascii")
                })
                .collect();
            let refs: Vec<&str> = pats.iter().map(String::as_str).collect();
            for n in [32usize, 64] {
                for limit in [128 << 10, 256 << 10, 1 << 20] {
                    let t = std::time::Instant::now();
                    let g = ScanGroup::build(FactId(0), 0, 0, &refs[..n], limit);
                    eprintln!(
                        "kind {kind} n {n} limit {limit}: {:?} {:?}",
                        g.map(|g| g.size()),
                        t.elapsed()
                    );
                }
            }
        }
    }
}
