//! The attack corpus of issue 11: inputs generated near the limits that
//! once cost minutes or gigabytes. Each asserts the result is right (or a
//! positioned error); time is only a hang guard (generous: debug builds on
//! a loaded 2-core machine), and each case prints its time so that
//! `cargo test --release --test cost -- --nocapture` reports the figures
//! (docs/LIMITS.md).

#[path = "common/attack.rs"]
mod attack;
#[path = "common/peak.rs"]
mod peak;

use mailpolicy::{Disposition, Facts, FactsError, FactsInput, Limits, Policy};
use peak::{memory_bound, peak_bytes};
use std::time::{Duration, Instant};

const HANG_GUARD: Duration = Duration::from_secs(120);

/// Times `f` (a hang guard only) and reports its time and peak memory.
fn timed<T>(what: &str, bytes: usize, f: impl FnOnce() -> T) -> T {
    timed_peak(what, bytes, f).0
}

/// [`timed`], returning the peak bytes allocated too.
fn timed_peak<T>(what: &str, bytes: usize, f: impl FnOnce() -> T) -> (T, usize) {
    let t = Instant::now();
    let (out, peak) = peak_bytes(f);
    let e = t.elapsed();
    let mb = (bytes as f64 / 1e6).max(1e-6);
    eprintln!(
        "{what}: {:.3} s for {:.2} MB ({:.3} s/MB), peak {:.1} MB ({:.0} bytes per input byte)",
        e.as_secs_f64(),
        bytes as f64 / 1e6,
        e.as_secs_f64() / mb,
        peak as f64 / 1e6,
        peak as f64 / bytes.max(1) as f64,
    );
    assert!(e < HANG_GUARD, "{what} took {e:?}");
    (out, peak)
}

#[test]
fn a_list_used_thousands_of_times_is_compiled_once() {
    let src = attack::list_uses();
    let p = timed("list x 2000 uses: parse", src.len(), || {
        Policy::parse(&src).unwrap()
    });
    let f = Facts::new()
        .virus("w32/worm4999.b")
        .recipient("user9999@example.org")
        .size(1_000);
    let d = p.evaluate(&f);
    assert_eq!(d.rule(), Some("r0"));
    let f = Facts::new().virus("w32/worm4999.b").recipient("x").size(1);
    assert_eq!(p.evaluate(&f).disposition(), Disposition::Pass);
}

#[test]
fn a_list_used_thousands_of_times_is_linted_once() {
    // The linter gathered each use's copy of the list's strings: 2,000 uses
    // of 10,000 strings were 20 M copies (900 MB). Now each list once.
    let src = attack::list_uses();
    let p = Policy::parse(&src).unwrap();
    let (diags, peak) = timed_peak("list x 2000 uses: check", src.len(), || p.check());
    assert!(
        diags
            .iter()
            .all(|d| d.code.as_str() != "analysis-incomplete"),
        "{diags:?}"
    );
    // Generous: 64 bytes per source byte (measured: ~25 MB for 0.54 MB).
    assert!(peak < src.len() * 64, "{peak} bytes");
}

#[test]
fn a_long_glob_on_a_long_value_is_linear() {
    // `*a…ab*` on a value of a's: the two-pointer matcher backtracks at
    // every position (O(text × glob)).
    let p = Policy::parse(&attack::long_glob()).unwrap();
    let text = "a".repeat(60 * 1024);
    let f = Facts::new().virus(text.clone());
    let d = timed("32 KB glob on a 60 KB value", text.len(), || p.evaluate(&f));
    assert_eq!(d.disposition(), Disposition::Pass);
    let hit = format!("{text}b");
    assert_eq!(
        p.evaluate(&Facts::new().virus(hit)).disposition(),
        Disposition::Reject
    );
    // With `?` inside a part: Shift-And.
    let glob = format!("*{}?b*", "a".repeat(200));
    let src = format!("rule \"g\" {{ when virus matches \"{glob}\" then reject }}");
    let p = Policy::parse(&src).unwrap();
    let f = Facts::new().virus(text.clone());
    let d = timed("? glob on a 60 KB value", text.len(), || p.evaluate(&f));
    assert_eq!(d.disposition(), Disposition::Pass);
    let hit = format!("{}xb", "a".repeat(300));
    assert_eq!(
        p.evaluate(&Facts::new().virus(hit)).disposition(),
        Disposition::Reject
    );
    // A `?` part longer than the limit is refused, with a position.
    let glob = format!("*{}?*", "a".repeat(300));
    let src = format!("rule \"g\" {{ when virus matches \"{glob}\" then reject }}");
    let err = Policy::parse(&src).unwrap_err();
    assert_eq!(err.diagnostics()[0].code.as_str(), "invalid-glob");
}

