//! The linter against brute force, on random glob-, list-, set- and
//! number-heavy policies:
//!
//! - every warning's example, evaluated by the reference evaluator, reaches
//!   the rule (or default) the warning names, with the values the lint is
//!   about (so no warning is ever false);
//! - every combination of class representatives (each fact's literals,
//!   values next to them, glob and regex instances, small sets, *unknown*)
//!   that evaluation sends to a rule in a warned-about situation has that
//!   warning, unless the rule is named as unfinished;
//! - no combination reaches a rule called unreachable.

use super::engine::{run_detailed, Details};
use crate::analysis::decide::Value;
use crate::check::model::Lit;
use crate::decision::{Action, AlertTarget, Decision, Disposition};
use crate::diagnostics::Code;
use crate::facts::{FactType, FactValue, Facts};
use crate::{Mode, Policy};
use proptest::prelude::*;

/// A small deterministic sequence (SplitMix64) for one generated case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const GLOBS: &[&str] = &[
    "W32/*",
    "*@MM",
    "W32/Sobig*",
    "w32/sobig.f@mm",
    "?*",
    "*",
    "*.A",
    "Troj/*",
    "*o*",
    "?",
    "W32/?o*",
];
const VIRUS_LITS: &[&str] = &["W32/Sobig.F@MM", "Troj/Agent", "A", "", "X"];
const REGEXES: &[&str] = &["^w32\\/", "@mm$", "^(?-i)W32", "bagle|sobig", "^[a-z]+$"];
const SENDERS: &[&str] = &["", "a@example.org", "b@example.org", "X"];
const NUMBERS: &[&str] = &["0", "1000", "1000.5", "1e16", "9007199254740993", "-1"];
const SCORES: &[&str] = &["5", "5.0", "7.5", "-1", "0.1"];
const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.0/24",
    "2001:db8::/32",
];
const SCANNERS: &[&str] = &["clean", "infected", "encrypted", "error", "timeout"];
const DIRECTIONS: &[&str] = &["inbound", "outbound", "internal", "open_relay"];

fn glob_list(r: &mut Rng) -> String {
    let n = 1 + r.below(3);
    let gs: Vec<String> = (0..n).map(|_| format!("{:?}", r.pick(GLOBS))).collect();
    format!("[{}]", gs.join(", "))
}

fn leaf(r: &mut Rng) -> String {
    match r.below(24) {
        0 | 1 => format!("virus matches {:?}", r.pick(GLOBS)),
        2 => "virus matches forgers".to_owned(),
        3 => format!("all virus matches {:?}", r.pick(GLOBS)),
        4 => format!("virus == {:?}", r.pick(VIRUS_LITS)),
        5 => format!("virus != {:?}", r.pick(VIRUS_LITS)),
        6 => format!(
            "virus in [{:?}, {:?}]",
            r.pick(VIRUS_LITS),
            r.pick(VIRUS_LITS)
        ),
        7 => format!("virus matches /{}/", r.pick(REGEXES)),
        8 => format!(
            "all virus in [{:?}, {:?}]",
            r.pick(VIRUS_LITS),
            r.pick(VIRUS_LITS)
        ),
        9 => format!("sender == {:?}", r.pick(SENDERS)),
        10 => format!("sender != {:?}", r.pick(SENDERS)),
        11 => format!(
            "sender matches {:?}",
            ["*@example.org", "?*", "a*", "*"][r.below(4)]
        ),
        12 => "sender in friends".to_owned(),
        13 => format!(
            "size {} {}",
            ["<", "<=", ">", ">=", "==", "!="][r.below(6)],
            r.pick(NUMBERS)
        ),
        14 => format!(
            "spam_score {} {}",
            ["<", ">=", "=="][r.below(3)],
            r.pick(SCORES)
        ),
        15 => format!("client_ip in {}", r.pick(NETS)),
        16 => "client_ip == 10.1.2.3".to_owned(),
        17 | 18 => format!("scanner == {}", r.pick(SCANNERS)),
        19 => format!("scanner in [{}, {}]", r.pick(SCANNERS), r.pick(SCANNERS)),
        20 => format!("direction == {}", r.pick(DIRECTIONS)),
        21 => "forges_sender".to_owned(),
        22 => "forges_sender == false".to_owned(),
        _ => ["known virus", "known sender", "true"][r.below(3)].to_owned(),
    }
}

