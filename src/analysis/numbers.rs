//! Number classes: the open intervals and points cut by the literals a fact
//! is compared with, each with a representative value of the fact's type
//! (`int` facts hold `i64`, `number` facts `i64` or finite `f64`), computed
//! exactly at any magnitude: an `int` fact above `1e16` is a class.

use super::classes::Rep;
use crate::check::model::{cmp_numbers, Lit, Val};
use std::cmp::Ordering;

/// A number literal, ordered exactly.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    /// An integer literal.
    I(i64),
    /// A float literal.
    F(f64),
}

impl Num {
    fn lit(self) -> Lit {
        match self {
            Num::I(i) => Lit::Int(i),
            Num::F(f) => Lit::Float(f),
        }
    }
    fn val(self) -> Val<'static> {
        match self {
            Num::I(i) => Val::Int(i),
            Num::F(f) => Val::Float(f),
        }
    }
    /// Exact numeric order (an int and a float compared without rounding).
    pub(crate) fn cmp(self, other: Num) -> Ordering {
        cmp_numbers(self.val(), &other.lit()).unwrap_or(Ordering::Equal)
    }
}

/// The number classes: intervals and points cut by the literals, each with
/// a representative (classes without a value of the fact's type are dropped).
pub(crate) fn number_classes(mut nums: Vec<Num>, int: bool) -> Vec<Rep> {
    nums.retain(|n| match n {
        Num::F(f) => f.is_finite(),
        Num::I(_) => true,
    });
    nums.sort_by(|a, b| a.cmp(*b));
    nums.dedup_by(|a, b| a.cmp(*b) == Ordering::Equal);
    let mut reps = Vec::with_capacity(nums.len() * 2 + 1);
    let mut lo: Option<Num> = None;
    for &n in &nums {
        if let Some(r) = between(lo, Some(n), int) {
            reps.push(r);
        }
        if let Some(r) = point(n, int) {
            reps.push(r);
        }
        lo = Some(n);
    }
    if let Some(r) = between(lo, None, int) {
        reps.push(r);
    }
    reps
}

fn point(n: Num, int: bool) -> Option<Rep> {
    match n {
        Num::I(i) => Some(Rep::Value(Lit::Int(i))),
        Num::F(f) if !int => Some(Rep::Value(Lit::Float(f))),
        // An int fact only holds whole values in i64 range.
        Num::F(f) => int_above_or_at(f)
            .filter(|i| Num::I(*i).cmp(n) == Ordering::Equal)
            .map(|i| Rep::Value(Lit::Int(i))),
    }
}

/// 2^63 as a float: every `i64` lies in `[-2^63, 2^63)`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// The smallest `i64` at or above the finite float `f`, computed exactly.
fn int_above_or_at(f: f64) -> Option<i64> {
    if f >= TWO_63 {
        return None;
    }
    if f < -TWO_63 {
        return Some(i64::MIN);
    }
    // `ceil(f)` is integral and in [-2^63, 2^63]; only 2^63 itself does not fit.
    let c = f.ceil();
    if c >= TWO_63 {
        None
    } else {
        Some(c as i64)
    }
}

/// The smallest `i64` strictly above `n`.
fn int_above(n: Num) -> Option<i64> {
    match n {
        Num::I(i) => i.checked_add(1),
        Num::F(f) => {
            let i = int_above_or_at(f)?;
            if Num::I(i).cmp(n) == Ordering::Equal {
                i.checked_add(1)
            } else {
                Some(i)
            }
        }
    }
}

/// The largest `i64` strictly below `n`.
fn int_below(n: Num) -> Option<i64> {
    match n {
        Num::I(i) => i.checked_sub(1),
        Num::F(f) => {
            if f <= -TWO_63 {
                return None;
            }
            if f > TWO_63 {
                return Some(i64::MAX);
            }
            // `floor(f)` is integral and in [-2^63, 2^63].
            let fl = f.floor();
            if fl >= TWO_63 {
                return Some(i64::MAX);
            }
            let i = fl as i64;
            if Num::I(i).cmp(n) == Ordering::Equal {
                i.checked_sub(1)
            } else {
                Some(i)
            }
        }
    }
}

/// The smallest finite float strictly above `n`.
fn float_above(n: Num) -> Option<f64> {
    let f = match n {
        Num::F(f) => next_up(f),
        Num::I(i) => {
            // `i as f64` rounds; step up until it is above `i`.
            let mut f = i as f64;
            while Num::F(f).cmp(n) != Ordering::Greater {
                f = next_up(f);
            }
            f
        }
    };
    f.is_finite().then_some(f)
}

