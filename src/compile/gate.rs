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
use crate::scan::{char_at, Kids};
use ipnet::IpNet;
use std::net::IpAddr;

/// A range of rule indices in the compiled policy's shared list pool.
pub(crate) type Range = (u32, u32);

/// One atom of a gate: a value test that a required conjunct passes only
/// when one of its atoms does. The flag: a value found by the atom's index
/// entry *proves* the conjunct true (see [`Gates::proves`]).
#[derive(Debug)]
enum Atom<'m> {
    Exact(&'m str, bool),
    Net(&'m IpNet, bool),
    /// A glob's anchor ([`glob_anchor`]: the literal prefix, or the
    /// suffix when the second flag is set) and the proof flag.
    Glob(&'m str, bool, bool),
}

/// How selective a gate is (lower is better).
fn rank(atoms: &[Atom<'_>]) -> u8 {
    atoms
        .iter()
        .map(|a| match a {
            Atom::Exact(..) => 0,
            Atom::Net(..) => 1,
            Atom::Glob(..) => 2,
        })
        .max()
        .unwrap_or(0)
}

/// The literal prefix or suffix of a glob (as written; the trie folds it),
/// whichever has more characters, and whether it is a suffix; `None` when
/// both are empty. Borrowed: no copy per glob.
fn glob_anchor(g: &Glob) -> Option<(&str, bool)> {
    let s = g.source.as_str();
    let wild = |b: &u8| matches!(b, b'*' | b'?');
    // `*` and `?` are one byte each (no other character's bytes are
    // ASCII), so their byte positions and `i + 1` are character boundaries.
    let prefix = s
        .get(..s.bytes().position(|b| wild(&b)).unwrap_or(s.len()))
        .unwrap_or("");
    let suffix = s
        .get(s.bytes().rposition(|b| wild(&b)).map_or(0, |i| i + 1)..)
        .unwrap_or("");
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

/// Whether a glob is its anchor (`anchor`, its [`glob_anchor`]) and stars only: `"P*"`
/// or `"*S"` with no `*` or `?` in `P` or `S`. Such a glob matches a text
/// exactly when the text's folded characters start with `P`'s (end with
/// `S`'s): exactly when the gate's walk reaches the anchor's node (the
/// trie and [`Glob`] fold character by character with the same [`fold`]).
fn glob_is_anchor(g: &Glob, anchor: Option<(&str, bool)>) -> bool {
    let s = g.source.as_str();
    match anchor {
        Some((a, false)) => s
            .get(a.len()..)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b == b'*')),
        Some((a, true)) => s
            .get(..s.len() - a.len())
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b == b'*')),
        None => false,
    }
}

/// The atoms of a conjunct that tests one string/ip fact positively.
/// `proof`: whether an atom found in the index would prove the conjunct
/// true (false inside `all`: one name passing proves nothing of the others).
fn atoms<'m>(
    kind: &'m ExprKind,
    table: &FactTable,
    out: &mut Vec<Atom<'m>>,
    cap: usize,
    proof: bool,
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
        // One true part makes the `or` true.
        ExprKind::Or(parts) => {
            let mut id = None;
            for p in parts {
                let pid = atoms(&p.kind, table, out, cap, proof)?;
                if id.is_some_and(|i| i != pid) {
                    return None;
                }
                id = Some(pid);
            }
            id
        }
        // The value (or a name of a set) is the string: the test is true.
        ExprKind::Compare(id, Op::Eq, Lit::Str(s)) if fact_ok(*id) => {
            out.push(Atom::Exact(s, proof));
            Some(*id)
        }
        ExprKind::InSet(id, lits) if fact_ok(*id) => {
            if out.len() + lits.len() > cap {
                return None;
            }
            for l in lits.iter() {
                match l {
                    Lit::Str(s) => out.push(Atom::Exact(s, proof)),
                    _ => return None,
                }
            }
            Some(*id)
        }
        // A segment lists exactly the rules whose networks cover it.
        ExprKind::InNets(id, nets) if fact_ok(*id) => {
            if out.len() + nets.len() > cap {
                return None;
            }
            out.extend(nets.iter().map(|n| Atom::Net(n, proof)));
            Some(*id)
        }
        // Every name passes, and there is one: so some name passes.
        ExprKind::All(inner) => atoms(inner, table, out, cap, false),
        ExprKind::Globs(id, globs) if fact_ok(*id) => {
            if out.len() + globs.len() > cap {
                return None;
            }
            for g in globs.iter() {
                let anchor = glob_anchor(g);
                let (key, suffix) = anchor?;
                out.push(Atom::Glob(key, suffix, proof && glob_is_anchor(g, anchor)));
            }
            Some(*id)
        }
        _ => None,
    }
}

