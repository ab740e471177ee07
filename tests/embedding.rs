//! The embedder's side: lazy facts, per-recipient verdicts, sharing and reload.

use mailpolicy::{
    Direction, Disposition, FactKey, FactProvider, FactValue, Facts, MessageVerdict, Policy,
    Scanner, Verdict,
};
use std::cell::RefCell;
use std::sync::Arc;

/// A provider that records every fact it is asked for.
struct Counting {
    values: Facts,
    asked: RefCell<Vec<String>>,
}

impl Counting {
    fn new(values: Facts) -> Counting {
        Counting {
            values,
            asked: RefCell::new(Vec::new()),
        }
    }
    fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }
}

impl FactProvider for Counting {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.asked.borrow_mut().push(key.name.to_owned());
        self.values.get(key.name).cloned()
    }
}

const LAZY: &str = r#"
fact dnsbl_listed: bool
fact reputation: enum(good, neutral, bad)
rule "scanner failed" { when scanner in [error, timeout] then tempfail }
rule "virus" { when scanner == infected and (dnsbl_listed or reputation == bad) then reject }
rule "virus, good client" { when scanner == infected then discard, quarantine }
rule "listed" { when dnsbl_listed and spam_score > 5 then discard, quarantine "spam" }
default pass
"#;

#[test]
fn a_fact_is_asked_only_when_a_rule_needs_it() {
    let policy = Policy::parse(LAZY).unwrap();
    // Scanner error: the first rule decides; the DNSBL is never queried.
    let p = Counting::new(
        Facts::new()
            .scanner(Scanner::Error)
            .custom("dnsbl_listed", true),
    );
    let d = policy.evaluate_lazy(&p);
    assert_eq!(d.disposition(), Disposition::Tempfail);
    assert_eq!(p.asked(), ["scanner"]);

    // Infected and listed: `or` stops at dnsbl_listed, reputation is never asked.
    let p = Counting::new(
        Facts::new()
            .scanner(Scanner::Infected)
            .custom("dnsbl_listed", true),
    );
    assert_eq!(policy.evaluate_lazy(&p).rule(), Some("virus"));
    let asked = p.asked();
    assert!(asked.contains(&"dnsbl_listed".to_owned()), "{asked:?}");
    assert!(!asked.contains(&"reputation".to_owned()), "{asked:?}");
    assert!(!asked.contains(&"spam_score".to_owned()), "{asked:?}");
}

#[test]
fn a_fact_is_asked_at_most_once_per_evaluation() {
    let policy = Policy::parse(LAZY).unwrap();
    // Clean mail, unlisted: scanner is tested by three rules, dnsbl_listed by two.
    let p = Counting::new(
        Facts::new()
            .scanner(Scanner::Clean)
            .custom("dnsbl_listed", false),
    );
    let d = policy.evaluate_lazy(&p);
    assert_eq!(d.rule(), None);
    let asked = p.asked();
    for name in ["scanner", "dnsbl_listed"] {
        assert_eq!(
            asked.iter().filter(|a| *a == name).count(),
            1,
            "{name} asked {asked:?}"
        );
    }
    // Unknown facts (the provider says None) are memoised too.
    let p = Counting::new(Facts::new());
    policy.evaluate_lazy(&p);
    let asked = p.asked();
    let mut unique = asked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(asked.len(), unique.len(), "{asked:?}");
    // A second evaluation asks again: memoisation is per evaluation.
    policy.evaluate_lazy(&p);
    assert_eq!(p.asked().len(), 2 * asked.len());
}

#[test]
fn lazy_and_eager_evaluation_agree() {
    let policy = Policy::parse(LAZY).unwrap();
    let cases = [
        Facts::new()
            .scanner(Scanner::Infected)
            .custom("reputation", "bad"),
        Facts::new()
            .scanner(Scanner::Infected)
            .custom("reputation", "good")
            .custom("dnsbl_listed", false),
        Facts::new()
            .scanner(Scanner::Clean)
            .custom("dnsbl_listed", true)
            .spam_score(7.5),
        Facts::new()
            .scanner(Scanner::Clean)
            .custom("dnsbl_listed", true)
            .spam_score(5.0),
        Facts::new(),
    ];
    for facts in cases {
        let eager = policy.evaluate(&facts);
        let lazy = policy.evaluate_lazy(&Counting::new(facts.clone()));
        assert_eq!(eager, lazy, "{facts:?}");
    }
}

#[test]
fn a_provider_value_of_the_wrong_type_is_unknown() {
    let policy = Policy::parse(LAZY).unwrap();
    let p = Counting::new(
        Facts::new()
            .scanner(Scanner::Infected)
            .custom("reputation", 3i64),
    );
    // reputation is not an enum value: unknown, so `virus` is unknown and the next rule decides.
    assert_eq!(policy.evaluate_lazy(&p).rule(), Some("virus, good client"));
    let p = Counting::new(
        Facts::new()
            .scanner(Scanner::Infected)
            .custom("reputation", "excellent"),
    );
    assert_eq!(policy.evaluate_lazy(&p).rule(), Some("virus, good client"));
}

