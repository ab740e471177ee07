//! Evaluation: the reference evaluator (a plain walk over the checked model),
//! fact sources with memoisation, and `explain`.
//!
//! Kleene three-valued logic: a comparison with an unknown fact is unknown;
//! `and`/`or`/`not` follow Kleene's tables; a rule applies only when its
//! condition is true. `and` and `or` stop as soon as the answer is settled,
//! so a fact is only asked for when the rule being tried needs it.

pub(crate) mod explain;

use crate::check::model::{cmp_numbers, Expr, ExprKind, Lit, Model, Val};
use crate::decision::Decision;
use crate::facts::{
    canonical_ip, FactId, FactKey, FactProvider, FactTable, FactType, FactValue, Facts, CODE_OTHER,
    CODE_UNKNOWN,
};
use crate::limits::MAX_FACT_SLOTS;
use std::mem::ManuallyDrop;

// `MemoSource::asked` has one bit per slot.
const _: () = assert!(MAX_FACT_SLOTS <= 64);
use std::net::IpAddr;

use crate::analysis::truth;
pub(crate) use crate::analysis::truth::Truth;

/// Where the evaluator gets fact values.
pub(crate) trait FactSource {
    /// The value of a fact, converted to its declared type; `None` = unknown.
    fn value(&mut self, id: FactId) -> Option<Val<'_>>;

    /// Pattern `i` of a shared scan ([`crate::scan`]) of `group`'s fact:
    /// whether it matches (unknown for an unknown fact), or `None` when
    /// this source keeps no scan memo (the leaf then tests the value
    /// itself).
    #[inline]
    fn scan(&mut self, group: &crate::scan::ScanGroup, i: usize) -> Option<Truth> {
        let _ = (group, i);
        None
    }

    /// Whether any bit of `masks` (word of the group's answers, mask) of a
    /// shared scan of `group`'s fact is set (unknown for an unknown fact),
    /// or `None` when this source keeps no scan memo. `list` numbers the
    /// masks (from 1), for a source that keeps answers.
    #[inline]
    fn scan_any(
        &mut self,
        group: &crate::scan::ScanGroup,
        masks: &[(u16, u64)],
        list: u32,
    ) -> Option<Truth> {
        let _ = (group, masks, list);
        None
    }

    /// The decision table's coordinate of an enum (`is_bool` false, values
    /// below `known`) or bool fact: the value's index, `known` for unknown,
    /// `None` for a value the table was not built for.
    #[inline]
    fn code(&mut self, id: FactId, known: u32, is_bool: bool) -> Option<u32> {
        match self.value(id) {
            None => Some(known),
            Some(Val::Bool(b)) if is_bool => Some(u32::from(b)),
            Some(Val::Enum(i)) if !is_bool && u32::from(i) < known => Some(u32::from(i)),
            Some(_) => None,
        }
    }
}

/// Converts a supplied value to the fact's type; a value of another type is unknown.
pub(crate) fn convert<'v>(id: FactId, ty: &FactType, v: &'v FactValue<'_>) -> Option<Val<'v>> {
    Some(match (ty, v) {
        (FactType::Bool, FactValue::Bool(b)) => Val::Bool(*b),
        (FactType::Int, FactValue::Int(i)) => Val::Int(*i),
        // A whole float within i64 range counts as that int.
        (FactType::Int, FactValue::Number(f))
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 =>
        {
            Val::Int(*f as i64)
        }
        (FactType::Number, FactValue::Int(i)) => Val::Int(*i),
        (FactType::Number, FactValue::Number(f)) if f.is_finite() => Val::Float(*f),
        (FactType::String | FactType::StringSet, FactValue::Str(s)) => Val::Str(s),
        (FactType::StringSet, FactValue::Set(names)) => Val::Set(names),
        (FactType::Ip, FactValue::Ip(ip)) => Val::Ip(canonical_ip(*ip)),
        (FactType::Ip, FactValue::Str(s)) => Val::Ip(canonical_ip(s.parse::<IpAddr>().ok()?)),
        (FactType::Enum(_), FactValue::Direction(d)) if id == FactId::DIRECTION => {
            Val::Enum(*d as u16)
        }
        (FactType::Enum(_), FactValue::Scanner(s)) if id == FactId::SCANNER => Val::Enum(*s as u16),
        (FactType::Enum(values), FactValue::Str(s)) => {
            Val::Enum(values.iter().position(|x| x == s)? as u16)
        }
        _ => return None,
    })
}

