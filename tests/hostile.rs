//! Hostile inputs: each must end in a clean error with a position (or a
//! clean success), through the library and through the `policy` binary
//! (exit 1, never 101, the message on stderr) — never a panic, a hang or a
//! stack overflow.
//!
//! Covered: every prefix of the spec's example policy (cut at every byte),
//! invalid UTF-8, NUL bytes, a 50 MB line, 100,000 nested `(` and `not`
//! (also on a thread with a 2 MiB stack), huge lists, huge and deeply
//! nested regexes, long strings, many rules and facts, deeply nested JSON
//! facts, JSON facts of the wrong types, an empty facts array, and the
//! inputs in `tests/regressions/` that once broke something.

use mailpolicy::{Facts, Policy};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("fixtures/spec_example.policy");

/// Asserts that every diagnostic of a parse error lies inside `src`, has a
/// message, and that `Display` names its `LINE:COL`.
fn assert_positioned(src: &[u8], err: &mailpolicy::ParseError) {
    let text = String::from_utf8_lossy(src);
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(err.errors().count() > 0, "a ParseError without errors");
    let shown = err.to_string();
    for d in err.errors() {
        assert!(d.line >= 1 && d.line <= lines.len(), "{d:?}");
        let len = lines[d.line - 1].chars().count();
        assert!(
            d.column >= 1 && d.column <= len + 1,
            "column {} outside line {} ({len} chars)",
            d.column,
            d.line
        );
        assert!(!d.message.is_empty());
        assert!(
            shown.contains(&format!("{}:{}", d.line, d.column)),
            "Display lacks the position: {shown}"
        );
    }
    // The rendering stays small even when the line is huge.
    assert!(
        shown.len() < 4_000 * err.errors().count(),
        "a {}-byte error message",
        shown.len()
    );
}

/// Parses and expects an error with `code`; returns the first such diagnostic's (line, column).
fn expect_error(src: &[u8], code: &str) -> (usize, usize) {
    let err = match Policy::parse_bytes(src) {
        Ok(_) => panic!("accepted a hostile input ({} bytes)", src.len()),
        Err(e) => e,
    };
    assert_positioned(src, &err);
    let d = err
        .errors()
        .find(|d| d.code.as_str() == code)
        .unwrap_or_else(|| panic!("no `{code}` error in: {err}"));
    (d.line, d.column)
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_policy")
}

fn tmp(name: &str, contents: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run policy");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // The tool may exit before reading everything; a broken pipe is fine.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().expect("wait for policy")
}

/// `policy check FILE` on a bad policy: exit 1 and a positioned `error[code]`.
fn cli_check_fails(name: &str, src: &[u8], code: &str) {
    let path = tmp(name, src);
    let out = run(&["check", path.to_str().expect("utf-8 path")], None);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{name}: {all}");
    assert!(all.contains(&format!("error[{code}]")), "{name}: {all}");
    assert!(!all.contains("panicked"), "{name}: {all}");
    // `eval` prints policy errors on stderr and nothing on stdout.
    let out = run(
        &["eval", path.to_str().expect("utf-8 path"), "--facts", "-"],
        Some(b"{}"),
    );
    assert_eq!(out.status.code(), Some(1), "{name}");
    assert!(out.stdout.is_empty(), "{name}: stdout not empty");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("[{code}]")), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
}

/// Runs `f` on a thread with a 2 MiB stack (the default for spawned threads,
/// and less than the main thread's): deep inputs must not overflow it.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the thread panicked or overflowed")
}

// ---------------------------------------------------------------- truncation

#[test]
fn every_prefix_of_the_example_is_clean() {
    let bytes = EXAMPLE.as_bytes();
    assert!(
        Policy::parse(EXAMPLE).is_ok(),
        "the fixture itself must parse"
    );
    let mut ok = 0;
    for cut in 0..=bytes.len() {
        let prefix = &bytes[..cut];
        match Policy::parse_bytes(prefix) {
            Ok(policy) => {
                ok += 1;
                let _ = policy.check();
                let d = policy.evaluate(&Facts::new());
                assert_eq!(
                    d.actions()
                        .iter()
                        .filter(|a| a.disposition().is_some())
                        .count(),
                    1
                );
            }
            Err(e) => assert_positioned(prefix, &e),
        }
        if let Ok(text) = std::str::from_utf8(prefix) {
            if let Err(e) = mailpolicy::format(text) {
                assert_positioned(prefix, &e);
            }
        }
    }
    // Cuts between items parse; most others do not.
    assert!(ok > 5 && ok < bytes.len() / 2, "{ok} prefixes parsed");
}