fn cond(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.below(3) == 0 {
        return leaf(r);
    }
    match r.below(4) {
        0 => format!("not ({})", cond(r, depth - 1)),
        1 => format!("({} or {})", cond(r, depth - 1), cond(r, depth - 1)),
        _ => format!("({} and {})", cond(r, depth - 1), cond(r, depth - 1)),
    }
}

fn actions(r: &mut Rng) -> &'static str {
    [
        "pass",
        "pass, tag \"t\"",
        "discard",
        "discard, quarantine",
        "bounce",
        "bounce, quarantine",
        "reject",
        "tempfail",
        "discard, quarantine, alert sender",
        "pass, alert admin",
    ][r.below(10)]
}

/// Parses a generated policy without the scan-pass budget
/// (`Limits::max_scan_passes`), which random regexes and globs on one fact
/// may pass: the property here is the linter's, not the cost bound's.
fn parse(src: &str) -> Result<Policy, crate::ParseError> {
    let limits = crate::Limits {
        max_scan_passes: usize::MAX,
        ..crate::Limits::default()
    };
    Policy::parse_with_limits(src, &limits)
}

fn policy(seed: u64) -> String {
    let mut r = Rng(seed);
    let mut s = String::new();
    if r.below(2) == 0 {
        s.push_str("mode after_queue\n");
    }
    s.push_str(&format!("list forgers = {}\n", glob_list(&mut r)));
    s.push_str("list friends = [\"a@example.org\", \"\"]\n");
    for i in 0..2 + r.below(5) {
        let when = if r.below(8) == 0 {
            String::new()
        } else {
            format!("when {} ", cond(&mut r, 2))
        };
        s.push_str(&format!(
            "rule \"r{i}\" {{ {when}then {} }}\n",
            actions(&mut r)
        ));
    }
    if r.below(3) > 0 {
        s.push_str(&format!("default {}\n", actions(&mut r)));
    }
    s
}

/// Candidate values per fact (class representatives and their neighbours).
fn candidates(name: &str) -> Vec<Option<FactValue<'static>>> {
    let strs = |xs: &[&str]| -> Vec<Option<FactValue<'static>>> {
        xs.iter()
            .map(|s| Some(FactValue::Str((*s).to_owned().into())))
            .chain([None])
            .collect()
    };
    match name {
        "virus" => {
            let pool = [
                "W32/Sobig.F@MM",
                "w32/sobig.f@mm",
                "W32/Bagle.A",
                "Troj/Agent",
                "x",
                "",
                "A",
                "X",
                "W32/",
                "Sobig@MM",
                "W32/bo",
                "bagle",
            ];
            let mut out: Vec<Option<FactValue<'static>>> =
                vec![None, Some(FactValue::set(Vec::<String>::new()))];
            for (i, a) in pool.iter().enumerate() {
                out.push(Some(FactValue::set([*a])));
                for b in pool.iter().skip(i + 1).step_by(3) {
                    out.push(Some(FactValue::set([*a, *b])));
                }
            }
            out
        }
        "sender" => strs(&[
            "",
            "a@example.org",
            "b@example.org",
            "X",
            "A@EXAMPLE.ORG",
            "zz",
        ]),
        "recipient" => strs(&["a@x", ""]),
        "size" => [
            0i64,
            999,
            1000,
            1001,
            -1,
            -2,
            9_007_199_254_740_993,
            10_000_000_000_000_001,
        ]
        .iter()
        .map(|i| Some(FactValue::Int(*i)))
        .chain([None])
        .collect(),
        "spam_score" => [-1.5f64, -1.0, 0.0, 0.1, 5.0, 5.5, 7.5, 1e9]
            .iter()
            .map(|f| Some(FactValue::Number(*f)))
            .chain([Some(FactValue::Int(5)), None])
            .collect(),
        "client_ip" => [
            "10.1.2.3",
            "10.1.9.9",
            "10.2.0.1",
            "192.168.1.7",
            "192.168.2.1",
            "8.8.8.8",
            "2001:db8::1",
            "::1",
        ]
        .iter()
        .map(|s| s.parse().ok().map(FactValue::Ip))
        .chain([None])
        .collect(),
        "scanner" => strs(SCANNERS),
        "direction" => strs(DIRECTIONS),
        "forges_sender" | "authenticated" => vec![
            Some(FactValue::Bool(true)),
            Some(FactValue::Bool(false)),
            None,
        ],
        _ => vec![None],
    }
}

