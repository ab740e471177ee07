//! Strings, decided exactly: "is there a string, other than the policy's
//! literals, that matches these glob lists and not those?"
//!
//! A string fact's values are cut into the literals the policy compares it
//! with (each its own class, the empty string always among them) and *other*
//! strings. On *other*, each distinct glob list (and each regex) the policy
//! tests is a boolean **atom** the search assigns; which combinations of atom
//! values some string has is this module's question. Glob languages are
//! regular, so it is answered exactly by a breadth-first search of the
//! product of small automata: one per assigned glob list (the union of its
//! globs' position automata, run on case-folded characters), plus a trie of
//! the literals (the string must not be one of them). The search runs over
//! a finite alphabet of representative characters, one per class of
//! characters that every automaton treats alike, so it is complete: when it
//! finds no string, there is none ("`*@MM` inside a list holding it" and
//! "`?*` is every non-empty string" are proofs, not guesses). The shortest
//! string found is the witness shown to the user.
//!
//! Regexes take part through their own DFA (the one evaluation runs), fed
//! each character's UTF-8 bytes; the alphabet is refined by the character
//! classes of the regex's syntax tree, so regex and glob combine exactly
//! too. Two cases are left to candidates tested with the regex itself: a
//! pattern over raw bytes, and a Unicode word boundary (its DFA gives up on
//! non-ASCII text, so only ASCII strings are tried). Where that leaves a
//! question open the answer is [`Check::Unknown`], never a guess.
//!
//! All work is counted against the caller's budget.

use crate::glob::{fold, Glob};
use regex_automata::dfa::Automaton;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One position of a glob's automaton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
    /// One character that folds to this one.
    Lit(char),
    /// The glob's end (accepting).
    End,
}

/// An atom's test on a string.
#[derive(Debug, Clone)]
pub(crate) enum AtomTest {
    /// Any of the globs matches.
    Globs(Arc<[Glob]>),
    /// The regex finds a match.
    Regex(Arc<crate::re::Re>),
}

impl AtomTest {
    /// The test on a concrete string (the evaluator's own matchers).
    pub(crate) fn holds(&self, s: &str) -> bool {
        match self {
            AtomTest::Globs(gs) => gs.iter().any(|g| g.matches(s)),
            AtomTest::Regex(re) => re.is_match(s),
        }
    }
}

/// An atom: its test and its automaton.
#[derive(Debug)]
struct Atom {
    test: AtomTest,
    auto: Auto,
}

/// How an atom runs in the product automaton. A state is a `Vec<u32>`:
/// for glob lists, the sorted set of active positions; for a regex, the
/// DFA state and whether it has matched already (`[QUIT, 0]`: the DFA gave
/// up on this text).
#[derive(Debug)]
enum Auto {
    /// The union of the globs' position automata, on case-folded characters.
    Globs {
        /// Every glob's positions, one after the other, each glob ending in `End`.
        positions: Vec<Pos>,
        /// Where each glob starts in `positions`.
        starts: Vec<u32>,
        /// Each folded character as first written, for readable witnesses.
        written: Vec<(char, char)>,
    },
    /// The regex's own DFA, fed each character's UTF-8 bytes.
    Regex {
        /// Where the characters the regex treats differently start
        /// (sorted code points): within two boundaries every character
        /// behaves alike.
        boundaries: Vec<u32>,
        /// A Unicode word boundary: the DFA gives up on non-ASCII text, so
        /// only ASCII characters are tried (and "no string" is not a proof).
        ascii_only: bool,
    },
    /// A regex whose syntax tree the search does not read (byte classes):
    /// candidates are tested with the regex itself.
    Opaque,
}

/// A DFA state that gave up.
const QUIT: u32 = u32::MAX;

