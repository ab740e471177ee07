//! Evaluation and parse benchmarks (criterion; `cargo bench --bench eval`).
//!
//! - `example/*`, `site_*/*`: the spec's example policy and two small site
//!   policies on several paths, compiled (`evaluate`) and reference
//!   (`evaluate_reference`, the plain walk) in the same run;
//! - `generated/{clean,infected}/N`: generated policies of N = 10 ... 10,000
//!   rules (`tests/common/gen.rs`) on facts that make no rule apply;
//! - `side_by_side/*`: the "virus policy" of the engine comparison in issue
//!   14 (`naive::side_by_side_source`), 10 / 1,000 / 10,000 rules, an early
//!   (rule 0), a middle (rule N/2) and no match, each with the facts built
//!   beforehand and with building them inside the timed call (`+facts`);
//! - every evaluation path also times `naive`: the hand-written
//!   `Vec<Vec<Cond>>` loop of `benches/naive/mod.rs` on the same facts,
//!   checked to decide the same rule first;
//! - `parse/N`, `compile/N`: `Policy::parse` (parse + check + compile) and
//!   the compile step alone;
//! - before the benchmarks, the memory a `Policy` holds (measured with a
//!   counting allocator) per rule is printed to stderr.
//!
//! Set `MAILPOLICY_BENCH_QUICK=1` for short measurement times.
//!
//! `MAILPOLICY_PROFILE=PREFIX` runs, instead of criterion, the body of each
//! benchmark whose full name starts with `PREFIX` (e.g.
//! `side_by_side/compiled/early/`; empty: all; `NAME$`: that one only)
//! `MAILPOLICY_PROFILE_ITERS`
//! times (default 100,000) in `measure_loop`: `scripts/bench-instructions`
//! counts the instructions per call under callgrind, which are repeatable on
//! a loaded machine where times are not.

#[path = "../tests/common/gen.rs"]
mod gen;
mod naive;

use criterion::{black_box, measurement::WallTime, BenchmarkGroup, Criterion};
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
        .configure_from_args()
}

/// The benchmarks to profile: those whose full name starts with
/// `MAILPOLICY_PROFILE`, when it is set.
fn profile() -> Option<String> {
    std::env::var("MAILPOLICY_PROFILE").ok()
}

/// Whether a group is needed at all (every group in a normal run; in profile
/// mode, only those that can hold a named benchmark).
fn wanted(group: &str) -> bool {
    let group = format!("{group}/");
    profile().is_none_or(|p| group.starts_with(&p) || p.starts_with(&group))
}

/// The loop callgrind counts: `scripts/bench-instructions` zeroes the counts
/// when it is entered, and dumps them when `measure_end` is entered.
#[inline(never)]
fn measure_loop<R>(f: &impl Fn() -> R, iters: u64) {
    for _ in 0..iters {
        black_box(f());
    }
}

#[inline(never)]
fn measure_end() {
    black_box(());
}

