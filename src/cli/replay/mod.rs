//! `policy replay FILE.policy LOG...`: what a policy would have done to the
//! mail recorded in amavisd-new's main log and mailpolicyd's decision log.
//!
//! Each log is read in large blocks (gzip'd files transparently) and cut into
//! lines with `memchr`; a line is parsed in place, its recipients' facts are
//! handed to the policy through a borrowing [`FactProvider`] and the results
//! counted in a small table keyed by (old, new, direction, category). Nothing
//! is allocated per line except for the few lines kept as examples, so memory
//! does not grow with the length of the logs.

mod amavis;
mod decisions;

use mailpolicy::{
    AlertTarget, Decision, Direction, Disposition, FactId, FactKey, FactProvider, FactValue,
    Policy, Scanner,
};
use memchr::memchr;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How many unreadable lines are reported (all are counted).
const UNREADABLE_SAMPLES: usize = 5;
/// Split lines waiting for their continuation, at most.
const MAX_PENDING: usize = 64;
/// Logids remembered to count a message's `Passed` and `Blocked` entries once.
const RECENT_IDS: usize = 16;
/// Read size.
const BLOCK: usize = 1 << 20;
/// Longest line read; longer ones are unreadable.
const MAX_LINE: usize = 4 << 20;
/// Longest joined split entry.
const MAX_JOINED: usize = 1 << 20;
/// Log text shown per example, at most (bytes).
const SHOWN_TEXT: usize = 400;

/// What the command line asked for.
pub struct Options {
    /// Example lines shown per change.
    pub show: usize,
    /// `--forging`: which virus names forge their senders (unknown without it).
    pub forging: Option<regex::RegexSet>,
    /// The limits the policy is parsed with (`--max-eval-steps`).
    pub limits: mailpolicy::Limits,
}

/// A recipient of a message, with what the log says happened to it.
struct Recipient<'a> {
    address: Cow<'a, str>,
    direction: Option<Direction>,
    old: Disposition,
    old_quarantine: bool,
}

/// The facts of one recipient, borrowed from the log line.
#[derive(Clone, Copy)]
struct LineFacts<'a> {
    scanner: Option<Scanner>,
    virus: Option<&'a [String]>,
    forges: Option<bool>,
    client_ip: Option<IpAddr>,
    sender: Option<&'a str>,
    recipient: &'a str,
    direction: Option<Direction>,
    authenticated: Option<bool>,
    size: Option<i64>,
    spam_score: Option<f64>,
}

impl FactProvider for LineFacts<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        let text = |s| FactValue::Str(Cow::Borrowed(s));
        match key.id {
            FactId::DIRECTION => self.direction.map(FactValue::Direction),
            FactId::SCANNER => self.scanner.map(FactValue::Scanner),
            FactId::VIRUS => self.virus.map(|v| FactValue::Set(Cow::Borrowed(v))),
            FactId::FORGES_SENDER => self.forges.map(FactValue::Bool),
            FactId::CLIENT_IP => self.client_ip.map(FactValue::Ip),
            FactId::SENDER => self.sender.map(text),
            FactId::RECIPIENT => Some(text(self.recipient)),
            FactId::AUTHENTICATED => self.authenticated.map(FactValue::Bool),
            FactId::SIZE => self.size.map(FactValue::Int),
            FactId::SPAM_SCORE => self.spam_score.map(FactValue::Number),
            _ => None,
        }
    }
}

/// Old → new for one direction and category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    old: Disposition,
    new: Disposition,
    direction: Option<Direction>,
    category: &'static str,
}

/// Where a line is: file index and line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At {
    file: usize,
    line: u64,
}

struct Example {
    at: At,
    recipient: String,
    rule: Option<String>,
    text: String,
}

struct Group {
    count: u64,
    first: At,
    examples: Vec<Example>,
}

/// The safety figures (recipients).
#[derive(Debug, Default, Clone, Copy)]
struct Safety {
    infected_pass: u64,
    backscatter: u64,
    discard_without_quarantine: u64,
    scanner_failure_pass: u64,
    outbound_leaves: u64,
}