/// Where the characters a regex's syntax tree distinguishes start; `None`
/// when it tests raw bytes (the search then leaves the regex to candidates).
fn regex_boundaries(
    hir: &regex_syntax::hir::Hir,
    out: &mut Vec<u32>,
    unicode_word: &mut bool,
) -> Option<()> {
    use regex_syntax::hir::{Class, HirKind, Look};
    let point = |c: u32, out: &mut Vec<u32>| {
        out.push(c);
        out.push(c + 1);
    };
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            for c in std::str::from_utf8(&lit.0).ok()?.chars() {
                point(u32::from(c), out);
            }
        }
        HirKind::Class(Class::Unicode(cls)) => {
            for r in cls.iter() {
                out.push(u32::from(r.start()));
                out.push(u32::from(r.end()) + 1);
            }
        }
        HirKind::Class(Class::Bytes(cls)) => {
            for r in cls.iter() {
                if r.end() >= 0x80 {
                    return None;
                }
                out.push(u32::from(r.start()));
                out.push(u32::from(r.end()) + 1);
            }
        }
        HirKind::Look(look) => match look {
            Look::Start | Look::End => {}
            Look::StartLF | Look::EndLF => point(u32::from('\n'), out),
            Look::StartCRLF | Look::EndCRLF => {
                point(u32::from('\r'), out);
                point(u32::from('\n'), out);
            }
            Look::WordUnicode
            | Look::WordUnicodeNegate
            | Look::WordStartUnicode
            | Look::WordEndUnicode
            | Look::WordStartHalfUnicode
            | Look::WordEndHalfUnicode => {
                *unicode_word = true;
                ascii_word(out);
            }
            _ => ascii_word(out),
        },
        HirKind::Repetition(rep) => regex_boundaries(&rep.sub, out, unicode_word)?,
        HirKind::Capture(cap) => regex_boundaries(&cap.sub, out, unicode_word)?,
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            for h in hs {
                regex_boundaries(h, out, unicode_word)?;
            }
        }
    }
    Some(())
}

/// The boundaries of the ASCII word characters `[0-9A-Za-z_]`.
fn ascii_word(out: &mut Vec<u32>) {
    for (a, b) in [('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')] {
        out.push(u32::from(a));
        out.push(u32::from(b) + 1);
    }
}

impl Atom {
    fn new(test: AtomTest) -> Atom {
        let auto = match &test {
            AtomTest::Globs(gs) => {
                let mut positions = Vec::new();
                let mut starts = Vec::new();
                let mut written: Vec<(char, char)> = Vec::new();
                for g in gs.iter() {
                    starts.push(positions.len() as u32);
                    for c in g.source.chars() {
                        let p = match c {
                            '*' => Pos::Star,
                            '?' => Pos::One,
                            c => {
                                let f = fold(c);
                                if !written.iter().any(|w| w.0 == f) {
                                    written.push((f, c));
                                }
                                Pos::Lit(f)
                            }
                        };
                        if !(p == Pos::Star && positions.last() == Some(&Pos::Star)) {
                            positions.push(p);
                        }
                    }
                    positions.push(Pos::End);
                }
                Auto::Globs {
                    positions,
                    starts,
                    written,
                }
            }
            AtomTest::Regex(re) => {
                let mut boundaries = Vec::new();
                let mut unicode_word = false;
                match re
                    .hir()
                    .and_then(|h| regex_boundaries(&h, &mut boundaries, &mut unicode_word))
                {
                    Some(()) => {
                        boundaries.sort_unstable();
                        boundaries.dedup();
                        Auto::Regex {
                            boundaries,
                            ascii_only: unicode_word || re.unicode_word_boundary(),
                        }
                    }
                    None => Auto::Opaque,
                }
            }
        };
        Atom { test, auto }
    }

    /// Whether the product search runs it (else candidates are tested).
    fn in_product(&self) -> bool {
        !matches!(self.auto, Auto::Opaque)
    }

    fn positions(&self) -> &[Pos] {
        match &self.auto {
            Auto::Globs { positions, .. } => positions,
            _ => &[],
        }
    }

    /// Adds `p` and what it reaches without reading (a star may match nothing).
    fn close(&self, mut p: u32, out: &mut Vec<u32>) {
        let positions = self.positions();
        loop {
            out.push(p);
            match positions.get(p as usize) {
                Some(Pos::Star) => p += 1,
                _ => return,
            }
        }
    }

