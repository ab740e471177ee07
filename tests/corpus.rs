//! The corpus: policies with the decisions and errors they must give.
//!
//! - `tests/corpus/valid/NAME.policy` with `NAME.cases.json`: a JSON array of
//!   cases `{"name": "...", "facts": {...} | [{...}, ...], "expect": {...}}`.
//!   `facts` is read with `Policy::facts_from_json`; an object gives one
//!   decision, serialized with serde and compared field by field with
//!   `expect` (only the fields `expect` names: `disposition`, `reply`,
//!   `quarantine`, `alerts`, `tags`, `rule`); an array (one object per
//!   recipient) gives a message verdict: `expect` holds `verdict` and
//!   optionally `recipients`, a list of per-recipient expectations.
//!   Instead of `expect`, a case may give `facts_error`: a substring of the
//!   error that reading the facts must give.
//!   A case with `"bug": "..."` documents a known implementation bug: it is
//!   skipped by the main test and checked by the ignored `known_bugs` test.
//! - `tests/corpus/invalid/NAME.policy` with `NAME.expected`: one line per
//!   diagnostic of the `ParseError`, in order, as `CODE LINE:COL` optionally
//!   followed by ` | MESSAGE SUBSTRING`. Lines starting with `#` are comments;
//!   a `# bug: ...` line marks the file as a known bug (see above).
//! - every `examples/*.policy` parses, is in canonical form, has tests, and
//!   all its tests pass.

