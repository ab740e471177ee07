//! Gates: value indexes over string and IP facts.
//!
//! Many rules carry a *required* conjunct that tests one string or IP fact
//! positively: `recipient == "a@b"`, `sender in [...]`, `client_ip in NETS`,
//! `virus matches "Trojan.Gen*"` (or an `or` of such tests on one fact). Such
//! a rule can only be true when that fact's value passes the test. A gate
//! indexes these rules by value, so evaluation looks up the value once and
//! gets the few rules that may apply, instead of trying each of them:
//! - exact strings: a sorted table searched by binary search. No hashing:
//!   the strings come from policies that strangers may write, and a table
//!   of sorted keys costs O(log n) comparisons per lookup whatever they are
//!   (an unseeded hash can be flooded with colliding keys; a seeded one
//!   would need randomness or an embedder's key, and this crate is pure and
//!   deterministic). The search runs on each key's first 8 bytes as one
//!   number ([`key8`]), so it compares integers, not strings; only the keys
//!   sharing the value's first 8 bytes are compared whole (by a second binary
//!   search: keys sharing a long prefix cost what the string search cost);
//! - networks: the address space cut into elementary segments, each with
//!   the rules whose networks cover it (binary search);
//! - globs: by their literal prefix (a trie walked with the text's folded
//!   characters) or literal suffix (a trie walked from the end). A glob
//!   without either (`"*"`, `"*x*"`) does not make a gate.
//!
//! The index only ever proposes a superset of the rules whose gate passes;
//! each proposed rule's whole condition is still evaluated, so gates change
//! what is tried, never what is decided.

use crate::check::model::{Expr, ExprKind, Lit, Op, Val};
use crate::facts::{FactId, FactTable, FactType};
use crate::glob::{fold, Glob};
use ipnet::IpNet;
use std::net::IpAddr;

/// A range of rule indices in the compiled policy's shared list pool.
pub(crate) type Range = (u32, u32);

/// Appends `rules` to the pool and returns their range.
fn store(pool: &mut Vec<u32>, rules: &[u32]) -> Range {
    let start = pool.len() as u32;
    pool.extend_from_slice(rules);
    (start, pool.len() as u32)
}

