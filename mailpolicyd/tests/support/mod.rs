//! The end-to-end lab: a private clamd and Postfix on 127.0.0.1 with a filter (mailpolicyd,
//! or the peer clamav-milter) in between, and the means to observe it from outside — SMTP
//! replies, Maildirs, the queue, the decision log and the quarantine.
//!
//! ```ignore
//! let Some(mut lab) = Lab::start(LabOptions::default()) else { return }; // skipped loudly
//! lab.start_mailpolicyd(POLICY);
//! let out = lab.send(&Envelope::new("s@outside.test", &["alice@example.org"]).client("203.0.113.9"),
//!                    &message("m1").with_text(EICAR).build());
//! assert_eq!(out.decisive().code, 550);
//! ```
//!
//! Needs root and the Debian packages postfix, clamav-daemon, zip (and clamav-milter for the
//! peer); `scripts/test` installs them. Without them a lab test prints a loud SKIPPED banner
//! and returns — unless `CI=true` or `MAILPOLICYD_E2E=require`, where it fails.
//!
//! Every process is our child and is stopped and waited for when the `Lab` drops. The lab's
//! directory is removed then, unless the test panicked or `LAB_KEEP=1` (its path is printed).
#![allow(dead_code)]

pub mod clamd;
pub mod mail;
pub mod postfix;
pub mod proc;
pub mod smtp;

#[allow(unused_imports)]
pub use clamd::*;
#[allow(unused_imports)]
pub use mail::*;
#[allow(unused_imports)]
pub use postfix::{Layout, LOCAL_DOMAIN, OUTSIDE_DOMAIN};
#[allow(unused_imports)]
pub use smtp::{Envelope, Outcome, Reply};

use postfix::Postfix;
use proc::{port_open, wait_until, Proc};
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long a lab waits for something that should happen (a delivery, a log line) before
/// failing with a diagnostic. Not a timed assertion: only a bound on a hang.
pub fn patience() -> Duration {
    let secs = std::env::var("LAB_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    Duration::from_secs(secs)
}

/// What a lab needs, checked before it starts. `extra` names more programs (e.g.
/// `clamav-milter`). Returns false after printing a SKIPPED banner, or panics when skipping
/// is not allowed (`CI=true`, `MAILPOLICYD_E2E=require`).
pub fn prerequisites(test: &str, extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if uid != 0 {
        missing.push("root (Postfix's master and clamd run as root here)".to_string());
    }
    for prog in ["postfix", "postqueue", "clamd", "zip", "unshare", "kill"]
        .iter()
        .chain(extra)
    {
        if !on_path(prog) {
            missing.push(format!("program `{prog}`"));
        }
    }
    if !Path::new("/usr/lib/postfix/sbin/master").exists() {
        missing.push("/usr/lib/postfix/sbin/master".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "end-to-end test `{test}` needs: {}. `scripts/test` installs the packages \
         (postfix clamav-daemon clamdscan clamav-milter zip) when run as root on Debian/Ubuntu.",
        missing.join(", ")
    );
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("MAILPOLICYD_E2E").is_ok_and(|v| v == "require");
    if required {
        panic!("{msg} (a skip is a failure under CI=true / MAILPOLICYD_E2E=require)");
    }
    eprintln!("\n======== SKIPPED ========\n{msg}\n=========================\n");
    false
}

fn on_path(prog: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(prog).is_file())
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The test's name (for the directory and messages).
    pub name: String,
    pub layout: Layout,
    /// Extra main.cf lines.
    pub postfix_extra: String,
    /// Extra clamd `.ndb` signatures (name, bytes matched anywhere).
    pub extra_signatures: Vec<(String, Vec<u8>)>,
    /// More programs the test needs (e.g. `clamav-milter`).
    pub needs: Vec<&'static str>,
}

impl LabOptions {
    pub fn new(name: &str) -> Self {
        LabOptions {
            name: name.to_string(),
            layout: Layout::BeforeQueue,
            postfix_extra: String::new(),
            extra_signatures: Vec::new(),
            needs: Vec::new(),
        }
    }
}

/// Which filter is plugged into Postfix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Mailpolicyd,
    ClamavMilter,
}