/// What happened to one recipient, for the safety figures.
struct Outcome {
    disposition: Disposition,
    quarantined: bool,
    alerts_sender: bool,
}

impl Safety {
    fn count(&mut self, f: &LineFacts<'_>, o: &Outcome) {
        let infected = f.scanner == Some(Scanner::Infected);
        let d = o.disposition;
        if infected && d == Disposition::Pass {
            self.infected_pass += 1;
        }
        if infected && f.forges != Some(false) && (d == Disposition::Bounce || o.alerts_sender) {
            self.backscatter += 1;
        }
        if d == Disposition::Discard && !o.quarantined {
            self.discard_without_quarantine += 1;
        }
        if matches!(f.scanner, Some(Scanner::Error | Scanner::Timeout)) && d == Disposition::Pass {
            self.scanner_failure_pass += 1;
        }
        if infected
            && matches!(f.direction, Some(Direction::Outbound | Direction::Internal))
            && matches!(
                d,
                Disposition::Pass | Disposition::Bounce | Disposition::Reject
            )
        {
            self.outbound_leaves += 1;
        }
    }

    fn rows(&self) -> [(&'static str, u64); 5] {
        [
            ("infected_pass", self.infected_pass),
            ("backscatter", self.backscatter),
            (
                "discard_without_quarantine",
                self.discard_without_quarantine,
            ),
            ("scanner_failure_pass", self.scanner_failure_pass),
            ("outbound_leaves", self.outbound_leaves),
        ]
    }
}

/// A split amavis entry waiting for its continuation lines.
struct Pending {
    logid: Vec<u8>,
    at: At,
    text: Vec<u8>,
}

/// The replay's running totals.
struct Replay<'p> {
    policy: &'p Policy,
    options: Options,
    files: Vec<String>,
    messages: u64,
    recipients: u64,
    unreadable: u64,
    /// Messages that named more viruses than `Limits::max_set_names`: the
    /// policy saw the first ones, as mailpolicyd gives it.
    names_cut: u64,
    samples: Vec<(At, String, String)>,
    groups: HashMap<Key, Group>,
    safety_new: Safety,
    safety_old: Safety,
    pending: Vec<Pending>,
    recent: [([u8; 32], u8); RECENT_IDS],
    recent_at: usize,
    lines: u64,
    /// Scratch space for a message's virus names, reused (no allocation per line).
    names: Names,
}

/// A reusable list of names: slots keep their capacity between messages.
#[derive(Default)]
struct Names {
    slots: Vec<String>,
    used: usize,
}

impl Names {
    /// Holds the first `max` of `names` afterwards, duplicates dropped (as
    /// mailpolicyd gives a policy clamd's first `Limits::max_set_names`
    /// detections); whether there were more. A 4 MiB log line can name
    /// 100,000 viruses: each recipient's evaluation reads every name, and
    /// dropping duplicates compares each name with those kept.
    fn fill<S: AsRef<str>>(&mut self, names: impl Iterator<Item = S>, max: usize) -> bool {
        self.used = 0;
        let mut names = names.peekable();
        let mut taken = 0usize;
        while taken < max {
            let Some(n) = names.next() else {
                break;
            };
            taken += 1;
            let n = n.as_ref();
            if self.get().iter().any(|x| x == n) {
                continue;
            }
            match self.slots.get_mut(self.used) {
                Some(slot) => {
                    slot.clear();
                    slot.push_str(n);
                }
                None => self.slots.push(n.to_owned()),
            }
            self.used += 1;
        }
        names.peek().is_some()
    }

    fn get(&self) -> &[String] {
        self.slots.get(..self.used).unwrap_or(&[])
    }
}

