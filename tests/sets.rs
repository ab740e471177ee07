//! Several detections per message: `virus` is a set of names (SPEC.md,
//! "Several detections per message"). Every evaluator (compiled, reference,
//! lazy) must give the same answers; the answers themselves are written out
//! here by hand from the specification.

use mailpolicy::{Direction, FactKey, FactProvider, FactValue, Facts, FactsInput, Policy, Scanner};
use std::borrow::Cow;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A provider over `Facts` that lends the stored names without copying.
struct Lazy<'f>(&'f Facts);

impl FactProvider for Lazy<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.0.fact(key)
    }
}

/// The deciding rule, after checking that every evaluator agrees.
fn decide(policy: &Policy, facts: &Facts) -> Option<String> {
    let fast = policy.evaluate(facts);
    let reference = policy.evaluate_reference(facts);
    let lazy = policy.evaluate_lazy(&Lazy(facts));
    assert_eq!(fast, reference, "compiled != reference for {facts:?}");
    assert_eq!(lazy, reference, "lazy != reference for {facts:?}");
    fast.rule().map(str::to_owned)
}

/// One rule `yes` with condition `cond`; `Some(true)` when it applies,
/// `Some(false)` when its condition is false (rule `no`, `not cond`,
/// applies) and `None` when it is unknown (the default decides).
fn truth(cond: &str, facts: &Facts) -> Option<bool> {
    let src = format!(
        "list pua = [\"PUA.*\", \"*Phishing*\"]\nlist exact = [\"A\", \"B\"]\n\
         rule \"yes\" {{ when {cond} then pass }}\n\
         rule \"no\" {{ when not ({cond}) then pass }}\n\
         default discard, quarantine\n"
    );
    let policy = Policy::parse(&src).unwrap_or_else(|e| panic!("{src}\n{e}"));
    match decide(&policy, facts).as_deref() {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        _ => None,
    }
}

fn names(v: &[&str]) -> Facts {
    Facts::new().viruses(v.iter().copied())
}

#[test]
fn comparisons_hold_when_any_name_satisfies_them() {
    let mixed = names(&["Win.Trojan.Agent", "PUA.Win.Packer"]);
    let pua = names(&["PUA.Win.Packer", "Heuristics.Phishing.Email"]);
    let empty = names(&[]);
    let unknown = Facts::new();
    let one = Facts::new().virus("A");
    let cases: &[(&str, &Facts, Option<bool>)] = &[
        // ==
        ("virus == \"PUA.Win.Packer\"", &mixed, Some(true)),
        ("virus == \"PUA.Win.Packer\"", &one, Some(false)),
        ("virus == \"A\"", &one, Some(true)),
        ("virus == \"A\"", &empty, Some(false)),
        ("virus == \"A\"", &unknown, None),
        // != is `not ==`: true on the empty set, false when any name is equal.
        ("virus != \"PUA.Win.Packer\"", &mixed, Some(false)),
        ("virus != \"Other\"", &mixed, Some(true)),
        ("virus != \"A\"", &empty, Some(true)),
        ("virus != \"A\"", &unknown, None),
        // in [...] / in LIST
        ("virus in [\"X\", \"Win.Trojan.Agent\"]", &mixed, Some(true)),
        ("virus in [\"X\", \"Y\"]", &mixed, Some(false)),
        ("virus in []", &mixed, Some(false)),
        ("virus in exact", &one, Some(true)),
        ("virus in exact", &empty, Some(false)),
        // matches: glob, glob list, regex
        ("virus matches \"pua.*\"", &mixed, Some(true)),
        ("virus matches \"Win.Worm*\"", &mixed, Some(false)),
        ("virus matches \"*\"", &empty, Some(false)),
        ("virus matches pua", &pua, Some(true)),
        ("virus matches pua", &mixed, Some(true)),
        ("virus matches pua", &one, Some(false)),
        ("virus matches /trojan/", &mixed, Some(true)),
        ("virus matches /^PUA/", &names(&["Eicar", "x"]), Some(false)),
        ("virus matches /^$/", &empty, Some(false)),
        ("virus matches /x/", &unknown, None),
        // `known` is true for the empty set.
        ("known virus", &empty, Some(true)),
        ("known virus", &unknown, Some(false)),
    ];
    for (cond, facts, want) in cases {
        assert_eq!(truth(cond, facts), *want, "{cond} on {facts:?}");
    }
}

