//! `Policy::parse` + `check()` on generated policies of 100, 1,000 and 10,000 rules.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailpolicy::Policy;

mod gen;

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+check");
    group.sample_size(10);
    for n in [100usize, 1_000, 10_000] {
        let src = gen::policy(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &src, |b, src| {
            b.iter(|| {
                let policy = Policy::parse(src).expect("generated policies parse");
                policy.check()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
