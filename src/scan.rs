//! Shared scans: one pass over a long value for many regex and glob leaves.
//!
//! A policy may test one fact with hundreds of regexes and globs, each of
//! which reads the whole value: 1,000 glob rules on a 64 KB value read
//! 64 MB per evaluation (310 ms). Here the regexes and globs that read one
//! fact are compiled together, in rule order, into groups of up to
//! [`GROUP_PATTERNS`] patterns, each group one multi-pattern dense DFA
//! (`regex-automata`, `MatchKind::All`): a single pass over the value
//! tells which of the group's patterns match anywhere, and the answer is
//! kept for the rest of the evaluation ([`ScanMemo`]). So an evaluation
//! reads a value at most once per group, however many leaves test it.
//!
//! Groups count against the policy's compiled-regex budget
//! ([`crate::Limits::max_regex_total_bytes`]) and building them against a
//! work budget of their own ([`BUILD_WORK`]); patterns that do not fit, a
//! regex with a Unicode word boundary (no dense DFA runs it on all text),
//! a glob with non-ASCII literals, and groups past [`MAX_GROUPS`] are
//! matched leaf by leaf, as before.

use crate::facts::FactId;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

/// Patterns in one group.
pub(crate) const GROUP_PATTERNS: usize = 256;

/// Words of one group's answer.
const WORDS: usize = GROUP_PATTERNS / 64;

/// One group's answer: bit `i` set when pattern `i` matches.
pub(crate) type Hits = [u64; WORDS];

/// Groups in one policy: the per-evaluation memo is a fixed table of this
/// many answers on the stack.
pub(crate) const MAX_GROUPS: usize = 16;

/// The work all group builds of a policy may do. Building a DFA costs
/// about its size times the patterns in it (each DFA state is a set of the
/// patterns' NFA states), so an attempt is charged its DFA's bytes × its
/// patterns, or its size limit × its patterns when it does not fit (and
/// the limit is lowered to what the budget has left). Measured in a release
/// build under a load average of ~7: 1,000 single-part globs (a third with
/// `?`, a third with a middle `*`) spend all of it, in 0.9 s of parsing, and
/// get 10 groups (the last ~340 are matched leaf by leaf); 1,000
/// literal-like regexes or contains-globs need a third of it.
pub(crate) const BUILD_WORK: usize = 192 << 20;

/// Largest DFA tried for one group (the regex budget may allow less).
pub(crate) const GROUP_MAX_BYTES: usize = 512 << 10;

/// Patterns of one fact, compiled together.
#[derive(Clone)]
pub(crate) struct ScanGroup {
    /// The fact every pattern reads.
    pub(crate) fact: FactId,
    /// Its place in the evaluation's [`ScanMemo`] (below [`MAX_GROUPS`]).
    pub(crate) slot: usize,
    /// Bit `i` set: pattern `i` exists.
    all: Hits,
    dfa: dense::DFA<Vec<u32>>,
}

impl std::fmt::Debug for ScanGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanGroup")
            .field("fact", &self.fact)
            .field("slot", &self.slot)
            .field(
                "patterns",
                &self.all.iter().map(|w| w.count_ones()).sum::<u32>(),
            )
            .finish()
    }
}

impl ScanGroup {
    /// Compiles `patterns` (regex syntax as [`crate::re::Re`] reads it:
    /// case-insensitive unless a pattern says otherwise) into one DFA of
    /// at most `limit` bytes; `None` when it does not fit (or a pattern
    /// needs more than a dense DFA).
    pub(crate) fn build(
        fact: FactId,
        slot: usize,
        patterns: &[&str],
        limit: usize,
    ) -> Option<ScanGroup> {
        if patterns.is_empty() || patterns.len() > GROUP_PATTERNS {
            return None;
        }
        let dfa = dense::Builder::new()
            .syntax(syntax::Config::new().case_insensitive(true).nest_limit(100))
            .thompson(thompson::Config::new().nfa_size_limit(Some(limit)))
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
            .ok()?;
        let mut all = [0u64; WORDS];
        for i in 0..patterns.len() {
            set_bit(&mut all, i);
        }
        Some(ScanGroup {
            fact,
            slot,
            all,
            dfa,
        })
    }

