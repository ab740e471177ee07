//! The linter on set facts (`virus`, `[string]`): `any`/`all` are reasoned
//! about soundly (a set is any collection of names; `all` is not vacuous and
//! implies `any`); fixtures that fire and stay quiet; random policies over
//! sets never contradict evaluation.

use mailpolicy::{Diagnostic, Direction, Disposition, Facts, Policy, Scanner};
use std::path::PathBuf;

fn fixture(name: &str) -> (Policy, Vec<Diagnostic>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lint_fixtures")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("fixture exists");
    let p = Policy::parse(&src).unwrap_or_else(|e| panic!("{name}:\n{e}"));
    let d = p.check();
    (p, d)
}

fn with<'d>(diags: &'d [Diagnostic], code: &str) -> Vec<&'d Diagnostic> {
    diags.iter().filter(|d| d.code.as_str() == code).collect()
}

#[test]
fn passing_all_pua_is_still_a_virus_passing() {
    let (p, diags) = fixture("virus_passes_all_pua.fires.policy");
    let hits = with(&diags, "virus-passes");
    assert_eq!(hits.len(), 1, "{diags:#?}");
    let d = hits[0];
    assert_eq!(d.rule.as_deref(), Some("PUA is tagged"));
    assert_eq!(d.line, 3);
    let example = d.example.as_deref().unwrap_or("");
    assert!(
        example.contains("scanner = infected") && example.contains("virus = [\"PUA."),
        "{example}"
    );
    // Evaluation agrees: infected PUA-only mail passes there.
    let f = Facts::new()
        .scanner(Scanner::Infected)
        .viruses(["PUA.Win.Packer", "PUA.Js.Miner"]);
    assert_eq!(p.evaluate(&f).rule(), Some("PUA is tagged"));
    assert_eq!(p.evaluate(&f).disposition(), Disposition::Pass);
}

#[test]
fn all_is_not_vacuous_and_implies_any() {
    let (p, diags) = fixture("virus_passes_all_pua.quiet.policy");
    assert!(with(&diags, "virus-passes").is_empty(), "{diags:#?}");
    assert!(with(&diags, "unreachable-rule").is_empty(), "{diags:#?}");
    // Infected with no name reaches the last rule, not the PUA pass.
    let f = Facts::new()
        .scanner(Scanner::Infected)
        .viruses(Vec::<String>::new());
    assert_eq!(p.evaluate(&f).rule(), Some("virus without a name"));

    let (_, diags) = fixture("unreachable_rule_all_after_any.fires.policy");
    let hits = with(&diags, "unreachable-rule");
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert_eq!(hits[0].rule.as_deref(), Some("only PUA"));
    assert!(
        hits[0].message.contains("rule \"any PUA\""),
        "{}",
        hits[0].message
    );
}

#[test]
fn mixed_detections_reach_what_single_names_could_not() {
    let (p, diags) = fixture("unreachable_rule_any_after_all.quiet.policy");
    assert!(with(&diags, "unreachable-rule").is_empty(), "{diags:#?}");
    let f = Facts::new().viruses(["PUA.Win.Packer", "Win.Trojan.Agent"]);
    assert_eq!(p.evaluate(&f).rule(), Some("some PUA"));
    let f = Facts::new().viruses(["Win.Trojan.Agent", "Eicar-Test-Signature"]);
    assert_eq!(p.evaluate(&f).rule(), Some("two names"));
    // The example shows both names.
    let two = diags
        .iter()
        .find(|d| d.rule.as_deref() == Some("two names"))
        .expect("a warning about the reject");
    assert!(
        two.example
            .as_deref()
            .unwrap_or("")
            .contains("virus = [\"Eicar-Test-Signature\", \"Win.Trojan.Agent\"]"),
        "{two:#?}"
    );

    let (_, diags) = fixture("unreachable_rule_all_two_names.fires.policy");
    let hits = with(&diags, "unreachable-rule");
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert_eq!(hits[0].rule.as_deref(), Some("impossible"));
    assert!(
        hits[0].message.contains("never true"),
        "{}",
        hits[0].message
    );
}

#[test]
fn custom_set_facts_are_reasoned_about_too() {
    let p = Policy::parse(
        r#"
        fact rbl: [string]
        rule "virus" { when scanner == infected then discard, quarantine }
        rule "any spamhaus" { when rbl matches "*.spamhaus.org" then discard, quarantine "spam" }
        rule "all spamhaus" { when all rbl matches "*.spamhaus.org" then reject }
        rule "all listed" { when all rbl in ["a.example", "b.example"] and not (rbl == "a.example") then reject }
        default pass, tag "ok"
        "#,
    )
    .expect("parses");
    let diags = p.check();
    let unreachable: Vec<&str> = with(&diags, "unreachable-rule")
        .iter()
        .filter_map(|d| d.rule.as_deref())
        .collect();
    assert_eq!(unreachable, ["all spamhaus"], "{diags:#?}");
    let f = Facts::new().custom("rbl", vec!["b.example"]);
    assert_eq!(p.evaluate(&f).rule(), Some("all listed"));
}

