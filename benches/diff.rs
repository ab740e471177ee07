//! `Policy::diff` on generated 1,000-rule policies (tests/common/gen.rs)
//! against edited versions of themselves, and against an unrelated policy.
//!
//! `MAILPOLICY_BENCH_QUICK=1` for a short run. Every scenario is checked
//! once before timing (complete or not, region count) and printed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mailpolicy::Policy;

#[path = "../tests/common/gen.rs"]
mod gen;

/// The policy's header, its rules one block each, and its tail (the default).
fn blocks(src: &str) -> (String, Vec<String>, String) {
    let start = src.find("rule ").unwrap_or(0);
    let end = src.rfind("\ndefault").unwrap_or(src.len());
    let mut rules: Vec<String> = src[start..end]
        .split("\nrule ")
        .map(|r| {
            let mut r = if r.starts_with("rule ") {
                r.to_owned()
            } else {
                format!("rule {r}")
            };
            if !r.ends_with('\n') {
                r.push('\n');
            }
            r
        })
        .collect();
    rules.retain(|r| r.trim() != "rule");
    (src[..start].to_owned(), rules, src[end..].to_owned())
}

/// The scenarios: (name, new policy source) for the old policy `src`.
fn scenarios(src: &str, n: usize, seed: u64) -> Vec<(&'static str, String)> {
    let (head, rules, tail) = blocks(src);
    let join = |rs: &[String]| format!("{head}{}{tail}", rs.concat());
    let last = rules.len().saturating_sub(1).max(1);
    let mut out = vec![("renamed", src.replace("rule \"", "rule \"renamed "))];
    let mut r = rules.clone();
    for k in 0..10 {
        let i = (k * 97 + 13) % last;
        r[i] = r[i].replace("    then ", "    then tag \"edited\", ");
    }
    out.push(("10 rules' actions edited", join(&r)));
    let mut r = rules.clone();
    for k in 0..10 {
        let i = (k * 89 + 5) % last;
        let j = (k * 211 + 400) % last;
        let x = r.remove(i);
        r.insert(j, x);
    }
    out.push(("10 rules moved", join(&r)));
    let mut r = rules.clone();
    for k in 0..5 {
        r.remove((k * 151 + 3) % last);
    }
    for k in 0..5 {
        r.insert(
            (k * 173 + 11) % last,
            format!("rule \"new {k}\" {{\n    when scanner == infected and virus matches \"New.Family{k}*\"\n    then discard, quarantine \"new\"\n}}\n"),
        );
    }
    out.push(("5 rules deleted, 5 added", join(&r)));
    out.push(("an unrelated policy", gen::virus_policy(n, seed + 100)));
    out
}

fn diff(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    let n = 1_000;
    let src = gen::virus_policy(n, 7);
    let old = Policy::parse(&src).expect("generated policies parse");
    for (name, new_src) in scenarios(&src, n, 7) {
        let new = Policy::parse(&new_src).expect("edited policies parse");
        let d = old.diff(&new).expect("same facts");
        println!(
            "diff/{name}: {} regions, complete: {}, pairs searched: {}, work: {}",
            d.regions.len(),
            d.complete,
            d.pairs_searched,
            d.work
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &new, |b, new| {
            b.iter(|| old.diff(new).map(|d| d.regions.len()))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    let quick = std::env::var_os("MAILPOLICY_BENCH_QUICK").is_some();
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(if quick {
            100
        } else {
            500
        }))
        .measurement_time(std::time::Duration::from_millis(if quick {
            500
        } else {
            3000
        }))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = diff
}
criterion_main!(benches);
