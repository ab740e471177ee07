//! The lints themselves: which questions to ask the search for each rule
//! (and the default), and how to word the answers.

use crate::analysis::classes::{intersect, intersects, Abstraction, Ranges, Rep};
use crate::analysis::search::{Con, Need, Outcome, Solver};
use crate::check::model::{Lit, Mode, Model};
use crate::decision::{Action, AlertTarget, Disposition};
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::facts::{FactId, FactType};
use crate::Policy;

/// Work budget of one query (expression nodes visited + values tried).
const QUERY_BUDGET: u64 = 200_000;
/// Work budget of the fallback query (the rule's own condition alone).
const FALLBACK_BUDGET: u64 = 50_000;
/// Work budget of a whole policy; past it, queries go straight to the fallback.
const TOTAL_BUDGET: u64 = 30_000_000;
/// Up to how many candidate rules `unreachable-rule` tries to name one that covers it.
const NAME_COVER_CANDIDATES: usize = 16;

const SCANNER_INFECTED: u32 = 1;
const SCANNER_ENCRYPTED: u32 = 2;
const SCANNER_ERROR: u32 = 3;
const SCANNER_TIMEOUT: u32 = 4;
const DIRECTION_OUTBOUND: u32 = 1;
const DIRECTION_INTERNAL: u32 = 2;

/// A required set of values for one fact variable.
type Phi = Vec<(u32, Vec<u32>)>;

/// Where a warning is reported: a rule or the default.
#[derive(Clone, Copy)]
enum Item<'m> {
    Rule(usize, &'m crate::check::model::RuleModel),
    Default,
}

struct Ctx<'m, 'a> {
    model: &'m Model,
    source: &'m str,
    abs: &'a Abstraction,
    solver: Solver<'a>,
    /// Per rule: the values of each fact it reads under which it can be true
    /// (only where that is not every value).
    proj: Vec<Vec<(u32, Ranges)>>,
    /// The earlier rules relevant to the current rule's reachability: a
    /// superset of those relevant to its queries with extra fact values.
    relevant: Option<(usize, Vec<usize>)>,
    out: Vec<Diagnostic>,
}

pub(crate) fn run(policy: &Policy, coverage: bool) -> Vec<Diagnostic> {
    let model = &policy.model;
    let source = policy.source.as_str();
    let mut out = Vec::new();
    unused(model, source, &mut out);
    if coverage {
        untested(policy, &mut out);
    }
    let abs = Abstraction::new(model, source);
    let mut ctx = Ctx::new(model, source, &abs);
    ctx.analyse();
    out.append(&mut ctx.out);
    out.retain(|d| !model.file_allows.contains(&d.code));
    out
}

fn unused(model: &Model, source: &str, out: &mut Vec<Diagnostic>) {
    for l in model.lists.iter().filter(|l| !l.used) {
        out.push(
            Diagnostic::new(
                Code::UnusedList,
                source,
                l.span,
                format!("list `{}` is declared but never used", l.name),
            )
            .with_help(format!(
                "remove it, or use it in a condition (`FACT in {0}` or `FACT matches {0}`)",
                l.name
            )),
        );
    }
    let customs = model.facts.facts.iter().skip(crate::facts::BUILTIN_COUNT);
    for ((info, span), used) in customs.zip(&model.fact_decls).zip(&model.fact_used) {
        if !used {
            out.push(
                Diagnostic::new(
                    Code::UnusedFact,
                    source,
                    *span,
                    format!("fact `{}` is declared but no rule uses it", info.name),
                )
                .with_help(
                    "remove the declaration, or test the fact in a rule's condition: a fact no rule reads never changes a decision",
                ),
            );
        }
    }
}