/// Runs the replay; returns the exit code.
pub fn run(
    policy_path: &Path,
    logs: &[PathBuf],
    json_out: bool,
    options: Options,
) -> Result<i32, String> {
    let bytes = super::read(policy_path)?;
    let policy = match super::parse(&bytes, &options.limits) {
        Ok(p) => p,
        Err(d) => {
            super::print_errors(policy_path, &d);
            return Ok(super::EXIT_ERRORS);
        }
    };
    // Every log must open before any work is done.
    let mut total = 0u64;
    for log in logs {
        if log.as_os_str() == "-" {
            continue;
        }
        let meta =
            std::fs::metadata(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
        if meta.is_dir() {
            return Err(format!("cannot read {}: is a directory", log.display()));
        }
        total += meta.len();
    }
    let bar = progress_bar(total, logs.iter().any(|l| l.as_os_str() == "-"));
    let mut replay = Replay::new(&policy, options, logs);
    for (i, log) in logs.iter().enumerate() {
        replay.file(i, log, bar.as_ref())?;
    }
    replay.finish();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json_out {
        super::outln!(
            "{}",
            serde_json::to_string_pretty(&replay.json()).unwrap_or_default()
        );
    } else {
        super::out!("{}", replay.human(policy_path));
    }
    Ok(0)
}

fn progress_bar(total: u64, stdin: bool) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = if stdin {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(total)
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} replaying [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
    )
    .ok()?
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}

