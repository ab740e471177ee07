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

#[test]
fn a_glob_inside_a_list_is_covered_by_it() {
    // The issue's case: "*@MM" in the forgers list, then a bounce rule on it.
    let src = r#"
        list forgers = ["W32/Sobig*", "W32/Bagle*", "*@MM"]
        rule "forgers" { when scanner == infected and virus matches forgers then discard, quarantine }
        rule "mass mailers bounce" {
            when scanner == infected and virus matches "*@MM" and sender != ""
            then bounce, quarantine
        }
        rule "Sobig variants" { when virus matches "w32/sobig.f*" then discard, quarantine }
        default discard, quarantine
    "#;
    let (_, diags) = check(src);
    let mm = codes_for(&diags, "mass mailers bounce");
    assert_eq!(mm, ["unreachable-rule"], "{diags:#?}");
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("rule \"forgers\" before it")),
        "names the covering rule: {diags:#?}"
    );
    // Case-insensitive prefix inside a prefix: covered too (any scanner result).
    assert!(!codes_for(&diags, "Sobig variants").contains(&"unreachable-rule"));
}

#[test]
fn the_empty_string_is_its_own_class() {
    let src = r#"
        rule "named" { when sender matches "?*" then discard, quarantine }
        rule "not null" { when sender != "" then discard, quarantine }
        rule "null" { when sender == "" then discard, quarantine }
        default discard, quarantine
    "#;
    let (p, diags) = check(src);
    assert_eq!(
        codes_for(&diags, "not null"),
        ["unreachable-rule"],
        "{diags:#?}"
    );
    assert!(codes_for(&diags, "null").is_empty(), "{diags:#?}");
    assert_eq!(
        p.evaluate(&Facts::new().sender("")).rule(),
        Some("null"),
        "evaluation agrees"
    );
}

#[test]
fn every_example_is_confirmed_by_evaluation() {
    // A glob-heavy policy: each warning's example, evaluated, reaches its rule.
    let src = r#"
        list forgers = ["W32/Sobig*", "*@MM"]
        rule "forgers" { when scanner == infected and virus matches forgers then discard, quarantine }
        rule "trojans" { when scanner == infected and virus matches "Troj/*" and forges_sender == false then bounce }
        rule "agents pass" { when virus matches "*Agent*" then pass }
        default pass
    "#;
    let (_, diags) = check(src);
    let bounce = diags
        .iter()
        .find(|d| d.code.as_str() == "backscatter-bounce")
        .map(|d| d.rule.clone());
    assert_eq!(bounce, None, "forges_sender == false guards it: {diags:#?}");
    let passes = diags
        .iter()
        .find(|d| d.code.as_str() == "virus-passes" && d.rule.as_deref() == Some("agents pass"))
        .unwrap_or_else(|| panic!("{diags:#?}"));
    let example = passes.example.clone().unwrap_or_default();
    assert!(
        example.contains("agent") || example.contains("Agent"),
        "{example}"
    );
    assert!(
        !example.contains("@MM") && !example.contains("@mm"),
        "{example}"
    );
}

#[test]
fn sets_are_not_single_names() {
    // One name cannot match both; a set of two can: the rule is reachable.
    let src = r#"
        rule "phish and worm" { when virus matches "Phish*" and virus matches "Worm*" then discard, quarantine }
        rule "all pua" { when all virus matches "PUA.*" then pass, tag "PUA" }
        rule "pua and more" { when virus matches "PUA.*" and virus matches "Troj*" then discard, quarantine }
        default discard, quarantine
    "#;
    let (p, diags) = check(src);
    for rule in ["phish and worm", "all pua", "pua and more"] {
        assert!(
            !codes_for(&diags, rule).contains(&"unreachable-rule"),
            "{rule}: {diags:#?}"
        );
    }
    let f = Facts::new().virus("Phish.A").virus("Worm.B");
    assert_eq!(p.evaluate(&f).rule(), Some("phish and worm"));
    // `all` after `any` of the same glob: covered (a non-empty set all of whose names match has one that does).
    let src = r#"
        rule "any pua" { when virus matches "PUA.*" then discard, quarantine }
        rule "all pua" { when all virus matches "PUA.*" then pass }
        default discard, quarantine
    "#;
    let (_, diags) = check(src);
    assert_eq!(
        codes_for(&diags, "all pua"),
        ["unreachable-rule"],
        "{diags:#?}"
    );
    // The empty set is known: `virus != "X"` holds for it.
    let src = r#"
        rule "no x" { when virus != "X" and not (virus matches "?*") then pass }
        default discard, quarantine
    "#;
    let (p, diags) = check(src);
    assert!(
        !codes_for(&diags, "no x").contains(&"unreachable-rule"),
        "{diags:#?}"
    );
    let empty = Facts::new().viruses(Vec::<String>::new());
    assert_eq!(p.evaluate(&empty).rule(), Some("no x"));
}

