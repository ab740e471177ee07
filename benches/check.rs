//! `Policy::parse` + `check()` (what `policy check` does) on generated
//! policies: the site-shaped generator at 100, 1,000 and 10,000 rules, and
//! the mixed generator (2–4 random comparisons per rule over strings,
//! globs, CIDRs, numbers, enums and bools) at 1,000 and 20,000 rules.
//! `MAILPOLICY_BENCH_QUICK=1` runs the smallest sizes only.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailpolicy::{Limits, Policy};

mod gen;

fn quick() -> bool {
    std::env::var_os("MAILPOLICY_BENCH_QUICK").is_some()
}

/// The default limits, with room for the largest generated policy's
/// evaluation.
fn limits() -> Limits {
    Limits {
        max_eval_steps: 1 << 20,
        ..Limits::default()
    }
}

fn run(c: &mut Criterion, group: &str, sizes: &[usize], make: fn(usize, u64) -> String) {
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    for &n in sizes {
        let src = make(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &src, |b, src| {
            b.iter(|| {
                // The mixed policy of 20,000 random rules is refused by the
                // per-evaluation bound (`max_eval_steps`: 65,000 steps in
                // its worst cell); parsing and linting is measured here.
                let policy =
                    Policy::parse_with_limits(src, &limits()).expect("generated policies parse");
                policy.check()
            })
        });
    }
    group.finish();
}

fn check(c: &mut Criterion) {
    let sizes: &[usize] = if quick() {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    run(c, "parse+check", sizes, gen::policy);
    let sizes: &[usize] = if quick() { &[1_000] } else { &[1_000, 20_000] };
    run(c, "parse+check mixed", sizes, gen::mixed_policy);
}

criterion_group!(benches, check);
criterion_main!(benches);