/// Reads a [`Facts`] value directly (it is already in memory: nothing to memoise).
pub(crate) struct DirectSource<'f, 't> {
    pub(crate) facts: &'f Facts,
    pub(crate) table: &'t FactTable,
}

impl FactSource for DirectSource<'_, '_> {
    #[inline(always)]
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        // A built-in fact holding a value of its own type (what the `Facts`
        // builder stores) reads without the table: its type is fixed.
        // A one-name `virus` (`Facts::virus`, stored as the name alone,
        // inline with its slot empty when it is short) reads as text: every
        // condition holds on text exactly as on the one-name set (a set
        // fact takes text as a one-element set); `ShownSource` reads it as
        // the set for `explain`'s display.
        match self.facts.builtin(id) {
            Some(v) => {
                if let Some(v) = convert_builtin(id, v) {
                    return Some(v);
                }
            }
            None if id == FactId::VIRUS => {
                if let Some(name) = self.facts.inline_name() {
                    return Some(Val::Str(name));
                }
            }
            None => {}
        }
        self.value_slow(id)
    }

    #[inline(always)]
    fn code(&mut self, id: FactId, known: u32, is_bool: bool) -> Option<u32> {
        // The built-in enums and bools as the builder stores them: their
        // coordinate is kept beside the value (the same coordinates the
        // default method computes; a built-in key's `is_bool` is fixed by
        // its type, so a stored bool code is only ever read as a bool).
        match self.facts.table_code(id) {
            CODE_UNKNOWN => Some(known),
            CODE_OTHER => self.code_slow(id, known, is_bool),
            c => {
                let c = u32::from(c - 1);
                (c < known).then_some(c)
            }
        }
    }
}

impl DirectSource<'_, '_> {
    /// [`FactSource::code`] of any value, converted by the fact's type.
    #[inline(always)]
    fn code_slow(&mut self, id: FactId, known: u32, is_bool: bool) -> Option<u32> {
        match self.value_slow(id) {
            None => Some(known),
            Some(Val::Bool(b)) if is_bool => Some(u32::from(b)),
            Some(Val::Enum(i)) if !is_bool && u32::from(i) < known => Some(u32::from(i)),
            Some(_) => None,
        }
    }

    /// Any fact, converted by its entry in the policy's table.
    #[inline(never)]
    fn value_slow(&mut self, id: FactId) -> Option<Val<'_>> {
        if id == FactId::VIRUS {
            if let Some(name) = self.facts.one_name() {
                return Some(Val::Str(name));
            }
        }
        let info = self.table.facts.get(id.index())?;
        let v = self.facts.value_ref(id, &info.name)?;
        convert(id, &info.ty, v)
    }
}

/// [`DirectSource`] as `explain` reads it: a one-name `virus` built by
/// [`Facts::virus`] reads as the set it stands for, so that its value is
/// shown as supplied (`["A"]`); the truth of every condition is the same.
pub(crate) struct ShownSource<'f, 't>(pub(crate) DirectSource<'f, 't>);

impl FactSource for ShownSource<'_, '_> {
    #[inline]
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        if id == FactId::VIRUS {
            if let Some(names) = self.0.facts.one_name_set() {
                return Some(Val::Set(names));
            }
        }
        self.0.value(id)
    }

    #[inline]
    fn code(&mut self, id: FactId, known: u32, is_bool: bool) -> Option<u32> {
        self.0.code(id, known, is_bool)
    }
}

