//! Compiled conditions: the checked [`Expr`] lowered to leaves specialised for
//! their fact's type (enum and bool tests as bitmasks, sorted string sets,
//! CIDR lists as sorted interval tables, glob lists merged into one regex).
//!
//! Evaluation order and short-circuiting are exactly those of the reference
//! walk ([`crate::eval::eval_expr`]), so a lazy provider is asked for the
//! same facts in the same order.

use crate::analysis::truth::{self, Truth};
use crate::check::model::{Expr, ExprKind, Lit, Op, Val};
use crate::eval::{leaf_fact, test_leaf, FactSource};
use crate::facts::{FactId, FactTable, FactType};
use crate::glob::{fold, Glob};
use crate::re::Re;
use crate::scan::{
    glob_pattern, mask_line, regex_literal, Literal, LitsBuilder, PairEnd, ScanGroup, Side,
    BUILD_WORK, GROUP_MAX_BYTES, GROUP_PATTERNS, LITERAL_GROUP_BITS, MASK_CACHE_LINES, MAX_GROUPS,
    MEMO_BITS,
};
use crate::scan_parts::{self, queued_parts};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Lists at most this long are searched linearly; longer ones by binary search.
const LINEAR_MAX: usize = 8;

/// Glob lists at least this long (all ASCII) are merged into one regex.
pub(crate) const GLOB_MERGE_MIN: usize = 16;

/// Largest DFA built for one merged glob list.
const MERGED_MAX_BYTES: usize = 1 << 20;

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    /// `true` / `false`.
    Const(bool),
    /// `known FACT`.
    Known(FactId),
    /// An enum fact's value index is in `mask` (values past 63: `outside`).
    Enum {
        id: FactId,
        mask: u64,
        outside: bool,
    },
    /// A bool fact's value is in `mask` (bit 0: false, bit 1: true).
    Bool {
        id: FactId,
        mask: u8,
        outside: bool,
    },
    /// `FACT == "text"` (or `!=` when `neg`).
    StrEq {
        id: FactId,
        text: Box<str>,
        neg: bool,
    },
    /// `FACT in ["a", "b", ...]`, sorted and deduplicated.
    StrSet {
        id: FactId,
        set: Arc<[Box<str>]>,
    },
    /// `FACT in [nets]` as merged, sorted, inclusive intervals.
    Nets {
        id: FactId,
        table: Arc<NetTable>,
    },
    /// `FACT matches` one or more globs.
    Globs {
        id: FactId,
        m: Arc<GlobMatcher>,
    },
    /// `all ...` on a set fact: a name, and every name passes `inner` (one
    /// of the string leaves above, or `Leaf`, on the same fact).
    All {
        id: FactId,
        inner: Box<CExpr>,
    },
    /// A regex or glob leaf whose answer comes from a shared scan of its
    /// fact ([`crate::scan`]): true when any of `bits` of `group` is set
    /// (a DFA group: one pattern; a literal group: a bit per literal of
    /// the leaf's globs); `leaf` when the source keeps no scan memo.
    Scan {
        group: Arc<ScanGroup>,
        bits: Box<[u16]>,
        leaf: Box<CExpr>,
    },
    /// A leaf of many literals ([`MASK_MIN_BITS`] or more: a list of globs)
    /// answered by a shared scan: true when any bit of `masks` (a word of
    /// the group's memo and a mask, one entry per word) is set. Every use of
    /// one list shares one `masks` (an `Arc`), and the evaluation keeps the
    /// last answer per group ([`crate::scan::MaskCache`]), so a list used by
    /// 2,000 rules in a row is tested once, and otherwise a word at a time,
    /// not a bit at a time (a 5,000-glob list used by 2,000 rules tested 10
    /// million bits per evaluation: 33 ms).
    ScanAny {
        group: Arc<ScanGroup>,
        masks: Arc<[(u16, u64)]>,
        /// The list's number (from 1, in the order of first use): its
        /// line of the cache and its key there, the same on every machine.
        list: u32,
        leaf: Box<CExpr>,
    },
    /// Any other leaf, tested as the reference does.
    Leaf(Box<ExprKind>),
    Not(Box<CExpr>),
    And(Box<[CExpr]>),
    Or(Box<[CExpr]>),
}

/// Networks as sorted, merged, inclusive address intervals.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetTable {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

/// Sorts and merges overlapping or adjacent intervals.
fn merge<T: Ord + Copy>(mut v: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Box<[(T, T)]> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        if let Some(last) = out.last_mut() {
            let touches = s <= last.1 || next(last.1) == Some(s);
            if touches {
                if e > last.1 {
                    last.1 = e;
                }
                continue;
            }
        }
        out.push((s, e));
    }
    out.into_boxed_slice()
}

fn in_intervals<T: Ord + Copy>(table: &[(T, T)], x: T) -> bool {
    let i = table.partition_point(|&(s, _)| s <= x);
    // `i - 1` is in bounds when `i > 0`.
    i > 0 && table.get(i - 1).is_some_and(|&(_, e)| x <= e)
}

impl NetTable {
    /// The intervals, IPv4 and IPv6 together.
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn new(nets: &[IpNet]) -> NetTable {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        NetTable {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u128| x.checked_add(1)),
        }
    }

    /// Whether any network contains `ip` (a v4 address is never in a v6 network,
    /// as with [`IpNet::contains`]).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => in_intervals(&self.v4, u32::from(a)),
            IpAddr::V6(a) => in_intervals(&self.v6, u128::from(a)),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.v4.len() * 8 + self.v6.len() * 32
    }
}

/// A folded literal: its characters, and the same as text when it is ASCII.
#[derive(Debug, Clone)]
struct Lit8(Box<[char]>, Option<AsciiLit>);

impl std::ops::Deref for Lit8 {
    type Target = [char];
    fn deref(&self) -> &[char] {
        &self.0
    }
}

/// One glob in the form that matches it fastest. Literal characters are
/// stored folded ([`fold`]), and text characters are folded before they are
/// compared, exactly as [`Glob::matches`] does.
#[derive(Debug, Clone)]
enum FastGlob {
    /// No wildcard: the whole text.
    Exact(Lit8),
    /// `lit*`: the text starts with it.
    Prefix(Lit8),
    /// `*lit`: the text ends with it.
    Suffix(Lit8),
    /// Anything else: the general matcher.
    General(usize),
}

impl FastGlob {
    fn new(i: usize, g: &Glob) -> FastGlob {
        let chars: Vec<char> = g.source.chars().collect();
        let wild = |c: &char| matches!(c, '*' | '?');
        let lit = |cs: &[char]| {
            let folded: Box<[char]> = cs.iter().map(|c| fold(*c)).collect();
            let text: String = folded.iter().collect();
            Lit8(folded, text.is_ascii().then(|| AsciiLit::new(&text)))
        };
        match chars.as_slice() {
            cs if !cs.iter().any(wild) => FastGlob::Exact(lit(cs)),
            [rest @ .., '*'] if !rest.iter().any(wild) => FastGlob::Prefix(lit(rest)),
            ['*', rest @ ..] if !rest.iter().any(wild) => FastGlob::Suffix(lit(rest)),
            _ => FastGlob::General(i),
        }
    }

    /// Whether the glob matches all of `text`: an ASCII literal is
    /// compared a few words at a time here, anything else (non-ASCII
    /// text or literal, a general glob) out of line.
    #[inline(always)]
    fn matches(&self, globs: &[Glob], text: &str) -> bool {
        let tb = text.as_bytes();
        let part = match self {
            FastGlob::Exact(Lit8(_, Some(l))) => Some((l, Some(tb))),
            FastGlob::Prefix(Lit8(_, Some(l))) => Some((l, tb.get(..l.len()))),
            FastGlob::Suffix(Lit8(_, Some(l))) => {
                Some((l, tb.len().checked_sub(l.len()).and_then(|at| tb.get(at..))))
            }
            _ => None,
        };
        if let Some((l, part)) = part {
            // Fewer bytes than the literal's characters: fewer characters too.
            let Some(part) = part else {
                return false;
            };
            if l.eq(part) {
                return true;
            }
            if part.is_ascii() {
                return false;
            }
        }
        self.matches_chars(globs, text)
    }

    /// [`FastGlob::matches`] character by character (each text character
    /// folded), or by the general matcher.
    #[inline(never)]
    fn matches_chars(&self, globs: &[Glob], text: &str) -> bool {
        match self {
            FastGlob::Exact(lit) => {
                let mut it = text.chars();
                lit.iter().all(|l| it.next().map(fold) == Some(*l)) && it.next().is_none()
            }
            FastGlob::Prefix(lit) => {
                let mut it = text.chars();
                lit.iter().all(|l| it.next().map(fold) == Some(*l))
            }
            FastGlob::Suffix(lit) => {
                let mut it = text.chars().rev();
                lit.iter().rev().all(|l| it.next().map(fold) == Some(*l))
            }
            FastGlob::General(i) => globs.get(*i).is_some_and(|g| g.matches(text)),
        }
    }
}