/// The largest finite float strictly below `n`.
fn float_below(n: Num) -> Option<f64> {
    let f = match n {
        Num::F(f) => next_down(f),
        Num::I(i) => {
            let mut f = i as f64;
            while Num::F(f).cmp(n) != Ordering::Less {
                f = next_down(f);
            }
            f
        }
    };
    f.is_finite().then_some(f)
}

/// A value of the fact's type strictly between `lo` and `hi` (either may be
/// unbounded), or `None` when there is none. Exact at any magnitude: the
/// smallest int and the smallest float above `lo` are computed without
/// rounding, so if the interval holds a value, one of them is it.
fn between(lo: Option<Num>, hi: Option<Num>, int: bool) -> Option<Rep> {
    let inside = |c: Num| {
        lo.is_none_or(|l| c.cmp(l) == Ordering::Greater)
            && hi.is_none_or(|h| c.cmp(h) == Ordering::Less)
    };
    let mut cands: Vec<Num> = Vec::with_capacity(6);
    // Readable values first.
    cands.push(Num::I(0));
    match (lo, hi) {
        (Some(l), _) => cands.extend(int_above(l).map(Num::I)),
        (None, Some(h)) => cands.extend(int_below(h).map(Num::I)),
        (None, None) => {}
    }
    if !int {
        cands.push(Num::F(0.5));
        match (lo, hi) {
            (Some(l), _) => cands.extend(float_above(l).map(Num::F)),
            (None, Some(h)) => cands.extend(float_below(h).map(Num::F)),
            (None, None) => {}
        }
    }
    cands.into_iter().find(|c| inside(*c)).map(|c| match c {
        Num::I(i) => Rep::Value(Lit::Int(i)),
        Num::F(f) => Rep::Value(Lit::Float(f)),
    })
}

fn next_up(f: f64) -> f64 {
    if !f.is_finite() {
        return f;
    }
    if f == 0.0 {
        return f64::from_bits(1);
    }
    let b = f.to_bits();
    f64::from_bits(if f > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(f: f64) -> f64 {
    -next_up(-f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a value compares with each literal.
    fn signature(v: Num, lits: &[Num]) -> Vec<Ordering> {
        lits.iter().map(|l| v.cmp(*l)).collect()
    }

    fn rep_num(r: &Rep) -> Num {
        match r {
            Rep::Value(Lit::Int(i)) => Num::I(*i),
            Rep::Value(Lit::Float(f)) => Num::F(*f),
            other => panic!("not a number: {other:?}"),
        }
    }

    /// Every value near the literals (ints and floats, at any magnitude)
    /// compares with the literals like some class representative does.
    #[test]
    fn number_classes_cover_every_value() {
        let two53 = 9_007_199_254_740_992i64;
        let sets: Vec<Vec<Num>> = vec![
            vec![Num::F(1e16)],
            vec![Num::F(9.223_372_036_854_776e18)],
            vec![Num::F(-9.223_372_036_854_776e18)],
            vec![Num::I(i64::MAX), Num::F(9.223_372_036_854_776e18)],
            vec![Num::I(i64::MIN)],
            vec![Num::I(two53 + 1), Num::F(two53 as f64 + 2.0)],
            vec![Num::I(two53), Num::I(two53 + 1), Num::F(two53 as f64)],
            vec![Num::F(0.5), Num::I(1), Num::F(1.5)],
            vec![Num::F(1e300), Num::F(-1e300), Num::I(0)],
            vec![Num::I(5), Num::F(5.0), Num::I(6)],
        ];
        for lits in sets {
            for int in [true, false] {
                let reps = number_classes(lits.clone(), int);
                let sigs: Vec<Vec<Ordering>> =
                    reps.iter().map(|r| signature(rep_num(r), &lits)).collect();
                let mut probes: Vec<Num> = vec![Num::I(0), Num::I(i64::MIN), Num::I(i64::MAX)];
                for l in &lits {
                    let (i, f) = match *l {
                        Num::I(i) => (i, i as f64),
                        Num::F(f) => (f.clamp(-9.2e18, 9.2e18) as i64, f),
                    };
                    for d in -3i64..=3 {
                        probes.extend(i.checked_add(d).map(Num::I));
                    }
                    let mut up = f;
                    let mut down = f;
                    for _ in 0..3 {
                        up = next_up(up);
                        down = next_down(down);
                        probes.push(Num::F(up));
                        probes.push(Num::F(down));
                    }
                    probes.push(Num::F(f));
                }
                for p in probes {
                    if int && matches!(p, Num::F(_)) {
                        continue;
                    }
                    let s = signature(p, &lits);
                    assert!(
                        sigs.contains(&s),
                        "{p:?} (int fact: {int}) against {lits:?} has no class; reps {reps:?}"
                    );
                }
            }
        }
    }
}
