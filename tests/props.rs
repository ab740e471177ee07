//! Property tests over random but valid policies (see `common/policy_gen.rs`)
//! and over arbitrary text.
//!
//! - every generated policy parses, and `check()` terminates;
//! - evaluation never panics and yields exactly one disposition;
//! - `evaluate` (the fast evaluator) agrees with `evaluate_reference`, and
//!   `evaluate_lazy` agrees with both;
//! - `format` round-trips: the formatted policy decides the same, has the same
//!   rules, and formatting is idempotent;
//! - on arbitrary text, every error's position lies inside the input and its
//!   `Display` names it as `LINE:COL`.
//!
//! Case counts are set for CI (a few thousand cases in all, well under a
//! minute in a debug build); `PROPTEST_CASES` overrides them.

#[path = "common/policy_gen.rs"]
mod policy_gen;

use mailpolicy::{Decision, FactKey, FactProvider, FactValue, Facts, Policy};
use policy_gen::{case_strategy, Case};
use proptest::prelude::*;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        // The sources are printed on failure; keep shrinking bounded.
        max_shrink_iters: 2_000,
        // Failures found here are kept as explicit tests in `tests/hostile.rs`.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn parse_generated(case: &Case) -> Result<Policy, TestCaseError> {
    Policy::parse_with_limits(&case.source, &policy_gen::limits()).map_err(|e| {
        TestCaseError::fail(format!(
            "a generated policy does not parse:\n{e}\n--- source ---\n{}",
            case.source
        ))
    })
}

/// The observable part of a decision.
fn summary(d: &Decision<'_>) -> (Vec<mailpolicy::Action>, Option<String>) {
    (d.actions().to_vec(), d.rule().map(str::to_owned))
}

/// A lazy provider over `Facts`, counting how often each fact is asked for.
struct Counting<'f> {
    facts: &'f Facts,
    asked: std::cell::RefCell<Vec<String>>,
}

impl FactProvider for Counting<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.asked.borrow_mut().push(key.name.to_owned());
        self.facts.get(key.name).cloned()
    }
}

proptest! {
    #![proptest_config(cases(900))]

    /// Evaluation never panics, always gives exactly one disposition, and the
    /// three evaluators agree.
    #[test]
    fn evaluation_is_total_and_evaluators_agree(case in case_strategy(6)) {
        let policy = parse_generated(&case)?;
        let _ = policy.check();
        let rules: Vec<&str> = policy.rule_names().collect();
        for facts in &case.facts {
            let fast = policy.evaluate(facts);
            let dispositions = fast.actions().iter().filter(|a| a.disposition().is_some()).count();
            prop_assert_eq!(dispositions, 1, "decision {:?} for {:?}\n{}", fast.actions(), facts, case.source);
            if let Some(rule) = fast.rule() {
                prop_assert!(rules.contains(&rule), "unknown deciding rule {rule:?}");
            }
            let reference = policy.evaluate_reference(facts);
            prop_assert_eq!(summary(&fast), summary(&reference),
                "evaluate != evaluate_reference for {:?}\n{}", facts, case.source);
            let provider = Counting { facts, asked: Default::default() };
            let lazy = policy.evaluate_lazy(&provider);
            prop_assert_eq!(summary(&lazy), summary(&reference),
                "evaluate_lazy != evaluate_reference for {:?}\n{}", facts, case.source);
            let mut asked = provider.asked.into_inner();
            let n = asked.len();
            asked.sort();
            asked.dedup();
            prop_assert_eq!(asked.len(), n, "a fact was asked for twice in one evaluation");
            let _ = policy.explain(facts);
        }
        // The policy's own tests run without panicking.
        let _ = policy.run_tests();
    }

    /// `parse(format(x))` decides like `x`, and `format` is idempotent.
    #[test]
    fn format_round_trips(case in case_strategy(4)) {
        let policy = parse_generated(&case)?;
        let once = mailpolicy::format(&case.source)
            .map_err(|e| TestCaseError::fail(format!("format failed: {e}\n{}", case.source)))?;
        let again = Policy::parse_with_limits(&once, &policy_gen::limits()).map_err(|e| TestCaseError::fail(format!(
            "the formatted policy does not parse:\n{e}\n--- original ---\n{}\n--- formatted ---\n{once}",
            case.source
        )))?;
        prop_assert_eq!(policy.rule_names().collect::<Vec<_>>(), again.rule_names().collect::<Vec<_>>());
        prop_assert_eq!(policy.name(), again.name());
        prop_assert_eq!(policy.mode(), again.mode());
        prop_assert_eq!(policy.admins(), again.admins());
        for facts in &case.facts {
            prop_assert_eq!(summary(&policy.evaluate(facts)), summary(&again.evaluate(facts)),
                "decisions differ after fmt for {:?}\n--- original ---\n{}\n--- formatted ---\n{}",
                facts, case.source, once);
        }
        let a = policy.run_tests();
        let b = again.run_tests();
        // Failure messages name lines, which formatting moves: compare outcomes.
        let outcome = |r: &mailpolicy::TestReport| -> Vec<(String, usize)> {
            r.results.iter().map(|t| (t.name.clone(), t.failures.len())).collect()
        };
        prop_assert_eq!(outcome(&a), outcome(&b));
        let twice = mailpolicy::format(&once)
            .map_err(|e| TestCaseError::fail(format!("format of formatted failed: {e}\n{once}")))?;
        prop_assert_eq!(&twice, &once, "format is not idempotent");
    }
}

