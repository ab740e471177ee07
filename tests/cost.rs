//! The attack corpus of issue 11: inputs generated near the limits that
//! once cost minutes or gigabytes. Each asserts the result is right (or a
//! positioned error); time is only a hang guard (generous: debug builds on
//! a loaded 2-core machine), and each case prints its time so that
//! `cargo test --release --test cost -- --nocapture` reports the figures
//! (docs/LIMITS.md).

use mailpolicy::{Disposition, Facts, Policy};
use std::time::{Duration, Instant};

const HANG_GUARD: Duration = Duration::from_secs(120);

fn timed<T>(what: &str, bytes: usize, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    let e = t.elapsed();
    eprintln!(
        "{what}: {:.3} s for {:.2} MB ({:.3} s/MB)",
        e.as_secs_f64(),
        bytes as f64 / 1e6,
        e.as_secs_f64() / (bytes as f64 / 1e6).max(1e-6)
    );
    assert!(e < HANG_GUARD, "{what} took {e:?}");
    out
}

#[test]
fn a_list_used_thousands_of_times_is_compiled_once() {
    let mut src = String::from("list worms = [");
    for i in 0..5_000 {
        src.push_str(&format!("\"W32/Worm{i}.*\", "));
    }
    src.push_str("]\nlist names = [");
    for i in 0..10_000 {
        src.push_str(&format!("\"user{i}@example.org\", "));
    }
    src.push_str("]\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches worms and recipient in names and size > {i} then discard, quarantine }}\n"
        ));
    }
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
fn a_long_glob_on_a_long_value_is_linear() {
    // `*a…ab*` on a value of a's: the two-pointer matcher backtracks at
    // every position (O(text × glob)).
    let glob = format!("*{}b*", "a".repeat(32 * 1024 - 3));
    let src = format!("rule \"g\" {{ when virus matches \"{glob}\" then reject }}");
    let p = Policy::parse(&src).unwrap();
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
    // 50 rules of a regex whose lazy DFA thrashes, on a 64 KB value.
    let mut src = String::new();
    for i in 0..50 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches /[ab]{{200}}c{i}/ then reject }}\n"
        ));
    }
    let p = Policy::parse(&src).unwrap();
    let text = "ab".repeat(32 * 1024);
    let f = Facts::new().virus(text.clone());
    let d = timed("50 regexes on a 64 KB value", text.len(), || p.evaluate(&f));
    assert_eq!(d.disposition(), Disposition::Pass);
    // A regex whose DFA is too big is refused, with a position.
    let err =
        Policy::parse("rule \"r\" { when virus matches /[ab]{10000}/ then reject }").unwrap_err();
    assert_eq!(err.diagnostics()[0].code.as_str(), "invalid-regex");
    // 4,000 regexes of 1 MB each cannot all be compiled: the total budget.
    let mut src = String::new();
    for i in 0..4_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches /\\w{{3}}@\\w+{i}/ then reject }}\n"
        ));
    }
    let err = timed("4,000 big regexes", src.len(), || {
        Policy::parse(&src).unwrap_err()
    });
    assert!(err.diagnostics().iter().any(|d| d.code.as_str() == "limit"));
}

#[test]
fn many_errors_on_one_line_are_placed_in_one_pass() {
    let mut src = String::from("fact e: enum(");
    for i in 0..20_000 {
        src.push_str(&format!("v{i}, "));
    }
    src.push_str(")\nrule \"r\" { when ");
    for i in 0..50_000 {
        src.push_str(&format!("e == w{i} or "));
    }
    src.push_str("false then pass }");
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
    let mut src = String::from("rule \"s\" { when recipient in [");
    for i in 0..100_000 {
        src.push_str(&format!("\"{i:0>8}\", "));
    }
    src.push_str("] then reject }\nrule \"n\" { when client_ip in [");
    for _ in 0..20_000 {
        src.push_str("10.0.0.0/8, 10.1.0.0/16, ");
    }
    src.push_str("] then discard, quarantine }\n");
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
    let mut src = String::new();
    for i in (0..20_000).rev() {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when sender matches \"{i:0>6}*\" then reject }}\n"
        ));
    }
    let p = timed("20,000 descending glob prefixes", src.len(), || {
        Policy::parse(&src).unwrap()
    });
    let f = Facts::new().sender("000123@x");
    assert_eq!(p.evaluate(&f).rule(), Some("r123"));
}

#[test]
fn one_value_enums_do_not_blow_up_the_table() {
    let mut src = String::new();
    for i in 0..12 {
        src.push_str(&format!("fact f{i}: enum(a{i})\n"));
    }
    for i in 0..20_000 {
        let k = i % 12;
        src.push_str(&format!(
            "rule \"r{i}\" {{ when f{k} == a{k} and size == {i} then pass }}\n"
        ));
    }
    let p = timed("20,000 rules over 12 one-value enums", src.len(), || {
        Policy::parse(&src).unwrap()
    });
    let (bytes, _, _) = p.compiled_size();
    assert!(bytes < 100 * src.len(), "{bytes} bytes compiled");
}

#[test]
fn help_lines_list_a_few_enum_values() {
    let mut src = String::from("fact e: enum(");
    for i in 0..30_000 {
        src.push_str(&format!("value{i}, "));
    }
    src.push_str(")\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when e == \"value{i}\" then pass }}\n"
        ));
    }
    let err = timed("2,000 quoted enum values", src.len(), || {
        Policy::parse(&src).unwrap_err()
    });
    assert_eq!(err.errors().count(), 2_000);
    assert!(err.to_string().len() < 2_000 * 1_000);
}
