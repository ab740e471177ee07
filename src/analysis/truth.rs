//! Kleene's three-valued logic, the one place that knows it: the truth
//! values, `and`/`or` over lazily evaluated parts (the evaluators' short
//! circuit), and sets of truth values for abstract evaluation (the
//! compiler's decision table and the linter's search).

/// A Kleene truth value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Truth {
    False,
    Unknown,
    True,
}

impl Truth {
    pub(crate) fn from_bool(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }

    pub(crate) fn not(self) -> Truth {
        match self {
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
            Truth::True => Truth::False,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Truth::False => "false",
            Truth::Unknown => "unknown",
            Truth::True => "true",
        }
    }
}

/// Kleene `and` of `parts`, evaluated in order by `eval`, stopping at the
/// first false (so a part after it is never evaluated).
#[inline]
pub(crate) fn all<P>(
    parts: impl IntoIterator<Item = P>,
    mut eval: impl FnMut(P) -> Truth,
) -> Truth {
    let mut acc = Truth::True;
    for p in parts {
        match eval(p) {
            Truth::False => return Truth::False,
            Truth::Unknown => acc = Truth::Unknown,
            Truth::True => {}
        }
    }
    acc
}

/// Kleene `or` of `parts`, evaluated in order by `eval`, stopping at the
/// first true.
#[inline]
pub(crate) fn any<P>(
    parts: impl IntoIterator<Item = P>,
    mut eval: impl FnMut(P) -> Truth,
) -> Truth {
    let mut acc = Truth::False;
    for p in parts {
        match eval(p) {
            Truth::True => return Truth::True,
            Truth::Unknown => acc = Truth::Unknown,
            Truth::False => {}
        }
    }
    acc
}

/// A set of truth values as bits ([`F`], [`U`], [`T`]): what a condition can
/// evaluate to when some facts are not fixed.
pub(crate) type Mask = u8;

/// `False` in a [`Mask`].
pub(crate) const F: Mask = 1;
/// `Unknown` in a [`Mask`].
pub(crate) const U: Mask = 2;
/// `True` in a [`Mask`].
pub(crate) const T: Mask = 4;
/// Every truth value.
pub(crate) const ANY: Mask = F | U | T;

/// The mask holding just `t`.
pub(crate) fn bit(t: Truth) -> Mask {
    match t {
        Truth::False => F,
        Truth::Unknown => U,
        Truth::True => T,
    }
}

/// `not` of every member.
pub(crate) fn not_mask(m: Mask) -> Mask {
    (m & U) | if m & F != 0 { T } else { 0 } | if m & T != 0 { F } else { 0 }
}

/// Kleene `and` (min) / `or` (max) of every pair of members.
const fn combine(a: Mask, b: Mask, and: bool) -> Mask {
    let mut out = 0;
    let mut x = 1u8;
    while x <= T {
        let mut y = 1u8;
        while y <= T {
            if a & x != 0 && b & y != 0 {
                let lo = if x < y { x } else { y };
                let hi = if x < y { y } else { x };
                out |= if and { lo } else { hi };
            }
            y <<= 1;
        }
        x <<= 1;
    }
    out
}

/// [`combine`] for all pairs of masks, indexed `[and as usize][a][b]`.
const COMBINE: [[[Mask; 8]; 8]; 2] = {
    let mut t = [[[0u8; 8]; 8]; 2];
    let mut a = 0;
    while a < 8 {
        let mut b = 0;
        while b < 8 {
            t[0][a][b] = combine(a as u8, b as u8, false);
            t[1][a][b] = combine(a as u8, b as u8, true);
            b += 1;
        }
        a += 1;
    }
    t
};

/// Kleene `and` of every pair of members.
#[inline]
pub(crate) fn and_mask(a: Mask, b: Mask) -> Mask {
    COMBINE[1][usize::from(a & 7)][usize::from(b & 7)]
}

/// Kleene `or` of every pair of members.
#[inline]
pub(crate) fn or_mask(a: Mask, b: Mask) -> Mask {
    COMBINE[0][usize::from(a & 7)][usize::from(b & 7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Truth; 3] = [Truth::False, Truth::Unknown, Truth::True];

    #[test]
    fn masks_lift_the_truth_tables() {
        for a in ALL {
            for b in ALL {
                let and = all([a, b], |t| t);
                let or = any([a, b], |t| t);
                assert_eq!(and, a.min(b));
                assert_eq!(or, a.max(b));
                assert_eq!(and_mask(bit(a), bit(b)), bit(and));
                assert_eq!(or_mask(bit(a), bit(b)), bit(or));
            }
            assert_eq!(not_mask(bit(a)), bit(a.not()));
        }
        // A set's result is the union over its members.
        for m in 0..8u8 {
            for n in 0..8u8 {
                let mut and = 0;
                let mut or = 0;
                for a in ALL.iter().filter(|a| m & bit(**a) != 0) {
                    for b in ALL.iter().filter(|b| n & bit(**b) != 0) {
                        and |= bit(a.min(b).to_owned());
                        or |= bit(*a.max(b));
                    }
                }
                assert_eq!(and_mask(m, n), and);
                assert_eq!(or_mask(m, n), or);
            }
        }
    }

    #[test]
    fn and_or_stop_early() {
        let mut seen = 0;
        assert_eq!(
            all([Truth::Unknown, Truth::False, Truth::True], |t| {
                seen += 1;
                t
            }),
            Truth::False
        );
        assert_eq!(seen, 2);
        seen = 0;
        assert_eq!(
            any([Truth::Unknown, Truth::True, Truth::False], |t| {
                seen += 1;
                t
            }),
            Truth::True
        );
        assert_eq!(seen, 2);
    }
}
