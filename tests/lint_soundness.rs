//! The linter never cries wolf: regressions for the false warnings and false
//! "unreachable" verdicts found by trying policies nobody had shown it
//! (issue 12), each checked against evaluation.

use mailpolicy::{Diagnostic, Facts, Policy};

fn check(src: &str) -> (Policy, Vec<Diagnostic>) {
    let p = Policy::parse(src).unwrap_or_else(|e| panic!("parses:\n{e}"));
    let d = p.check();
    (p, d)
}

fn codes_for<'d>(diags: &'d [Diagnostic], rule: &str) -> Vec<&'d str> {
    diags
        .iter()
        .filter(|d| d.rule.as_deref() == Some(rule))
        .map(|d| d.code.as_str())
        .collect()
}

#[test]
fn an_int_fact_above_a_huge_float_is_reachable() {
    let src = r#"
        rule "beyond i64" { when size >= 9223372036854775807 then discard, quarantine }
        rule "huge" { when size > 1e16 then discard, quarantine }
        rule "just above 2^53" { when size > 9007199254740992.0 and size < 9007199254740994.0 then discard, quarantine }
        default discard, quarantine
    "#;
    let (p, diags) = check(src);
    for rule in ["huge", "just above 2^53", "beyond i64"] {
        assert!(
            !codes_for(&diags, rule).contains(&"unreachable-rule"),
            "{rule} is live: {diags:#?}"
        );
    }
    // Evaluation agrees: each rule applies to some size.
    for (size, rule) in [
        (20_000_000_000_000_000i64, "huge"),
        (9_007_199_254_740_993, "just above 2^53"),
        (i64::MAX, "beyond i64"),
    ] {
        let d = p.evaluate(&Facts::new().size(size));
        assert_eq!(d.rule(), Some(rule), "size {size}");
    }
}

#[test]
fn an_int_fact_between_two_adjacent_floats_has_no_value() {
    // No int lies strictly between 2^53 and the next float, 2^53 + 2... except 2^53 + 1.
    let src = r#"
        rule "gap" { when size > 9007199254740992.0 and size < 9007199254740994.0 then discard, quarantine }
        rule "no gap" { when size > 9007199254740992.0 and size < 9007199254740993 then discard, quarantine }
        default discard, quarantine
    "#;
    let (_, diags) = check(src);
    assert!(!codes_for(&diags, "gap").contains(&"unreachable-rule"));
    assert!(
        codes_for(&diags, "no gap").contains(&"unreachable-rule"),
        "{diags:#?}"
    );
}