/// mailpolicyd's config as the lab writes it (the SPEC's TOML keys). Paths live in the lab.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The policy source (written to `site.policy`).
    pub policy: String,
    /// `[clamd] address`; None: the lab's clamd over its Unix socket.
    pub clamd_address: Option<String>,
    pub clamd_timeout_ms: u64,
    /// Write `[clamd] spool_dir` (ALLMATCHSCAN on a private copy: every detection); false
    /// leaves it out (INSTREAM: the first detection only).
    pub spool: bool,
    pub local_domains: Vec<String>,
    pub mynetworks: Vec<String>,
    /// None: leave the key out (amavisd-new's default list applies).
    pub forging_viruses: Option<Vec<String>>,
    pub notify_from: String,
    /// `[notify] submit`; None: the lab's unfiltered smtpd.
    pub notify_submit: Option<String>,
    /// Raw TOML appended at the end (inside the last table: start it with a `[table]`).
    pub extra_toml: String,
}

impl DaemonConfig {
    pub fn new(policy: &str) -> Self {
        DaemonConfig {
            policy: policy.to_string(),
            clamd_address: None,
            clamd_timeout_ms: 30_000,
            spool: true,
            local_domains: vec![LOCAL_DOMAIN.to_string()],
            mynetworks: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into(), "::1/128".into()],
            forging_viruses: None,
            notify_from: format!("postmaster@{LOCAL_DOMAIN}"),
            notify_submit: None,
            extra_toml: String::new(),
        }
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A quarantined message as found on disk.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    pub bucket: String,
    pub id: String,
    pub eml: Vec<u8>,
    pub meta: Value,
}

/// One lab: clamd + Postfix (+ a filter). See the module docs.
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    // Drop order: filter, Postfix, clamd (fields drop in declaration order).
    filter: Option<Proc>,
    pub filter_kind: Option<FilterKind>,
    pub postfix: Postfix,
    pub clamd: Clamd,
    pub config: Option<DaemonConfig>,
}

impl Lab {
    /// Starts clamd and Postfix (no filter yet: mail to the smtpd gets the
    /// `milter_default_action` until one is started). None when skipped.
    pub fn start(opts: LabOptions) -> Option<Lab> {
        if !prerequisites(&opts.name, &opts.needs) {
            return None;
        }
        let dir = std::env::temp_dir().join(proc::unique_name(&format!(
            "mailpolicyd-lab-{}",
            opts.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir lab dir");
        // Postfix (user postfix) and virtual(8) (uid 65534) traverse it.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod lab dir");
        let clamd = Clamd::start(&dir, &opts.extra_signatures);
        let postfix = Postfix::start(&dir, opts.layout, &opts.postfix_extra);
        Some(Lab {
            name: opts.name,
            dir,
            filter: None,
            filter_kind: None,
            postfix,
            clamd,
            config: None,
        })
    }

    /// A before-queue lab named `name`.
    pub fn before_queue(name: &str) -> Option<Lab> {
        Lab::start(LabOptions::new(name))
    }

    /// The milter socket / content-filter address Postfix uses (TCP layouts).
    pub fn filter_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.postfix.ports.filter))
    }

    /// The milter's address in Postfix syntax (`inet:127.0.0.1:P` or `unix:PATH`).
    pub fn milter_listen(&self) -> String {
        match self.postfix.layout {
            Layout::BeforeQueueUnix => {
                format!("unix:{}", postfix::milter_socket(&self.dir).display())
            }
            _ => format!("inet:127.0.0.1:{}", self.postfix.ports.filter),
        }
    }

    /// Someone accepts connections where Postfix expects the filter.
    fn filter_listening(&self) -> bool {
        match self.postfix.layout {
            Layout::BeforeQueueUnix => {
                std::os::unix::net::UnixStream::connect(postfix::milter_socket(&self.dir)).is_ok()
            }
            _ => port_open(self.filter_addr()),
        }
    }

    // ---- filters -------------------------------------------------------------------------

