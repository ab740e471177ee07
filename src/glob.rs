//! Case-insensitive globs: `*` is any run of characters (`/` included), `?`
//! is one character, everything else is literal; the glob must match the
//! whole string. Matching is linear in practice and O(text × glob) at worst,
//! with no allocation.

/// One compiled glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Glob {
    /// The glob as written.
    pub(crate) source: String,
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tok {
    Star,
    One,
    Lit(char),
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

impl Glob {
    /// Compiles a glob; consecutive stars collapse into one.
    pub(crate) fn new(source: &str) -> Glob {
        let mut tokens = Vec::with_capacity(source.len());
        for c in source.chars() {
            let t = match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                c => Tok::Lit(fold(c)),
            };
            if !(t == Tok::Star && tokens.last() == Some(&Tok::Star)) {
                tokens.push(t);
            }
        }
        Glob {
            source: source.to_owned(),
            tokens,
        }
    }

    /// How many `*` runs the glob has.
    pub(crate) fn stars(&self) -> usize {
        self.tokens.iter().filter(|t| **t == Tok::Star).count()
    }

    /// Whether the glob matches all of `text`, ignoring case.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let toks = &self.tokens;
        let mut t = 0usize; // token index
        let mut s = 0usize; // byte index into text
                            // Where to resume after the last star: (token after star, text position).
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let c = text[s..].chars().next();
            match (toks.get(t), c) {
                (Some(Tok::Star), _) => {
                    t += 1;
                    resume = Some((t, s));
                    continue;
                }
                (Some(Tok::One), Some(ch)) => {
                    t += 1;
                    s += ch.len_utf8();
                    continue;
                }
                (Some(Tok::Lit(l)), Some(ch)) if *l == fold(ch) => {
                    t += 1;
                    s += ch.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last star swallow one more character.
            match resume {
                Some((rt, rs)) => match text[rs..].chars().next() {
                    Some(ch) => {
                        let next = rs + ch.len_utf8();
                        resume = Some((rt, next));
                        t = rt;
                        s = next;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
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
}