#[test]
fn out_of_budget_it_names_what_it_did_not_finish_and_guesses_nothing() {
    // The issue's case: 2,500 per-recipient `pass` rules after the virus
    // rules (801 false `fail-open`/`virus-passes` warnings when the budget
    // fallback read each rule alone).
    let mut src = String::from(
        "rule \"scanner failed\" { when scanner in [error, timeout] then tempfail }\n",
    );
    for i in 0..200 {
        src.push_str(&format!(
            "rule \"virus {i}\" {{ when scanner == infected and virus matches \"W32/Fam{i}.*\" then discard, quarantine }}\n"
        ));
    }
    src.push_str(
        "rule \"every other virus\" { when scanner == infected then discard, quarantine }\n",
    );
    for i in 0..2_500 {
        src.push_str(&format!(
            "rule \"user {i}\" {{ when recipient == \"user{i}@example.org\" then pass, tag \"u{i}\" }}\n"
        ));
    }
    src.push_str("default pass, tag \"ok\"\n");
    let full = Policy::parse(&src).expect("parses").check();
    // With the whole budget: no false warning, everything finished.
    assert!(
        full.iter().all(|d| !matches!(
            d.code.as_str(),
            "virus-passes" | "fail-open" | "outbound-virus-escapes" | "analysis-incomplete"
        )),
        "{full:#?}"
    );
    // With a tiny budget: one note, and only warnings the full run also has.
    let limits = mailpolicy::Limits {
        lint_work_per_mb: 20_000,
        ..mailpolicy::Limits::default()
    };
    let tiny = Policy::parse_with_limits(&src, &limits)
        .expect("parses")
        .check();
    let notes: Vec<&Diagnostic> = tiny
        .iter()
        .filter(|d| d.code.as_str() == "analysis-incomplete")
        .collect();
    assert_eq!(notes.len(), 1, "{tiny:#?}");
    assert_eq!(notes[0].severity, mailpolicy::Severity::Note);
    assert!(notes[0].message.contains("user 2499") || notes[0].message.contains("more"));
    for d in tiny
        .iter()
        .filter(|d| d.code.as_str() != "analysis-incomplete")
    {
        assert!(
            full.iter()
                .any(|f| f.code == d.code && f.rule == d.rule && f.line == d.line),
            "invented under a small budget: {d:#?}"
        );
    }
}

#[path = "../benches/gen/mod.rs"]
mod gen;

#[test]
fn generated_mixed_policies_never_contradict_evaluation() {
    // `LINT_MIXED_RULES=20000 LINT_MIXED_SEED=42 cargo test --release ...`:
    // the bench's policies.
    let rules = std::env::var("LINT_MIXED_RULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("LINT_MIXED_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    let src = gen::mixed_policy(rules, seed);
    let (p, diags) = check(&src);
    let unreachable: Vec<&str> = diags
        .iter()
        .filter(|d| d.code.as_str() == "unreachable-rule")
        .filter_map(|d| d.rule.as_deref())
        .collect();
    assert!(
        unreachable.len() > 10,
        "the test exercises unreachable-rule"
    );
    let mut r = gen::Rng::new(99);
    let pick = |r: &mut gen::Rng, xs: &[&str]| xs[r.below(xs.len() as u64) as usize].to_owned();
    for _ in 0..20_000 {
        let mut f = Facts::new();
        let mut set = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                p.set_fact_from_str(&mut f, &format!("{name}={v}"))
                    .expect("valid fact");
            }
        };
        let some = |r: &mut gen::Rng, v: String| (r.below(5) > 0).then_some(v);
        let v = pick(
            &mut r,
            &[
                "W32/Sobig",
                "W32/Bagle",
                "W32/Netsky",
                "Troj/Agent",
                "JS/Redir",
            ],
        );
        let n = r.below(200);
        let virus = match r.below(3) {
            0 => format!("{v}.{n}"),
            1 => format!("{v}.{n}x.{}@MM", r.below(50)),
            _ => format!("X.{}@MM", r.below(50)),
        };
        set("virus", some(&mut r, virus));
        let scanner = pick(
            &mut r,
            &["clean", "infected", "encrypted", "error", "timeout"],
        );
        set("scanner", some(&mut r, scanner));
        let dir = pick(&mut r, &["inbound", "outbound", "internal", "open_relay"]);
        set("direction", some(&mut r, dir));
        let ip = format!("10.{}.{}.7", r.below(256), r.below(256));
        set("client_ip", some(&mut r, ip));
        let rcpt = format!("user{}@example.org", r.below(500));
        set("recipient", some(&mut r, rcpt));
        let sender = format!("a@dept{}.example.org", r.below(100));
        set("sender", some(&mut r, sender));
        let size = (1000 * r.below(101)).to_string();
        set("size", some(&mut r, size));
        let score = format!("{}.{}", r.below(15), r.below(10));
        set("spam_score", some(&mut r, score));
        let b = pick(&mut r, &["true", "false"]);
        set("forges_sender", some(&mut r, b));
        let b = pick(&mut r, &["true", "false"]);
        set("authenticated", some(&mut r, b));
        let d = pick(&mut r, &["none", "listed", "whitelisted"]);
        set("dnsbl", some(&mut r, d));
        if let Some(rule) = p.evaluate(&f).rule() {
            assert!(
                !unreachable.contains(&rule),
                "{rule} is called unreachable but {f:?} reaches it"
            );
        }
    }
}