    fn start(&self) -> Vec<u32> {
        match &self.auto {
            Auto::Globs { starts, .. } => {
                let mut out = Vec::new();
                for &s in starts {
                    self.close(s, &mut out);
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            Auto::Regex { .. } => {
                let AtomTest::Regex(re) = &self.test else {
                    return vec![QUIT, 0];
                };
                let cfg = regex_automata::util::start::Config::new()
                    .anchored(regex_automata::Anchored::No);
                match re.dfa().start_state(&cfg) {
                    Ok(sid) => regex_state(re, sid, false),
                    Err(_) => vec![QUIT, 0],
                }
            }
            Auto::Opaque => Vec::new(),
        }
    }

    /// The state after reading `c` (folded `fc`).
    fn step(&self, state: &[u32], c: char, fc: char) -> Vec<u32> {
        match &self.auto {
            Auto::Globs { positions, .. } => {
                let mut out = Vec::with_capacity(state.len());
                for &p in state {
                    match positions.get(p as usize) {
                        Some(Pos::Star) => self.close(p, &mut out),
                        Some(Pos::One) => self.close(p + 1, &mut out),
                        Some(Pos::Lit(l)) if *l == fc => self.close(p + 1, &mut out),
                        _ => {}
                    }
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            Auto::Regex { .. } => {
                let (AtomTest::Regex(re), [sid, matched]) = (&self.test, state) else {
                    return vec![QUIT, 0];
                };
                if *matched == 1 || *sid == QUIT {
                    return state.to_vec();
                }
                let dfa = re.dfa();
                let Ok(mut s) = regex_automata::util::primitives::StateID::new(*sid as usize)
                else {
                    return vec![QUIT, 0];
                };
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    s = dfa.next_state(s, b);
                    if dfa.is_quit_state(s) {
                        return vec![QUIT, 0];
                    }
                    // Match states come one byte late: a match ended before `b`.
                    if dfa.is_match_state(s) {
                        return vec![0, 1];
                    }
                }
                regex_state(re, s, false)
            }
            Auto::Opaque => Vec::new(),
        }
    }

    fn accepts(&self, state: &[u32]) -> bool {
        match &self.auto {
            Auto::Globs { positions, .. } => state
                .iter()
                .any(|&p| positions.get(p as usize) == Some(&Pos::End)),
            Auto::Regex { .. } => match (&self.test, state) {
                (_, [_, 1]) => true,
                (AtomTest::Regex(re), [sid, 0]) if *sid != QUIT => {
                    let dfa = re.dfa();
                    regex_automata::util::primitives::StateID::new(*sid as usize)
                        .is_ok_and(|s| dfa.is_match_state(dfa.next_eoi_state(s)))
                }
                _ => false,
            },
            Auto::Opaque => false,
        }
    }

    /// Whether no continuation is accepted.
    fn dead(&self, state: &[u32]) -> bool {
        match &self.auto {
            Auto::Globs { .. } => state.is_empty(),
            Auto::Regex { .. } => match (&self.test, state) {
                (_, [_, 1]) => false,
                (AtomTest::Regex(re), [sid, 0]) if *sid != QUIT => {
                    regex_automata::util::primitives::StateID::new(*sid as usize)
                        .is_ok_and(|s| re.dfa().is_dead_state(s))
                }
                _ => false,
            },
            Auto::Opaque => false,
        }
    }

    /// Whether every continuation is accepted (a glob's trailing star was
    /// reached; a regex matched).
    fn universal(&self, state: &[u32]) -> bool {
        match &self.auto {
            Auto::Globs { positions, .. } => state.iter().any(|&p| {
                positions.get(p as usize) == Some(&Pos::Star)
                    && positions.get(p as usize + 1) == Some(&Pos::End)
            }),
            Auto::Regex { .. } => matches!(state, [_, 1]),
            Auto::Opaque => false,
        }
    }

    fn quit(&self, state: &[u32]) -> bool {
        matches!(self.auto, Auto::Regex { .. }) && state.first() == Some(&QUIT)
    }

    /// The folded characters its globs name, each with how it was written.
    fn chars(&self, out: &mut Vec<(char, char)>) {
        if let Auto::Globs { written, .. } = &self.auto {
            out.extend(written.iter().copied());
        }
    }
}

/// A regex state as stored in the product (a matched state is `[0, 1]`).
fn regex_state(
    re: &crate::re::Re,
    s: regex_automata::util::primitives::StateID,
    matched: bool,
) -> Vec<u32> {
    let dfa = re.dfa();
    if matched || dfa.is_match_state(s) {
        vec![0, 1]
    } else if dfa.is_quit_state(s) {
        vec![QUIT, 0]
    } else {
        vec![s.as_u32(), 0]
    }
}

/// A trie of the literals, over exact characters.
#[derive(Debug, Default)]
struct Trie {
    /// Per node: its children, sorted by character.
    children: Vec<Vec<(char, u32)>>,
    terminal: Vec<bool>,
    /// Every character in a literal, sorted.
    chars: Vec<char>,
}

/// No trie node: the text is no literal's prefix.
const OFF: u32 = u32::MAX;

impl Trie {
    fn new(lits: &[Box<str>], work: &mut u64) -> Trie {
        let mut t = Trie {
            children: vec![Vec::new()],
            terminal: vec![false],
            chars: Vec::new(),
        };
        for l in lits {
            let mut node = 0usize;
            for c in l.chars() {
                *work += 1;
                t.chars.push(c);
                let kids = &t.children[node];
                node = match kids.binary_search_by_key(&c, |k| k.0) {
                    Ok(i) => kids[i].1 as usize,
                    Err(i) => {
                        let id = t.children.len();
                        t.children[node].insert(i, (c, id as u32));
                        t.children.push(Vec::new());
                        t.terminal.push(false);
                        id
                    }
                };
            }
            t.terminal[node] = true;
        }
        t.chars.sort_unstable();
        t.chars.dedup();
        t
    }

    fn step(&self, node: u32, c: char) -> u32 {
        match self.children.get(node as usize) {
            Some(kids) => match kids.binary_search_by_key(&c, |k| k.0) {
                Ok(i) => kids[i].1,
                Err(_) => OFF,
            },
            None => OFF,
        }
    }

    fn is_literal(&self, node: u32) -> bool {
        self.terminal.get(node as usize).copied().unwrap_or(false)
    }
}

/// The characters that fold to each character, for those few characters
/// that others fold to (built once, on demand).
#[derive(Debug, Default)]
pub(crate) struct FoldInverse {
    map: Option<HashMap<char, Vec<char>>>,
}

/// Characters above this have no case mapping (checked by a unit test).
const LAST_CASED: u32 = 0x1F000;

impl FoldInverse {
    /// Every character other than `c` that folds to `c`.
    fn others(&mut self, c: char, work: &mut u64) -> &[char] {
        let map = self.map.get_or_insert_with(|| {
            // A tight loop: counted at a unit per 8 characters.
            *work += u64::from(LAST_CASED / 8);
            let mut m: HashMap<char, Vec<char>> = HashMap::new();
            for x in (0..LAST_CASED).filter_map(char::from_u32) {
                let f = fold(x);
                if f != x {
                    m.entry(f).or_default().push(x);
                }
            }
            m
        });
        map.get(&c).map_or(&[], Vec::as_slice)
    }
}

/// Automaton states interned per atom (a state is a sorted position set).
struct Interner {
    tables: Vec<HashMap<Vec<u32>, u32>>,
    states: Vec<Vec<Vec<u32>>>,
}

impl Interner {
    fn intern(&mut self, k: usize, s: Vec<u32>, work: &mut u64) -> u32 {
        *work += 1 + s.len() as u64;
        let (Some(table), Some(states)) = (self.tables.get_mut(k), self.states.get_mut(k)) else {
            return u32::MAX;
        };
        if let Some(id) = table.get(&s) {
            return *id;
        }
        let id = states.len() as u32;
        table.insert(s.clone(), id);
        states.push(s);
        id
    }

    fn get(&self, k: usize, id: u32) -> Option<&[u32]> {
        self.states.get(k)?.get(id as usize).map(Vec::as_slice)
    }
}

/// The answer to "is there such a string?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// Yes: this one (tested with the evaluator's own matchers).
    Sat(String),
    /// No string has these atom values.
    Unsat,
    /// Not decided: the budget ran out, or regexes are involved and no
    /// candidate fitted them.
    Unknown,
}

/// The strings of one string fact: its literal classes and its atoms.
#[derive(Debug)]
pub(crate) struct StringFact {
    /// The literal classes, sorted (exact strings).
    lits: Vec<Box<str>>,
    atoms: Vec<Atom>,
    /// Per atom: its shared id.
    ids: Vec<u32>,
    trie: Trie,
}

/// How many strings the search tests against regexes before answering `Unknown`.
const REGEX_CANDIDATES: usize = 64;

impl StringFact {
    /// A fact whose literal classes are `lits` (sorted, deduplicated).
    pub(crate) fn new(lits: Vec<Box<str>>, work: &mut u64) -> StringFact {
        let trie = Trie::new(&lits, work);
        StringFact {
            lits,
            atoms: Vec::new(),
            ids: Vec::new(),
            trie,
        }
    }

    /// Adds an atom; returns its index among this fact's atoms.
    #[cfg(test)]
    pub(crate) fn add_atom(&mut self, test: AtomTest) -> u32 {
        let id = self.atoms.len() as u32;
        self.add_shared_atom(test, id)
    }

    /// Adds an atom whose test is known elsewhere as `id` (the element
    /// slots of one set share ids, so their questions share answers).
    pub(crate) fn add_shared_atom(&mut self, test: AtomTest, id: u32) -> u32 {
        self.atoms.push(Atom::new(test));
        self.ids.push(id);
        self.atoms.len() as u32 - 1
    }

    /// The shared id of an atom.
    pub(crate) fn shared_id(&self, atom: u32) -> u32 {
        self.ids.get(atom as usize).copied().unwrap_or(u32::MAX)
    }

    /// The atom's value on `s` (`None`: no such atom).
    pub(crate) fn holds(&self, atom: u32, s: &str) -> Option<bool> {
        self.atoms.get(atom as usize).map(|a| a.test.holds(s))
    }

    /// The literal classes.
    pub(crate) fn literals(&self) -> &[Box<str>] {
        &self.lits
    }

    fn is_literal(&self, s: &str) -> bool {
        self.lits.binary_search_by(|l| (**l).cmp(s)).is_ok()
    }

    /// Whether `s` is an *other* string with these atom values.
    pub(crate) fn fits(&self, s: &str, assigned: &[(u32, bool)], work: &mut u64) -> bool {
        *work += 1 + assigned.len() as u64;
        !self.is_literal(s)
            && assigned.iter().all(|&(a, v)| {
                self.atoms
                    .get(a as usize)
                    .is_some_and(|atom| atom.test.holds(s) == v)
            })
    }

    /// Is there an *other* string (no literal) on which each atom in
    /// `assigned` has the given value? At most `budget` units of work
    /// (added to `work`). `inverse` caches which characters fold to which
    /// across calls.
    pub(crate) fn witness(
        &self,
        assigned: &[(u32, bool)],
        inverse: &mut FoldInverse,
        work: &mut u64,
        budget: u64,
    ) -> Check {
        let limit = work.saturating_add(budget);
        if let Some(s) = self.quick(assigned, work) {
            return Check::Sat(s);
        }
        // The atoms the product runs (the others only test candidates),
        // positive ones first: most characters kill one of them at once.
        let mut parts: Vec<(&Atom, bool)> = assigned
            .iter()
            .filter_map(|&(a, v)| self.atoms.get(a as usize).map(|x| (x, v)))
            .filter(|(x, _)| x.in_product())
            .collect();
        parts.sort_by_key(|(_, v)| !*v);
        let Some(alphabet) = self.alphabet(&parts, inverse, work) else {
            return Check::Unknown;
        };
        let (alphabet, restricted) = alphabet;
        let folded: Vec<char> = alphabet.iter().map(|c| fold(*c)).collect();
        let trie = &self.trie;
        let mut states = Interner {
            tables: vec![HashMap::new(); parts.len()],
            states: vec![Vec::new(); parts.len()],
        };
        // A product node: the atoms' state ids, then the trie node.
        let mut start: Vec<u32> = Vec::with_capacity(parts.len() + 1);
        for (k, (atom, _)) in parts.iter().enumerate() {
            start.push(states.intern(k, atom.start(), work));
        }
        start.push(0);
        let mut nodes: Vec<(Vec<u32>, u32, char)> = Vec::new();
        let mut seen: HashMap<Vec<u32>, ()> = HashMap::new();
        let mut queue: VecDeque<u32> = VecDeque::new();
        seen.insert(start.clone(), ());
        nodes.push((start, u32::MAX, '\0'));
        queue.push_back(0);
        let mut candidates = 0usize;
        // Some branch was cut because a DFA gave up: "none" is no proof.
        let mut gave_up = restricted;
        let spell = |nodes: &[(Vec<u32>, u32, char)], mut at: u32| -> String {
            let mut chars = Vec::new();
            while let Some((_, parent, c)) = nodes.get(at as usize) {
                if *parent == u32::MAX {
                    break;
                }
                chars.push(*c);
                at = *parent;
            }
            chars.iter().rev().collect()
        };
        while let Some(at) = queue.pop_front() {
            if *work > limit {
                return Check::Unknown;
            }
            let Some((key, _, _)) = nodes.get(at as usize) else {
                break;
            };
            let key = key.clone();
            // Accepting: every positive atom accepts, no negative one does, no literal.
            let trie_node = key.last().copied().unwrap_or(OFF);
            let accepted = !trie.is_literal(trie_node)
                && parts.iter().enumerate().all(|(k, &(atom, v))| {
                    let acc = key
                        .get(k)
                        .and_then(|id| states.get(k, *id))
                        .is_some_and(|st| atom.accepts(st));
                    acc == v
                });
            if accepted {
                // Every answer is tested with the evaluator's own matchers.
                let s = spell(&nodes, at);
                candidates += 1;
                if self.fits(&s, assigned, work) {
                    return Check::Sat(s);
                }
                if candidates >= REGEX_CANDIDATES {
                    return Check::Unknown;
                }
            }
            for (&c, &fc) in alphabet.iter().zip(&folded) {
                let mut next: Vec<u32> = Vec::with_capacity(key.len());
                let mut dead = false;
                for (k, &(atom, v)) in parts.iter().enumerate() {
                    let cur = key.get(k).and_then(|id| states.get(k, *id)).unwrap_or(&[]);
                    let st = atom.step(cur, c, fc);
                    *work += 1 + cur.len() as u64;
                    if atom.quit(&st) {
                        gave_up = true;
                        dead = true;
                        break;
                    }
                    // A positive atom that can no longer match, or a negative
                    // one that now matches every continuation: no string here.
                    if (v && atom.dead(&st)) || (!v && atom.universal(&st)) {
                        dead = true;
                        break;
                    }
                    next.push(states.intern(k, st, work));
                }
                if dead {
                    continue;
                }
                next.push(if trie_node == OFF {
                    OFF
                } else {
                    trie.step(trie_node, c)
                });
                if seen.contains_key(&next) {
                    continue;
                }
                seen.insert(next.clone(), ());
                nodes.push((next, at, c));
                queue.push_back(nodes.len() as u32 - 1);
            }
        }
        if candidates > 0 || gave_up {
            Check::Unknown
        } else {
            Check::Unsat
        }
    }

    /// A string built straight from the positive globs (stars left out or
    /// filled, question marks filled), if one has the assigned values: most
    /// questions have such an answer, found without the product search.
    fn quick(&self, assigned: &[(u32, bool)], work: &mut u64) -> Option<String> {
        const FRESH: [&str; 4] = ["x", "y", "xx", "z"];
        let mut pieces: Vec<Vec<String>> = Vec::new();
        for &(a, v) in assigned {
            if !v {
                continue;
            }
            let Some(AtomTest::Globs(gs)) = self.atoms.get(a as usize).map(|x| &x.test) else {
                continue;
            };
            let mut inst = Vec::new();
            for g in gs.iter().take(4) {
                for star in ["", "x"] {
                    let s: String = g
                        .source
                        .chars()
                        .map(|c| match c {
                            '*' => star.to_owned(),
                            '?' => "x".to_owned(),
                            c => c.to_string(),
                        })
                        .collect();
                    if !inst.contains(&s) {
                        inst.push(s);
                    }
                }
            }
            pieces.push(inst);
        }
        let mut cands: Vec<String> = Vec::new();
        match pieces.as_slice() {
            [] => cands.extend(FRESH.iter().map(|s| (*s).to_owned())),
            [one] => cands.extend(one.iter().cloned()),
            [a, b] => {
                for x in a {
                    for y in b {
                        cands.push(format!("{x}{y}"));
                        cands.push(format!("{y}{x}"));
                    }
                }
                cands.extend(a.iter().chain(b).cloned());
            }
            many => {
                // Each positive glob's first instance, in order and reversed.
                let firsts: Vec<&str> = many
                    .iter()
                    .filter_map(|p| p.first())
                    .map(String::as_str)
                    .collect();
                cands.push(firsts.concat());
                cands.push(firsts.iter().rev().copied().collect());
            }
        }
        cands
            .into_iter()
            .take(32)
            .find(|s| self.fits(s, assigned, work))
    }

    /// One character per class of characters that every automaton in
    /// `parts` and the literals' trie treat alike, and whether the classes
    /// were cut to ASCII (a regex with a Unicode word boundary). `None`
    /// when a class's representative could not be found.
    fn alphabet(
        &self,
        parts: &[(&Atom, bool)],
        inverse: &mut FoldInverse,
        work: &mut u64,
    ) -> Option<(Vec<char>, bool)> {
        const END: u32 = 0x11_0000;
        // The folded characters the globs name (with how they were written).
        let mut named: Vec<(char, char)> = Vec::new();
        let mut cuts: Vec<u32> = vec![0, END];
        let mut ascii_only = false;
        for (atom, _) in parts {
            atom.chars(&mut named);
            if let Auto::Regex {
                boundaries,
                ascii_only: a,
            } = &atom.auto
            {
                cuts.extend(boundaries.iter().copied().filter(|b| *b <= END));
                ascii_only |= *a;
            }
        }
        if ascii_only {
            cuts.push(0x80);
        }
        cuts.sort_unstable();
        cuts.dedup();
        named.sort_unstable();
        named.dedup_by_key(|n| n.0);
        let named_folded: Vec<char> = named.iter().map(|n| n.0).collect();
        let lit_chars: &[char] = &self.trie.chars;
        let in_lits = |c: char| lit_chars.binary_search(&c).is_ok();
        let is_named = |c: char| named_folded.binary_search(&fold(c)).is_ok();
        let limit = if ascii_only { 0x80 } else { END };
        let mut alphabet: Vec<char> = Vec::new();
        // Per interval between cuts: a character no glob names and no
        // literal holds (readable ones first).
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1].min(limit));
            if lo >= hi {
                continue;
            }
            *work += 1;
            let preferred = "xyzqjkw#_-0123456789"
                .chars()
                .find(|c| (lo..hi).contains(&u32::from(*c)) && !in_lits(*c) && !is_named(*c));
            let rep = preferred.or_else(|| {
                // The excluded characters are few: a short scan finds one.
                (lo..hi)
                    .take(lit_chars.len() + 64 * named.len() + 64)
                    .filter_map(char::from_u32)
                    .find(|c| !in_lits(*c) && !is_named(*c))
            });
            match rep {
                Some(c) => alphabet.push(c),
                None => {
                    // Every character scanned was excluded: make sure the
                    // interval really has no other one.
                    let span = u64::from(hi - lo);
                    *work += span;
                    if (lo..hi)
                        .filter_map(char::from_u32)
                        .any(|c| !in_lits(c) && !is_named(c))
                    {
                        return None;
                    }
                }
            }
        }
        // Per named character and interval: one character folding to it
        // that no literal holds (as written in the glob first).
        for &(c, written) in &named {
            *work += 1;
            let mut members: Vec<char> = vec![written, c];
            members.extend(inverse.others(c, work).iter().copied());
            let mut taken: Vec<usize> = Vec::new();
            for x in members {
                if fold(x) != c || in_lits(x) || u32::from(x) >= limit {
                    continue;
                }
                let interval = cuts.partition_point(|b| *b <= u32::from(x));
                if !taken.contains(&interval) {
                    taken.push(interval);
                    alphabet.push(x);
                }
            }
        }
        // Each literal character stands for itself.
        alphabet.extend(lit_chars.iter().copied().filter(|c| u32::from(*c) < limit));
        Some((alphabet, ascii_only))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(gs: &[&str]) -> AtomTest {
        AtomTest::Globs(gs.iter().map(|g| Glob::new(g)).collect::<Vec<_>>().into())
    }