#[test]
fn regexes_are_bounded_in_total_and_per_match() {
    // 50 rules of a regex whose lazy DFA thrashes, on a 64 KB value. Their
    // DFAs are large: several groups, each a pass over every name of
    // `virus` (3 passes' worth on a set): past the scan budget.
    let src = attack::big_dfa_regex_rules();
    let err = Policy::parse(&src).expect_err("past the scan budget");
    let d = &err.diagnostics()[0];
    assert_eq!(d.code.as_str(), "limit");
    assert!(
        d.message.contains("read its value") && d.message.contains("fact `virus`"),
        "{}",
        d.message
    );
    let lots = Limits {
        max_scan_passes: 1_000,
        ..Limits::default()
    };
    let p = Policy::parse_with_limits(&src, &lots).unwrap();
    let text = "ab".repeat(32 * 1024);
    let f = Facts::new().virus(text.clone());
    let d = timed("50 regexes on a 64 KB value", text.len(), || p.evaluate(&f));
    assert_eq!(d.disposition(), Disposition::Pass);
    // A regex whose DFA is too big is refused, with a position.
    let err =
        Policy::parse("rule \"r\" { when virus matches /[ab]{10000}/ then reject }").unwrap_err();
    assert_eq!(err.diagnostics()[0].code.as_str(), "invalid-regex");
    // 4,000 regexes of 1 MB each cannot all be compiled: the total budget.
    let src = attack::big_regexes();
    let err = timed("4,000 big regexes", src.len(), || {
        Policy::parse(&src).unwrap_err()
    });
    assert!(err.diagnostics().iter().any(|d| d.code.as_str() == "limit"));
}

