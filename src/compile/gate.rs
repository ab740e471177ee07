//! Gates: value indexes over string and IP facts.
//!
//! Many rules carry a *required* conjunct that tests one string or IP fact
//! positively: `recipient == "a@b"`, `sender in [...]`, `client_ip in NETS`,
//! `virus matches "Trojan.Gen*"` (or an `or` of such tests on one fact). Such
//! a rule can only be true when that fact's value passes the test. A gate
//! indexes these rules by value, so evaluation looks up the value once and
//! gets the few rules that may apply, instead of trying each of them:
//! - exact strings: a hash map from the string to its rules;
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
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

/// An Fx-style hash (rotate, xor, multiply per 8 bytes): fast for the short
/// strings facts hold; keys are policy literals, so hash flooding is not a concern.
#[derive(Default)]
pub(crate) struct Fnv(u64);

const SEED: u64 = 0x517c_c1b7_2722_0a95;

impl Fnv {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for Fnv {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (d, b) in w.iter_mut().zip(rest) {
                *d = *b;
            }
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// A range of rule indices in the compiled policy's shared list pool.
pub(crate) type Range = (u32, u32);

/// Appends `rules` to the pool and returns their range.
fn store(pool: &mut Vec<u32>, rules: &[u32]) -> Range {
    let start = pool.len() as u32;
    pool.extend_from_slice(rules);
    (start, pool.len() as u32)
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

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

/// The literal prefix or suffix of a glob (folded), whichever is longer,
/// and whether it is a suffix; `None` when both are empty.
fn glob_anchor(g: &Glob) -> Option<(Vec<char>, bool)> {
    let chars: Vec<char> = g.source.chars().collect();
    let prefix: Vec<char> = chars
        .iter()
        .take_while(|c| !matches!(c, '*' | '?'))
        .map(|c| fold(*c))
        .collect();
    let mut suffix: Vec<char> = chars
        .iter()
        .rev()
        .take_while(|c| !matches!(c, '*' | '?'))
        .map(|c| fold(*c))
        .collect();
    suffix.reverse();
    if prefix.is_empty() && suffix.is_empty() {
        None
    } else if prefix.len() >= suffix.len() {
        Some((prefix, false))
    } else {
        Some((suffix, true))
    }
}

/// The atoms of a conjunct that tests one string/ip fact positively.
fn atoms<'m>(kind: &'m ExprKind, table: &FactTable, out: &mut Vec<Atom<'m>>) -> Option<FactId> {
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
                let pid = atoms(&p.kind, table, out)?;
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
            for l in lits.iter() {
                match l {
                    Lit::Str(s) => out.push(Atom::Exact(s)),
                    _ => return None,
                }
            }
            Some(*id)
        }
        ExprKind::InNets(id, nets) if fact_ok(*id) => {
            out.extend(nets.iter().map(Atom::Net));
            Some(*id)
        }
        // Every name passes, and there is one: so some name passes.
        ExprKind::All(inner) => atoms(inner, table, out),
        ExprKind::Globs(id, globs) if fact_ok(*id) => {
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
fn rule_gate<'m>(e: &'m Expr, table: &FactTable) -> Option<(FactId, Vec<Atom<'m>>)> {
    let conjuncts: &[Expr] = match &e.kind {
        ExprKind::And(parts) => parts,
        _ => std::slice::from_ref(e),
    };
    let mut best: Option<(FactId, Vec<Atom<'m>>)> = None;
    for c in conjuncts {
        let mut out = Vec::new();
        if let Some(id) = atoms(&c.kind, table, &mut out) {
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

/// A trie over folded characters; each node lists the rules whose anchor ends there.
#[derive(Debug, Clone, Default)]
struct Trie {
    /// Node 0 is the root. Per node: sorted children and rules.
    kids: Vec<Vec<(char, u32)>>,
    rules: Vec<Vec<u32>>,
}

impl Trie {
    fn insert(&mut self, key: &[char], rule: u32) {
        if self.kids.is_empty() {
            self.kids.push(Vec::new());
            self.rules.push(Vec::new());
        }
        let mut node = 0usize;
        for &c in key {
            let next = match self
                .kids
                .get(node)
                .map(|k| k.binary_search_by_key(&c, |&(k, _)| k))
            {
                Some(Ok(i)) => self
                    .kids
                    .get(node)
                    .and_then(|k| k.get(i))
                    .map(|&(_, n)| n as usize),
                Some(Err(i)) => {
                    let n = self.kids.len();
                    self.kids.push(Vec::new());
                    self.rules.push(Vec::new());
                    if let Some(k) = self.kids.get_mut(node) {
                        k.insert(i, (c, n as u32));
                    }
                    Some(n)
                }
                None => None,
            };
            match next {
                Some(n) => node = n,
                None => return,
            }
        }
        if let Some(r) = self.rules.get_mut(node) {
            if r.last() != Some(&rule) {
                r.push(rule);
            }
        }
    }

    fn freeze(self, pool: &mut Vec<u32>) -> FrozenTrie {
        FrozenTrie {
            kids: self.kids.into_iter().map(Vec::into_boxed_slice).collect(),
            rules: self.rules.iter().map(|r| store(pool, r)).collect(),
        }
    }
}

/// Per node, its children: `(folded char, node)`, sorted.
type Kids = Box<[Box<[(char, u32)]>]>;

#[derive(Debug, Clone, Default)]
struct FrozenTrie {
    kids: Kids,
    rules: Box<[Range]>,
}

impl FrozenTrie {
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
        items: &[(T, T, u32)],
        next: impl Fn(T) -> Option<T>,
        budget: usize,
        pool: &mut Vec<u32>,
    ) -> Option<Self> {
        let mut starts: Vec<T> = Vec::with_capacity(items.len() * 2);
        for &(s, e, _) in items {
            starts.push(s);
            if let Some(n) = next(e) {
                starts.push(n);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        let mut total = 0usize;
        for &(s, e, r) in items {
            let mut i = starts.partition_point(|&x| x < s);
            while let (Some(&x), Some(l)) = (starts.get(i), lists.get_mut(i)) {
                if x > e {
                    break;
                }
                if l.last() != Some(&r) {
                    l.push(r);
                    total += 1;
                }
                i += 1;
            }
            if total > budget {
                return None;
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

/// The gate of one fact.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) id: FactId,
    /// Every rule gated here, ascending: the fallback when a lookup
    /// yields more lists than the evaluator has room for.
    pub(crate) all: Range,
    exact: FnvMap<Box<str>, Range>,
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
        if let Some(&l) = self.exact.get(s) {
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

    pub(crate) fn heap_bytes(&self) -> usize {
        8 + self.exact.keys().map(|k| 32 + k.len()).sum::<usize>()
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
    for (i, e) in rules.iter().enumerate() {
        let Some((id, atoms)) = e.and_then(|e| rule_gate(e, table)) else {
            continue;
        };
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
        let mut exact: FnvMap<Box<str>, Vec<u32>> = FnvMap::default();
        let mut prefix = Trie::default();
        let mut suffix = Trie::default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (r, atoms) in &list {
            for a in atoms {
                match a {
                    Atom::Exact(s) => {
                        let l = exact.entry((*s).into()).or_default();
                        if l.last() != Some(r) {
                            l.push(*r);
                        }
                    }
                    Atom::Net(IpNet::V4(n)) => {
                        v4.push((u32::from(n.network()), u32::from(n.broadcast()), *r));
                    }
                    Atom::Net(IpNet::V6(n)) => {
                        v6.push((u128::from(n.network()), u128::from(n.broadcast()), *r));
                    }
                    Atom::Glob(g) => {
                        if let Some((key, is_suffix)) = glob_anchor(g) {
                            if is_suffix {
                                let rev: Vec<char> = key.into_iter().rev().collect();
                                suffix.insert(&rev, *r);
                            } else {
                                prefix.insert(&key, *r);
                            }
                        }
                    }
                }
            }
        }
        let budget = 16 * list.len() + 1024;
        let mark = pool.len();
        let (Some(v4), Some(v6)) = (
            Segments::build(&v4, |x: u32| x.checked_add(1), budget, pool),
            Segments::build(&v6, |x: u128| x.checked_add(1), budget, pool),
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
        gates.push(Gate {
            id,
            all: store(pool, &all),
            exact: exact
                .into_iter()
                .map(|(k, v)| (k, store(pool, &v)))
                .collect(),
            prefix: prefix.freeze(pool),
            suffix: suffix.freeze(pool),
            v4,
            v6,
        });
    }
    (gates, gated)
}
