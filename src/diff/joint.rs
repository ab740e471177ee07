//! Two policies on one fact table: the old table plus the custom facts only
//! the new policy declares, and the new policy's conditions renumbered onto
//! it, so that one abstraction (`crate::analysis::classes`, built over both
//! rule lists) cuts every fact's values by the literals of *both* policies.
//! Also the keys that tell identical conditions and identical effects.

use super::DiffError;
use crate::check::model::{Expr, ExprKind, Lit, Model};
use crate::decision::Action;
use crate::facts::{FactId, FactInfo, FactTable};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// The old table, then the new policy's custom facts the old one lacks; and
/// where each new fact id lands. A fact both declare with different types is
/// an error.
fn joint_table(old: &FactTable, new: &FactTable) -> Result<(FactTable, Vec<FactId>), DiffError> {
    let mut facts: Vec<FactInfo> = old.facts.clone();
    let mut index: HashMap<&str, usize> = old
        .facts
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    let mut map = Vec::with_capacity(new.facts.len());
    for f in &new.facts {
        match index.get(f.name.as_str()) {
            Some(&i) => {
                let have = &old.facts[i].ty;
                if *have != f.ty {
                    return Err(DiffError::FactType {
                        name: f.name.clone(),
                        old: have.describe(),
                        new: f.ty.describe(),
                    });
                }
                map.push(FactId(i as u16));
            }
            None => {
                let i = facts.len();
                if i > usize::from(u16::MAX) {
                    return Err(DiffError::TooManyFacts);
                }
                facts.push(f.clone());
                index.insert(f.name.as_str(), i);
                map.push(FactId(i as u16));
            }
        }
    }
    Ok((FactTable { facts }, map))
}

/// `e` with its fact ids renumbered.
fn remap(e: &Expr, map: &[FactId]) -> Expr {
    Expr {
        kind: remap_kind(&e.kind, map),
        span: e.span,
    }
}

fn remap_kind(k: &ExprKind, map: &[FactId]) -> ExprKind {
    let id = |i: &FactId| map.get(i.index()).copied().unwrap_or(*i);
    match k {
        ExprKind::Const(b) => ExprKind::Const(*b),
        ExprKind::Known(i) => ExprKind::Known(id(i)),
        ExprKind::IsTrue(i) => ExprKind::IsTrue(id(i)),
        ExprKind::Compare(i, op, lit) => ExprKind::Compare(id(i), *op, lit.clone()),
        ExprKind::InSet(i, lits) => ExprKind::InSet(id(i), lits.clone()),
        ExprKind::InNets(i, nets) => ExprKind::InNets(id(i), nets.clone()),
        ExprKind::Globs(i, globs) => ExprKind::Globs(id(i), globs.clone()),
        ExprKind::Regex(i, re) => ExprKind::Regex(id(i), re.clone()),
        ExprKind::All(inner) => ExprKind::All(Box::new(remap_kind(inner, map))),
        ExprKind::Not(inner) => ExprKind::Not(Box::new(remap(inner, map))),
        ExprKind::And(ps) => ExprKind::And(ps.iter().map(|p| remap(p, map)).collect()),
        ExprKind::Or(ps) => ExprKind::Or(ps.iter().map(|p| remap(p, map)).collect()),
    }
}

/// The two policies' conditions over one fact table: the old conditions as
/// they are (the old table is a prefix of the joint one), the new ones with
/// their fact ids renumbered; and each new fact id's joint id.
pub(crate) struct Joint {
    pub(crate) facts: FactTable,
    pub(crate) old: Vec<Option<Expr>>,
    pub(crate) new: Vec<Option<Expr>>,
    pub(crate) new_ids: Vec<FactId>,
}

impl Joint {
    /// Puts `old` and `new` on one fact table.
    pub(crate) fn new(old: &Model, new: &Model) -> Result<Joint, DiffError> {
        let (facts, map) = joint_table(&old.facts, &new.facts)?;
        Ok(Joint {
            facts,
            old: old.rules.iter().map(|r| r.when.clone()).collect(),
            new: new
                .rules
                .iter()
                .map(|r| r.when.as_ref().map(|e| remap(e, &map)))
                .collect(),
            new_ids: map,
        })
    }
}

/// Canonical texts of conditions (fact ids of the joint table, no spans):
/// two conditions with the same key are true, false and unknown together.
///
/// A list stands in a key as a number: its elements' text is written and
/// interned once per list (a named list is one `Arc` however often it is
/// used), not once per use. A 5,000-glob list used by 2,000 rules made
/// 2,000 copies of its 80 KB text per policy, hashed and compared whole.
/// Equal lists of the two policies (two `Arc`s) get the same number.
#[derive(Default)]
pub(crate) struct Keys {
    /// A list's `Arc` (its address) → its number.
    by_address: HashMap<usize, u32>,
    /// A list's text → its number.
    by_text: HashMap<String, u32>,
}