    fn fact(lits: &[&str], atoms: &[&[&str]]) -> StringFact {
        let mut lits: Vec<Box<str>> = lits.iter().map(|s| (*s).into()).collect();
        lits.push("".into());
        lits.sort_unstable();
        lits.dedup();
        let mut f = StringFact::new(lits, &mut 0);
        for a in atoms {
            f.add_atom(globs(a));
        }
        f
    }

    fn check(f: &mut StringFact, assigned: &[(u32, bool)]) -> Check {
        let mut work = 0;
        let r = f.witness(assigned, &mut FoldInverse::default(), &mut work, 1_000_000);
        if let Check::Sat(s) = &r {
            assert!(f.fits(s, assigned, &mut work), "{s:?} fits {assigned:?}");
        }
        r
    }

    #[test]
    fn implication_and_disjointness_between_globs_and_lists() {
        let mut f = fact(
            &[],
            &[&["W32/Sobig*", "*@MM"], &["*@MM"], &["?*"], &["W32/*"]],
        );
        // "*@MM" lies inside the list holding it.
        assert_eq!(check(&mut f, &[(0, false), (1, true)]), Check::Unsat);
        assert!(matches!(
            check(&mut f, &[(0, true), (1, false)]),
            Check::Sat(_)
        ));
        // "?*" is every non-empty string, and the empty string is a literal.
        assert_eq!(check(&mut f, &[(2, false)]), Check::Unsat);
        // Prefix containment: W32/Sobig* inside W32/*.
        let mut g = fact(&[], &[&["W32/Sobig*"], &["w32/*"]]);
        assert_eq!(check(&mut g, &[(0, true), (1, false)]), Check::Unsat);
        assert!(matches!(
            check(&mut g, &[(0, false), (1, true)]),
            Check::Sat(_)
        ));
        // Disjoint: different fixed prefixes.
        let mut h = fact(&[], &[&["A*"], &["B*"]]);
        assert_eq!(check(&mut h, &[(0, true), (1, true)]), Check::Unsat);
    }

