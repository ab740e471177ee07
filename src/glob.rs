//! Case-insensitive globs: `*` is any run of characters (`/` included), `?`
//! is one character, everything else is literal; the glob must match the
//! whole string.
//!
//! Matching is linear in the text, whatever the glob, and allocates
//! nothing. A glob is its parts between stars: the first must match at the
//! start of the text, the last at its end, and the middle ones in order in
//! between, each at the leftmost place it fits (taking the leftmost place
//! never loses a match, so no backtracking is needed). A middle part is
//! found with Knuth–Morris–Pratt (one pass, parts without `?`) or with
//! bit-parallel Shift-And (parts with `?`, at most [`MAX_WILD_PART`]
//! characters: four machine words of state). The textbook two-pointer
//! matcher backtracks and is O(text × glob): a 32 KB glob on a 256 KB value
//! took 14 s.

/// Longest part between stars that may hold a `?` (longer ones are refused
/// by the checker: `invalid-glob`).
pub(crate) const MAX_WILD_PART: usize = 256;
const WORDS: usize = MAX_WILD_PART / 64;

/// One compiled glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Glob {
    /// The glob as written.
    pub(crate) source: String,
    /// Whether it starts / ends with a star.
    star_start: bool,
    star_end: bool,
    /// The parts between stars (never empty ones), folded.
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Part {
    /// `None` is `?`.
    toks: Vec<Option<char>>,
    /// KMP failure table (parts without `?`), or empty.
    fail: Vec<u32>,
    /// Shift-And masks (parts with `?`): per character of the part, the
    /// positions it may stand at, sorted; `any` for the `?` positions.
    masks: Vec<(char, [u64; WORDS])>,
    any: [u64; WORDS],
    wild: bool,
    /// Every literal character of the part is ASCII: then a text character
    /// is folded by [`fold_for_ascii`] (no Unicode table lookup).
    ascii: bool,
}

/// [`fold`] as far as a part of ASCII characters can tell: an ASCII
/// character lowercased, `İ` and the Kelvin sign as the ASCII letters they
/// fold to (the only non-ASCII characters that fold to ASCII: a test in
/// `src/scan.rs` checks every character), any other character as one no
/// such part holds.
#[inline]
fn fold_for_ascii(c: char) -> char {
    match c {
        c if c.is_ascii() => c.to_ascii_lowercase(),
        '\u{130}' => 'i',
        '\u{212A}' => 'k',
        _ => '\u{80}',
    }
}

/// Folds a character for case-insensitive comparison (simple lowercase).
#[inline]
pub(crate) fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

impl Part {
    fn new(toks: Vec<Option<char>>) -> Part {
        let wild = toks.iter().any(Option::is_none);
        let ascii = toks.iter().flatten().all(char::is_ascii);
        let mut fail = Vec::new();
        let mut masks: Vec<(char, [u64; WORDS])> = Vec::new();
        let mut any = [0u64; WORDS];
        if !wild {
            // fail[i]: length of the longest proper border of toks[..=i].
            fail = vec![0u32; toks.len()];
            let mut k = 0usize;
            for i in 1..toks.len() {
                while k > 0 && toks.get(k) != toks.get(i) {
                    k = fail.get(k - 1).map_or(0, |&f| f as usize);
                }
                if toks.get(k) == toks.get(i) {
                    k += 1;
                }
                if let Some(f) = fail.get_mut(i) {
                    *f = k as u32;
                }
            }
        } else if toks.len() <= MAX_WILD_PART {
            for (i, t) in toks.iter().enumerate() {
                let (w, b) = (i / 64, 1u64 << (i % 64));
                match t {
                    None => {
                        if let Some(x) = any.get_mut(w) {
                            *x |= b;
                        }
                    }
                    Some(c) => match masks.binary_search_by_key(c, |&(k, _)| k) {
                        Ok(j) => {
                            if let Some(x) = masks.get_mut(j).and_then(|m| m.1.get_mut(w)) {
                                *x |= b;
                            }
                        }
                        Err(j) => {
                            let mut m = [0u64; WORDS];
                            if let Some(x) = m.get_mut(w) {
                                *x |= b;
                            }
                            masks.insert(j, (*c, m));
                        }
                    },
                }
            }
            // `?` stands for any character, those of the part included.
            for (_, m) in &mut masks {
                for (x, a) in m.iter_mut().zip(any) {
                    *x |= a;
                }
            }
        }
        Part {
            toks,
            fail,
            masks,
            any,
            wild,
            ascii,
        }
    }

    /// Whether the part matches `chars` exactly (as many characters).
    fn matches_at(&self, chars: &mut impl Iterator<Item = char>) -> bool {
        self.toks.iter().all(|t| match (t, chars.next()) {
            (None, Some(_)) => true,
            (Some(l), Some(c)) => *l == fold(c),
            (_, None) => false,
        })
    }