/// Times `f` as `group/name`, or in profile mode runs it in `measure_loop`
/// when it is a named benchmark.
fn run<R>(g: &mut BenchmarkGroup<'_, WallTime>, group: &str, name: &str, f: impl Fn() -> R) {
    match profile() {
        Some(p) => {
            let full = format!("{group}/{name}");
            // `NAME$`: that benchmark only.
            let hit = match p.strip_suffix('$') {
                Some(exact) => full == exact,
                None => full.starts_with(&p),
            };
            if hit {
                let iters = std::env::var("MAILPOLICY_PROFILE_ITERS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(100_000);
                // Once outside the counted loop (first-use caches).
                black_box(f());
                eprintln!("profile: {full} {iters}");
                measure_loop(&f, iters);
                measure_end();
            }
        }
        None => {
            g.bench_function(name, |b| b.iter(&f));
        }
    }
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

/// Asserts that the naive loop decides as the policy does on `facts`.
fn same_decision(policy: &Policy, rules: &naive::Rules, facts: &Facts, custom: &str, what: &str) {
    let nf = naive::NFacts::from_facts(facts, custom);
    let rule = policy.evaluate(facts).rule();
    let index = rule.and_then(|r| policy.rule_names().position(|n| n == r));
    assert_eq!(
        index,
        naive::decide(rules, &nf),
        "{what}: the naive loop disagrees on {facts:?}"
    );
}

fn examples(c: &mut Criterion) {
    if !wanted("policies") {
        return;
    }
    if profile().is_none() {
        report_memory();
    }
    let example = Policy::parse(EXAMPLE).expect("example parses");
    let isp = Policy::parse(SITE_ISP).expect("isp parses");
    let uni = Policy::parse(SITE_UNI).expect("uni parses");
    let (n_example, n_isp, n_uni) = (naive::example(), naive::site_isp(), naive::site_uni());

    let paths: Vec<(&str, &Policy, &naive::Rules, &str, Facts)> = vec![
        (
            "example/clean_inbound",
            &example,
            &n_example,
            "dnsbl_listed",
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
            &n_example,
            "dnsbl_listed",
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
            &n_example,
            "dnsbl_listed",
            Facts::new()
                .direction(Direction::Outbound)
                .scanner(Scanner::Infected)
                .virus("W32/Bagle.A")
                .client_ip(ip("10.1.2.3")),
        ),
        (
            "example/non_forging_bounce",
            &example,
            &n_example,
            "dnsbl_listed",
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
            &n_example,
            "dnsbl_listed",
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Timeout),
        ),
        (
            "example/dnsbl_spam",
            &example,
            &n_example,
            "dnsbl_listed",
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .custom("dnsbl_listed", true)
                .spam_score(9.5),
        ),
        (
            "example/all_unknown",
            &example,
            &n_example,
            "dnsbl_listed",
            Facts::new(),
        ),
        (
            "site_isp/clean",
            &isp,
            &n_isp,
            "",
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Clean)
                .client_ip(ip("192.0.2.44"))
                .recipient("someone@isp.example"),
        ),
        (
            "site_isp/mass_mailer",
            &isp,
            &n_isp,
            "",
            Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus("W32/Netsky.P@MM")
                .client_ip(ip("192.0.2.44")),
        ),
        (
            "site_isp/vip_encrypted",
            &isp,
            &n_isp,
            "",
            Facts::new()
                .scanner(Scanner::Encrypted)
                .client_ip(ip("192.0.2.44"))
                .recipient("noc@isp.example"),
        ),
        (
            "site_uni/clean",
            &uni,
            &n_uni,
            "quarantine_full",
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
            &n_uni,
            "quarantine_full",
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
            &n_uni,
            "quarantine_full",
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
    for (name, policy, rules, custom, facts) in &paths {
        assert_eq!(policy.evaluate(facts), policy.evaluate_reference(facts));
        same_decision(policy, rules, facts, custom, name);
        let nf = naive::NFacts::from_facts(facts, custom);
        run(&mut g, "policies", &format!("compiled/{name}"), || {
            policy.evaluate(black_box(facts))
        });
        run(&mut g, "policies", &format!("naive/{name}"), || {
            naive::decide(rules, black_box(&nf))
        });
        run(&mut g, "policies", &format!("reference/{name}"), || {
            policy.evaluate_reference(black_box(facts))
        });
    }
    // The lazy path, through a provider over the same facts.
    struct Provider<'f>(&'f Facts);
    impl FactProvider for Provider<'_> {
        fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
            self.0.fact(key)
        }
    }
    for (name, policy, _, _, facts) in paths.iter().take(3) {
        let p = Provider(facts);
        run(&mut g, "policies", &format!("lazy/{name}"), || {
            policy.evaluate_lazy(black_box(&p))
        });
    }
    g.finish();
}

fn generated(c: &mut Criterion) {
    let sizes = [10usize, 100, 1_000, 10_000];
    let groups = ["generated_clean", "generated_infected"];
    if !groups.iter().any(|g| wanted(g)) {
        return;
    }
    let policies: Vec<(usize, Policy, naive::Rules)> = sizes
        .iter()
        .map(|&n| {
            let p = Policy::parse(&gen::virus_policy(n, 1)).expect("generated parses");
            let rules = naive::generated(&gen::plan(n, 1));
            if profile().is_none() {
                // The translation decides as the policy does on varied facts.
                for f in gen::varied_facts(300, n, 1) {
                    same_decision(&p, &rules, &f, "", "generated");
                }
            }
            (n, p, rules)
        })
        .collect();
    for (group, facts) in groups
        .into_iter()
        .zip([gen::no_match_clean(), gen::no_match_infected()])
    {
        if !wanted(group) {
            continue;
        }
        let mut g = c.benchmark_group(group);
        let nf = naive::NFacts::from_facts(&facts, "");
        for (n, p, rules) in &policies {
            assert_eq!(p.evaluate(&facts).rule(), None, "no rule applies");
            assert_eq!(p.evaluate_reference(&facts).rule(), None);
            same_decision(p, rules, &facts, "", group);
            run(&mut g, group, &format!("compiled/{n}"), || {
                p.evaluate(black_box(&facts))
            });
            run(&mut g, group, &format!("naive/{n}"), || {
                naive::decide(rules, black_box(&nf))
            });
            run(&mut g, group, &format!("reference/{n}"), || {
                p.evaluate_reference(black_box(&facts))
            });
        }
        g.finish();
    }
}

