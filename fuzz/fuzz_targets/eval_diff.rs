//! Differential: a structured arbitrary policy (the generator in
//! `tests/common/policy_gen.rs`, driven by the fuzzer's bytes) over generated
//! facts plus fully arbitrary facts (`arbitrary`): `evaluate` (the fast
//! evaluator) must agree with `evaluate_reference`, and `evaluate_lazy` too.
#![no_main]

#[path = "../../tests/common/policy_gen.rs"]
#[allow(dead_code)]
mod policy_gen;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailpolicy::{Decision, Direction, FactKey, FactProvider, FactValue, Facts, Policy, Scanner};
use std::borrow::Cow;
use std::net::IpAddr;

/// Names the arbitrary facts are set under: the built-ins and the names the
/// generator gives custom facts.
const NAMES: &[&str] = &[
    "direction", "scanner", "virus", "forges_sender", "client_ip", "sender", "recipient",
    "authenticated", "size", "spam_score", "cf0_x", "cf1_listed", "cf2_zone", "cf3_n", "cf4_x",
];

#[derive(Arbitrary, Debug)]
enum ArbValue {
    Bool(bool),
    Int(i64),
    Number(f64),
    Str(String),
    V4([u8; 4]),
    V6([u8; 16]),
    Direction(u8),
    Scanner(u8),
    /// A set of names (`virus`, `[string]` facts; any other fact: unknown).
    Set(Vec<String>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Drives the policy generator.
    policy: Vec<u8>,
    /// Extra fact sets with arbitrary values.
    facts: Vec<Vec<(u8, ArbValue)>>,
}

fn value(v: ArbValue) -> FactValue<'static> {
    match v {
        ArbValue::Bool(b) => FactValue::Bool(b),
        ArbValue::Int(i) => FactValue::Int(i),
        ArbValue::Number(n) => FactValue::Number(n),
        ArbValue::Str(s) => FactValue::Str(Cow::Owned(s)),
        ArbValue::V4(a) => FactValue::Ip(IpAddr::from(a)),
        ArbValue::V6(a) => FactValue::Ip(IpAddr::from(a)),
        ArbValue::Direction(d) => FactValue::Direction(
            [Direction::Inbound, Direction::Outbound, Direction::Internal, Direction::OpenRelay]
                [usize::from(d) % 4],
        ),
        ArbValue::Scanner(s) => FactValue::Scanner(
            [Scanner::Clean, Scanner::Infected, Scanner::Encrypted, Scanner::Error, Scanner::Timeout]
                [usize::from(s) % 5],
        ),
        ArbValue::Set(names) => FactValue::set(names),
    }
}

struct Lazy<'f>(&'f Facts);

impl FactProvider for Lazy<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.0.get(key.name).cloned()
    }
}

fn summary(d: &Decision<'_>) -> (Vec<mailpolicy::Action>, Option<String>) {
    (d.actions().to_vec(), d.rule().map(str::to_owned))
}

fuzz_target!(|input: Input| {
    let case = policy_gen::generate(&input.policy, 4);
    // Without the scan-pass budget, which random globs on one fact may
    // pass (tests/cost.rs tests it): the property here is the equivalence.
    let policy = match Policy::parse_with_limits(&case.source, &policy_gen::limits()) {
        Ok(p) => p,
        Err(e) => panic!("generated policy does not parse:\n{e}\n{}", case.source),
    };
    let mut all = case.facts;
    for set in input.facts.into_iter().take(8) {
        let mut facts = Facts::new();
        for (name, v) in set {
            facts.set(NAMES[usize::from(name) % NAMES.len()], value(v));
        }
        all.push(facts);
    }
    for facts in &all {
        let fast = policy.evaluate(facts);
        let reference = policy.evaluate_reference(facts);
        let n = fast.actions().iter().filter(|a| a.disposition().is_some()).count();
        assert_eq!(n, 1, "not one disposition: {:?}", fast.actions());
        assert_eq!(summary(&fast), summary(&reference), "evaluators differ on {facts:?}\n{}", case.source);
        let lazy = policy.evaluate_lazy(&Lazy(facts));
        assert_eq!(summary(&lazy), summary(&reference), "lazy differs on {facts:?}\n{}", case.source);
    }
});
