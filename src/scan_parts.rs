//! Shared scans of globs with an open start and several parts: `*a*b*c*`,
//! `*a*b*c`, `*x*` (see [`crate::scan`]).
//!
//! A DFA over many such globs grows exponentially (it must remember which
//! parts of every glob it has seen), so each was one pass over the value:
//! 200 `*aN*bN*cN*` globs on 64 KB took 22–27 ms per evaluation. Here one
//! Aho–Corasick automaton of all the globs' distinct parts runs once over
//! the value, reporting every occurrence of every part (overlapping ones
//! too). Each glob waits for its next part in a FIFO queue per distinct
//! part, with its *progress*: where its last matched part ended. The
//! globs join a queue in the order of the positions where they advanced,
//! so each queue is sorted by progress, and an occurrence of part `s` at
//! `[start, end)` moves on exactly the waiters at its front whose progress
//! is at most `start` (each to its next part, with progress `end`).
//! Finding each part at its leftmost place after the previous one is what
//! the glob matcher does ([`crate::glob`]), and it never loses a match for
//! a glob of `*` and literals, so the answers are the same. A glob that
//! does not end with `*` waits only for the parts before its last one; its
//! last part must then match at the end of the value, starting at or after
//! its progress ([`Glob::end_start`]).
//!
//! Case: parts are ASCII without `?`, lowercased; the value is read one
//! character at a time as one byte: ASCII lowercased, `İ` as `i`, the
//! Kelvin sign as `k` (the only non-ASCII characters that
//! [`crate::glob::fold`] makes ASCII), any other character as a byte no
//! part holds. Positions in the queues count characters.
//!
//! Cost: a pass reads each character once, follows the automaton's
//! transitions (amortised constant), and at each position looks at the
//! queues of the parts that end there. Those are the parts that are
//! suffixes of one another, so a group is built only when no part has more
//! than [`MAX_DEPTH`] parts among its suffixes (itself included); every
//! glob leaves a queue at most once per part. A pass is thus linear in the
//! value, plus the group's parts. Building is linear in the parts' bytes.

use crate::glob::Glob;
use crate::scan::set_bit;
use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

/// Most parts that may end at one position (the longest chain of parts
/// each a suffix of the next): the work per character of a pass.
pub(crate) const MAX_DEPTH: usize = 8;

/// Most distinct parts in one group (the queues live on the stack).
pub(crate) const MAX_PARTS: usize = 4096;

/// Most globs in one group (its memo bits).
pub(crate) const MAX_GLOBS: usize = 1024;

/// No glob: the end of a queue.
const NONE: u16 = u16::MAX;

/// The parts a glob waits for, lowercased, when it can be in a group: it
/// starts with `*`, its parts are ASCII without `?` (but for the last one
/// of a glob that does not end with `*`: that one is tested at the end by
/// the glob itself), and it waits for at least one. The flag: it ends
/// with `*`.
pub(crate) fn queued_parts(glob: &Glob) -> Option<(Vec<String>, bool)> {
    let source = glob.source.as_str();
    if !source.starts_with('*') {
        return None;
    }
    let open_end = source.ends_with('*');
    let mut parts: Vec<&str> = source.split('*').filter(|p| !p.is_empty()).collect();
    if !open_end {
        parts.pop()?;
    }
    if parts.is_empty() {
        return None;
    }
    parts
        .iter()
        .map(|p| (p.is_ascii() && !p.contains('?')).then(|| p.to_ascii_lowercase()))
        .collect::<Option<Vec<String>>>()
        .map(|v| (v, open_end))
}

/// One glob of a group.
#[derive(Debug, Clone)]
struct Entry {
    /// Its parts' ids in [`Parts::seq`], from here.
    first: u32,
    /// How many parts it waits for.
    queued: u16,
    /// A glob that does not end with `*`: its last part is tested at the
    /// end of the value.
    end: Option<Box<Glob>>,
}