/// [`convert`] for a built-in fact holding a value of its own type (the
/// built-ins' types are fixed: [`FactTable::builtins`]); `None` for any
/// other value, which [`convert`] handles.
#[inline(always)]
pub(crate) fn convert_builtin<'v>(id: FactId, v: &'v FactValue<'_>) -> Option<Val<'v>> {
    match (id, v) {
        (FactId::DIRECTION, FactValue::Direction(d)) => Some(Val::Enum(*d as u16)),
        (FactId::SCANNER, FactValue::Scanner(s)) => Some(Val::Enum(*s as u16)),
        (FactId::FORGES_SENDER | FactId::AUTHENTICATED, FactValue::Bool(b)) => Some(Val::Bool(*b)),
        (FactId::CLIENT_IP, FactValue::Ip(ip)) => Some(Val::Ip(canonical_ip(*ip))),
        (FactId::VIRUS, FactValue::Set(names)) => Some(Val::Set(names)),
        (FactId::VIRUS | FactId::SENDER | FactId::RECIPIENT, FactValue::Str(s)) => {
            Some(Val::Str(s))
        }
        (FactId::SIZE | FactId::SPAM_SCORE, FactValue::Int(i)) => Some(Val::Int(*i)),
        _ => None,
    }
}

/// One memoised fact.
enum Slot<'p> {
    Unasked,
    Unknown,
    Known(FactValue<'p>),
}

/// Asks an embedder's provider for each fact at most once per evaluation,
/// in a fixed table on the stack (no heap allocation).
pub(crate) struct MemoSource<'p, 't, P: FactProvider + ?Sized> {
    provider: &'p P,
    table: &'t FactTable,
    /// Dropped by hand ([`Drop`] below): only the slots that were asked for
    /// can hold a value, and dropping all 64 slots one by one (a call each,
    /// now that a value may own a set of names) cost more than the
    /// evaluation itself.
    cache: ManuallyDrop<[Slot<'p>; MAX_FACT_SLOTS]>,
    /// One bit per slot that was filled.
    asked: u64,
}

impl<'p, 't, P: FactProvider + ?Sized> MemoSource<'p, 't, P> {
    pub(crate) fn new(provider: &'p P, table: &'t FactTable) -> Self {
        MemoSource {
            provider,
            table,
            cache: ManuallyDrop::new(std::array::from_fn(|_| Slot::Unasked)),
            asked: 0,
        }
    }
}

impl<P: FactProvider + ?Sized> Drop for MemoSource<'_, '_, P> {
    fn drop(&mut self) {
        // Every other slot is `Unasked` and owns nothing, so leaving the
        // array itself undropped leaks nothing.
        let mut bits = self.asked;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(slot) = self.cache.get_mut(i) {
                drop(std::mem::replace(slot, Slot::Unasked));
            }
        }
    }
}

impl<P: FactProvider + ?Sized> FactSource for MemoSource<'_, '_, P> {
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        let info = self.table.facts.get(id.index())?;
        let slot = self.cache.get_mut(id.index())?;
        if let Slot::Unasked = slot {
            // `MAX_FACT_SLOTS` is 64: every slot index has its bit.
            self.asked |= 1u64 << (id.index() % 64);
            *slot = match self.provider.fact(FactKey {
                id,
                name: &info.name,
            }) {
                Some(v) => Slot::Known(v),
                None => Slot::Unknown,
            };
        }
        match slot {
            Slot::Known(v) => convert(id, &info.ty, v),
            _ => None,
        }
    }
}

/// Evaluates a condition with Kleene logic.
pub(crate) fn eval_expr(e: &Expr, src: &mut dyn FactSource) -> Truth {
    eval_expr_traced(e, src, &mut |_, _, _, _| {})
}

/// The fact a leaf tests.
pub(crate) fn leaf_fact(kind: &ExprKind) -> Option<FactId> {
    match kind {
        ExprKind::IsTrue(id)
        | ExprKind::Compare(id, _, _)
        | ExprKind::InSet(id, _)
        | ExprKind::InNets(id, _)
        | ExprKind::Globs(id, _)
        | ExprKind::Regex(id, _) => Some(*id),
        ExprKind::All(inner) => leaf_fact(inner),
        _ => None,
    }
}