/// One atom of a gate: a value test that a required conjunct passes only
/// when one of its atoms does.
#[derive(Debug)]
enum Atom<'m> {
    Exact(&'m str),
    Net(&'m IpNet),
    Glob(&'m Glob),
}

/// How selective a gate is (lower is better).
fn rank(atoms: &[Atom<'_>]) -> u8 {
    atoms
        .iter()
        .map(|a| match a {
            Atom::Exact(_) => 0,
            Atom::Net(_) => 1,
            Atom::Glob(_) => 2,
        })
        .max()
        .unwrap_or(0)
}

/// The literal prefix or suffix of a glob (as written; the trie folds it),
/// whichever has more characters, and whether it is a suffix; `None` when
/// both are empty. Borrowed: no copy per glob.
fn glob_anchor(g: &Glob) -> Option<(&str, bool)> {
    let s = g.source.as_str();
    let wild = |c: char| matches!(c, '*' | '?');
    // `*` and `?` are one byte each, so `i + 1` is a character boundary.
    let prefix = s.get(..s.find(wild).unwrap_or(s.len())).unwrap_or("");
    let suffix = s.get(s.rfind(wild).map_or(0, |i| i + 1)..).unwrap_or("");
    if prefix.is_empty() && suffix.is_empty() {
        None
    } else if prefix.chars().count() >= suffix.chars().count() {
        // (`fold` maps a character to one character: these are the counts
        // of the folded keys.)
        Some((prefix, false))
    } else {
        Some((suffix, true))
    }
}

/// The atoms of a conjunct that tests one string/ip fact positively.
fn atoms<'m>(
    kind: &'m ExprKind,
    table: &FactTable,
    out: &mut Vec<Atom<'m>>,
    cap: usize,
) -> Option<FactId> {
    if out.len() > cap {
        return None;
    }
    let fact_ok = |id: FactId| {
        matches!(
            table.facts.get(id.index()).map(|f| &f.ty),
            Some(FactType::String | FactType::StringSet | FactType::Ip)
        )
    };
    match kind {
        ExprKind::Or(parts) => {
            let mut id = None;
            for p in parts {
                let pid = atoms(&p.kind, table, out, cap)?;
                if id.is_some_and(|i| i != pid) {
                    return None;
                }
                id = Some(pid);
            }
            id
        }
        ExprKind::Compare(id, Op::Eq, Lit::Str(s)) if fact_ok(*id) => {
            out.push(Atom::Exact(s));
            Some(*id)
        }
        ExprKind::InSet(id, lits) if fact_ok(*id) => {
            if out.len() + lits.len() > cap {
                return None;
            }
            for l in lits.iter() {
                match l {
                    Lit::Str(s) => out.push(Atom::Exact(s)),
                    _ => return None,
                }
            }
            Some(*id)
        }
        ExprKind::InNets(id, nets) if fact_ok(*id) => {
            if out.len() + nets.len() > cap {
                return None;
            }
            out.extend(nets.iter().map(Atom::Net));
            Some(*id)
        }
        // Every name passes, and there is one: so some name passes.
        ExprKind::All(inner) => atoms(inner, table, out, cap),
        ExprKind::Globs(id, globs) if fact_ok(*id) => {
            if out.len() + globs.len() > cap {
                return None;
            }
            for g in globs.iter() {
                glob_anchor(g)?;
                out.push(Atom::Glob(g));
            }
            Some(*id)
        }
        _ => None,
    }
}

/// The best gate of a rule's condition: a required conjunct on a string/ip fact.
fn rule_gate<'m>(e: &'m Expr, table: &FactTable, cap: usize) -> Option<(FactId, Vec<Atom<'m>>)> {
    let conjuncts: &[Expr] = match &e.kind {
        ExprKind::And(parts) => parts,
        _ => std::slice::from_ref(e),
    };
    let mut best: Option<(FactId, Vec<Atom<'m>>)> = None;
    for c in conjuncts {
        let mut out = Vec::new();
        if let Some(id) = atoms(&c.kind, table, &mut out, cap) {
            let better = match &best {
                None => true,
                Some((_, b)) => {
                    rank(&out) < rank(b) || (rank(&out) == rank(b) && out.len() < b.len())
                }
            };
            if better {
                best = Some((id, out));
            }
        }
    }
    best
}

/// A trie over folded characters; each node lists the rules whose anchor
/// ends there. Built once from all its keys, sorted (so the build costs a
/// sort, whatever order the keys come in, with no map of edges). Each
/// node's children are a sorted slice (a flat layout with ranges into one
/// array cost the evaluation's walk ~2.5 % more instructions).
#[derive(Debug, Clone, Default)]
struct FrozenTrie {
    kids: Kids,
    /// Per node, its rules (a range of the pool; empty for most nodes).
    rules: Box<[Range]>,
}

/// Per node, its children: `(folded char, node)`, sorted.
type Kids = Box<[Box<[(char, u32)]>]>;

impl FrozenTrie {
    /// The trie of `keys` (anchor, rule), read backwards when `reversed`
    /// (suffixes: the trie is walked from the text's end). Each node's
    /// rules go to `pool`, ascending.
    fn build(keys: &[(&str, u32)], reversed: bool, pool: &mut Vec<u32>) -> FrozenTrie {
        if keys.is_empty() {
            return FrozenTrie::default();
        }
        // Every key's folded characters, in one buffer.
        let mut chars: Vec<char> = Vec::new();
        let mut spans: Vec<(u32, u32, u32)> = Vec::with_capacity(keys.len());
        for &(k, rule) in keys {
            let start = chars.len() as u32;
            if reversed {
                chars.extend(k.chars().rev().map(fold));
            } else {
                chars.extend(k.chars().map(fold));
            }
            spans.push((start, chars.len() as u32, rule));
        }
        let key = |&(s, e, _): &(u32, u32, u32)| chars.get(s as usize..e as usize).unwrap_or(&[]);
        spans.sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.2.cmp(&b.2)));
        // Nodes are made in preorder; a node's children in character order.
        let mut edges: Vec<(u32, char, u32)> = Vec::new();
        let mut rules: Vec<Range> = vec![(0, 0)];
        let mut path: Vec<u32> = vec![0];
        let mut prev: &[char] = &[];
        let mut i = 0;
        while let Some(first) = spans.get(i) {
            let k = key(first);
            let common = k.iter().zip(prev).take_while(|(a, b)| a == b).count();
            path.truncate(common + 1);
            for &c in k.get(common..).unwrap_or(&[]) {
                let node = rules.len() as u32;
                rules.push((0, 0));
                edges.push((path.last().copied().unwrap_or(0), c, node));
                path.push(node);
            }
            // The rules of this key: the run of equal keys, by rule.
            let start = pool.len() as u32;
            while let Some(&(s, e, r)) = spans.get(i) {
                if key(&(s, e, r)) != k {
                    break;
                }
                if pool.len() as u32 == start || pool.last() != Some(&r) {
                    pool.push(r);
                }
                i += 1;
            }
            if let Some(slot) = path.last().and_then(|&n| rules.get_mut(n as usize)) {
                *slot = (start, pool.len() as u32);
            }
            prev = k;
        }
        // Children grouped by parent (a stable counting sort: each parent's
        // children were made in character order).
        let mut count = vec![0usize; rules.len()];
        for &(p, _, _) in &edges {
            if let Some(n) = count.get_mut(p as usize) {
                *n += 1;
            }
        }
        let mut kids: Vec<Vec<(char, u32)>> =
            count.iter().map(|&n| Vec::with_capacity(n)).collect();
        for &(p, c, n) in &edges {
            if let Some(k) = kids.get_mut(p as usize) {
                k.push((c, n));
            }
        }
        FrozenTrie {
            kids: kids.into_iter().map(Vec::into_boxed_slice).collect(),
            rules: rules.into(),
        }
    }

    /// Pushes the rule lists of every node on the path spelled by `chars`;
    /// `false` when `push` refused one (out of room).
    #[inline]
    fn walk(
        &self,
        chars: impl Iterator<Item = char>,
        push: &mut impl FnMut(Range) -> bool,
    ) -> bool {
        if self.kids.is_empty() {
            return true;
        }
        let mut node = 0usize;
        for c in chars {
            let c = fold(c);
            let Some(kids) = self.kids.get(node) else {
                return true;
            };
            match kids.binary_search_by_key(&c, |&(k, _)| k) {
                Ok(i) => node = kids.get(i).map_or(0, |&(_, n)| n as usize),
                Err(_) => return true,
            }
            if let Some(&r) = self.rules.get(node) {
                if r.0 < r.1 && !push(r) {
                    return false;
                }
            }
        }
        true
    }

    fn heap_bytes(&self) -> usize {
        self.kids.iter().map(|k| 16 + k.len() * 8).sum::<usize>() + self.rules.len() * 8
    }
}

