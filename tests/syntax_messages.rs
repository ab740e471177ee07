//! The syntax errors' wording, pinned: every valid corpus policy, broken at
//! every token (the token deleted, the text cut there, or the token replaced
//! by one of a few snippets), and the diagnostics `format` reports for each
//! variant, against tests/syntax_messages.expected (one hash per variant, in
//! order: files by name, tokens in order, the cut, the deletion, then each
//! snippet).
//! A grammar change that keeps the language but renames, silences or
//! reorders rules can change pest's "expected …" lists; this says which
//! variant changed. After a deliberate change, regenerate the file with
//! `UPDATE_EXPECT=1 cargo test --test syntax_messages` and say why in the
//! commit.

use std::fmt::Write as _;

/// Token boundaries, roughly as the grammar sees them.
fn tokens(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b':') {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_./:-*".contains(&b[i])) {
                i += 1;
            }
        } else if b"=!<>".contains(&c) && b.get(i + 1) == Some(&b'=') {
            i += 2;
        } else {
            i += 1;
        }
        out.push((start, i.min(b.len())));
    }
    out
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What `format` says about `src`: its diagnostics, or that it parsed.
fn describe(src: &str) -> String {
    match mailpolicy::format(src) {
        Ok(_) => "ok".to_owned(),
        Err(e) => {
            let mut out = String::new();
            for d in e.diagnostics() {
                let _ = writeln!(
                    out,
                    "{} {}:{} {}..{} {} | {:?}",
                    d.code.as_str(),
                    d.line,
                    d.column,
                    d.span.start,
                    d.span.end,
                    d.message,
                    d.help
                );
            }
            out
        }
    }
}

#[test]
fn syntax_errors_are_worded_as_pinned() {
    const SNIPPETS: [&str; 6] = [")", ",", "==", "then", "foo", "\"x\""];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("tests/corpus/valid"))
        .expect("corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "policy"))
        .collect();
    paths.sort();
    let mut lines = String::new();
    let mut variants = Vec::new();
    for path in &paths {
        let src = std::fs::read_to_string(path).expect("policy");
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let mut v = Vec::new();
        for &(s, e) in &tokens(&src) {
            v.push(src[..s].to_owned());
            v.push(format!("{}{}", &src[..s], &src[e..]));
            for r in SNIPPETS {
                v.push(format!("{}{r}{}", &src[..s], &src[e..]));
            }
        }
        for (i, text) in v.into_iter().enumerate() {
            let said = describe(&text);
            let _ = writeln!(lines, "{:08x}", fnv(&said) >> 32);
            variants.push((format!("{name}#{i}"), text, said));
        }
    }
    let expected_path = dir.join("tests/syntax_messages.expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &lines).expect("write");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).expect("tests/syntax_messages.expected");
    let mut wrong = 0;
    for ((want, got), (id, text, said)) in expected.lines().zip(lines.lines()).zip(&variants) {
        if want != got {
            wrong += 1;
            if wrong <= 5 {
                eprintln!("{id} changed: now\n{said}--- for the policy:\n{text}\n=====");
            }
        }
    }
    assert_eq!(
        expected.lines().count(),
        lines.lines().count(),
        "variant count"
    );
    assert_eq!(
        wrong,
        0,
        "{wrong} of {} variants worded differently",
        variants.len()
    );
    assert!(variants.len() > 5_000, "{} variants", variants.len());
}
