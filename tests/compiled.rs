//! The compiled evaluator (`Policy::evaluate`, `Policy::evaluate_lazy`) must
//! decide exactly as the reference walk does: the same deciding rule, for
//! random policies and random facts; and a lazy provider must be asked for
//! the same facts in the same order, each at most once.

#[path = "common/gen.rs"]
mod gen;

use mailpolicy::{Direction, FactKey, FactProvider, FactValue, Facts, Policy, Scanner};
use proptest::prelude::*;
use std::cell::RefCell;

const HEADER: &str = "fact dnsbl: bool\nfact level: enum(low, mid, high)\nfact note: string\n";

/// A provider that records what it is asked for.
struct Recording<'f> {
    facts: &'f Facts,
    asked: RefCell<Vec<String>>,
}

impl FactProvider for Recording<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.asked.borrow_mut().push(key.name.to_owned());
        self.facts.fact(key)
    }
}

fn agree(policy: &Policy, facts: &Facts) {
    let fast = policy.evaluate(facts);
    let slow = policy.evaluate_reference(facts);
    assert_eq!(
        fast.rule(),
        slow.rule(),
        "deciding rule differs for {facts:?}"
    );
    assert_eq!(fast, slow, "decision differs for {facts:?}");
    // `explain` reads the compiled leaves (shared scans): the same trace as
    // the reference walk's.
    let explained = policy.explain(facts);
    assert_eq!(
        explained.decision, slow,
        "explain decides otherwise for {facts:?}"
    );
    assert_eq!(
        explained.trace,
        policy.explain_reference(facts).trace,
        "explain trace differs for {facts:?}"
    );

    let a = Recording {
        facts,
        asked: RefCell::new(Vec::new()),
    };
    let b = Recording {
        facts,
        asked: RefCell::new(Vec::new()),
    };
    let lazy = policy.evaluate_lazy(&a);
    let lazy_ref = policy.evaluate_lazy_reference(&b);
    assert_eq!(lazy, lazy_ref, "lazy decision differs for {facts:?}");
    assert_eq!(lazy, slow, "lazy and direct disagree for {facts:?}");
    let asked = a.asked.into_inner();
    assert_eq!(asked, b.asked.into_inner(), "facts asked differ");
    let mut uniq = asked.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), asked.len(), "a fact was asked twice: {asked:?}");
}

// ---- random policies ----------------------------------------------------

/// Characters that exercise case folding, including non-ASCII ones where
/// simple lowercasing and regex case folding could disagree.
const CHARS: &[&str] = &[
    "a", "A", "b", "/", ".", "@", "é", "É", "İ", "i", "K", "\u{212a}", "k",
];

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(CHARS), 0..=max).prop_map(|v| v.concat())
}

fn glob() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(CHARS).prop_map(str::to_owned),
            1 => Just("*".to_owned()),
            1 => Just("?".to_owned()),
        ],
        0..=5,
    )
    .prop_map(|v| v.concat())
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn list(items: Vec<String>) -> String {
    format!("[{}]", items.join(", "))
}

const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.2.0.0/16",
    "10.3.0.0/16",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "11.0.0.0/8",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
    "::ffff:0:0/96",
];
const IPS: &[&str] = &[
    "10.1.2.3",
    "10.2.0.1",
    "192.168.1.1",
    "8.8.8.8",
    "10.255.255.255",
    "11.0.0.0",
    "255.255.255.255",
    "2001:db8::5",
    "2001:db8:1::9",
    "::ffff:10.1.2.3",
    "::1",
];
const DIRS: &[&str] = &["inbound", "outbound", "internal", "open_relay"];
const SCANS: &[&str] = &["clean", "infected", "encrypted", "error", "timeout"];
const FACTS: &[&str] = &[
    "direction",
    "scanner",
    "virus",
    "forges_sender",
    "client_ip",
    "sender",
    "authenticated",
    "size",
    "spam_score",
    "dnsbl",
    "level",
    "note",
];

