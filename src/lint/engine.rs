//! The driver: for every rule (and the default) asks the analysis whether
//! it can decide at all (`unreachable-rule` when it cannot), then each
//! action lint of the table that is about its actions. Every warning comes
//! from a confirmed example: facts that evaluation sends to that rule with
//! the values the lint asks about. What the budget (or the theory) could not
//! settle is named in one `analysis-incomplete` note, never guessed.

use super::table::{values, ActionLint, Actions, Found, ACTION_LINTS, EMPTY_STRING};
use crate::analysis::classes::{Abstraction, Rep};
use crate::analysis::decide::{Decider, Example, Phi, Value, Values, Verdict};
use crate::check::model::{Lit, Model, RuleModel, Val};
use crate::compile::Compiled;
use crate::decision::Action;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::eval::FactSource;
use crate::facts::{FactId, FactType};

/// Work budget of one question (search, theory, refinements).
const QUERY_BUDGET: u64 = 400_000;
/// Building the abstraction may use one part in this many of the budget.
const ABSTRACTION_SHARE: u64 = 2;
/// Work budget of proving which rule covers an unreachable one.
const COVER_BUDGET: u64 = 50_000;
/// Up to how many candidate rules `unreachable-rule` tries to name one that covers it.
const NAME_COVER_CANDIDATES: usize = 16;
/// Up to how many unfinished rules the `analysis-incomplete` note names.
const NAMED_UNFINISHED: usize = 10;

/// Where a warning is reported: a rule or the default.
#[derive(Clone, Copy)]
enum Item<'m> {
    Rule(usize, &'m RuleModel),
    Default,
}

/// Concrete facts for the compiled evaluator.
struct Concrete<'v> {
    values: &'v Values,
}

impl FactSource for Concrete<'_> {
    fn value(&mut self, id: FactId) -> Option<Val<'_>> {
        self.values.get(id.index())?.as_ref().map(Value::as_val)
    }
}

pub(crate) struct Ctx<'m, 'a> {
    model: &'m Model,
    source: &'m str,
    compiled: &'m Compiled,
    decider: Decider<'a>,
    out: Vec<Diagnostic>,
    /// Items whose questions were not all settled.
    unfinished: Vec<Item<'m>>,
    /// Each warning's example: code, rule (`None`: the default), facts.
    findings: Vec<Finding>,
    /// The whole work budget.
    budget: u64,
    /// Per fact: the first rule whose condition reads it (`usize::MAX`:
    /// none).
    first_reader: Vec<usize>,
}

/// A warning's example, as facts (for tests that evaluate it).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Finding {
    pub(crate) code: Code,
    pub(crate) rule: Option<usize>,
    pub(crate) values: Values,
}

/// What a run found besides its diagnostics: the examples, and the rules
/// (`None`: the default) left unfinished.
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Details {
    pub(crate) findings: Vec<Finding>,
    pub(crate) unfinished: Vec<Option<usize>>,
}

/// Lints `model`'s rules and default (`compiled` is its evaluation form).
/// The work budget of linting `source` ([`crate::Limits::lint_work_per_mb`]).
pub(crate) fn budget(source: &str, per_mb: u64) -> u64 {
    let bytes = (source.len() as u64).max(1 << 20);
    per_mb.saturating_mul(bytes) >> 20
}

pub(crate) fn run(
    model: &Model,
    source: &str,
    compiled: &Compiled,
    budget: u64,
) -> Vec<Diagnostic> {
    run_detailed(model, source, compiled, budget).0
}