/// A folded ASCII literal, compared with text bytes: a text byte equals a literal byte under ASCII case folding when it does with
/// `0x20` set wherever the literal has a letter. A region of the text that
/// compares equal is therefore ASCII (a byte from 0x80 never equals an ASCII
/// byte), so its characters fold exactly as the literal's; a region that
/// differs and is not ASCII needs the character-wise comparison.
#[derive(Debug, Clone)]
struct AsciiLit {
    /// The literal, lowercase.
    low: Box<[u8]>,
    /// `0x20` at each letter, else `0`.
    mask: Box<[u8]>,
    /// The same as little-endian words `(low, mask)` for [`AsciiLit::eq`]
    /// on literals of 4 bytes or more: the first and last 4 (shorter than
    /// 8 bytes) or 8 bytes (the two may overlap) ...
    first: (u64, u64),
    last: (u64, u64),
    /// ... and the 8-byte words at 8, 16, ... before the last 8 bytes.
    mid: Box<[(u64, u64)]>,
}

/// The 4 bytes of `t` at `at` as a little-endian number.
#[inline(always)]
fn load4(t: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 4] = t.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}

/// The 8 bytes of `t` at `at` as a little-endian number.
#[inline(always)]
fn load8(t: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = t.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

impl AsciiLit {
    /// From ASCII text already folded (lowercase).
    fn new(folded: &str) -> AsciiLit {
        let low: Box<[u8]> = folded.bytes().map(|b| b.to_ascii_lowercase()).collect();
        let mask: Box<[u8]> = low
            .iter()
            .map(|b| if b.is_ascii_lowercase() { 0x20 } else { 0 })
            .collect();
        let n = low.len();
        let word = |at: usize, width: usize| {
            let w = |bytes: &[u8]| {
                bytes
                    .get(at..at + width)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .fold(0u64, |w, &x| w << 8 | u64::from(x))
            };
            (w(&low), w(&mask))
        };
        let (first, last, mid) = match n {
            0..=3 => ((0, 0), (0, 0), Vec::new()),
            4..=7 => (word(0, 4), word(n - 4, 4), Vec::new()),
            _ => (
                word(0, 8),
                word(n - 8, 8),
                (8..n - 8).step_by(8).map(|at| word(at, 8)).collect(),
            ),
        };
        AsciiLit {
            low,
            mask,
            first,
            last,
            mid: mid.into(),
        }
    }

    fn len(&self) -> usize {
        self.low.len()
    }

    /// Whether `t` is the literal, ignoring ASCII case: a few word
    /// compares (`t | mask == low` a word at a time is the same test as
    /// byte by byte, as no bit crosses a byte).
    #[inline]
    fn eq(&self, t: &[u8]) -> bool {
        let n = self.low.len();
        if t.len() != n {
            return false;
        }
        let hit = |w: Option<u64>, (l, m): (u64, u64)| w.is_some_and(|w| w | m == l);
        match n {
            0..=3 => t
                .iter()
                .zip(self.low.iter().zip(self.mask.iter()))
                .all(|(t, (l, m))| t | m == *l),
            4..=7 => hit(load4(t, 0), self.first) && hit(load4(t, n - 4), self.last),
            _ => {
                hit(load8(t, 0), self.first)
                    && hit(load8(t, n - 8), self.last)
                    && self
                        .mid
                        .iter()
                        .enumerate()
                        .all(|(i, &lm)| hit(load8(t, 8 + 8 * i), lm))
            }
        }
    }
}

/// One or more globs over one fact: each in its fastest form (exact,
/// prefix, suffix, general); long all-ASCII lists also as one regex, used
/// when the text is ASCII (where both agree exactly on case folding).
#[derive(Debug, Clone)]
pub(crate) struct GlobMatcher {
    globs: Arc<[Glob]>,
    fast: Box<[FastGlob]>,
    merged: Option<Re>,
    /// Every glob is a literal test ([`GlobMatcher::literals`]).
    literal: bool,
}

impl GlobMatcher {
    /// `budget`: what is left of the policy's compiled-regex budget; the
    /// merged regex is built within it (and what it uses is taken off), or
    /// not at all.
    fn new(globs: &Arc<[Glob]>, budget: &mut usize) -> GlobMatcher {
        let merged = if globs.len() >= GLOB_MERGE_MIN
            && globs.iter().all(|g| g.source.is_ascii())
            && *budget > 0
        {
            let mut pat = String::from("(?s)^(?:");
            for (i, g) in globs.iter().enumerate() {
                if i > 0 {
                    pat.push('|');
                }
                let mut lit = String::new();
                for c in g.source.chars() {
                    match c {
                        '*' | '?' => {
                            pat.push_str(&regex::escape(&lit));
                            lit.clear();
                            pat.push_str(if c == '*' { ".*" } else { "." });
                        }
                        c => lit.push(c),
                    }
                }
                pat.push_str(&regex::escape(&lit));
            }
            pat.push_str(")$");
            // A list too large for the budget keeps the plain loop, which
            // is linear in the text per glob too.
            let limit = (*budget).min(MERGED_MAX_BYTES);
            match Re::new(&pat, true, limit) {
                Ok(re) => {
                    *budget = budget.saturating_sub(re.size());
                    Some(re)
                }
                Err(_) => {
                    *budget = budget.saturating_sub(limit);
                    None
                }
            }
        } else {
            None
        };
        let mut m = GlobMatcher {
            globs: Arc::clone(globs),
            fast: globs
                .iter()
                .enumerate()
                .map(|(i, g)| FastGlob::new(i, g))
                .collect(),
            merged,
            literal: false,
        };
        m.literal = m.literals().is_some();
        m
    }

    /// Whether matching reads the whole text (a glob that searches for a
    /// part, or the merged regex) rather than a bounded prefix or suffix.
    fn scans(&self) -> bool {
        self.merged.is_some() || self.globs.iter().any(Glob::searches)
    }

    /// The globs' parts for a pair group, when every glob is `*a*b*`
    /// ([`Glob::open_pair`]: both parts as patterns, ASCII) or `*a*b`
    /// ([`Glob::open_end_pair`]: `a` as a pattern, ASCII, and the glob).
    fn pairs(&self) -> Option<Vec<(String, PairSecond)>> {
        if self.globs.is_empty() {
            return None;
        }
        self.globs
            .iter()
            .map(|g| match g.open_pair() {
                Some((a, b)) => Some((
                    glob_pattern(&format!("*{a}*"))?,
                    PairSecond::Last(glob_pattern(&format!("*{b}*"))?),
                )),
                None => Some((
                    glob_pattern(&format!("*{}*", g.open_end_pair()?))?,
                    PairSecond::End(g.clone()),
                )),
            })
            .collect()
    }

    /// The globs as one pattern for a shared scan; `None` for no globs, a
    /// non-ASCII glob, and for a glob with an open start and several parts (`*a*b*`):
    /// a DFA for many of those must remember which first parts it has seen,
    /// which grows exponentially, so those stay with the glob matcher.
    fn scan_pattern(&self) -> Option<String> {
        // No globs match nothing, but `(?:)` would match everything.
        if self.globs.is_empty() {
            return None;
        }
        let mut p = String::from("(?:");
        for (i, g) in self.globs.iter().enumerate() {
            if g.source.starts_with('*') && g.source.trim_matches('*').contains('*') {
                return None;
            }
            if i > 0 {
                p.push('|');
            }
            p.push_str(&glob_pattern(&g.source)?);
        }
        p.push(')');
        Some(p)
    }

    /// The globs as literal tests for a shared scan's tries, when each is
    /// an exact, prefix or suffix glob without `?` whose folded literal is
    /// ASCII (the tries fold text characters as [`fold`] does); `None`
    /// otherwise, and for no globs.
    fn literals(&self) -> Option<Vec<Literal>> {
        if self.fast.is_empty() {
            return None;
        }
        self.fast
            .iter()
            .map(|f| match f {
                FastGlob::Exact(l) => Some(Literal {
                    side: Side::GlobStart,
                    bytes: l.1.as_ref()?.low.to_vec(),
                    whole: true,
                }),
                FastGlob::Prefix(l) => Some(Literal {
                    side: Side::GlobStart,
                    bytes: l.1.as_ref()?.low.to_vec(),
                    whole: false,
                }),
                FastGlob::Suffix(l) => Some(Literal {
                    side: Side::GlobEnd,
                    bytes: l.1.as_ref()?.low.iter().rev().copied().collect(),
                    whole: false,
                }),
                FastGlob::General(_) => None,
            })
            .collect()
    }

    /// Whether any glob matches all of `text`, ignoring case.
    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match (&*self.fast, &self.merged) {
            // One glob (the common leaf): tested in place.
            ([one], None) => one.matches(&self.globs, text),
            _ => self.matches_any(text),
        }
    }

    /// [`GlobMatcher::matches`] for several globs.
    #[inline(never)]
    fn matches_any(&self, text: &str) -> bool {
        if let Some(re) = &self.merged {
            if text.is_ascii() {
                return re.is_match(text);
            }
        }
        for f in self.fast.iter() {
            if f.matches(&self.globs, text) {
                return true;
            }
        }
        false
    }
}

