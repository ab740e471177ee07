//! The core both front ends drive: scan a message (only when the policy
//! reads the scanner), evaluate the policy per recipient, combine the
//! decisions into one answer, and carry out what must happen before the MTA
//! is answered — quarantine copies on disk, the clean DSN submitted — then
//! alerts and the logs. No front-end (milter/SMTP) types in here.

use crate::clamd::{Clamd, ScanResult};
use crate::config::{canonical_ip, Config, SiteConfig};
use crate::decision_log::{DecisionLog, Entry, RecipientEntry};
use crate::message::Message;
use crate::notify::{self, About, Submitter};
use crate::quarantine::{self, Record};
use crate::sanitize::{header_text, is_plain_address, log_text};
use mailpolicy::{
    AlertTarget, Decision, Direction, Facts, Limits, MessageVerdict, Policy, Verdict,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A policy in force, with what the filter derived from it once.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: Policy,
    /// Whether any rule reads `scanner`, `virus` or `forges_sender` (else
    /// no clamd round trip is made).
    pub needs_scan: bool,
    /// Warnings `check()` found when it was loaded (logged).
    pub warnings: usize,
}

impl LoadedPolicy {
    /// Reads and parses a policy file with `limits` (the config's
    /// `[limits]`); the error is the rendered diagnostics.
    pub fn load(path: &Path, limits: &Limits) -> Result<LoadedPolicy, String> {
        let source = std::fs::read(path)
            .map_err(|e| format!("{}: cannot read the policy: {e}", path.display()))?;
        let policy = Policy::parse_bytes_with_limits(&source, limits).map_err(|e| {
            let rendered: Vec<String> = e
                .diagnostics()
                .iter()
                .map(|d| render_diagnostic(path, d))
                .collect();
            rendered.join("\n")
        })?;
        let needs_scan = policy
            .facts_needed()
            .iter()
            .any(|k| matches!(k.name, "scanner" | "virus" | "forges_sender"));
        let warnings = policy.check().len();
        Ok(LoadedPolicy {
            policy,
            needs_scan,
            warnings,
        })
    }
}

/// A policy diagnostic as `policy check` shows it: `warning[code]:
/// FILE:LINE:COL: message`, then the line, a caret and the help.
pub fn render_diagnostic(file: &Path, d: &mailpolicy::Diagnostic) -> String {
    let rendered = d.to_string();
    let rest = rendered.split_once('\n').map_or("", |(_, r)| r);
    format!(
        "{}[{}]: {}:{}:{}: {}\n{rest}",
        d.severity.as_str(),
        d.code,
        file.display(),
        d.line,
        d.column,
        d.message
    )
}

/// An SMTP reply: code, enhanced status, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code (4xx or 5xx).
    pub code: u16,
    /// The enhanced status code (`5.7.1`), if any.
    pub enhanced: Option<String>,
    /// The text (sanitised: one line).
    pub text: String,
}