/// Globs with an open start, answered by one pass (bit `i`: glob `i`).
#[derive(Clone)]
pub(crate) struct Parts {
    ac: NFA,
    globs: Box<[Entry]>,
    /// The parts (automaton pattern ids) each glob waits for, in order.
    seq: Box<[u16]>,
    /// Distinct parts.
    parts: usize,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("globs", &self.globs.len())
            .field("parts", &self.parts)
            .finish()
    }
}

impl Parts {
    /// A group of `globs` (each as [`queued_parts`] accepts it); `None`
    /// when one is not accepted, there are more than [`MAX_GLOBS`] globs
    /// or [`MAX_PARTS`] distinct parts, or a part has more than
    /// [`MAX_DEPTH`] parts among its suffixes.
    pub(crate) fn build(globs: &[&Glob]) -> Option<Parts> {
        if globs.is_empty() || globs.len() > MAX_GLOBS {
            return None;
        }
        let mut distinct: Vec<String> = Vec::new();
        let mut ids: std::collections::BTreeMap<String, u16> = std::collections::BTreeMap::new();
        let mut seq: Vec<u16> = Vec::new();
        let mut entries = Vec::with_capacity(globs.len());
        for g in globs {
            let (parts, open_end) = queued_parts(g)?;
            let first = u32::try_from(seq.len()).ok()?;
            let queued = u16::try_from(parts.len()).ok()?;
            for p in parts {
                let id = match ids.get(&p) {
                    Some(&id) => id,
                    None => {
                        let id = u16::try_from(distinct.len()).ok()?;
                        if usize::from(id) >= MAX_PARTS {
                            return None;
                        }
                        distinct.push(p.clone());
                        ids.insert(p, id);
                        id
                    }
                };
                seq.push(id);
            }
            entries.push(Entry {
                first,
                queued,
                end: (!open_end).then(|| Box::new((*g).clone())),
            });
        }
        let ac = NFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&distinct)
            .ok()?;
        // The matches at a part's own end state are the parts that are
        // its suffixes; any state's are those of its longest matching
        // part, so this is the most at any position.
        for p in &distinct {
            let mut sid = ac.start_state(Anchored::No).ok()?;
            for &b in p.as_bytes() {
                sid = ac.next_state(Anchored::No, sid, b);
            }
            if ac.match_len(sid) > MAX_DEPTH {
                return None;
            }
        }
        Some(Parts {
            ac,
            globs: entries.into(),
            seq: seq.into(),
            parts: distinct.len(),
        })
    }

    /// Heap bytes (the automaton and the tables).
    pub(crate) fn size(&self) -> usize {
        self.ac.memory_usage()
            + self.seq.len() * 2
            + self.globs.len() * std::mem::size_of::<Entry>()
            + self
                .globs
                .iter()
                .filter_map(|e| e.end.as_ref())
                .map(|g| g.source.len() * 8)
                .sum::<usize>()
    }

    /// Sets in `hits` the bits of the globs that match `text`; `None` if
    /// the automaton cannot start (it always can: unanchored).
    pub(crate) fn scan(&self, text: &str, hits: &mut [u64]) -> Option<()> {
        let n = self.globs.len().min(MAX_GLOBS);
        let mut head = [NONE; MAX_PARTS];
        let mut tail = [NONE; MAX_PARTS];
        let mut next = [NONE; MAX_GLOBS];
        // A waiting glob's progress, in characters; a glob whose last part
        // is tested at the end, once it waits for nothing: in bytes.
        let mut at = [0u32; MAX_GLOBS];
        // The part of its sequence each glob waits for.
        let mut step = [0u16; MAX_GLOBS];
        let mut live = 0usize;
        let push = |g: usize, part: usize, head: &mut [u16], tail: &mut [u16], next: &mut [u16]| {
            let g16 = g as u16;
            match tail.get(part).copied() {
                Some(NONE) => {
                    if let Some(h) = head.get_mut(part) {
                        *h = g16;
                    }
                }
                Some(t) => {
                    if let Some(x) = next.get_mut(usize::from(t)) {
                        *x = g16;
                    }
                }
                None => return,
            }
            if let Some(t) = tail.get_mut(part) {
                *t = g16;
            }
            if let Some(x) = next.get_mut(g) {
                *x = NONE;
            }
        };
        for (g, e) in self.globs.iter().enumerate().take(n) {
            let Some(&part) = self.seq.get(e.first as usize) else {
                continue;
            };
            push(g, usize::from(part), &mut head, &mut tail, &mut next);
            live += 1;
        }
        let bytes = text.as_bytes();
        let mut sid = self.ac.start_state(Anchored::No).ok()?;
        let mut i = 0usize;
        let mut chars = 0u32;
        while live > 0 {
            let Some(&b) = bytes.get(i) else { break };
            // One byte per character (see the module docs).
            let (sym, len) = if b < 0x80 {
                (b.to_ascii_lowercase(), 1)
            } else {
                let len = match b {
                    0xF0.. => 4,
                    0xE0.. => 3,
                    _ => 2,
                };
                let sym = match bytes.get(i..i + len) {
                    Some([0xC4, 0xB0]) => b'i',
                    Some([0xE2, 0x84, 0xAA]) => b'k',
                    _ => 0x80,
                };
                (sym, len)
            };
            i += len;
            chars = chars.saturating_add(1);
            sid = self.ac.next_state(Anchored::No, sid, sym);
            if !self.ac.is_match(sid) {
                continue;
            }
            for k in 0..self.ac.match_len(sid) {
                let pid = self.ac.match_pattern(sid, k).as_usize();
                let plen = u32::try_from(self.ac.pattern_len(self.ac.match_pattern(sid, k)))
                    .unwrap_or(u32::MAX);
                let start = chars.saturating_sub(plen);
                // The waiters this occurrence moves on: the front of the
                // queue, progress at most `start` (the queue is sorted).
                while let Some(&g16) = head.get(pid) {
                    let g = usize::from(g16);
                    if g16 == NONE || at.get(g).is_none_or(|&p| p > start) {
                        break;
                    }
                    let after = next.get(g).copied().unwrap_or(NONE);
                    if let Some(h) = head.get_mut(pid) {
                        *h = after;
                    }
                    if after == NONE {
                        if let Some(t) = tail.get_mut(pid) {
                            *t = NONE;
                        }
                    }
                    let (Some(e), Some(s)) = (self.globs.get(g), step.get_mut(g)) else {
                        break;
                    };
                    *s += 1;
                    if *s >= e.queued {
                        live -= 1;
                        match e.end {
                            None => set_bit(hits, g),
                            Some(_) => {
                                if let Some(p) = at.get_mut(g) {
                                    *p = u32::try_from(i).unwrap_or(u32::MAX);
                                }
                            }
                        }
                    } else {
                        let part = self
                            .seq
                            .get(e.first as usize + usize::from(*s))
                            .copied()
                            .unwrap_or(NONE);
                        if let Some(p) = at.get_mut(g) {
                            *p = chars;
                        }
                        push(g, usize::from(part), &mut head, &mut tail, &mut next);
                    }
                }
            }
        }
        // The globs whose last part must match the end, after their
        // progress.
        for (g, e) in self.globs.iter().enumerate().take(n) {
            let Some(glob) = &e.end else { continue };
            if step.get(g).is_some_and(|&s| s >= e.queued)
                && glob
                    .end_start(text)
                    .is_some_and(|s| at.get(g).is_some_and(|&p| s >= p as usize))
            {
                set_bit(hits, g);
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::bit;
    use proptest::prelude::*;

    fn check(globs: &[&str], texts: &[&str]) {
        let gs: Vec<Glob> = globs.iter().map(|g| Glob::new(g)).collect();
        let refs: Vec<&Glob> = gs.iter().collect();
        let p = Parts::build(&refs).expect("builds");
        for t in texts {
            let mut hits = [0u64; 4];
            p.scan(t, &mut hits).expect("scans");
            for (i, g) in gs.iter().enumerate() {
                assert_eq!(bit(&hits, i), g.matches(t), "{:?} on {t:?}", g.source);
            }
        }
    }

    #[test]
    fn parts_groups_answer_as_globs_do() {
        check(
            &[
                "*a*b*c*",
                "*a*b*c",
                "*ab*ba*ab*",
                "*aa*aa*aa*",
                "*a*a*a",
                "*x*",
                "*i*k*i*",
                "*.*@*.*",
                "*b*a*",
                "*abc*bc*c*",
                "*c*bc*abc*",
                "*a*b*?",
                "*a*bc?",
                "*a*b*İ",
            ],
            &[
                "",
                "abc",
                "ABC",
                "acb",
                "aabbcc",
                "xaxbxcx",
                "cba",
                "abba",
                "abbaab",
                "ababab",
                "aaaaaa",
                "aaaaa",
                "aaa",
                "İ\u{212A}i",
                "İ\u{212A}İ",
                "ıki",
                "a.b@c.d",
                "abcbcc",
                "cbcabc",
                "a b c",
                "é a é b é c é",
                "abcx",
                "abca",
                "abci",
                "abİ",
                "ab\u{130}",
                "a\nb\nc",
            ],
        );
    }

    #[test]
    fn accepted_globs() {
        for (g, want) in [
            ("*a*b*c*", Some((vec!["a", "b", "c"], true))),
            ("*a*B*c", Some((vec!["a", "b"], false))),
            ("*a*b?*c", None),
            ("*a*b*c?", Some((vec!["a", "b"], false))),
            ("*x*", Some((vec!["x"], true))),
            ("*x", None),
            ("a*b*c*", None),
            ("*é*b*", None),
            ("**a**b**", Some((vec!["a", "b"], true))),
        ] {
            let got = queued_parts(&Glob::new(g));
            let want = want.map(|(v, e)| (v.into_iter().map(String::from).collect(), e));
            assert_eq!(got, want, "{g}");
        }
    }

    #[test]
    fn deep_suffix_chains_are_refused() {
        let globs: Vec<Glob> = (1..=MAX_DEPTH + 1)
            .map(|k| Glob::new(&format!("*{}*q*", "a".repeat(k))))
            .collect();
        let refs: Vec<&Glob> = globs.iter().collect();
        assert!(Parts::build(&refs).is_none());
        assert!(Parts::build(&refs[..MAX_DEPTH]).is_some());
    }

    fn glob_strategy() -> impl Strategy<Value = String> {
        // Parts over a small alphabet (overlaps and repeats are common),
        // sometimes with a folding character in the text only.
        let part = prop::collection::vec(prop::sample::select(vec!['a', 'b', 'A', 'i', 'k']), 1..4)
            .prop_map(|v| v.into_iter().collect::<String>());
        (prop::collection::vec(part, 1..5), any::<bool>()).prop_map(|(parts, open_end)| {
            let mut g = String::from("*");
            g.push_str(&parts.join("*"));
            if open_end || parts.len() < 2 {
                g.push('*');
            }
            g
        })
    }

    proptest! {
        #[test]
        fn parts_groups_equal_the_glob_matcher(
            globs in prop::collection::vec(glob_strategy(), 1..12),
            texts in prop::collection::vec(
                prop::collection::vec(
                    prop::sample::select(vec!['a', 'b', 'B', 'i', 'I', 'k', 'K', 'İ', '\u{212A}', 'ı', 'é', 'x']),
                    0..24,
                ).prop_map(|v| v.into_iter().collect::<String>()),
                1..8,
            ),
        ) {
            let gs: Vec<Glob> = globs.iter().map(|g| Glob::new(g)).collect();
            let refs: Vec<&Glob> = gs.iter().collect();
            // A group may be refused for its suffix chains; then nothing to compare.
            if let Some(p) = Parts::build(&refs) {
                for t in &texts {
                    let mut hits = [0u64; 4];
                    prop_assert!(p.scan(t, &mut hits).is_some());
                    for (i, g) in gs.iter().enumerate() {
                        prop_assert_eq!(bit(&hits, i), g.matches(t), "{:?} on {:?}", g.source, t);
                    }
                }
            }
        }
    }
}