/// Whether `s` is in the sorted, deduplicated `set`.
#[inline]
fn in_sorted(set: &[Box<str>], s: &str) -> bool {
    if set.len() <= LINEAR_MAX {
        set.iter().any(|x| &**x == s)
    } else {
        set.binary_search_by(|x| (**x).cmp(s)).is_ok()
    }
}

fn enum_domain(table: &FactTable, id: FactId) -> Option<usize> {
    match &table.facts.get(id.index())?.ty {
        FactType::Enum(v) if v.len() <= 64 => Some(v.len()),
        _ => None,
    }
}

fn is_bool(table: &FactTable, id: FactId) -> bool {
    matches!(
        table.facts.get(id.index()).map(|f| &f.ty),
        Some(FactType::Bool)
    )
}

fn bit(i: u16) -> u64 {
    1u64.checked_shl(u32::from(i)).unwrap_or(0)
}

/// Compiled leaves shared between the conditions that use one named list:
/// the checker gives every use of a list (with one fact) the same `Arc`,
/// and the compiled table, set or matcher is built once for it, keyed by
/// that `Arc`'s address (only identity is used; the order of the map never
/// shows in the result).
#[derive(Default)]
pub(crate) struct Shared {
    sets: BTreeMap<usize, Arc<[Box<str>]>>,
    nets: BTreeMap<usize, Arc<NetTable>>,
    globs: BTreeMap<usize, Arc<GlobMatcher>>,
    /// What is left of the policy's compiled-regex budget (merged glob lists).
    pub(crate) regex_budget: usize,
}

impl Shared {
    /// With `regex_budget` bytes left for merged glob regexes.
    pub(crate) fn new(regex_budget: usize) -> Shared {
        Shared {
            regex_budget,
            ..Shared::default()
        }
    }
}

fn addr<T: ?Sized>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a).cast::<()>() as usize
}

/// Lowers one checked condition.
pub(crate) fn compile(e: &Expr, table: &FactTable, shared: &mut Shared) -> CExpr {
    match &e.kind {
        ExprKind::Const(b) => CExpr::Const(*b),
        ExprKind::Known(id) => CExpr::Known(*id),
        ExprKind::Not(inner) => CExpr::Not(Box::new(compile(inner, table, shared))),
        ExprKind::And(parts) => {
            CExpr::And(parts.iter().map(|p| compile(p, table, shared)).collect())
        }
        ExprKind::Or(parts) => CExpr::Or(parts.iter().map(|p| compile(p, table, shared)).collect()),
        leaf => {
            compile_leaf(leaf, table, shared).unwrap_or_else(|| CExpr::Leaf(Box::new(leaf.clone())))
        }
    }
}

fn compile_leaf(kind: &ExprKind, table: &FactTable, shared: &mut Shared) -> Option<CExpr> {
    let id = leaf_fact(kind)?;
    if let ExprKind::All(inner) = kind {
        let inner =
            compile_leaf(inner, table, shared).unwrap_or_else(|| CExpr::Leaf(inner.clone()));
        return Some(CExpr::All {
            id,
            inner: Box::new(inner),
        });
    }
    if enum_domain(table, id).is_some() {
        let (mask, outside) = match kind {
            ExprKind::Compare(_, Op::Eq, Lit::Enum(v)) => (bit(*v), false),
            ExprKind::Compare(_, Op::Ne, Lit::Enum(v)) => (!bit(*v), true),
            ExprKind::InSet(_, lits) => {
                let mut m = 0u64;
                for l in lits.iter() {
                    match l {
                        Lit::Enum(v) if *v < 64 => m |= bit(*v),
                        _ => return None,
                    }
                }
                (m, false)
            }
            _ => return None,
        };
        return Some(CExpr::Enum { id, mask, outside });
    }
    if is_bool(table, id) {
        let b = |v: bool| if v { 2u8 } else { 1u8 };
        let (mask, outside) = match kind {
            ExprKind::IsTrue(_) => (2, false),
            ExprKind::Compare(_, Op::Eq, Lit::Bool(v)) => (b(*v), false),
            ExprKind::Compare(_, Op::Ne, Lit::Bool(v)) => (3 & !b(*v), true),
            ExprKind::InSet(_, lits) => {
                let mut m = 0u8;
                for l in lits.iter() {
                    match l {
                        Lit::Bool(v) => m |= b(*v),
                        _ => return None,
                    }
                }
                (m, false)
            }
            _ => return None,
        };
        return Some(CExpr::Bool { id, mask, outside });
    }
    match kind {
        ExprKind::Compare(_, op @ (Op::Eq | Op::Ne), Lit::Str(s)) => Some(CExpr::StrEq {
            id,
            text: s.clone(),
            neg: *op == Op::Ne,
        }),
        ExprKind::InSet(_, lits) => {
            if let Some(set) = shared.sets.get(&addr(lits)) {
                return Some(CExpr::StrSet {
                    id,
                    set: Arc::clone(set),
                });
            }
            let mut set = Vec::with_capacity(lits.len());
            for l in lits.iter() {
                match l {
                    Lit::Str(s) => set.push(s.clone()),
                    _ => return None,
                }
            }
            set.sort_unstable();
            set.dedup();
            let set: Arc<[Box<str>]> = set.into();
            shared.sets.insert(addr(lits), Arc::clone(&set));
            Some(CExpr::StrSet { id, set })
        }
        ExprKind::InNets(_, nets) => {
            let table = shared
                .nets
                .entry(addr(nets))
                .or_insert_with(|| Arc::new(NetTable::new(nets)));
            Some(CExpr::Nets {
                id,
                table: Arc::clone(table),
            })
        }
        ExprKind::Globs(_, globs) => {
            let m = match shared.globs.get(&addr(globs)) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = Arc::new(GlobMatcher::new(globs, &mut shared.regex_budget));
                    shared.globs.insert(addr(globs), Arc::clone(&m));
                    m
                }
            };
            Some(CExpr::Globs { id, m })
        }
        _ => None,
    }
}

impl CExpr {
    /// Evaluates with Kleene logic, in the reference walk's order.
    #[inline]
    pub(crate) fn eval<S: FactSource + ?Sized>(&self, src: &mut S) -> Truth {
        match self {
            CExpr::Const(b) => Truth::from_bool(*b),
            CExpr::Known(id) => Truth::from_bool(src.value(*id).is_some()),
            CExpr::Enum { id, mask, outside } => match src.value(*id) {
                Some(Val::Enum(i)) => {
                    Truth::from_bool(if i < 64 { mask & bit(i) != 0 } else { *outside })
                }
                // The reference: `==`/`in` false, `!=` true on another type.
                Some(_) => Truth::from_bool(*outside),
                None => Truth::Unknown,
            },
            CExpr::Bool { id, mask, outside } => match src.value(*id) {
                Some(Val::Bool(b)) => Truth::from_bool(mask & (1u8 << u8::from(b)) != 0),
                Some(_) => Truth::from_bool(*outside),
                None => Truth::Unknown,
            },
            CExpr::StrEq { id, text, neg } => match src.value(*id) {
                Some(Val::Str(s)) => Truth::from_bool((s == &**text) != *neg),
                // A set: `==` when any name is equal, `!=` when none is.
                Some(Val::Set(names)) => {
                    Truth::from_bool(names.iter().any(|s| s.as_str() == &**text) != *neg)
                }
                Some(_) => Truth::from_bool(*neg),
                None => Truth::Unknown,
            },
            CExpr::StrSet { id, set } => match src.value(*id) {
                Some(Val::Str(s)) => Truth::from_bool(in_sorted(set, s)),
                Some(Val::Set(names)) => Truth::from_bool(names.iter().any(|s| in_sorted(set, s))),
                Some(_) => Truth::False,
                None => Truth::Unknown,
            },
            CExpr::Nets { id, table } => match src.value(*id) {
                Some(Val::Ip(ip)) => Truth::from_bool(table.contains(ip)),
                Some(_) => Truth::False,
                None => Truth::Unknown,
            },
            CExpr::Globs { id, m } => match src.value(*id) {
                Some(Val::Str(s)) => Truth::from_bool(m.matches(s)),
                Some(Val::Set(names)) => Truth::from_bool(names.iter().any(|s| m.matches(s))),
                Some(_) => Truth::False,
                None => Truth::Unknown,
            },
            CExpr::All { id, inner } => match src.value(*id) {
                Some(Val::Set(names)) => {
                    Truth::from_bool(!names.is_empty() && names.iter().all(|s| inner.test_str(s)))
                }
                Some(Val::Str(s)) => Truth::from_bool(inner.test_str(s)),
                Some(_) => Truth::False,
                None => Truth::Unknown,
            },
            CExpr::ScanAny {
                group,
                masks,
                list,
                leaf,
            } => scan_any(group, masks, *list, leaf, src),
            CExpr::Scan { group, bits, leaf } => {
                for &b in bits.iter() {
                    match src.scan(group, usize::from(b)) {
                        Some(Truth::False) => {}
                        Some(t) => return t,
                        None => return leaf.eval(src),
                    }
                }
                Truth::False
            }
            CExpr::Leaf(kind) => match leaf_fact(kind).and_then(|id| src.value(id)) {
                Some(v) => Truth::from_bool(test_leaf(kind, v)),
                None => Truth::Unknown,
            },
            CExpr::Not(inner) => inner.eval(src).not(),
            CExpr::And(parts) => truth::all(parts.iter(), |p| p.eval(src)),
            CExpr::Or(parts) => truth::any(parts.iter(), |p| p.eval(src)),
        }
    }

