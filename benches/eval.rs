//! Evaluation and parse benchmarks (criterion; `cargo bench --bench eval`).
//!
//! - `example/*`, `site_*/*`: the spec's example policy and two small site
//!   policies on several paths, compiled (`evaluate`) and reference
//!   (`evaluate_reference`, the plain walk) in the same run;
//! - `generated/{clean,infected}/N`: generated policies of N = 10 ... 10,000
//!   rules (`tests/common/gen.rs`) on facts that make no rule apply;
//! - `parse/N`, `compile/N`: `Policy::parse` (parse + check + compile) and
//!   the compile step alone;
//! - before the benchmarks, the memory a `Policy` holds (measured with a
//!   counting allocator) per rule is printed to stderr.
//!
//! Set `MAILPOLICY_BENCH_QUICK=1` for short measurement times.

#[path = "../tests/common/gen.rs"]
mod gen;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use mailpolicy::{Direction, FactKey, FactProvider, FactValue, Facts, Policy, Scanner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// Counts live heap bytes, to report what a `Policy` holds.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The example policy of the specification.
/// The specification's example policy.
const EXAMPLE: &str = include_str!("../tests/fixtures/spec_example.policy");

/// A small ISP in front of its customers' mailboxes (before the queue).
const SITE_ISP: &str = r#"
policy "isp.example"
mode before_queue
admin "abuse@isp.example"
list customers = [198.51.100.0/24, 203.0.113.0/25, 2001:db8:100::/40]
list mass_mailers = ["W32/Sobig*", "W32/Bagle*", "W32/Netsky*", "W32/Mydoom*", "W32/Klez*", "*@MM", "*@mm!*"]
list vips = ["ceo@isp.example", "noc@isp.example"]

rule "scanner down" { when scanner in [error, timeout] then tempfail "451 4.7.1 try again later" }
rule "customer sends a virus" {
    when client_ip in customers and scanner == infected
    then discard, quarantine "outbound", alert admin
}
rule "vip gets unscannable mail marked" {
    when scanner == encrypted and recipient in vips
    then pass, tag "***UNCHECKED***", alert recipient
}
rule "unscannable" { when scanner == encrypted then pass, tag "***UNCHECKED***" }
rule "mass mailer" { when scanner == infected and virus matches mass_mailers then reject "554 5.7.1 virus found" }
rule "any virus" { when scanner == infected then reject "554 5.7.1 virus found" }
default pass
"#;

/// A university relay with per-department rules (after the queue).
const SITE_UNI: &str = r#"
policy "uni.example"
mode after_queue
admin "postmaster@uni.example"
fact quarantine_full: bool
list campus = [10.0.0.0/8, 172.16.0.0/12, 192.0.2.0/24, 2001:db8:42::/48]
list labs = ["*@cs.uni.example", "*@physics.uni.example", "*@bio.uni.example"]

rule "scanner failed" { when scanner in [error, timeout] then tempfail }
rule "quarantine full" { when scanner == infected and quarantine_full then tempfail "452 4.3.1 quarantine full" }
rule "outbound virus" {
    when direction in [outbound, internal] and scanner == infected
    then discard, quarantine "outbound", alert admin
}
rule "campus relay virus" { when client_ip in campus and scanner == infected then discard, quarantine "campus", alert admin }
rule "lab mail unscannable" {
    when scanner == encrypted and sender matches labs and authenticated
    then pass, tag "[unchecked]"
}
rule "unscannable inbound" { when direction == inbound and scanner == encrypted then pass, tag "[unchecked]", alert recipient }
rule "non-forging virus" {
    when scanner == infected and forges_sender == false and sender != ""
    then bounce, quarantine
}
rule "virus" { when scanner == infected then discard, quarantine }
rule "huge" { when size > 50000000 then reject "552 5.3.4 too big" }
default pass
"#;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("a valid address")
}

fn config() -> Criterion {
    let quick = std::env::var_os("MAILPOLICY_BENCH_QUICK").is_some();
    Criterion::default()
        .sample_size(if quick { 10 } else { 30 })
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 400 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 1200 }))
}

/// The bytes `Policy::parse` leaves allocated (the policy and everything it owns).
fn policy_bytes(src: &str) -> (Policy, isize) {
    let before = LIVE.load(Ordering::SeqCst);
    let p = Policy::parse(src).expect("policy parses");
    let after = LIVE.load(Ordering::SeqCst);
    (p, after - before + std::mem::size_of::<Policy>() as isize)
}

fn report_memory() {
    eprintln!("policy memory (live heap after parse, incl. source text and checked model):");
    eprintln!(
        "{:>8} {:>12} {:>10} {:>14} {:>10} {:>8}",
        "rules", "bytes", "per rule", "compiled B", "per rule", "cells"
    );
    for n in [10usize, 100, 1_000, 10_000] {
        let src = gen::virus_policy(n, 1);
        let (p, bytes) = policy_bytes(&src);
        let (compiled, cells, keys) = p.compiled_size();
        let rules = (n + 1) as isize;
        eprintln!(
            "{:>8} {:>12} {:>10} {:>14} {:>10} {:>5}/{}",
            n + 1,
            bytes,
            bytes / rules,
            compiled,
            compiled as isize / rules,
            cells,
            keys
        );
    }
}

