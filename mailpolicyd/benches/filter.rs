//! mailpolicyd against clamav-milter on the same private Postfix + clamd (the e2e lab), in
//! one run: 1, 10 and 50 concurrent SMTP clients, messages per second, latency p50/p99 and
//! the filter's resident memory. A benchmark script, not a test: it asserts nothing about
//! speed, it prints figures.
//!
//! ```sh
//! nice -n 10 cargo bench -p mailpolicyd --bench filter          # as root, packages installed
//! BENCH_SECS=20 BENCH_LEVELS=1,10,50 BENCH_FILTERS=clamav-milter,mailpolicyd,mailpolicyd-instream \
//!     cargo bench -p mailpolicyd --bench filter
//! ```
//!
//! Each client opens one SMTP connection per message (EHLO, XCLIENT from an outside address,
//! MAIL, RCPT, DATA) and measures from connect to the end-of-DATA reply. One message in ten
//! carries EICAR (both filters reject it with a 5xx); the others are clean, ~6 KB with a
//! base64 attachment. The filters are configured alike: reject infected, tempfail when clamd
//! fails. `mailpolicyd` is run with `[clamd] spool_dir` (ALLMATCHSCAN on a private copy, the
//! SPEC's "every detection") and, as `mailpolicyd-instream`, without it (INSTREAM, first
//! detection only — what clamav-milter does). Between cells the queue is drained.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const POLICY: &str = r#"
policy "bench"
rule "scanner failed: try later" {
    when scanner in [error, timeout]
    then tempfail "451 4.7.1 virus scanner unavailable"
}
rule "unscannable: deliver, marked" {
    when scanner == encrypted
    then pass, tag "***UNCHECKED***"
}
rule "viruses are refused" {
    when scanner == infected
    then reject "554 5.7.1 virus found"
}
default pass
"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    ClamavMilter,
    Mailpolicyd,
    MailpolicydInstream,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Filter::ClamavMilter => "clamav-milter",
            Filter::Mailpolicyd => "mailpolicyd",
            Filter::MailpolicydInstream => "mailpolicyd-instream",
        }
    }
    fn parse(s: &str) -> Option<Filter> {
        [
            Filter::ClamavMilter,
            Filter::Mailpolicyd,
            Filter::MailpolicydInstream,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }
}