/// Address segments: segment `i` is `starts[i] ..= starts[i + 1] - 1`.
#[derive(Debug, Clone)]
struct Segments<T> {
    starts: Box<[T]>,
    lists: Box<[Range]>,
}

impl<T> Default for Segments<T> {
    fn default() -> Self {
        Segments {
            starts: Box::new([]),
            lists: Box::new([]),
        }
    }
}

impl<T: Ord + Copy> Segments<T> {
    /// Builds from `(start, end, rule)` with inclusive ends; `None` when the
    /// postings would exceed `budget`.
    fn build(
        items: &mut Vec<(T, T, u32)>,
        next: impl Fn(T) -> Option<T>,
        budget: usize,
        pool: &mut Vec<u32>,
    ) -> Option<Self> {
        // The same network twice in one rule is one posting.
        items.sort_unstable_by_key(|&(s, e, r)| (r, s, e));
        items.dedup();
        let mut starts: Vec<T> = Vec::with_capacity(items.len() * 2);
        for &(s, e, _) in items.iter() {
            starts.push(s);
            if let Some(n) = next(e) {
                starts.push(n);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        // Every segment visited counts, whether or not it gains a rule (a
        // network repeated 10,000 times would otherwise walk its segments
        // 10,000 times for free).
        let mut steps = 0usize;
        for &(s, e, r) in items.iter() {
            let mut i = starts.partition_point(|&x| x < s);
            while let (Some(&x), Some(l)) = (starts.get(i), lists.get_mut(i)) {
                if x > e {
                    break;
                }
                if l.last() != Some(&r) {
                    l.push(r);
                }
                steps += 1;
                if steps > budget {
                    return None;
                }
                i += 1;
            }
        }
        for l in &mut lists {
            l.sort_unstable();
            l.dedup();
        }
        Some(Segments {
            starts: starts.into(),
            lists: lists.iter().map(|l| store(pool, l)).collect(),
        })
    }

    #[inline]
    fn lookup(&self, x: T) -> Range {
        let i = self.starts.partition_point(|&s| s <= x);
        if i == 0 {
            return (0, 0);
        }
        self.lists.get(i - 1).copied().unwrap_or((0, 0))
    }

    fn heap_bytes(&self) -> usize {
        self.starts.len() * std::mem::size_of::<T>() + self.lists.len() * 8
    }
}

/// A string's first 8 bytes as a big-endian number, zero-padded. Strings in
/// byte order have non-decreasing keys: two strings that differ within
/// their first 8 bytes order their keys as they order themselves, and ones
/// that do not (or differ only by trailing zero bytes there) share a key.
#[inline]
fn key8(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    if let (Some(dst), Some(src)) = (a.get_mut(..n), b.get(..n)) {
        dst.copy_from_slice(src);
    }
    u64::from_be_bytes(a)
}

/// The rules of exact string `s` in a table sorted by string, with
/// `keys[i] == key8(table[i].0)`: the keys equal to `s`'s (usually none or
/// one, found by integer comparisons), then among those the string itself.
#[inline]
fn find_exact<T: Copy>(keys: &[u64], table: &[(Box<str>, T)], s: &str) -> Option<T> {
    let k = key8(s);
    let lo = keys.partition_point(|&x| x < k);
    let n = match (keys.get(lo), keys.get(lo + 1)) {
        (Some(&a), Some(&b)) if a == k && b == k => {
            keys.get(lo..).map_or(0, |r| r.partition_point(|&x| x == k))
        }
        (Some(&a), _) => usize::from(a == k),
        (None, _) => 0,
    };
    let run = table.get(lo..lo + n)?;
    let i = run.binary_search_by(|(x, _)| (**x).cmp(s)).ok()?;
    run.get(i).map(|&(_, l)| l)
}

/// The gate of one fact.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) id: FactId,
    /// Every rule gated here, ascending: the fallback when a lookup
    /// yields more lists than the evaluator has room for.
    pub(crate) all: Range,
    /// Exact strings, sorted, with their rules.
    exact: Box<[(Box<str>, Range)]>,
    /// [`key8`] of each of `exact`'s strings (ascending too: see [`key8`]).
    exact_key8: Box<[u64]>,
    prefix: FrozenTrie,
    suffix: FrozenTrie,
    v4: Segments<u32>,
    v6: Segments<u128>,
}

impl Gate {
    /// Pushes the lists of rules whose gate may pass for `v`; `false` if
    /// `push` ran out of room (the caller then uses [`Gate::all`]).
    #[inline]
    pub(crate) fn lookup(&self, v: Val<'_>, push: &mut impl FnMut(Range) -> bool) -> bool {
        match v {
            Val::Str(s) => self.lookup_str(s, push),
            // A set: a rule's gate may pass through any of its names.
            Val::Set(names) => names.iter().all(|s| self.lookup_str(s, push)),
            Val::Ip(IpAddr::V4(a)) => {
                let l = self.v4.lookup(u32::from(a));
                l.0 >= l.1 || push(l)
            }
            Val::Ip(IpAddr::V6(a)) => {
                let l = self.v6.lookup(u128::from(a));
                l.0 >= l.1 || push(l)
            }
            _ => true,
        }
    }