    /// Whether the condition is true (the direct path: facts in memory, so
    /// the order in which parts are read does not matter, and an `and`
    /// stops at its first part that is not true).
    #[inline]
    pub(crate) fn holds<S: FactSource + ?Sized>(&self, src: &mut S) -> bool {
        match self {
            CExpr::And(parts) => parts.iter().all(|p| p.holds(src)),
            CExpr::Or(parts) => parts.iter().any(|p| p.holds(src)),
            other => other.eval(src) == Truth::True,
        }
    }

    /// [`CExpr::holds`] of a top-level conjunct, with the common leaf of an
    /// early match, a glob test, in place (as in [`CExpr::eval`], true only
    /// when a name, or the text, matches).
    #[inline(always)]
    fn holds_part<S: FactSource + ?Sized>(&self, src: &mut S) -> bool {
        match self {
            CExpr::Globs { id, m } => match src.value(*id) {
                Some(Val::Set(names)) => names.iter().any(|s| m.matches(s)),
                Some(Val::Str(s)) => m.matches(s),
                _ => false,
            },
            other => other.holds(src),
        }
    }

    /// [`CExpr::holds`], taking the conjuncts in `skip` as true (bit `i`:
    /// part `i` of a top-level `and`; bit 0: the whole of anything else).
    #[inline]
    pub(crate) fn holds_skipping<S: FactSource + ?Sized>(&self, skip: u64, src: &mut S) -> bool {
        match self {
            CExpr::And(parts) => parts
                .iter()
                .enumerate()
                .all(|(i, p)| (i < 64 && (skip >> i) & 1 == 1) || p.holds_part(src)),
            _ if skip & 1 == 1 => true,
            other => other.holds_part(src),
        }
    }

    /// Whether one name passes this string leaf (the inside of `all`).
    #[inline]
    fn test_str(&self, s: &str) -> bool {
        match self {
            CExpr::StrEq { text, neg, .. } => (s == &**text) != *neg,
            CExpr::StrSet { set, .. } => in_sorted(set, s),
            CExpr::Globs { m, .. } => m.matches(s),
            CExpr::Leaf(kind) => test_leaf(kind, Val::Str(s)),
            _ => false,
        }
    }

    /// Heap bytes owned by this condition (an estimate: allocator overhead and
    /// shared glob lists excluded).
    pub(crate) fn heap_bytes(&self) -> usize {
        let node = std::mem::size_of::<CExpr>();
        match self {
            CExpr::StrEq { text, .. } => text.len(),
            CExpr::StrSet { set, .. } => set.iter().map(|s| s.len() + 16).sum(),
            CExpr::Nets { table, .. } => std::mem::size_of::<NetTable>() + table.heap_bytes(),
            CExpr::Globs { .. } => std::mem::size_of::<GlobMatcher>(),
            CExpr::Leaf(_) => std::mem::size_of::<ExprKind>(),
            CExpr::All { inner, .. } => node + inner.heap_bytes(),
            CExpr::Scan { leaf, bits, .. } => node + bits.len() * 2 + leaf.heap_bytes(),
            // (`masks` is shared by every use of the list.)
            CExpr::ScanAny { leaf, .. } => node + leaf.heap_bytes(),
            CExpr::Not(inner) => node + inner.heap_bytes(),
            CExpr::And(parts) | CExpr::Or(parts) => {
                parts.iter().map(|p| node + p.heap_bytes()).sum()
            }
            _ => 0,
        }
    }
}

/// A distinct shared-scan key of a fact, with what it tests.
type Keyed = (ScanKey, Form);

/// How a key is answered: by literal tests in the fact's literal group, or
/// by a pattern in a DFA group.
enum Form {
    Lits(Vec<Literal>),
    /// Globs `*a*b*` and `*a*b` on a one-string fact: each glob's parts.
    Pairs(Vec<(String, PairSecond)>),
    /// Globs with an open start and parts found in order (`*a*b*c*`) on a
    /// one-string fact ([`crate::scan_parts`]).
    Parts(Vec<Glob>),
    Pattern(String),
    /// `==` and `in [...]` on a set fact: exact strings, in the literal
    /// group's exact trie (one bit for the key).
    Exact(Vec<Box<str>>),
}

/// A pair-group glob's second part ([`PairEnd`]).
enum PairSecond {
    Last(String),
    End(Glob),
}

/// A shared scan's key: the glob matcher (by address: one per named list)
/// or the regex's text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ScanKey {
    Globs(FactId, usize),
    Regex(FactId, String),
    /// `FACT == "text"` on a set fact (`!=` reads the same key).
    Str(FactId, Box<str>),
    /// `FACT in [...]` on a set fact: the list (by address).
    StrSet(FactId, usize),
}

impl ScanKey {
    fn fact(&self) -> FactId {
        match self {
            ScanKey::Globs(id, _)
            | ScanKey::Regex(id, _)
            | ScanKey::Str(id, _)
            | ScanKey::StrSet(id, _) => *id,
        }
    }
}

/// Whether fact `id` is in the bit set `sets`.
fn is_in(sets: u64, id: FactId) -> bool {
    1u64.checked_shl(u32::from(id.0))
        .is_some_and(|b| sets & b != 0)
}

/// The key of a leaf that may share a scan. `sets`: the facts (bit `id`)
/// that hold sets of names. Globs that read the whole value share; on a
/// set fact, exact, prefix and suffix globs too (each is cheap on one
/// string, but a set is tested name by name), when they are literal or in
/// lists of fewer than [`GLOB_MERGE_MIN`] (a longer list whose merged
/// regex did not fit the budget would not fit a DFA group either, and
/// trying costs).
fn scan_key(c: &CExpr, sets: u64) -> Option<ScanKey> {
    match c {
        CExpr::Globs { id, m }
            if m.scans() || (is_in(sets, *id) && (m.globs.len() < GLOB_MERGE_MIN || m.literal)) =>
        {
            Some(ScanKey::Globs(*id, addr(m)))
        }
        CExpr::Leaf(kind) => match &**kind {
            // A regex with a Unicode word boundary only as a literal
            // (`^lit\b`: the literal group checks the boundary).
            ExprKind::Regex(id, re)
                if re.case_insensitive()
                    && (!re.unicode_word_boundary()
                        || regex_literal(re.as_str(), true).is_some()) =>
            {
                Some(ScanKey::Regex(*id, re.as_str().to_owned()))
            }
            _ => None,
        },
        // On a set fact each name is compared: one walk of the exact trie
        // per name answers them all.
        CExpr::StrEq { id, text, .. } if is_in(sets, *id) => Some(ScanKey::Str(*id, text.clone())),
        // `in LIST` on one string is a binary search of the list, by each
        // rule that uses it (2,000 rules `recipient in LIST` of 10,000
        // strings: 28,000 string compares per evaluation): one walk of the
        // exact trie answers every use of every list of the fact.
        CExpr::StrSet { id, set } => Some(ScanKey::StrSet(*id, addr(set))),
        _ => None,
    }
}

