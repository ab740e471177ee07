//! `Policy::diff` on random but valid policies (see `common/policy_gen.rs`):
//!
//! - sound: every region's example really decides differently under the
//!   two policies, by the rules the region names;
//! - complete: when the diff says it is complete, every sampled message on
//!   which the policies decide differently falls in a reported region (same
//!   pair of deciding rules), and "equivalent" means no sampled message differs;
//! - renaming every rule is no difference.
//!
//! Pairs are a policy and a mutation of it (the generator's bytes with a few
//! changed: mostly the same rules, some edited, added or dropped) and, less
//! often, two unrelated policies.

#[path = "common/policy_gen.rs"]
mod policy_gen;

use mailpolicy::{Decision, DiffError, Facts, Policy};
use proptest::prelude::*;

fn config(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What a decision does, without the rule's name (alerts in any order).
fn effect(d: &Decision<'_>) -> String {
    let mut alerts: Vec<&str> = d.alerts().map(|a| a.as_str()).collect();
    alerts.sort_unstable();
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}",
        d.disposition(),
        d.reply(),
        d.quarantine(),
        alerts,
        d.tags().collect::<Vec<_>>()
    )
}

fn parse(src: &str) -> Policy {
    Policy::parse_with_limits(src, &policy_gen::limits())
        .unwrap_or_else(|e| panic!("a generated policy does not parse:\n{e}\n{src}"))
}

fn check_pair(old_src: &str, new_src: &str, samples: &[Facts]) -> Result<(), TestCaseError> {
    let (old, new) = (parse(old_src), parse(new_src));
    let diff = match old.diff(&new) {
        Ok(d) => d,
        Err(DiffError::FactType { .. }) => return Ok(()), // unrelated custom facts
        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
    };
    let context = || format!("--- old\n{old_src}\n--- new\n{new_src}");
    for r in &diff.regions {
        let (a, b) = (old.evaluate(&r.example), new.evaluate(&r.example));
        prop_assert_ne!(
            effect(&a),
            effect(&b),
            "example {} decides the same\n{}",
            r.example_text,
            context()
        );
        prop_assert_eq!(a.rule(), r.old_rule.as_deref(), "{}", context());
        prop_assert_eq!(b.rule(), r.new_rule.as_deref(), "{}", context());
    }
    if diff.complete {
        let pairs: Vec<(Option<&str>, Option<&str>)> = diff
            .regions
            .iter()
            .map(|r| (r.old_rule.as_deref(), r.new_rule.as_deref()))
            .collect();
        for f in samples {
            let (a, b) = (old.evaluate(f), new.evaluate(f));
            if effect(&a) != effect(&b) {
                prop_assert!(
                    pairs.contains(&(a.rule(), b.rule())),
                    "{f:?} decides differently (old {:?}, new {:?}) but the complete diff has no such region: {pairs:?}\n{}",
                    a.rule(),
                    b.rule(),
                    context()
                );
            }
        }
    }
    Ok(())
}

/// Every `rule "NAME"` renamed (and `expect rule "NAME"` with it).
fn renamed(src: &str) -> String {
    src.replace("rule \"", "rule \"renamed ")
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn a_policy_and_its_mutation(
        bytes in proptest::collection::vec(any::<u8>(), 0..1200),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let old = policy_gen::generate(&bytes, 40);
        let mut changed = bytes.clone();
        for (at, b) in &edits {
            if !changed.is_empty() {
                let i = at.index(changed.len());
                changed[i] = *b;
            }
        }
        let new = policy_gen::generate(&changed, 40);
        let samples: Vec<Facts> = old.facts.iter().chain(&new.facts).cloned().collect();
        check_pair(&old.source, &new.source, &samples)?;
    }

    #[test]
    fn two_unrelated_policies(
        a in proptest::collection::vec(any::<u8>(), 0..800),
        b in proptest::collection::vec(any::<u8>(), 0..800),
    ) {
        let old = policy_gen::generate(&a, 30);
        let new = policy_gen::generate(&b, 30);
        let samples: Vec<Facts> = old.facts.iter().chain(&new.facts).cloned().collect();
        check_pair(&old.source, &new.source, &samples)?;
    }

    #[test]
    fn renaming_every_rule_is_no_difference(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let case = policy_gen::generate(&bytes, 0);
        let old = parse(&case.source);
        let new = parse(&renamed(&case.source));
        let diff = old.diff(&new).expect("same facts");
        prop_assert!(diff.regions.is_empty(), "{:?}", diff.regions);
        prop_assert!(diff.complete, "unsettled: {:?}", diff.unsettled);
        prop_assert_eq!(diff.pairs_searched, 0);
    }
}