/// The best gate of a rule's condition: a required conjunct on a string/ip
/// fact, with its place as a skip mask (bit `i`: part `i` of a top-level
/// `and`; bit 0: the whole condition; 0 past 64 parts). Its atoms are
/// appended to `best` (each conjunct's are gathered in `scratch` first):
/// two buffers for all the rules, not a `Vec` per rule.
fn rule_gate<'m>(
    e: &'m Expr,
    table: &FactTable,
    cap: usize,
    scratch: &mut Vec<Atom<'m>>,
    best: &mut Vec<Atom<'m>>,
) -> Option<(FactId, u64)> {
    let conjuncts: &[Expr] = match &e.kind {
        ExprKind::And(parts) => parts,
        _ => std::slice::from_ref(e),
    };
    let mark = best.len();
    let mut found: Option<(FactId, u64)> = None;
    for (i, c) in conjuncts.iter().enumerate() {
        scratch.clear();
        if let Some(id) = atoms(&c.kind, table, scratch, cap, true) {
            let b = best.get(mark..).unwrap_or(&[]);
            let better = found.is_none()
                || rank(scratch) < rank(b)
                || (rank(scratch) == rank(b) && scratch.len() < b.len());
            if better {
                let place = 1u64.checked_shl(i as u32).unwrap_or(0);
                found = Some((id, place));
                best.truncate(mark);
                best.append(scratch);
            }
        }
    }
    found
}

/// Posting lists being built: rule indices, and per posting whether it
/// proves its rule's gate conjunct (see [`Gates::proves`]).
#[derive(Debug, Default)]
pub(crate) struct Pool {
    pub(crate) rules: Vec<u32>,
    pub(crate) proved: Vec<bool>,
}

impl Pool {
    fn len(&self) -> usize {
        self.rules.len()
    }

    fn push(&mut self, rule: u32, proves: bool) {
        self.rules.push(rule);
        self.proved.push(proves);
    }

    fn truncate(&mut self, len: usize) {
        self.rules.truncate(len);
        self.proved.truncate(len);
    }

    /// Appends `(rule, proves)` postings sorted by rule, each rule once
    /// (proving when any of its postings does); returns their range.
    fn store(&mut self, postings: &mut [(u32, bool)]) -> Range {
        // Proving postings of a rule first: the one kept.
        postings.sort_unstable_by_key(|&(r, p)| (r, !p));
        let start = self.len() as u32;
        let mut last = None;
        for &(r, p) in postings.iter() {
            if last != Some(r) {
                self.push(r, p);
                last = Some(r);
            }
        }
        (start, self.len() as u32)
    }
}

/// A trie over the UTF-8 bytes of folded characters; each node lists the
/// rules whose anchor ends there. Built once from all its keys, sorted (so
/// the build costs a sort, whatever order the keys come in, with no map of
/// edges), then laid out breadth-first with its children in [`Kids`] (a
/// dense row per node, or labels compared 8 at a time): a step follows no
/// pointer. Walking bytes is walking characters: two folded texts agree on
/// a prefix of whole characters exactly when their UTF-8 bytes do, and
/// rules only sit at the ends of whole characters.
#[derive(Debug, Clone, Default)]
struct FrozenTrie {
    /// Per node, its rules (a range of the pool; empty for most nodes).
    rules: Box<[Range]>,
    /// Per node, its parent (the root: itself); parents come before their
    /// children. Read only by [`FrozenTrie::worst_path`].
    parent: Box<[u32]>,
    kids: Kids,
}