/// What a leaf with a scan key tests (computed once per distinct key).
fn scan_form(c: &CExpr, sets: u64) -> Option<Form> {
    match c {
        CExpr::Globs { m, id } => match m.literals() {
            Some(l) => Some(Form::Lits(l)),
            None => match m.pairs() {
                // On a set, a pair or parts group would run per name: not
                // shared.
                Some(p) if !is_in(sets, *id) => Some(Form::Pairs(p)),
                _ => match m.scan_pattern() {
                    Some(p) => Some(Form::Pattern(p)),
                    None if !is_in(sets, *id)
                        && m.globs.iter().all(|g| queued_parts(g).is_some()) =>
                    {
                        Some(Form::Parts(m.globs.to_vec()))
                    }
                    None => None,
                },
            },
        },
        CExpr::Leaf(kind) => match &**kind {
            ExprKind::Regex(_, re) => Some(match regex_literal(re.as_str(), true) {
                Some(l) => Form::Lits(vec![l]),
                None => Form::Pattern(re.as_str().to_owned()),
            }),
            _ => None,
        },
        CExpr::StrEq { text, .. } => Some(Form::Exact(vec![text.clone()])),
        CExpr::StrSet { set, .. } => Some(Form::Exact(set.to_vec())),
        _ => None,
    }
}

/// The leaves that may share a scan, in evaluation order (`all`'s inner
/// leaf tests names one by one and is left alone).
fn collect_scans<'c>(c: &'c CExpr, sets: u64, out: &mut Vec<(ScanKey, &'c CExpr)>) {
    match c {
        CExpr::Not(inner) => collect_scans(inner, sets, out),
        CExpr::And(parts) | CExpr::Or(parts) => {
            parts.iter().for_each(|p| collect_scans(p, sets, out))
        }
        leaf => {
            if let Some(k) = scan_key(leaf, sets) {
                out.push((k, leaf));
            }
        }
    }
}

/// A [`CExpr::ScanAny`] leaf's truth: out of line, so that the evaluator's
/// hot match stays as small as it was without it.
#[inline(never)]
fn scan_any<S: FactSource + ?Sized>(
    group: &ScanGroup,
    masks: &[(u16, u64)],
    list: u32,
    leaf: &CExpr,
    src: &mut S,
) -> Truth {
    match src.scan_any(group, masks, list) {
        Some(t) => t,
        None => leaf.eval(src),
    }
}

/// Each many-literal key's shared masks and list number.
type ListMasks = BTreeMap<ScanKey, (Arc<[(u16, u64)]>, u32)>;

/// A leaf with this many bits or more reads them a word at a time
/// ([`CExpr::ScanAny`]).
pub(crate) const MASK_MIN_BITS: usize = 8;

/// `bits` as (word, mask) pairs, one per word, ascending.
fn word_masks(bits: &[u16]) -> Vec<(u16, u64)> {
    let mut out: Vec<(u16, u64)> = Vec::new();
    let mut sorted = bits.to_vec();
    sorted.sort_unstable();
    for b in sorted {
        let (w, m) = (b / 64, 1u64 << (b % 64));
        match out.last_mut() {
            Some((lw, lm)) if *lw == w => *lm |= m,
            _ => out.push((w, m)),
        }
    }
    out
}

/// Where a key's answer is: its group and its bits there.
type Placed = BTreeMap<ScanKey, (Arc<ScanGroup>, Box<[u16]>)>;

/// Rewrites the leaves in `groups` to read their group's answer, except
/// the first leaf of each literal group (in rule order) that tests one
/// pattern (`direct`: bit `slot`, the groups whose first such leaf was
/// seen). That leaf reads only its pattern's length of each name, so it
/// stays cheap on its own, and an evaluation decided by the first rule
/// that reads the fact — an early match — does not pay for walking the
/// group's tries; the next leaf scans once, as before. The bound holds:
/// one such test per fact and evaluation (a set has at most ~32,000
/// names, a pattern is one glob or one anchored literal regex).
fn rewrite_scans(
    c: &mut CExpr,
    sets: u64,
    groups: &Placed,
    direct: &mut u32,
    per_fact: &mut [usize; 64],
    masks: &mut ListMasks,
) {
    match c {
        CExpr::Not(inner) => rewrite_scans(inner, sets, groups, direct, per_fact, masks),
        CExpr::And(parts) | CExpr::Or(parts) => parts
            .iter_mut()
            .for_each(|p| rewrite_scans(p, sets, groups, direct, per_fact, masks)),
        leaf => {
            // What the leaf costs when it stays a leaf (counted per fact).
            let unshared = |leaf: &CExpr, per_fact: &mut [usize; 64]| {
                if let Some(fact) = unit_fact(leaf) {
                    if let Some(n) = per_fact.get_mut(usize::from(fact.0)) {
                        *n = n.saturating_add(leaf_units(leaf, is_in(sets, fact)));
                    }
                }
            };
            let Some(key) = scan_key(leaf, sets) else {
                unshared(leaf, per_fact);
                return;
            };
            if let Some((group, bits)) = groups.get(&key) {
                // On a set, only a glob (a few compares per name) stays
                // direct: a regex starts a DFA per name.
                let one_pattern = match &*leaf {
                    CExpr::Globs { m, .. } => m.globs.len() == 1,
                    CExpr::Leaf(_) => !is_in(sets, key.fact()),
                    _ => false,
                };
                let slot = 1u32.checked_shl(group.slot as u32).unwrap_or(0);
                if group.is_literal() && one_pattern && *direct & slot == 0 {
                    *direct |= slot;
                    unshared(leaf, per_fact);
                    return;
                }
                let mut old = std::mem::replace(leaf, CExpr::Const(false));
                // `!=` is `not ==`: the scan answers `==`.
                let neg = match &mut old {
                    CExpr::StrEq { neg, .. } => std::mem::replace(neg, false),
                    _ => false,
                };
                let scan = if bits.len() >= MASK_MIN_BITS {
                    let next = u32::try_from(masks.len() + 1).unwrap_or(u32::MAX);
                    let (m, list) = masks
                        .entry(key)
                        .or_insert_with(|| (word_masks(bits).into(), next));
                    CExpr::ScanAny {
                        group: Arc::clone(group),
                        masks: Arc::clone(m),
                        list: *list,
                        leaf: Box::new(old),
                    }
                } else {
                    CExpr::Scan {
                        group: Arc::clone(group),
                        bits: bits.clone(),
                        leaf: Box::new(old),
                    }
                };
                *leaf = if neg {
                    CExpr::Not(Box::new(scan))
                } else {
                    scan
                };
            } else {
                unshared(leaf, per_fact);
            }
        }
    }
}