/// Counts the bytes read from a file into the progress bar.
struct Counted<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Calls `f(line, too_long)` for every line of `r` (without `\n`/`\r\n`);
/// returns the error that stopped reading, if any.
fn for_each_line(mut r: impl Read, mut f: impl FnMut(&[u8], bool)) -> io::Result<()> {
    let mut buf = vec![0u8; 2 * BLOCK];
    let mut filled = 0;
    let mut skipping = false;
    loop {
        if filled == buf.len() {
            if buf.len() < MAX_LINE {
                buf.resize(buf.len() * 2, 0);
            } else {
                // An endless line: report it once, drop it up to its newline.
                skipping = true;
                filled = 0;
            }
        }
        let n = match r.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if skipping {
                f(&[], true);
            } else if filled > 0 {
                f(trim_cr(&buf[..filled]), false);
            }
            return Ok(());
        }
        let total = filled + n;
        let mut start = 0;
        let mut search = filled;
        while let Some(i) = memchr(b'\n', &buf[search..total]) {
            let end = search + i;
            if skipping {
                skipping = false;
                f(&[], true);
            } else {
                f(trim_cr(&buf[start..end]), false);
            }
            start = end + 1;
            search = start;
        }
        buf.copy_within(start..total, 0);
        filled = total - start;
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl<'p> Replay<'p> {
    fn new(policy: &'p Policy, options: Options, logs: &[PathBuf]) -> Replay<'p> {
        Replay {
            policy,
            options,
            files: logs.iter().map(|l| l.display().to_string()).collect(),
            messages: 0,
            recipients: 0,
            unreadable: 0,
            names_cut: 0,
            samples: Vec::new(),
            groups: HashMap::new(),
            safety_new: Safety::default(),
            safety_old: Safety::default(),
            pending: Vec::new(),
            recent: [([0; 32], 0); RECENT_IDS],
            recent_at: 0,
            lines: 0,
            names: Names::default(),
        }
    }

    fn file(
        &mut self,
        index: usize,
        path: &Path,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(), String> {
        let name = path.display();
        let raw: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?)
        };
        let mut reader = BufReader::with_capacity(
            BLOCK,
            Counted {
                inner: raw,
                bar: bar.cloned(),
            },
        );
        let magic = reader
            .fill_buf()
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        let gz = magic.starts_with(&[0x1f, 0x8b]);
        if let Some(bar) = bar {
            bar.set_message(self.files.get(index).cloned().unwrap_or_default());
        }
        let mut line_no = 0u64;
        let result = if gz {
            for_each_line(flate2::bufread::MultiGzDecoder::new(reader), |l, long| {
                line_no += 1;
                self.line(
                    At {
                        file: index,
                        line: line_no,
                    },
                    l,
                    long,
                );
            })
        } else {
            for_each_line(reader, |l, long| {
                line_no += 1;
                self.line(
                    At {
                        file: index,
                        line: line_no,
                    },
                    l,
                    long,
                );
            })
        };
        if let Err(e) = result {
            // A damaged file (a cut gzip stream) ends that file, not the run.
            let what = if gz { "gzip data" } else { "file" };
            self.unreadable(
                At {
                    file: index,
                    line: line_no + 1,
                },
                format!("the rest of the {what} could not be read: {e}"),
                b"",
            );
        }
        Ok(())
    }

    fn unreadable(&mut self, at: At, reason: impl Into<String>, line: &[u8]) {
        self.unreadable += 1;
        if self.samples.len() < UNREADABLE_SAMPLES {
            self.samples.push((at, reason.into(), shown(line)));
        }
    }

    fn line(&mut self, at: At, line: &[u8], too_long: bool) {
        self.lines += 1;
        if too_long {
            self.unreadable(at, format!("longer than {} MiB", MAX_LINE >> 20), b"");
            return;
        }
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        if line[0] == b'{' {
            self.decision_log(at, line);
            return;
        }
        match amavis::classify(line) {
            amavis::Line::Other | amavis::Line::Skip => {}
            amavis::Line::NoProgram => {
                self.unreadable(at, "neither a syslog line nor a decision-log object", line)
            }
            amavis::Line::Entry { logid, text } => self.amavis(at, logid, text),
            amavis::Line::SplitStart { logid, text } => {
                if self.pending.len() >= MAX_PENDING {
                    let old = self.pending.remove(0);
                    self.unreadable(
                        old.at,
                        "a split entry whose continuation never came",
                        &old.text,
                    );
                }
                let text = text.strip_suffix(b"...").unwrap_or(text);
                self.pending.push(Pending {
                    logid: logid.to_vec(),
                    at,
                    text: text.to_vec(),
                });
            }
            amavis::Line::Continuation { logid, text } => {
                let Some(i) = self.pending.iter().position(|p| p.logid == logid) else {
                    return; // the continuation of a line that was no main entry
                };
                let more = text.ends_with(b"...");
                let text = if more { &text[..text.len() - 3] } else { text };
                let Some(p) = self.pending.get_mut(i) else {
                    return;
                };
                if p.text.len() + text.len() > MAX_JOINED {
                    let p = self.pending.remove(i);
                    self.unreadable(p.at, "a split entry longer than 1 MiB", &p.text);
                    return;
                }
                p.text.extend_from_slice(text);
                if !more {
                    let p = self.pending.remove(i);
                    self.amavis(p.at, &p.logid, &p.text);
                }
            }
        }
    }

    fn finish(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.unreadable(p.at, "a split entry whose continuation never came", &p.text);
        }
    }

    /// Whether `logid` starts a message not seen just before (a message's
    /// `Passed` and `Blocked` entries share their logid).
    fn new_message(&mut self, logid: &[u8]) -> bool {
        let n = logid.len().min(32);
        let id = &logid[..n];
        if self
            .recent
            .iter()
            .any(|(b, len)| usize::from(*len) == n && &b[..n] == id)
        {
            return false;
        }
        let slot = &mut self.recent[self.recent_at % RECENT_IDS];
        slot.0[..n].copy_from_slice(id);
        slot.1 = n as u8;
        self.recent_at += 1;
        true
    }

    fn amavis(&mut self, at: At, logid: &[u8], text: &[u8]) {
        let entry = match amavis::parse_entry(text) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(reason) => {
                self.unreadable(at, reason, text);
                return;
            }
        };
        if self.new_message(logid) {
            self.messages += 1;
        }
        let scanner = amavis::scanner_of(entry.category);
        let infected = scanner == Scanner::Infected;
        // `virus`: the names of an INFECTED entry; the empty set for mail
        // amavisd scanned and found no virus in; unknown when it could not scan.
        let mut names = std::mem::take(&mut self.names);
        let known = match scanner {
            Scanner::Infected => {
                let cut = names.fill(
                    amavis::names(entry.names).map(|n| String::from_utf8_lossy(n)),
                    self.policy.limits().max_set_names,
                );
                self.names_cut += u64::from(cut);
                true
            }
            Scanner::Clean => {
                names.fill(std::iter::empty::<&str>(), 0);
                true
            }
            _ => false,
        };
        let forges = if infected {
            self.forges(amavis::names(entry.names))
        } else {
            None
        };
        let sender = String::from_utf8_lossy(entry.sender);
        let recipients = amavis::recipients(entry.recipients).map(|r| Recipient {
            address: String::from_utf8_lossy(r),
            direction: entry.direction,
            old: entry.old,
            old_quarantine: entry.quarantined,
        });
        let facts = LineFacts {
            scanner: Some(scanner),
            virus: known.then(|| names.get()),
            forges,
            client_ip: entry.client_ip,
            sender: Some(&sender),
            recipient: "",
            direction: None,
            authenticated: None,
            size: entry.size,
            spam_score: entry.spam_score,
        };
        self.message(at, entry.category, facts, recipients, text);
        self.names = names;
    }

    fn decision_log(&mut self, at: At, line: &[u8]) {
        let logged = match decisions::parse(line) {
            Ok(l) => l,
            Err(reason) => {
                self.unreadable(at, reason, line);
                return;
            }
        };
        let scanner = match logged.scanner.as_deref() {
            None => None,
            Some(s) => match Scanner::ALL.iter().find(|x| x.as_str() == s) {
                Some(x) => Some(*x),
                None => {
                    self.unreadable(at, format!("unknown scanner result {s:?}"), line);
                    return;
                }
            },
        };
        let mut recipients = Vec::with_capacity(logged.recipients.len());
        for r in &logged.recipients {
            let direction = match r.direction.as_deref() {
                None => None,
                Some(d) => match Direction::ALL.iter().find(|x| x.as_str() == d) {
                    Some(x) => Some(*x),
                    None => {
                        self.unreadable(at, format!("unknown direction {d:?}"), line);
                        return;
                    }
                },
            };
            let Some(old) = disposition(&r.disposition) else {
                self.unreadable(at, format!("unknown disposition {:?}", r.disposition), line);
                return;
            };
            recipients.push(Recipient {
                address: Cow::Borrowed(r.recipient.as_ref()),
                direction,
                old,
                old_quarantine: r.quarantine.is_some(),
            });
        }
        let client_ip = match logged.client_ip.as_deref() {
            None => None,
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.unreadable(at, format!("bad client_ip {ip:?}"), line);
                    return;
                }
            },
        };
        let forges = match &logged.virus {
            Some(names) => self.forges(names.iter().map(str::as_bytes)),
            None => None,
        };
        let category = match scanner {
            Some(Scanner::Clean) => "CLEAN",
            Some(Scanner::Infected) => "INFECTED",
            Some(Scanner::Encrypted) => "UNCHECKED-ENCRYPTED",
            Some(Scanner::Error | Scanner::Timeout) => "UNCHECKED",
            None => "UNKNOWN",
        };
        self.messages += 1;
        // mailpolicyd logs `"virus": []` also when it did not scan (scanner
        // null, error, timeout): the set is known only for a scan that ran.
        let scanned = matches!(
            scanner,
            Some(Scanner::Clean | Scanner::Infected | Scanner::Encrypted)
        );
        let mut names = std::mem::take(&mut self.names);
        let virus_known = match &logged.virus {
            Some(v) if scanned => {
                let cut = names.fill(v.iter(), self.policy.limits().max_set_names);
                self.names_cut += u64::from(cut);
                true
            }
            _ => false,
        };
        let facts = LineFacts {
            scanner,
            virus: virus_known.then(|| names.get()),
            forges,
            client_ip,
            sender: logged.sender.as_deref(),
            recipient: "",
            direction: None,
            authenticated: logged.authenticated,
            size: logged.size,
            spam_score: logged.spam_score,
        };
        self.message(at, category, facts, recipients.into_iter(), line);
        self.names = names;
    }

    /// `forges_sender` as mailpolicyd derives it: unknown without `--forging`
    /// or without names; true when any name matches.
    fn forges<'n>(&self, mut names: impl Iterator<Item = &'n [u8]>) -> Option<bool> {
        let set = self.options.forging.as_ref()?;
        let mut any = false;
        let mut forges = false;
        for n in names.by_ref() {
            any = true;
            forges |= set.is_match(&String::from_utf8_lossy(n));
        }
        any.then_some(forges)
    }

    fn message<'a>(
        &mut self,
        at: At,
        category: &'static str,
        facts: LineFacts<'a>,
        recipients: impl Iterator<Item = Recipient<'a>>,
        text: &[u8],
    ) {
        for r in recipients {
            self.recipients += 1;
            let facts = LineFacts {
                recipient: &r.address,
                direction: r.direction,
                ..facts
            };
            let decision = self.policy.evaluate_lazy(&facts);
            let new = outcome(&decision);
            self.safety_new.count(&facts, &new);
            let old = Outcome {
                disposition: r.old,
                quarantined: r.old_quarantine,
                alerts_sender: false,
            };
            self.safety_old.count(&facts, &old);
            let key = Key {
                old: r.old,
                new: new.disposition,
                direction: r.direction,
                category,
            };
            let show = self.options.show;
            let group = self.groups.entry(key).or_insert_with(|| Group {
                count: 0,
                first: at,
                examples: Vec::new(),
            });
            group.count += 1;
            if key.old != key.new && group.examples.len() < show {
                group.examples.push(Example {
                    at,
                    recipient: r.address.clone().into_owned(),
                    rule: decision.rule().map(str::to_owned),
                    text: shown(text),
                });
            }
        }
    }

    fn changes(&self) -> Vec<(&Key, &Group)> {
        let mut v: Vec<(&Key, &Group)> =
            self.groups.iter().filter(|(k, _)| k.old != k.new).collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        v
    }

    fn file_name(&self, at: At) -> &str {
        self.files.get(at.file).map_or("?", String::as_str)
    }

    fn json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes()
            .into_iter()
            .map(|(k, g)| {
                let mut v = json!({
                    "from": k.old,
                    "to": k.new,
                    "direction": k.direction,
                    "category": k.category,
                    "count": g.count,
                    "example_line": g.first.line,
                    "example_file": self.file_name(g.first),
                });
                if !g.examples.is_empty() {
                    if let Some(obj) = v.as_object_mut() {
                        let ex: Vec<Value> = g
                            .examples
                            .iter()
                            .map(|e| {
                                json!({
                                    "file": self.file_name(e.at),
                                    "line": e.at.line,
                                    "recipient": e.recipient,
                                    "rule": e.rule,
                                    "text": e.text,
                                })
                            })
                            .collect();
                        obj.insert("examples".into(), Value::Array(ex));
                    }
                }
                v
            })
            .collect();
        let safety: serde_json::Map<String, Value> = self
            .safety_new
            .rows()
            .iter()
            .map(|(k, n)| ((*k).to_owned(), json!(n)))
            .collect();
        let samples: Vec<Value> = self
            .samples
            .iter()
            .map(|(at, reason, text)| {
                json!({"file": self.file_name(*at), "line": at.line, "reason": reason, "text": text})
            })
            .collect();
        json!({
            "messages": self.messages,
            "recipients": self.recipients,
            "unreadable": self.unreadable,
            "changes": changes,
            "safety": safety,
            "unreadable_examples": samples,
        })
    }

    fn human(&self, policy: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "replayed {} on {} line(s): {} message(s), {} recipient(s), {} unreadable line(s)",
            policy.display(),
            thousands(self.lines),
            thousands(self.messages),
            thousands(self.recipients),
            thousands(self.unreadable),
        );
        if self.names_cut > 0 {
            let max = self.policy.limits().max_set_names;
            let _ = writeln!(
                s,
                "{} message(s) named more than {max} viruses: the policy saw the first {max} of each, as mailpolicyd gives it",
                thousands(self.names_cut),
            );
        }
        let changes = self.changes();
        let changed: u64 = changes.iter().map(|(_, g)| g.count).sum();
        let _ = writeln!(
            s,
            "\n{} recipient(s) would be handled differently, {} the same",
            thousands(changed),
            thousands(self.recipients - changed)
        );
        if !changes.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:<21} {:<11} {:<19} {:>9}  example",
                "old -> new", "direction", "category", "recipients"
            );
            for (k, g) in &changes {
                let _ = writeln!(
                    s,
                    "  {:<21} {:<11} {:<19} {:>9}  {}:{}",
                    format!("{} -> {}", k.old, k.new),
                    k.direction.map_or("unknown", |d| d.as_str()),
                    k.category,
                    thousands(g.count),
                    self.file_name(g.first),
                    g.first.line
                );
                for e in &g.examples {
                    let by = e
                        .rule
                        .as_deref()
                        .map_or_else(|| "the default".to_owned(), |r| format!("rule {r:?}"));
                    let _ = writeln!(
                        s,
                        "      {}:{}: <{}> now by {by}\n        {}",
                        self.file_name(e.at),
                        e.at.line,
                        e.recipient,
                        e.text
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\nsafety of the new policy on this traffic (recipients; what the log shows in brackets):"
        );
        for ((name, new), (_, old)) in self.safety_new.rows().iter().zip(self.safety_old.rows()) {
            let _ = writeln!(
                s,
                "  {name:<27} {:>9}  ({})",
                thousands(*new),
                thousands(old)
            );
        }
        if self.safety_new.backscatter > 0 && self.options.forging.is_none() {
            let _ = writeln!(
                s,
                "  (without --forging every virus may forge its sender, as amavisd-new assumes)"
            );
        }
        if self.unreadable > 0 {
            let _ = writeln!(
                s,
                "\nunreadable lines (the first {} of {}):",
                self.samples.len(),
                thousands(self.unreadable)
            );
            for (at, reason, text) in &self.samples {
                let _ = writeln!(s, "  {}:{}: {reason}", self.file_name(*at), at.line);
                if !text.is_empty() {
                    let _ = writeln!(s, "    {text}");
                }
            }
        }
        s
    }
}