#[test]
fn truncated_example_via_cli() {
    let bytes = EXAMPLE.as_bytes();
    // A sample of cuts (every cut is covered through the library above).
    for cut in (1..bytes.len()).step_by(211) {
        let prefix = &bytes[..cut];
        if Policy::parse_bytes(prefix).is_ok() {
            continue;
        }
        let path = tmp(&format!("prefix-{cut}.policy"), prefix);
        let out = run(&["check", path.to_str().expect("path")], None);
        assert_eq!(out.status.code(), Some(1), "cut at {cut}");
        let all = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(all.contains("error["), "cut at {cut}: {all}");
    }
}

// ---------------------------------------------------------------- bytes

#[test]
fn invalid_utf8_is_an_error_at_its_position() {
    let mut src = b"rule \"a\" {\n  when virus == \"".to_vec();
    src.push(0xff);
    src.extend_from_slice(b"\"\n  then pass\n}\n");
    let (line, column) = expect_error(&src, "syntax");
    assert_eq!((line, column), (2, 18));
    let err = Policy::parse_bytes(&src).unwrap_err().to_string();
    assert!(err.contains("UTF-8"), "{err}");
    // A lone continuation byte, a truncated sequence, an overlong encoding, a surrogate.
    for bad in [
        &[0x80][..],
        &[b'a', 0xc3],
        &[0xc0, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
    ] {
        expect_error(bad, "syntax");
    }
    cli_check_fails("invalid-utf8.policy", &src, "syntax");
}

#[test]
fn nul_bytes_are_clean() {
    // A NUL outside a string is a syntax error at the NUL.
    let src = b"rule \"a\" { when \0 then pass }";
    assert_eq!(expect_error(src, "syntax"), (1, 17));
    cli_check_fails("nul.policy", src, "syntax");
    // Inside a string it is just a character; in a comment it is ignored.
    for ok in [
        &b"rule \"a\0b\" { when virus == \"x\0\" then pass }"[..],
        b"# \0 comment\ndefault pass",
    ] {
        let policy = Policy::parse_bytes(ok).expect("NUL in a string or comment");
        let _ = policy.check();
        let text = std::str::from_utf8(ok).expect("utf-8");
        let formatted = mailpolicy::format(text).expect("format");
        assert!(Policy::parse(&formatted).is_ok(), "{formatted:?}");
    }
    // All NULs, and binary garbage.
    expect_error(&[0u8; 1000], "syntax");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(Policy::parse_bytes(&garbage).is_err());
}

// ---------------------------------------------------------------- size

#[test]
fn a_50_mb_line_is_a_fast_limit_error() {
    let mut src = b"rule \"a\" { when virus == \"".to_vec();
    src.resize(50 * 1024 * 1024, b'x');
    let start = Instant::now();
    let err = Policy::parse_bytes(&src).unwrap_err();
    // Checked before anything else looks at the text: fast even in a debug build.
    assert!(
        start.elapsed() < Duration::from_secs(30), // a hang guard, not a benchmark
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(err.errors().next().map(|d| d.code.as_str()), Some("limit"));
    let (line, column) = expect_error(&src, "limit");
    assert_eq!(line, 1);
    assert!(column > 1);
    // Just under the size limit, the literal is still refused: too long a string.
    let mut src = b"rule \"a\" { when virus == \"".to_vec();
    src.resize(1024 * 1024, b'x');
    src.extend_from_slice(b"\" then pass }");
    expect_error(&src, "limit");
    let start = Instant::now();
    cli_check_fails("50mb.policy", &[b'a'; 50 * 1024 * 1024], "limit");
    assert!(start.elapsed() < Duration::from_secs(60)); // a hang guard, not a benchmark
}

#[test]
fn a_long_comment_and_a_long_name_are_fine_or_clean() {
    // 1 MB of comment: accepted, in linear time (see docs/LIMITS.md for figures).
    let mut src = b"#".to_vec();
    src.resize(1024 * 1024, b'c');
    src.extend_from_slice(b"\ndefault pass\n");
    let start = Instant::now();
    assert!(Policy::parse_bytes(&src).is_ok());
    assert!(
        start.elapsed() < Duration::from_secs(60), // a hang guard, not a benchmark
        "{:?}",
        start.elapsed()
    );
    // A 1 MB identifier: an unknown fact, positioned.
    let mut src = b"rule \"a\" { when ".to_vec();
    src.resize(1024 * 1024, b'z');
    src.extend_from_slice(b" then pass }");
    let err = Policy::parse_bytes(&src).unwrap_err();
    assert_positioned(&src, &err);
}

// ---------------------------------------------------------------- nesting

fn nested(open: &str, n: usize, inner: &str, close: &str) -> Vec<u8> {
    let mut s = String::from("rule \"deep\" { when ");
    s.push_str(&open.repeat(n));
    s.push_str(inner);
    s.push_str(&close.repeat(n));
    s.push_str(" then pass }\n");
    s.into_bytes()
}

#[test]
fn deep_nesting_is_a_limit_error_even_on_a_small_stack() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("parens", nested("(", 100_000, "true", ")")),
        ("nots", nested("not ", 100_000, "true", "")),
        ("not-parens", nested("not (", 100_000, "true", ")")),
        ("open-parens-only", nested("(", 100_000, "", "")),
        ("parens-in-and", nested("(true and ", 100_000, "true", ")")),
    ];
    for (name, src) in cases {
        let src2 = src.clone();
        let (line, column) = on_small_stack(move || expect_error(&src2, "limit"));
        assert_eq!(line, 1, "{name}");
        assert!(column > 1, "{name}");
        // fmt refuses it the same way.
        let text = String::from_utf8(src.clone()).expect("utf-8");
        let err = on_small_stack(move || mailpolicy::format(&text).map(|_| ()));
        assert!(err.is_err(), "{name}: fmt accepted it");
        cli_check_fails(&format!("{name}.policy"), &src, "limit");
    }
    // Nesting at the limit is fine (and fast) on the small stack.
    let ok = nested("(", 150, "scanner == infected", ")");
    on_small_stack(move || {
        let p = Policy::parse_bytes(&ok).expect("150 levels");
        let _ = p.check();
        let _ = p.evaluate(&Facts::new());
        let text = String::from_utf8(ok).expect("utf-8");
        let f = mailpolicy::format(&text).expect("fmt");
        assert!(Policy::parse(&f).is_ok());
    });
    // Many unbalanced `)` are a syntax error, not a crash.
    let src = nested("", 1, "true", &")".repeat(100_000));
    expect_error(&src, "syntax");
    // Braces and brackets do not nest in the grammar: a clean syntax error.
    let src = "{".repeat(100_000);
    expect_error(src.as_bytes(), "syntax");
    let src = format!("list l = {}", "[".repeat(100_000));
    expect_error(src.as_bytes(), "syntax");
}

