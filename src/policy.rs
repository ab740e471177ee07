//! The public facade: [`Policy`] ties the stages together.

use crate::check::{self, model::Model};
use crate::compile::{self, Compiled};
use crate::decision::Decision;
use crate::diagnostics::{self, Code, Diagnostic, LineIndex, Span};
use crate::eval::{self, explain::Explanation, DirectSource, MemoSource, ShownSource};
use crate::facts::{FactId, FactKey, FactProvider, Facts};
use crate::facts_json::{self, FactsError, FactsInput};
use crate::facts_limits::{self, FactsLimitError};
use crate::limits::Limits;
use crate::syntax;
use std::fmt;

pub use crate::check::model::Mode;

/// A parsed and checked policy, ready to evaluate. `Send + Sync`: share it
/// between threads with an `Arc`.
///
/// ```
/// use mailpolicy::{Direction, Disposition, Facts, Policy, Scanner};
/// let policy = Policy::parse(r#"
///     rule "scanner failed" { when scanner in [error, timeout] then tempfail }
///     rule "outbound virus" {
///         when direction == outbound and scanner == infected
///         then discard, quarantine "outbound", alert admin
///     }
///     rule "virus" { when scanner == infected then discard, quarantine }
///     default pass
/// "#)?;
/// let facts = Facts::new().direction(Direction::Outbound).scanner(Scanner::Infected);
/// let decision = policy.evaluate(&facts);
/// assert_eq!(decision.disposition(), Disposition::Discard);
/// assert_eq!(decision.quarantine(), Some("outbound"));
/// assert_eq!(decision.rule(), Some("outbound virus"));
/// // Unknown facts never make a rule apply: an unknown scanner result passes here.
/// assert_eq!(policy.evaluate(&Facts::new()).disposition(), Disposition::Pass);
/// # Ok::<(), mailpolicy::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) model: Model,
    /// The evaluation form of `model` (see `crate::compile`).
    pub(crate) compiled: Compiled,
    pub(crate) source: String,
    /// Line starts of `source`, for positions in traces and test reports.
    pub(crate) lines: LineIndex,
    /// Warnings found while checking (e.g. an unknown lint in `allow`).
    pub(crate) check_warnings: Vec<Diagnostic>,
    /// The limits it was parsed with (facts JSON is read within them too).
    pub(crate) limits: Limits,
}

/// A policy that cannot be used: every error found, each with a position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ParseError {
    diagnostics: Vec<Diagnostic>,
}

impl ParseError {
    /// The errors (and any warnings found alongside), in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for ParseError {
    /// Each error as `error[code]: LINE:COL: message`, its line, a caret and a help line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.errors() {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Policy {
    /// Parses and checks a policy with the default [`Limits`].
    pub fn parse(source: &str) -> Result<Policy, ParseError> {
        Policy::parse_with_limits(source, &Limits::default())
    }

    /// Parses and checks a policy from bytes: invalid UTF-8 is an error at its position.
    pub fn parse_bytes(source: &[u8]) -> Result<Policy, ParseError> {
        Policy::parse_bytes_with_limits(source, &Limits::default())
    }

    /// Parses and checks a policy from bytes with the given limits: invalid
    /// UTF-8 is an error at its position, as with [`Policy::parse_bytes`].
    ///
    /// ```
    /// use mailpolicy::{Limits, Policy};
    /// let src = br#"rule "a" { when size > 1 then pass } rule "b" { when size > 2 then pass }"#;
    /// // Each rule is tried with its one test: 2 steps a rule.
    /// let small = Limits { max_eval_steps: 3, ..Limits::default() };
    /// let err = Policy::parse_bytes_with_limits(src, &small).unwrap_err();
    /// assert_eq!(err.diagnostics()[0].code.as_str(), "limit");
    /// let raised = Limits { max_eval_steps: 4, ..Limits::default() };
    /// assert!(Policy::parse_bytes_with_limits(src, &raised).is_ok());
    /// let err = Policy::parse_bytes_with_limits(b"rule \"a\xff\" { then pass }", &raised).unwrap_err();
    /// assert_eq!((err.diagnostics()[0].line, err.diagnostics()[0].column), (1, 8));
    /// ```
    pub fn parse_bytes_with_limits(source: &[u8], limits: &Limits) -> Result<Policy, ParseError> {
        match std::str::from_utf8(source) {
            Ok(s) => Policy::parse_with_limits(s, limits),
            Err(e) => {
                let at = e.valid_up_to();
                // The prefix before the first bad byte is UTF-8 by definition.
                let prefix = std::str::from_utf8(&source[..at]).unwrap_or("");
                Err(ParseError::from_diagnostics(
                    prefix,
                    vec![utf8_error(source, &e)],
                ))
            }
        }
    }

