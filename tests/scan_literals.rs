//! Shared scans' literal and pair groups (exact, prefix and suffix globs, anchored
//! literal regexes: byte tries, `src/scan.rs`) decide as the reference walk
//! does, on one-string and set facts, through the folding corners (`İ` and
//! the Kelvin sign fold to ASCII for globs; `ſ` and the Kelvin sign are in
//! a regex's case-insensitive `s` and `k`); pair groups answer `*a*b*`
//! from the first end of `a` and the last start of `b`. On a set fact,
//! `==`, `!=` and `in [...]` are answered by the literal group's exact
//! trie (case-sensitive), and `^lit\b` regexes by its start trie with the
//! Unicode word boundary checked after the literal.

use mailpolicy::{Facts, Policy};
use proptest::prelude::*;

/// Literal-ish pieces the generated globs, regexes and values are made of
/// (word and non-word characters, ASCII and not, around a `\b`).
const PIECES: [&str; 17] = [
    "a", "B", "k", "s", "i", ".", "1", "\u{212A}", "\u{17F}", "\u{130}", "ı", "x", "A", "b", "é",
    "-", "_",
];

fn piece() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&PIECES[..]), 0..4).prop_map(|v| v.concat())
}

/// A leaf on `fact`: a literal glob, an anchored regex, or something that
/// goes to a DFA group (contains glob, unanchored regex).
fn leaf(fact: &'static str) -> impl Strategy<Value = String> {
    (0..15u8, piece(), piece()).prop_map(move |(kind, a, b)| {
        let re = |s: &str| regex_syntax::escape(s).replace('/', "\\/");
        match kind {
            0 => format!("{fact} matches \"{a}\""),
            1 => format!("{fact} matches \"{a}*\""),
            2 => format!("{fact} matches \"*{a}\""),
            // A named list: `LIST` is replaced by its name.
            3 => format!("{fact} matches LIST [\"{a}*\", \"*{b}\", \"{b}\"]"),
            4 => format!("{fact} matches /^{}/", re(&a)),
            5 => format!("{fact} matches /{}$/", re(&a)),
            6 => format!("{fact} matches /^{}$/", re(&a)),
            7 => format!("{fact} matches \"*{a}*{b}\""),
            // Exact, case-sensitive tests (on a set: the exact trie).
            8 => format!("{fact} == \"{a}\""),
            9 => format!("{fact} != \"{a}\""),
            10 => format!("{fact} in [\"{a}\", \"{b}\"]"),
            11 => format!("{fact} in LIST [\"{a}\", \"{b}\", \"x{a}\"]"),
            // A Unicode word boundary after a start-anchored literal.
            12 => format!("{fact} matches /^{}\\b/", re(&a)),
            13 if fact == "virus" => format!("all {fact} matches /^{}\\b/", re(&a)),
            13 => format!("{fact} matches /^{}\\b{}/", re(&a), re(&b)),
            // A pair group's glob (on a one-string fact).
            _ => format!("{fact} matches \"*{a}*{b}*\""),
        }
    })
}

fn policy(fact: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(leaf(fact), 2..12).prop_map(|leaves| {
        let mut src = String::new();
        for (i, l) in leaves.iter().enumerate() {
            let cond = match l.split_once(" LIST ") {
                Some((head, items)) => {
                    src.push_str(&format!("list l{i} = {items}\n"));
                    format!("{head} l{i}")
                }
                None => l.clone(),
            };
            src.push_str(&format!("rule \"r{i}\" {{ when {cond} then reject }}\n"));
        }
        src
    })
}

/// The default limits without the budget of unshared passes.
fn unbounded() -> mailpolicy::Limits {
    mailpolicy::Limits {
        max_scan_passes: usize::MAX,
        ..mailpolicy::Limits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn literal_groups_on_a_set_decide_as_the_reference(
        src in policy("virus"),
        names in prop::collection::vec(piece(), 0..4),
    ) {
        // Random policies may pass the budget of unshared passes (tests/cost.rs
        // tests that limit); the property is the equivalence.
        let p = Policy::parse_with_limits(&src, &unbounded()).expect("parses");
        let f = Facts::new().viruses(names);
        prop_assert_eq!(p.evaluate(&f).rule(), p.evaluate_reference(&f).rule());
    }

    #[test]
    fn literal_groups_on_a_string_decide_as_the_reference(
        src in policy("sender"),
        value in piece(),
    ) {
        // Random policies may pass the budget of unshared passes (tests/cost.rs
        // tests that limit); the property is the equivalence.
        let p = Policy::parse_with_limits(&src, &unbounded()).expect("parses");
        let f = Facts::new().sender(value);
        prop_assert_eq!(p.evaluate(&f).rule(), p.evaluate_reference(&f).rule());
        let unknown = Facts::new();
        prop_assert_eq!(p.evaluate(&unknown).rule(), p.evaluate_reference(&unknown).rule());
    }
}

#[test]
fn thousands_of_prefix_globs_on_a_set_share_one_literal_group() {
    // Wider than a DFA group (256) and than the old 16-group memo.
    let mut src = String::new();
    for i in 0..5_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches \"Fam{i}.*\" or virus matches /^q{i}\\./ then reject }}\n"
        ));
    }
    // Random policies may pass the budget of unshared passes (tests/cost.rs
    // tests that limit); the property is the equivalence.
    let p = Policy::parse_with_limits(&src, &unbounded()).expect("parses");
    for (names, want) in [
        (vec!["x", "FAM4999.A"], Some("r4999")),
        (vec!["Q17.x", "fam4999.a"], Some("r17")),
        (vec!["fam12", "q3"], None),
        (vec![], None),
    ] {
        let f = Facts::new().viruses(names.iter().copied());
        assert_eq!(p.evaluate(&f).rule(), want, "{names:?}");
        assert_eq!(p.evaluate_reference(&f).rule(), want, "{names:?}");
    }
}