#[test]
fn facts_needed_lists_what_rules_read() {
    let policy = Policy::parse(LAZY).unwrap();
    let names: Vec<&str> = policy.facts_needed().iter().map(|k| k.name).collect();
    assert_eq!(
        names,
        ["scanner", "spam_score", "dnsbl_listed", "reputation"]
    );
    let ids: Vec<usize> = policy.facts_needed().iter().map(|k| k.id.index()).collect();
    assert_eq!(ids, [1, 9, 10, 11]);
}

const VERDICT: &str = r#"
rule "t" { when recipient == "t@x" then tempfail "451 4.3.0 try later" }
rule "r" { when recipient == "r@x" then reject "554 5.7.1 virus found" }
rule "r2" { when recipient == "r2@x" then reject }
rule "d" { when recipient == "d@x" then discard, quarantine }
rule "b" { when recipient == "b@x" then bounce, quarantine }
default pass
"#;

fn verdict(policy: &Policy, recipients: &[&str]) -> MessageVerdict {
    let facts: Vec<Facts> = recipients
        .iter()
        .map(|r| Facts::new().recipient(*r))
        .collect();
    let decisions: Vec<_> = facts.iter().map(|f| policy.evaluate(f)).collect();
    MessageVerdict::combine(&decisions).unwrap()
}

#[test]
fn verdict_any_tempfail_is_tempfail() {
    let p = Policy::parse(VERDICT).unwrap();
    for set in [
        &["t@x"][..],
        &["p@x", "t@x"],
        &["d@x", "r@x", "t@x"],
        &["b@x", "t@x"],
    ] {
        let v = verdict(&p, set);
        assert_eq!(v.verdict, Verdict::Tempfail, "{set:?}");
        assert_eq!(v.reply.as_deref(), Some("451 4.3.0 try later"));
    }
}

#[test]
fn verdict_all_discard_is_discard() {
    let p = Policy::parse(VERDICT).unwrap();
    assert_eq!(verdict(&p, &["d@x"]).verdict, Verdict::Discard);
    assert_eq!(
        verdict(&p, &["d@x", "d@x", "d@x"]).verdict,
        Verdict::Discard
    );
}

#[test]
fn verdict_discard_and_reject_with_a_reject_is_reject() {
    let p = Policy::parse(VERDICT).unwrap();
    let v = verdict(&p, &["d@x", "r@x"]);
    assert_eq!(v.verdict, Verdict::Reject);
    assert_eq!(v.reply.as_deref(), Some("554 5.7.1 virus found"));
    let v = verdict(&p, &["r2@x"]);
    assert_eq!(v.verdict, Verdict::Reject);
    assert_eq!(v.reply, None);
    assert_eq!(
        verdict(&p, &["r2@x", "r@x"]).reply.as_deref(),
        Some("554 5.7.1 virus found")
    );
}

#[test]
fn verdict_otherwise_accept_with_per_recipient_handling() {
    let p = Policy::parse(VERDICT).unwrap();
    let v = verdict(&p, &["p@x", "d@x", "b@x", "r@x", "q@x"]);
    assert_eq!(v.verdict, Verdict::Accept);
    assert_eq!(v.deliver_to, [0, 4]);
    assert_eq!(v.drop, [1]);
    assert_eq!(v.bounce, [2, 3]);
    assert_eq!(v.reply, None);
    assert_eq!(verdict(&p, &["b@x"]).verdict, Verdict::Accept);
    assert_eq!(verdict(&p, &["p@x"]).verdict, Verdict::Accept);
    assert!(MessageVerdict::combine(&[]).is_none());
}

#[test]
fn direction_from_amavis_flags() {
    assert_eq!(Direction::from_flags(false, true), Direction::Inbound);
    assert_eq!(Direction::from_flags(true, false), Direction::Outbound);
    assert_eq!(Direction::from_flags(true, true), Direction::Internal);
    assert_eq!(Direction::from_flags(false, false), Direction::OpenRelay);
}

#[test]
fn a_shared_policy_evaluates_on_many_threads() {
    let policy = Arc::new(Policy::parse(LAZY).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let policy = Arc::clone(&policy);
            std::thread::spawn(move || {
                let scanner = if i % 2 == 0 {
                    Scanner::Infected
                } else {
                    Scanner::Clean
                };
                let facts = Facts::new().scanner(scanner).custom("dnsbl_listed", false);
                let mut last = None;
                for _ in 0..1000 {
                    last = Some(policy.evaluate(&facts).disposition());
                }
                last
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results,
        [
            Some(Disposition::Discard),
            Some(Disposition::Pass),
            Some(Disposition::Discard),
            Some(Disposition::Pass)
        ]
    );
}