/// Which lints a decision on these facts must draw (by the SPEC's table).
fn situations(policy: &Policy, facts: &Facts, d: &Decision<'_>) -> Vec<Code> {
    let get = |n: &str| {
        facts.get(n).map(|v| match v {
            FactValue::Str(s) => s.to_string(),
            FactValue::Direction(d) => d.as_str().to_owned(),
            FactValue::Scanner(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
    };
    let scanner = get("scanner");
    let infected = scanner.as_deref() == Some("infected");
    let disp = d.disposition();
    let alerts_sender = d.actions().iter().any(|a| {
        matches!(
            a,
            Action::Alert {
                to: AlertTarget::Sender
            }
        )
    });
    let marked = d
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Tag { .. } | Action::Alert { .. }));
    let mut out = Vec::new();
    if infected && disp == Disposition::Pass {
        out.push(Code::VirusPasses);
    }
    let failed = matches!(scanner.as_deref(), Some("error" | "timeout"));
    let encrypted = scanner.as_deref() == Some("encrypted");
    if disp == Disposition::Pass && (failed || (encrypted && !marked)) {
        out.push(Code::FailOpen);
    }
    let out_dir = matches!(get("direction").as_deref(), Some("outbound" | "internal"));
    if infected
        && out_dir
        && matches!(
            disp,
            Disposition::Pass | Disposition::Bounce | Disposition::Reject
        )
    {
        out.push(Code::OutboundVirusEscapes);
    }
    if infected && alerts_sender {
        out.push(Code::BackscatterAlert);
    }
    if infected && disp == Disposition::Bounce && get("forges_sender").as_deref() != Some("false") {
        out.push(Code::BackscatterBounce);
    }
    if infected && disp == Disposition::Reject && policy.model.mode == Mode::AfterQueue {
        out.push(Code::RejectAfterQueue);
    }
    if (infected || encrypted) && disp == Disposition::Tempfail {
        out.push(Code::TempfailPermanent);
    }
    let null = matches!(facts.get("sender"), Some(FactValue::Str(s)) if s.is_empty());
    if null && (alerts_sender || disp == Disposition::Bounce) {
        out.push(Code::AlertNullSender);
    }
    if disp == Disposition::Discard && d.quarantine().is_none() {
        out.push(Code::SilentDiscard);
    }
    out
}

fn rule_index(policy: &Policy, d: &Decision<'_>) -> Option<usize> {
    let name = d.rule()?;
    policy.model.rules.iter().position(|r| r.name == name)
}

/// Facts from a finding's concrete values.
fn facts_of(policy: &Policy, values: &[Option<Value>]) -> Facts {
    let mut f = Facts::new();
    for (info, v) in policy.model.facts.facts.iter().zip(values) {
        let Some(v) = v else { continue };
        let fv = match (v, &info.ty) {
            (Value::Set(names), _) => FactValue::set(names.iter().cloned()),
            (Value::One(Lit::Enum(i)), FactType::Enum(names)) => {
                FactValue::Str(names[usize::from(*i)].clone().into())
            }
            (Value::One(Lit::Bool(b)), _) => FactValue::Bool(*b),
            (Value::One(Lit::Int(i)), _) => FactValue::Int(*i),
            (Value::One(Lit::Float(x)), _) => FactValue::Number(*x),
            (Value::One(Lit::Str(s)), _) => FactValue::Str(s.to_string().into()),
            (Value::One(Lit::Ip(ip)), _) => FactValue::Ip(*ip),
            (Value::One(other), _) => panic!("unexpected value {other:?}"),
        };
        f.set(&info.name, fv);
    }
    f
}

fn check_case(seed: u64) -> Result<(), TestCaseError> {
    let src = policy(seed);
    let policy = parse(&src).map_err(|e| TestCaseError::fail(format!("{src}\n{e}")))?;
    let (
        diags,
        Details {
            findings,
            unfinished,
        },
    ) = run_detailed(&policy.model, &policy.source, &policy.compiled, 32_000_000);
    let has = |code: Code, rule: Option<usize>| {
        diags.iter().any(|d| {
            d.code == code
                && match rule {
                    Some(i) => d.rule.as_deref() == Some(policy.model.rules[i].name.as_str()),
                    None => d.rule.is_none(),
                }
        })
    };
    // Every warning's example leads there, in the lint's situation.
    for f in &findings {
        let facts = facts_of(&policy, &f.values);
        let d = policy.evaluate_reference(&facts);
        prop_assert_eq!(
            rule_index(&policy, &d),
            f.rule,
            "{}\nexample of {} does not reach its rule: {:?}",
            src,
            f.code,
            facts
        );
        prop_assert!(
            situations(&policy, &facts, &d).contains(&f.code),
            "{}\nexample of {} is not that situation: {:?}",
            src,
            f.code,
            facts
        );
    }
    // Brute force over representatives, sampled.
    let names = [
        "virus",
        "sender",
        "size",
        "spam_score",
        "client_ip",
        "scanner",
        "direction",
        "forges_sender",
    ];
    let pools: Vec<Vec<Option<FactValue<'static>>>> = names.iter().map(|n| candidates(n)).collect();
    let mut r = Rng(seed ^ 0xABCD);
    for _ in 0..1500 {
        let mut facts = Facts::new();
        for (n, pool) in names.iter().zip(&pools) {
            if let Some(Some(v)) = pool.get(r.below(pool.len())) {
                facts.set(n, v.clone());
            }
        }
        let d = policy.evaluate_reference(&facts);
        let rule = rule_index(&policy, &d);
        if let Some(i) = rule {
            prop_assert!(
                !has(Code::UnreachableRule, Some(i)),
                "{}\nrule {} called unreachable is reached by {:?}",
                src,
                i,
                facts
            );
        }
        if unfinished.contains(&rule) {
            continue;
        }
        for code in situations(&policy, &facts, &d) {
            prop_assert!(
                has(code, rule),
                "{}\n{} missed for {:?}: {:?}\n{:#?}",
                src,
                code,
                rule,
                facts,
                diags
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("LINT_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(150), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn warnings_agree_with_brute_force(seed in any::<u64>()) {
        check_case(seed)?;
    }
}

#[test]
fn generated_policies_parse_and_mostly_finish() {
    let mut finished = 0;
    for seed in 0..60u64 {
        let src = policy(seed);
        let p = parse(&src).unwrap_or_else(|e| panic!("{src}\n{e}"));
        let (_, details) = run_detailed(&p.model, &p.source, &p.compiled, 32_000_000);
        finished += usize::from(details.unfinished.is_empty());
    }
    // Regexes with Unicode word boundaries and raw bytes are not generated:
    // every question here is settled.
    assert_eq!(finished, 60);
}
