//! `Limits::max_eval_steps`: the rules one evaluation may try, counted at
//! compile time for the worst facts, are bounded, and a policy past the
//! bound is refused at the rule that passes it; what the decision table and
//! the gates narrow does not count against it.

use mailpolicy::{
    Direction, FactKey, FactProvider, FactValue, Facts, Limits, ParseError, Policy, Scanner,
};
use std::cell::RefCell;

/// `n` rules `when TEST(i) then pass`, named `r0`, `r1`, ...
fn rules(n: usize, test: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| format!("rule \"r{i}\" {{ when {} then pass }}\n", test(i)))
        .collect()
}

/// The error of a policy that must be refused (never `expect_err`: the
/// `Debug` of a huge accepted policy would be printed).
fn refused(src: &str, limits: &Limits) -> ParseError {
    match Policy::parse_with_limits(src, limits) {
        Ok(_) => panic!("the policy was accepted"),
        Err(e) => e,
    }
}

fn accepted(src: &str, limits: &Limits) -> Policy {
    match Policy::parse_with_limits(src, limits) {
        Ok(p) => p,
        Err(e) => panic!("the policy was refused: {}", e.diagnostics()[0].message),
    }
}

/// The line (1-based) of rule `r{i}` in a policy made by [`rules`] after
/// `before` lines.
fn line_of(i: usize, before: usize) -> usize {
    before + i + 1
}

#[test]
fn ungated_rules_are_counted_and_refused_at_the_rule_past_the_limit() {
    let limits = Limits {
        max_eval_steps: 1000,
        ..Limits::default()
    };
    // `size > N`: a rule tried is one step, its one test another. No cell
    // or gate narrows them: every evaluation may try all of them.
    let within = rules(500, |i| format!("size > {i}"));
    accepted(&within, &limits);
    let past = rules(501, |i| format!("size > {i}"));
    let err = refused(&past, &limits);
    let d = &err.diagnostics()[0];
    assert_eq!(d.code.as_str(), "limit");
    assert_eq!(
        d.message,
        "an evaluation may try rules taking 1002 steps, more than the limit of 1000 in rule \"r500\""
    );
    assert_eq!((d.line, d.column), (line_of(500, 0), 1));
    assert!(d
        .help
        .as_deref()
        .is_some_and(|h| h.contains("Limits::max_eval_steps")));
    // Each node of a condition is a step: the rule, its `and`, two tests,
    // `not` and its test: 6 a rule, so rule 166 is the 167th and passes.
    let wide = rules(200, |i| {
        format!("size > {i} and spam_score > 1 and not known sender")
    });
    let err = refused(&wide, &limits);
    assert!(
        err.diagnostics()[0].message.contains("in rule \"r166\""),
        "{}",
        err.diagnostics()[0].message
    );
}

#[test]
fn the_default_refuses_100000_ungated_rules_and_keeps_an_evaluation_short() {
    let src = rules(100_000, |i| format!("size > {i}"));
    let err = refused(&src, &Limits::default());
    let limit = Limits::default().max_eval_steps;
    let d = &err.diagnostics()[0];
    // Two steps a rule: the rule whose steps pass the limit.
    let first_past = (limit / 2) as usize;
    assert!(
        d.message.ends_with(&format!("in rule \"r{first_past}\"")),
        "{}",
        d.message
    );
    assert_eq!(d.line, line_of(first_past, 0));
}

#[test]
fn gated_rules_count_what_one_lookup_can_propose() {
    let limits = Limits {
        max_eval_steps: 3000,
        ..Limits::default()
    };
    // 20,000 recipients: a lookup finds one string, so one rule is tried.
    let src = rules(20_000, |i| format!("recipient == \"u{i}@example.org\""));
    let p = accepted(&src, &limits);
    let facts = Facts::new().recipient("u19999@example.org");
    assert_eq!(p.evaluate(&facts).rule(), Some("r19999"));
    // The same with a required gate part and more: the gate still counts.
    let src = rules(20_000, |i| {
        format!("size > 5 and recipient == \"u{i}@example.org\"")
    });
    accepted(&src, &limits);
    // Prefix globs: a walk finds one path; 20,000 distinct families, of
    // which 1,024 names find at most 1,024 rules of 2 steps.
    let src = rules(20_000, |i| format!("virus matches \"W32/Fam{i}.*\""));
    let p = accepted(&src, &limits);
    let facts = Facts::new()
        .scanner(Scanner::Infected)
        .virus("W32/Fam19998.A")
        .virus("W32/Fam7.B");
    assert_eq!(p.evaluate(&facts).rule(), Some("r7"));
    // But one key shared by every rule proposes them all (8,000 steps).
    let src = rules(2_000, |i| format!("virus matches \"W32/*\" and size > {i}"));
    refused(&src, &limits);
}