fn untested(policy: &Policy, out: &mut Vec<Diagnostic>) {
    let model = &policy.model;
    let mut reached = vec![false; model.rules.len()];
    for t in &model.tests {
        // The deciding rule's index, not its name: a name lookup per test
        // is tests × rules at the 100,000 limits.
        if let Some(r) = policy
            .decide_index(&t.given)
            .and_then(|i| reached.get_mut(i))
        {
            *r = true;
        }
    }
    for (rule, hit) in model.rules.iter().zip(reached) {
        if hit || rule.allows.contains(&Code::UntestedRule) {
            continue;
        }
        out.push(
            Diagnostic::new(
                Code::UntestedRule,
                &policy.source,
                rule.keyword,
                format!("no test reaches rule {:?}", rule.name),
            )
            .with_help(format!(
                "add a `test` whose facts make this rule decide (`expect rule {:?}`): a rule no test exercises is where policy mistakes hide",
                rule.name
            ))
            .in_rule(Some(&rule.name)),
        );
    }
}

fn disposition(actions: &[Action]) -> Option<Disposition> {
    actions.iter().find_map(|a| a.disposition().map(|d| d.0))
}

fn has_quarantine(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Quarantine { .. }))
}

fn alerts_sender(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Alert {
                to: AlertTarget::Sender
            }
        )
    })
}

fn marks(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Tag { .. } | Action::Alert { .. }))
}

impl<'m, 'a> Ctx<'m, 'a> {
    fn new(model: &'m Model, source: &'m str, abs: &'a Abstraction) -> Ctx<'m, 'a> {
        let solver = Solver::new(abs);
        let mut proj = Vec::with_capacity(abs.rules.len());
        for (expr, vars) in abs.rules.iter().zip(&abs.rule_vars) {
            let mut p = Vec::new();
            for &v in vars {
                if !abs.vars.get(v as usize).is_some_and(|x| x.is_fact()) {
                    continue;
                }
                let (t, _) = abs.project(expr, v);
                if t != abs.all_values(v) {
                    p.push((v, t));
                }
            }
            proj.push(p);
        }
        Ctx {
            model,
            source,
            abs,
            solver,
            proj,
            relevant: None,
            out: Vec::new(),
        }
    }

    fn budget_left(&self) -> bool {
        self.solver.work < TOTAL_BUDGET
    }

