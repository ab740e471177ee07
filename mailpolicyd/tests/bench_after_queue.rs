//! Benchmark (ignored by default): mailpolicyd after the queue against
//! amavisd-new itself, in the same lab — one clamd, one Postfix whose
//! unfiltered smtpd is both filters' `next_hop`, the same messages.
//!
//! A load generator plays Postfix's content_filter client (EHLO once per
//! connection; XFORWARD, MAIL, RCPT, DATA pipelined; one connection per
//! client kept for all its messages as Postfix's connection cache does
//! under load) at 1,
//! 10 and 50 concurrent clients, and reports per filter: messages per second,
//! latency (end of DATA → final reply: scan + decision + re-injection),
//! peak memory (RSS and PSS summed over the filter's processes) and CPU
//! seconds per 1000 messages (the filter's processes, and clamd's).
//!
//! Both filters do virus checks only: infected → discard + quarantine, else
//! relay. amavisd-new: Debian's package, spam/banned/header checks bypassed,
//! clamd via CONTSCAN (its default ClamAV entry), started for each level
//! with `$max_servers` = the number of clients (as a site sizes it), other
//! settings at amavisd's defaults.
//! mailpolicyd: the lab's config (ALLMATCHSCAN of a spool copy).
//!
//! ```sh
//! nice -n 10 cargo test --release -p mailpolicyd --test bench_after_queue -- --ignored --nocapture
//! ```
//! Figures, never assertions: the only checks are that every message was
//! answered 250 (an error count is reported otherwise).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::proc::{free_port, port_open, wait_until, Proc};
use support::*;

const POLICY: &str = r#"
policy "virus checks only"
mode after_queue
rule "scanner failed" { when scanner in [error, timeout] then tempfail }
rule "viruses are discarded safely" { when scanner == infected then discard, quarantine }
default pass
"#;

const LEVELS: [usize; 3] = [1, 10, 50];

fn messages_for(clients: usize) -> usize {
    (20 * clients).max(200)
}

/// The test message: a text part and a small base64 attachment (about 6 KB);
/// every tenth carries EICAR in the attachment.
fn bench_message(i: usize) -> Vec<u8> {
    let mut text = String::new();
    for l in 0..40 {
        text.push_str(&format!(
            "Line {l} of message {i}: the quick brown fox jumps over the lazy dog.\n"
        ));
    }
    let mut blob: Vec<u8> = (0..3000u32).map(|n| (n * 7 + i as u32) as u8).collect();
    if i % 10 == 9 {
        blob.extend_from_slice(EICAR.as_bytes());
    }
    message(&format!("bench-{i}"))
        .body(&text)
        .attach("report.bin", "application/octet-stream", &blob)
        .build()
}

/// One content_filter client connection.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(300)))?;
        let mut c = Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        };
        c.reply()?;
        c.cmd("EHLO mx.example.org")?;
        Ok(c)
    }

    fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
            }
        }
    }

    fn cmd(&mut self, line: &str) -> std::io::Result<u16> {
        self.w.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One transaction, pipelined as Postfix's smtp client does when the
    /// server offers PIPELINING (both filters do); returns the final reply
    /// code and the time from the end of data to that reply.
    fn send(&mut self, id: usize, msg: &[u8]) -> std::io::Result<(u16, Duration)> {
        let batch = format!(
            "XFORWARD NAME=mx.outside.test ADDR=203.0.113.9 PROTO=ESMTP HELO=mx.outside.test\r\n\
             XFORWARD IDENT=BENCH{id} SOURCE=REMOTE\r\n\
             MAIL FROM:<sender@outside.test>\r\n\
             RCPT TO:<alice@example.org>\r\n\
             DATA\r\n"
        );
        self.w.write_all(batch.as_bytes())?;
        let mut last = 0;
        for _ in 0..5 {
            last = self.reply()?;
        }
        if last != 354 {
            return Ok((last, Duration::ZERO));
        }
        let mut data = support::smtp::crlf(msg);
        data.extend_from_slice(b".\r\n");
        self.w.write_all(&data)?;
        let t = Instant::now();
        let code = self.reply()?;
        Ok((code, t.elapsed()))
    }
}

/// Memory and CPU of a process tree, read from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if stat_fields(p).is_some_and(|f| f.get(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid))
        {
            out.push(p);
        }
    }
    out
}

/// The fields of /proc/PID/stat after the command name (state is [0], ppid [1]).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of `pid` and its live children, plus what its reaped
/// children used (cutime/cstime).
fn tree_cpu(pid: u32) -> f64 {
    let ticks = |p: u32, with_children: bool| -> u64 {
        stat_fields(p).map_or(0, |f| {
            // utime [11], stime [12], cutime [13], cstime [14] (after the name).
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            n(11) + n(12) + if with_children { n(13) + n(14) } else { 0 }
        })
    };
    let mut t = ticks(pid, true);
    for c in children_of(pid) {
        t += ticks(c, false);
    }
    t as f64 / clock_ticks()
}