    #[test]
    fn literals_are_not_other_strings() {
        // The only string matching "abc" is a literal (any case folds apart? no: exact).
        let mut f = fact(
            &["abc", "ABC", "Abc", "aBc", "abC", "ABc", "AbC", "aBC"],
            &[&["abc"]],
        );
        // Kelvin-free ASCII: every casing of "abc" is a literal, so no other string matches.
        assert_eq!(check(&mut f, &[(0, true)]), Check::Unsat);
        let mut g = fact(&["abc"], &[&["abc"]]);
        assert!(matches!(check(&mut g, &[(0, true)]), Check::Sat(s) if s != "abc"));
    }

    #[test]
    fn case_folding_beyond_ascii() {
        // The Kelvin sign folds to `k`: "k" and "K" as literals leave "\u{212A}".
        let mut f = fact(&["k", "K"], &[&["k"]]);
        assert_eq!(check(&mut f, &[(0, true)]), Check::Sat("\u{212A}".into()));
    }

    #[test]
    fn question_marks_and_stars() {
        let mut f = fact(&[], &[&["a?c"], &["*b*"], &["???"]]);
        // a?c with no b: "axc".
        assert!(matches!(
            check(&mut f, &[(0, true), (1, false)]),
            Check::Sat(_)
        ));
        // a?c is three characters.
        assert_eq!(check(&mut f, &[(0, true), (2, false)]), Check::Unsat);
        let mut g = fact(&[], &[&["*a*b*"], &["*b*a*"], &["*a*"], &["*b*"]]);
        assert!(matches!(
            check(&mut g, &[(0, true), (1, true), (2, true), (3, true)]),
            Check::Sat(s) if s.len() >= 3
        ));
        assert_eq!(check(&mut g, &[(0, true), (3, false)]), Check::Unsat);
    }