/// [`run`], with the examples and unfinished items.
pub(crate) fn run_detailed(
    model: &Model,
    source: &str,
    compiled: &Compiled,
    budget: u64,
) -> (Vec<Diagnostic>, Details) {
    let abs = Abstraction::new(model, budget / ABSTRACTION_SHARE);
    let mut decider = Decider::new(&abs, model.facts.facts.len());
    decider.add_work(abs.work);
    let mut ctx = Ctx {
        model,
        source,
        compiled,
        decider,
        out: Vec::new(),
        unfinished: Vec::new(),
        findings: Vec::new(),
        budget,
        first_reader: first_readers(model),
    };
    ctx.analyse();
    let unfinished = ctx
        .unfinished
        .iter()
        .map(|it| match it {
            Item::Rule(i, _) => Some(*i),
            Item::Default => None,
        })
        .collect();
    ctx.incomplete_note();
    let details = Details {
        findings: ctx.findings,
        unfinished,
    };
    (ctx.out, details)
}

/// Per fact: the index of the first rule whose condition reads it
/// (`usize::MAX` when none does).
fn first_readers(model: &Model) -> Vec<usize> {
    use crate::check::model::ExprKind;
    let mut first = vec![usize::MAX; model.facts.facts.len()];
    for (i, rule) in model.rules.iter().enumerate() {
        let Some(e) = &rule.when else { continue };
        // Iterative: conditions may nest deeply.
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            let id = match &e.kind {
                ExprKind::Not(x) => {
                    stack.push(x);
                    continue;
                }
                ExprKind::And(ps) | ExprKind::Or(ps) => {
                    stack.extend(ps.iter());
                    continue;
                }
                ExprKind::Known(id) => Some(*id),
                kind => crate::eval::leaf_fact(kind),
            };
            if let Some(f) = id.and_then(|id| first.get_mut(id.index())) {
                *f = (*f).min(i);
            }
        }
    }
    first
}