/// Tests a leaf against a known value. On a set of names a leaf holds when
/// any name satisfies it, and `!=` when none equals the literal (it is
/// `not ==`); the empty set satisfies no leaf but `!=`.
pub(crate) fn test_leaf(kind: &ExprKind, v: Val<'_>) -> bool {
    if let ExprKind::All(inner) = kind {
        // Non-vacuous: the empty set is not "all PUA".
        return match v {
            Val::Set(names) => {
                !names.is_empty() && names.iter().all(|n| test_leaf(inner, Val::Str(n)))
            }
            one => test_leaf(inner, one),
        };
    }
    if let Val::Set(names) = v {
        return match kind {
            ExprKind::Compare(_, crate::check::model::Op::Ne, lit) => {
                !names.iter().any(|n| lit.equals(Val::Str(n)))
            }
            _ => names.iter().any(|n| test_leaf(kind, Val::Str(n))),
        };
    }
    match kind {
        ExprKind::IsTrue(_) => v == Val::Bool(true),
        ExprKind::Compare(_, op, lit) => match lit {
            Lit::Int(_) | Lit::Float(_) => cmp_numbers(v, lit).is_some_and(|o| op.holds(o)),
            _ => {
                let eq = lit.equals(v);
                match op {
                    crate::check::model::Op::Ne => !eq,
                    _ => eq,
                }
            }
        },
        ExprKind::InSet(_, lits) => lits.iter().any(|l| l.equals(v)),
        ExprKind::InNets(_, nets) => match v {
            Val::Ip(ip) => nets.iter().any(|n| n.contains(&ip)),
            _ => false,
        },
        ExprKind::Globs(_, globs) => match v {
            Val::Str(s) => globs.iter().any(|g| g.matches(s)),
            _ => false,
        },
        ExprKind::Regex(_, re) => match v {
            Val::Str(s) => re.is_match(s),
            _ => false,
        },
        _ => false,
    }
}

/// First rule whose condition is true decides; otherwise the default.
pub(crate) fn decide<'p>(model: &'p Model, src: &mut dyn FactSource) -> Decision<'p> {
    for rule in &model.rules {
        let applies = match &rule.when {
            None => true,
            Some(e) => eval_expr(e, src) == Truth::True,
        };
        if applies {
            return Decision {
                actions: &rule.actions,
                rule: Some(&rule.name),
            };
        }
    }
    Decision {
        actions: &model.default.actions,
        rule: None,
    }
}