fn examples(c: &mut Criterion) {
    report_memory();
    let example = Policy::parse(EXAMPLE).expect("example parses");
    let isp = Policy::parse(SITE_ISP).expect("isp parses");
    let uni = Policy::parse(SITE_UNI).expect("uni parses");

    let paths: Vec<(&str, &Policy, Facts)> = vec![
        (
            "example/clean_inbound",
            &example,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .client_ip(ip("203.0.113.9"))
                .sender("a@example.net")
                .custom("dnsbl_listed", false),
        ),
        (
            "example/sobig_inbound",
            &example,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus("W32/Sobig.F@MM")
                .forges_sender(true)
                .client_ip(ip("203.0.113.9"))
                .sender("forged@example.net"),
        ),
        (
            "example/outbound_virus",
            &example,
            Facts::new()
                .direction(Direction::Outbound)
                .scanner(Scanner::Infected)
                .virus("W32/Bagle.A")
                .client_ip(ip("10.1.2.3")),
        ),
        (
            "example/non_forging_bounce",
            &example,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus("Eicar-Test-Signature")
                .forges_sender(false)
                .client_ip(ip("198.51.100.7"))
                .sender("someone@example.net"),
        ),
        (
            "example/scanner_timeout",
            &example,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Timeout),
        ),
        (
            "example/dnsbl_spam",
            &example,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .custom("dnsbl_listed", true)
                .spam_score(9.5),
        ),
        ("example/all_unknown", &example, Facts::new()),
        (
            "site_isp/clean",
            &isp,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .client_ip(ip("192.0.2.44"))
                .recipient("someone@isp.example"),
        ),
        (
            "site_isp/mass_mailer",
            &isp,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus("W32/Netsky.P@MM")
                .client_ip(ip("192.0.2.44")),
        ),
        (
            "site_isp/vip_encrypted",
            &isp,
            Facts::new()
                .scanner(Scanner::Encrypted)
                .client_ip(ip("192.0.2.44"))
                .recipient("noc@isp.example"),
        ),
        (
            "site_uni/clean",
            &uni,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .client_ip(ip("192.0.2.9"))
                .size(120_000)
                .custom("quarantine_full", false),
        ),
        (
            "site_uni/lab_encrypted",
            &uni,
            Facts::new()
                .direction(Direction::Internal)
                .scanner(Scanner::Encrypted)
                .sender("prof@physics.uni.example")
                .authenticated(true)
                .custom("quarantine_full", false),
        ),
        (
            "site_uni/inbound_virus",
            &uni,
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus("W32/Mydoom.A@MM")
                .forges_sender(true)
                .client_ip(ip("198.51.100.3"))
                .custom("quarantine_full", false),
        ),
    ];
    let mut g = c.benchmark_group("policies");
    for (name, policy, facts) in &paths {
        assert_eq!(policy.evaluate(facts), policy.evaluate_reference(facts));
        g.bench_function(BenchmarkId::new("compiled", name), |b| {
            b.iter(|| policy.evaluate(black_box(facts)))
        });
        g.bench_function(BenchmarkId::new("reference", name), |b| {
            b.iter(|| policy.evaluate_reference(black_box(facts)))
        });
    }
    // The lazy path, through a provider over the same facts.
    struct Provider<'f>(&'f Facts);
    impl FactProvider for Provider<'_> {
        fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
            self.0.fact(key)
        }
    }
    for (name, policy, facts) in paths.iter().take(3) {
        let p = Provider(facts);
        g.bench_function(BenchmarkId::new("lazy", name), |b| {
            b.iter(|| policy.evaluate_lazy(black_box(&p)))
        });
    }
    g.finish();
}

fn generated(c: &mut Criterion) {
    let sizes = [10usize, 100, 1_000, 10_000];
    let policies: Vec<(usize, Policy)> = sizes
        .iter()
        .map(|&n| {
            let p = Policy::parse(&gen::virus_policy(n, 1)).expect("generated parses");
            (n, p)
        })
        .collect();
    for (label, facts) in [
        ("clean", gen::no_match_clean()),
        ("infected", gen::no_match_infected()),
    ] {
        let mut g = c.benchmark_group(format!("generated_{label}"));
        for (n, p) in &policies {
            assert_eq!(p.evaluate(&facts).rule(), None, "no rule applies");
            assert_eq!(p.evaluate_reference(&facts).rule(), None);
            g.bench_with_input(BenchmarkId::new("compiled", n), p, |b, p| {
                b.iter(|| p.evaluate(black_box(&facts)))
            });
            g.bench_with_input(BenchmarkId::new("reference", n), p, |b, p| {
                b.iter(|| p.evaluate_reference(black_box(&facts)))
            });
        }
        g.finish();
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let src = gen::virus_policy(n, 1);
        g.bench_with_input(
            BenchmarkId::new("parse_check_compile", n),
            &src,
            |b, src| b.iter(|| Policy::parse(black_box(src)).expect("parses")),
        );
        let p = Policy::parse(&src).expect("parses");
        g.bench_with_input(BenchmarkId::new("compile_only", n), &p, |b, p| {
            b.iter(|| p.recompile())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = examples, generated, parse
}
criterion_main!(benches);