#[derive(Debug, Default)]
struct Cell {
    sent: usize,
    accepted: usize,
    rejected: usize,
    tempfailed: usize,
    errors: usize,
    latencies_ms: Vec<f64>,
    secs: f64,
    rss_peak_kb: u64,
    rss_idle_kb: u64,
    /// From mailpolicyd's `TIMING` debug lines: (policy share %, scan µs, total µs, policy µs)
    /// per message.
    timing: Vec<(f64, f64, f64, f64)>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn messages() -> (Vec<u8>, Vec<u8>) {
    let mut bytes = Vec::with_capacity(4096);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while bytes.len() < 3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let text = "Dear colleague,\n\nplease find the quarterly figures attached. ".repeat(20);
    let clean = message("bench-clean")
        .body(&text)
        .attach("figures.bin", "application/octet-stream", &bytes)
        .build();
    let mut infected_bytes = bytes.clone();
    infected_bytes.extend_from_slice(EICAR.as_bytes());
    let infected = message("bench-eicar")
        .body(&text)
        .attach("figures.bin", "application/octet-stream", &infected_bytes)
        .build();
    (clean, infected)
}

fn run_cell(lab: &mut Lab, filter: Filter, clients: usize, secs: f64) -> Cell {
    match filter {
        Filter::ClamavMilter => lab.start_clamav_milter(),
        Filter::Mailpolicyd | Filter::MailpolicydInstream => {
            let mut cfg = DaemonConfig::new(POLICY);
            cfg.spool = filter == Filter::Mailpolicyd;
            // One TIMING line per message (scan, policy, total): the policy's own share.
            cfg.extra_toml = "level = \"debug\"\n".into();
            lab.start_mailpolicyd_with(&cfg);
        }
    }
    let pid = lab.filter_proc().map(|p| p.pid()).unwrap_or(0);
    let addr = lab.postfix.addr();
    let (clean, infected) = messages();
    let env = Envelope::new("bench@outside.test", &["alice@example.org"]).client("203.0.113.9");
    // Warm-up: a few of each through the filter (connections, clamd, caches).
    for i in 0..10 {
        let m = if i % 5 == 0 { &infected } else { &clean };
        let _ = support::smtp::send(addr, &env, m);
    }
    lab.wait_queue_empty();
    let rss_idle_kb = rss_kb(pid);
    let log_offset = lab.daemon_log().len();

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_idle_kb));
    let sampler = {
        let stop = stop.clone();
        let peak = peak.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let results: Vec<Cell> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (clean, infected, env) = (&clean, &infected, &env);
                scope.spawn(move || client(addr, c, deadline, clean, infected, env))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let mut cell = Cell {
        secs: elapsed,
        rss_idle_kb,
        rss_peak_kb: peak.load(Ordering::Relaxed),
        ..Cell::default()
    };
    for r in results {
        cell.sent += r.sent;
        cell.accepted += r.accepted;
        cell.rejected += r.rejected;
        cell.tempfailed += r.tempfailed;
        cell.errors += r.errors;
        cell.latencies_ms.extend(r.latencies_ms);
    }
    cell.latencies_ms.sort_by(|a, b| a.total_cmp(b));
    if filter != Filter::ClamavMilter {
        cell.timing = timing_lines(&lab.daemon_log()[log_offset..]);
    }
    lab.stop_filter();
    lab.wait_queue_empty();
    cell
}