    /// The byte offset just after the leftmost occurrence of the part in
    /// `text`, searching from byte `from`.
    fn find(&self, text: &str, from: usize) -> Option<usize> {
        let rest = text.get(from..)?;
        let m = self.toks.len();
        let fold = if self.ascii { fold_for_ascii } else { fold };
        if self.wild {
            let mut d = [0u64; WORDS];
            let (lw, lb) = ((m - 1) / 64, 1u64 << ((m - 1) % 64));
            // The state words the part uses.
            let words = m.div_ceil(64);
            for (i, c) in rest.char_indices() {
                let c = fold(c);
                let mask = match self.masks.binary_search_by_key(&c, |&(k, _)| k) {
                    Ok(j) => self.masks.get(j).map_or(self.any, |x| x.1),
                    Err(_) => self.any,
                };
                let mut carry = 1u64;
                for (x, mk) in d.iter_mut().zip(mask).take(words) {
                    let next = *x >> 63;
                    *x = ((*x << 1) | carry) & mk;
                    carry = next;
                }
                if d.get(lw).is_some_and(|x| x & lb != 0) {
                    return Some(from + i + c_len(rest, i));
                }
            }
            None
        } else {
            let mut q = 0usize;
            for (i, c) in rest.char_indices() {
                let c = Some(fold(c));
                while q > 0 && self.toks.get(q) != Some(&c) {
                    q = self.fail.get(q - 1).map_or(0, |&f| f as usize);
                }
                if self.toks.get(q) == Some(&c) {
                    q += 1;
                }
                if q == m {
                    return Some(from + i + c_len(rest, i));
                }
            }
            None
        }
    }
}

/// The length in bytes of the character at byte `i` of `s`.
fn c_len(s: &str, i: usize) -> usize {
    s.get(i..)
        .and_then(|t| t.chars().next())
        .map_or(0, char::len_utf8)
}

impl Glob {
    /// Compiles a glob; consecutive stars collapse into one.
    pub(crate) fn new(source: &str) -> Glob {
        let mut parts = Vec::new();
        let mut cur: Vec<Option<char>> = Vec::new();
        for c in source.chars() {
            match c {
                '*' => {
                    if !cur.is_empty() {
                        parts.push(Part::new(std::mem::take(&mut cur)));
                    }
                }
                '?' => cur.push(None),
                c => cur.push(Some(fold(c))),
            }
        }
        if !cur.is_empty() {
            parts.push(Part::new(cur));
        }
        Glob {
            source: source.to_owned(),
            star_start: source.starts_with('*'),
            star_end: source.ends_with('*'),
            parts,
        }
    }

    /// How many `*` runs the glob has.
    pub(crate) fn stars(&self) -> usize {
        let mut n = 0;
        let mut prev = false;
        for c in self.source.chars() {
            let star = c == '*';
            if star && !prev {
                n += 1;
            }
            prev = star;
        }
        n
    }