/// Groups the regex and glob leaves that read one fact (a fact read by at
/// least two of them) into shared scans, in rule order: per fact, one
/// literal group for its literal tests (see [`crate::scan`]), then DFA
/// groups for the other patterns, within `budget` bytes of DFA (what is
/// used or tried is taken off), [`MAX_GROUPS`] and the memo's bits;
/// rewrites those leaves to read their group's answer. Returns whether
/// any group was made.
pub(crate) fn share_scans(conds: &mut [CExpr], sets: u64, budget: &mut usize) -> (bool, usize) {
    let mut leaves = Vec::new();
    for c in conds.iter() {
        collect_scans(c, sets, &mut leaves);
    }
    // Per fact, in order of first use: its distinct keys, and its uses.
    let mut facts: Vec<(FactId, Vec<Keyed>, usize)> = Vec::new();
    // Whether each key seen has a form.
    let mut seen: BTreeMap<ScanKey, bool> = BTreeMap::new();
    for (key, leaf) in leaves {
        let fact = key.fact();
        let new = !seen.contains_key(&key);
        let form = if new { scan_form(leaf, sets) } else { None };
        if new {
            seen.insert(key.clone(), form.is_some());
        }
        if seen.get(&key) != Some(&true) {
            continue;
        }
        let i = match facts.iter().position(|(f, ..)| *f == fact) {
            Some(i) => i,
            None => {
                facts.push((fact, Vec::new(), 0));
                facts.len() - 1
            }
        };
        if let Some((_, keys, uses)) = facts.get_mut(i) {
            // A key that alone costs several passes (a glob list) counts
            // as that many uses: its fact is worth a group.
            *uses += if new {
                leaf_units(leaf, is_in(sets, fact)).div_ceil(UNITS).max(1)
            } else {
                1
            };
            if let Some(form) = form {
                keys.push((key, form));
            }
        }
    }
    let mut groups = Placed::new();
    let mut build = Build {
        bytes: budget,
        work: BUILD_WORK,
        slots: 0,
        words: 0,
        per_pattern: GROUP_MAX_BYTES / FIRST_GROUP,
    };
    for (fact, keys, uses) in &facts {
        if *uses < 2 {
            continue;
        }
        // The literal tests first: one group, as wide as the memo allows;
        // when its bits ([`LITERAL_GROUP_BITS`]) run out, another for the
        // keys left, and so on (a policy of 100,000 virus families: two).
        let mut left: Vec<&(ScanKey, Form)> = keys
            .iter()
            .filter(|(_, f)| matches!(f, Form::Lits(_) | Form::Exact(_)))
            .collect();
        while !left.is_empty() && build.slots < MAX_GROUPS {
            let mut lits = LitsBuilder::default();
            let mut placed: Vec<(&ScanKey, Box<[u16]>)> = Vec::new();
            let mut rest = Vec::new();
            let max_bits = MEMO_BITS.saturating_sub(build.words * 64);
            for kf in left {
                let (key, form) = kf;
                // A key that does not fit whole is matched leaf by leaf,
                // or by the next group when this one is full (the bits its
                // first literals took stay unread).
                let bits: Option<Box<[u16]>> = match form {
                    Form::Lits(ls) => ls.iter().map(|l| lits.add(l, max_bits)).collect(),
                    Form::Exact(strings) => lits.new_bit(max_bits).and_then(|bit| {
                        for s in strings {
                            lits.add_exact(s, bit)?;
                        }
                        Some(Box::new([bit]) as Box<[u16]>)
                    }),
                    _ => continue,
                };
                match bits {
                    Some(bits) => placed.push((key, bits)),
                    None => rest.push(kf),
                }
            }
            // Only a full group leaves keys to the next one (each group
            // reads every key left once: at most three times in all).
            let full = lits.bits() >= LITERAL_GROUP_BITS;
            let Some(g) = ScanGroup::literals(*fact, build.slots, build.words, lits) else {
                break;
            };
            build.slots += 1;
            build.words += g.words();
            let g = Arc::new(g);
            for (key, bits) in placed {
                groups.insert(key.clone(), (Arc::clone(&g), bits));
            }
            if !full {
                break;
            }
            left = rest;
        }
        // Pair groups (cheap to build: their DFAs are of literal-like
        // parts), up to 256 globs each.
        let pairs: Vec<(&ScanKey, &[(String, PairSecond)])> = keys
            .iter()
            .filter_map(|(k, f)| match f {
                Form::Pairs(p) => Some((k, p.as_slice())),
                _ => None,
            })
            .collect();
        build_pair_groups(*fact, &pairs, &mut build, &mut groups);
        // Parts groups (an Aho-Corasick automaton each, linear to build).
        let parts: Vec<(&ScanKey, &[Glob])> = keys
            .iter()
            .filter_map(|(k, f)| match f {
                Form::Parts(g) => Some((k, g.as_slice())),
                _ => None,
            })
            .collect();
        build_parts_groups(*fact, &parts, &mut build, &mut groups);
        // The first DFA group is small, to learn the DFA bytes these
        // patterns take each; the next ones are as big as the work left
        // allows for all the patterns left (work ≈ bytes per pattern ×
        // group size × patterns: fewer, bigger groups scan faster but cost
        // more to build), and small enough for their DFA to fit.
        let patterns: Vec<(&ScanKey, &str)> = keys
            .iter()
            .filter_map(|(k, f)| match f {
                Form::Pattern(p) => Some((k, p.as_str())),
                _ => None,
            })
            .collect();
        let mut rest: &[(&ScanKey, &str)] = &patterns;
        let mut size = FIRST_GROUP;
        while !rest.is_empty() && build.slots < MAX_GROUPS {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            build_groups(*fact, chunk, &mut build, &mut groups);
            rest = tail;
            let per_pattern = build.per_pattern.max(1);
            let by_work = build.work / per_pattern / rest.len().max(1);
            let by_slots = rest
                .len()
                .div_ceil(MAX_GROUPS.saturating_sub(build.slots).max(1));
            // A group whose DFA would outgrow the largest tried fails, and
            // a failure costs its whole limit: aim at three quarters.
            let by_bytes = GROUP_MAX_BYTES * 3 / 4 / per_pattern;
            size = by_work.max(by_slots).min(by_bytes).clamp(1, GROUP_PATTERNS);
        }
    }
    let mut direct = 0;
    let mut per_fact = [0usize; 64];
    let mut masks = BTreeMap::new();
    for c in conds.iter_mut() {
        rewrite_scans(c, sets, &groups, &mut direct, &mut per_fact, &mut masks);
    }
    // Each group's scan (every group has a reader): what `passes_past`
    // adds up in rule order, as totals.
    let mut counted = 0u64;
    for (group, _) in groups.values() {
        let bit = 1u64 << (group.slot % 64);
        if counted & bit == 0 {
            counted |= bit;
            if let Some(n) = per_fact.get_mut(usize::from(group.fact.0)) {
                *n = n.saturating_add(group_units(group, is_in(sets, group.fact)));
            }
        }
    }
    // The words of every many-literal leaf, as if no answer were kept (an
    // upper bound of what `passes_past` counts).
    let mut words = [0usize; 64];
    for c in conds.iter() {
        each_leaf(c, &mut |leaf| {
            if let CExpr::ScanAny { group, masks, .. } = leaf {
                if let Some(w) = words.get_mut(usize::from(group.fact.0)) {
                    *w = w.saturating_add(masks.len());
                }
            }
        });
    }
    for (n, w) in per_fact.iter_mut().zip(words) {
        *n = n.saturating_add(w.saturating_mul(UNITS) / MASK_WORDS_PER_PASS);
    }
    let most = per_fact.iter().copied().max().unwrap_or(0);
    (!groups.is_empty(), most.div_ceil(UNITS))
}

/// What group building may still use.
struct Build<'b> {
    /// Compiled-regex bytes.
    bytes: &'b mut usize,
    /// Work, in DFA bytes × patterns ([`BUILD_WORK`]).
    work: usize,
    /// Groups made (below [`MAX_GROUPS`]).
    slots: usize,
    /// Memo words given out (below [`crate::scan::WIDE_MEMO_WORDS`]).
    words: usize,
    /// DFA bytes per pattern of the last group made.
    per_pattern: usize,
}

impl Build<'_> {
    /// Charges an attempt to build a group of `n` patterns whose DFAs were
    /// limited to `limit` bytes: its DFA bytes × `n` of work (`limit` × `n`
    /// when it did not fit) and, when built, its bytes, slot and memo
    /// words. Returns the group, ready to share.
    fn charge(
        &mut self,
        built: Option<ScanGroup>,
        limit: usize,
        n: usize,
    ) -> Option<Arc<ScanGroup>> {
        let work = built.as_ref().map_or(limit, ScanGroup::size);
        self.work = self.work.saturating_sub(work.saturating_mul(n));
        let g = built?;
        *self.bytes = self.bytes.saturating_sub(g.size());
        self.slots += 1;
        self.words += g.words();
        Some(Arc::new(g))
    }
}

/// Patterns in a fact's first DFA group.
const FIRST_GROUP: usize = 64;

/// Builds `keys` as one DFA group, or, when that does not fit, each half.
fn build_groups(fact: FactId, keys: &[(&ScanKey, &str)], b: &mut Build<'_>, out: &mut Placed) {
    let n = keys.len();
    // The largest DFA the budgets allow: its bytes, and its work (bytes × n).
    let limit = (*b.bytes).min(GROUP_MAX_BYTES).min(b.work / n.max(1));
    let memo_left = MEMO_BITS.saturating_sub(b.words * 64);
    if keys.is_empty() || b.slots >= MAX_GROUPS || limit < 4096 || memo_left < 64 {
        return;
    }
    if n > memo_left {
        let (x, _) = keys.split_at(memo_left);
        return build_groups(fact, x, b, out);
    }
    let patterns: Vec<&str> = keys.iter().map(|(_, p)| *p).collect();
    let built = ScanGroup::build(fact, b.slots, b.words, &patterns, limit);
    match b.charge(built, limit, n) {
        Some(g) => {
            b.per_pattern = g.size() / n.max(1);
            for (bit, (key, _)) in keys.iter().enumerate() {
                out.insert((*key).clone(), (Arc::clone(&g), Box::new([bit as u16])));
            }
        }
        None => {
            if keys.len() > 1 {
                let (x, y) = keys.split_at(keys.len() / 2);
                build_groups(fact, x, b, out);
                build_groups(fact, y, b, out);
            }
        }
    }
}

/// Builds pair groups for `keys` (each a glob list of `*a*b*` globs), in
/// order, up to [`GROUP_PATTERNS`] globs a group; a group that does not
/// fit is tried as two halves, and a list is left whole to one group.
fn build_pair_groups(
    fact: FactId,
    keys: &[(&ScanKey, &[(String, PairSecond)])],
    b: &mut Build<'_>,
    out: &mut Placed,
) {
    in_groups(keys, GROUP_PATTERNS, b, |chunk, b| {
        build_or_halve(chunk, b, out, &mut |k, b| try_pair_group(fact, k, b))
    });
}