    /// Bit `i` set for each pattern `i`.
    pub(crate) fn all(&self) -> &Hits {
        &self.all
    }

    /// The bytes it counts against the regex budget.
    pub(crate) fn size(&self) -> usize {
        self.dfa.memory_usage()
    }

    /// Adds to `hits` the patterns that match anywhere in `text` (bit `i`:
    /// pattern `i`), in one pass that stops once every pattern has
    /// matched; `None` if the DFA had to give up (it cannot: no pattern
    /// needs a quit byte).
    pub(crate) fn scan(&self, text: &str, hits: &mut Hits) -> Option<()> {
        let dfa = &self.dfa;
        let bytes = text.as_bytes();
        let mut sid = dfa.start_state_forward(&Input::new(text)).ok()?;
        let record = |sid, hits: &mut Hits| {
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
                    if *hits == self.all {
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
}

/// Sets bit `i` of `hits` (nothing past the end).
#[inline]
pub(crate) fn set_bit(hits: &mut Hits, i: usize) {
    if let Some(w) = hits.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

/// Bit `i` of `hits`.
#[inline]
pub(crate) fn bit(hits: &Hits, i: usize) -> bool {
    hits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// The answers of the groups scanned so far in one evaluation.
#[derive(Debug, Clone)]
pub(crate) struct ScanMemo {
    /// Bit `slot`: that group was scanned.
    done: u32,
    /// Bit `slot`: the fact was unknown.
    unknown: u32,
    hits: [Hits; MAX_GROUPS],
}

impl Default for ScanMemo {
    fn default() -> ScanMemo {
        ScanMemo {
            done: 0,
            unknown: 0,
            hits: [[0; WORDS]; MAX_GROUPS],
        }
    }
}

impl ScanMemo {
    /// Whether pattern `i` of the group in `slot` matched (`Some(None)`:
    /// its fact is unknown; `None`: not scanned yet).
    #[inline]
    pub(crate) fn get(&self, slot: usize, i: usize) -> Option<Option<bool>> {
        let b = 1u32.checked_shl(slot as u32)?;
        if self.done & b == 0 {
            return None;
        }
        if self.unknown & b != 0 {
            return Some(None);
        }
        self.hits.get(slot).map(|h| Some(bit(h, i)))
    }

    /// Stores the answer for `slot` (`None`: the fact is unknown).
    #[inline]
    pub(crate) fn set(&mut self, slot: usize, hits: Option<Hits>) {
        let Some(b) = 1u32.checked_shl(slot as u32) else {
            return;
        };
        let Some(h) = self.hits.get_mut(slot) else {
            return;
        };
        *h = hits.unwrap_or_default();
        self.done |= b;
        if hits.is_none() {
            self.unknown |= b;
        }
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
            let group = ScanGroup::build(FactId(0), 0, &[&pat], 1 << 20).expect("builds");
            for t in texts {
                let mut hits = [0; WORDS];
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
        let group = ScanGroup::build(FactId(0), 0, &pats, 1 << 20).expect("builds");
        for t in ["W32/Sobig.F@MM", "foo 123", "Foo", "", "x"] {
            let mut hits = [0; WORDS];
            group.scan(t, &mut hits).expect("scans");
            for (i, p) in pats.iter().enumerate() {
                let re = crate::re::Re::new(p, true, 1 << 20).expect("regex");
                assert_eq!(bit(&hits, i), re.is_match(t), "{p} on {t:?}");
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
            let g = ScanGroup::build(FactId(0), 0, &refs, 1 << 20).expect("builds");
            let built = t.elapsed();
            let t = std::time::Instant::now();
            for _ in 0..100 {
                std::hint::black_box(g.scan(&text, &mut [0; WORDS]));
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
                    let g = ScanGroup::build(FactId(0), 0, &refs[..n], limit);
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