fn tree_memory(pid: u32) -> (u64, u64, usize) {
    let mut pids = vec![pid];
    pids.extend(children_of(pid));
    let rss = pids.iter().map(|&p| status_kb(p, "VmRSS:")).sum();
    let pss = pids.iter().map(|&p| pss_kb(p)).sum();
    (rss, pss, pids.len())
}

struct Figures {
    filter: &'static str,
    clients: usize,
    messages: usize,
    errors: usize,
    secs: f64,
    p50: Duration,
    p95: Duration,
    max: Duration,
    peak_rss_kb: u64,
    peak_pss_kb: u64,
    processes: usize,
    cpu_per_1000: f64,
    clamd_cpu_per_1000: f64,
}

fn run_level(
    filter: &'static str,
    addr: SocketAddr,
    pid: u32,
    clamd_pid: u32,
    clients: usize,
    first_id: usize,
) -> Figures {
    // Warm up: one message per client (connections, children, caches).
    let warm: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut cl = Client::connect(addr).expect("connect");
                cl.send(first_id + c, &bench_message(c)).expect("warm-up");
            })
        })
        .collect();
    for w in warm {
        w.join().expect("warm-up thread");
    }
    let n = messages_for(clients);
    let messages: Arc<Vec<Vec<u8>>> = Arc::new((0..n).map(bench_message).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new((0u64, 0u64, 0usize)));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (rss, pss, procs) = tree_memory(pid);
                let mut p = peak.lock().unwrap();
                p.0 = p.0.max(rss);
                p.1 = p.1.max(pss);
                p.2 = p.2.max(procs);
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let cpu0 = tree_cpu(pid);
    let clamd0 = tree_cpu(clamd_pid);
    let t0 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (messages, next) = (Arc::clone(&messages), Arc::clone(&next));
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut errors = 0;
                let mut cl = Client::connect(addr).expect("connect");
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= messages.len() {
                        break;
                    }
                    match cl.send(first_id + clients + i, &messages[i]) {
                        Ok((250, d)) => lat.push(d),
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            match Client::connect(addr) {
                                Ok(c) => cl = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                let _ = cl.cmd("QUIT");
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().expect("worker");
        lat.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = tree_cpu(pid) - cpu0;
    let clamd_cpu = tree_cpu(clamd_pid) - clamd0;
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    lat.sort();
    let q = |f: f64| {
        lat.get(((lat.len() as f64 * f) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let (peak_rss_kb, peak_pss_kb, processes) = *peak.lock().unwrap();
    Figures {
        filter,
        clients,
        messages: n,
        errors,
        secs,
        p50: q(0.5),
        p95: q(0.95),
        max: lat.last().copied().unwrap_or_default(),
        peak_rss_kb,
        peak_pss_kb,
        processes,
        cpu_per_1000: cpu * 1000.0 / n as f64,
        clamd_cpu_per_1000: clamd_cpu * 1000.0 / n as f64,
    }
}

/// amavisd-new on `port`, virus checks only, re-injecting to `next_hop`.
fn start_amavisd(lab: &Lab, port: u16, servers: usize) -> Proc {
    // One home (and lock file) per instance: amavisd's children serialise
    // accept() on it.
    let home = lab.dir.join(format!("amavis-{port}"));
    for d in ["", "tmp", "db", "quarantine"] {
        std::fs::create_dir_all(home.join(d)).expect("mkdir amavis home");
    }
    let st = Command::new("chown")
        .args(["-R", "amavis:amavis"])
        .arg(&home)
        .status()
        .expect("chown");
    assert!(st.success());
    // Not in the home: amavisd refuses a config in a directory it can write.
    let conf = lab.dir.join(format!("amavisd-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            r#"use strict;
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$QUARANTINEDIR = "$MYHOME/quarantine";
$pid_file = "$MYHOME/amavisd.pid";
$lock_file = "$MYHOME/amavisd.lock";
$daemon_user = 'amavis'; $daemon_group = 'amavis';
$mydomain = 'example.org'; $myhostname = 'mx.example.org';
@local_domains_maps = (['.example.org']);
@mynetworks = qw(127.0.0.0/8 10.0.0.0/8 [::1]);
$inet_socket_port = {port};
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[127.0.0.1]:{next_hop}';
$notify_method = $forward_method;
$max_servers = {servers};
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
$enable_dkim_verification = 0; $enable_dkim_signing = 0;
@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {{}}\n", "{clamd}"],
  qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ]);
@av_scanners_backup = ();
$final_virus_destiny = D_DISCARD;
$virus_quarantine_method = 'local:virus-%m';
$virus_admin = undef;
$do_syslog = 0; $LOGFILE = "$MYHOME/amavis.log"; $log_level = 0;
1;
"#,
            home = home.display(),
            next_hop = lab.postfix.ports.unfiltered,
            servers = servers,
            clamd = lab.clamd.socket.display(),
        ),
    )
    .expect("write amavisd.conf");
    let mut cmd = Command::new("amavisd");
    cmd.arg("-c").arg(&conf).arg("foreground");
    let mut p = Proc::spawn("amavisd", cmd, &home.join("amavisd.out"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = p.pid();
    let up = wait_until(patience(), || {
        // With `$max_servers = 1` amavisd serves from its master process.
        (port_open(addr) && (servers == 1 || children_of(pid).len() >= servers)) || !p.alive()
    });
    assert!(
        up && p.alive(),
        "amavisd did not come up:\n{}",
        p.log_tail(30)
    );
    let mut c = Client::connect(addr).expect("amavisd greets and answers EHLO");
    let _ = c.cmd("QUIT");
    p
}

/// Stops amavisd and every child it had (a child left behind would keep
/// its listening socket and lock).
fn stop_amavisd(mut p: Proc) {
    let children = children_of(p.pid());
    p.stop();
    for c in children {
        if std::path::Path::new(&format!("/proc/{c}")).exists() {
            support::proc::signal_pid(c, "KILL");
        }
    }
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
fn after_queue_vs_amavisd_new() {
    if !Path::new("/usr/sbin/amavisd").exists() {
        eprintln!("SKIPPED: amavisd-new is not installed (apt-get install amavisd-new)");
        return;
    }
    let mut o = LabOptions::new("bench_after_queue");
    o.layout = Layout::AfterQueue;
    let Some(mut lab) = Lab::start(o) else {
        return;
    };
    lab.start_mailpolicyd(POLICY);
    let mp_addr = lab.filter_addr();
    let mp_pid = lab
        .filter_proc()
        .map(|p| p.pid())
        .expect("mailpolicyd runs");
    let clamd_pid = lab.clamd.pid();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let idle_mp = tree_memory(mp_pid);
    let mut idle_am = Vec::new();
    let mut rows = Vec::new();
    let mut id = 0;
    for clients in LEVELS {
        // amavisd-new sized for the level: `$max_servers` = clients.
        let amavis_port = free_port();
        let amavis = start_amavisd(&lab, amavis_port, clients);
        let am_addr = SocketAddr::from(([127, 0, 0, 1], amavis_port));
        idle_am.push((clients, tree_memory(amavis.pid())));
        // Interleaved per level, so both see the same machine load.
        for (name, addr, pid) in [
            ("mailpolicyd", mp_addr, mp_pid),
            ("amavisd-new", am_addr, amavis.pid()),
        ] {
            let f = run_level(name, addr, pid, clamd_pid, clients, id);
            id += 100_000;
            eprintln!(
                "{name} x{clients}: {:.1} msg/s, p50 {:?}, errors {}",
                f.messages as f64 / f.secs,
                f.p50,
                f.errors
            );
            rows.push(f);
        }
        stop_amavisd(amavis);
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let mut out = String::new();
    out.push_str(&format!(
        "idle: mailpolicyd RSS {:.1} MB (PSS {:.1} MB, {} process)",
        kb_to_mb(idle_mp.0),
        kb_to_mb(idle_mp.1),
        idle_mp.2
    ));
    for (servers, (rss, pss, procs)) in &idle_am {
        out.push_str(&format!(
            "; amavisd-new with $max_servers = {servers}: RSS {:.1} MB (PSS {:.1} MB, {procs} processes)",
            kb_to_mb(*rss),
            kb_to_mb(*pss)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "load average before: {}; after: {}\n\n",
        load.trim(),
        load_after.trim()
    ));
    out.push_str("| filter | clients | messages | errors | msg/s | p50 ms | p95 ms | max ms | peak RSS MB | peak PSS MB | processes | filter CPU s/1000 msg | clamd CPU s/1000 msg |\n");
    out.push_str(
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n",
    );
    for f in &rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.2} |\n",
            f.filter,
            f.clients,
            f.messages,
            f.errors,
            f.messages as f64 / f.secs,
            f.p50.as_secs_f64() * 1000.0,
            f.p95.as_secs_f64() * 1000.0,
            f.max.as_secs_f64() * 1000.0,
            kb_to_mb(f.peak_rss_kb),
            kb_to_mb(f.peak_pss_kb),
            f.processes,
            f.cpu_per_1000,
            f.clamd_cpu_per_1000,
        ));
    }
    out.push('\n');
    for pair in rows.chunks(2) {
        if let [m, a] = pair {
            out.push_str(&format!(
                "x{}: throughput {:.1}x amavisd-new's; peak PSS {:.2} of amavisd-new's; filter CPU per message {:.2} of amavisd-new's\n",
                m.clients,
                (m.messages as f64 / m.secs) / (a.messages as f64 / a.secs),
                m.peak_pss_kb as f64 / a.peak_pss_kb.max(1) as f64,
                m.cpu_per_1000 / a.cpu_per_1000.max(f64::MIN_POSITIVE),
            ));
        }
    }
    println!("\n{out}");
    let _ = std::fs::write(
        std::env::temp_dir().join("mailpolicyd-bench-after-queue.md"),
        &out,
    );
}