impl Reply {
    /// The reply for `verdict` (reject or tempfail) from the policy's text:
    /// `"554 5.7.1 virus found"` is used as written; a text without a code
    /// of the right class gets the verdict's default code in front.
    pub fn for_verdict(verdict: Verdict, text: Option<&str>) -> Reply {
        let (default_code, default_status, class) = match verdict {
            Verdict::Tempfail => (451, "4.7.1", b'4'),
            _ => (554, "5.7.1", b'5'),
        };
        let default_text = verdict.default_smtp_reply();
        let text = header_text(text.unwrap_or(default_text));
        let mut words = text.splitn(2, ' ');
        let first = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim();
        if first.len() == 3
            && first.bytes().all(|b| b.is_ascii_digit())
            && first.as_bytes()[0] == class
        {
            let code: u16 = first.parse().unwrap_or(default_code);
            let (enhanced, text) = match rest.split_once(' ') {
                Some((s, t)) if is_enhanced(s, class) => (Some(s.to_owned()), t.trim().to_owned()),
                _ if is_enhanced(rest, class) => (Some(rest.to_owned()), String::new()),
                _ => (None, rest.to_owned()),
            };
            let text = if text.is_empty() {
                "rejected by content policy".into()
            } else {
                text
            };
            return Reply {
                code,
                enhanced,
                text,
            };
        }
        Reply {
            code: default_code,
            enhanced: Some(default_status.to_owned()),
            text,
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.enhanced {
            Some(e) => write!(f, "{} {} {}", self.code, e, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

fn is_enhanced(s: &str, class: u8) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && s.as_bytes().first() == Some(&class)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What the front end must answer and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accept: deliver to `deliver` (possibly none — then nothing is
    /// relayed, every copy is accounted for), remove `remove`, and put
    /// `tags` at the start of the delivered copy's Subject.
    Accept {
        /// Recipients to deliver to, as given in the envelope.
        deliver: Vec<String>,
        /// Recipients to remove (discarded, bounced, rejected).
        remove: Vec<String>,
        /// Subject tags of the delivered recipients, each once, in order.
        tags: Vec<String>,
    },
    /// Accept and drop for everyone.
    Discard,
    /// Refuse with a 5xx.
    Reject(Reply),
    /// Refuse with a 4xx.
    Tempfail(Reply),
}

/// The result of processing one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What to answer.
    pub answer: Answer,
    /// The decision-log entry written for it.
    pub entry: Entry,
}

/// The filter: config, the policy in force, and the services it uses.
#[derive(Debug)]
pub struct Filter {
    config: Config,
    policy: RwLock<Arc<LoadedPolicy>>,
    clamd: Clamd,
    store: quarantine::Store,
    submitter: Submitter,
    decisions: DecisionLog,
}

impl Filter {
    /// Builds a filter: loads the policy and opens the decision log.
    pub fn new(config: Config) -> Result<Filter, String> {
        let loaded = LoadedPolicy::load(&config.policy, &config.limits)?;
        let decisions = DecisionLog::open(config.log.decisions.clone())
            .map_err(|e| format!("cannot open the decision log: {e}"))?;
        Ok(Filter {
            clamd: Clamd::new(config.clamd.clone()),
            store: quarantine::Store::new(config.quarantine_dir.clone()),
            submitter: Submitter::new(&config.notify),
            policy: RwLock::new(Arc::new(loaded)),
            decisions,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the policy file; a policy with errors is refused and the old
    /// one stays in force. Also reopens the decision log.
    pub fn reload(&self) -> Result<Arc<LoadedPolicy>, String> {
        if let Err(e) = self.decisions.reopen() {
            tracing::warn!("cannot reopen the decision log: {e}");
        }
        let loaded = Arc::new(LoadedPolicy::load(
            &self.config.policy,
            &self.config.limits,
        )?);
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&loaded);
        Ok(loaded)
    }

    /// Processes one message: returns once everything that must precede the
    /// answer (quarantine copies fsync'd, DSN submitted) is done.
    pub async fn process(&self, message: &Message) -> Outcome {
        let pending = self.decide(message).await;
        self.finish(pending, Relayed::NotNeeded).await
    }

    /// The first half of [`Filter::process`], for a front end that must still
    /// deliver the accepted copy itself (after the queue: re-injection to
    /// `next_hop`): scan, evaluate, write the quarantine copies and submit the
    /// policy's clean DSN. The alerts and the logs wait for
    /// [`Filter::finish`], which learns how the delivery went.
    pub async fn decide(&self, message: &Message) -> Pending {
        let started = Instant::now();
        let loaded = self.policy();
        let scan = match loaded.needs_scan {
            true => Some(self.clamd.scan(&message.bytes).await),
            false => None,
        };
        let mut timing = Timing {
            scan: started.elapsed(),
            ..Timing::default()
        };
        let eval_started = Instant::now();
        let eval = Evaluation::new(&loaded.policy, &self.config.site, message, scan);
        let mut answer = eval.answer(message);
        timing.policy = eval_started.elapsed();
        let actions_started = Instant::now();
        let now = SystemTime::now();
        let time = humantime::format_rfc3339_seconds(now).to_string();

        // Quarantine: one ID per message, a copy per bucket, on disk before
        // the answer. A message tempfailed will come again: no copy now.
        let mut quarantine_id = None;
        if !matches!(answer, Answer::Tempfail(_)) {
            match self.quarantine(&eval, message, &time).await {
                Ok(id) => quarantine_id = id,
                Err(e) => {
                    tracing::error!(
                        "quarantine write failed, answering tempfail: {}",
                        log_text(&e.to_string())
                    );
                    answer = tempfail("451 4.3.0 quarantine unavailable, try again later");
                }
            }
        }

        let subject = message.subject();
        let about = About {
            queue_id: message.envelope.queue_id.as_deref(),
            sender: &message.envelope.sender,
            recipients: &[],
            subject: subject.as_deref(),
            client_ip: eval.client_ip.map(|i| i.to_string()),
            detections: eval.names(),
            scanner: eval.scanner_str(),
            rule: None,
            disposition: "",
            quarantine_id: quarantine_id.as_deref(),
            reply: None,
        };

        // The clean DSN for bounced recipients, submitted before the answer.
        if matches!(answer, Answer::Accept { .. }) {
            if let Err(e) = self.send_dsn(&eval, message, &about, now).await {
                tracing::error!(
                    "cannot submit the DSN, answering tempfail: {}",
                    log_text(&e)
                );
                answer = tempfail(
                    "451 4.3.0 cannot send the delivery status notification, try again later",
                );
            }
        }
        let notices = self.alert_notices(&loaded.policy, &eval, &about);
        timing.actions = actions_started.elapsed();

        let entry = Entry {
            time,
            queue_id: message.envelope.queue_id.clone(),
            client_ip: eval.client_ip.map(|i| i.to_string()),
            sender: message.envelope.sender.clone(),
            size: message.bytes.len(),
            scanner: eval.scanner_str().map(str::to_owned),
            virus: eval.names().to_vec(),
            verdict: answer.verdict().as_str().to_owned(),
            quarantine_id,
            ms: 0,
            recipients: eval.recipient_entries(message),
        };
        Pending {
            answer,
            started,
            timing,
            notices,
            entry,
            scan: eval.scan.clone(),
        }
    }

    /// The second half of [`Filter::process`]: once the front end has
    /// answered (or knows what it will answer), send the alerts and write
    /// the decision log and the main log line. When the delivery failed
    /// (`Relayed::Failed`), the answer actually given is logged, and a
    /// tempfailed message sends no alert: it comes again and is decided again.
    pub async fn finish(&self, pending: Pending, relayed: Relayed) -> Outcome {
        let Pending {
            mut answer,
            started,
            timing,
            notices,
            mut entry,
            scan,
        } = pending;
        let mut relayed_failed = None;
        match relayed {
            Relayed::NotNeeded => {}
            Relayed::Delivered { refused } => {
                for (rcpt, reply) in &refused {
                    tracing::warn!(
                        "next hop refused <{}>: {} (a clean DSN went to the sender)",
                        log_text(rcpt),
                        log_text(reply)
                    );
                }
            }
            Relayed::Failed(given) => {
                entry.verdict = given.verdict().as_str().to_owned();
                relayed_failed = Some(given.clone());
                answer = given;
            }
        }
        // A policy tempfail's alerts go out (the rule asked for them); a
        // delivery that failed sends none: the retry is decided again.
        if !matches!(relayed_failed, Some(Answer::Tempfail(_))) {
            self.send_alerts(&notices).await;
        }
        entry.ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = self.decisions.append(&entry) {
            tracing::error!("cannot write the decision log: {e}");
        }
        tracing::info!("{}", main_log_line(&entry, &answer, scan.as_ref()));
        let total = started.elapsed();
        tracing::debug!(
            "TIMING {}: scan {} us, policy {} us ({} recipients), quarantine+dsn {} us, total {} us, policy share {:.4}%",
            entry.queue_id.as_deref().map_or("-".into(), log_text),
            timing.scan.as_micros(),
            timing.policy.as_micros(),
            entry.recipients.len(),
            timing.actions.as_micros(),
            total.as_micros(),
            100.0 * timing.policy.as_secs_f64() / total.as_secs_f64().max(1e-9),
        );
        Outcome { answer, entry }
    }

    /// After the queue: the clean DSN for recipients the next hop refused
    /// permanently (`(recipient, reply)`), one notice per distinct reply,
    /// submitted like the policy's DSN (null return path, never to `<>`,
    /// the original headers only). `Ok` when there was nothing to send.
    pub async fn send_refusal_dsn(
        &self,
        message: &Message,
        refused: &[(String, String)],
    ) -> Result<(), String> {
        let env = &message.envelope;
        if refused.is_empty() || env.sender.is_empty() || !is_plain_address(&env.sender) {
            return Ok(());
        }
        let subject = message.subject();
        let unix = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let arrival =
            mail_builder::headers::date::Date::new(i64::try_from(unix).unwrap_or(0)).to_rfc822();
        let mut reasons: Vec<&str> = Vec::new();
        for (_, reply) in refused {
            if !reasons.contains(&reply.as_str()) {
                reasons.push(reply);
            }
        }
        for reason in reasons {
            let recipients: Vec<String> = refused
                .iter()
                .filter(|(_, r)| r == reason)
                .map(|(rcpt, _)| rcpt.clone())
                .collect();
            let about = About {
                queue_id: env.queue_id.as_deref(),
                sender: &env.sender,
                recipients: &recipients,
                subject: subject.as_deref(),
                client_ip: env.client_ip.map(|i| canonical_ip(i).to_string()),
                detections: &[],
                scanner: None,
                rule: None,
                disposition: "pass",
                quarantine_id: None,
                reply: Some(reason),
            };
            let dsn = notify::build_dsn(
                &self.config.notify,
                &about,
                message.header_block(),
                &arrival,
            );
            self.submitter
                .send("", std::slice::from_ref(&env.sender), &dsn)
                .await?;
        }
        Ok(())
    }

    /// Writes the quarantine copies the decisions ask for; the new ID, or
    /// `None` when no decision asked for one.
    async fn quarantine(
        &self,
        eval: &Evaluation<'_>,
        message: &Message,
        time: &str,
    ) -> std::io::Result<Option<String>> {
        let mut buckets: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, d) in eval.decisions.iter().enumerate() {
            if let Some(b) = d.quarantine() {
                buckets.entry(b).or_default().push(i);
            }
        }
        if buckets.is_empty() {
            return Ok(None);
        }
        let env = &message.envelope;
        let id = quarantine::Store::new_id();
        let entries = eval.recipient_entries(message);
        let records: Vec<Record> = buckets
            .iter()
            .map(|(bucket, idx)| Record {
                id: id.clone(),
                bucket: quarantine::bucket_dir_name(bucket),
                time: time.to_owned(),
                queue_id: env.queue_id.clone(),
                client_ip: eval.client_ip.map(|i| i.to_string()),
                helo: env.helo.clone(),
                authenticated: env.authenticated,
                sender: env.sender.clone(),
                recipients: idx.iter().map(|&i| env.recipients[i].clone()).collect(),
                envelope_recipients: env.recipients.clone(),
                scanner: eval.scanner_str().map(str::to_owned),
                virus: eval.names().to_vec(),
                rule: eval.decisions[idx[0]].rule().map(str::to_owned),
                size: message.bytes.len(),
                decisions: idx
                    .iter()
                    .map(|&i| serde_json::to_value(&entries[i]).unwrap_or_default())
                    .collect(),
                facts: eval.facts_json(message),
                released: false,
                released_at: None,
                released_to: vec![],
            })
            .collect();
        let store = self.store.clone();
        let bytes = message.bytes.clone();
        tokio::task::spawn_blocking(move || store.write(&records, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        Ok(Some(id))
    }

    /// Submits the clean DSN for the bounced recipients of an accepted
    /// message; nothing when there are none or the sender is `<>`.
    async fn send_dsn(
        &self,
        eval: &Evaluation<'_>,
        message: &Message,
        about: &About<'_>,
        now: SystemTime,
    ) -> Result<(), String> {
        let Some(combined) = &eval.combined else {
            return Ok(());
        };
        let sender = &message.envelope.sender;
        if combined.bounce.is_empty() || sender.is_empty() || !is_plain_address(sender) {
            return Ok(());
        }
        let bounced: Vec<String> = combined
            .bounce
            .iter()
            .map(|&i| message.envelope.recipients[i].clone())
            .collect();
        let unix = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let arrival =
            mail_builder::headers::date::Date::new(i64::try_from(unix).unwrap_or(0)).to_rfc822();
        let about = about_decision(about, &bounced, &eval.decisions[combined.bounce[0]]);
        let dsn = notify::build_dsn(
            &self.config.notify,
            &about,
            message.header_block(),
            &arrival,
        );
        self.submitter
            .send("", std::slice::from_ref(sender), &dsn)
            .await
    }

    /// Builds one notice per alerted address (never to `<>`).
    fn alert_notices(
        &self,
        policy: &Policy,
        eval: &Evaluation<'_>,
        about: &About<'_>,
    ) -> Vec<(String, Vec<u8>)> {
        let mut alerts: Vec<(String, usize)> = Vec::new();
        for (i, d) in eval.decisions.iter().enumerate() {
            for target in d.alerts() {
                let addresses: Vec<&str> = match target {
                    AlertTarget::Admin => policy.admins().iter().map(String::as_str).collect(),
                    AlertTarget::Sender => vec![about.sender],
                    AlertTarget::Recipient => vec![eval.recipients[i].as_str()],
                    AlertTarget::Address(a) => vec![a.as_str()],
                };
                for a in addresses {
                    if !a.is_empty() && !alerts.iter().any(|(x, _)| x.eq_ignore_ascii_case(a)) {
                        alerts.push((a.to_owned(), i));
                    }
                }
            }
        }
        alerts
            .into_iter()
            .map(|(to, i)| {
                let about = about_decision(about, &eval.recipients, &eval.decisions[i]);
                let notice = notify::build_alert(&self.config.notify, &about, &to);
                (to, notice)
            })
            .collect()
    }

    /// Sends the alert notices; failures are logged, not fatal.
    async fn send_alerts(&self, notices: &[(String, Vec<u8>)]) {
        for (to, notice) in notices {
            if let Err(e) = self
                .submitter
                .send("", std::slice::from_ref(to), notice)
                .await
            {
                tracing::warn!(
                    "cannot send the alert to {}: {}",
                    log_text(to),
                    log_text(&e)
                );
            }
        }
    }
}

/// A message decided by [`Filter::decide`], waiting for [`Filter::finish`].
#[derive(Debug)]
pub struct Pending {
    /// What the policy says to answer (quarantine copies and the policy's
    /// DSN are already done).
    pub answer: Answer,
    started: Instant,
    timing: Timing,
    notices: Vec<(String, Vec<u8>)>,
    entry: Entry,
    scan: Option<ScanResult>,
}

/// Where a message's time went (the `TIMING` debug line).
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// Waiting for clamd.
    scan: Duration,
    /// Building facts, evaluating the policy per recipient, combining.
    policy: Duration,
    /// Quarantine writes and the policy's DSN.
    actions: Duration,
}

/// How the front end carried out an accepted message (see [`Filter::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Relayed {
    /// Nothing for the front end to deliver (the milter: the MTA delivers;
    /// or the answer was not an accept with recipients to relay to).
    NotNeeded,
    /// Re-injected; the next hop refused `refused` (recipient, its reply)
    /// permanently, and those got the clean DSN.
    Delivered {
        /// Recipients the next hop refused, with its reply.
        refused: Vec<(String, String)>,
    },
    /// Could not be carried out as decided: the front end answered this
    /// instead (`Tempfail` when the next hop is down, `Reject` when it
    /// refused every recipient permanently).
    Failed(Answer),
}

fn tempfail(text: &str) -> Answer {
    Answer::Tempfail(Reply::for_verdict(Verdict::Tempfail, Some(text)))
}

/// `about` with the recipients and the deciding rule of one decision.
fn about_decision<'a>(base: &About<'a>, recipients: &'a [String], d: &Decision<'a>) -> About<'a> {
    let mut a = base.clone();
    a.recipients = recipients;
    a.rule = d.rule();
    a.disposition = d.disposition().as_str();
    a.reply = d.reply();
    a
}

impl Answer {
    /// The verdict the MTA is answered with.
    pub fn verdict(&self) -> Verdict {
        match self {
            Answer::Accept { .. } => Verdict::Accept,
            Answer::Discard => Verdict::Discard,
            Answer::Reject(_) => Verdict::Reject,
            Answer::Tempfail(_) => Verdict::Tempfail,
        }
    }
}

/// One message's facts and per-recipient decisions.
struct Evaluation<'p> {
    scan: Option<ScanResult>,
    forges: Option<bool>,
    client_ip: Option<std::net::IpAddr>,
    recipients: Vec<String>,
    directions: Vec<Direction>,
    decisions: Vec<Decision<'p>>,
    combined: Option<MessageVerdict>,
}

impl<'p> Evaluation<'p> {
    /// Builds each recipient's facts (the message's, plus `recipient` and
    /// `direction`) and evaluates the policy for each.
    fn new(
        policy: &'p Policy,
        site: &SiteConfig,
        message: &Message,
        scan: Option<ScanResult>,
    ) -> Evaluation<'p> {
        let env = &message.envelope;
        let names: &[String] = scan.as_ref().map_or(&[], ScanResult::names);
        let forges = site.forges_sender(names);
        let client_ip = env.client_ip.map(canonical_ip);
        let originating = env.authenticated || client_ip.is_some_and(|ip| site.in_mynetworks(ip));
        let mut base = Facts::new()
            .sender(env.sender.clone())
            .authenticated(env.authenticated)
            .size(i64::try_from(message.bytes.len()).unwrap_or(i64::MAX));
        if let Some(ip) = client_ip {
            base = base.client_ip(ip);
        }
        if let Some(s) = &scan {
            base = base.scanner(s.scanner());
        }
        // `virus` is the set of every detection: known (possibly empty) when
        // clamd answered, unknown when it did not (error, timeout, no scan).
        if matches!(scan, Some(ScanResult::Clean | ScanResult::Found(_))) {
            // As facts JSON, at most `max_set_names` names (the policy's
            // per-evaluation bound assumes it); the log keeps them all.
            let max = policy.limits().max_set_names;
            if names.len() > max {
                tracing::warn!(
                    "clamd reported {} detections; the policy sees the first {max} (Limits::max_set_names)",
                    names.len()
                );
            }
            base = base.viruses(names.iter().take(max).cloned());
        }
        if let Some(f) = forges {
            base = base.forges_sender(f);
        }
        let directions: Vec<Direction> = env
            .recipients
            .iter()
            .map(|r| Direction::from_flags(originating, site.is_local_recipient(r)))
            .collect();
        // One set of facts, its recipient and direction replaced per recipient.
        let mut decisions: Vec<Decision<'p>> = Vec::with_capacity(env.recipients.len());
        for (r, d) in env.recipients.iter().zip(&directions) {
            base = base.recipient(r.clone()).direction(*d);
            decisions.push(policy.evaluate(&base));
        }
        let combined = MessageVerdict::combine(&decisions);
        Evaluation {
            scan,
            forges,
            client_ip,
            recipients: env.recipients.clone(),
            directions,
            decisions,
            combined,
        }
    }

    fn names(&self) -> &[String] {
        self.scan.as_ref().map_or(&[], ScanResult::names)
    }

    fn scanner_str(&self) -> Option<&'static str> {
        self.scan.as_ref().map(|s| s.scanner().as_str())
    }