impl FrozenTrie {
    /// The trie of `keys` (anchor, rule, whether the rule's posting proves
    /// its conjunct), read backwards when `reversed` (suffixes: the trie is
    /// walked from the text's end, each character's bytes last to first).
    /// Each node's rules go to `pool`, ascending.
    fn build(keys: &[(&str, u32, bool)], reversed: bool, pool: &mut Pool) -> FrozenTrie {
        if keys.is_empty() {
            return FrozenTrie::default();
        }
        // Every key's folded bytes, in one buffer.
        let mut bytes: Vec<u8> = Vec::new();
        // Per key: its first 8 folded bytes as a number (see [`key8`]: the
        // sort compares integers first), its bytes' place, rule and flag.
        let mut spans: Vec<(u64, u32, u32, u32, bool)> = Vec::with_capacity(keys.len());
        let mut buf = [0u8; 4];
        for &(k, rule, proves) in keys {
            let start = bytes.len();
            if k.is_ascii() {
                bytes.extend(k.bytes().map(|b| b.to_ascii_lowercase()));
            } else {
                for c in k.chars() {
                    bytes.extend_from_slice(fold(c).encode_utf8(&mut buf).as_bytes());
                }
            }
            let folded = bytes.get_mut(start..).unwrap_or_default();
            if reversed {
                folded.reverse();
            }
            let mut head = [0u8; 8];
            for (h, x) in head.iter_mut().zip(folded.iter()) {
                *h = *x;
            }
            let k8 = u64::from_be_bytes(head);
            spans.push((k8, start as u32, bytes.len() as u32, rule, proves));
        }
        let key = |&(_, s, e, _, _): &(u64, u32, u32, u32, bool)| {
            bytes.get(s as usize..e as usize).unwrap_or(&[])
        };
        spans.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key(a).cmp(key(b))));
        // Nodes are made in preorder; a node's children in byte order.
        let mut edges: Vec<(u32, u8, u32)> = Vec::new();
        let mut rules: Vec<Range> = vec![(0, 0)];
        let mut path: Vec<u32> = vec![0];
        let mut prev: &[u8] = &[];
        let mut i = 0;
        let mut run: Vec<(u32, bool)> = Vec::new();
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
            // The rules of this key: the run of equal keys.
            run.clear();
            while let Some(span) = spans.get(i) {
                if key(span) != k {
                    break;
                }
                run.push((span.3, span.4));
                i += 1;
            }
            let range = pool.store(&mut run);
            if let Some(slot) = path.last().and_then(|&n| rules.get_mut(n as usize)) {
                *slot = range;
            }
            prev = k;
        }
        // Children grouped by parent, in byte order (each parent's
        // children were made in byte order, and the counting sort keeps
        // it): parent `p`'s are `kids[first[p]..first[p + 1]]`. One buffer,
        // not a `Vec` per node.
        let mut first = vec![0u32; rules.len() + 1];
        for &(p, _, _) in &edges {
            if let Some(f) = first.get_mut(p as usize + 1) {
                *f += 1;
            }
        }
        for i in 1..first.len() {
            let before = first.get(i - 1).copied().unwrap_or(0);
            if let Some(f) = first.get_mut(i) {
                *f += before;
            }
        }
        let mut kids: Vec<(u8, u32)> = vec![(0, 0); edges.len()];
        let mut fill = first.clone();
        for &(p, c, n) in &edges {
            if let Some(f) = fill.get_mut(p as usize) {
                if let Some(slot) = kids.get_mut(*f as usize) {
                    *slot = (c, n);
                }
                *f += 1;
            }
        }
        // Breadth-first renumbering: `order[i]` is the preorder node of
        // node `i`, with the byte that leads to it.
        let mut order: Vec<(u32, u8)> = Vec::with_capacity(rules.len());
        order.push((0, 0));
        let mut span = Vec::with_capacity(rules.len());
        let mut at = 0;
        while let Some(&(n, _)) = order.get(at) {
            let (a, b) = (
                first.get(n as usize).copied().unwrap_or(0),
                first.get(n as usize + 1).copied().unwrap_or(0),
            );
            let k = kids.get(a as usize..b as usize).unwrap_or(&[]);
            span.push((order.len() as u32, k.len() as u32));
            order.extend(k.iter().map(|&(c, m)| (m, c)));
            at += 1;
        }
        let label: Vec<u8> = order.iter().map(|&(_, c)| c).collect();
        let mut parent = vec![0u32; order.len()];
        for (i, &(first, len)) in span.iter().enumerate() {
            for p in parent
                .get_mut(first as usize..(first + len) as usize)
                .unwrap_or_default()
            {
                *p = i as u32;
            }
        }
        FrozenTrie {
            rules: order
                .iter()
                .map(|&(n, _)| rules.get(n as usize).copied().unwrap_or((0, 0)))
                .collect(),
            parent: parent.into(),
            kids: Kids::new(span, &label),
        }
    }

    /// The most one walk can push ([`FrozenTrie::walk`] pushes the rules
    /// of every node on one path from the root): the largest `weight` of a
    /// path's ranges together, and the most ranges on one path.
    fn worst_path(&self, weight: &impl Fn(Range) -> u64) -> (u64, u64) {
        let mut path = vec![(0u64, 0u64); self.rules.len()];
        let mut most = (0u64, 0u64);
        // Parents come first (breadth-first order): one pass.
        for (i, &r) in self.rules.iter().enumerate().skip(1) {
            let up = self
                .parent
                .get(i)
                .and_then(|&p| path.get(p as usize))
                .copied()
                .unwrap_or((0, 0));
            let here = if r.0 < r.1 {
                (up.0.saturating_add(weight(r)), up.1 + 1)
            } else {
                up
            };
            if let Some(slot) = path.get_mut(i) {
                *slot = here;
            }
            most = (most.0.max(here.0), most.1.max(here.1));
        }
        most
    }

    /// The weight of each node's rules, for the nodes that have some.
    fn node_weights(&self, weight: &impl Fn(Range) -> u64, out: &mut Vec<u64>) {
        out.extend(self.rules.iter().filter(|r| r.0 < r.1).map(|&r| weight(r)));
    }

    /// Pushes the rule lists of every node on the path spelled by `s`'s
    /// folded characters (from its end when `BACK`); `false` when `push`
    /// refused one (out of room). ASCII characters are read as bytes (the
    /// child lookup lowers capitals).
    #[inline]
    fn walk<const BACK: bool>(&self, s: &str, push: &mut impl FnMut(Range) -> bool) -> bool {
        if self.rules.is_empty() {
            true
        } else if self.kids.is_dense() {
            self.walk_with::<BACK>(s, push, |n, b| self.kids.dense_child(n, b))
        } else {
            self.walk_with::<BACK>(s, push, |n, b| self.kids.sparse_child(n, b))
        }
    }

    /// [`FrozenTrie::walk`] with one form's child lookup.
    #[inline(always)]
    fn walk_with<const BACK: bool>(
        &self,
        s: &str,
        push: &mut impl FnMut(Range) -> bool,
        child: impl Fn(usize, u8) -> usize,
    ) -> bool {
        let bytes = s.as_bytes();
        let mut it = bytes.iter();
        let mut node = 0usize;
        loop {
            let b = if BACK { it.next_back() } else { it.next() };
            let Some(&b) = b else {
                return true;
            };
            node = if b < 0x80 {
                child(node, b)
            } else {
                // The bytes left, this character's included.
                let mut rest = it.as_slice().len() + 1;
                let n = self.char_step::<BACK>(s, &mut rest, node);
                let left = if BACK {
                    bytes.get(..rest)
                } else {
                    bytes.get(bytes.len().saturating_sub(rest)..)
                };
                it = left.unwrap_or_default().iter();
                n.unwrap_or(0)
            };
            // 0: no child (the root is no one's child).
            if node == 0 {
                return true;
            }
            match self.rules.get(node) {
                Some(&r) if r.0 < r.1 && !push(r) => return false,
                _ => {}
            }
        }
    }

    /// The node reached from `node` by the non-ASCII character that starts
    /// `s`'s last `rest` bytes (ends its first `rest` bytes when `BACK`):
    /// its folded character's UTF-8 bytes (last to first when `BACK`);
    /// takes the character off `rest`.
    #[cold]
    #[inline(never)]
    fn char_step<const BACK: bool>(&self, s: &str, rest: &mut usize, node: usize) -> Option<usize> {
        let c = char_at::<BACK>(s, *rest)?;
        *rest = rest.saturating_sub(c.len_utf8());
        let mut buf = [0u8; 4];
        let enc = fold(c).encode_utf8(&mut buf).as_bytes();
        let mut node = node;
        for i in 0..enc.len() {
            let j = if BACK { enc.len() - 1 - i } else { i };
            node = self.kids.child(node, *enc.get(j)?)?;
        }
        Some(node)
    }

    fn heap_bytes(&self) -> usize {
        self.rules.len() * 12 + self.kids.size()
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
    /// Builds from `(start, end, rule, proves)` with inclusive ends; `None`
    /// when the postings would exceed `budget`.
    fn build(
        items: &mut Vec<(T, T, u32, bool)>,
        next: impl Fn(T) -> Option<T>,
        budget: usize,
        pool: &mut Pool,
    ) -> Option<Self> {
        // The same network twice in one rule is one posting (a proving one
        // first: the one kept).
        items.sort_unstable_by_key(|&(s, e, r, p)| (r, s, e, !p));
        items.dedup_by_key(|&mut (s, e, r, _)| (r, s, e));
        let mut starts: Vec<T> = Vec::with_capacity(items.len() * 2);
        for &(s, e, _, _) in items.iter() {
            starts.push(s);
            if let Some(n) = next(e) {
                starts.push(n);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        // `(segment, rule, proves)` for every segment a network covers, in
        // one buffer (not a `Vec` per segment). Every segment visited
        // counts, whether or not it gains a rule (a network repeated 10,000
        // times would otherwise walk its segments 10,000 times for free).
        let mut cover: Vec<(u32, u32, bool)> = Vec::with_capacity(items.len());
        let mut steps = 0usize;
        for &(s, e, r, p) in items.iter() {
            let mut i = starts.partition_point(|&x| x < s);
            while let Some(&x) = starts.get(i) {
                if x > e {
                    break;
                }
                cover.push((i as u32, r, p));
                steps += 1;
                if steps > budget {
                    return None;
                }
                i += 1;
            }
        }
        cover.sort_unstable_by_key(|&(i, _, _)| i);
        let mut lists = Vec::with_capacity(starts.len());
        let mut run: Vec<(u32, bool)> = Vec::new();
        let mut at = 0;
        for i in 0..starts.len() as u32 {
            run.clear();
            while let Some(&(_, r, p)) = cover.get(at).filter(|c| c.0 == i) {
                run.push((r, p));
                at += 1;
            }
            lists.push(pool.store(&mut run));
        }
        Some(Segments {
            starts: starts.into(),
            lists: lists.into(),
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

    /// The largest `weight` of one segment's rules.
    fn worst(&self, weight: &impl Fn(Range) -> u64) -> u64 {
        self.lists.iter().map(|&r| weight(r)).max().unwrap_or(0)
    }
}

/// The sum of the `k` largest of `items` (reordered).
fn top_sum(items: &mut [u64], k: u64) -> u64 {
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    if k < items.len() {
        // Linear: the `k` largest go before position `k`.
        items.select_nth_unstable_by(k, |a, b| b.cmp(a));
    }
    items.iter().take(k).fold(0u64, |a, &b| a.saturating_add(b))
}

/// What the lookups of a gate's fact can propose in one evaluation, at most
/// ([`Gate::worst`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Proposed {
    /// The rules proposed, weighed as the caller asked (each once).
    pub(crate) weight: u64,
    /// The rule postings pushed (with repeats): what marking them costs.
    pub(crate) postings: u64,
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
    /// yields more lists than the evaluator keeps apart and the thread's
    /// bitset cannot collect their rules (see `super::collect`).
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
    /// `push` ran out of room (the caller then collects the lists' rules
    /// in a bitset, or uses [`Gate::all`]).
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
        self.prefix.walk::<false>(s, push) && self.suffix.walk::<true>(s, push)
    }

    #[inline]
    fn exact_rules(&self, s: &str) -> Option<Range> {
        // Most gates of glob or network tests have no exact strings.
        if self.exact.is_empty() {
            return None;
        }
        find_exact(&self.exact_key8, &self.exact, s)
    }

    /// The most the lookups of one evaluation can propose ([`Proposed`]),
    /// each rule weighing what `weight` says of a range of the pool (the
    /// same rule may be in several ranges: counted in each). `names`: the
    /// most names of a set value (`None`: the fact holds one value). Every
    /// rule the gate proposes is in [`Gate::all`], so that is a bound too.
    pub(crate) fn worst(&self, weight: &impl Fn(Range) -> u64, names: Option<usize>) -> Proposed {
        let len = |r: Range| u64::from(r.1.saturating_sub(r.0));
        let all = Proposed {
            weight: weight(self.all),
            postings: len(self.all),
        };
        let exact =
            |w: &dyn Fn(Range) -> u64| self.exact.iter().map(|&(_, r)| w(r)).max().unwrap_or(0);
        let (prefix, prefix_hits) = self.prefix.worst_path(weight);
        let (suffix, suffix_hits) = self.suffix.worst_path(weight);
        let nets = self.v4.worst(weight).max(self.v6.worst(weight));
        // One value: one exact string, one path of each trie, one segment.
        let one = Proposed {
            weight: exact(weight)
                .saturating_add(prefix)
                .saturating_add(suffix)
                .saturating_add(nets),
            postings: exact(&len)
                .saturating_add(self.prefix.worst_path(&len).0)
                .saturating_add(self.suffix.worst_path(&len).0)
                .saturating_add(self.v4.worst(&len).max(self.v6.worst(&len))),
        };
        // Marking stops once the postings pushed would pass the gate's
        // rules, and `all` is marked instead ([`super::collect`]): at most
        // twice `all`'s postings.
        let most_postings = all.postings.saturating_mul(2);
        let Some(names) = names else {
            return Proposed {
                weight: one.weight.min(all.weight),
                postings: one.postings.min(most_postings),
            };
        };
        // A set: each name finds at most one exact string and one path of
        // each trie, so its names reach at most `names` strings and `names`
        // times a path's nodes of each trie: at most the heaviest that many.
        let n = names as u64;
        let mut items: Vec<u64> = self.exact.iter().map(|&(_, r)| weight(r)).collect();
        let mut reached = top_sum(&mut items, n);
        for (trie, hits) in [(&self.prefix, prefix_hits), (&self.suffix, suffix_hits)] {
            items.clear();
            trie.node_weights(weight, &mut items);
            reached = reached.saturating_add(top_sum(&mut items, n.saturating_mul(hits)));
        }
        Proposed {
            weight: reached.min(all.weight),
            postings: one.postings.saturating_mul(n).min(most_postings),
        }
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

/// A rule, its gate's atoms (a range of the atoms' buffer), and the place
/// of its gate conjunct.
type GatedRule = (u32, std::ops::Range<usize>, u64);

/// The gates of a policy.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    pub(crate) gates: Vec<Gate>,
    /// Per rule: whether a gate proposes it (it is then in no cell's lists).
    pub(crate) gated: Vec<bool>,
    /// Per rule: its gate conjunct as a skip mask (bit `i`: part `i` of
    /// its top-level `and`; bit 0: the whole condition), or 0. A rule
    /// proposed by a *proving* posting (one of `pool.proved`) has a value
    /// that its atom's index entry found: an exact string equal to the
    /// value (or a name), a network holding the address, an anchor-only
    /// glob (`"P*"`, `"*S"`) whose anchor the walk reached. Then the
    /// conjunct is true, and the evaluator need not test it again. Atoms
    /// inside `all`, other globs, the [`Gate::all`] fallback and rules
    /// collected in the evaluator's bitset prove nothing.
    pub(crate) proves: Vec<u64>,
    /// The posting lists.
    pub(crate) pool: Pool,
}

/// Builds the gates (see [`Gates`]).
pub(crate) fn build(rules: &[Option<&Expr>], table: &FactTable) -> Gates {
    let mut pool = Pool::default();
    let mut per_fact: Vec<(FactId, Vec<GatedRule>)> = Vec::new();
    let mut all_atoms: Vec<Atom<'_>> = Vec::new();
    let mut scratch = Vec::new();
    // Postings are rules × atoms: a 10,000-name list used by 3,000 rules
    // would be 30 million. Past this budget rules stay ungated (their
    // compiled condition, shared with the list's other uses, still runs).
    let mut atom_budget = 64 * rules.len() + 65_536;
    for (i, e) in rules.iter().enumerate() {
        let mark = all_atoms.len();
        let Some((id, place)) =
            e.and_then(|e| rule_gate(e, table, atom_budget, &mut scratch, &mut all_atoms))
        else {
            continue;
        };
        let atoms = mark..all_atoms.len();
        if atoms.len() > atom_budget {
            all_atoms.truncate(mark);
            continue;
        }
        atom_budget -= atoms.len();
        match per_fact.iter_mut().find(|(f, _)| *f == id) {
            Some((_, v)) => v.push((i as u32, atoms, place)),
            None => per_fact.push((id, vec![(i as u32, atoms, place)])),
        }
    }
    // The facts that gate the most rules first.
    per_fact.sort_by_key(|(id, v)| (std::cmp::Reverse(v.len()), *id));
    per_fact.truncate(MAX_GATES);
    let mut gated = vec![false; rules.len()];
    let mut proves = vec![0u64; rules.len()];
    let mut gates = Vec::new();
    for (id, list) in per_fact {
        // Sorted tables, not maps: ordered, no hash to flood, and one
        // allocation each rather than one per key.
        let mut exact: Vec<(&str, u32, bool)> = Vec::new();
        let mut prefix: Vec<(&str, u32, bool)> = Vec::new();
        let mut suffix: Vec<(&str, u32, bool)> = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (r, atoms, _) in &list {
            for a in all_atoms.get(atoms.clone()).unwrap_or(&[]) {
                match *a {
                    Atom::Exact(s, p) => exact.push((s, *r, p)),
                    Atom::Net(IpNet::V4(n), p) => {
                        v4.push((u32::from(n.network()), u32::from(n.broadcast()), *r, p));
                    }
                    Atom::Net(IpNet::V6(n), p) => {
                        v6.push((u128::from(n.network()), u128::from(n.broadcast()), *r, p));
                    }
                    Atom::Glob(key, true, p) => suffix.push((key, *r, p)),
                    Atom::Glob(key, false, p) => prefix.push((key, *r, p)),
                }
            }
        }
        let budget = 16 * list.len() + 1024;
        let mark = pool.len();
        let (Some(v4), Some(v6)) = (
            Segments::build(&mut v4, |x: u32| x.checked_add(1), budget, &mut pool),
            Segments::build(&mut v6, |x: u128| x.checked_add(1), budget, &mut pool),
        ) else {
            // Networks overlap too much to index: leave these rules ungated.
            pool.truncate(mark);
            continue;
        };
        for (r, _, place) in &list {
            if let Some(g) = gated.get_mut(*r as usize) {
                *g = true;
            }
            if let Some(p) = proves.get_mut(*r as usize) {
                *p = *place;
            }
        }
        // The fallback proves nothing.
        let mut all: Vec<(u32, bool)> = list.iter().map(|(r, ..)| (*r, false)).collect();
        let all = pool.store(&mut all);
        // By string (byte order, which is also `key8` order), each string's
        // rules ascending and once.
        exact.sort_unstable_by_key(|&(s, r, p)| (s, r, !p));
        let mut table: Vec<(Box<str>, Range)> = Vec::new();
        let mut at = 0;
        let mut run: Vec<(u32, bool)> = Vec::new();
        while let Some(&(s, _, _)) = exact.get(at) {
            run.clear();
            while let Some(&(t, r, p)) = exact.get(at) {
                if t != s {
                    break;
                }
                run.push((r, p));
                at += 1;
            }
            table.push((Box::from(s), pool.store(&mut run)));
        }
        let exact_key8 = table.iter().map(|(k, _)| key8(k)).collect();
        gates.push(Gate {
            id,
            all,
            exact: table.into(),
            exact_key8,
            prefix: FrozenTrie::build(&prefix, false, &mut pool),
            suffix: FrozenTrie::build(&suffix, true, &mut pool),
            v4,
            v6,
        });
    }
    Gates {
        gates,
        gated,
        proves,
        pool,
    }
}

#[cfg(test)]
mod tests {
    use super::{find_exact, fold, key8, FrozenTrie, Pool};

    /// The rules whose anchor the trie's walk of `text` reaches.
    fn walked(t: &FrozenTrie, pool: &Pool, text: &str, back: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut push = |(a, b): (u32, u32)| {
            out.extend_from_slice(pool.rules.get(a as usize..b as usize).unwrap_or(&[]));
            true
        };
        if back {
            t.walk::<true>(text, &mut push);
        } else {
            t.walk::<false>(text, &mut push);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn trie_walks_find_exactly_the_folded_prefixes_and_suffixes() {
        // Anchors and texts around folding corners (İ folds to i, the
        // Kelvin sign to k, É to é), wide nodes (more than 8 children).
        let chars = [
            "a", "B", "k", "\u{212A}", "İ", "i", "é", "É", ".", "ß", "ẞ", "€",
        ];
        let mut anchors: Vec<String> = Vec::new();
        for (i, a) in chars.iter().enumerate() {
            anchors.push((*a).to_owned());
            for b in &chars[i..] {
                anchors.push(format!("{a}{b}"));
                anchors.push(format!("{b}{a}x"));
            }
        }
        for d in 0..20 {
            anchors.push(format!("fam{d}."));
        }
        let keys: Vec<(&str, u32, bool)> = anchors
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i as u32, i % 2 == 0))
            .collect();
        let folded = |s: &str| s.chars().map(fold).collect::<Vec<char>>();
        let mut texts: Vec<String> = anchors.clone();
        texts.extend(["", "A", "fam12.W", "FAM7.", "x", "\u{212A}ſİ"].map(str::to_owned));
        for a in &anchors {
            texts.push(format!("{a}zz"));
            texts.push(format!("zz{a}"));
        }
        for back in [false, true] {
            let mut pool = Pool::default();
            let trie = FrozenTrie::build(&keys, back, &mut pool);
            for t in &texts {
                let ft = folded(t);
                let want: Vec<u32> = keys
                    .iter()
                    .filter(|(a, _, _)| {
                        let fa = folded(a);
                        if back {
                            ft.ends_with(&fa)
                        } else {
                            ft.starts_with(&fa)
                        }
                    })
                    .map(|&(_, r, _)| r)
                    .collect();
                assert_eq!(walked(&trie, &pool, t, back), want, "{t:?} back {back}");
            }
            // Each posting keeps its flag.
            for (i, &r) in pool.rules.iter().enumerate() {
                assert_eq!(pool.proved.get(i), Some(&(r % 2 == 0)));
            }
        }
    }

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