#[test]
fn hostile_regexes_are_clean_errors() {
    // Nested 30,000 deep (60 KB): the regex crate's nest limit.
    let deep = format!("{}a{}", "(".repeat(30_000), ")".repeat(30_000));
    let src = format!("rule \"r\" {{ when virus matches /{deep}/ then pass }}");
    let src2 = src.clone();
    on_small_stack(move || expect_error(src2.as_bytes(), "invalid-regex"));
    // Exponential size: the compiled-size limit.
    let src = "rule \"r\" { when virus matches /(a{100}){100}{100}/ then pass }";
    expect_error(src.as_bytes(), "invalid-regex");
    let src = "rule \"r\" { when virus matches /\\w{1000}\\w{1000}/ then pass }";
    expect_error(src.as_bytes(), "invalid-regex");
    // Longer than the string limit.
    let src = format!(
        "rule \"r\" {{ when virus matches /{}/ then pass }}",
        "a".repeat(70_000)
    );
    expect_error(src.as_bytes(), "limit");
    // Unterminated.
    expect_error(
        b"rule \"r\" { when virus matches /abc then pass }",
        "syntax",
    );
    // Look-around is an error with a position.
    expect_error(
        b"rule \"r\" { when virus matches /(?=a)/ then pass }",
        "invalid-regex",
    );
}

// ---------------------------------------------------------------- counts