fn enum_leaf(fact: &'static str, values: &'static [&'static str]) -> BoxedStrategy<String> {
    let v = prop::sample::select(values);
    prop_oneof![
        v.clone().prop_map(move |x| format!("{fact} == {x}")),
        v.clone().prop_map(move |x| format!("{fact} != {x}")),
        prop::collection::vec(v, 0..=3).prop_map(move |xs| format!(
            "{fact} in {}",
            list(xs.iter().map(|x| x.to_string()).collect())
        )),
    ]
    .boxed()
}

fn bool_leaf(fact: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        Just(fact.to_owned()),
        any::<bool>().prop_map(move |b| format!("{fact} == {b}")),
        any::<bool>().prop_map(move |b| format!("{fact} != {b}")),
        prop::collection::vec(any::<bool>(), 0..=2).prop_map(move |bs| format!(
            "{fact} in {}",
            list(bs.iter().map(|b| b.to_string()).collect())
        )),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<String> {
    prop_oneof![
        3 => enum_leaf("direction", DIRS),
        3 => enum_leaf("scanner", SCANS),
        1 => enum_leaf("level", &["low", "mid", "high"]),
        2 => bool_leaf("forges_sender"),
        1 => bool_leaf("authenticated"),
        1 => bool_leaf("dnsbl"),
        1 => prop::sample::select(FACTS).prop_map(|f| format!("known {f}")),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        2 => glob().prop_map(|g| format!("virus matches {}", quoted(&g))),
        2 => (0..4usize).prop_map(|i| format!("virus matches globs{i}")),
        1 => prop::sample::select(&["/^a/", "/b$/", "/(?-i)A/", "/é/"][..])
            .prop_map(|r| format!("virus matches {r}")),
        1 => text(3).prop_map(|t| format!("virus == {}", quoted(&t))),
        // `any` / `all` over the set of names.
        2 => glob().prop_map(|g| format!("all virus matches {}", quoted(&g))),
        1 => glob().prop_map(|g| format!("any virus matches {}", quoted(&g))),
        1 => (0..4usize).prop_map(|i| format!("all virus matches globs{i}")),
        1 => prop::sample::select(&["/^a/", "/b$/", "/(?-i)A/", "/é/"][..])
            .prop_map(|r| format!("all virus matches {r}")),
        1 => text(3).prop_map(|t| format!("all virus == {}", quoted(&t))),
        1 => prop::collection::vec(text(2), 0..=12)
            .prop_map(|ts| format!("all virus in {}", list(ts.iter().map(|t| quoted(t)).collect()))),
        1 => text(3).prop_map(|t| format!("virus != {}", quoted(&t))),
        1 => prop::collection::vec(text(2), 0..=12)
            .prop_map(|ts| format!("virus in {}", list(ts.iter().map(|t| quoted(t)).collect()))),
        1 => prop::sample::select(&["sender == \"\"", "sender != \"\"", "note == \"x\""][..])
            .prop_map(str::to_owned),
        2 => prop::collection::vec(prop::sample::select(NETS), 0..=8)
            .prop_map(|ns| format!("client_ip in {}", list(ns.iter().map(|n| n.to_string()).collect()))),
        1 => prop::sample::select(IPS).prop_map(|ip| format!("client_ip == {ip}")),
        1 => (0i64..3000).prop_map(|n| format!("size > {n}")),
        1 => (0i32..20).prop_map(|n| format!("spam_score >= {}", f64::from(n) / 2.0)),
    ]
    .boxed()
}

fn cond() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("not ({c})")),
            prop::collection::vec(inner.clone(), 2..=4)
                .prop_map(|cs| format!("({})", cs.join(" and "))),
            prop::collection::vec(inner, 2..=4).prop_map(|cs| format!("({})", cs.join(" or "))),
        ]
    })
}

