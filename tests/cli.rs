//! The `policy` command line, run as a user (and the external tests) would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The specification's example policy.
const SITE: &str = include_str!("fixtures/spec_example.policy");

/// Writes `text` to a fresh file and returns its path.
fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailpolicy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn policy(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run policy");
    if let Some(input) = stdin {
        // The tool may exit before reading its input (a policy error): a
        // broken pipe here is expected, not a failure.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn check_clean_policy_exits_0() {
    let p = file("site.policy", SITE);
    let o = policy(&["check", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("error["), "{}", stdout(&o));
}

#[test]
fn check_reports_every_error_with_position_and_exits_1() {
    let src = "rule \"a\" {\n    when scaner == infected\n    then pass\n}\nrule \"b\" { when direction == inbund then discard, pass }\n";
    let p = file("bad.policy", src);
    let path = p.to_str().unwrap();
    let o = policy(&["check", path], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "error[unknown-fact]: {path}:2:10: unknown fact `scaner` in rule \"a\""
        )),
        "{out}"
    );
    assert!(out.contains("did you mean `scanner`?"), "{out}");
    assert!(
        out.contains(&format!("error[unknown-enum-value]: {path}:5:30:")),
        "{out}"
    );
    assert!(
        out.contains(&format!("error[disposition-count]: {path}:5:51:")),
        "{out}"
    );
    // The line and a caret under the error.
    assert!(out.contains("2 |     when scaner == infected"), "{out}");
    assert!(out.contains("^^^^^^"), "{out}");

    let o = policy(&["check", "--format", "json", path], None);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["severity"], "error");
    assert_eq!(arr[0]["code"], "unknown-fact");
    assert_eq!(arr[0]["file"], path);
    assert_eq!(arr[0]["line"], 2);
    assert_eq!(arr[0]["column"], 10);
    assert!(arr[0]["message"].as_str().unwrap().contains("scaner"));
}