/// The side-by-side scenario set of issue 14: the same "virus policy" the
/// engine comparison rendered for each engine (`naive::side_by_side_source`),
/// 10 / 1,000 / 10,000 rules; an early match (rule 0), a middle one (rule
/// N/2) and none; with the facts built beforehand, and built inside the
/// timed call (`+facts`: `Facts` for the policy, `NFacts` for the loop).
fn side_by_side(c: &mut Criterion) {
    if !wanted("side_by_side") {
        return;
    }
    let mut g = c.benchmark_group("side_by_side");
    for n in [10usize, 1_000, 10_000] {
        let policy = Policy::parse(&naive::side_by_side_source(n)).expect("parses");
        let rules = naive::side_by_side(n);
        let middle = n / 2 - (n / 2) % 3;
        let cases = [
            ("early", "Fam0.A".to_owned(), Some(0)),
            ("middle", format!("Fam{middle}.A"), Some(middle)),
            ("none", "Novel.A".to_owned(), None),
        ];
        for (path, virus, expect) in cases {
            let client = ip("203.0.113.9");
            let build = || {
                Facts::new()
                    .direction(Direction::Inbound)
                    .scanner(Scanner::Infected)
                    .virus(virus.as_str())
                    .forges_sender(true)
                    .client_ip(client)
            };
            let build_naive = || naive::NFacts {
                direction: Some(Direction::Inbound),
                scanner: Some(Scanner::Infected),
                virus: Some(vec![virus.clone()]),
                forges_sender: Some(true),
                client_ip: Some(client),
                ..naive::NFacts::default()
            };
            let facts = build();
            let nf = build_naive();
            let index = |d: mailpolicy::Decision<'_>| {
                d.rule()
                    .and_then(|r| policy.rule_names().position(|x| x == r))
            };
            assert_eq!(index(policy.evaluate(&facts)), expect, "{path}/{n}");
            assert_eq!(naive::decide(&rules, &nf), expect, "{path}/{n}");
            assert_eq!(policy.evaluate(&facts), policy.evaluate_reference(&facts));
            run(
                &mut g,
                "side_by_side",
                &format!("compiled/{path}/{n}"),
                || policy.evaluate(black_box(&facts)).rule().is_some(),
            );
            run(&mut g, "side_by_side", &format!("naive/{path}/{n}"), || {
                naive::decide(&rules, black_box(&nf))
            });
            // The built facts are passed through `black_box` by reference:
            // moving them through it made the compiler copy the 344-byte
            // `Facts` byte by byte, a cost of the harness, not of building.
            run(
                &mut g,
                "side_by_side",
                &format!("compiled+facts/{path}/{n}"),
                || {
                    let f = build();
                    policy.evaluate(black_box(&f)).rule().is_some()
                },
            );
            run(
                &mut g,
                "side_by_side",
                &format!("naive+facts/{path}/{n}"),
                || {
                    let f = build_naive();
                    naive::decide(&rules, black_box(&f))
                },
            );
        }
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    if !wanted("parse") {
        return;
    }
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    for n in [10usize, 1_000, 10_000] {
        let src = gen::virus_policy(n, 1);
        run(&mut g, "parse", &format!("parse_check_compile/{n}"), || {
            Policy::parse(black_box(&src)).expect("parses")
        });
        let sbs = naive::side_by_side_source(n);
        run(&mut g, "parse", &format!("side_by_side/{n}"), || {
            Policy::parse(black_box(&sbs)).expect("parses")
        });
        let p = Policy::parse(&src).expect("parses");
        run(&mut g, "parse", &format!("compile_only/{n}"), || {
            p.recompile()
        });
    }
    g.finish();
}

fn main() {
    let mut c = config();
    examples(&mut c);
    generated(&mut c);
    side_by_side(&mut c);
    parse(&mut c);
    if profile().is_none() {
        c.final_summary();
    }
}
