//! `fmt`: canonical form, comments kept, idempotent, meaning preserved.

use mailpolicy::{format, Facts, Policy, Scanner};

fn fixture(name: &str) -> String {
    // The specification's example is shared with the other tests.
    let name = if name == "spec.input.policy" {
        "../fixtures/spec_example.policy"
    } else {
        name
    };
    let path = format!("{}/tests/fmt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn formats_fixtures_to_their_expected_form() {
    for name in ["comments", "spec"] {
        let input = fixture(&format!("{name}.input.policy"));
        let expected = fixture(&format!("{name}.expected.policy"));
        let got = format(&input).unwrap();
        assert_eq!(got, expected, "{name}");
        assert_eq!(format(&got).unwrap(), got, "{name}: not idempotent");
    }
}

#[test]
fn keeps_every_comment() {
    let input = fixture("comments.input.policy");
    let got = format(&input).unwrap();
    let comments = |s: &str| {
        s.lines()
            .filter_map(|l| l.find('#').map(|i| l[i..].trim().to_owned()))
            .collect::<Vec<_>>()
    };
    let mut before = comments(&input);
    let mut after = comments(&got);
    before.sort();
    after.sort();
    assert_eq!(before, after);
}

#[test]
fn keeps_the_meaning() {
    let input = fixture("spec.input.policy");
    let a = Policy::parse(&input).unwrap();
    let b = Policy::parse(&format(&input).unwrap()).unwrap();
    assert_eq!(
        a.rule_names().collect::<Vec<_>>(),
        b.rule_names().collect::<Vec<_>>()
    );
    for scanner in Scanner::ALL {
        let f = Facts::new()
            .scanner(scanner)
            .virus("W32/Bagle.A")
            .forges_sender(false)
            .sender("x@y");
        assert_eq!(a.evaluate(&f), b.evaluate(&f));
    }
}

#[test]
fn escapes_strings_and_regexes_canonically() {
    let src =
        "rule \"a\\u{E9}\\t\" { when virus matches /a\\/b/ or sender == \"q\\\"\\\\\" then pass }";
    let got = format(src).unwrap();
    assert_eq!(got, "rule \"a\u{e9}\\t\" {\n    when virus matches /a\\/b/ or sender == \"q\\\"\\\\\"\n    then pass\n}\n");
    assert_eq!(format(&got).unwrap(), got);
}

#[test]
fn refuses_syntax_errors_with_a_position() {
    let err = format("rule \"x\" { when then pass }").unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!((d.code.as_str(), d.line, d.column), ("syntax", 1, 17));
}

/// Found by `tests/props.rs`: a comment inside one part of a split condition
/// moved before `then`, and the second `fmt` then joined the condition.
#[test]
fn a_comment_inside_a_condition_part_formats_idempotently() {
    let src = "rule \" 0\" {\n    when (not true and client_ip in 10.1.2.3)\n        and not  # a comment\n    size < 0\n    then pass\n}\n";
    let once = format(src).unwrap();
    assert_eq!(
        once,
        "rule \" 0\" {\n    when (not true and client_ip in 10.1.2.3) and not size < 0\n    # a comment\n    then pass\n}\n"
    );
    assert_eq!(format(&once).unwrap(), once);
}