/// `TIMING ID: scan N us, policy N us (N recipients), quarantine+dsn N us, total N us,
/// policy share X%` → (share %, scan µs, total µs, policy µs).
fn timing_lines(log: &str) -> Vec<(f64, f64, f64, f64)> {
    let num_after = |l: &str, key: &str| -> Option<f64> {
        let i = l.find(key)? + key.len();
        let rest = l[i..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    log.lines()
        .filter(|l| l.contains("TIMING "))
        .filter_map(|l| {
            Some((
                num_after(l, "policy share")?,
                num_after(l, "scan")?,
                num_after(l, "total")?,
                num_after(l, "policy")?,
            ))
        })
        .collect()
}

fn client(
    addr: SocketAddr,
    c: usize,
    deadline: Instant,
    clean: &[u8],
    infected: &[u8],
    env: &Envelope,
) -> Cell {
    let mut cell = Cell::default();
    let mut i = c; // stagger the infected ones across clients
    while Instant::now() < deadline {
        let m = if i % 10 == 0 { infected } else { clean };
        i += 1;
        let t = Instant::now();
        let out = support::smtp::send(addr, env, m);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        cell.sent += 1;
        match out {
            Ok(o) => {
                let r = o.decisive();
                if o.accepted() {
                    cell.accepted += 1;
                } else if r.is_permanent() {
                    cell.rejected += 1;
                } else {
                    cell.tempfailed += 1;
                }
                cell.latencies_ms.push(ms);
            }
            Err(_) => cell.errors += 1,
        }
    }
    cell
}

/// The policy's own time per message: evaluating the bench policy for one recipient of a
/// clean inbound message, in-process (what mailpolicyd does once per recipient).
fn policy_eval_ns() -> f64 {
    use mailpolicy::{Direction, Facts, Policy, Scanner};
    let policy = Policy::parse(POLICY).expect("bench policy parses");
    let facts = Facts::new()
        .direction(Direction::Inbound)
        .scanner(Scanner::Clean)
        .viruses(Vec::<String>::new())
        .client_ip("203.0.113.9".parse().expect("ip"))
        .sender("bench@outside.test")
        .recipient("alice@example.org")
        .authenticated(false)
        .size(6000);
    let n = 200_000;
    let t = Instant::now();
    let mut pass = 0usize;
    for _ in 0..n {
        let d = policy.evaluate(std::hint::black_box(&facts));
        pass += usize::from(d.rule().is_none());
    }
    assert_eq!(pass, n, "a clean message reaches the default");
    t.elapsed().as_nanos() as f64 / n as f64
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` also runs this (debug build,
    // no `--bench`): do nothing there — the bench is minutes of load, not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("filter bench: not run (use `cargo bench -p mailpolicyd --bench filter`)");
        return;
    }
    let secs: f64 = env_or("BENCH_SECS", 15.0);
    let levels: Vec<usize> = std::env::var("BENCH_LEVELS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let filters: Vec<Filter> = std::env::var("BENCH_FILTERS")
        .unwrap_or_else(|_| "clamav-milter,mailpolicyd,mailpolicyd-instream".into())
        .split(',')
        .filter_map(|s| Filter::parse(s.trim()))
        .collect();
    let mut opts = LabOptions::new("filter-bench");
    opts.needs.push("clamav-milter");
    let Some(mut lab) = Lab::start(opts) else {
        eprintln!("filter bench: skipped (the lab cannot run here)");
        return;
    };
    let eval_ns = policy_eval_ns();
    println!(
        "filter bench: {secs} s per cell, levels {levels:?}, filters {:?}; nproc {}; load average at start {}",
        filters.iter().map(|f| f.name()).collect::<Vec<_>>(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load_average()
    );
    println!();
    println!("| clients | filter | msgs/s | p50 ms | p99 ms | accepted | rejected | tempfail | errors | RSS idle MB | RSS peak MB | policy share of filter time | filter µs p50: scan / policy / total |");
    println!(
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for &clients in &levels {
        for &f in &filters {
            let cell = run_cell(&mut lab, f, clients, secs);
            let p50 = percentile(&cell.latencies_ms, 0.50);
            let p99 = percentile(&cell.latencies_ms, 0.99);
            let share = if cell.timing.is_empty() {
                "—".to_string()
            } else {
                let n = cell.timing.len() as f64;
                let mean_share = cell.timing.iter().map(|t| t.0).sum::<f64>() / n;
                let mut shares: Vec<f64> = cell.timing.iter().map(|t| t.0).collect();
                shares.sort_by(|a, b| a.total_cmp(b));
                let p99 = percentile(&shares, 0.99);
                format!("{mean_share:.3} % (p99 {p99:.2} %)")
            };
            let daemon_us = if cell.timing.is_empty() {
                "—".to_string()
            } else {
                let med = |f: fn(&(f64, f64, f64, f64)) -> f64| {
                    let mut v: Vec<f64> = cell.timing.iter().map(f).collect();
                    v.sort_by(|a, b| a.total_cmp(b));
                    percentile(&v, 0.5)
                };
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    med(|t| t.1),
                    med(|t| t.3),
                    med(|t| t.2)
                )
            };
            println!(
                "| {clients} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {:.1} | {:.1} | {share} | {daemon_us} |",
                f.name(),
                (cell.accepted + cell.rejected + cell.tempfailed) as f64 / cell.secs,
                p50,
                p99,
                cell.accepted,
                cell.rejected,
                cell.tempfailed,
                cell.errors,
                cell.rss_idle_kb as f64 / 1024.0,
                cell.rss_peak_kb as f64 / 1024.0,
            );
        }
    }
    println!();
    println!(
        "policy share: mailpolicyd's own TIMING lines (its `policy` interval — facts, \
         evaluation per recipient, combine — over the filter's total per message; mean and \
         p99 over the cell). In-process, this policy evaluates one clean \
         recipient in {eval_ns:.0} ns. Load average at end {}",
        load_average()
    );
}