#[test]
fn huge_lists_are_limit_errors() {
    let items = vec!["1"; 100_001].join(",");
    let src = format!("list big = [{items}]\nrule \"r\" {{ when size in big then pass }}");
    expect_error(src.as_bytes(), "limit");
    let src = format!("rule \"r\" {{ when size in [{items}] then pass }}");
    expect_error(src.as_bytes(), "limit");
    // A large list within the limit works and evaluates.
    let ips: Vec<String> = (0..20_000u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256 % 256, i % 256))
        .collect();
    let src = format!(
        "list nets = [{}]\nrule \"r\" {{ when client_ip in nets then discard, quarantine }}",
        ips.join(", ")
    );
    let p = Policy::parse(&src).expect("20,000 CIDRs");
    let facts = Facts::new().client_ip("10.3.4.5".parse().expect("ip"));
    assert_eq!(p.evaluate(&facts).rule(), Some("r"));
    let facts = Facts::new().client_ip("11.0.0.1".parse().expect("ip"));
    assert_eq!(p.evaluate(&facts).rule(), None);
}

#[test]
fn too_many_rules_facts_and_stars_are_limit_errors() {
    let limits = mailpolicy::Limits {
        max_rules: 100,
        ..Default::default()
    };
    let rules: String = (0..101)
        .map(|i| format!("rule \"r{i}\" {{ then pass }}\n"))
        .collect();
    let err = Policy::parse_with_limits(&rules, &limits).unwrap_err();
    assert_positioned(rules.as_bytes(), &err);
    assert!(err.errors().any(|d| d.code.as_str() == "limit"));
    // Custom facts beyond the fixed table.
    let facts: String = (0..100).map(|i| format!("fact f{i}: bool\n")).collect();
    expect_error(facts.as_bytes(), "limit");
    // A glob with too many stars.
    let src = format!(
        "rule \"g\" {{ when virus matches \"{}\" then pass }}",
        "*a".repeat(1000)
    );
    expect_error(src.as_bytes(), "invalid-glob");
    // Many numbers out of range.
    expect_error(
        b"rule \"n\" { when size > 99999999999999999999999 then pass }",
        "syntax",
    );
}

#[test]
fn bad_escapes_and_ips_are_positioned() {
    expect_error(b"rule \"a\\q\" { then pass }", "invalid-escape");
    expect_error(b"rule \"\\u{110000}\" { then pass }", "invalid-escape");
    expect_error(b"rule \"\\u{d800}\" { then pass }", "invalid-escape");
    expect_error(b"rule \"\\u{\" { then pass }", "invalid-escape");
    expect_error(
        b"rule \"a\" { when client_ip in 10.1.2.3/8 then pass }",
        "invalid-cidr",
    );
    expect_error(
        b"rule \"a\" { when client_ip in 10.0.0.0/99 then pass }",
        "invalid-cidr",
    );
    expect_error(
        b"rule \"a\" { when client_ip == 1:2:3:4:5:6:7:8:9 then pass }",
        "invalid-cidr",
    );
    expect_error(
        b"rule \"a\" { when client_ip == 300.1.1.1 then pass }",
        "invalid-cidr",
    );
}

// ---------------------------------------------------------------- facts JSON

fn facts_policy() -> Policy {
    Policy::parse("fact dnsbl_listed: bool\nfact zone: enum(a, b)\ndefault pass").expect("policy")
}