fn policy_src() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::option::weighted(0.93, cond()), 0..=14),
        prop::collection::vec(prop::collection::vec(glob(), 0..=20), 4),
    )
        .prop_map(|(rules, lists)| {
            let mut s = HEADER.to_owned();
            for (i, gs) in lists.iter().enumerate() {
                let items: Vec<String> = gs.iter().map(|g| quoted(g)).collect();
                s.push_str(&format!("list globs{i} = {}\n", list(items)));
            }
            for (i, c) in rules.iter().enumerate() {
                let action = [
                    "pass",
                    "discard, quarantine",
                    "reject",
                    "tempfail",
                    "bounce, quarantine",
                ][i % 5];
                match c {
                    Some(c) => s.push_str(&format!("rule \"r{i}\" {{ when {c} then {action} }}\n")),
                    None => s.push_str(&format!("rule \"r{i}\" {{ then {action} }}\n")),
                }
            }
            s.push_str("default pass, tag \"default\"\n");
            s
        })
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        prop::option::of(prop::sample::select(&Direction::ALL[..])),
        prop::option::of(prop::sample::select(&Scanner::ALL[..])),
        prop::option::of(prop::collection::vec(text(6), 0..=3)),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(IPS)),
        prop::option::of(prop::sample::select(&["", "a@b", "x"][..])),
        prop::option::of(any::<bool>()),
        prop::option::of(0i64..3000),
        prop::option::of(0i32..20),
        0u8..6,
        0u8..6,
    )
        .prop_map(|(d, s, v, fs, ip, snd, auth, size, score, dnsbl, level)| {
            let mut f = Facts::new();
            if let Some(d) = d {
                f = f.direction(d);
            }
            if let Some(s) = s {
                f = f.scanner(s);
            }
            // `virus` is a set: unknown, empty, one name or several.
            if let Some(v) = v {
                f = f.viruses(v);
            }
            if let Some(b) = fs {
                f = f.forges_sender(b);
            }
            if let Some(ip) = ip {
                f = f.client_ip(ip.parse().expect("valid test address"));
            }
            if let Some(s) = snd {
                f = f.sender(s);
            }
            if let Some(a) = auth {
                f = f.authenticated(a);
            }
            if let Some(n) = size {
                f = f.size(n);
            }
            if let Some(n) = score {
                f = f.spam_score(f64::from(n) / 2.0);
            }
            // Custom facts, including values of the wrong type (= unknown).
            f = match dnsbl {
                0 => f.custom("dnsbl", true),
                1 => f.custom("dnsbl", false),
                2 => f.custom("dnsbl", 1i64),
                _ => f,
            };
            f = match level {
                0 => f.custom("level", "low"),
                1 => f.custom("level", "high"),
                2 => f.custom("level", "bogus"),
                3 => f.custom("level", true),
                _ => f,
            };
            f.custom("note", "x")
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
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn compiled_equals_reference(
        src in policy_src(),
        all in prop::collection::vec((facts(), any::<(bool, usize, u8)>()), 1..24),
    ) {
        // The property is the equivalence: random policies may pass the
        // budget of unshared passes (tests/cost.rs tests that limit).
        let policy = match Policy::parse_with_limits(&src, &unbounded()) {
            Ok(p) => p,
            Err(e) => panic!("generated policy does not parse: {e}\n{src}"),
        };
        // Strings that globs and literals of this policy match (or nearly).
        let pool = literals(&src);
        for (f, (aim, i, mode)) in &all {
            agree(&policy, f);
            if *aim && !pool.is_empty() {
                // Added to the names already there (if any).
                let v = instantiate(&pool[i % pool.len()], *mode);
                agree(&policy, &f.clone().virus(v));
            }
        }
    }
}

/// The string literals of a policy source (escapes are rare enough to ignore).
fn literals(src: &str) -> Vec<String> {
    src.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A text a glob (or exact literal) matches, or nearly matches, by `mode`.
fn instantiate(glob: &str, mode: u8) -> String {
    let star = ["", "Ab", "é", "a"][usize::from(mode % 4)];
    let one = ["a", "\u{212a}", "/"][usize::from(mode % 3)];
    let mut out: String = glob
        .chars()
        .map(|c| match c {
            '*' => star.to_owned(),
            '?' => one.to_owned(),
            c => c.to_string(),
        })
        .collect();
    match mode % 7 {
        0 => out = out.to_uppercase(),
        1 => out = out.to_lowercase(),
        2 => out.push('a'),
        3 => out.insert(0, 'b'),
        _ => {}
    }
    out
}

// ---- fixed cases --------------------------------------------------------

#[test]
fn generated_policies_agree() {
    for n in [0, 1, 10, 100, 1000] {
        let src = gen::virus_policy(n, 7);
        let policy =
            Policy::parse_with_limits(&src, &unbounded()).expect("generated policy parses");
        assert_eq!(policy.rule_names().count(), n + 1);
        assert_eq!(policy.evaluate(&gen::no_match_clean()).rule(), None);
        assert_eq!(policy.evaluate(&gen::no_match_infected()).rule(), None);
        let mut decided = 0;
        for f in gen::varied_facts(600, n, 7) {
            agree(&policy, &f);
            decided += usize::from(policy.evaluate(&f).rule().is_some());
        }
        if n >= 100 {
            // The facts reach rules, not only the default.
            assert!(
                decided > 100,
                "only {decided} facts reached a rule for n = {n}"
            );
        }
    }
}

#[test]
fn merged_globs_fold_case_like_the_glob_loop() {
    // Sixteen globs or more: merged into one regex (for ASCII text); fewer:
    // each in its fastest form.
    let globs = r#""w32/sobig*", "*@MM", "a?c", "x", "y*z", "İ*", "k", "q""#;
    let ascii = r#""w32/sobig*", "*@MM", "a?c", "x", "y*z", "k", "q", "*ss""#;
    let filler = (0..10)
        .map(|i| format!("\"f{i}*g\""))
        .collect::<Vec<_>>()
        .join(", ");
    for src in [
        format!("list g = [{globs}]\nrule \"g\" {{ when virus matches g then reject }}"),
        format!("list g = [{ascii}, {filler}]\nrule \"g\" {{ when virus matches g then reject }}"),
    ] {
        check_globs(&Policy::parse(&src).expect("parses"));
    }
}

fn check_globs(policy: &Policy) {
    let hit = |v: &str| policy.evaluate(&Facts::new().virus(v)).rule().is_some();
    assert!(hit("W32/SOBIG.F"));
    assert!(hit("foo@mm"));
    assert!(hit("ABC"));
    assert!(!hit("ac"));
    assert!(hit("Y-Z"));
    assert!(!hit("y-z-"));
    // Non-ASCII text takes the glob loop (simple lowercase): KELVIN SIGN folds to k.
    assert!(hit("\u{212a}"));
    for v in [
        "\u{212a}",
        "i\u{307}x",
        "İx",
        "ix",
        "é",
        "",
        "q",
        "Q",
        "\n",
        "ſ",
        "SS",
        "xß",
        "f3g",
        "F3xG",
    ] {
        agree(policy, &Facts::new().virus(v));
    }
}

#[test]
fn long_ascii_globs_compare_word_by_word_like_the_glob_loop() {
    // Exact, prefix and suffix globs of every length up to 40 bytes (the
    // compiled leaf compares 4- and 8-byte words, overlapping at the end):
    // the text itself in other cases, one byte longer, and each byte
    // changed (another ASCII byte, the other case, a non-ASCII character).
    let base = "W32/Sobig.F@MM-Heuristics.Phishing.Email";
    for n in 0..=base.len() {
        let lit = &base[..n];
        for glob in [lit.to_owned(), format!("{lit}*"), format!("*{lit}")] {
            let src = format!(
                "rule \"v\" {{ when virus matches {glob:?} then reject }}\n\
                 rule \"s\" {{ when sender matches {glob:?} then reject }}"
            );
            let policy = Policy::parse(&src).expect("parses");
            let mut texts = vec![
                lit.to_owned(),
                lit.to_uppercase(),
                lit.to_lowercase(),
                format!("x{lit}"),
                format!("{lit}x"),
            ];
            for (i, c) in lit.char_indices() {
                let swapped = if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                };
                for with in ['#', swapped, '\u{e9}', '\u{212a}'] {
                    let mut t = lit.to_owned();
                    t.replace_range(i..i + 1, with.encode_utf8(&mut [0; 4]));
                    texts.push(t);
                }
            }
            for t in &texts {
                agree(&policy, &Facts::new().virus(t.as_str()));
                agree(&policy, &Facts::new().sender(t.as_str()));
            }
            let upper = Facts::new().virus(lit.to_uppercase());
            assert_eq!(policy.evaluate(&upper).rule(), Some("v"), "{glob}");
            let longer = Facts::new().sender(format!("{lit}#"));
            let expect = (glob.ends_with('*') || glob == "*").then_some("s");
            assert_eq!(policy.evaluate(&longer).rule(), expect, "{glob}");
        }
    }
}

#[test]
fn cidr_tables_match_edges() {
    let src = r#"
        rule "nets" {
            when client_ip in [10.0.0.0/16, 10.1.0.0/16, 10.3.0.0/16, 192.168.1.0/24, 255.255.255.255/32,
                               1.2.3.4, 2001:db8::/32, ::/128, 2001:db9::/32, 172.16.0.0/12]
            then reject
        }"#;
    let policy = Policy::parse(src).expect("parses");
    let ip = |s: &str| {
        policy
            .evaluate(&Facts::new().client_ip(s.parse().expect("addr")))
            .rule()
            .is_some()
    };
    assert!(ip("10.0.0.0"));
    assert!(ip("10.1.255.255"));
    assert!(!ip("10.2.0.0"));
    assert!(ip("10.3.0.1"));
    assert!(!ip("10.4.0.0"));
    assert!(ip("255.255.255.255"));
    assert!(!ip("255.255.255.254"));
    assert!(ip("1.2.3.4"));
    assert!(!ip("1.2.3.5"));
    assert!(ip("::ffff:10.1.2.3"), "IPv4-mapped counts as IPv4");
    assert!(ip("2001:db9:ffff::1"));
    assert!(!ip("2001:dba::"));
    assert!(ip("::"));
    assert!(!ip("::1"));
    assert!(!ip("0.0.0.0"));
}

#[test]
fn unknown_is_its_own_value_in_the_table() {
    let src = r#"
        rule "not inbound" { when direction != inbound then reject }
        rule "not scanned" { when not (scanner == clean) then tempfail }
        rule "unknown direction" { when not known direction then discard, quarantine }
        default pass
    "#;
    let policy = Policy::parse(src).expect("parses");
    // Unknown direction: `!=` is unknown, so the first rule does not apply.
    assert_eq!(
        policy
            .evaluate(&Facts::new().scanner(Scanner::Clean))
            .rule(),
        Some("unknown direction")
    );
    assert_eq!(
        policy.evaluate(&Facts::new()).rule(),
        Some("unknown direction")
    );
    assert_eq!(
        policy
            .evaluate(
                &Facts::new()
                    .direction(Direction::Inbound)
                    .scanner(Scanner::Error)
            )
            .rule(),
        Some("not scanned")
    );
    assert_eq!(
        policy
            .evaluate(&Facts::new().direction(Direction::Outbound))
            .rule(),
        Some("not inbound")
    );
    assert_eq!(
        policy
            .evaluate(
                &Facts::new()
                    .direction(Direction::Inbound)
                    .scanner(Scanner::Clean)
            )
            .rule(),
        None
    );
}

#[test]
fn lazy_provider_is_asked_only_what_rules_need() {
    let src = r#"
        fact dnsbl_listed: bool
        rule "failed" { when scanner in [error, timeout] then tempfail }
        rule "listed" { when scanner == clean and dnsbl_listed then discard, quarantine }
        default pass
    "#;
    let policy = Policy::parse(src).expect("parses");
    let facts = Facts::new()
        .scanner(Scanner::Infected)
        .custom("dnsbl_listed", true);
    let p = Recording {
        facts: &facts,
        asked: RefCell::new(Vec::new()),
    };
    assert_eq!(policy.evaluate_lazy(&p).rule(), None);
    // The expensive lookup is never made: no rule tried needs it.
    assert_eq!(p.asked.into_inner(), vec!["scanner".to_owned()]);
}

#[test]
fn gates_with_many_lists_collect_their_rules() {
    // Twelve prefixes of one text, twelve suffixes and exact names: one
    // lookup yields more lists than the evaluator keeps apart.
    let mut src = String::new();
    for i in 1..=12 {
        let a = "a".repeat(i);
        src.push_str(&format!(
            "rule \"p{i}\" {{ when scanner == infected and virus matches \"{a}*b\" then reject }}\n\
             rule \"s{i}\" {{ when virus matches \"*x{a}\" and forges_sender then discard, quarantine }}\n\
             rule \"e{i}\" {{ when virus in [\"{a}\", \"z\"] and not known sender then bounce, quarantine }}\n"
        ));
    }
    src.push_str("default pass\n");
    let policy = Policy::parse(&src).expect("parses");
    let texts = [
        "aaaaaaaaaaaaab",
        "AAAAAAb",
        "xaaaaaaaaaaaaa",
        "xAAAAAAAAAAAA",
        "aaaaaaaaaaaa",
        "z",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for t in texts {
        for s in [Scanner::Infected, Scanner::Clean] {
            for fs in [true, false] {
                let f = Facts::new().virus(t).scanner(s).forges_sender(fs);
                agree(&policy, &f);
                seen.insert(policy.evaluate(&f).rule().map(str::to_owned));
                agree(&policy, &f.clone().sender("a@b"));
            }
        }
    }
    assert!(seen.contains(&Some("p1".to_owned())));
    assert!(seen.contains(&Some("s12".to_owned())));
    assert!(seen.contains(&Some("e12".to_owned())));
    assert!(seen.contains(&None));
}

// ---- lookups that push more than 5 ranges ---------------------------------

/// A chain of prefixes: `CHAIN[..k]` for `k` in 1..=12 are the anchors of
/// one deep path in a gate's prefix (or, reversed, suffix) trie.
const CHAIN: &str = "abKcdéabcdab";

/// The first `k` characters of [`CHAIN`].
fn chain(k: usize) -> String {
    CHAIN.chars().take(k.clamp(1, 12)).collect()
}

/// A rule whose required conjunct most often makes a gate (on `virus`,
/// `sender` or `client_ip`), with another condition or not: deep prefix
/// and suffix chains, exact names, networks, `all` (a gate that proves
/// nothing), and some ungated rules for the cells' own lists.
fn gated_rule() -> impl Strategy<Value = String> {
    let gate = prop_oneof![
        3 => (1usize..=12).prop_map(|k| format!("virus matches {}", quoted(&format!("{}*", chain(k))))),
        2 => (1usize..=12).prop_map(|k| format!("virus matches {}", quoted(&format!("*{}", chain(k))))),
        1 => (1usize..=12).prop_map(|k| format!("virus matches {}", quoted(&format!("{}?*", chain(k))))),
        2 => (0usize..24).prop_map(|i| format!("virus == \"n{i}\"")),
        1 => (0usize..24).prop_map(|i| format!("virus in [\"n{i}\", \"n{}\", {}]", i + 1, quoted(&chain(i % 12 + 1)))),
        1 => (1usize..=12).prop_map(|k| format!("all virus matches {}", quoted(&format!("{}*", chain(k))))),
        2 => (1usize..=12).prop_map(|k| format!("sender matches {}", quoted(&format!("{}*", chain(k))))),
        1 => (0usize..12).prop_map(|i| format!("sender == {}", quoted(&chain(i + 1)))),
        1 => prop::collection::vec(prop::sample::select(NETS), 1..=3)
            .prop_map(|ns| format!("client_ip in {}", list(ns.iter().map(|n| n.to_string()).collect()))),
        1 => (0i64..3000).prop_map(|n| format!("size > {n}")),
        1 => enum_leaf("scanner", SCANS),
    ];
    (gate, prop::option::weighted(0.5, cond()), any::<bool>()).prop_map(|(g, extra, first)| {
        match extra {
            None => g,
            Some(c) if first => format!("{g} and ({c})"),
            Some(c) => format!("({c}) and {g}"),
        }
    })
}

/// Names and senders that reach deep into the chains, exact names, and
/// others.
fn chain_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..=12, text(2)).prop_map(|(k, t)| format!("{}{t}", chain(k))),
        (1usize..=12, text(2)).prop_map(|(k, t)| format!("{t}{}", chain(k))),
        (1usize..=12).prop_map(|k| chain(k).to_uppercase()),
        (0usize..25).prop_map(|i| format!("n{i}")),
        text(4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Many rules gated on one fact, and sets of many names or one string
    /// deep in a prefix chain: a lookup pushes more than 5 ranges, whose
    /// rules are collected (a bitset, several gates' together) and tried
    /// in rule order, alone (one gate) or merged with the cell's rules and
    /// other gates'.
    #[test]
    fn overflowing_lookups_decide_as_the_reference(
        rules in prop::collection::vec(gated_rule(), 6..48),
        all in prop::collection::vec(
            (facts(), prop::collection::vec(chain_text(), 0..16), prop::option::of(chain_text())),
            1..12,
        ),
    ) {
        let mut src = HEADER.to_owned();
        for i in 0..4 {
            src.push_str(&format!("list globs{i} = [\"{}*\", \"*x\"]\n", chain(i + 3)));
        }
        for (i, c) in rules.iter().enumerate() {
            let action = ["reject", "discard, quarantine", "tempfail"][i % 3];
            src.push_str(&format!("rule \"r{i}\" {{ when {c} then {action} }}\n"));
        }
        let policy = match Policy::parse_with_limits(&src, &unbounded()) {
            Ok(p) => p,
            Err(e) => panic!("generated policy does not parse: {e}\n{src}"),
        };
        for (f, names, sender) in &all {
            let f = f.clone().viruses(names.iter().cloned());
            agree(&policy, &f);
            if let Some(s) = sender {
                agree(&policy, &f.clone().sender(s.as_str()));
            }
        }
    }
}

/// The rule names of `policy` decided over `facts`, checked against the
/// reference on the way.
fn decided(policy: &Policy, facts: &[Facts]) -> std::collections::BTreeSet<Option<String>> {
    facts
        .iter()
        .map(|f| {
            agree(policy, f);
            policy.evaluate(f).rule().map(str::to_owned)
        })
        .collect()
}

#[test]
fn sets_of_many_names_try_the_rules_of_every_name_in_order() {
    // 80 families, each gated on `virus` by prefix, suffix, exact name or
    // `all` (a gate that proves nothing), some with a condition that is
    // often false: one gate (the cells' lists are empty after the head).
    let mut src = String::new();
    for i in 0..80 {
        let when = match i % 4 {
            0 => format!("virus matches \"Fam{i}.*\""),
            1 => format!("virus matches \"*.V{i}\" and forges_sender"),
            2 => format!("virus in [\"Name{i}\", \"Fam{i}.x\"] and size > {}", i * 10),
            _ => format!("all virus matches \"Fam{i}.*\""),
        };
        src.push_str(&format!("rule \"r{i}\" {{ when {when} then reject }}\n"));
    }
    let one_gate = Policy::parse(&src).expect("parses");
    // The same rules with ungated ones in between and a second gate on
    // `sender` (a deep prefix chain): the merge of several lists.
    let mut merged_src = String::new();
    for (i, line) in src.lines().enumerate() {
        merged_src.push_str(line);
        merged_src.push('\n');
        if i % 9 == 4 {
            merged_src.push_str(&format!(
                "rule \"u{i}\" {{ when scanner == infected and size > {} then tempfail }}\n",
                1000 + i
            ));
        }
        if i % 7 == 3 {
            let p = &"abcdefghijklmnopqrstuvwxyz"[..(i % 26).max(1)];
            merged_src.push_str(&format!(
                "rule \"s{i}\" {{ when sender matches \"{p}*\" and size > {} then discard, quarantine }}\n",
                i * 10
            ));
        }
    }
    let merged = Policy::parse(&merged_src).expect("parses");
    let mut facts = Vec::new();
    for names in [
        // The last families, each through a name of its own.
        (70..80).map(|i| format!("Fam{i}.x")).collect::<Vec<_>>(),
        (40..80).map(|i| format!("Name{i}")).collect(),
        (0..80).rev().map(|i| format!("W.V{i}")).collect(),
        (0..80).step_by(7).map(|i| format!("fam{i}.Y")).collect(),
        (60..80)
            .flat_map(|i| [format!("Fam{i}.x"), format!("x.V{i}"), format!("Name{i}")])
            .collect(),
        vec!["Fam3".to_owned(), "Fam31.a".to_owned(), "Fam3x".to_owned()],
        // One family through many names: `all` holds.
        "abcdefgh".chars().map(|c| format!("Fam71.{c}")).collect(),
    ] {
        for size in [0, 500, 5000] {
            for fs in [false, true] {
                let f = Facts::new()
                    .viruses(names.iter().cloned())
                    .size(size)
                    .forges_sender(fs)
                    .scanner(Scanner::Infected);
                facts.push(f.clone().sender("abcdefghijklmnopqrstuvwxyz"));
                facts.push(f.clone().sender("abc"));
                facts.push(f);
            }
        }
    }
    let seen = decided(&one_gate, &facts);
    // Late rules decide: the rules of all the names were tried.
    for r in ["r0", "r1", "r42", "r60", "r70", "r71", "r72"] {
        assert!(
            seen.contains(&Some(r.to_owned())),
            "{r} never decides: {seen:?}"
        );
    }
    let seen = decided(&merged, &facts);
    for r in ["r1", "r42", "r60", "r71", "r72", "s3", "u4"] {
        assert!(
            seen.contains(&Some(r.to_owned())),
            "{r} never decides: {seen:?}"
        );
    }
}

#[test]
fn deep_prefix_chains_try_their_rules_in_order() {
    // `a*`, `ab*`, `abc*`, ... on `sender` (30 ranges for one lookup) and
    // `*z`, `*yz`, ... on `virus`, each with a size threshold, so that the
    // first true rule moves along the chain; alone (one gate) and with a
    // second chain and ungated rules (a merge with two gates that
    // overflow in the same evaluation).
    let letters = "abcdefghijklmnopqrstuvwxyz0123";
    let mut alone = String::new();
    let mut both = String::new();
    for k in 1..=30 {
        let p = &letters[..k];
        let s = &letters[30 - k..];
        let size = 30_000 - 1000 * k;
        alone.push_str(&format!(
            "rule \"p{k}\" {{ when sender matches \"{p}*\" and size > {size} then reject }}\n"
        ));
        both.push_str(&format!(
            "rule \"p{k}\" {{ when sender matches \"{p}*\" and size > {size} then reject }}\n\
             rule \"v{k}\" {{ when virus matches \"*{s}\" and size > {} then discard, quarantine }}\n",
            size + 500
        ));
        if k % 5 == 0 {
            both.push_str(&format!(
                "rule \"u{k}\" {{ when scanner == infected and size == {size} then tempfail }}\n"
            ));
        }
    }
    let alone = Policy::parse(&alone).expect("parses");
    let both = Policy::parse(&both).expect("parses");
    let mut facts = Vec::new();
    for size in (0..31_000).step_by(250) {
        for sender in [letters, "abcdefghij", "ABCDEFGHIJKLMNOPQRSTUVWXYZ01", "b"] {
            let f = Facts::new()
                .sender(sender)
                .size(size)
                .scanner(Scanner::Infected);
            facts.push(f.clone().viruses([letters, "xyz0123", "q", "3"]));
            facts.push(f.clone().virus(letters));
            facts.push(f);
        }
    }
    let seen = decided(&alone, &facts);
    for r in ["p1", "p10", "p29", "p30"] {
        assert!(
            seen.contains(&Some(r.to_owned())),
            "{r} never decides: {seen:?}"
        );
    }
    let seen = decided(&both, &facts);
    for r in ["p1", "p29", "v30", "v5", "u10", "u25"] {
        assert!(
            seen.contains(&Some(r.to_owned())),
            "{r} never decides: {seen:?}"
        );
    }
}