impl Keys {
    /// The key of `e` (`None`: a rule without `when`).
    pub(crate) fn condition(&mut self, e: Option<&Expr>) -> String {
        let mut out = String::new();
        match e {
            None => out.push('T'),
            Some(e) => self.key(&e.kind, &mut out),
        }
        out
    }

    /// The number of the list at `address`, its text written by `text`
    /// the first time the list is seen.
    fn list(&mut self, address: usize, text: impl FnOnce(&mut String)) -> u32 {
        if let Some(&n) = self.by_address.get(&address) {
            return n;
        }
        let mut t = String::new();
        text(&mut t);
        let next = self.by_text.len() as u32;
        let n = *self.by_text.entry(t).or_insert(next);
        self.by_address.insert(address, n);
        n
    }

    fn key(&mut self, k: &ExprKind, out: &mut String) {
        let _ = match k {
            ExprKind::Const(b) => write!(out, "{}", if *b { 'T' } else { 'F' }),
            ExprKind::Known(i) => write!(out, "K{}", i.0),
            ExprKind::IsTrue(i) => write!(out, "B{}", i.0),
            ExprKind::Compare(i, op, lit) => {
                let _ = write!(out, "C{}{op:?}", i.0);
                lit_key(lit, out);
                Ok(())
            }
            ExprKind::InSet(i, lits) => {
                let n = self.list(address(lits), |t| {
                    t.push('S');
                    for l in lits.iter() {
                        lit_key(l, t);
                        t.push(',');
                    }
                });
                write!(out, "S{}[{n}]", i.0)
            }
            ExprKind::InNets(i, nets) => {
                let n = self.list(address(nets), |t| {
                    t.push('N');
                    for net in nets.iter() {
                        let _ = write!(t, "{net},");
                    }
                });
                write!(out, "N{}[{n}]", i.0)
            }
            ExprKind::Globs(i, globs) => {
                let n = self.list(address(globs), |t| {
                    t.push('G');
                    for g in globs.iter() {
                        let _ = write!(t, "{}:{},", g.source.len(), g.source);
                    }
                });
                write!(out, "G{}[{n}]", i.0)
            }
            ExprKind::Regex(i, re) => {
                write!(out, "R{}:{}:{}", i.0, re.as_str().len(), re.as_str())
            }
            ExprKind::All(inner) => {
                out.push_str("A(");
                self.key(inner, out);
                write!(out, ")")
            }
            ExprKind::Not(inner) => {
                out.push_str("!(");
                self.key(&inner.kind, out);
                write!(out, ")")
            }
            ExprKind::And(ps) | ExprKind::Or(ps) => {
                out.push_str(if matches!(k, ExprKind::And(_)) {
                    "&("
                } else {
                    "|("
                });
                for p in ps {
                    self.key(&p.kind, out);
                    out.push(';');
                }
                write!(out, ")")
            }
        };
    }
}

/// The address of a list's shared elements: the same for every use of one
/// list (clones of one `Arc`), different for two lists alive together.
fn address<T>(list: &Arc<[T]>) -> usize {
    Arc::as_ptr(list).cast::<()>() as usize
}

fn lit_key(l: &Lit, out: &mut String) {
    let _ = match l {
        Lit::Bool(b) => write!(out, "b{b}"),
        Lit::Int(i) => write!(out, "i{i}"),
        Lit::Float(f) => write!(out, "f{:?}", f.to_bits()),
        Lit::Str(s) => write!(out, "s{}:{s}", s.len()),
        Lit::Ip(ip) => write!(out, "p{ip}"),
        Lit::Enum(e) => write!(out, "e{e}"),
    };
}

/// What a decision does, without the rule's name: disposition, reply,
/// quarantine bucket, alerts (in any order) and tags (in order: they make
/// the subject). Two action lists with the same signature decide the same.
pub(crate) fn signature(actions: &[Action]) -> String {
    let d = crate::decision::Decision {
        actions,
        rule: None,
    };
    let mut alerts: Vec<&str> = d.alerts().map(|a| a.as_str()).collect();
    alerts.sort_unstable();
    let mut out = String::new();
    let _ = write!(
        out,
        "{}|{:?}|{:?}|{:?}|{:?}",
        d.disposition(),
        d.reply(),
        d.quarantine(),
        alerts,
        d.tags().collect::<Vec<_>>()
    );
    out
}