    /// Parses and checks a policy with the given limits.
    pub fn parse_with_limits(source: &str, limits: &Limits) -> Result<Policy, ParseError> {
        let parsed = syntax::parse(source, limits);
        if parsed.fatal {
            return Err(ParseError::from_diagnostics(source, parsed.errors));
        }
        let lines = LineIndex::new(source);
        let (model, mut diagnostics) = check::check(source, &parsed.file, limits, &lines);
        if !parsed.errors.is_empty() {
            diagnostics.extend(parsed.errors);
            diagnostics.sort_by_key(|d| (d.span.start, d.code));
            return Err(ParseError::from_diagnostics(source, diagnostics));
        }
        match model {
            Some(model) => {
                let compiled = Compiled::new(&model);
                if let Some(past) = compiled.passes_past(&model, limits.max_scan_passes) {
                    let d = check::scan_passes_error(
                        source,
                        past.span,
                        model.rules.get(past.rule).map_or("", |r| r.name.as_str()),
                        &model.facts.get(past.fact).name,
                        past.passes,
                        limits.max_scan_passes,
                    );
                    return Err(ParseError::from_diagnostics(source, vec![d]));
                }
                if let Some(past) =
                    compiled.steps_past(&model, limits.max_eval_steps, limits.max_set_names)
                {
                    let rule = model.rules.get(past.rule);
                    let d = check::eval_steps_error(
                        source,
                        rule.map_or(Span::default(), |r| r.keyword),
                        rule.map_or("", |r| r.name.as_str()),
                        past.steps,
                        limits.max_eval_steps,
                    );
                    return Err(ParseError::from_diagnostics(source, vec![d]));
                }
                let mut check_warnings = diagnostics;
                diagnostics::place_all(source, &mut check_warnings);
                Ok(Policy {
                    compiled,
                    model,
                    source: source.to_owned(),
                    lines,
                    check_warnings,
                    limits: limits.clone(),
                })
            }
            None => Err(ParseError::from_diagnostics(source, diagnostics)),
        }
    }