fn outcome(d: &Decision<'_>) -> Outcome {
    Outcome {
        disposition: d.disposition(),
        quarantined: d.quarantine().is_some(),
        alerts_sender: d.alerts().any(|a| *a == AlertTarget::Sender),
    }
}

fn disposition(word: &str) -> Option<Disposition> {
    [
        Disposition::Pass,
        Disposition::Discard,
        Disposition::Bounce,
        Disposition::Reject,
        Disposition::Tempfail,
    ]
    .into_iter()
    .find(|d| d.as_str() == word)
}

/// A line for display: lossy UTF-8, control characters escaped, cut short.
fn shown(line: &[u8]) -> String {
    let cut = &line[..line.len().min(SHOWN_TEXT)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if line.len() > SHOWN_TEXT {
        s.push_str(" [...]");
    }
    s
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut v = Vec::new();
        for_each_line(data, |l, long| v.push((l.to_vec(), long))).unwrap();
        v
    }

    #[test]
    fn lines_are_cut_at_newlines() {
        let v = lines_of(b"a\r\nbb\n\nccc");
        let got: Vec<&[u8]> = v.iter().map(|(l, _)| l.as_slice()).collect();
        assert_eq!(got, [&b"a"[..], b"bb", b"", b"ccc"]);
    }

    #[test]
    fn an_endless_line_is_reported_once() {
        let mut data = vec![b'x'; MAX_LINE + 10];
        data.extend_from_slice(b"\nnext\n");
        let v = lines_of(&data);
        assert_eq!(v.len(), 2);
        assert!(v[0].1 && v[0].0.is_empty());
        assert_eq!(v[1], (b"next".to_vec(), false));
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
