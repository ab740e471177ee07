//! `untested-rule` (only with `--coverage`): no `test` in the file reaches the rule.

use crate::check::model::Model;
use crate::compile::Compiled;
use crate::diagnostics::{Code, Diagnostic};
use crate::eval::DirectSource;

pub(crate) fn run(model: &Model, source: &str, compiled: &Compiled, out: &mut Vec<Diagnostic>) {
    let mut reached = vec![false; model.rules.len()];
    for t in &model.tests {
        let rule = compiled.decide(&mut DirectSource {
            facts: &t.given,
            table: &model.facts,
        });
        if let Some(r) = rule.and_then(|i| reached.get_mut(i)) {
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
                source,
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