    /// The lints: the experts' advice about this policy (warnings), sorted by
    /// position. Honors `allow(...)`.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut out = self.check_warnings.clone();
        out.extend(crate::lint::lint(
            &self.model,
            &self.source,
            &self.compiled,
            &self.limits,
            false,
        ));
        diagnostics::place_all(&self.source, &mut out);
        out
    }

    /// Like [`Policy::check`], with `untested-rule` for rules no `test` reaches.
    pub fn check_with_coverage(&self) -> Vec<Diagnostic> {
        let mut out = self.check_warnings.clone();
        out.extend(crate::lint::lint(
            &self.model,
            &self.source,
            &self.compiled,
            &self.limits,
            true,
        ));
        diagnostics::place_all(&self.source, &mut out);
        out
    }

    /// Decides what to do with a message for one recipient. Infallible and
    /// allocation-free; unknown facts are unknown (see the crate docs).
    /// Within the per-evaluation cost bound for facts within the policy's
    /// facts limits (see [`Policy::check_facts`]).
    pub fn evaluate(&self, facts: &Facts) -> Decision<'_> {
        let rule = self.compiled.decide_scanning(&mut DirectSource {
            facts,
            table: &self.model.facts,
        });
        compile::decision(&self.model, rule)
    }

    /// Decides with facts from an embedder's provider, asking for each fact
    /// at most once, and only when a rule needs it: the rules are tried in
    /// order, as [`Policy::evaluate_lazy_reference`] does. A policy whose
    /// rules together take more than [`Limits::max_eval_steps`] steps is
    /// evaluated through its decision table and value indexes instead, to
    /// stay within the per-evaluation cost bound: the provider is then asked
    /// for the enum and bool facts the table is indexed by first, and for a
    /// gated fact (`recipient`, `virus`, ...) when the first rule it gates is
    /// reached (each still at most once; same decision).
    pub fn evaluate_lazy<P: FactProvider + ?Sized>(&self, provider: &P) -> Decision<'_> {
        let mut src = MemoSource::new(provider, &self.model.facts);
        let rule = if self.compiled.walk_within(self.limits.max_eval_steps) {
            self.compiled.walk_scanning(&mut src)
        } else {
            self.compiled.decide_scanning(&mut src)
        };
        compile::decision(&self.model, rule)
    }

    /// The reference walk with a lazy provider: what [`Policy::evaluate_lazy`]
    /// is tested against (same decision, same facts asked in the same order).
    #[doc(hidden)]
    pub fn evaluate_lazy_reference<P: FactProvider + ?Sized>(&self, provider: &P) -> Decision<'_> {
        eval::decide(
            &self.model,
            &mut MemoSource::new(provider, &self.model.facts),
        )
    }

    /// The most steps ([`Limits::max_eval_steps`]) one evaluation of this
    /// policy may take, for facts within its facts limits, and the steps of
    /// all its rules together (what trying every rule takes): lets the
    /// benches and the attack corpus report them.
    #[doc(hidden)]
    pub fn eval_steps(&self) -> (u64, u64) {
        self.compiled.steps(&self.model, self.limits.max_set_names)
    }

    /// Compiles the checked policy again and returns the compiled form's heap
    /// bytes: lets the benches time the compile step alone.
    #[doc(hidden)]
    pub fn recompile(&self) -> usize {
        Compiled::new(&self.model).heap_bytes()
    }

    /// An estimate of the heap memory the compiled evaluation form uses,
    /// in bytes, with the decision table's shape: `(bytes, cells, indexed facts)`.
    /// (The checked model and the source text come on top; the benches
    /// measure the whole `Policy` with a counting allocator.)
    #[doc(hidden)]
    pub fn compiled_size(&self) -> (usize, usize, usize) {
        compile::describe(&self.compiled)
    }

    /// The reference evaluator: a plain walk over the checked rules. Kept as
    /// the model that faster evaluators are tested against.
    pub fn evaluate_reference(&self, facts: &Facts) -> Decision<'_> {
        eval::decide(
            &self.model,
            &mut DirectSource {
                facts,
                table: &self.model.facts,
            },
        )
    }

    /// Which rules were tried and why each did (not) apply.
    pub fn explain(&self, facts: &Facts) -> Explanation<'_> {
        let mut direct = ShownSource(DirectSource {
            facts,
            table: &self.model.facts,
        });
        // Each leaf's truth from the compiled form, through the shared
        // scans: bounded as evaluation is.
        let mut tracer = self.compiled.tracer(&mut direct);
        eval::explain::explain(
            &self.model,
            &self.source,
            &self.lines,
            self.limits.max_explain_chars,
            &mut |i, e, record| tracer.rule(i, e, record),
        )
    }

    /// [`Policy::explain`] with every leaf tested by the reference walk
    /// (no compiled form, no shared scans): what it is tested against.
    #[doc(hidden)]
    pub fn explain_reference(&self, facts: &Facts) -> Explanation<'_> {
        let mut direct = ShownSource(DirectSource {
            facts,
            table: &self.model.facts,
        });
        eval::explain::explain(
            &self.model,
            &self.source,
            &self.lines,
            self.limits.max_explain_chars,
            &mut |_, e, record| eval::eval_expr_traced(e, &mut direct, record),
        )
    }

    /// Reads facts JSON (an object, or an array of objects, one per recipient),
    /// checked against this policy's facts, within the facts limits of the
    /// [`Limits`] the policy was parsed with (`max_facts_bytes`,
    /// `max_fact_value_bytes`, `max_facts_objects`).
    ///
    /// ```
    /// use mailpolicy::{FactsInput, Policy};
    /// let policy = Policy::parse("fact dnsbl_listed: bool").unwrap();
    /// let input = policy.facts_from_json(r#"{"scanner":"clean","dnsbl_listed":true}"#).unwrap();
    /// assert!(matches!(input, FactsInput::One(_)));
    /// let err = policy.facts_from_json(r#"{"scaner":"clean"}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "1:2: unknown fact `scaner` (did you mean `scanner`?)");
    /// ```
    pub fn facts_from_json(&self, json: &str) -> Result<FactsInput, FactsError> {
        facts_json::parse(&self.model.facts, &self.limits, json)
    }

    /// Checks facts built in code against the facts limits of the
    /// [`Limits`] the policy was parsed with (`max_fact_value_bytes`,
    /// `max_set_names`), as [`Policy::facts_from_json`] checks a document.
    ///
    /// [`Policy::evaluate`] takes any [`Facts`]; its per-evaluation cost
    /// bound (`docs/LIMITS.md`) holds for facts within these limits. Facts
    /// read from JSON or `NAME=VALUE` text are; facts an embedder builds from
    /// untrusted input (a scanner's reply naming thousands of detections)
    /// should be checked here first, or cut as `mailpolicyd` does (it keeps
    /// the first [`Limits::max_set_names`] names of a clamd reply).
    ///
    /// ```
    /// use mailpolicy::{Facts, FactsLimitError, Policy};
    /// let policy = Policy::parse("").unwrap();
    /// let few = Facts::new().viruses(["Win.Test.EICAR_HDB-1", "Eicar-Signature"]);
    /// assert_eq!(policy.check_facts(&few), Ok(()));
    /// let many = Facts::new().viruses((0..1025).map(|i| format!("Fam{i}.A")));
    /// let err = policy.check_facts(&many).unwrap_err();
    /// assert!(matches!(err, FactsLimitError::SetNames { names: 1025, limit: 1024, .. }));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "the set of fact `virus` has 1025 names, more than the limit of 1024 names"
    /// );
    /// ```
    pub fn check_facts(&self, facts: &Facts) -> Result<(), FactsLimitError> {
        facts_limits::check(facts, &self.limits)
    }

    /// Sets a fact from `NAME=VALUE` text, the value read by the fact's type.
    pub fn set_fact_from_str(&self, facts: &mut Facts, assignment: &str) -> Result<(), FactsError> {
        facts_json::parse_assignment(&self.model.facts, &self.limits, assignment, facts)
    }

    /// Runs the policy's `test` blocks.
    pub fn run_tests(&self) -> crate::testing::TestReport {
        crate::testing::run(self)
    }

    /// The limits the policy was parsed with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Where this policy (the old one) and `new` decide differently: every
    /// region of the fact space (values and unknown) with an example and the
    /// deciding rules, within the default [`DiffOptions`] budget.
    ///
    /// ```
    /// use mailpolicy::Policy;
    /// let old = Policy::parse(r#"
    ///     rule "viruses" { when scanner == infected then discard, quarantine }
    /// "#)?;
    /// let new = Policy::parse(r#"
    ///     rule "outbound" { when scanner == infected and direction == outbound then discard, quarantine "out" }
    ///     rule "virus" { when scanner == infected then discard, quarantine }
    /// "#)?;
    /// let diff = old.diff(&new).expect("same fact types");
    /// assert!(diff.complete);
    /// assert_eq!(diff.regions.len(), 1);
    /// let r = &diff.regions[0];
    /// assert_eq!(old.evaluate(&r.example).quarantine(), Some("default"));
    /// assert_eq!(new.evaluate(&r.example).quarantine(), Some("out"));
    /// // Renaming and reordering rules that do not overlap changes nothing.
    /// assert!(old.diff(&old).unwrap().is_equivalent());
    /// # Ok::<(), mailpolicy::ParseError>(())
    /// ```
    pub fn diff(&self, new: &Policy) -> Result<crate::PolicyDiff, crate::DiffError> {
        self.diff_with(new, &crate::DiffOptions::default())
    }

    /// [`Policy::diff`] with a chosen work budget.
    pub fn diff_with(
        &self,
        new: &Policy,
        options: &crate::DiffOptions,
    ) -> Result<crate::PolicyDiff, crate::DiffError> {
        fn side(p: &Policy) -> crate::diff::Side<'_> {
            crate::diff::Side {
                model: &p.model,
                compiled: &p.compiled,
            }
        }
        crate::diff::diff(side(self), side(new), options)
    }

    /// The `policy "NAME"`, if given.
    pub fn name(&self) -> Option<&str> {
        self.model.name.as_deref()
    }

    /// Where the filter sits relative to the queue.
    pub fn mode(&self) -> Mode {
        self.model.mode
    }

    /// The addresses `alert admin` reaches.
    pub fn admins(&self) -> &[String] {
        &self.model.admins
    }

    /// The rules' names, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.model.rules.iter().map(|r| r.name.as_str())
    }

    /// The policy's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The facts this policy's rules can ever ask for, in id order: an
    /// embedder can skip a scanner run or a lookup that nothing reads.
    /// (`test` blocks do not count: they never run in the mail path.)
    ///
    /// ```
    /// use mailpolicy::Policy;
    /// let policy = Policy::parse(r#"
    ///     fact dnsbl_listed: bool
    ///     fact ldap_group: string
    ///     rule "listed" { when scanner == infected or dnsbl_listed then reject }
    /// "#).unwrap();
    /// let names: Vec<&str> = policy.facts_needed().iter().map(|k| k.name).collect();
    /// assert_eq!(names, ["scanner", "dnsbl_listed"]);
    /// ```
    pub fn facts_needed(&self) -> Vec<FactKey<'_>> {
        let mut needed = vec![false; self.model.facts.len()];
        for rule in &self.model.rules {
            if let Some(e) = &rule.when {
                mark_facts(e, &mut needed);
            }
        }
        self.model
            .facts
            .facts
            .iter()
            .zip(needed)
            .enumerate()
            .filter(|(_, (_, n))| *n)
            .map(|(i, (info, _))| FactKey {
                id: FactId(i as u16),
                name: &info.name,
            })
            .collect()
    }
}