// ---- random policies over sets, checked against evaluation ----------------------------------

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const NAMES: &[&str] = &[
    "PUA.Win.Packer",
    "PUA.Js.Miner",
    "Heuristics.Phishing.Email",
    "Win.Trojan.Agent",
    "Eicar-Test-Signature",
    "pua.lower",
    "",
];

fn set_leaf(r: &mut Rng) -> String {
    let q = r.pick(&["", "any ", "all ", "all "]);
    let tail = match r.below(7) {
        0 => format!("== \"{}\"", r.pick(NAMES)),
        1 => format!("in [\"{}\", \"{}\"]", r.pick(NAMES), r.pick(NAMES)),
        2 => format!(
            "matches \"{}\"",
            r.pick(&["PUA.*", "*Phishing*", "*", "Win.*", "?*"])
        ),
        3 => format!("matches /{}/", r.pick(&["^pua\\.", "trojan", "^$"])),
        4 => "matches harmless".to_owned(),
        5 => "in exact".to_owned(),
        _ => "in []".to_owned(),
    };
    if q.is_empty() && r.below(4) == 0 {
        return format!("virus != \"{}\"", r.pick(NAMES));
    }
    format!("{q}virus {tail}")
}

fn leaf(r: &mut Rng) -> String {
    match r.below(9) {
        0..=3 => set_leaf(r),
        4 => format!("scanner == {}", r.pick(&["infected", "clean", "error"])),
        5 => format!("scanner != {}", r.pick(&["infected", "clean"])),
        6 => format!("direction == {}", r.pick(&["inbound", "outbound"])),
        7 => "known virus".to_owned(),
        _ => r.pick(&["true", "false"]).to_owned(),
    }
}

fn cond(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.below(3) == 0 {
        return leaf(r);
    }
    match r.below(3) {
        0 => format!("not ({})", cond(r, depth - 1)),
        1 => format!("({} and {})", cond(r, depth - 1), cond(r, depth - 1)),
        _ => format!("({} or {})", cond(r, depth - 1), cond(r, depth - 1)),
    }
}

fn policy(r: &mut Rng) -> String {
    let actions = [
        "pass",
        "pass, tag \"x\"",
        "discard, quarantine",
        "reject",
        "tempfail",
    ];
    let mut s = String::from(
        "list harmless = [\"PUA.*\", \"*Phishing*\"]\nlist exact = [\"Eicar-Test-Signature\", \"PUA.Js.Miner\"]\n",
    );
    for i in 0..(2 + r.below(6)) {
        let a = actions[r.below(actions.len())];
        s.push_str(&format!(
            "rule \"r{i}\" {{ when {} then {a} }}\n",
            cond(r, 3)
        ));
    }
    s.push_str(&format!("default {}\n", actions[r.below(actions.len())]));
    s
}

fn facts(r: &mut Rng) -> Facts {
    let mut f = Facts::new();
    if r.below(4) > 0 {
        f = f.scanner([Scanner::Infected, Scanner::Clean, Scanner::Error][r.below(3)]);
    }
    if r.below(4) > 0 {
        f = f.direction([Direction::Inbound, Direction::Outbound][r.below(2)]);
    }
    if r.below(5) > 0 {
        let n = r.below(4);
        let names: Vec<&str> = (0..n).map(|_| r.pick(NAMES)).collect();
        f = f.viruses(names);
    }
    f
}

#[test]
fn random_set_policies_never_contradict_evaluation() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut unreachable, mut passes) = (0, 0);
    let lifted = mailpolicy::Limits {
        max_scan_passes: usize::MAX,
        ..mailpolicy::Limits::default()
    };
    for round in 0..250 {
        let src = policy(&mut r);
        // Random globs on a set may pass the scan budget (`tests/cost.rs`):
        // what is tested here is the linter.
        let p = Policy::parse_with_limits(&src, &lifted).unwrap_or_else(|e| panic!("{src}\n{e}"));
        let diags = p.check();
        unreachable += with(&diags, "unreachable-rule").len();
        let has = |code: &str, rule: &str| {
            diags
                .iter()
                .any(|d| d.code.as_str() == code && d.rule.as_deref().unwrap_or("default") == rule)
        };
        for _ in 0..400 {
            let f = facts(&mut r);
            let d = p.evaluate(&f);
            let rule = d.rule().unwrap_or("default");
            assert!(
                !has("unreachable-rule", rule),
                "round {round}: {rule} is reached with {f:?}\n{src}\n{diags:#?}"
            );
            let infected = f.get("scanner").map(ToString::to_string).as_deref() == Some("infected");
            if infected && d.disposition() == Disposition::Pass {
                passes += 1;
                assert!(
                    has("virus-passes", rule),
                    "round {round}: infected mail passes via {rule} with {f:?}\n{src}\n{diags:#?}"
                );
            }
        }
    }
    // The generator exercises both verdicts.
    assert!(unreachable > 20, "only {unreachable} unreachable verdicts");
    assert!(passes > 100, "only {passes} infected passes");
}