/// Receives each evaluated leaf: its span, the fact read, its value, its truth.
pub(crate) type LeafRecorder<'r> =
    dyn FnMut(crate::diagnostics::Span, Option<FactId>, Option<Val<'_>>, Truth) + 'r;

/// Like [`eval_expr`], reporting every leaf it evaluates to `record`
/// (leaf span, fact read, its value, the leaf's truth).
pub(crate) fn eval_expr_traced(
    e: &Expr,
    src: &mut dyn FactSource,
    record: &mut LeafRecorder<'_>,
) -> Truth {
    match &e.kind {
        ExprKind::Not(inner) => eval_expr_traced(inner, src, record).not(),
        ExprKind::And(parts) => truth::all(parts, |p| eval_expr_traced(p, src, record)),
        ExprKind::Or(parts) => truth::any(parts, |p| eval_expr_traced(p, src, record)),
        ExprKind::Const(b) => {
            let t = Truth::from_bool(*b);
            record(e.span, None, None, t);
            t
        }
        ExprKind::Known(id) => {
            let v = src.value(*id);
            let t = Truth::from_bool(v.is_some());
            record(e.span, Some(*id), v, t);
            t
        }
        leaf => {
            let id = leaf_fact(leaf);
            let v = id.and_then(|id| src.value(id));
            let t = match v {
                Some(v) => Truth::from_bool(test_leaf(leaf, v)),
                None => Truth::Unknown,
            };
            record(e.span, id, v, t);
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{dedup_names, Direction, Scanner, BUILTIN_COUNT};
    use std::borrow::Cow;

    /// Values of every shape, for every built-in fact.
    fn values() -> Vec<FactValue<'static>> {
        let mut v = vec![
            FactValue::Bool(true),
            FactValue::Bool(false),
            FactValue::Int(7),
            FactValue::Number(2.5),
            FactValue::Number(3.0),
            FactValue::Number(f64::NAN),
            FactValue::Str(Cow::Borrowed("inbound")),
            FactValue::Str(Cow::Borrowed("infected")),
            FactValue::Str(Cow::Borrowed("10.1.2.3")),
            FactValue::Str(Cow::Borrowed("W32/Sobig.F@MM")),
            FactValue::Ip("10.1.2.3".parse().unwrap_or(std::net::IpAddr::from([0; 4]))),
            FactValue::Ip(
                "::ffff:10.1.2.3"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0; 4])),
            ),
            FactValue::set(["a", "b"]),
            FactValue::set(Vec::<String>::new()),
        ];
        v.extend(Direction::ALL.map(FactValue::Direction));
        v.extend(Scanner::ALL.map(FactValue::Scanner));
        v
    }

    #[test]
    fn builtin_fast_paths_convert_as_the_table_does() {
        let table = FactTable::builtins();
        for i in 0..BUILTIN_COUNT {
            let id = FactId(i as u16);
            let info = table.get(id);
            for v in values() {
                if let Some(fast) = convert_builtin(id, &v) {
                    assert_eq!(
                        Some(fast),
                        convert(id, &info.ty, &v),
                        "{} = {v:?}",
                        info.name
                    );
                }
                let mut facts = Facts::new();
                facts.set(&info.name, v.clone());
                let mut src = DirectSource {
                    facts: &facts,
                    table: &table,
                };
                let expected = convert(id, &info.ty, &v);
                assert_eq!(src.value(id), expected, "{} = {v:?}", info.name);
                // The table coordinate, read in place, as the generic method reads it.
                let (known, is_bool) = match &info.ty {
                    FactType::Bool => (2, true),
                    FactType::Enum(values) => (values.len() as u32, false),
                    _ => continue,
                };
                let generic = match expected {
                    None => Some(known),
                    Some(Val::Bool(b)) if is_bool => Some(u32::from(b)),
                    Some(Val::Enum(e)) if !is_bool && u32::from(e) < known => Some(u32::from(e)),
                    Some(_) => None,
                };
                assert_eq!(
                    src.code(id, known, is_bool),
                    generic,
                    "{} = {v:?}",
                    info.name
                );
            }
            // The builder's one-name `virus` (stored as the name alone)
            // reads as the set, as `set` stores it.
            if id == FactId::VIRUS {
                for names in [vec!["A"], vec!["A", "B"], vec!["A", "A"]] {
                    let built = names.iter().fold(Facts::new(), |f, n| f.virus(*n));
                    let mut set = Facts::new();
                    set.set("virus", FactValue::set(names.clone()));
                    let shown = |facts: &Facts| {
                        let mut src = ShownSource(DirectSource {
                            facts,
                            table: &table,
                        });
                        format!("{:?}", src.value(id))
                    };
                    assert_eq!(shown(&built), shown(&set), "{names:?}");
                    assert!(shown(&built).starts_with("Some(Set("), "{names:?}");
                    // Evaluation reads the one name as text.
                    let mut src = DirectSource {
                        facts: &built,
                        table: &table,
                    };
                    let expected = match names.len() {
                        1 => r#"Some(Str("A"))"#.to_owned(),
                        _ => format!(
                            "{:?}",
                            Some(Val::Set(&dedup_names(
                                names.iter().map(|n| n.to_string()).collect()
                            )))
                        ),
                    };
                    assert_eq!(format!("{:?}", src.value(id)), expected, "{names:?}");
                }
            }
            // Unknown.
            let facts = Facts::new();
            let mut src = DirectSource {
                facts: &facts,
                table: &table,
            };
            assert_eq!(src.value(id), None);
        }
    }
}