    #[inline]
    fn lookup_str(&self, s: &str, push: &mut impl FnMut(Range) -> bool) -> bool {
        if let Some(l) = self.exact_rules(s) {
            if !push(l) {
                return false;
            }
        }
        if s.is_ascii() {
            // ASCII bytes are characters: no UTF-8 decoding.
            let b = s.as_bytes();
            self.prefix.walk(b.iter().map(|&c| char::from(c)), push)
                && self
                    .suffix
                    .walk(b.iter().rev().map(|&c| char::from(c)), push)
        } else {
            self.prefix.walk(s.chars(), push) && self.suffix.walk(s.chars().rev(), push)
        }
    }

    #[inline]
    fn exact_rules(&self, s: &str) -> Option<Range> {
        // Most gates of glob or network tests have no exact strings.
        if self.exact.is_empty() {
            return None;
        }
        find_exact(&self.exact_key8, &self.exact, s)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        8 + self.exact.iter().map(|(k, _)| 32 + k.len()).sum::<usize>()
            + self.prefix.heap_bytes()
            + self.suffix.heap_bytes()
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
    }
}

/// At most this many facts get a gate.
pub(crate) const MAX_GATES: usize = 6;

/// A rule and its gate's atoms.
type GatedRule<'m> = (u32, Vec<Atom<'m>>);