#[test]
fn facts_virus_adds_names() {
    let f = Facts::new().virus("A").virus("B").virus("A");
    assert_eq!(f.get("virus"), Some(&FactValue::set(["A", "B"])));
    assert_eq!(
        f.get("virus").map(ToString::to_string).as_deref(),
        Some("[\"A\", \"B\"]")
    );
    // `viruses` replaces; the empty set is known.
    let f = f.viruses(Vec::<String>::new());
    assert_eq!(f.get("virus"), Some(&FactValue::set(Vec::<String>::new())));
    // A plain string stays accepted as a one-element set.
    let mut g = Facts::new();
    g.set("virus", FactValue::Str(Cow::Borrowed("A")));
    assert_eq!(truth("virus == \"A\"", &g), Some(true));
    assert_eq!(truth("virus != \"A\"", &g), Some(false));
    // Adding to a plain string keeps it.
    let g = g.virus("B");
    assert_eq!(g.get("virus"), Some(&FactValue::set(["A", "B"])));
    // A set given to a plain string fact is of the wrong type: unknown.
    let mut h = Facts::new();
    h.set("sender", FactValue::set(["a@b"]));
    assert_eq!(truth("sender == \"a@b\"", &h), None);
}

#[test]
fn the_site_policy_cannot_be_fooled_by_a_second_name() {
    // "Let phishing through" written with any-semantics lets nothing else
    // through: the real virus in the same message is caught first.
    let policy = Policy::parse(
        r#"
        rule "viruses are discarded" {
            when scanner == infected and not (virus matches "*Phishing*")
            then discard, quarantine
        }
        rule "phishing is tagged" {
            when scanner == infected and virus matches "*Phishing*"
            then pass, tag "[PHISHING]"
        }
        default pass
        "#,
    )
    .expect("parses");
    let base = Facts::new()
        .direction(Direction::Inbound)
        .scanner(Scanner::Infected);
    let phish = base.clone().virus("Heuristics.Phishing.Email");
    assert_eq!(
        decide(&policy, &phish).as_deref(),
        Some("phishing is tagged")
    );
    // Both: `not (virus matches "*Phishing*")` is false, so the first rule
    // does not catch it — this is the mailcow trap the `all` form avoids.
    let both = phish.clone().virus("Win.Trojan.Agent");
    assert_eq!(
        decide(&policy, &both).as_deref(),
        Some("phishing is tagged")
    );
}