/// Marks every fact an expression reads.
fn mark_facts(e: &crate::check::model::Expr, needed: &mut [bool]) {
    use crate::check::model::ExprKind;
    match &e.kind {
        ExprKind::Const(_) => {}
        ExprKind::Known(id) => {
            if let Some(n) = needed.get_mut(id.index()) {
                *n = true;
            }
        }
        ExprKind::Not(inner) => mark_facts(inner, needed),
        ExprKind::And(parts) | ExprKind::Or(parts) => {
            parts.iter().for_each(|p| mark_facts(p, needed))
        }
        leaf => {
            if let Some(n) = eval::leaf_fact(leaf).and_then(|id| needed.get_mut(id.index())) {
                *n = true;
            }
        }
    }
}

fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> Diagnostic {
    let at = e.valid_up_to();
    // Position within the valid prefix, which is UTF-8 by definition.
    let prefix = std::str::from_utf8(&bytes[..at]).unwrap_or("");
    let mut d = Diagnostic::new(
        Code::Syntax,
        prefix,
        Span::new(at, at + 1),
        format!(
            "invalid UTF-8 (byte 0x{:02x} at offset {at})",
            bytes.get(at).copied().unwrap_or(0)
        ),
    );
    d.help = Some("policies are UTF-8 text; re-save the file as UTF-8".into());
    d
}

impl ParseError {
    /// Errors about `source`, with their lines and columns filled in.
    pub(crate) fn from_diagnostics(source: &str, mut diagnostics: Vec<Diagnostic>) -> ParseError {
        diagnostics::place_all(source, &mut diagnostics);
        ParseError { diagnostics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<Policy>();
    }
}