/// Builds the gates; returns them and, per rule, whether it is gated.
/// Posting lists go to `pool`.
pub(crate) fn build(
    rules: &[Option<&Expr>],
    table: &FactTable,
    pool: &mut Vec<u32>,
) -> (Vec<Gate>, Vec<bool>) {
    let mut per_fact: Vec<(FactId, Vec<GatedRule<'_>>)> = Vec::new();
    // Postings are rules × atoms: a 10,000-name list used by 3,000 rules
    // would be 30 million. Past this budget rules stay ungated (their
    // compiled condition, shared with the list's other uses, still runs).
    let mut atom_budget = 64 * rules.len() + 65_536;
    for (i, e) in rules.iter().enumerate() {
        let Some((id, atoms)) = e.and_then(|e| rule_gate(e, table, atom_budget)) else {
            continue;
        };
        if atoms.len() > atom_budget {
            continue;
        }
        atom_budget -= atoms.len();
        match per_fact.iter_mut().find(|(f, _)| *f == id) {
            Some((_, v)) => v.push((i as u32, atoms)),
            None => per_fact.push((id, vec![(i as u32, atoms)])),
        }
    }
    // The facts that gate the most rules first.
    per_fact.sort_by_key(|(id, v)| (std::cmp::Reverse(v.len()), *id));
    per_fact.truncate(MAX_GATES);
    let mut gated = vec![false; rules.len()];
    let mut gates = Vec::new();
    for (id, list) in per_fact {
        // Sorted tables, not maps: ordered, no hash to flood, and one
        // allocation each rather than one per key.
        let mut exact: Vec<(&str, u32)> = Vec::new();
        let mut prefix: Vec<(&str, u32)> = Vec::new();
        let mut suffix: Vec<(&str, u32)> = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (r, atoms) in &list {
            for a in atoms {
                match a {
                    Atom::Exact(s) => exact.push((s, *r)),
                    Atom::Net(IpNet::V4(n)) => {
                        v4.push((u32::from(n.network()), u32::from(n.broadcast()), *r));
                    }
                    Atom::Net(IpNet::V6(n)) => {
                        v6.push((u128::from(n.network()), u128::from(n.broadcast()), *r));
                    }
                    Atom::Glob(g) => match glob_anchor(g) {
                        Some((key, true)) => suffix.push((key, *r)),
                        Some((key, false)) => prefix.push((key, *r)),
                        None => {}
                    },
                }
            }
        }
        let budget = 16 * list.len() + 1024;
        let mark = pool.len();
        let (Some(v4), Some(v6)) = (
            Segments::build(&mut v4, |x: u32| x.checked_add(1), budget, pool),
            Segments::build(&mut v6, |x: u128| x.checked_add(1), budget, pool),
        ) else {
            // Networks overlap too much to index: leave these rules ungated.
            pool.truncate(mark);
            continue;
        };
        for (r, _) in &list {
            if let Some(g) = gated.get_mut(*r as usize) {
                *g = true;
            }
        }
        let all: Vec<u32> = list.iter().map(|(r, _)| *r).collect();
        let all = store(pool, &all);
        // By string (byte order, which is also `key8` order), each string's
        // rules ascending and once.
        exact.sort_unstable();
        exact.dedup();
        let mut table: Vec<(Box<str>, Range)> = Vec::new();
        let mut at = 0;
        while let Some(&(s, _)) = exact.get(at) {
            let start = pool.len() as u32;
            while let Some(&(t, r)) = exact.get(at) {
                if t != s {
                    break;
                }
                pool.push(r);
                at += 1;
            }
            table.push((Box::from(s), (start, pool.len() as u32)));
        }
        let exact_key8 = table.iter().map(|(k, _)| key8(k)).collect();
        gates.push(Gate {
            id,
            all,
            exact: table.into(),
            exact_key8,
            prefix: FrozenTrie::build(&prefix, false, pool),
            suffix: FrozenTrie::build(&suffix, true, pool),
            v4,
            v6,
        });
    }
    (gates, gated)
}

#[cfg(test)]
mod tests {
    use super::{find_exact, key8};

    /// A table as `build` makes it: sorted by string, with its keys.
    fn table(words: &[&str]) -> (Vec<u64>, Vec<(Box<str>, usize)>) {
        let mut sorted: Vec<&str> = words.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let keys = sorted.iter().map(|w| key8(w)).collect();
        let rows = sorted
            .iter()
            .map(|w| {
                (
                    Box::from(*w),
                    words.iter().position(|x| x == w).unwrap_or(0),
                )
            })
            .collect();
        (keys, rows)
    }

    #[test]
    fn keys_follow_string_order_and_lookups_find_exactly_the_strings() {
        // Short and long keys, keys sharing their first 8 bytes (many of
        // them, as a stranger could write), trailing zero bytes, non-ASCII.
        let mut words: Vec<String> = vec![
            "".into(),
            "a".into(),
            "ab".into(),
            "ab\0".into(),
            "ab\0c".into(),
            "abcdefgh".into(),
            "abcdefg".into(),
            "abcdefghi".into(),
            "user1@example.org".into(),
            "user12@example.org".into(),
            "é@example.org".into(),
            "\u{10FFFF}".into(),
        ];
        for i in 0..300 {
            words.push(format!("samepfx-{i:04}@example.org"));
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let (keys, rows) = table(&refs);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "keys ascend");
        for (i, w) in refs.iter().enumerate() {
            assert_eq!(find_exact(&keys, &rows, w), Some(i), "{w:?}");
        }
        for missing in [
            "ab\0\0",
            "abcdefgh\0",
            "samepfx-",
            "samepfx-0300@example.org",
            "samepfx-0150@example.or",
            "user1@example.orgg",
            "b",
            "\u{FFFF}",
        ] {
            assert_eq!(find_exact(&keys, &rows, missing), None, "{missing:?}");
        }
        let (keys, rows) = table(&[]);
        assert_eq!(find_exact(&keys, &rows, "a"), None);
    }
}