use mailpolicy::{FactsInput, MessageVerdict, Policy};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files in `dir` ending in `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn with_ext(policy: &Path, ext: &str) -> PathBuf {
    let stem = policy
        .file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    policy.with_file_name(format!("{stem}{ext}"))
}

/// Compares the fields `expect` names with the decision's JSON.
fn compare_decision(got: &Value, expect: &Value, what: &str, failures: &mut Vec<String>) {
    let Some(fields) = expect.as_object() else {
        failures.push(format!("{what}: `expect` is not an object"));
        return;
    };
    assert!(!fields.is_empty(), "{what}: empty `expect`");
    for (key, want) in fields {
        match got.get(key) {
            Some(have) if have == want => {}
            Some(have) => failures.push(format!("{what}: `{key}` is {have}, expected {want}")),
            None => failures.push(format!("{what}: the decision has no field `{key}`")),
        }
    }
}

/// Runs one case; returns its failures.
fn run_case(policy: &Policy, case: &Value, what: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let facts = case.get("facts").expect("case without `facts`");
    let json = serde_json::to_string(facts).expect("facts to JSON");
    let input = policy.facts_from_json(&json);
    if let Some(want) = case.get("facts_error") {
        let want = want.as_str().expect("`facts_error` is a string");
        match input {
            Ok(_) => failures.push(format!(
                "{what}: facts were accepted, expected error {want:?}"
            )),
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => failures.push(format!("{what}: facts error `{e}`, expected {want:?}")),
        }
        return failures;
    }
    let expect = case.get("expect").expect("case without `expect`");
    match input {
        Err(e) => failures.push(format!("{what}: facts rejected: {e}")),
        Ok(FactsInput::One(facts)) => {
            let decision = policy.evaluate(&facts);
            let got = serde_json::to_value(decision).expect("decision to JSON");
            compare_decision(&got, expect, what, &mut failures);
            // The lazy path must agree with the direct one.
            let lazy = serde_json::to_value(policy.evaluate_lazy(&facts)).expect("decision");
            if lazy != got {
                failures.push(format!("{what}: evaluate_lazy gave {lazy}, evaluate {got}"));
            }
        }
        Ok(FactsInput::PerRecipient(all)) => {
            let decisions: Vec<_> = all.iter().map(|f| policy.evaluate(f)).collect();
            let verdict = MessageVerdict::combine(&decisions).expect("at least one recipient");
            let got = serde_json::to_value(verdict.verdict).expect("verdict to JSON");
            if let Some(want) = expect.get("verdict") {
                if &got != want {
                    failures.push(format!("{what}: verdict {got}, expected {want}"));
                }
            }
            if let Some(want) = expect.get("recipients") {
                let want = want.as_array().expect("`recipients` is an array");
                if want.len() != decisions.len() {
                    failures.push(format!(
                        "{what}: {} recipients, expected {}",
                        decisions.len(),
                        want.len()
                    ));
                }
                for (i, (d, w)) in decisions.iter().zip(want).enumerate() {
                    let got = serde_json::to_value(d).expect("decision to JSON");
                    compare_decision(&got, w, &format!("{what}, recipient {i}"), &mut failures);
                }
            }
        }
    }
    failures
}

/// Runs the valid corpus; `bugs` selects the known-bug cases instead of the others.
fn valid_corpus(bugs: bool) -> (usize, Vec<String>) {
    let dir = root().join("tests/corpus/valid");
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in files(&dir, ".policy") {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let src = read(&path);
        let policy = match Policy::parse(&src) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: does not parse:\n{e}"));
                continue;
            }
        };
        // `policy fmt` keeps the meaning: the formatted policy decides the same.
        let formatted = match mailpolicy::format(&src).map(|f| Policy::parse(&f)) {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                failures.push(format!("{name}: the formatted policy does not parse:\n{e}"));
                continue;
            }
            Err(e) => {
                failures.push(format!("{name}: does not format:\n{e}"));
                continue;
            }
        };
        let cases_path = with_ext(&path, ".cases.json");
        let cases: Value = serde_json::from_str(&read(&cases_path))
            .unwrap_or_else(|e| panic!("{}: {e}", cases_path.display()));
        let cases = cases.as_array().expect("cases are an array");
        assert!(!cases.is_empty(), "{name}: no cases");
        for (i, case) in cases.iter().enumerate() {
            if case.get("bug").is_some() != bugs {
                continue;
            }
            let label = case.get("name").and_then(Value::as_str).unwrap_or("");
            ran += 1;
            let what = format!("{name} case {i} ({label})");
            failures.extend(run_case(&policy, case, &what));
            failures.extend(run_case(&formatted, case, &format!("{what}, formatted")));
        }
    }
    (ran, failures)
}

#[test]
fn valid_policies_give_the_expected_decisions() {
    let (ran, failures) = valid_corpus(false);
    assert!(ran >= 100, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One expected diagnostic: code, line, column, message substring.
#[derive(Debug)]
struct Expected {
    code: String,
    line: usize,
    column: usize,
    message: Option<String>,
}

fn parse_expected(text: &str, what: &str) -> (Vec<Expected>, bool) {
    let mut out = Vec::new();
    let mut bug = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("# bug:") {
            bug = true;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, message) = match line.split_once(" | ") {
            Some((h, m)) => (h, Some(m.trim().to_owned())),
            None => (line, None),
        };
        let mut parts = head.split_whitespace();
        let code = parts.next().expect("code").to_owned();
        let pos = parts
            .next()
            .unwrap_or_else(|| panic!("{what}: `{line}` has no LINE:COL"));
        let (l, c) = pos.split_once(':').expect("LINE:COL");
        out.push(Expected {
            code,
            line: l.parse().expect("line number"),
            column: c.parse().expect("column number"),
            message,
        });
    }
    (out, bug)
}

fn invalid_corpus(bugs: bool) -> (usize, Vec<String>) {
    let dir = root().join("tests/corpus/invalid");
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in files(&dir, ".policy") {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let (expected, bug) = parse_expected(&read(&with_ext(&path, ".expected")), &name);
        if bug != bugs {
            continue;
        }
        ran += 1;
        assert!(!expected.is_empty(), "{name}: no expected diagnostics");
        let bytes = fs::read(&path).expect("policy bytes");
        let err = match Policy::parse_bytes(&bytes) {
            Ok(_) => {
                failures.push(format!("{name}: parsed, but errors were expected"));
                continue;
            }
            Err(e) => e,
        };
        let got = err.diagnostics();
        let show = || {
            got.iter()
                .map(|d| format!("  {} {}:{} | {}", d.code, d.line, d.column, d.message))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let matches = got.len() == expected.len()
            && got.iter().zip(&expected).all(|(d, e)| {
                d.code.as_str() == e.code
                    && d.line == e.line
                    && d.column == e.column
                    && e.message.as_ref().is_none_or(|m| d.message.contains(m))
            });
        if !matches {
            failures.push(format!(
                "{name}: expected\n{}\ngot\n{}",
                expected
                    .iter()
                    .map(|e| format!(
                        "  {} {}:{}{}",
                        e.code,
                        e.line,
                        e.column,
                        e.message
                            .as_ref()
                            .map(|m| format!(" | {m}"))
                            .unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join("\n"),
                show()
            ));
        }
        // Every error has a position and a message; the rendering shows the line.
        for d in got {
            assert!(d.line >= 1 && d.column >= 1, "{name}: {d:?}");
            assert!(!d.message.is_empty(), "{name}: empty message");
        }
    }
    (ran, failures)
}

#[test]
fn invalid_policies_give_the_expected_errors() {
    let (ran, failures) = invalid_corpus(false);
    assert!(ran >= 15, "only {ran} invalid policies ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} invalid policies differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every error code of the spec appears in the invalid corpus.
#[test]
fn invalid_corpus_covers_every_error_code() {
    let dir = root().join("tests/corpus/invalid");
    let mut seen = std::collections::BTreeSet::new();
    for path in files(&dir, ".expected") {
        let (expected, _) = parse_expected(&read(&path), "");
        seen.extend(expected.into_iter().map(|e| e.code));
    }
    let missing: Vec<&str> = mailpolicy::Code::ALL
        .iter()
        .filter(|c| c.severity() == mailpolicy::Severity::Error)
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "no invalid policy gives {missing:?}");
}

/// The cases marked `bug` (valid) or `# bug:` (invalid) fail until the bug
/// is fixed; none is left, and a new one must not slip in unnoticed.
#[test]
fn no_known_bugs_remain() {
    let (ran_v, _) = valid_corpus(true);
    let (ran_i, _) = invalid_corpus(true);
    assert_eq!(
        ran_v + ran_i,
        0,
        "a case is marked as a known bug: fix it and drop the mark"
    );
}