impl<'m> Ctx<'m, '_> {
    /// `ex` (facts that `item` decides) with the values `phi` asks for, when
    /// no rule up to `item` reads those facts: changing them then changes
    /// no rule's truth, so `item` still decides (no search, no evaluation).
    fn with_unread_values(&self, item: Item<'_>, ex: &Example, phi: &Phi) -> Option<Example> {
        let upto = match item {
            Item::Rule(i, _) => i,
            Item::Default => self.model.rules.len(),
        };
        let abs = self.decider.abs;
        let mut out = ex.clone();
        for (v, classes) in phi {
            let f = *v as usize;
            if self.first_reader.get(f).is_none_or(|r| *r <= upto) {
                return None;
            }
            let var = abs
                .vars
                .get(f)
                .filter(|x| x.is_fact() && x.slot_of.is_none())?;
            if abs.slots.get(f).is_some_and(|s| !s.is_empty()) {
                return None;
            }
            let &c = classes.first()?;
            let value = if c == var.known {
                None
            } else {
                Some(Value::One(abs.rep(*v, c)?.clone()))
            };
            *out.values.get_mut(f)? = value;
            match out.witness.assign.iter_mut().find(|(x, _)| x == v) {
                Some(a) => a.1 = c,
                None => out.witness.assign.push((*v, c)),
            }
        }
        Some(out)
    }

    fn allowed(&self, item: Item<'_>, code: Code) -> bool {
        self.model.file_allows.contains(&code)
            || match item {
                Item::Rule(_, r) => r.allows.contains(&code),
                Item::Default => self.model.default.allows.contains(&code),
            }
    }

    fn budget_left(&self) -> bool {
        self.decider.work() < self.budget
    }

    fn unfinished(&mut self, item: Item<'m>) {
        let same = |a: &Item<'_>| match (a, &item) {
            (Item::Rule(i, _), Item::Rule(j, _)) => i == j,
            (Item::Default, Item::Default) => true,
            _ => false,
        };
        if !self.unfinished.iter().any(same) {
            self.unfinished.push(item);
        }
    }

    /// Can `item` decide with facts meeting `phi`? Confirmed by evaluation.
    fn decides(&mut self, item: Item<'_>, phi: &Phi, budget: u64) -> Verdict {
        let compiled = self.compiled;
        let mut first_true = |values: &Values| compiled.decide(&mut Concrete { values });
        let n = self.model.rules.len();
        let target = match item {
            Item::Rule(i, _) => Some(i),
            Item::Default => None,
        };
        self.decider
            .decides(0..n, target, phi, budget, &mut first_true)
    }

    fn analyse(&mut self) {
        let model = self.model;
        for (i, rule) in model.rules.iter().enumerate() {
            let item = Item::Rule(i, rule);
            if !self.budget_left() {
                self.unfinished(item);
                continue;
            }
            match self.decides(item, &Vec::new(), QUERY_BUDGET) {
                Verdict::Never(cover) => {
                    if !self.allowed(item, Code::UnreachableRule) {
                        self.unreachable(i, &cover);
                    }
                }
                Verdict::Decides(ex) => self.action_lints(item, &rule.actions, Some(ex)),
                Verdict::Unknown => {
                    self.unfinished(item);
                    self.action_lints(item, &rule.actions, None);
                }
            }
        }
        // The default's few questions get their own budget.
        let actions = &model.default.actions;
        if self.lints_wanted(Item::Default, actions) {
            match self.decides(Item::Default, &Vec::new(), QUERY_BUDGET) {
                Verdict::Never(_) => {}
                Verdict::Decides(ex) => self.action_lints(Item::Default, actions, Some(ex)),
                Verdict::Unknown => {
                    self.unfinished(Item::Default);
                    self.action_lints(Item::Default, actions, None);
                }
            }
        }
    }

    fn actions<'x>(&self, actions: &'x [Action]) -> Actions<'x> {
        Actions {
            disposition: actions.iter().find_map(|a| a.disposition().map(|d| d.0)),
            actions,
            mode: self.model.mode,
        }
    }

    /// Whether any action lint is about these actions and not allowed.
    fn lints_wanted(&self, item: Item<'_>, actions: &[Action]) -> bool {
        let a = self.actions(actions);
        ACTION_LINTS
            .iter()
            .any(|l| (l.about)(&a) && !self.allowed(item, l.code))
    }

    /// The question a lint asks, in classes.
    fn phi(&self, lint: &ActionLint) -> Option<Phi> {
        let abs = self.decider.abs;
        let mut phi = Phi::new();
        for (fact, vals) in lint.asks {
            let v = u32::from(fact.0);
            let var = abs.vars.get(fact.index())?;
            let classes: Vec<u32> = vals
                .iter()
                .filter_map(|&x| match x {
                    EMPTY_STRING => var
                        .reps
                        .iter()
                        .position(|r| matches!(r, Rep::Value(Lit::Str(s)) if s.is_empty()))
                        .map(|c| c as u32),
                    values::UNKNOWN => Some(var.known),
                    x => (x < var.known).then_some(x),
                })
                .collect();
            phi.push((v, classes));
        }
        Some(phi)
    }

    /// The lints about an action list (`reach`: an example of it deciding, if known).
    fn action_lints(&mut self, item: Item<'m>, actions: &[Action], reach: Option<Example>) {
        let a = self.actions(actions);
        let mut reported: Vec<Code> = Vec::new();
        for lint in ACTION_LINTS {
            if !(lint.about)(&a) || self.allowed(item, lint.code) || reported.contains(&lint.code) {
                continue;
            }
            let Some(phi) = self.phi(lint) else { continue };
            // The reachability example may already have the asked values.
            let meets = |ex: &Example| {
                phi.iter().all(|(v, vals)| {
                    let known = self
                        .decider
                        .abs
                        .vars
                        .get(*v as usize)
                        .map_or(0, |x| x.known);
                    vals.contains(&ex.witness.value(*v).unwrap_or(known))
                })
            };
            let unread = reach
                .as_ref()
                .and_then(|ex| self.with_unread_values(item, ex, &phi));
            let verdict = match (&reach, unread) {
                (Some(ex), _) if meets(ex) => Verdict::Decides(ex.clone()),
                (_, Some(ex)) => Verdict::Decides(ex),
                _ if !self.budget_left() => Verdict::Unknown,
                _ => self.decides(item, &phi, QUERY_BUDGET),
            };
            match verdict {
                Verdict::Decides(ex) => {
                    reported.push(lint.code);
                    self.report(item, lint, &a, &ex, &phi);
                }
                Verdict::Never(_) => {}
                Verdict::Unknown => self.unfinished(item),
            }
        }
    }

    /// The enum/bool value name an example gives a fact, if known.
    fn value_name(&self, ex: &Example, fact: FactId) -> Option<&'m str> {
        let info = self.model.facts.facts.get(fact.index())?;
        match (ex.values.get(fact.index())?.as_ref()?, &info.ty) {
            (Value::One(Lit::Enum(i)), FactType::Enum(names)) => {
                names.get(usize::from(*i)).map(String::as_str)
            }
            (Value::One(Lit::Bool(b)), FactType::Bool) => Some(if *b { "true" } else { "false" }),
            _ => None,
        }
    }

    /// Renders an example as `fact = value, ...`: the facts the analysis
    /// fixed and those the lint asks about; every other fact is unknown.
    fn example(&self, ex: &Example, phi: &Phi) -> String {
        let mut vars: Vec<u32> = ex
            .witness
            .assign
            .iter()
            .map(|(v, _)| *v)
            .chain(phi.iter().map(|(v, _)| *v))
            .filter(|v| (*v as usize) < self.model.facts.facts.len())
            .collect();
        vars.sort_unstable();
        vars.dedup();
        let mut parts = Vec::new();
        for v in vars {
            let Some(info) = self.model.facts.facts.get(v as usize) else {
                continue;
            };
            match ex.values.get(v as usize) {
                Some(Some(value)) => parts.push(format!(
                    "{} = {}",
                    info.name,
                    value.as_val().describe(&info.ty)
                )),
                _ => parts.push(format!("{} unknown", info.name)),
            }
        }
        if parts.is_empty() {
            "any facts".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The example without the set names it does not need: each name whose
    /// removal still sends the facts to `item` goes (lints never ask about
    /// sets, so the lint's values stay).
    fn minimize(&self, item: Item<'_>, ex: &Example) -> Example {
        let target = match item {
            Item::Rule(i, _) => Some(i),
            Item::Default => None,
        };
        let mut ex = ex.clone();
        for f in 0..ex.values.len() {
            let mut k = 0;
            while let Some(Some(Value::Set(names))) = ex.values.get(f) {
                if k >= names.len() {
                    break;
                }
                let mut trial = ex.values.clone();
                if let Some(Some(Value::Set(names))) = trial.get_mut(f) {
                    names.remove(k);
                }
                if self.compiled.decide(&mut Concrete { values: &trial }) == target {
                    ex.values = trial;
                } else {
                    k += 1;
                }
            }
        }
        ex
    }

    fn item_words(&self, item: Item<'_>) -> (String, Span, Option<String>) {
        match item {
            Item::Rule(_, r) => (
                format!("rule {:?}", r.name),
                r.keyword,
                Some(r.name.clone()),
            ),
            Item::Default => match self.model.default.keyword {
                Some(k) => ("the default".to_owned(), k, None),
                None => {
                    // No `default` keyword: point at the end of the last line with text.
                    let end = self.source.trim_end().len();
                    let start = self
                        .source
                        .get(..end)
                        .and_then(|s| s.char_indices().next_back())
                        .map_or(0, |(i, _)| i);
                    (
                        "the implicit default (`pass`)".to_owned(),
                        Span::new(start, end),
                        None,
                    )
                }
            },
        }
    }

    fn report(
        &mut self,
        item: Item<'_>,
        lint: &ActionLint,
        a: &Actions<'_>,
        ex: &Example,
        phi: &Phi,
    ) {
        let (via, span, rule) = self.item_words(item);
        let ex = &self.minimize(item, ex);
        let found = Found {
            via: &via,
            direction: self.value_name(ex, FactId::DIRECTION),
            scanner: self.value_name(ex, FactId::SCANNER),
            forges_sender: self.value_name(ex, FactId::FORGES_SENDER),
            disposition: a.disposition.map_or("pass", |d| d.as_str()),
            actions: a,
        };
        let message = (lint.message)(&found);
        self.findings.push(Finding {
            code: lint.code,
            rule: match item {
                Item::Rule(i, _) => Some(i),
                Item::Default => None,
            },
            values: ex.values.clone(),
        });
        let mut d = Diagnostic::new(lint.code, self.source, span, message)
            .with_help(lint.help)
            .in_rule(rule.as_deref());
        d.example = Some(self.example(ex, phi));
        self.out.push(d);
    }

    fn unreachable(&mut self, i: usize, cover: &[usize]) {
        let Some(rule) = self.model.rules.get(i) else {
            return;
        };
        // `Never` with no earlier rule is the target alone proved never
        // true; with some, the target alone was satisfiable (the first
        // question of the refinement loop), so neither needs asking again.
        let (message, help) = if cover.is_empty() {
            (
                format!(
                    "rule {:?} can never apply: its condition is never true",
                    rule.name
                ),
                "fix the condition (no message satisfies it as written) or remove the rule"
                    .to_owned(),
            )
        } else {
            let mut named = None;
            if let [e] = cover {
                // Proved already: the target true and `e` not true is impossible.
                named = self.model.rules.get(*e).map(|r| r.name.clone());
            } else if cover.len() <= NAME_COVER_CANDIDATES {
                for &e in cover {
                    if self.decider.covers(e, i, COVER_BUDGET) {
                        named = self.model.rules.get(e).map(|r| r.name.clone());
                        break;
                    }
                }
            }
            match named {
                Some(c) => (
                    format!("rule {:?} can never apply: rule {c:?} before it already decides every message it matches", rule.name),
                    format!("remove it, or move it before rule {c:?} if it should win"),
                ),
                None => (
                    format!("rule {:?} can never apply: earlier rules decide every message it matches", rule.name),
                    "remove it, or move it before the rules that cover it if it should win".to_owned(),
                ),
            }
        };
        let d = Diagnostic::new(Code::UnreachableRule, self.source, rule.keyword, message)
            .with_help(help)
            .in_rule(Some(&rule.name));
        self.out.push(d);
    }

    /// One note naming the items whose analysis did not finish.
    fn incomplete_note(&mut self) {
        if self.unfinished.is_empty() || self.model.file_allows.contains(&Code::AnalysisIncomplete)
        {
            return;
        }
        let items = std::mem::take(&mut self.unfinished);
        let mut names: Vec<String> = items
            .iter()
            .take(NAMED_UNFINISHED)
            .map(|it| match it {
                Item::Rule(_, r) => format!("{:?}", r.name),
                Item::Default => "the default".to_owned(),
            })
            .collect();
        if items.len() > NAMED_UNFINISHED {
            names.push(format!("{} more", items.len() - NAMED_UNFINISHED));
        }
        let Some(first) = items.first() else { return };
        let (_, span, _) = self.item_words(*first);
        let what = if items.len() == 1 { "item" } else { "items" };
        let d = Diagnostic::new(
            Code::AnalysisIncomplete,
            self.source,
            span,
            format!(
                "the analysis could not settle {} {what} (work budget, some regexes, or more conditions on one set fact than it reasons about exactly): {}; warnings about them may be missing",
                items.len(),
                names.join(", ")
            ),
        )
        .with_help("nothing was guessed: every warning reported was confirmed on an example, and no rule was called unreachable without proof; simpler conditions (fewer regexes, smaller lists, fewer conditions on `virus` per rule) let the analysis finish");
        self.out.push(d);
    }
}
