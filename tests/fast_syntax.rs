//! The hand-written fast path of the parser (src/syntax/fast.rs) against
//! pest alone: for every policy of the repository, generated policies, and
//! byte mutations of all of them (near misses: broken strings, numbers,
//! keywords, brackets), the AST and the diagnostics must be the same with
//! and without the fast path. The fast path may only give up, never differ.
//!
//! So that a fast path which always gives up fails too, the valid policies
//! must be read mostly by the fast path.

#[path = "common/gen.rs"]
mod gen;
#[path = "common/policy_gen.rs"]
mod policy_gen;

use mailpolicy::__syntax_differential as differential;
use std::path::{Path, PathBuf};

fn policies(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            policies(&path, out);
        } else if path.extension().is_some_and(|e| e == "policy") {
            out.push(path);
        }
    }
}

fn repository_policies() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["examples", "tests"] {
        policies(&root.join(dir), &mut paths);
    }
    paths.sort();
    let out: Vec<(String, String)> = paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect();
    assert!(out.len() >= 50, "only {} policies found", out.len());
    out
}

/// Bytes a mutation inserts or writes: the grammar's punctuation, quotes,
/// escapes, digits, letters of keywords, blanks, and a non-ASCII letter.
const BYTES: &[u8] = b"\"\\/#\n\t (){}[],:=!<>.-+_eE0159afxnotu";

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn mutate(src: &str, rng: &mut Lcg) -> Option<String> {
    let mut bytes = src.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        let b = if rng.below(20) == 0 {
            0xC3
        } else {
            BYTES[rng.below(BYTES.len())]
        };
        match rng.below(3) {
            0 => bytes.insert(at, b),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = b,
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

fn check(name: &str, src: &str) -> (usize, usize) {
    match differential(src) {
        Ok(counts) => counts,
        Err(e) => panic!("{name}: the fast path differs from pest\n{e}\n--- source ---\n{src}"),
    }
}

#[test]
fn repository_policies_parse_the_same_with_the_fast_path() {
    let (mut items, mut fast) = (0, 0);
    for (name, src) in repository_policies() {
        let (i, f) = check(&name, &src);
        if !name.contains("invalid") {
            items += i;
            fast += f;
        }
    }
    // Most valid items are read by the fast path (it is not always giving up).
    assert!(items > 300, "{items} items");
    assert!(
        fast * 10 >= items * 9,
        "fast path read {fast} of {items} items"
    );
}

#[test]
fn mutated_repository_policies_parse_the_same_with_the_fast_path() {
    let per_file: usize = std::env::var("FAST_SYNTAX_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 20 } else { 60 });
    let mut rng = Lcg(0x5eed);
    let mut broken = 0;
    for (name, src) in repository_policies() {
        for k in 0..per_file {
            let Some(m) = mutate(&src, &mut rng) else {
                continue;
            };
            if mailpolicy::Policy::parse(&m).is_err() {
                broken += 1;
            }
            check(&format!("{name} mutation {k}"), &m);
        }
    }
    // The mutations reach the error paths too.
    assert!(broken > 50, "{broken} mutations did not parse");
}

#[test]
fn generated_policies_parse_the_same_with_the_fast_path() {
    let mut rng = Lcg(7);
    let (mut items, mut fast) = (0, 0);
    for case in 0..300 {
        let data: Vec<u8> = (0..64 + rng.below(2_000))
            .map(|_| rng.below(256) as u8)
            .collect();
        let src = policy_gen::generate(&data, case % 8).source;
        let (i, f) = check(&format!("generated case {case}"), &src);
        items += i;
        fast += f;
        for k in 0..10 {
            if let Some(m) = mutate(&src, &mut rng) {
                check(&format!("generated case {case} mutation {k}"), &m);
            }
        }
    }
    assert!(
        fast * 10 >= items * 9,
        "fast path read {fast} of {items} items"
    );
}

#[test]
fn large_policies_across_batches_parse_the_same_with_the_fast_path() {
    // Several pest batches: a give-up in the middle of one resumes pest there.
    let src = gen::virus_policy(3_000, 1);
    let (items, fast) = check("virus_policy(3000)", &src);
    assert_eq!(items, fast);
    let mut rng = Lcg(11);
    for k in 0..20 {
        if let Some(m) = mutate(&src, &mut rng) {
            check(&format!("virus_policy(3000) mutation {k}"), &m);
        }
    }
    // An error after many fast items is worded as by pest alone.
    let broken = format!("{src}\nrule \"x\" {{ when size > then pass }}\n{src}");
    check("broken in the middle", &broken);
    let odd = format!("{src}\nrule \"odd\" {{ when x == \"\\q\" then pass }}\n{src}");
    check("bad escape in the middle", &odd);
}