#[test]
fn many_errors_on_one_line_are_placed_in_one_pass() {
    let src = attack::errors_on_one_line();
    let err = timed("50,000 unknown enum values on one line", src.len(), || {
        Policy::parse(&src).unwrap_err()
    });
    let n = err.errors().count();
    assert_eq!(n, 50_000);
    let shown = err.to_string();
    assert!(shown.len() < 2_000 * n, "{} bytes of errors", shown.len());
    // Columns increase along the line.
    let cols: Vec<usize> = err.errors().map(|d| d.column).collect();
    assert!(cols.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn colliding_strings_and_repeated_networks_index_quickly() {
    // Many exact strings (no hash to flood: a sorted table) and one network
    // repeated 20,000 times in one rule.
    let src = attack::strings_and_networks();
    let p = timed("100k strings + 40k repeated networks", src.len(), || {
        Policy::parse(&src).unwrap()
    });
    let f = Facts::new().recipient("00099999");
    assert_eq!(p.evaluate(&f).rule(), Some("s"));
    let f = Facts::new().client_ip("10.1.2.3".parse().unwrap());
    assert_eq!(p.evaluate(&f).rule(), Some("n"));
}

#[test]
fn descending_glob_prefixes_build_quickly() {
    let src = attack::descending_prefixes();
    let p = timed("20,000 descending glob prefixes", src.len(), || {
        Policy::parse(&src).unwrap()
    });
    let f = Facts::new().sender("000123@x");
    assert_eq!(p.evaluate(&f).rule(), Some("r123"));
}

#[test]
fn one_value_enums_do_not_blow_up_the_table() {
    let src = attack::one_value_enums();
    // With every enum at its value no cell rules anything out: an
    // evaluation may try all 20,000 rules (140,000 steps: 0.7 ms, release),
    // past the default `max_eval_steps`. The table's size is what is
    // tested here, so that limit is raised.
    let limits = Limits {
        max_eval_steps: 1 << 20,
        ..Limits::default()
    };
    let p = timed("20,000 rules over 12 one-value enums", src.len(), || {
        Policy::parse_with_limits(&src, &limits).unwrap()
    });
    let (bytes, _, _) = p.compiled_size();
    assert!(bytes < 100 * src.len(), "{bytes} bytes compiled");
    drop(p);
    let Err(err) = Policy::parse(&src) else {
        panic!("the default `max_eval_steps` refuses it");
    };
    assert_eq!(err.diagnostics()[0].code.as_str(), "limit");
}

#[test]
fn help_lines_list_a_few_enum_values() {
    let src = attack::quoted_enum_values();
    let err = timed("2,000 quoted enum values", src.len(), || {
        Policy::parse(&src).unwrap_err()
    });
    assert_eq!(err.errors().count(), 2_000);
    assert!(err.to_string().len() < 2_000 * 1_000);
}

// ---------------------------------------------------------------- facts JSON

fn facts_policy(limits: &Limits) -> Policy {
    Policy::parse_with_limits(
        "fact dnsbl_listed: bool\nfact rbl: [string]\nrule \"r\" { when virus == \"x9\" then reject }",
        limits,
    )
    .expect("policy")
}

/// A facts error, after checking that it is positioned inside `json`, and
/// that reading it held at most `max_peak` bytes at once (checked while
/// reading: nothing of the input's size is built).
fn facts_err(p: &Policy, json: &str, what: &str, max_peak: usize) -> FactsError {
    let (r, peak) = timed_peak(what, json.len(), || p.facts_from_json(json));
    let err = r.expect_err(what);
    assert!(err.line() >= 1 && err.column() >= 1, "{err}");
    assert!(err.to_string().len() < 1_000, "{what}: a long message");
    assert!(peak <= max_peak, "{what}: {peak} bytes");
    err
}

#[test]
fn facts_json_is_checked_while_it_is_read() {
    let limits = Limits::default();
    let p = facts_policy(&limits);
    // Over the document limit: refused before reading, at the byte where
    // the limit is crossed.
    let big = attack::big_set_facts(40_000_000);
    let err = facts_err(&p, &big, "40 MB facts", 1_000);
    assert!(matches!(err, FactsError::Limit { .. }), "{err}");
    assert_eq!((err.line(), err.column()), (1, limits.max_facts_bytes + 1));
    // A wrong type is refused at its first token: a bool given an array of
    // 4 MB is not read further.
    let mut json = String::from("{\"dnsbl_listed\": [");
    while json.len() < limits.max_facts_bytes - 10 {
        json.push_str("1, ");
    }
    json.push_str("1]}");
    let err = facts_err(&p, &json, "4 MB array for a bool", 1_000);
    assert!(matches!(err, FactsError::InvalidValue { .. }), "{err}");
    // At the `[`.
    assert_eq!(err.column(), "{\"dnsbl_listed\": [".len(), "{err}");
    // So is an array or object inside a set, and a long string.
    let json = format!("{{\"rbl\": [\"a\", {}]}}", "[".repeat(100));
    let err = facts_err(&p, &json, "nested array in a set", 1_000);
    assert!(err.to_string().contains("an array at index 1"), "{err}");
    let json = format!("{{\"virus\": \"{}\"}}", "v".repeat(3_000_000));
    let err = facts_err(&p, &json, "3 MB string", 1_000);
    assert!(matches!(err, FactsError::Limit { .. }), "{err}");
    assert!(err.to_string().contains("fact `virus`"), "{err}");
    // A set's names count together (plus one byte each).
    let names: Vec<String> = (0..20_000).map(|i| format!("\"n{i}\"")).collect();
    let json = format!("{{\"rbl\": [{}]}}", names.join(","));
    // So does their number: refused at the name past `max_set_names`
    // (1,024), before the bytes reach their limit.
    let err = facts_err(&p, &json, "20,000 names", 2_000_000);
    assert!(matches!(err, FactsError::Limit { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "the set of fact `rbl` has 1025 names or more, more than the limit of 1024 names"
        ),
        "{err}"
    );
    // Right after the 1,025th name.
    let past = "{\"rbl\": [".len() + names[..=1024].join(",").len() + 1;
    assert_eq!((err.line(), err.column()), (1, past), "{err}");
    // The most names 64 KiB holds (17,345), as a scanner never reports.
    let err = facts_err(&p, &attack::names_in_64k_facts(), "17,345 names", 2_000_000);
    assert!(
        err.to_string()
            .contains("more than the limit of 1024 names"),
        "{err}"
    );
    let mut lifted = limits.clone();
    lifted.max_set_names = 20_000;
    let p = facts_policy(&lifted);
    let err = facts_err(&p, &json, "20,000 names, the name limit lifted", 2_000_000);
    assert!(
        err.to_string()
            .contains("bytes or more, more than the limit of 65536 bytes"),
        "{err}"
    );
    let p = facts_policy(&limits);
    // An unknown key of 3 MB: a short message.
    let json = format!("{{\"{}\": 1}}", "k".repeat(3_000_000));
    let err = facts_err(&p, &json, "3 MB key", 1_000);
    assert!(matches!(err, FactsError::UnknownFact { .. }), "{err}");
    // Objects of a per-recipient array.
    let json = format!("[{}{{}}]", "{}, ".repeat(limits.max_facts_objects));
    // 10,000 objects are built (a few hundred bytes each) before the limit.
    let err = facts_err(&p, &json, "10,001 objects", 10_000_000);
    assert!(matches!(err, FactsError::Limit { .. }), "{err}");
    let json = format!("[{}{{}}]", "{}, ".repeat(limits.max_facts_objects - 1));
    match p.facts_from_json(&json) {
        Ok(FactsInput::PerRecipient(all)) => assert_eq!(all.len(), limits.max_facts_objects),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_big_set_is_read_in_n_log_n_within_its_bound() {
    // With the value and name limits raised to the document's: a 4 MB set
    // of distinct names (each given twice), deduplicated by sorting.
    let limits = Limits {
        max_fact_value_bytes: 4 * 1024 * 1024,
        max_set_names: 1_000_000,
        ..Limits::default()
    };
    let p = facts_policy(&limits);
    let n = 150_000;
    let mut json = String::from("{\"virus\": [");
    for i in (0..n).chain(0..n) {
        json.push_str(&format!("\"x{i}\","));
    }
    json.push_str("\"x0\"]}");
    let (r, peak) = timed_peak("4 MB set of 300,000 names", json.len(), || {
        p.facts_from_json(&json)
    });
    assert!(peak < memory_bound(json.len()), "{peak} bytes");
    let Ok(FactsInput::One(f)) = r else {
        panic!("{r:?}")
    };
    match f.get("virus") {
        Some(mailpolicy::FactValue::Set(names)) => {
            assert_eq!(names.len(), n);
            assert_eq!(names[0], "x0");
            assert_eq!(names[n - 1], format!("x{}", n - 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.evaluate(&f).rule(), Some("r"));
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_describes_a_long_value_once_and_cuts_it() {
    let n = 10_000;
    let src = attack::sender_rules(n);
    let p = Policy::parse(&src).expect("parses");
    let sender = "a".repeat(64 * 1024);
    let f = Facts::new().sender(sender.clone()).size(0);
    let (ex, peak) = timed_peak("explain: 10,000 rules on a 64 KB value", src.len(), || {
        p.explain(&f)
    });
    assert_eq!(ex.trace.len(), n);
    let max = p.limits().max_explain_chars;
    for t in &ex.trace {
        let v = t.checks[0].value.as_deref().expect("a value");
        assert!(v.starts_with("\"aaaa") && v.ends_with('…'), "{v:.40}");
        assert_eq!(v.chars().count(), max + 1);
    }
    // Was 10,000 copies of 64 KB (655 MB).
    // About 700 bytes per rule tried: its name, two checks, a cut value.
    assert!(peak < n * 1_000, "{peak} bytes");
    // Short values and conditions are shown whole.
    let ex = p.explain(&Facts::new().sender("s3").size(9));
    assert_eq!(ex.decision.rule(), Some("r3"));
    let c = &ex.trace[3].checks;
    assert_eq!(c[0].condition, "sender == \"s3\"");
    assert_eq!(c[0].value.as_deref(), Some("\"s3\""));
    assert_eq!(c[1].value.as_deref(), Some("9"));
}

// ---------------------------------------------------------------- policy test

#[test]
fn tests_times_rules_stay_within_the_test_budget() {
    // Every test is decided by the last rule: tests × rules rule
    // evaluations (10^8 here; 10^10 at the 100,000 limits).
    let n = 10_000;
    let src = attack::tests_times_rules(n);
    let p = Policy::parse(&src).expect("parses");
    let report = timed(
        "policy test: 10,000 tests x 10,000 rules",
        src.len(),
        || p.run_tests(),
    );
    assert_eq!(report.results.len(), n);
    let budget = p
        .limits()
        .max_test_work
        .max(mailpolicy::TEST_WORK_PER_SOURCE_BYTE * src.len());
    // The tests run pass; the budget stops the run after about budget / n
    // tests, and each test not run fails with a positioned limit message.
    let run = report.passed();
    assert!(run > 0 && run <= budget / n + 1, "{run} tests run");
    for r in report.results.iter().skip(run) {
        assert_eq!(r.failures.len(), 1);
        assert!(
            r.failures[0].starts_with(&format!("line {}: limit: not run", r.line)),
            "{:?}",
            r.failures
        );
    }
    // A small policy's tests all run.
    let p = Policy::parse(
        "rule \"r\" { when size > 5 then reject }\ntest \"t\" { given size = 9 expect reject }",
    )
    .expect("parses");
    assert_eq!(p.run_tests().passed(), 1);
}

// ---------------------------------------------------------------- evaluation

/// Times one evaluation (the median of 5) and checks it against the
/// reference walk.
fn per_evaluation(what: &str, p: &Policy, f: &Facts) -> Option<String> {
    let want = p.evaluate_reference(f).rule().map(str::to_owned);
    let mut times = Vec::new();
    let mut got = None;
    for _ in 0..5 {
        let t = Instant::now();
        got = p.evaluate(f).rule().map(str::to_owned);
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "{what}: {:.3} ms per evaluation",
        times[2].as_secs_f64() * 1e3
    );
    assert!(times[2] < HANG_GUARD, "{what}");
    assert_eq!(got, want, "{what}: the reference walk disagrees");
    got
}

#[test]
fn regex_and_glob_leaves_on_one_fact_share_one_pass() {
    // Every byte of the value is one the patterns look for: no skipping.
    let value = "x".repeat(64 * 1024);
    let p = Policy::parse(&attack::regex_rules(1_000)).expect("parses");
    let f = Facts::new().sender(value.clone());
    assert_eq!(per_evaluation("1,000 regexes on 64 KB", &p, &f), None);
    let f = Facts::new().sender(format!("{value}x999y"));
    assert_eq!(
        per_evaluation("1,000 regexes on 64 KB, the last matches", &p, &f).as_deref(),
        Some("r999")
    );
    // Single-part globs (prefix, suffix, contains, with `?`).
    let p = Policy::parse(&attack::glob_rules(1_000)).expect("parses");
    let f = Facts::new().sender(value.clone());
    assert_eq!(per_evaluation("1,000 globs on 64 KB", &p, &f), None);
    // The first of the globs that match (the reference decides the same).
    let f = Facts::new().sender(format!("{value}x998y"));
    assert_eq!(
        per_evaluation("1,000 globs on 64 KB, some match", &p, &f).as_deref(),
        Some("g99")
    );
    // Unanchored (contains) globs on a 60 KB value of the letter they start
    // with: the DFA cannot skip ahead. On `virus`, a set, their groups pass
    // the scan budget (each reads every name: 3 passes' worth); with the
    // budget lifted, the groups answer them.
    let src = attack::contains_glob_rules(1_000);
    let err = Policy::parse(&src).expect_err("past the scan budget");
    assert_eq!(err.diagnostics()[0].code.as_str(), "limit");
    let lots = Limits {
        max_scan_passes: 1_000,
        ..Limits::default()
    };
    let p = Policy::parse_with_limits(&src, &lots).expect("parses");
    let value = "x".repeat(60 * 1024);
    let f = Facts::new().virus(value.clone());
    assert_eq!(
        per_evaluation("1,000 `*xNameN.*` globs on 60 KB", &p, &f),
        None
    );
    let f = Facts::new().virus(format!("{value}xName999.exe"));
    assert_eq!(
        per_evaluation("1,000 `*xNameN.*` globs on 60 KB, the last matches", &p, &f).as_deref(),
        Some("g999")
    );
    let value = "x".repeat(64 * 1024);
    // Two-part globs with an open start share a pair group: one pass for
    // the first end of every first part, one backward for the last start
    // of every second part.
    let p = Policy::parse(&attack::multipart_glob_rules(200)).expect("parses");
    let f = Facts::new().sender(value.clone());
    assert_eq!(per_evaluation("200 `*xN*y*` globs on 64 KB", &p, &f), None);
    let f = Facts::new().sender(format!("{value}x7.y"));
    assert_eq!(
        per_evaluation("200 `*xN*y*` globs on 64 KB, some match", &p, &f).as_deref(),
        Some("g7")
    );
    // `*xN*y`: the first part from the pair group's pass, the end tested
    // by each glob.
    let src: String = (0..200)
        .map(|i| format!("rule \"g{i}\" {{ when sender matches \"*x{i}*y\" then reject }}\n"))
        .collect();
    let p = Policy::parse(&src).expect("parses");
    let f = Facts::new().sender(value.clone());
    assert_eq!(per_evaluation("200 `*xN*y` globs on 64 KB", &p, &f), None);
    let f = Facts::new().sender(format!("{value}x7.Y"));
    assert_eq!(
        per_evaluation("200 `*xN*y` globs on 64 KB, some match", &p, &f).as_deref(),
        Some("g7")
    );
    // Regexes whose own DFAs are large (past the scan budget on `virus`,
    // see `regexes_are_bounded_in_total_and_per_match`).
    let p = Policy::parse_with_limits(&attack::big_dfa_regex_rules(), &lots).expect("parses");
    let f = Facts::new().virus("ab".repeat(32 * 1024));
    assert_eq!(
        per_evaluation("50 [ab]{200}cN regexes on 64 KB", &p, &f),
        None
    );
    // A set of names: each name scanned once per group.
    let names: Vec<String> = (0..8_000).map(|i| format!("Name{i}.x")).collect();
    let mut src = String::new();
    for i in 0..1_000 {
        src.push_str(&format!(
            "rule \"v{i}\" {{ when virus matches /^q{i}\\./ or virus matches \"*.z{i}\" then reject }}\n"
        ));
    }
    let p = Policy::parse(&src).expect("parses");
    let f = Facts::new().viruses(names.clone());
    assert_eq!(per_evaluation("2,000 leaves on 8,000 names", &p, &f), None);
    // A suffix glob on a set is shared too: the first name that ends so.
    let mut some = names;
    some.push("x.Z7".into());
    let f = Facts::new().viruses(some);
    assert_eq!(
        per_evaluation("2,000 leaves on 8,001 names, one matches", &p, &f).as_deref(),
        Some("v7")
    );
}

#[test]
fn open_globs_of_three_parts_share_one_pass() {
    // Every part but the last of each glob occurs, in order, all over the
    // value (the queues move on and on); no `c` anywhere.
    let value = attack::three_part_value();
    for n in [200, 1_000] {
        let p = Policy::parse(&attack::three_part_glob_rules(n)).expect("parses");
        let f = Facts::new().sender(value.clone());
        assert_eq!(
            per_evaluation(&format!("{n} `*aN*bN*cN*` globs on 64 KB"), &p, &f),
            None
        );
        let f = Facts::new().sender(format!("{value}C7"));
        assert_eq!(
            per_evaluation(
                &format!("{n} `*aN*bN*cN*` globs on 64 KB, one matches"),
                &p,
                &f
            )
            .as_deref(),
            Some("g7")
        );
        // Only a first part, then nothing the globs look for.
        let f = Facts::new().sender(format!("a7{}", "x".repeat(64 * 1024)));
        assert_eq!(
            per_evaluation(&format!("{n} `*aN*bN*cN*` globs on 64 KB of x"), &p, &f),
            None
        );
    }
}

/// The `limit` error of a policy whose unshared leaves on one fact pass
/// `Limits::max_scan_passes`: at the leaf on `line` that crosses it.
fn unshared_limit_error(src: &str, limits: &Limits, line: usize, fact: &str) {
    let t = Instant::now();
    let err = Policy::parse_with_limits(src, limits).expect_err("refused");
    let d = &err.diagnostics()[0];
    eprintln!(
        "refused in {:.3} s: {}",
        t.elapsed().as_secs_f64(),
        d.message
    );
    assert_eq!(err.diagnostics().len(), 1);
    assert_eq!(d.code.as_str(), "limit");
    assert_eq!(d.line, line, "{}", d.message);
    assert_eq!(&src[d.span.start..d.span.start + fact.len()], fact);
    assert!(
        d.message.contains(&format!(
            "more than the limit of {}",
            limits.max_scan_passes
        )),
        "{}",
        d.message
    );
}

#[test]
fn unshared_leaves_are_counted_per_fact() {
    let limits = Limits::default();
    let lots = Limits {
        max_scan_passes: 100_000,
        ..Limits::default()
    };
    // A regex with a Unicode `\b` is an NFA on non-ASCII text (3-5 ms on
    // 64 KB each): the first one is past the default budget.
    let src = attack::unicode_boundary_rules(50);
    unshared_limit_error(&src, &limits, 1, "sender");
    let p = Policy::parse_with_limits(&src, &lots).expect("parses");
    let value = "é x1y ".repeat(64 * 1024 / 8);
    let f = Facts::new().sender(value.clone());
    assert_eq!(
        per_evaluation("50 `\\b\\w+N\\b` regexes on 64 KB, non-ASCII", &p, &f),
        None
    );
    let f = Facts::new().sender(format!("{value} é47 "));
    assert_eq!(
        per_evaluation("50 `\\b\\w+N\\b` regexes on 64 KB, one matches", &p, &f).as_deref(),
        Some("r7")
    );
    // Anchored and bounded, or with an ASCII word boundary: no NFA.
    let src: String = (0..50)
        .map(|i| {
            format!(
                "rule \"r{i}\" {{ when sender matches /^x{i}\\b/ or sender matches /(?-u:\\b)y{i}(?-u:\\b)/ then reject }}\n"
            )
        })
        .collect();
    Policy::parse_with_limits(&src, &limits).expect("parses");
    // Open-start globs of three parts with a `?` share no group: each is a
    // pass with Shift-And (2 passes), so the fourth crosses 6.
    let src = attack::wild_three_part_glob_rules(200);
    unshared_limit_error(&src, &limits, 4, "sender");
    let p = Policy::parse_with_limits(&src, &lots).expect("parses");
    let value = attack::three_part_value();
    let f = Facts::new().sender(value.clone());
    assert_eq!(
        per_evaluation("200 `*aN?*bN*cN*` globs on 64 KB", &p, &f),
        None
    );
    let f = Facts::new().sender(format!("{value}C7"));
    assert_eq!(
        per_evaluation("200 `*aN?*bN*cN*` globs on 64 KB, one matches", &p, &f).as_deref(),
        Some("g7")
    );
    // Past the 32nd group: 40 facts of 10 three-part globs each; the 33rd
    // fact's leaves are matched one by one, and its 7th glob crosses 6.
    let src = attack::globs_past_the_groups(40, 10);
    unshared_limit_error(&src, &limits, 40 + 32 * 10 + 7, "f32");
    let p = Policy::parse_with_limits(&src, &lots).expect("parses");
    let mut f = Facts::new();
    for k in 0..40 {
        f = f.custom(&format!("f{k}"), value.as_str());
    }
    assert_eq!(
        per_evaluation("40 facts x 10 `*aN*bN*cN*` globs on 64 KB each", &p, &f),
        None
    );
    let f = f.custom("f35", format!("a3 b3 c3 {value}").as_str());
    assert_eq!(
        per_evaluation("40 facts x 10 globs, one matches past the groups", &p, &f).as_deref(),
        Some("f35g3")
    );
}

#[test]
fn shared_scans_are_counted_in_the_pass_budget() {
    // Regexes that make large DFAs: past the group build budget most of
    // 8,000 were matched one by one (0.98 s per evaluation on 64 KB); in
    // groups, 2,000 of them were 8 scans (2.2 ms). Each scan is a pass.
    let rules = |n: usize, fact: &str| -> String {
        (0..n)
            .map(|i| format!("rule \"r{i}\" {{ when {fact} matches /x{i}[0-9]+y/ then reject }}\n"))
            .collect()
    };
    let value = "x".repeat(64 * 1024);
    // 256 patterns: the first group of 64, then one of the rest.
    let p = Policy::parse(&rules(256, "sender")).expect("two scans fit");
    let f = Facts::new().sender(value.clone());
    assert_eq!(per_evaluation("256 `/xN[0-9]+y/` on 64 KB", &p, &f), None);
    let f = Facts::new().sender(format!("{value}x71y"));
    assert_eq!(
        per_evaluation("256 `/xN[0-9]+y/` on 64 KB, one matches", &p, &f).as_deref(),
        Some("r7")
    );
    for (n, fact) in [(2_000, "sender"), (8_000, "sender"), (1_000, "virus")] {
        let src = rules(n, fact);
        let err = Policy::parse(&src).expect_err("past the scan budget");
        let d = &err.diagnostics()[0];
        assert_eq!(d.code.as_str(), "limit", "{}", d.message);
        assert!(
            d.message
                .contains(&format!("on fact `{fact}` read its value"))
                && d.message.contains("more than the limit of 6"),
            "{}",
            d.message
        );
        // At a leaf of this fact, in a rule that exists.
        assert_eq!(&src[d.span.start..d.span.start + fact.len()], fact);
        assert!(d.line <= n);
    }
    // On a set, a search reads every name: a scan counts 3. The two scans
    // of 256 patterns are 2 passes on `sender`, 6 on `virus`: under a
    // budget of 5 the second group's first leaf (rule 64) crosses it.
    let five = Limits {
        max_scan_passes: 5,
        ..Limits::default()
    };
    Policy::parse_with_limits(&rules(256, "sender"), &five).expect("2 passes");
    let err = Policy::parse_with_limits(&rules(256, "virus"), &five).expect_err("6 passes");
    let d = &err.diagnostics()[0];
    assert_eq!(d.line, 65, "{}", d.message);
    assert!(
        d.message.contains("read its value 6 times"),
        "{}",
        d.message
    );
}

// ------------------------------------------- tests that do not search, on sets

#[path = "common/gen.rs"]
mod gen;

/// The first five names of [`attack::most_names_facts`], which a test
/// replaces by a name of its own (the value stays within 64 KiB).
const FIVE_NAMES: &str = "\"aa\",\"ab\",\"ac\",\"ad\",\"ae\",";

/// The facts of `json` (one object).
fn facts(p: &Policy, json: &str) -> Facts {
    match p.facts_from_json(json).expect("facts") {
        FactsInput::One(f) => f,
        FactsInput::PerRecipient(_) => panic!("one object"),
    }
}

#[test]
fn tests_that_do_not_search_on_a_set_share_one_walk_per_name() {
    // The generated virus policies (prefix and suffix globs, and
    // `^Worm\.XN\b` regexes: a Unicode word boundary after a literal) on
    // the most names 64 KiB of facts JSON holds, every virus rule a
    // candidate: the literal group answers them all (8.0 ms and 59 ms per
    // evaluation when each regex was tested on each name).
    let json = attack::most_names_infected_facts();
    for n in [1_000, 10_000] {
        let src = gen::virus_policy(n, 7);
        let p = Policy::parse(&src).expect("the generated policy parses");
        let f = facts(&p, &json);
        assert_eq!(
            per_evaluation(
                &format!("generated {n} rules on the most names a set takes"),
                &p,
                &f
            ),
            None
        );
        // A worm family's name among them: its rule (or an earlier one).
        let worm = gen::plan(n, 7)
            .iter()
            .position(|(kind, ..)| *kind == 6)
            .expect("a worm rule");
        let hit = json.replacen(FIVE_NAMES, &format!("\"worm.x{worm}-b\","), 1);
        let f = facts(&p, &hit);
        assert!(
            per_evaluation(&format!("generated {n} rules, one worm"), &p, &f).is_some(),
            "worm.x{worm}-b"
        );
        // Followed by a word character (`é` is one): no boundary.
        let miss = json.replacen(FIVE_NAMES, &format!("\"worm.x{worm}é\","), 1);
        let f = facts(&p, &miss);
        assert_eq!(
            per_evaluation(&format!("generated {n} rules, no worm"), &p, &f),
            None
        );
    }
    // `==`, `in [...]` and `^lit\b` on a set: one walk of the literal
    // group's tries per name.
    let json = attack::most_names_facts();
    for kind in ["eq", "in", "word"] {
        let src = attack::set_test_rules(kind, 1_000);
        let p = Policy::parse(&src).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let f = facts(&p, &json);
        assert_eq!(
            per_evaluation(
                &format!("1,000 `{kind}` rules on the most names a set takes"),
                &p,
                &f
            ),
            None
        );
        let name = match kind {
            "eq" => "n999!",
            "in" => "a999!49",
            // `!` then a word character: a boundary.
            _ => "X999!a",
        };
        let f = facts(&p, &json.replacen(FIVE_NAMES, &format!("\"{name}\","), 1));
        assert_eq!(
            per_evaluation(&format!("1,000 `{kind}` rules, one matches"), &p, &f).as_deref(),
            Some("r999")
        );
    }
    // Exact tests are case-sensitive, `!=` is `not ==`.
    let p = Policy::parse(
        "rule \"a\" { when virus == \"Eicar\" and virus == \"B\" then reject }\n\
         rule \"b\" { when virus != \"Eicar\" and virus != \"C\" then pass }\n\
         rule \"c\" { when virus in [\"eicar\", \"D\"] then discard }\n",
    )
    .expect("parses");
    for (names, want) in [
        (vec!["Eicar", "B"], Some("a")),
        (vec!["EICAR", "B"], Some("b")),
        (vec!["eicar", "C"], Some("c")),
        (vec!["Eicar", "x"], None),
        (vec![], Some("b")),
    ] {
        let f = Facts::new().viruses(names.iter().copied());
        assert_eq!(p.evaluate(&f).rule(), want, "{names:?}");
        assert_eq!(p.evaluate_reference(&f).rule(), want, "{names:?}");
    }
}

#[test]
fn tests_that_do_not_search_on_a_set_are_counted_when_unshared() {
    let limits = Limits::default();
    // A non-ASCII prefix glob is no literal (the tries hold ASCII): each
    // tests every name, a quarter of a pass; the 25th crosses 6.
    unshared_limit_error(&attack::set_test_rules("ascii", 100), &limits, 25, "virus");
    // ASCII prefix globs share literal groups of up to 65,535 keys, in a
    // memo of 131,072 bits for a policy that needs more than 8,192: the
    // most rules a policy may have, each testing a virus family of its
    // own, parse (session 6 refused more than ~8,200 families, past the
    // narrow memo's keys).
    let t = Instant::now();
    Policy::parse(&attack::virus_family_rules(limits.max_rules)).expect("100,000 families");
    eprintln!("100,000 families: {:.2} s", t.elapsed().as_secs_f64());
    // (The 16 MB policy of `attack::plain_rules(78_000)`: `examples/cost_inputs`.)
    Policy::parse(&attack::plain_rules(9_000)).expect("9,000 ordinary rules");
    // Past the memo's keys the globs are tested name by name, a quarter
    // pass each: 13,200 rules of ten globs each (132,000 keys) are refused
    // at the rule with the 23rd glob past 131,070 keys (the first glob of
    // each of the two groups is tested directly too: half a pass).
    let ten = |i: usize| {
        let globs: Vec<String> = (0..10)
            .map(|k| format!("virus matches \"W32/Fam{}.*\"", i * 10 + k))
            .collect();
        format!(
            "rule \"r{i}\" {{ when {} then reject }}\n",
            globs.join(" or ")
        )
    };
    let src: String = (0..13_200).map(ten).collect();
    unshared_limit_error(&src, &limits, 131_070 / 10 + 3, "virus");
    let src: String = (0..13_000).map(ten).collect();
    Policy::parse(&src).expect("130,000 keys");

    // on each non-ASCII name: 6 passes on a set, the second crosses 6.
    unshared_limit_error(&attack::set_test_rules("wordre", 10), &limits, 2, "virus");
    // With the budget raised they evaluate (slowly: names × leaves).
    let lots = Limits {
        max_scan_passes: 100_000,
        ..Limits::default()
    };
    let json = attack::most_names_facts();
    for (kind, n) in [("ascii", 100), ("wordre", 20)] {
        let p = Policy::parse_with_limits(&attack::set_test_rules(kind, n), &lots).expect("parses");
        let f = facts(&p, &json);
        assert_eq!(
            per_evaluation(
                &format!("{n} `{kind}` rules on the most names a set takes"),
                &p,
                &f
            ),
            None
        );
    }
    // Within the budget: 24 of the globs, 1 of the regexes.
    Policy::parse(&attack::set_test_rules("ascii", 24)).expect("24 quarter passes");
    Policy::parse(&attack::set_test_rules("wordre", 1)).expect("6 passes");
}

#[test]
fn literal_groups_past_the_narrow_memo_decide_as_the_reference() {
    // 60,000 rules, each a virus family and a variant it excludes (the
    // gate proves the first glob, never the second): 120,000 literal keys
    // in two groups of the wide memo, both read.
    let src: String = (0..60_000)
        .map(|i| {
            format!(
                "rule \"r{i}\" {{ when virus matches \"W32/Fam{i}.*\" and not virus matches \"W32/Fam{i}.bad*\" then reject }}\n"
            )
        })
        .collect::<String>()
        // A list of literal globs in the second group (its words tested
        // a word at a time).
        + "list q = [\"Q0.*\", \"Q1.*\", \"Q2.*\", \"Q3.*\", \"Q4.*\", \"Q5.*\", \"Q6.*\", \"Q7.*\", \"Q8.*\", \"Q9.*\"]\n"
        + "rule \"r60000\" { when virus matches q then reject }\n";
    let p = Policy::parse(&src).expect("120,010 keys");
    let many: Vec<String> = (30_000..31_024)
        .map(|i| format!("W32/Fam{i}.bad"))
        .collect();
    let mut last: Vec<String> = (0..1_023).map(|i| format!("x{i}")).collect();
    last.push("w32/fam59999.OK".to_owned());
    let cases: Vec<(Vec<String>, Option<usize>)> = vec![
        (vec!["W32/Fam0.a".into()], Some(0)),
        (vec!["W32/Fam0.bad".into()], None),
        (vec!["W32/Fam0.bad".into(), "W32/Fam0.b".into()], None),
        (vec!["W32/Fam32767.a".into()], Some(32_767)),
        (
            vec!["W32/Fam32768.a".into(), "W32/Fam7.badly".into()],
            Some(32_768),
        ),
        (vec!["W32/Fam59999.a".into()], Some(59_999)),
        (vec!["W32/Fam59999.bad".into()], None),
        (vec!["W32/Fam60000.a".into(), "W32/Fam1".into()], None),
        (many, None),
        (last, Some(59_999)),
        (vec!["q7.x".into()], Some(60_000)),
        (vec!["W32/Fam5.bad".into(), "Q9.".into()], Some(60_000)),
        (vec!["Q10".into(), "Q".into()], None),
    ];
    for (names, want) in cases {
        let f = Facts::new().viruses(names.iter().map(String::as_str));
        let want = want.map(|i| format!("r{i}"));
        let want = want.as_deref();
        assert_eq!(p.evaluate(&f).rule(), want, "{:?}", names.first());
        assert_eq!(p.evaluate_reference(&f).rule(), want, "{:?}", names.first());
        if want == Some("r0") {
            // (Explain traces every rule tried: the first one only.)
            assert_eq!(p.explain(&f).decision.rule(), want, "explain");
        }
    }
}