    #[test]
    fn every_character_that_folds_is_below_the_scan_limit() {
        for x in (LAST_CASED..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(fold(x), x, "{x:?} folds; raise LAST_CASED");
        }
    }

    fn re(f: &mut StringFact, p: &str) -> u32 {
        let re = crate::re::Re::new(p, true, 1 << 20).expect("valid");
        f.add_atom(AtomTest::Regex(Arc::new(re)))
    }

    #[test]
    fn regexes_run_as_automata() {
        let mut f = fact(&[], &[&["W32/*"], &["*@MM"]]);
        let worm = re(&mut f, "^Worm\\.X12\\b");
        let anchored = re(&mut f, "^w32/");
        let digits = re(&mut f, "[0-9]{3}");
        assert!(
            matches!(check(&mut f, &[(worm, true)]), Check::Sat(s) if s.to_lowercase() == "worm.x12")
        );
        // A glob and a regex that say the same thing.
        assert_eq!(check(&mut f, &[(0, true), (anchored, false)]), Check::Unsat);
        assert_eq!(check(&mut f, &[(0, false), (anchored, true)]), Check::Unsat);
        // Disjoint: a worm name never starts with W32/ (with a Unicode `\b`
        // only ASCII strings are tried, so that is not a proof).
        assert_eq!(check(&mut f, &[(worm, true), (0, true)]), Check::Unknown);
        let plain = re(&mut f, "^Worm\\.X12");
        assert_eq!(check(&mut f, &[(plain, true), (0, true)]), Check::Unsat);
        // Combined: W32/ with three digits and @MM.
        assert!(matches!(
            check(&mut f, &[(0, true), (1, true), (digits, true)]),
            Check::Sat(_)
        ));
        // \b after X12: "Worm.X123" is not a match, "Worm.X12.A" is.
        let mut g = fact(&["Worm.X12.A"], &[&["Worm.X12?*"]]);
        let worm = re(&mut g, "^Worm\\.X12\\b");
        assert!(
            matches!(check(&mut g, &[(worm, true), (0, true)]), Check::Sat(s) if !s[8..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        );
        // Unicode word boundaries: ASCII only, so "none" is not a proof.
        let mut h = fact(&[], &[]);
        let w = re(&mut h, r"\bfoo\b");
        assert!(matches!(check(&mut h, &[(w, true)]), Check::Sat(_)));
        let nothing = re(&mut h, r"\bfoo\b.*\bbar\b");
        assert_eq!(
            check(&mut h, &[(w, false), (nothing, true)]),
            Check::Unknown
        );
    }
}
