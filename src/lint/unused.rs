//! `unused-list` and `unused-fact`: declared and never used by a rule.

use crate::check::model::Model;
use crate::diagnostics::{Code, Diagnostic};

pub(crate) fn run(model: &Model, source: &str, out: &mut Vec<Diagnostic>) {
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