/// Text that is mostly made of the language's tokens, so that errors come
/// from every part of the parser and checker, not only the first byte.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("rule"),
        Just("\"r\""),
        Just("{"),
        Just("}"),
        Just("when"),
        Just("then"),
        Just("scanner"),
        Just("=="),
        Just("infected"),
        Just("and"),
        Just("or"),
        Just("not"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(","),
        Just("discard"),
        Just("pass"),
        Just("quarantine"),
        Just("alert"),
        Just("admin"),
        Just("tag"),
        Just("default"),
        Just("list"),
        Just("l"),
        Just("="),
        Just("fact"),
        Just("f"),
        Just(":"),
        Just("bool"),
        Just("enum"),
        Just("matches"),
        Just("/a\\/b/"),
        Just("\"W32*\""),
        Just("in"),
        Just("10.0.0.0/8"),
        Just("10.1.2.3/8"),
        Just("::1"),
        Just("1.5"),
        Just("-3"),
        Just("known"),
        Just("all"),
        Just("any"),
        Just("virus"),
        Just("[string]"),
        Just("size"),
        Just("<"),
        Just(">="),
        Just("test"),
        Just("given"),
        Just("expect"),
        Just("\"\\q\""),
        Just("\"\\u{110000}\""),
        Just("#c\n"),
        Just("\n"),
        Just(" "),
        Just("\t"),
        Just("é"),
        Just("\u{0}"),
        Just("\r\n"),
        Just("\""),
        Just("allow"),
        Just("mode"),
        Just("after_queue"),
        Just("policy"),
        Just("/"),
        Just("\\"),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|t| t.join(" "))
}

/// A generated policy with a random edit: cut, a byte range deleted or a
/// character inserted.
fn mutated() -> impl Strategy<Value = String> {
    (
        case_strategy(0),
        any::<usize>(),
        any::<usize>(),
        any::<char>(),
        0..3u8,
    )
        .prop_map(|(case, a, b, ch, how)| {
            let s = case.source;
            let cut = |i: usize| {
                let mut i = i % (s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            let (i, j) = (cut(a), cut(b));
            let (i, j) = (i.min(j), i.max(j));
            match how {
                0 => s[..i].to_owned(),
                1 => format!("{}{}", &s[..i], &s[j..]),
                _ => format!("{}{ch}{}", &s[..i], &s[i..]),
            }
        })
}

/// Checks that an error's position lies inside `src` and that `Display` names it.
fn check_error_positions(src: &str, err: &mailpolicy::ParseError) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = src.split('\n').collect();
    prop_assert!(err.errors().count() > 0, "a ParseError without errors");
    let shown = err.to_string();
    for d in err.diagnostics() {
        prop_assert!(d.line >= 1 && d.column >= 1, "{d:?}");
        prop_assert!(
            d.line <= lines.len() + 1,
            "line {} outside the input ({} lines)",
            d.line,
            lines.len()
        );
        let len = lines.get(d.line - 1).map_or(0, |l| l.chars().count());
        prop_assert!(
            d.column <= len + 1,
            "column {} past the end of line {} ({} chars): {d:?}",
            d.column,
            d.line,
            len
        );
        prop_assert!(
            d.span.start <= src.len() && d.span.end <= src.len() + 1,
            "span {:?} outside {} bytes",
            d.span,
            src.len()
        );
        prop_assert!(!d.message.is_empty());
        if d.is_error() {
            let pos = format!("{}:{}", d.line, d.column);
            prop_assert!(shown.contains(&pos), "Display lacks {pos}: {shown}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(700))]

    /// Errors on arbitrary text point inside the text.
    #[test]
    fn errors_point_inside_the_input(src in prop_oneof![any::<String>(), token_soup(), mutated()]) {
        match Policy::parse(&src) {
            Ok(policy) => {
                // Whatever parses can be evaluated, formatted and linted.
                let _ = policy.check();
                let d = policy.evaluate(&Facts::new());
                prop_assert_eq!(d.actions().iter().filter(|a| a.disposition().is_some()).count(), 1);
            }
            Err(e) => check_error_positions(&src, &e)?,
        }
        if let Err(e) = mailpolicy::format(&src) {
            check_error_positions(&src, &e)?;
        }
    }

    /// The same for arbitrary bytes through `parse_bytes`.
    #[test]
    fn byte_errors_point_inside_the_input(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = Policy::parse_bytes(&bytes) {
            let lossy = String::from_utf8_lossy(&bytes);
            // Positions are computed on the valid prefix, which is a prefix of `lossy`.
            check_error_positions(&lossy, &e)?;
        }
    }
}

/// Writes generated policies into the `parse` fuzz target's seed corpus:
/// `cargo test --test props -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse");
    std::fs::create_dir_all(&dir).expect("seed dir");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..24 {
        let bytes: Vec<u8> = (0..400 + 60 * i)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let case = policy_gen::generate(&bytes, 0);
        assert!(
            Policy::parse_with_limits(&case.source, &policy_gen::limits()).is_ok(),
            "{}",
            case.source
        );
        std::fs::write(dir.join(format!("gen-{i:02}.policy")), case.source).expect("write seed");
    }
}