    /// The constraints for "`target` decides (or the default, for `None`) and the facts meet `phi`".
    fn constraints(&mut self, target: Option<usize>, phi: &Phi) -> Vec<Con<'a>> {
        self.constraints_indexed(target, phi).0
    }

    /// Like [`Ctx::constraints`], with the indexes of the earlier rules kept.
    fn constraints_indexed(
        &mut self,
        target: Option<usize>,
        phi: &Phi,
    ) -> (Vec<Con<'a>>, Vec<usize>) {
        let abs = self.abs;
        // Allowed values of fact variables: the target's projection and phi.
        let mut allowed: Vec<Option<Ranges>> = vec![None; self.model.facts.facts.len()];
        if let Some(r) = target {
            for (v, t) in self.proj.get(r).map_or(&[][..], |p| p.as_slice()) {
                if let Some(a) = allowed.get_mut(*v as usize) {
                    *a = Some(t.clone());
                }
            }
        }
        for (v, vals) in phi {
            if let Some(a) = allowed.get_mut(*v as usize) {
                let mut rs: Ranges = vals.iter().map(|c| (*c, *c + 1)).collect();
                rs.sort_unstable();
                *a = Some(match a.take() {
                    Some(prev) => intersect(&prev, &rs),
                    None => rs,
                });
            }
        }
        let upto = target.unwrap_or(abs.rules.len());
        let mut cons = Vec::with_capacity(upto + 1);
        let mut idx = Vec::new();
        let con = |i: usize, need| {
            abs.rules
                .get(i)
                .zip(abs.rule_vars.get(i))
                .map(|(expr, vars)| Con {
                    expr,
                    need,
                    vars: vars.as_slice(),
                })
        };
        if let Some(r) = target {
            cons.extend(con(r, Need::True));
        }
        let cached = match (&self.relevant, target) {
            (Some((r, list)), Some(t)) if *r == t => Some(list.as_slice()),
            _ => None,
        };
        let all: Vec<usize>;
        let candidates: &[usize] = match cached {
            Some(list) => list,
            None => {
                all = (0..upto).collect();
                &all
            }
        };
        // The scan is cheap per rule but quadratic over a policy: it counts as work.
        self.solver.work += (candidates.len() / 4) as u64;
        for &e in candidates {
            let relevant = self.proj.get(e).is_none_or(|p| {
                p.iter().all(|(v, t)| match allowed.get(*v as usize) {
                    Some(Some(a)) => intersects(t, a),
                    _ => !t.is_empty(),
                })
            });
            if relevant {
                if let Some(c) = con(e, Need::NotTrue) {
                    cons.push(c);
                    idx.push(e);
                }
            }
        }
        (cons, idx)
    }

    /// Solves with every combination of the values `phi` allows.
    fn solve_phi(&mut self, cons: &[Con<'_>], phi: &Phi, budget: u64) -> Outcome {
        let mut combos: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        for (v, vals) in phi {
            let mut next = Vec::with_capacity(combos.len() * vals.len());
            for c in &combos {
                for &val in vals {
                    let mut c = c.clone();
                    c.push((*v, val));
                    next.push(c);
                }
            }
            combos = next;
        }
        let mut gave_up = false;
        for init in combos {
            match self.solver.solve(cons, &init, budget) {
                Outcome::Sat(w) => return Outcome::Sat(w),
                Outcome::GaveUp => gave_up = true,
                Outcome::Unsat => {}
            }
        }
        if gave_up {
            Outcome::GaveUp
        } else {
            Outcome::Unsat
        }
    }

    /// Can `target` (or the default) decide with facts meeting `phi`?
    /// `Some(witness)` when it can (or may: budget exceeded), `None` when it cannot.
    fn can_decide(&mut self, target: Option<usize>, phi: &Phi) -> Option<Option<Vec<(u32, u32)>>> {
        // The default's few queries always get their own budget: its fallback
        // (no constraints at all) would warn about nearly everything.
        if self.budget_left() || target.is_none() {
            let cons = self.constraints(target, phi);
            match self.solve_phi(&cons, phi, QUERY_BUDGET) {
                Outcome::Sat(w) => return Some(Some(w)),
                Outcome::Unsat => return None,
                Outcome::GaveUp => {}
            }
        }
        // Fallback: the target's own condition alone (an over-approximation).
        let cons: Vec<Con<'_>> = match target {
            Some(r) => self
                .abs
                .rules
                .get(r)
                .zip(self.abs.rule_vars.get(r))
                .map(|(expr, vars)| Con {
                    expr,
                    need: Need::True,
                    vars,
                })
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        match self.solve_phi(&cons, phi, FALLBACK_BUDGET) {
            Outcome::Sat(w) => Some(Some(w)),
            Outcome::Unsat => None,
            Outcome::GaveUp => Some(None),
        }
    }

    fn allowed(&self, item: Item<'_>, code: Code) -> bool {
        self.model.file_allows.contains(&code)
            || match item {
                Item::Rule(_, r) => r.allows.contains(&code),
                Item::Default => self.model.default.allows.contains(&code),
            }
    }

    fn analyse(&mut self) {
        let model = self.model;
        for (i, rule) in model.rules.iter().enumerate() {
            let item = Item::Rule(i, rule);
            // Can the rule decide at all?
            self.relevant = None;
            let reach = if self.budget_left() {
                let (cons, idx) = self.constraints_indexed(Some(i), &Vec::new());
                let outcome = self.solver.solve(&cons, &[], QUERY_BUDGET);
                self.relevant = Some((i, idx));
                outcome
            } else {
                Outcome::GaveUp
            };
            match reach {
                Outcome::Unsat => {
                    if !self.allowed(item, Code::UnreachableRule) {
                        self.unreachable(i);
                    }
                    continue;
                }
                Outcome::Sat(w) => {
                    self.action_lints(item, &rule.actions, Some(w));
                }
                Outcome::GaveUp => self.action_lints(item, &rule.actions, None),
            }
        }
        let actions = &model.default.actions;
        let silent = disposition(actions) == Some(Disposition::Discard)
            && !has_quarantine(actions)
            && !self.allowed(Item::Default, Code::SilentDiscard);
        if !silent && !self.value_lints_wanted(Item::Default, actions) {
            return;
        }
        if let Some(w) = self.can_decide(None, &Vec::new()) {
            self.action_lints(Item::Default, actions, w);
        }
    }

    fn value_lints_wanted(&self, item: Item<'_>, actions: &[Action]) -> bool {
        let d = disposition(actions);
        let checks = [
            (Code::VirusPasses, d == Some(Disposition::Pass)),
            (Code::FailOpen, d == Some(Disposition::Pass)),
            (
                Code::OutboundVirusEscapes,
                matches!(
                    d,
                    Some(Disposition::Pass | Disposition::Bounce | Disposition::Reject)
                ),
            ),
            (Code::BackscatterAlert, alerts_sender(actions)),
            (Code::BackscatterBounce, d == Some(Disposition::Bounce)),
            (Code::RejectAfterQueue, d == Some(Disposition::Reject)),
            (Code::TempfailPermanent, d == Some(Disposition::Tempfail)),
            (
                Code::AlertNullSender,
                alerts_sender(actions) || d == Some(Disposition::Bounce),
            ),
        ];
        checks
            .iter()
            .any(|(code, applies)| *applies && !self.allowed(item, *code))
    }

    /// The lints about an action list that can decide (`reach`: a witness, if known).
    fn action_lints(&mut self, item: Item<'m>, actions: &[Action], reach: Option<Vec<(u32, u32)>>) {
        let target = match item {
            Item::Rule(i, _) => Some(i),
            Item::Default => None,
        };
        let d = disposition(actions);
        let scanner = u32::from(FactId::SCANNER.0);
        let direction = u32::from(FactId::DIRECTION.0);
        let forges = u32::from(FactId::FORGES_SENDER.0);
        let infected: Phi = vec![(scanner, vec![SCANNER_INFECTED])];

        if d == Some(Disposition::Discard)
            && !has_quarantine(actions)
            && !self.allowed(item, Code::SilentDiscard)
        {
            self.report(
                item,
                Code::SilentDiscard,
                reach.as_deref(),
                |w| format!("{w} discards mail without `quarantine`"),
                "add `quarantine` so the recipient can still review and rescue the message: a bare `discard` loses mail for good",
            );
        }
        if d == Some(Disposition::Pass) && !self.allowed(item, Code::VirusPasses) {
            if let Some(w) = self.can_decide(target, &infected) {
                let ctx = self.direction_words(w.as_deref());
                self.report(
                    item,
                    Code::VirusPasses,
                    w.as_deref(),
                    |wh| format!("infected{ctx} mail reaches `pass` via {wh}"),
                    "discard and quarantine infected mail (add a `scanner == infected` rule before this one): a `pass` delivers the virus",
                );
            }
        }
        if d == Some(Disposition::Pass) && !self.allowed(item, Code::FailOpen) {
            let failed: Phi = vec![(scanner, vec![SCANNER_ERROR, SCANNER_TIMEOUT])];
            if let Some(w) = self.can_decide(target, &failed) {
                let which = self
                    .fact_value_words(w.as_deref(), scanner)
                    .unwrap_or("error");
                self.report(
                    item,
                    Code::FailOpen,
                    w.as_deref(),
                    |wh| format!("a scanner `{which}` result reaches `pass` via {wh}: unscanned mail is delivered"),
                    "answer `tempfail` when the scanner fails or times out, so the client retries later: passing unscanned mail lets viruses through",
                );
            } else if !marks(actions) {
                let enc: Phi = vec![(scanner, vec![SCANNER_ENCRYPTED])];
                if let Some(w) = self.can_decide(target, &enc) {
                    self.report(
                        item,
                        Code::FailOpen,
                        w.as_deref(),
                        |wh| format!("unscannable (`encrypted`) mail reaches `pass` via {wh} with neither a `tag` nor an `alert`"),
                        "add a `tag` (e.g. \"***UNCHECKED***\") or an `alert` to this `pass`: unscannable mail may hide a virus, so deliver it only marked",
                    );
                }
            }
        }
        if matches!(
            d,
            Some(Disposition::Pass | Disposition::Bounce | Disposition::Reject)
        ) && !self.allowed(item, Code::OutboundVirusEscapes)
        {
            let phi: Phi = vec![
                (scanner, vec![SCANNER_INFECTED]),
                (direction, vec![DIRECTION_OUTBOUND, DIRECTION_INTERNAL]),
            ];
            if let Some(w) = self.can_decide(target, &phi) {
                let dir = self
                    .fact_value_words(w.as_deref(), direction)
                    .unwrap_or("outbound");
                let disp = d.map_or("pass", |d| d.as_str());
                self.report(
                    item,
                    Code::OutboundVirusEscapes,
                    w.as_deref(),
                    |wh| format!("infected `{dir}` mail reaches `{disp}` via {wh}: the virus leaves the site"),
                    "discard and quarantine outbound and internal infected mail and `alert admin`: a site must emit no viruses, and a pass, bounce or reject sends the virus (or a DSN carrying it) on",
                );
            }
        }
        if alerts_sender(actions) && !self.allowed(item, Code::BackscatterAlert) {
            if let Some(w) = self.can_decide(target, &infected) {
                let ctx = self.direction_words(w.as_deref());
                self.report(
                    item,
                    Code::BackscatterAlert,
                    w.as_deref(),
                    |wh| format!("infected{ctx} mail reaches `alert sender` via {wh}"),
                    "alert the admin or the recipient instead: mass-mailing viruses forge the envelope sender, so the notice reaches an innocent party (backscatter)",
                );
            }
        }
        if d == Some(Disposition::Bounce) && !self.allowed(item, Code::BackscatterBounce) {
            let phi: Phi = vec![(scanner, vec![SCANNER_INFECTED]), (forges, vec![1, 2])];
            if let Some(w) = self.can_decide(target, &phi) {
                let how = match self.fact_value_words(w.as_deref(), forges) {
                    Some("true") => "whose virus forges senders",
                    _ => "whose virus may forge senders (`forges_sender` unknown)",
                };
                self.report(
                    item,
                    Code::BackscatterBounce,
                    w.as_deref(),
                    |wh| format!("infected mail {how} reaches `bounce` via {wh}"),
                    "discard and quarantine instead, or guard the bounce with `forges_sender == false`: the DSN goes to the forged sender, an innocent party (backscatter)",
                );
            }
        }
        if d == Some(Disposition::Reject)
            && self.model.mode == Mode::AfterQueue
            && !self.allowed(item, Code::RejectAfterQueue)
        {
            if let Some(w) = self.can_decide(target, &infected) {
                self.report(
                    item,
                    Code::RejectAfterQueue,
                    w.as_deref(),
                    |wh| format!("infected mail reaches `reject` via {wh} in `mode after_queue`"),
                    "discard and quarantine instead (or `bounce` for non-forging viruses): after the queue the MTA turns a reject into a DSN that carries the infected original to the (forged) sender",
                );
            }
        }
        if d == Some(Disposition::Tempfail) && !self.allowed(item, Code::TempfailPermanent) {
            let phi: Phi = vec![(scanner, vec![SCANNER_INFECTED, SCANNER_ENCRYPTED])];
            if let Some(w) = self.can_decide(target, &phi) {
                let which = self
                    .fact_value_words(w.as_deref(), scanner)
                    .unwrap_or("infected");
                self.report(
                    item,
                    Code::TempfailPermanent,
                    w.as_deref(),
                    |wh| format!("`{which}` mail reaches `tempfail` via {wh}"),
                    "decide for good (discard and quarantine infected mail; pass encrypted mail with a tag): the condition is permanent, so the sender's MTA retries until it gives up and bounces",
                );
            }
        }
        let null_sender_action = if alerts_sender(actions) {
            Some("alert sender")
        } else if d == Some(Disposition::Bounce) {
            Some("bounce")
        } else {
            None
        };
        if let Some(what) = null_sender_action {
            if !self.allowed(item, Code::AlertNullSender) {
                if let Some(null) = self.null_sender_class() {
                    let phi: Phi = vec![(u32::from(FactId::SENDER.0), vec![null])];
                    if let Some(w) = self.can_decide(target, &phi) {
                        self.report(
                            item,
                            Code::AlertNullSender,
                            w.as_deref(),
                            |wh| format!("mail with the null sender `<>` reaches `{what}` via {wh}"),
                            "guard it with `sender != \"\"`: the null sender marks bounces and notices themselves, and nothing may be sent back to it (RFC 5321), so the notice is lost or loops",
                        );
                    }
                }
            }
        }
    }

    fn null_sender_class(&self) -> Option<u32> {
        let v = self.abs.vars.get(FactId::SENDER.index())?;
        v.reps
            .iter()
            .position(|r| matches!(r, Rep::Value(Lit::Str(s)) if s.is_empty()))
            .map(|i| i as u32)
    }

    /// ` `outbound`` when the witness knows the direction.
    fn direction_words(&self, w: Option<&[(u32, u32)]>) -> String {
        match self.fact_value_words(w, u32::from(FactId::DIRECTION.0)) {
            Some(d) => format!(" `{d}`"),
            None => String::new(),
        }
    }

    /// The enum/bool value name a witness gives a fact, if known.
    fn fact_value_words(&self, w: Option<&[(u32, u32)]>, var: u32) -> Option<&'m str> {
        let (_, val) = w?.iter().find(|(v, _)| *v == var)?;
        let info = self.model.facts.facts.get(var as usize)?;
        match &info.ty {
            FactType::Enum(names) => names.get(*val as usize).map(String::as_str),
            FactType::Bool => match val {
                0 => Some("false"),
                1 => Some("true"),
                _ => None,
            },
            _ => None,
        }
    }

    /// Renders a witness as `fact = value, ...`.
    fn example(&self, w: &[(u32, u32)]) -> String {
        let mut w: Vec<(u32, u32)> = w.to_vec();
        w.sort_unstable();
        w.dedup_by_key(|x| x.0);
        let mut parts = Vec::new();
        for &(v, val) in &w {
            let Some(var) = self.abs.vars.get(v as usize) else {
                continue;
            };
            if !var.is_fact() {
                continue;
            }
            let Some(info) = self.model.facts.facts.get(v as usize) else {
                continue;
            };
            let name = &info.name;
            if val == var.known {
                parts.push(format!("{name} unknown"));
                continue;
            }
            if let Some(set) = self.abs.sets.iter().find(|s| s.fact == v) {
                if let Some(names) = set.describe(var.known, &w) {
                    parts.push(format!("{name} = {names}"));
                    continue;
                }
            }
            if val == var.other {
                let pats: Vec<String> = w
                    .iter()
                    .filter_map(|&(p, pv)| {
                        let pvar = self.abs.vars.get(p as usize)?;
                        let (fact, desc) = pvar.pattern.as_ref()?;
                        (usize::from(fact.0) == v as usize).then(|| {
                            if pv == 1 {
                                desc.clone()
                            } else {
                                format!("not ({desc})")
                            }
                        })
                    })
                    .collect();
                if pats.is_empty() {
                    parts.push(format!("{name} = another value"));
                } else {
                    parts.push(format!("{name} = a value where {}", pats.join(" and ")));
                }
                continue;
            }
            let value = match var.reps.get(val as usize) {
                Some(Rep::Value(lit)) => lit.as_val().describe(&info.ty),
                Some(Rep::Other) | None => "another value".to_owned(),
            };
            parts.push(format!("{name} = {value}"));
        }
        if parts.is_empty() {
            "any facts".to_owned()
        } else {
            parts.join(", ")
        }
    }

    fn item_words(&self, item: Item<'_>) -> (String, Span, Option<String>) {
        match item {
            Item::Rule(_, r) => (
                format!("rule {:?}", r.name),
                r.keyword,
                Some(r.name.clone()),
            ),
            Item::Default => match self.model.default.keyword {
                Some(k) => ("the default".to_owned(), k, Some("default".to_owned())),
                None => {
                    // No `default` keyword: point at the end of the last line with text.
                    let end = self.source.trim_end().len();
                    let start = self.source[..end]
                        .char_indices()
                        .next_back()
                        .map_or(0, |(i, _)| i);
                    (
                        "the implicit default (`pass`)".to_owned(),
                        Span::new(start, end),
                        Some("default".to_owned()),
                    )
                }
            },
        }
    }

    fn report(
        &mut self,
        item: Item<'_>,
        code: Code,
        witness: Option<&[(u32, u32)]>,
        message: impl FnOnce(&str) -> String,
        help: &str,
    ) {
        let (words, span, rule) = self.item_words(item);
        let mut d = self
            .diagnostic(code, span, message(&words))
            .with_help(help)
            .in_rule(rule.as_deref());
        d.example = Some(match witness {
            Some(w) => self.example(w),
            None => "(not computed: the analysis budget ran out)".to_owned(),
        });
        self.out.push(d);
    }

    /// A diagnostic at `span` (`Policy::check` places all of them in one pass).
    fn diagnostic(&self, code: Code, span: Span, message: String) -> Diagnostic {
        Diagnostic::new(code, self.source, span, message)
    }

    fn unreachable(&mut self, i: usize) {
        let Some(rule) = self.model.rules.get(i) else {
            return;
        };
        let (Some(expr), Some(vars)) = (self.abs.rules.get(i), self.abs.rule_vars.get(i)) else {
            return;
        };
        let own = Con {
            expr,
            need: Need::True,
            vars,
        };
        let alone = self.solver.solve(&[own], &[], FALLBACK_BUDGET);
        let (message, help) = if alone == Outcome::Unsat {
            (
                format!(
                    "rule {:?} can never apply: its condition is never true",
                    rule.name
                ),
                "fix the condition (no message satisfies it as written) or remove the rule"
                    .to_owned(),
            )
        } else {
            let (_, earlier) = self.constraints_indexed(Some(i), &Vec::new());
            let mut cover = None;
            if earlier.len() <= NAME_COVER_CANDIDATES {
                for e in earlier {
                    let Some((eexpr, evars)) = self.abs.rules.get(e).zip(self.abs.rule_vars.get(e))
                    else {
                        continue;
                    };
                    let pair = [
                        own,
                        Con {
                            expr: eexpr,
                            need: Need::NotTrue,
                            vars: evars,
                        },
                    ];
                    if self.solver.solve(&pair, &[], FALLBACK_BUDGET) == Outcome::Unsat {
                        cover = self.model.rules.get(e).map(|r| r.name.clone());
                        break;
                    }
                }
            }
            match cover {
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
        let d = self
            .diagnostic(Code::UnreachableRule, rule.keyword, message)
            .with_help(help)
            .in_rule(Some(&rule.name));
        self.out.push(d);
    }
}
