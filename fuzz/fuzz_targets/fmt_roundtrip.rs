//! `fmt` round-trip: for generated policies (first byte even) and arbitrary
//! text (odd), `format` is idempotent and keeps the meaning: the formatted
//! policy parses iff the original does, with the same rules and decisions.
#![no_main]

#[path = "../../tests/common/policy_gen.rs"]
#[allow(dead_code)]
mod policy_gen;

use libfuzzer_sys::fuzz_target;
use mailpolicy::Policy;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let (source, facts) = if first % 2 == 0 {
        let case = policy_gen::generate(rest, 3);
        (case.source, case.facts)
    } else {
        match std::str::from_utf8(rest) {
            Ok(s) => (s.to_owned(), vec![mailpolicy::Facts::new()]),
            Err(_) => return,
        }
    };
    let Ok(once) = mailpolicy::format(&source) else { return };
    let twice = match mailpolicy::format(&once) {
        Ok(t) => t,
        Err(e) => panic!("formatted text does not format:\n{e}\n--- source ---\n{source}\n--- formatted ---\n{once}"),
    };
    assert_eq!(once, twice, "format is not idempotent\n--- source ---\n{source}");
    match (Policy::parse(&source), Policy::parse(&once)) {
        (Ok(a), Ok(b)) => {
            assert!(a.rule_names().eq(b.rule_names()));
            assert_eq!(a.admins(), b.admins());
            assert_eq!(a.name(), b.name());
            assert_eq!(a.mode(), b.mode());
            for f in &facts {
                let (x, y) = (a.evaluate(f), b.evaluate(f));
                assert_eq!(x.actions(), y.actions(), "\n--- source ---\n{source}\n--- formatted ---\n{once}");
                assert_eq!(x.rule(), y.rule());
            }
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "parse result changed by fmt: {:?} vs {:?}\n--- source ---\n{source}\n--- formatted ---\n{once}",
            a.err().map(|e| e.to_string()),
            b.err().map(|e| e.to_string())
        ),
    }
});