    /// What the MTA is answered, before quarantine and DSN had their say.
    fn answer(&self, message: &Message) -> Answer {
        let Some(c) = &self.combined else {
            return Answer::Accept {
                deliver: vec![],
                remove: vec![],
                tags: vec![],
            };
        };
        let recipients = &message.envelope.recipients;
        match c.verdict {
            Verdict::Tempfail => {
                Answer::Tempfail(Reply::for_verdict(Verdict::Tempfail, c.reply.as_deref()))
            }
            Verdict::Reject => {
                Answer::Reject(Reply::for_verdict(Verdict::Reject, c.reply.as_deref()))
            }
            Verdict::Discard => Answer::Discard,
            _ => {
                let mut tags: Vec<String> = Vec::new();
                for t in c.deliver_to.iter().flat_map(|&i| self.decisions[i].tags()) {
                    if !tags.iter().any(|x| x == t) {
                        tags.push(t.to_owned());
                    }
                }
                let mut remove: Vec<usize> = c.drop.iter().chain(&c.bounce).copied().collect();
                remove.sort_unstable();
                Answer::Accept {
                    deliver: c
                        .deliver_to
                        .iter()
                        .map(|&i| recipients[i].clone())
                        .collect(),
                    remove: remove.iter().map(|&i| recipients[i].clone()).collect(),
                    tags,
                }
            }
        }
    }