    /// The longest part between stars that holds a `?`, in characters.
    pub(crate) fn longest_wild_part(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.wild)
            .map(|p| p.toks.len())
            .max()
            .unwrap_or(0)
    }

    /// Whether matching searches the text for a part (one not held at the
    /// start or the end): then it reads the whole value, else only as many
    /// characters as the glob has.
    pub(crate) fn searches(&self) -> bool {
        if !self.star_start && !self.star_end && self.parts.len() <= 1 {
            return false;
        }
        self.parts.len() > usize::from(!self.star_start) + usize::from(!self.star_end)
    }

    /// What one match costs, in passes over the text (see
    /// [`crate::Limits::max_scan_passes`]): 0 for a glob that does not
    /// search (it reads only its own length), else 1 for parts of ASCII
    /// characters found with KMP (~0.1 ms on 64 KB), 2 when a part has a
    /// `?` (Shift-And: ~0.25 ms), 4 when a part has a non-ASCII character
    /// (each text character folded through Unicode's tables: ~0.46 ms on
    /// 64 KB of `é`). Release build, load ~5.
    pub(crate) fn passes(&self) -> usize {
        if !self.searches() {
            0
        } else if self.parts.iter().any(|p| !p.ascii) {
            4
        } else if self.parts.iter().any(|p| p.wild) {
            2
        } else {
            1
        }
    }

    /// The two parts of a glob `*a*b*` (open at both ends, exactly two
    /// parts), as written: it matches when the first occurrence of `a`
    /// ends at or before the last occurrence of `b` starts.
    pub(crate) fn open_pair(&self) -> Option<(&str, &str)> {
        if !self.star_start || !self.star_end || self.parts.len() != 2 {
            return None;
        }
        let mut it = self.source.split('*').filter(|p| !p.is_empty());
        Some((it.next()?, it.next()?))
    }

    /// The first part of a glob `*a*b` (open start, closed end, exactly
    /// two parts), as written: it matches when `b` matches at the end
    /// ([`Glob::end_start`]) and the first occurrence of `a` ends at or
    /// before that.
    pub(crate) fn open_end_pair(&self) -> Option<&str> {
        if !self.star_start || self.star_end || self.parts.len() != 2 {
            return None;
        }
        self.source.split('*').find(|p| !p.is_empty())
    }

    /// For a glob that does not end with a star: the byte offset where its
    /// last part starts when that part matches the end of `text`.
    pub(crate) fn end_start(&self, text: &str) -> Option<usize> {
        if self.star_end {
            return None;
        }
        let last = self.parts.last()?;
        let n = last.toks.len();
        let (at, _) = text.char_indices().rev().take(n).last()?;
        let tail = text.get(at..)?;
        if tail.chars().count() < n {
            return None;
        }
        last.matches_at(&mut tail.chars()).then_some(at)
    }

    /// Whether the glob matches all of `text`, ignoring case.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let mut parts: &[Part] = &self.parts;
        if !self.star_start && !self.star_end && parts.len() <= 1 {
            // No star: the one part (or nothing) is the whole text.
            let mut it = text.chars();
            return parts.first().is_none_or(|p| p.matches_at(&mut it)) && it.next().is_none();
        }
        // The start: the first part, unless the glob starts with a star.
        let mut lo = 0usize;
        if !self.star_start {
            let Some((first, rest)) = parts.split_first() else {
                return true;
            };
            let mut it = text.char_indices();
            if !first.matches_at(&mut it.by_ref().map(|(_, c)| c)) {
                return false;
            }
            lo = it.next().map_or(text.len(), |(i, _)| i);
            parts = rest;
        }
        // The end: the last part, unless the glob ends with a star.
        let mut hi = text.len();
        if !self.star_end {
            let Some((last, rest)) = parts.split_last() else {
                return lo == text.len();
            };
            let n = last.toks.len();
            let tail = text.get(lo..).unwrap_or("");
            // The byte where the last `n` characters start.
            let Some((at, _)) = tail.char_indices().rev().take(n).last() else {
                return false;
            };
            if tail.get(at..).map_or(0, |t| t.chars().count()) < n {
                return false;
            }
            hi = lo + at;
            let mut it = tail.get(at..).unwrap_or("").chars();
            if !last.matches_at(&mut it) {
                return false;
            }
            parts = rest;
        }
        // The middle parts, in order, leftmost first, within `lo..hi`.
        let middle = text.get(..hi).unwrap_or("");
        for p in parts {
            match p.find(middle, lo) {
                Some(end) => lo = end,
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(g: &str, s: &str) -> bool {
        Glob::new(g).matches(s)
    }

    #[test]
    fn globs() {
        assert!(m("W32/Sobig*", "w32/sobig.F@MM"));
        assert!(m("*@MM", "W32/Sobig.F@mm"));
        assert!(!m("*@MM", "W32/Sobig.F@MMx"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*", ""));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("é*", "Éclair"));
        assert!(m("a**b", "ab"));
        assert!(!m("abc", "ab"));
    }

    #[test]
    fn searching_globs_and_open_pairs() {
        for (g, searches) in [
            ("abc", false),
            ("a?c", false),
            ("a*", false),
            ("*a", false),
            ("a*b", false),
            ("*", false),
            ("", false),
            ("*a*", true),
            ("a*b*", true),
            ("*a*b", true),
            ("a*b*c", true),
        ] {
            assert_eq!(Glob::new(g).searches(), searches, "{g}");
        }
        assert_eq!(Glob::new("*a**b?*").open_pair(), Some(("a", "b?")));
        assert_eq!(Glob::new("*a*b").open_pair(), None);
        assert_eq!(Glob::new("*a*b*c*").open_pair(), None);
        assert_eq!(Glob::new("*a*").open_pair(), None);
        assert_eq!(Glob::new("*a**b?").open_end_pair(), Some("a"));
        assert_eq!(Glob::new("*a*b*").open_end_pair(), None);
        assert_eq!(Glob::new("a*b").open_end_pair(), None);
        assert_eq!(Glob::new("*b?").end_start("xxbY"), Some(2));
        assert_eq!(Glob::new("*b?").end_start("bY"), Some(0));
        assert_eq!(Glob::new("*b?").end_start("Y"), None);
        assert_eq!(Glob::new("*b?").end_start("xxcY"), None);
    }
}