    /// Starts the peer, clamav-milter (reject infected, defer when clamd fails), on the
    /// milter port.
    pub fn start_clamav_milter(&mut self) {
        assert!(self.filter.is_none(), "a filter is already running");
        let conf = self.dir.join("clamav-milter.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\n\
                 MilterSocket {listen}\n\
                 ClamdSocket unix:{sock}\n\
                 OnInfected Reject\n\
                 OnFail Defer\n\
                 MaxFileSize 40M\n\
                 LogFile {dir}/clamav-milter.log\n\
                 LogInfected Basic\n\
                 TemporaryDirectory {dir}\n",
                listen = match self.milter_listen().split_once(':') {
                    Some(("inet", hp)) => {
                        let (h, p) = hp.rsplit_once(':').unwrap_or((hp, ""));
                        format!("inet:{p}@{h}")
                    }
                    _ => self.milter_listen(),
                },
                sock = self.clamd.socket.display(),
                dir = self.dir.display(),
            ),
        )
        .expect("write clamav-milter.conf");
        let mut cmd = Command::new("clamav-milter");
        cmd.arg("-c").arg(&conf);
        let p = Proc::spawn("clamav-milter", cmd, &self.dir.join("clamav-milter.out"));
        self.filter_kind = Some(FilterKind::ClamavMilter);
        self.await_filter(p);
    }

    /// Paths of the daemon's files in this lab.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("mailpolicyd.toml")
    }
    pub fn policy_path(&self) -> PathBuf {
        self.dir.join("site.policy")
    }
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }
    pub fn decisions_path(&self) -> PathBuf {
        self.dir.join("decisions.jsonl")
    }
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }
    pub fn daemon_log_path(&self) -> PathBuf {
        self.dir.join("mailpolicyd.log")
    }

    /// Writes `cfg` as mailpolicyd's TOML config and its policy file.
    pub fn write_config(&mut self, cfg: &DaemonConfig) {
        std::fs::create_dir_all(self.spool_dir()).expect("mkdir spool");
        std::fs::write(self.policy_path(), &cfg.policy).expect("write policy");
        let clamd = cfg
            .clamd_address
            .clone()
            .unwrap_or_else(|| format!("unix:{}", self.clamd.socket.display()));
        let mut t = String::new();
        t.push_str(&format!(
            "policy = {}\n",
            toml_str(&self.policy_path().display().to_string())
        ));
        match self.postfix.layout {
            Layout::BeforeQueue | Layout::BeforeQueueUnix => t.push_str(&format!(
                "[milter]\nlisten = {}\n",
                toml_str(&self.milter_listen())
            )),
            Layout::AfterQueue => t.push_str(&format!(
                "[smtp]\nlisten = {}\nnext_hop = {}\n",
                toml_str(&format!("127.0.0.1:{}", self.postfix.ports.filter)),
                toml_str(&format!("127.0.0.1:{}", self.postfix.ports.unfiltered))
            )),
        }
        t.push_str(&format!(
            "[clamd]\naddress = {}\ntimeout_ms = {}\n",
            toml_str(&clamd),
            cfg.clamd_timeout_ms,
        ));
        if cfg.spool {
            t.push_str(&format!(
                "spool_dir = {}\n",
                toml_str(&self.spool_dir().display().to_string())
            ));
        }
        t.push_str(&format!(
            "[site]\nlocal_domains = {}\nmynetworks = {}\n",
            toml_list(&cfg.local_domains),
            toml_list(&cfg.mynetworks)
        ));
        if let Some(f) = &cfg.forging_viruses {
            t.push_str(&format!("forging_viruses = {}\n", toml_list(f)));
        }
        t.push_str(&format!(
            "[quarantine]\ndir = {}\n",
            toml_str(&self.quarantine_dir().display().to_string())
        ));
        t.push_str(&format!(
            "[notify]\nsubmit = {}\nfrom = {}\n",
            toml_str(
                &cfg.notify_submit
                    .clone()
                    .unwrap_or_else(|| format!("inet:127.0.0.1:{}", self.postfix.ports.unfiltered))
            ),
            toml_str(&cfg.notify_from)
        ));
        t.push_str(&format!(
            "[log]\ndecisions = {}\n",
            toml_str(&self.decisions_path().display().to_string())
        ));
        t.push_str(&cfg.extra_toml);
        std::fs::write(self.config_path(), t).expect("write mailpolicyd.toml");
        self.config = Some(cfg.clone());
    }

    /// Writes the default config around `policy` and starts mailpolicyd.
    pub fn start_mailpolicyd(&mut self, policy: &str) {
        self.start_mailpolicyd_with(&DaemonConfig::new(policy));
    }

    /// Writes `cfg` and starts `mailpolicyd run --config FILE`; waits until it listens.
    pub fn start_mailpolicyd_with(&mut self, cfg: &DaemonConfig) {
        self.write_config(cfg);
        self.restart_mailpolicyd();
    }

    /// Starts mailpolicyd again with the config already written.
    pub fn restart_mailpolicyd(&mut self) {
        assert!(self.filter.is_none(), "a filter is already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailpolicyd"));
        cmd.arg("run").arg("--config").arg(self.config_path());
        let p = Proc::spawn("mailpolicyd", cmd, &self.daemon_log_path());
        self.filter_kind = Some(FilterKind::Mailpolicyd);
        self.await_filter(p);
    }

    fn await_filter(&mut self, mut p: Proc) {
        let up = wait_until(patience(), || self.filter_listening() || !p.alive());
        if !up || !p.alive() {
            let status = p.try_status();
            panic!(
                "{} did not come up on {} (exit: {status:?}):\n{}",
                p.name,
                self.milter_listen(),
                p.log_tail(40)
            );
        }
        self.filter = Some(p);
    }

    /// The running filter's process (None when stopped).
    pub fn filter_proc(&mut self) -> Option<&mut Proc> {
        self.filter.as_mut()
    }

    /// SIGTERM and wait (grace 40 s: the SPEC's 30 s for open sessions, plus slack).
    pub fn stop_filter(&mut self) -> Option<std::process::ExitStatus> {
        self.filter
            .take()
            .and_then(|mut p| p.stop_with("TERM", Duration::from_secs(40)))
    }

    /// SIGKILL and wait.
    pub fn kill_filter(&mut self) {
        if let Some(mut p) = self.filter.take() {
            p.kill();
        }
    }

    /// Sends a signal to the filter (`HUP`, `STOP`, `CONT`, ...).
    pub fn signal_filter(&self, sig: &str) {
        self.filter.as_ref().expect("no filter running").signal(sig);
    }

    pub fn filter_alive(&mut self) -> bool {
        self.filter.as_mut().is_some_and(Proc::alive)
    }

    /// The daemon's main log (stderr) so far.
    pub fn daemon_log(&self) -> String {
        let p = match self.filter_kind {
            Some(FilterKind::ClamavMilter) => self.dir.join("clamav-milter.log"),
            _ => self.daemon_log_path(),
        };
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    }

    /// Runs `mailpolicyd ARGS... --config FILE` (for `check` and `quarantine`).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mailpolicyd"))
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .output()
            .expect("run mailpolicyd")
    }

    // ---- mail in ---------------------------------------------------------------------------

    /// Sends one message to the filtered smtpd; every reply is in the outcome. Panics (with
    /// the lab's logs) on a connection failure.
    pub fn send(&self, env: &Envelope, msg: &[u8]) -> Outcome {
        self.try_send(env, msg).unwrap_or_else(|e| {
            panic!(
                "SMTP to {} failed: {e}\n{}",
                self.postfix.addr(),
                self.diagnostics()
            )
        })
    }

    pub fn try_send(&self, env: &Envelope, msg: &[u8]) -> std::io::Result<Outcome> {
        smtp::send(self.postfix.addr(), env, msg)
    }

    /// Sends through the unfiltered port (as a release or notice would arrive).
    pub fn send_unfiltered(&self, env: &Envelope, msg: &[u8]) -> Outcome {
        smtp::send(self.postfix.unfiltered_addr(), env, msg)
            .unwrap_or_else(|e| panic!("SMTP (unfiltered) failed: {e}"))
    }

    // ---- mail out --------------------------------------------------------------------------

    /// The Maildir of `addr` (a local user, or any address of the outside domain: one
    /// catch-all box).
    pub fn mailbox_dir(&self, addr: &str) -> PathBuf {
        let (user, domain) = addr.rsplit_once('@').expect("address with @");
        let mail = self.dir.join("mail");
        if domain.eq_ignore_ascii_case(OUTSIDE_DOMAIN) {
            mail.join(OUTSIDE_DOMAIN).join("catchall")
        } else {
            mail.join(domain).join(user)
        }
    }

    /// Everything delivered to `addr` so far.
    pub fn mailbox(&self, addr: &str) -> Vec<Vec<u8>> {
        maildir_messages(&self.mailbox_dir(addr))
    }

    /// Messages in `addr`'s box containing `needle`.
    pub fn mailbox_with(&self, addr: &str, needle: &str) -> Vec<Vec<u8>> {
        self.mailbox(addr)
            .into_iter()
            .filter(|m| contains(m, needle.as_bytes()))
            .collect()
    }

    /// Waits until `addr` holds at least `n` messages containing `needle`; returns them.
    pub fn wait_mailbox(&self, addr: &str, needle: &str, n: usize) -> Vec<Vec<u8>> {
        let ok = wait_until(patience(), || self.mailbox_with(addr, needle).len() >= n);
        if !ok {
            panic!(
                "waited for {n} message(s) with {needle:?} in {addr}'s mailbox; have {}\n{}",
                self.mailbox_with(addr, needle).len(),
                self.diagnostics()
            );
        }
        self.mailbox_with(addr, needle)
    }

    /// Waits until Postfix's queue is empty (everything delivered or bounced).
    pub fn wait_queue_empty(&self) {
        let ok = wait_until(patience(), || self.postfix.queue().is_empty());
        if !ok {
            panic!(
                "Postfix queue not empty: {:?}\n{}",
                self.postfix.queue(),
                self.diagnostics()
            );
        }
    }

    /// The decision log so far (one JSON value per line).
    pub fn decisions(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.decisions_path()).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("decision log line is not JSON ({e}): {l:?}"))
            })
            .collect()
    }

    /// Waits until the decision log holds at least `n` lines; returns them all.
    pub fn wait_decisions(&self, n: usize) -> Vec<Value> {
        let ok = wait_until(patience(), || {
            std::fs::read_to_string(self.decisions_path())
                .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() >= n)
                .unwrap_or(false)
        });
        if !ok {
            panic!(
                "waited for {n} decision log line(s); have {}\n{}",
                self.decisions().len(),
                self.diagnostics()
            );
        }
        self.decisions()
    }

    /// The decision log entry whose recipients include `rcpt` and whose sender is `sender`,
    /// the last one if several.
    pub fn decision_for(&self, sender: &str, rcpt: &str) -> Option<Value> {
        self.decisions().into_iter().rev().find(|d| {
            d["sender"] == sender
                && d["recipients"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["recipient"] == rcpt))
        })
    }

    /// Every quarantined message: `dir/BUCKET/ID.eml` with its `ID.json`.
    pub fn quarantine(&self) -> Vec<QuarantineEntry> {
        let mut out = Vec::new();
        let Ok(buckets) = std::fs::read_dir(self.quarantine_dir()) else {
            return out;
        };
        for b in buckets.flatten() {
            if !b.path().is_dir() {
                continue;
            }
            let bucket = b.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(b.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "eml") {
                    let id = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let eml = std::fs::read(&p).unwrap_or_default();
                    let meta = std::fs::read(p.with_extension("json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or(Value::Null);
                    out.push(QuarantineEntry {
                        bucket: bucket.clone(),
                        id,
                        eml,
                        meta,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.bucket, &a.id).cmp(&(&b.bucket, &b.id)));
        out
    }

    /// Quarantined copies containing `needle`.
    pub fn quarantined_with(&self, needle: &str) -> Vec<QuarantineEntry> {
        self.quarantine()
            .into_iter()
            .filter(|q| contains(&q.eml, needle.as_bytes()))
            .collect()
    }

    /// The tails of every log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut s = format!("---- lab {} at {}\n", self.name, self.dir.display());
        for (name, path) in [
            ("postfix.log", self.postfix.log_path()),
            ("mailpolicyd.log", self.daemon_log_path()),
            ("clamav-milter.log", self.dir.join("clamav-milter.log")),
            ("clamd.log", self.dir.join("clamd.log")),
            ("decisions.jsonl", self.decisions_path()),
        ] {
            if path.exists() {
                s.push_str(&format!("---- {name}:\n{}\n", proc::tail(&path, 25)));
            }
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut p) = self.filter.take() {
            p.stop_with("TERM", Duration::from_secs(10));
        }
        self.postfix.stop();
        self.clamd.stop();
        let keep = std::thread::panicking() || std::env::var("LAB_KEEP").is_ok_and(|v| v == "1");
        if keep {
            eprintln!("lab {}: kept {}", self.name, self.dir.display());
        } else {
            for _ in 0..5 {
                if std::fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