/// The facts JSON error's (line, column) and message.
fn facts_error(json: &str) -> (usize, usize, String) {
    let err = match facts_policy().facts_from_json(json) {
        Ok(f) => panic!("accepted {json:.80}: {f:?}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    let (line, column) = (err.line(), err.column());
    assert!(line >= 1 && column >= 1, "{shown}");
    let lines: Vec<&str> = json.split('\n').collect();
    assert!(line <= lines.len(), "{shown}");
    assert!(column <= lines[line - 1].chars().count() + 1, "{shown}");
    assert!(shown.starts_with(&format!("{line}:{column}: ")), "{shown}");
    (line, column, shown)
}

/// `policy eval --facts -` with hostile facts: exit 1, message on stderr, nothing on stdout.
fn cli_facts_fail(name: &str, json: &[u8]) -> String {
    let policy = tmp(
        "facts.policy",
        b"fact dnsbl_listed: bool\nfact zone: enum(a, b)\ndefault pass\n",
    );
    let out = run(
        &["eval", policy.to_str().expect("path"), "--facts", "-"],
        Some(json),
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(out.stdout.is_empty(), "{name}: stdout not empty");
    assert!(err.starts_with("error"), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    err
}

#[test]
fn deeply_nested_json_facts_are_clean_errors() {
    let cases = [
        ("arrays", "[".repeat(100_000)),
        ("objects", "{\"a\":".repeat(100_000)),
        (
            "value-arrays",
            format!("{{\"virus\": {}", "[".repeat(100_000)),
        ),
        (
            "value-objects",
            format!("{{\"virus\": {}", "{\"x\":".repeat(100_000)),
        ),
        (
            "closed",
            format!(
                "{{\"virus\": {}1{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ),
    ];
    for (name, json) in cases {
        let j = json.clone();
        on_small_stack(move || facts_error(&j));
        cli_facts_fail(name, json.as_bytes());
    }
}

#[test]
fn json_facts_of_the_wrong_type_are_positioned_errors() {
    for (json, needle) in [
        (r#"{"size": "big"}"#, "size"),
        (r#"{"size": 1.5}"#, "size"),
        (r#"{"size": 1e400}"#, ""),
        (r#"{"size": 99999999999999999999}"#, "size"),
        (r#"{"spam_score": "high"}"#, "spam_score"),
        (r#"{"scanner": "infectd"}"#, "scanner"),
        (r#"{"scanner": 3}"#, "scanner"),
        (r#"{"direction": ["inbound"]}"#, "direction"),
        (r#"{"client_ip": "999.1.1.1"}"#, "client_ip"),
        (r#"{"client_ip": "10.0.0.0/8"}"#, "client_ip"),
        (r#"{"forges_sender": "yes"}"#, "forges_sender"),
        (r#"{"dnsbl_listed": 1}"#, "dnsbl_listed"),
        (r#"{"zone": "c"}"#, "zone"),
        (r#"{"virus": {"name": "x"}}"#, "virus"),
        (r#"{"scaner": "clean"}"#, "scaner"),
        (r#"{"virus": "a", "virus": "b"}"#, "virus"),
        ("42", ""),
        ("\"clean\"", ""),
        ("null", ""),
        ("[1]", ""),
        ("[]", ""),
        ("[[]]", ""),
        ("", ""),
        ("{", ""),
        ("{} x", ""),
        ("{\"virus\": \"\\ud800\"}", ""),
        ("{\n  \"size\": 1,\n  \"sender\": 7\n}", "sender"),
    ] {
        let (_, _, shown) = facts_error(json);
        assert!(shown.contains(needle), "{json}: {shown}");
        cli_facts_fail(json, json.as_bytes());
    }
    // The position is at (or just after) the offending value.
    let (line, _, _) = facts_error("{\n  \"size\": 1,\n  \"sender\": 7\n}");
    assert!((3..=4).contains(&line), "{line}");
    // Invalid UTF-8 in a facts file.
    let out = cli_facts_fail("utf8", b"{\"virus\": \"\xff\"}");
    assert!(out.contains("UTF-8"), "{out}");
    // An empty facts array is an error.
    let out = cli_facts_fail("empty-array", b"[]");
    assert!(out.contains("at least one"), "{out}");
}

// ---------------------------------------------------------------- regressions

/// Every input in `tests/regressions/` once crashed, hung or broke a
/// property: it must now parse or fail cleanly, and `fmt` must be idempotent
/// and keep the meaning.
#[test]
fn regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/regressions") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(&path).expect("read");
        let name = path.display().to_string();
        let parsed = on_small_stack({
            let bytes = bytes.clone();
            move || {
                Policy::parse_bytes(&bytes).map(|p| {
                    let _ = p.check();
                    p.evaluate(&Facts::new()).actions().to_vec()
                })
            }
        });
        if let Err(e) = &parsed {
            assert_positioned(&bytes, e);
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(once) = mailpolicy::format(text) {
                let twice = mailpolicy::format(&once).expect("formatted text formats");
                assert_eq!(once, twice, "{name}: fmt is not idempotent");
                if let Ok(actions) = &parsed {
                    let again = Policy::parse(&once).expect("formatted policy parses");
                    assert_eq!(&again.evaluate(&Facts::new()).actions().to_vec(), actions);
                }
            }
        }
    }
    assert!(n > 0, "no regression inputs found");
}