#[test]
fn check_usage_and_io_problems_exit_2() {
    assert_eq!(
        policy(&["check", "/nonexistent/x.policy"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(policy(&["check"], None).status.code(), Some(2));
    assert_eq!(policy(&["frobnicate"], None).status.code(), Some(2));
    assert_eq!(
        policy(&["check", "--format", "xml", "x"], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn eval_prints_the_decision_in_the_documented_shape() {
    let p = file("site-eval.policy", SITE);
    let path = p.to_str().unwrap();
    let facts = file(
        "outbound.json",
        r#"{"direction":"outbound","scanner":"infected","client_ip":"10.1.2.3"}"#,
    );
    let o = policy(&["eval", path, "--facts", facts.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        r#"{"disposition":"discard","reply":null,"quarantine":"outbound","alerts":["admin"],"tags":[],"rule":"we emit no viruses"}"#
    );
}

#[test]
fn eval_reads_stdin_and_fact_arguments() {
    let p = file("site-stdin.policy", SITE);
    let path = p.to_str().unwrap();
    let o = policy(
        &["eval", path, "--facts", "-"],
        Some(r#"{"scanner":"error"}"#),
    );
    let v = json(&o);
    assert_eq!(v["disposition"], "tempfail");
    assert_eq!(
        v["reply"],
        "451 4.7.1 virus scanner unavailable, try again later"
    );
    assert_eq!(v["rule"], "scanner failed: try later");

    let o = policy(&["eval", path, "--fact", "scanner=encrypted"], None);
    let v = json(&o);
    assert_eq!(v["disposition"], "pass");
    assert_eq!(v["tags"], serde_json::json!(["***UNCHECKED***"]));

    // A clean message with nothing else known: the default.
    let o = policy(
        &[
            "eval",
            path,
            "--fact",
            "scanner=clean",
            "--fact",
            "dnsbl_listed=true",
            "--fact",
            "spam_score=9.5",
        ],
        None,
    );
    let v = json(&o);
    assert_eq!(v["disposition"], "discard");
    assert_eq!(v["quarantine"], "spam");
    let o = policy(&["eval", path, "--fact", "scanner=clean"], None);
    assert_eq!(json(&o)["rule"], serde_json::Value::Null);
}

#[test]
fn eval_reads_piped_facts_without_facts_arguments() {
    // Facts piped in with neither --facts nor --fact are read, not ignored.
    let p = file("site-piped.policy", SITE);
    let path = p.to_str().unwrap();
    let o = policy(&["eval", path], Some(r#"{"scanner":"error"}"#));
    assert_eq!(json(&o)["rule"], "scanner failed: try later");
    // Bad facts piped in are an error, as with `--facts -`.
    let o = policy(&["eval", path], Some(r#"{"scanner":"eror"}"#));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("<stdin>:1:"), "{}", stderr(&o));
    // Nothing piped in: no facts.
    let o = policy(&["eval", path], Some(""));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["rule"], serde_json::Value::Null);
    // --fact alone still means the command line's facts only.
    let o = policy(
        &["eval", path, "--fact", "scanner=clean"],
        Some(r#"{"scanner":"error"}"#),
    );
    assert_eq!(json(&o)["rule"], serde_json::Value::Null);
}

#[test]
fn eval_explain_adds_a_trace() {
    let p = file("site-explain.policy", SITE);
    let o = policy(
        &[
            "eval",
            p.to_str().unwrap(),
            "--fact",
            "scanner=encrypted",
            "--explain",
        ],
        None,
    );
    let v = json(&o);
    let trace = v["trace"].as_array().expect("trace");
    assert_eq!(trace.len(), 3, "two rules tried, the third applied: {v}");
    assert_eq!(trace[0]["rule"], "scanner failed: try later");
    assert_eq!(trace[0]["applied"], false);
    assert_eq!(trace[2]["applied"], true);
    assert_eq!(v["rule"], "unscannable: deliver, but marked");
}

#[test]
fn eval_per_recipient_array_gives_a_verdict() {
    let p = file("site-array.policy", SITE);
    let path = p.to_str().unwrap();
    let o = policy(
        &["eval", path, "--facts", "-"],
        Some(r#"[{"scanner":"clean"},{"scanner":"infected","direction":"inbound"}]"#),
    );
    let v = json(&o);
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["recipients"][0]["disposition"], "pass");
    assert_eq!(v["recipients"][1]["disposition"], "discard");

    let o = policy(
        &["eval", path, "--facts", "-"],
        Some(r#"[{"scanner":"clean"},{"scanner":"timeout"}]"#),
    );
    assert_eq!(json(&o)["verdict"], "tempfail");
    let o = policy(
        &["eval", path, "--facts", "-"],
        Some(r#"[{"scanner":"infected"},{"scanner":"infected"}]"#),
    );
    assert_eq!(json(&o)["verdict"], "discard");
}

#[test]
fn eval_facts_errors_exit_1_with_nothing_on_stdout() {
    let p = file("site-facts-err.policy", SITE);
    let path = p.to_str().unwrap();
    for (input, needle) in [
        (r#"{"scaner":"clean"}"#, "unknown fact `scaner`"),
        (r#"{"size":1.5}"#, "fact `size`"),
        (r#"{"scanner":"infectd"}"#, "fact `scanner`"),
        (r#"{"client_ip":"10.1.2"}"#, "fact `client_ip`"),
        (r#"{"forges_sender":"yes"}"#, "fact `forges_sender`"),
        ("[]", "at least one"),
        ("{\"scanner\":", "invalid JSON"),
        ("42", "object"),
    ] {
        let o = policy(&["eval", path, "--facts", "-"], Some(input));
        assert_eq!(o.status.code(), Some(1), "{input}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{input}: {}", stdout(&o));
        assert!(stderr(&o).contains(needle), "{input}: {}", stderr(&o));
    }
    let o = policy(&["eval", path, "--fact", "nosuch=1"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn eval_policy_errors_exit_1_and_null_means_unknown() {
    let bad = file(
        "bad-eval.policy",
        "rule \"x\" { when scanner == nope then pass }",
    );
    let o = policy(&["eval", bad.to_str().unwrap(), "--facts", "-"], Some("{}"));
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("unknown-enum-value"), "{}", stderr(&o));

    let p = file(
        "null.policy",
        "rule \"x\" { when known scanner then reject } default pass",
    );
    let o = policy(
        &["eval", p.to_str().unwrap(), "--facts", "-"],
        Some(r#"{"scanner":null}"#),
    );
    assert_eq!(json(&o)["disposition"], "pass");
}

#[test]
fn test_command_counts_passes_and_failures() {
    let p = file("site-test.policy", SITE);
    let o = policy(&["test", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).lines().any(|l| l == "1 passed, 0 failed"),
        "{}",
        stdout(&o)
    );

    let failing =
        format!("{SITE}\ntest \"wrong\" {{\n    given scanner = clean\n    expect reject\n}}\n");
    let p = file("failing.policy", &failing);
    let o = policy(&["test", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l == "1 passed, 1 failed"), "{out}");
    assert!(
        out.contains("expected `reject`, got `pass` from the default"),
        "{out}"
    );
}

#[test]
fn fmt_prints_canonical_form_and_check_detects_drift() {
    let messy = "rule \"x\"{when scanner==infected then discard,quarantine}\n";
    let p = file("messy.policy", messy);
    let o = policy(&["fmt", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0));
    let canonical = stdout(&o);
    assert_eq!(
        canonical,
        "rule \"x\" {\n    when scanner == infected\n    then discard, quarantine\n}\n"
    );
    assert_eq!(
        policy(&["fmt", "--check", p.to_str().unwrap()], None)
            .status
            .code(),
        Some(1)
    );
    let q = file("canonical.policy", &canonical);
    assert_eq!(
        policy(&["fmt", "--check", q.to_str().unwrap()], None)
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn malformed_input_is_an_error_never_a_crash() {
    for (name, bytes) in [
        ("binary.policy", vec![0xff, 0xfe, 0x00, 0x12, b'r']),
        ("truncated.policy", b"rule \"x\" { when scanner ==".to_vec()),
        (
            "nested.policy",
            format!(
                "rule \"x\" {{ when {} true then pass }}",
                "(".repeat(100_000)
            )
            .into_bytes(),
        ),
        (
            "nots.policy",
            format!(
                "rule \"x\" {{ when {} true then pass }}",
                "not ".repeat(100_000)
            )
            .into_bytes(),
        ),
    ] {
        let dir = file(name, "");
        std::fs::write(&dir, &bytes).expect("write");
        let o = policy(&["check", dir.to_str().unwrap()], None);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        assert!(stdout(&o).contains("error["), "{name}: {}", stdout(&o));
    }
}

#[test]
fn eval_explain_on_many_recipients_is_bounded() {
    // 2,000 rules, none of which applies: each recipient's trace holds
    // 2,000 rules and their checks. 200 recipients fit the budget of a
    // million traced rules and checks; 1,000 do not, and are refused before
    // anything is written (once, they were one JSON tree: 10,000 recipients
    // of a 10,000-rule policy took 24 GB).
    let rules: String = (0..2_000)
        .map(|i| format!("rule \"r{i}\" {{ when sender == \"s{i}@x\" then reject }}\n"))
        .collect();
    let p = file("many-rules.policy", &rules);
    let path = p.to_str().unwrap();
    let facts = |n: usize| {
        let objs: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"scanner":"clean","sender":"n{i}@x"}}"#))
            .collect();
        format!("[{}]", objs.join(","))
    };
    let o = policy(
        &["eval", path, "--facts", "-", "--explain"],
        Some(&facts(200)),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["verdict"], "accept");
    let recipients = v["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 200);
    for r in recipients {
        assert_eq!(r["rule"], serde_json::Value::Null);
        assert_eq!(r["trace"].as_array().map(Vec::len), Some(2_000));
    }
    let o = policy(
        &["eval", path, "--facts", "-", "--explain"],
        Some(&facts(1_000)),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("limit: --explain on the first 251 of 1000 recipients traces more than 1000000 rules and checks"),
        "{err}"
    );
    // Without --explain, every recipient is decided.
    let o = policy(&["eval", path, "--facts", "-"], Some(&facts(1_000)));
    assert_eq!(json(&o)["recipients"].as_array().map(Vec::len), Some(1_000));
}

/// `n` rules `size > i`, which neither the decision table nor a value index
/// narrows: every evaluation may try all of them, 2 steps each (the rule
/// and its test).
fn ungated_rules(n: usize) -> String {
    (0..n)
        .map(|i| format!("rule \"r{i}\" {{ when size > {i} then pass }}\n"))
        .collect()
}

#[test]
fn max_eval_steps_lets_a_trusted_heavy_policy_in() {
    // 20,000 ungated rules: 40,000 steps, past the default of 32,768.
    let p = file("heavy.policy", &ungated_rules(20_000));
    let path = p.to_str().unwrap();
    let o = policy(&["check", path], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("error[limit]: "), "{out}");
    assert!(out.contains("more than the limit of 32768"), "{out}");
    assert!(
        out.lines()
            .any(|l| l == "1 file(s) checked: 1 error(s), 0 warning(s)"),
        "{out}"
    );
    let o = policy(&["check", "--max-eval-steps", "100000", path], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("error["), "{}", stdout(&o));
    // Without it `eval` refuses the policy; with it (a global option, so
    // before the subcommand too) the policy decides.
    let o = policy(&["eval", path, "--fact", "size=5"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("error[limit]: "), "{}", stderr(&o));
    let o = policy(
        &["--max-eval-steps=100000", "eval", path, "--fact", "size=5"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["rule"], "r0");
}

#[test]
fn max_eval_steps_reaches_every_command_that_reads_a_policy() {
    // Lowered to 1 step, the example policy is refused by every command
    // that compiles it: the option is not dropped on the way.
    let p = file("site-steps.policy", SITE);
    let path = p.to_str().unwrap();
    let log = file("empty.log", "");
    let log = log.to_str().unwrap();
    let low = "--max-eval-steps=1";
    let o = policy(&["check", low, path], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("more than the limit of 1 "),
        "{}",
        stdout(&o)
    );
    for (args, code) in [
        (vec!["eval", low, path], 1),
        (vec!["test", low, path], 1),
        (vec!["diff", low, path, path], 2),
        (vec!["replay", low, path, log], 1),
    ] {
        let o = policy(&args, None);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("more than the limit of 1 "),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // `fmt` does not compile the policy: it accepts the option and ignores it.
    let o = policy(&["fmt", low, path], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!o.stdout.is_empty());
    assert_eq!(o.stdout, policy(&["fmt", path], None).stdout);
}

#[test]
fn a_bad_max_eval_steps_is_a_usage_error() {
    let p = file("site-badsteps.policy", SITE);
    let path = p.to_str().unwrap();
    for (value, says) in [
        ("lots", "`lots` is not a whole number of steps"),
        ("0", "the limit must be at least 1 step"),
        ("1.5", "`1.5` is not a whole number of steps"),
        ("", "is not a whole number of steps"),
    ] {
        let arg = format!("--max-eval-steps={value}");
        let o = policy(&["check", &arg, path], None);
        assert_eq!(o.status.code(), Some(2), "{value:?}");
        assert!(o.stdout.is_empty(), "{value:?}");
        let err = stderr(&o);
        assert!(err.contains("--max-eval-steps"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