#[test]
fn facts_json_takes_a_string_or_an_array() {
    let policy = Policy::parse("fact hits: bool\nrule \"r\" { when virus == \"B\" then reject }")
        .expect("parses");
    let one = |json: &str| match policy.facts_from_json(json) {
        Ok(FactsInput::One(f)) => f,
        other => panic!("{json}: {other:?}"),
    };
    assert_eq!(
        one(r#"{"virus":"A"}"#).get("virus"),
        Some(&FactValue::set(["A"]))
    );
    let both = one(r#"{"virus":["A","B"]}"#);
    assert_eq!(both.get("virus"), Some(&FactValue::set(["A", "B"])));
    assert_eq!(policy.evaluate(&both).rule(), Some("r"));
    assert_eq!(
        one(r#"{"virus":[]}"#).get("virus"),
        Some(&FactValue::set(Vec::<String>::new()))
    );
    assert_eq!(one(r#"{"virus":null}"#).get("virus"), None);
    assert_eq!(one(r#"{}"#).get("virus"), None);
    let err = policy
        .facts_from_json("{\"virus\": [\"A\", 3]}")
        .expect_err("a number in the array");
    let text = err.to_string();
    assert!(text.starts_with("1:"), "{text}");
    assert!(
        text.contains("fact `virus` expects a string or an array of strings"),
        "{text}"
    );
    assert!(text.contains("number 3 at index 1"), "{text}");
    let err = policy
        .facts_from_json(r#"{"virus": {"a": 1}}"#)
        .expect_err("an object");
    assert!(err.to_string().contains("found an object"), "{err}");
    // One facts object per recipient, each with its own set.
    match policy.facts_from_json(r#"[{"virus":["A"]},{"virus":["A","B"]}]"#) {
        Ok(FactsInput::PerRecipient(all)) => {
            assert_eq!(policy.evaluate(&all[0]).rule(), None);
            assert_eq!(policy.evaluate(&all[1]).rule(), Some("r"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fact_assignments_take_a_name_or_a_json_array() {
    let policy = Policy::parse("rule \"r\" { when virus == \"B\" then reject }").expect("parses");
    let mut f = Facts::new();
    policy
        .set_fact_from_str(&mut f, "virus=B")
        .expect("one name");
    assert_eq!(f.get("virus"), Some(&FactValue::set(["B"])));
    policy
        .set_fact_from_str(&mut f, r#"virus=["A", "B"]"#)
        .expect("an array");
    assert_eq!(f.get("virus"), Some(&FactValue::set(["A", "B"])));
    policy.set_fact_from_str(&mut f, "virus=[]").expect("empty");
    assert_eq!(f.get("virus"), Some(&FactValue::set(Vec::<String>::new())));
    let err = policy
        .set_fact_from_str(&mut f, "virus=[A")
        .expect_err("bad JSON");
    assert!(err.to_string().contains("JSON array of names"), "{err}");
}

#[test]
fn explain_shows_the_set() {
    let policy =
        Policy::parse("rule \"r\" { when virus matches \"PUA.*\" then pass }").expect("parses");
    let ex = policy.explain(&names(&["Eicar", "PUA.X"]));
    let check = &ex.trace[0].checks[0];
    assert_eq!(check.result, "true");
    assert_eq!(check.fact.as_deref(), Some("virus"));
    assert_eq!(check.value.as_deref(), Some(r#"["Eicar", "PUA.X"]"#));
    let ex = policy.explain(&names(&[]));
    assert_eq!(ex.trace[0].checks[0].value.as_deref(), Some("[]"));
    assert_eq!(ex.trace[0].checks[0].result, "false");
}

/// Gated rules (a required `virus` test indexes the rule by value) see every name.
#[test]
fn gates_look_up_every_name() {
    let mut src = String::new();
    for i in 0..40 {
        src.push_str(&format!(
            "rule \"exact {i}\" {{ when scanner == infected and virus == \"Fam{i}.A\" then reject }}\n\
             rule \"glob {i}\" {{ when scanner == infected and virus matches \"Glob{i}.*\" then discard, quarantine }}\n"
        ));
    }
    let policy = Policy::parse(&src).expect("parses");
    let infected = Facts::new().scanner(Scanner::Infected);
    let f = infected.clone().viruses(["Nothing", "Glob7.x", "Fam3.A"]);
    assert_eq!(decide(&policy, &f).as_deref(), Some("exact 3"));
    let f = infected.clone().viruses(["Glob39.y", "Nothing"]);
    assert_eq!(decide(&policy, &f).as_deref(), Some("glob 39"));
    let f = infected.clone().viruses(Vec::<String>::new());
    assert_eq!(decide(&policy, &f), None);
    // Many names: more lists than a gate holds, so it falls back to all its rules.
    let many: Vec<String> = (0..30).rev().map(|i| format!("Glob{i}.z")).collect();
    let f = infected.clone().viruses(many);
    assert_eq!(decide(&policy, &f).as_deref(), Some("glob 0"));
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(args)
        .output()
        .expect("run policy")
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailpolicy-sets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn cli_eval_reads_arrays_and_shows_them_in_traces() {
    let p = temp(
        "eval.policy",
        "rule \"phish\" { when virus matches \"*Phishing*\" then pass, tag \"[PHISH]\" }\ndefault discard, quarantine\n",
    );
    let facts = temp(
        "facts.json",
        r#"{"virus": ["Win.Trojan.Agent", "Heuristics.Phishing.Email"]}"#,
    );
    let o = cli(&[
        "eval",
        p.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
        "--explain",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["rule"], "phish");
    let value = v["trace"][0]["checks"][0]["value"]
        .as_str()
        .expect("a value");
    let parsed: serde_json::Value = serde_json::from_str(value).expect("the value is a JSON array");
    assert_eq!(
        parsed,
        serde_json::json!(["Win.Trojan.Agent", "Heuristics.Phishing.Email"])
    );
    let o = cli(&["eval", p.to_str().unwrap(), "--fact", "virus=[]"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["rule"], serde_json::Value::Null);
    assert_eq!(v["disposition"], "discard");
    let bad = temp("bad.json", r#"{"virus": [1]}"#);
    let o = cli(&[
        "eval",
        p.to_str().unwrap(),
        "--facts",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("array of strings"), "{err}");
}

// ---- `any` and `all` ------------------------------------------------------------------------

#[test]
fn all_is_every_name_and_at_least_one() {
    let pua = names(&["PUA.Win.Packer", "PUA.Js.Miner"]);
    let mixed = names(&["PUA.Win.Packer", "Win.Trojan.Agent"]);
    let phish_pua = names(&["PUA.Win.Packer", "Heuristics.Phishing.Email"]);
    let one = Facts::new().virus("PUA.Win.Packer");
    let empty = names(&[]);
    let unknown = Facts::new();
    let cases: &[(&str, &Facts, Option<bool>)] = &[
        ("all virus matches \"PUA.*\"", &pua, Some(true)),
        ("all virus matches \"PUA.*\"", &one, Some(true)),
        ("all virus matches \"PUA.*\"", &mixed, Some(false)),
        // Non-vacuous: clean mail is not "all PUA".
        ("all virus matches \"PUA.*\"", &empty, Some(false)),
        ("all virus matches \"*\"", &empty, Some(false)),
        ("all virus matches \"PUA.*\"", &unknown, None),
        ("all virus matches pua", &phish_pua, Some(true)),
        ("all virus matches pua", &mixed, Some(false)),
        ("all virus matches /^pua\\./", &pua, Some(true)),
        ("all virus matches /^pua\\./", &mixed, Some(false)),
        (
            "all virus in [\"PUA.Win.Packer\", \"PUA.Js.Miner\", \"X\"]",
            &pua,
            Some(true),
        ),
        ("all virus in [\"PUA.Win.Packer\"]", &pua, Some(false)),
        ("all virus in []", &empty, Some(false)),
        ("all virus in exact", &names(&["A", "B"]), Some(true)),
        ("all virus in exact", &names(&["A", "C"]), Some(false)),
        ("all virus == \"PUA.Win.Packer\"", &one, Some(true)),
        ("all virus == \"PUA.Win.Packer\"", &pua, Some(false)),
        // `any` written out is the plain form.
        ("any virus matches \"Win.*\"", &mixed, Some(true)),
        ("any virus matches \"Win.*\"", &pua, Some(false)),
        ("any virus == \"PUA.Js.Miner\"", &pua, Some(true)),
        ("any virus in exact", &empty, Some(false)),
        ("any virus matches /x/", &unknown, None),
        // Negations.
        ("not all virus matches \"PUA.*\"", &mixed, Some(true)),
        ("not all virus matches \"PUA.*\"", &empty, Some(true)),
        ("not all virus matches \"PUA.*\"", &unknown, None),
    ];
    for (cond, facts, want) in cases {
        assert_eq!(truth(cond, facts), *want, "{cond} on {facts:?}");
    }
}

/// The example the issue asks for: PUA and phishing are tagged, everything
/// else is discarded safely, and a mixed message is never let through.
#[test]
fn pass_only_when_every_detection_is_pua_or_phishing() {
    let policy = Policy::parse(
        r#"
        list harmless = ["PUA.*", "Heuristics.Phishing.*", "*.Phishing.*"]
        rule "PUA and phishing are tagged" {
            when scanner == infected and all virus matches harmless
            then pass, tag "[PUA]"
        }
        rule "everything else is discarded safely" {
            when scanner == infected
            then discard, quarantine
        }
        default pass
        "#,
    )
    .expect("parses");
    let infected = Facts::new()
        .direction(Direction::Inbound)
        .scanner(Scanner::Infected);
    let pass = Some("PUA and phishing are tagged");
    let discard = Some("everything else is discarded safely");
    for (v, want) in [
        (vec!["PUA.Win.Packer.Upx"], pass),
        (vec!["Heuristics.Phishing.Email.SpoofedDomain"], pass),
        (vec!["PUA.Win.Packer.Upx", "Email.Phishing.VOF0-1"], pass),
        (
            vec!["Heuristics.Phishing.Email", "Win.Trojan.Agent-1"],
            discard,
        ),
        (vec!["Win.Trojan.Agent-1", "PUA.Win.Packer.Upx"], discard),
        (vec!["Eicar-Signature"], discard),
        // Infected but no name known: not "all harmless".
        (vec![], discard),
    ] {
        let f = infected.clone().viruses(v.clone());
        assert_eq!(decide(&policy, &f).as_deref(), want, "{v:?}");
    }
    assert_eq!(
        decide(&policy, &infected).as_deref(),
        discard,
        "virus unknown"
    );
}

#[test]
fn custom_set_facts_work_like_virus() {
    let policy = Policy::parse(
        r#"
        fact rbl_hits: [string]
        rule "listed everywhere" { when all rbl_hits matches "*.spamhaus.org" then reject }
        rule "listed somewhere" { when rbl_hits matches "*.spamhaus.org" then pass, tag "[RBL]" }
        rule "some list" { when known rbl_hits and not (rbl_hits in []) then pass }
        test "both" { given rbl_hits = ["zen.spamhaus.org", "sbl.spamhaus.org"] expect reject }
        test "one" { given rbl_hits = ["zen.spamhaus.org", "bl.spamcop.net"] expect rule "listed somewhere" }
        test "none" { given rbl_hits = [] expect rule "some list" }
        test "string" { given rbl_hits = "zen.spamhaus.org" expect reject }
        "#,
    )
    .expect("parses");
    let report = policy.run_tests();
    assert_eq!(report.failed(), 0, "{report:?}");
    assert_eq!(report.passed(), 4);
    match policy.facts_from_json(r#"{"rbl_hits": ["zen.spamhaus.org", "x"]}"#) {
        Ok(FactsInput::One(f)) => {
            assert_eq!(decide(&policy, &f).as_deref(), Some("listed somewhere"))
        }
        other => panic!("{other:?}"),
    }
    let f = Facts::new().custom("rbl_hits", FactValue::set(["a.spamhaus.org"]));
    assert_eq!(decide(&policy, &f).as_deref(), Some("listed everywhere"));
    let f = Facts::new().custom("rbl_hits", vec!["x", "y"]);
    assert_eq!(decide(&policy, &f).as_deref(), Some("some list"));
}

#[test]
fn tests_give_sets_and_fail_with_them() {
    let policy = Policy::parse(
        r#"
        rule "pua" { when all virus matches "PUA.*" then pass }
        default discard, quarantine
        test "a set" { given virus = ["PUA.A", "PUA.B",] expect pass }
        test "mixed is no pua" { given virus = ["PUA.A", "Trojan"] expect pass }
        test "empty" { given virus = [] expect discard, quarantine }
        "#,
    )
    .expect("parses");
    let report = policy.run_tests();
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(failed, ["mixed is no pua"]);
}

/// The first error of `src`: (code, line, column, message, help).
fn first_error(src: &str) -> (String, usize, usize, String, String) {
    let err = Policy::parse(src).expect_err("an error");
    let d = err.errors().next().expect("an error").clone();
    (
        d.code.as_str().to_owned(),
        d.line,
        d.column,
        d.message,
        d.help.unwrap_or_default(),
    )
}

#[test]
fn misuse_gets_a_positioned_error() {
    let (code, line, col, msg, help) =
        first_error("rule \"r\" {\n  when all sender == \"x\"\n  then pass }");
    assert_eq!((code.as_str(), line, col), ("type-mismatch", 2, 8));
    assert!(
        msg.contains("`all` needs a set fact, but fact `sender` is a string"),
        "{msg}"
    );
    assert!(help.contains("drop `all`"), "{help}");

    let (code, _, col, msg, _) = first_error("rule \"r\" { when any scanner == clean then pass }");
    assert_eq!((code.as_str(), col), ("type-mismatch", 17));
    assert!(msg.contains("`any` needs a set fact"), "{msg}");

    let (code, _, col, msg, help) = first_error("rule \"r\" { when all virus != \"X\" then pass }");
    assert_eq!((code.as_str(), col), ("type-mismatch", 17));
    assert!(msg.contains("`all` does not combine with `!=`"), "{msg}");
    assert!(help.contains("not (virus == \"X\")"), "{help}");

    let (code, _, col, msg, _) = first_error("rule \"r\" { when virus == 3 then pass }");
    assert_eq!((code.as_str(), col), ("type-mismatch", 26));
    assert!(
        msg.contains("fact `virus` is a set of strings, but an integer"),
        "{msg}"
    );

    let (code, _, _, msg, _) = first_error("rule \"r\" { when all virus > 3 then pass }");
    assert_eq!(code, "type-mismatch");
    assert!(msg.contains("`>` compares numbers"), "{msg}");

    let (code, _, _, msg, _) = first_error("rule \"r\" { when virus then pass }");
    assert_eq!(code, "type-mismatch");
    assert!(msg.contains("[string], not a bool"), "{msg}");

    let (code, _, col, msg, help) = first_error("fact hits: [int]\n");
    assert_eq!((code.as_str(), col), ("syntax", 13));
    assert!(msg.contains("a set holds strings, not `int`"), "{msg}");
    assert!(help.contains("[string]"), "{help}");

    let (code, _, col, msg, _) =
        first_error("test \"t\" { given sender = [\"a\"] expect default }");
    assert_eq!((code.as_str(), col), ("type-mismatch", 27));
    assert!(msg.contains("a list is given"), "{msg}");

    let (code, _, col, _, _) =
        first_error("test \"t\" { given virus = [\"a\", 1] expect default }");
    assert_eq!((code.as_str(), col), ("type-mismatch", 32));

    let (code, _, _, msg, _) = first_error("rule \"r\" { when all virus then pass }");
    assert_eq!(code, "syntax");
    assert!(!msg.is_empty());

    // `all` and `any` are no reserved words: a fact may still be called so.
    let p = Policy::parse(
        "fact all: bool\nfact any: string\nrule \"r\" { when all == true and any in [\"x\"] and all then pass }",
    )
    .expect("facts named all and any");
    let f = Facts::new().custom("all", true).custom("any", "x");
    assert_eq!(decide(&p, &f).as_deref(), Some("r"));
}

#[test]
fn fmt_round_trips_the_new_forms() {
    let src = "fact hits: [ string ]\nrule \"r\" { when any virus matches \"A*\" and not all hits in [\"x\",\"y\"] or all virus == \"B\" then pass }\ntest \"t\" { given virus = [ \"A1\" , \"B\" ], hits = [] expect pass }\n";
    let once = mailpolicy::format(src).expect("formats");
    assert!(once.contains("fact hits: [string]"), "{once}");
    assert!(
        once.contains(
            "when any virus matches \"A*\" and not all hits in [\"x\", \"y\"] or all virus == \"B\""
        ),
        "{once}"
    );
    assert!(
        once.contains("given virus = [\"A1\", \"B\"], hits = []"),
        "{once}"
    );
    assert_eq!(mailpolicy::format(&once).expect("formats again"), once);
    let a = Policy::parse(src).expect("parses");
    let b = Policy::parse(&once).expect("formatted parses");
    for f in [
        names(&["A1"]),
        names(&["B"]),
        names(&["A1", "B"]).custom("hits", vec!["x"]),
        names(&[]).custom("hits", vec!["z"]),
        Facts::new(),
    ] {
        assert_eq!(decide(&a, &f), decide(&b, &f), "{f:?}");
    }
    assert_eq!(a.run_tests().passed(), 1);
    assert_eq!(b.run_tests().passed(), 1);
}

#[test]
fn explain_names_the_quantified_condition() {
    let policy = Policy::parse("rule \"r\" { when all   virus matches \"PUA.*\" then pass }")
        .expect("parses");
    let ex = policy.explain(&names(&["PUA.A", "Trojan"]));
    let check = &ex.trace[0].checks[0];
    assert_eq!(check.condition, "all virus matches \"PUA.*\"");
    assert_eq!(check.result, "false");
    assert_eq!(check.value.as_deref(), Some(r#"["PUA.A", "Trojan"]"#));
}

/// `Facts::virus` with one name stores the name alone (no set allocated):
/// every condition decides, and `explain` shows it, as on the one-name set.
#[test]
fn one_name_from_the_builder_is_the_one_name_set() {
    let conds = [
        "virus == \"PUA.Win.Packer\"",
        "virus != \"PUA.Win.Packer\"",
        "virus != \"Other\"",
        "virus in [\"X\", \"PUA.Win.Packer\"]",
        "virus in exact",
        "virus matches \"pua.*\"",
        "virus matches \"*Packer\"",
        "virus matches pua",
        "virus matches /packer$/",
        "virus matches /^Win/",
        "all virus matches pua",
        "all virus matches \"Win.*\"",
        "any virus matches pua",
        "known virus",
        "scanner == infected and virus matches pua",
    ];
    for name in ["PUA.Win.Packer", "A", "Win.Trojan.Agent", ""] {
        let built = Facts::new().scanner(Scanner::Infected).virus(name);
        let set = Facts::new().scanner(Scanner::Infected).viruses([name]);
        assert_eq!(built, set);
        for cond in conds {
            assert_eq!(truth(cond, &built), truth(cond, &set), "{cond} on {name:?}");
            let src = format!(
                "list pua = [\"PUA.*\", \"*Phishing*\"]\nlist exact = [\"A\", \"B\"]\n\
                 rule \"yes\" {{ when {cond} then pass }}\n"
            );
            let policy = Policy::parse(&src).unwrap_or_else(|e| panic!("{src}\n{e}"));
            let (a, b) = (policy.explain(&built), policy.explain(&set));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{cond} on {name:?}");
            assert_eq!(
                format!("{:?}", policy.explain_reference(&built)),
                format!("{b:?}"),
                "{cond} on {name:?}"
            );
        }
    }
}