#[test]
fn a_set_counts_its_names_lookups_up_to_the_facts_limit() {
    // Each family has 10 rules: a name finds 10, and 1,024 names find at
    // most 10,240 rules of 4 steps (`and`, two tests, the rule).
    let src = rules(20_000, |i| {
        format!("virus matches \"W32/Fam{}.*\" and size > {i}", i / 10)
    });
    let few = Limits {
        max_eval_steps: 50_000,
        max_set_names: 1024,
        ..Limits::default()
    };
    // 1,024 names × 10 rules × 4 steps = 40,960, plus the postings marked.
    accepted(&src, &few);
    let more = Limits {
        max_set_names: 2048,
        ..few.clone()
    };
    refused(&src, &more);
    // One name: 10 rules.
    let one = Limits {
        max_set_names: 1,
        max_eval_steps: 100,
        ..Limits::default()
    };
    accepted(&src, &one);
}

#[test]
fn cells_of_the_decision_table_are_counted_apart() {
    let limits = Limits {
        max_eval_steps: 10_000,
        ..Limits::default()
    };
    // 4 × 1,000 rules of 4 steps, each for one direction: an evaluation
    // is in one direction's cell, 4,000 steps.
    let dirs = ["inbound", "outbound", "internal", "open_relay"];
    let src = rules(4_000, |i| {
        format!("direction == {} and size > {i}", dirs[i % 4])
    });
    accepted(&src, &limits);
    // All for one direction: 16,000 steps in its cell.
    let src = rules(4_000, |i| format!("direction == inbound and size > {i}"));
    refused(&src, &limits);
}

/// A provider that records every fact it is asked for.
struct Counting {
    values: Facts,
    asked: RefCell<Vec<String>>,
}

impl FactProvider for Counting {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.asked.borrow_mut().push(key.name.to_owned());
        self.values.get(key.name).cloned()
    }
}

#[test]
fn a_provider_of_a_heavy_policy_is_evaluated_through_the_table() {
    let limits = Limits {
        max_eval_steps: 1000,
        ..Limits::default()
    };
    // 3,000 rules of 4 steps (12,000 in all, past the limit); an evaluation
    // through the table tries one (the recipient's) plus the last.
    let mut src = rules(3_000, |i| {
        format!("direction == inbound and recipient == \"u{i}@example.org\"")
    });
    src.push_str("rule \"last\" { when size > 5 then discard }\n");
    let p = accepted(&src, &limits);
    for (direction, recipient, size, want) in [
        (Direction::Inbound, "u2999@example.org", 1, Some("r2999")),
        (Direction::Inbound, "u7@example.org", 1, Some("r7")),
        (Direction::Outbound, "u7@example.org", 9, Some("last")),
        (Direction::Inbound, "nobody@example.org", 1, None),
    ] {
        let facts = Facts::new()
            .direction(direction)
            .recipient(recipient)
            .size(size);
        let provider = Counting {
            values: facts.clone(),
            asked: RefCell::new(Vec::new()),
        };
        let lazy = p.evaluate_lazy(&provider);
        assert_eq!(lazy.rule(), want, "{recipient}");
        assert_eq!(lazy.rule(), p.evaluate(&facts).rule());
        // Each fact at most once.
        let mut asked = provider.asked.take();
        let n = asked.len();
        asked.sort();
        asked.dedup();
        assert_eq!(asked.len(), n, "{asked:?}");
        assert!(asked
            .iter()
            .all(|a| ["direction", "recipient", "size"].contains(&a.as_str())));
        assert_eq!(lazy.rule(), p.evaluate_lazy_reference(&provider).rule());
    }
    // A light policy keeps the reference's order: `size` is never asked
    // when the first rule decides.
    let light = accepted(
        "rule \"a\" { when recipient == \"x\" then pass }\nrule \"b\" { when size > 5 then pass }\n",
        &limits,
    );
    let provider = Counting {
        values: Facts::new().recipient("x").size(9),
        asked: RefCell::new(Vec::new()),
    };
    assert_eq!(light.evaluate_lazy(&provider).rule(), Some("a"));
    assert_eq!(provider.asked.take(), ["recipient"]);
}