    fn recipient_entries(&self, message: &Message) -> Vec<RecipientEntry> {
        message
            .envelope
            .recipients
            .iter()
            .zip(&self.decisions)
            .zip(&self.directions)
            .map(|((r, d), dir)| RecipientEntry {
                recipient: r.clone(),
                direction: dir.as_str().to_owned(),
                disposition: d.disposition().as_str().to_owned(),
                quarantine: d.quarantine().map(str::to_owned),
                alerts: d.alerts().map(|a| a.as_str().to_owned()).collect(),
                tags: d.tags().map(str::to_owned).collect(),
                rule: d.rule().map(str::to_owned),
            })
            .collect()
    }

    /// The message's facts as the quarantine metadata records them.
    fn facts_json(&self, message: &Message) -> serde_json::Value {
        serde_json::json!({
            "scanner": self.scanner_str(),
            "virus": self.names(),
            "forges_sender": self.forges,
            "client_ip": self.client_ip.map(|i| i.to_string()),
            "sender": message.envelope.sender,
            "authenticated": message.envelope.authenticated,
            "size": message.bytes.len(),
        })
    }
}

/// amavisd-new's one line per message: `Blocked INFECTED (NAMES)
/// {DiscardedInbound,Quarantined}, [IP] <S> -> <R>,<R>, quarantine: ID,
/// rule: "NAME", size: N, N ms` (every field sanitised).
pub fn main_log_line(entry: &Entry, answer: &Answer, scan: Option<&ScanResult>) -> String {
    let passed = matches!(answer, Answer::Accept { deliver, .. } if !deliver.is_empty());
    let category = match scan {
        None => "UNSCANNED",
        Some(ScanResult::Clean) => "CLEAN",
        Some(ScanResult::Error(_)) | Some(ScanResult::Timeout) => "UNCHECKED",
        Some(s) if s.scanner() == mailpolicy::Scanner::Encrypted => "UNCHECKED-ENCRYPTED",
        Some(_) => "INFECTED",
    };
    let mut line = format!("{} {category}", if passed { "Passed" } else { "Blocked" });
    if !entry.virus.is_empty() {
        let names: Vec<String> = entry.virus.iter().map(|n| log_text(n)).collect();
        line.push_str(&format!(" ({})", names.join(",")));
    }
    let mut actions: Vec<String> = Vec::new();
    for r in &entry.recipients {
        let disposition = match (verdict_of(answer), r.disposition.as_str()) {
            (Some(v), _) => v,
            (None, "pass") => "Relayed",
            (None, "discard") => "Discarded",
            (None, "bounce") => "Bounced",
            (None, "reject") => "Bounced",
            (None, _) => "TempFailed",
        };
        let direction = match r.direction.as_str() {
            "inbound" => "Inbound",
            "outbound" => "Outbound",
            "internal" => "Internal",
            _ => "OpenRelay",
        };
        let action = format!("{disposition}{direction}");
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    if entry.quarantine_id.is_some() {
        actions.push("Quarantined".into());
    }
    line.push_str(&format!(" {{{}}}", actions.join(",")));
    line.push_str(&format!(
        ", [{}]",
        entry.client_ip.as_deref().unwrap_or("unknown")
    ));
    line.push_str(&format!(" <{}> ->", log_text(&entry.sender)));
    let rcpts: Vec<String> = entry
        .recipients
        .iter()
        .map(|r| format!("<{}>", log_text(&r.recipient)))
        .collect();
    line.push_str(&format!(" {}", rcpts.join(",")));
    if let Some(q) = &entry.queue_id {
        line.push_str(&format!(", queue_id: {}", log_text(q)));
    }
    if let Some(q) = &entry.quarantine_id {
        line.push_str(&format!(", quarantine: {q}"));
    }
    let rule = entry.recipients.iter().find_map(|r| r.rule.as_deref());
    match rule {
        Some(r) => line.push_str(&format!(", rule: \"{}\"", log_text(r))),
        None => line.push_str(", rule: default"),
    }
    line.push_str(&format!(", size: {}, {} ms", entry.size, entry.ms));
    line
}

fn verdict_of(answer: &Answer) -> Option<&'static str> {
    match answer {
        Answer::Accept { .. } => None,
        Answer::Discard => Some("Discarded"),
        Answer::Reject(_) => Some("Rejected"),
        Answer::Tempfail(_) => Some("TempFailed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_from_policy_text() {
        let r = Reply::for_verdict(Verdict::Reject, Some("554 5.7.1 virus found"));
        assert_eq!(
            (r.code, r.enhanced.as_deref(), r.text.as_str()),
            (554, Some("5.7.1"), "virus found")
        );
        let r = Reply::for_verdict(Verdict::Reject, Some("virus found"));
        assert_eq!(r.to_string(), "554 5.7.1 virus found");
        // A 4xx text on a reject keeps the class of the verdict.
        let r = Reply::for_verdict(Verdict::Reject, Some("451 4.7.1 later"));
        assert_eq!(r.code, 554);
        let r = Reply::for_verdict(Verdict::Tempfail, None);
        assert_eq!(r.to_string(), "451 4.7.1 Message deferred, try again later");
        let r = Reply::for_verdict(Verdict::Tempfail, Some("452 try\r\nlater"));
        assert_eq!(r.to_string(), "452 try later");
    }
}