#[test]
fn examples_pass_their_tests_and_are_canonical() {
    let dir = root().join("examples");
    let paths = files(&dir, ".policy");
    assert!(paths.len() >= 6, "only {} examples", paths.len());
    for path in paths {
        let name = path.display().to_string();
        let src = read(&path);
        let policy = Policy::parse(&src).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let report = policy.run_tests();
        assert!(report.results.len() >= 5, "{name}: too few tests");
        let failed: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| format!("{:?}: {}", r.name, r.failures.join("; ")))
            .collect();
        assert!(
            failed.is_empty(),
            "{name}: failing tests:\n{}",
            failed.join("\n")
        );
        let formatted = mailpolicy::format(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(formatted, src, "{name} is not in canonical form");
    }
}

/// The examples promised by the README and the docs exist.
#[test]
fn the_documented_examples_exist() {
    for name in [
        "site",
        "discard-safely",
        "no-viruses-in-or-out",
        "lose-no-mail",
        "acceptable-losses",
        "custom-facts",
        "pua-and-phishing",
    ] {
        let path = root().join(format!("examples/{name}.policy"));
        assert!(path.exists(), "{} is missing", path.display());
    }
}

/// Every ```policy block of docs/LANGUAGE.md is a complete policy that
/// parses, and its tests pass.
#[test]
fn the_language_reference_examples_are_valid() {
    let doc = read(&root().join("docs/LANGUAGE.md"));
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```policy" => current = Some((i + 1, String::new())),
            None => {}
            Some((start, text)) => {
                if line.trim_end() == "```" {
                    blocks.push((*start, std::mem::take(text)));
                    current = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    assert!(blocks.len() >= 15, "only {} policy blocks", blocks.len());
    for (line, src) in blocks {
        let policy = Policy::parse(&src)
            .unwrap_or_else(|e| panic!("docs/LANGUAGE.md block at line {line}:\n{e}"));
        let report = policy.run_tests();
        let failed: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| format!("{:?}: {}", r.name, r.failures.join("; ")))
            .collect();
        assert!(
            failed.is_empty(),
            "docs/LANGUAGE.md block at line {line}: failing tests:\n{}",
            failed.join("\n")
        );
    }
}

/// `policy fmt` keeps an end-of-line comment at the end of its line.
#[test]
fn fmt_keeps_trailing_comments_after_actions() {
    for src in [
        "default pass  # why\n\ntest \"t\" {\n    expect pass\n}\n",
        "rule \"r\" {\n    when scanner == infected\n    then discard, quarantine  # why not\n}\n",
    ] {
        let formatted = mailpolicy::format(src).expect("formats");
        assert_eq!(formatted, src);
    }
}

/// The line of the first line of `src` that starts with `prefix`.
fn line_of(src: &str, prefix: &str) -> usize {
    src.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
        + 1
}

/// The warnings each example earns, as documented in its comments: none for
/// the careful ones, the advertised list for `acceptable-losses.policy`.
/// Until the linter reports anything at all (it is written separately), this
/// test only says so on stderr.
#[test]
fn examples_earn_exactly_the_documented_warnings() {
    let examples = root().join("examples");
    let lint_is_live = files(&examples, ".policy").iter().any(|p| {
        Policy::parse(&read(p)).is_ok_and(|policy| !policy.check_with_coverage().is_empty())
    });
    if !lint_is_live {
        eprintln!("the linter reports nothing yet: documented warnings not checked");
        return;
    }
    for path in files(&examples, ".policy") {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let src = read(&path);
        let policy = Policy::parse(&src).expect("example parses");
        let mut got: Vec<(String, usize)> = policy
            .check_with_coverage()
            .iter()
            .map(|d| (d.code.as_str().to_owned(), d.line))
            .collect();
        got.sort();
        let mut want: Vec<(String, usize)> = if name == "acceptable-losses.policy" {
            let rule = |n: &str| line_of(&src, &format!("rule {n:?}"));
            [
                ("unused-list", line_of(&src, "list old_relays")),
                (
                    "reject-after-queue",
                    rule("open relay attempts are refused"),
                ),
                ("silent-discard", rule("forging viruses are dropped")),
                (
                    "silent-discard",
                    rule("other viruses are dropped, the sender is told"),
                ),
                (
                    "backscatter-alert",
                    rule("other viruses are dropped, the sender is told"),
                ),
                (
                    "alert-null-sender",
                    rule("other viruses are dropped, the sender is told"),
                ),
                ("unreachable-rule", rule("let the EICAR test file through")),
                ("untested-rule", rule("let the EICAR test file through")),
                (
                    "tempfail-permanent",
                    rule("huge encrypted archives: try later"),
                ),
                ("fail-open", rule("encrypted archives are delivered")),
                ("fail-open", line_of(&src, "default pass")),
            ]
            .into_iter()
            .map(|(c, l)| (c.to_owned(), l))
            .collect()
        } else {
            Vec::new()
        };
        want.sort();
        assert_eq!(
            got, want,
            "{name}: warnings (code, line) differ from its comments"
        );
    }
}