/// Cuts `keys` (each a glob list) into runs of whole lists of at most
/// `max` globs, in order, and builds each with `build` while groups are
/// left; a list longer than `max` is not shared.
fn in_groups<T>(
    keys: &[(&ScanKey, &[T])],
    max: usize,
    b: &mut Build<'_>,
    mut build: impl FnMut(&[(&ScanKey, &[T])], &mut Build<'_>),
) {
    let mut rest = keys;
    while !rest.is_empty() && b.slots < MAX_GROUPS {
        let mut n = 0usize;
        let mut globs = 0usize;
        for (_, p) in rest {
            if globs + p.len() > max {
                break;
            }
            globs += p.len();
            n += 1;
        }
        if n == 0 {
            // A list longer than a group: not shared.
            rest = rest.get(1..).unwrap_or_default();
            continue;
        }
        let (chunk, tail) = rest.split_at(n);
        build(chunk, b);
        rest = tail;
    }
}

/// Tries `keys` as one pair group.
fn try_pair_group(
    fact: FactId,
    keys: &[(&ScanKey, &[(String, PairSecond)])],
    b: &mut Build<'_>,
) -> Attempt {
    let globs: Vec<(&str, PairEnd<'_>)> = keys
        .iter()
        .flat_map(|(_, p)| {
            p.iter().map(|(x, y)| {
                let y = match y {
                    PairSecond::Last(y) => PairEnd::Last(y.as_str()),
                    PairSecond::End(g) => PairEnd::End(g),
                };
                (x.as_str(), y)
            })
        })
        .collect();
    let n = globs.len();
    let limit = (*b.bytes).min(GROUP_MAX_BYTES).min(b.work / n.max(1));
    let memo_left = MEMO_BITS.saturating_sub(b.words * 64);
    if keys.is_empty() || b.slots >= MAX_GROUPS || limit < 4096 || n > memo_left {
        return Attempt::Skipped;
    }
    let built = ScanGroup::pairs(fact, b.slots, b.words, &globs, limit);
    Attempt::from(b.charge(built, limit, n))
}

/// What one attempt to build a shared group from some glob lists gave.
enum Attempt {
    /// Nothing was built, and halves would fare no better (no slot, memo
    /// bits or budget left).
    Skipped,
    /// The group; its bits go to the lists' globs in order.
    Built(Arc<ScanGroup>),
    /// The group did not fit: each half may.
    Refused,
}

impl From<Option<Arc<ScanGroup>>> for Attempt {
    fn from(charged: Option<Arc<ScanGroup>>) -> Attempt {
        charged.map_or(Attempt::Refused, Attempt::Built)
    }
}

/// Builds `keys` (each a glob list) as one group with `attempt`, or, when
/// it is refused, each half; a built group gives each list's globs
/// consecutive bits, in order.
fn build_or_halve<T, F>(
    keys: &[(&ScanKey, &[T])],
    b: &mut Build<'_>,
    out: &mut Placed,
    attempt: &mut F,
) where
    F: FnMut(&[(&ScanKey, &[T])], &mut Build<'_>) -> Attempt,
{
    match attempt(keys, b) {
        Attempt::Skipped => {}
        Attempt::Built(g) => {
            let mut bit = 0u16;
            for (key, p) in keys {
                let bits: Box<[u16]> = (bit..bit + p.len() as u16).collect();
                bit += p.len() as u16;
                out.insert((*key).clone(), (Arc::clone(&g), bits));
            }
        }
        Attempt::Refused => {
            if keys.len() > 1 {
                let (x, y) = keys.split_at(keys.len() / 2);
                build_or_halve(x, b, out, attempt);
                build_or_halve(y, b, out, attempt);
            }
        }
    }
}

/// Builds parts groups for `keys` (each a glob list accepted by
/// [`queued_parts`]), in order, up to [`scan_parts::MAX_GLOBS`] globs a
/// group; a group that is refused (a part with too many suffixes among the
/// parts, too many parts) is tried as two halves, and a list is left whole
/// to one group.
fn build_parts_groups(
    fact: FactId,
    keys: &[(&ScanKey, &[Glob])],
    b: &mut Build<'_>,
    out: &mut Placed,
) {
    in_groups(keys, scan_parts::MAX_GLOBS, b, |chunk, b| {
        build_or_halve(chunk, b, out, &mut |k, b| try_parts_group(fact, k, b))
    });
}

/// Work charged per byte of a parts group's globs when it is refused (its
/// automaton was built: about this many bytes per byte of the parts).
const PARTS_WORK_PER_BYTE: usize = 64;

/// Tries `keys` as one parts group.
fn try_parts_group(fact: FactId, keys: &[(&ScanKey, &[Glob])], b: &mut Build<'_>) -> Attempt {
    let globs: Vec<&Glob> = keys.iter().flat_map(|(_, g)| g.iter()).collect();
    let n = globs.len();
    let bytes: usize = globs.iter().map(|g| g.source.len()).sum();
    let limit = bytes.saturating_mul(PARTS_WORK_PER_BYTE);
    let memo_left = MEMO_BITS.saturating_sub(b.words * 64);
    if keys.is_empty() || b.slots >= MAX_GROUPS || limit > b.work || n > memo_left {
        return Attempt::Skipped;
    }
    let built = ScanGroup::parts(fact, b.slots, b.words, &globs);
    // Linear to build: charged its bytes once, not per glob.
    Attempt::from(b.charge(built, limit, 1))
}

/// What one pass over a fact's value counts in the tallies of
/// [`crate::Limits::max_scan_passes`]: on a set fact, a test that does not
/// search still reads each name, and costs a fraction of a pass.
const UNITS: usize = 64;

/// A search over a set of names costs this many passes over one string
/// of the same bytes (a DFA or glob started per name: one regex 0.33 ms,
/// one 8-pattern DFA group 0.31 ms on the largest set facts JSON allows,
/// 17,345 names in 64 KB, against 0.13 ms on one 64 KB string; release
/// build, load 3.5). A regex that does not search (`^…` of bounded
/// length) costs as much on a set: its DFA is started per name (39
/// `^Worm\.XN\b` regexes on those names: 6–8 ms per evaluation, 17 ns a
/// name and regex).
const SET_PASS_WEIGHT: usize = 3;

/// What a bounded regex with a Unicode `\b` costs on a set fact, in
/// passes: on each non-ASCII name its NFA runs (`^xN!\b` on 11,208
/// non-ASCII names: 0.67 ms a regex, load 6).
const SET_UNICODE_BOUNDARY_PASSES: usize = 6;

/// What a cheap test of each name of a set costs, in [`UNITS`]: `==`, an
/// exact, prefix or suffix glob, a glob like `a*b` (a few compares per
/// name: `virus == "…"` 9 µs, a non-ASCII prefix glob 2–6 µs on 17,345
/// names; a pass is 0.10–0.14 ms), a quarter of a pass.
const NAME_TEST_UNITS: usize = UNITS / 4;

/// What `in [...]` (a sorted list, binary search per name) costs on a set
/// fact, in [`UNITS`] per halving of the list: half a pass (a list of
/// 10,000 strings: 3.4 ms a leaf on 17,345 names, cache misses included,
/// load 6: counted 7 passes; a list of 50: 0.03 ms, counted 3).
const SET_HALVING_UNITS: usize = UNITS / 2;

/// The fact a leaf's own test reads (for the tallies), if it reads one.
fn unit_fact(c: &CExpr) -> Option<FactId> {
    match c {
        CExpr::Globs { id, .. }
        | CExpr::All { id, .. }
        | CExpr::StrEq { id, .. }
        | CExpr::StrSet { id, .. } => Some(*id),
        CExpr::Leaf(kind) => leaf_fact(kind),
        _ => None,
    }
}

/// What a leaf costs per evaluation, in [`UNITS`], when no shared scan
/// answers it ([`crate::Limits::max_scan_passes`]); `on_set`: its fact
/// holds a set of names, tested one by one. On one string, a glob that
/// searches (`*a*`, `a*b*`: [`Glob::passes`]) or a regex that is not
/// anchored at the start with a bounded length reads the whole value; a
/// regex with a Unicode `\b` runs as an NFA on non-ASCII text
/// ([`crate::limits::UNICODE_BOUNDARY_PASSES`]); a test of bounded length
/// costs nothing. On a set, a search costs [`SET_PASS_WEIGHT`] times as
/// much, and every other test reads each name: a regex
/// [`SET_PASS_WEIGHT`] (or [`SET_UNICODE_BOUNDARY_PASSES`]) passes, `in`
/// [`SET_HALVING_UNITS`] per halving of its list, and anything else
/// [`NAME_TEST_UNITS`]. A glob list is matched glob by glob on non-ASCII
/// text (its merged regex reads ASCII only), so it costs the sum of its
/// globs.
fn leaf_units(c: &CExpr, on_set: bool) -> usize {
    match c {
        CExpr::Globs { m, .. } => glob_units(&m.globs, on_set),
        CExpr::All { inner, .. } => leaf_units(inner, on_set).max(name_test(on_set)),
        CExpr::StrEq { .. } => name_test(on_set),
        CExpr::StrSet { set, .. } => list_units(set.len(), on_set),
        CExpr::Leaf(kind) => kind_units(kind, on_set),
        _ => 0,
    }
}

/// [`leaf_units`] of a checked leaf kept as it is.
fn kind_units(kind: &ExprKind, on_set: bool) -> usize {
    match kind {
        ExprKind::Regex(_, re) => regex_units(re, on_set),
        ExprKind::Globs(_, globs) => glob_units(globs, on_set),
        ExprKind::All(inner) => kind_units(inner, on_set).max(name_test(on_set)),
        // Tested element by element.
        ExprKind::InSet(_, lits) => name_test(on_set).saturating_mul(lits.len().max(1)),
        ExprKind::Compare(..) => name_test(on_set),
        _ => 0,
    }
}

fn name_test(on_set: bool) -> usize {
    if on_set {
        NAME_TEST_UNITS
    } else {
        0
    }
}

/// [`leaf_units`] of `in` a sorted list of `n` strings.
fn list_units(n: usize, on_set: bool) -> usize {
    if on_set {
        SET_HALVING_UNITS.saturating_mul((usize::BITS - n.leading_zeros()).max(1) as usize)
    } else {
        0
    }
}

/// [`leaf_units`] of a glob list: its searches ([`Glob::passes`] each), or
/// when none searches, a [`NAME_TEST_UNITS`] per glob on a set (a test of
/// bounded length next to a search of the same name is within the
/// search's set weight).
fn glob_units(globs: &[Glob], on_set: bool) -> usize {
    let w = if on_set { SET_PASS_WEIGHT } else { 1 };
    let search = globs
        .iter()
        .map(|g| g.passes().saturating_mul(UNITS * w))
        .fold(0, usize::saturating_add);
    if search > 0 {
        search
    } else {
        name_test(on_set).saturating_mul(globs.len())
    }
}

/// [`leaf_units`] of a regex.
fn regex_units(re: &Re, on_set: bool) -> usize {
    let passes = regex_passes(re);
    let passes = match (passes, on_set) {
        (0, false) => 0,
        (0, true) if re.unicode_word_boundary() => SET_UNICODE_BOUNDARY_PASSES,
        (0, true) => SET_PASS_WEIGHT,
        (p, false) => p,
        (p, true) => p.saturating_mul(SET_PASS_WEIGHT),
    };
    passes.saturating_mul(UNITS)
}

/// What one scan of `group` costs, in [`UNITS`] ([`ScanGroup::passes`];
/// on a set fact a search costs [`SET_PASS_WEIGHT`] times more).
fn group_units(group: &ScanGroup, on_set: bool) -> usize {
    let w = if on_set { SET_PASS_WEIGHT } else { 1 };
    group.passes().saturating_mul(w * UNITS)
}

/// The passes over its fact's value a regex reads on one string: 0 when
/// anchored at the start with a bounded length.
fn regex_passes(re: &Re) -> usize {
    // Anchored at the start and of bounded length: reads at most that
    // many bytes of a value (or of each name of a set).
    let bounded = re.hir().is_some_and(|h| {
        h.properties()
            .look_set_prefix()
            .contains(regex_syntax::hir::Look::Start)
            && h.properties().maximum_len().is_some()
    });
    if bounded {
        0
    } else if re.unicode_word_boundary() {
        crate::limits::UNICODE_BOUNDARY_PASSES
    } else {
        1
    }
}

/// The first leaf past the budget of scan passes of its fact.
#[derive(Debug, Clone)]
pub(crate) struct Past {
    /// Its rule (index).
    pub(crate) rule: usize,
    /// The leaf's span (or its rule condition's, should the compiled form
    /// not follow the checked one there).
    pub(crate) span: crate::diagnostics::Span,
    pub(crate) fact: FactId,
    /// The fact's passes with this leaf.
    pub(crate) passes: usize,
}

/// What a fact's passes add up to so far, in rule order.
struct Tally {
    /// Per fact, the passes counted, in [`UNITS`].
    per_fact: [usize; 64],
    /// The groups already counted (bit: slot).
    groups: u64,
    /// The facts that hold sets of names (bit: id).
    sets: u64,
    limit: usize,
    rule: usize,
    /// Per fact, the words many-literal leaves test ([`CExpr::ScanAny`]):
    /// a leaf's words count when its list is not the last one its line of
    /// the evaluation's [`crate::scan::MaskCache`] holds, in rule order.
    mask_words: [usize; 64],
    /// Per line of the mask cache, the number of the last list.
    mask_lines: [u32; MASK_CACHE_LINES],
}

/// Memo words a many-literal leaf may test for the cost of one pass over a
/// 64 KB value: a word test (a load, an `and`, a branch) costs about what a
/// DFA step over one byte costs.
const MASK_WORDS_PER_PASS: usize = 65_536;

/// Adds up, in rule order, the passes over its fact's value that each
/// leaf costs per evaluation, per fact: the shared scan it reads (counted
/// once, at its first reader: [`ScanGroup::passes`]) or, when no scan
/// answers it, its own ([`leaf_passes`]); on a set fact every name is
/// searched, so a search costs [`SET_PASS_WEIGHT`] times more. Returns the first leaf that takes its fact past
/// `limit`. `whens`: the checked conditions the compiled `conds` were
/// lowered from (their spans); `sets`: the facts holding sets (bit: id).
pub(crate) fn passes_past(
    conds: &[CExpr],
    whens: &[Option<&Expr>],
    sets: u64,
    limit: usize,
) -> Option<Past> {
    let mut t = Tally {
        per_fact: [0; 64],
        groups: 0,
        sets,
        limit,
        rule: 0,
        mask_words: [0; 64],
        mask_lines: [0; MASK_CACHE_LINES],
    };
    for (rule, (c, e)) in conds.iter().zip(whens).enumerate() {
        t.rule = rule;
        if let Some(e) = e {
            if let Some(p) = past_in(c, e, &mut t) {
                return Some(p);
            }
        }
    }
    None
}

fn past_in(c: &CExpr, e: &Expr, t: &mut Tally) -> Option<Past> {
    match (c, &e.kind) {
        (CExpr::Not(ci), ExprKind::Not(ei)) => past_in(ci, ei, t),
        (CExpr::And(cs), ExprKind::And(es)) | (CExpr::Or(cs), ExprKind::Or(es))
            if cs.len() == es.len() =>
        {
            cs.iter().zip(es).find_map(|(ci, ei)| past_in(ci, ei, t))
        }
        (CExpr::Not(_) | CExpr::And(_) | CExpr::Or(_), _) => {
            // Not the checked form's shape: the leaves, at this span.
            let mut found = None;
            each_leaf(c, &mut |leaf| {
                if found.is_none() {
                    found = add_leaf(leaf, e, t);
                }
            });
            found
        }
        (leaf, _) => add_leaf(leaf, e, t),
    }
}

fn each_leaf(c: &CExpr, f: &mut impl FnMut(&CExpr)) {
    match c {
        CExpr::Not(inner) => each_leaf(inner, f),
        CExpr::And(parts) | CExpr::Or(parts) => parts.iter().for_each(|p| each_leaf(p, f)),
        leaf => f(leaf),
    }
}

fn add_leaf(leaf: &CExpr, e: &Expr, t: &mut Tally) -> Option<Past> {
    let (fact, units, words) = match leaf {
        CExpr::Scan { group, .. } => (group.fact, first_reader(group, t), 0),
        CExpr::ScanAny {
            group, masks, list, ..
        } => {
            let words = match t.mask_lines.get_mut(mask_line(*list)) {
                Some(last) if *last == *list => 0,
                Some(last) => {
                    *last = *list;
                    masks.len()
                }
                None => masks.len(),
            };
            (group.fact, first_reader(group, t), words)
        }
        leaf => {
            let fact = unit_fact(leaf)?;
            (fact, leaf_units(leaf, is_in(t.sets, fact)), 0)
        }
    };
    if units == 0 && words == 0 {
        return None;
    }
    let f = usize::from(fact.0);
    let w = t.mask_words.get_mut(f)?;
    *w = w.saturating_add(words);
    let words_units = w.saturating_mul(UNITS) / MASK_WORDS_PER_PASS;
    let n = t.per_fact.get_mut(f)?;
    *n = n.saturating_add(units);
    let all = n.saturating_add(words_units);
    (all > t.limit.saturating_mul(UNITS)).then_some(Past {
        rule: t.rule,
        span: e.span,
        fact,
        passes: all.div_ceil(UNITS),
    })
}

/// What `group`'s scan costs, in [`UNITS`], when this leaf is its first
/// reader in rule order (the scan is paid once); 0 after.
fn first_reader(group: &ScanGroup, t: &mut Tally) -> usize {
    let bit = 1u64 << (group.slot % 64);
    if t.groups & bit != 0 {
        return 0;
    }
    t.groups |= bit;
    group_units(group, is_in(t.sets, group.fact))
}
