//! Lists of many literal globs answered by a shared scan a word at a time,
//! with each list's last answer kept per evaluation (`CExpr::ScanAny`,
//! `scan::MaskCache`): the compiled evaluator decides as the reference walk
//! does, and explains the same, whatever order the rules use the lists in
//! (the same list in a row, lists alternating, under `not`, in `or`), on a
//! set fact and a one-string fact, known and unknown.

use mailpolicy::{Facts, Limits, Policy};
use proptest::prelude::*;

/// Pieces of the globs and values: few, so that names often match.
const PIECES: [&str; 6] = ["a", "b", "W32/", ".", "1", "B"];

fn piece() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&PIECES[..]), 1..4).prop_map(|v| v.concat())
}

/// A glob of a list: exact, prefix or suffix (literal-group globs).
fn glob() -> impl Strategy<Value = String> {
    (0..3u8, piece()).prop_map(|(k, p)| match k {
        0 => p,
        1 => format!("{p}*"),
        _ => format!("*{p}"),
    })
}

/// 2–6 lists of 8–24 globs (at least 8: a many-literal leaf).
fn lists() -> impl Strategy<Value = Vec<Vec<String>>> {
    prop::collection::vec(prop::collection::vec(glob(), 8..24), 2..6)
}

/// Rules: (list, fact, negated, a second list or-ed in).
type RuleShape = (usize, bool, bool, Option<usize>);

fn rules() -> impl Strategy<Value = Vec<RuleShape>> {
    prop::collection::vec(
        (
            0..6usize,
            any::<bool>(),
            any::<bool>(),
            prop::option::of(0..6usize),
        ),
        1..40,
    )
}

fn source(lists: &[Vec<String>], rules: &[RuleShape]) -> String {
    let mut src = String::new();
    for (i, l) in lists.iter().enumerate() {
        let items: Vec<String> = l.iter().map(|g| format!("{g:?}")).collect();
        src.push_str(&format!("list l{i} = [{}]\n", items.join(", ")));
    }
    let n = lists.len();
    for (i, &(list, on_virus, neg, or)) in rules.iter().enumerate() {
        let fact = if on_virus { "virus" } else { "sender" };
        let mut cond = format!("{fact} matches l{}", list % n);
        if neg {
            cond = format!("not {cond}");
        }
        if let Some(o) = or {
            cond = format!("{cond} or virus matches l{}", o % n);
        }
        let action = ["reject", "pass", "tempfail"][i % 3];
        src.push_str(&format!("rule \"r{i}\" {{ when {cond} then {action} }}\n"));
    }
    src
}

/// Facts: `virus` a set of 0–3 names or unknown, `sender` a name or unknown.
fn facts() -> impl Strategy<Value = Facts> {
    (
        prop::option::of(prop::collection::vec(piece(), 0..4)),
        prop::option::of(piece()),
    )
        .prop_map(|(virus, sender)| {
            let mut f = Facts::new();
            if let Some(v) = virus {
                f = f.viruses(v);
            }
            if let Some(s) = sender {
                f = f.sender(s);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn many_literal_lists_decide_as_the_reference(
        lists in lists(),
        rules in rules(),
        all_facts in prop::collection::vec(facts(), 1..8),
    ) {
        let src = source(&lists, &rules);
        let policy = Policy::parse(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        for f in &all_facts {
            prop_assert_eq!(policy.evaluate(f), policy.evaluate_reference(f), "{}\n{:?}", src, f);
            let (ex, reference) = (policy.explain(f), policy.explain_reference(f));
            prop_assert_eq!(ex.decision, reference.decision);
            prop_assert_eq!(ex.trace, reference.trace);
        }
    }
}

/// The attack corpus's 5,000-glob list used by 2,000 rules in a row (its
/// 10,000-string list left out), on infected facts: decides as the
/// reference does, for names in and out of the list.
#[test]
fn a_long_list_used_by_2000_rules() {
    let mut src = String::from("list worms = [");
    for i in 0..5_000 {
        src.push_str(&format!("\"W32/Worm{i}.*\", "));
    }
    src.push_str("]\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches worms and size > {i} then discard, quarantine }}\n"
        ));
    }
    let policy = Policy::parse(&src).expect("parses");
    for (names, size, expect) in [
        (vec!["W32/Worm4999.A"], 5_000, Some("r0")),
        (vec!["Eicar", "W32/Worm17.B"], 1_500, Some("r0")),
        (vec!["W32/Worm17.B"], 0, None),
        (vec!["W32/Wormx.A", "Eicar"], 5_000, None),
        (vec![], 5_000, None),
    ] {
        let f = Facts::new().viruses(names.clone()).size(size);
        let d = policy.evaluate(&f);
        assert_eq!(d, policy.evaluate_reference(&f), "{names:?}");
        assert_eq!(d.rule(), expect, "{names:?} size {size}");
    }
}

/// 8 lists of 1,000 globs on `virus`, used by rules in turn: every use
/// tests the list's 16 words (the last answer kept is another list's), so
/// the pass budget counts 16 words a rule, 65,536 words a pass. 20,000
/// rules fit (about half a millisecond per evaluation, measured); 30,000
/// are refused with a positioned `limit` error. (Each rule is also tried by
/// every evaluation: 20,000 rules take 80,000 steps, past the default
/// `max_eval_steps`, which is raised here: the pass budget is tested.)
#[test]
fn alternating_lists_are_counted_in_the_pass_budget() {
    let limits = Limits {
        max_eval_steps: 200_000,
        ..Limits::default()
    };
    let policy = |rules: usize| {
        let mut src = String::new();
        for l in 0..8 {
            let items: Vec<String> = (0..1_000).map(|i| format!("\"F{l}x{i}.*\"")).collect();
            src.push_str(&format!("list l{l} = [{}]\n", items.join(", ")));
        }
        for r in 0..rules {
            src.push_str(&format!(
                "rule \"r{r}\" {{ when virus matches l{} and size > {r} then reject }}\n",
                r % 8
            ));
        }
        Policy::parse_with_limits(&src, &limits)
    };
    let ok = policy(20_000).expect("20,000 rules parse");
    let f = Facts::new().viruses(["F3x5.A", "Novel"]).size(5_000);
    assert_eq!(ok.evaluate(&f).rule(), Some("r3"));
    assert_eq!(ok.evaluate(&f), ok.evaluate_reference(&f));
    // (Not `expect_err`: it would print the whole policy were it accepted.)
    let err = match policy(30_000) {
        Ok(_) => panic!("30,000 rules in turn over 8 lists are accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("the globs and regexes on fact `virus` read its value 7 times per evaluation, more than the limit of 6"),
        "{err}"
    );
}
