//! One SMTP session with the MTA in front (Postfix's `content_filter`
//! client): ESMTP with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN,
//! ENHANCEDSTATUSCODES and XFORWARD. Commands are parsed by `smtp-proto`
//! (XFORWARD, which it does not know, with its RFC 5321 tokenizer), the
//! message by its DATA receiver (dot-unstuffing, the end-of-data mark).
//!
//! The end of the message is answered only once the message is accounted
//! for: `250` after re-injection to `next_hop` succeeded (or every
//! recipient was discarded or bounced by the policy, the copies and DSN
//! being done), `4xx` on a tempfail, any internal failure or the next hop
//! being down (Postfix keeps the message and retries), `5xx` on a policy
//! reject (Postfix bounces it). Individual recipients are never refused.
//!
//! Input is bounded: a command line is at most [`MAX_LINE`] bytes, a
//! message at most [`MAX_MESSAGE_BYTES`] (bigger ones are read to their end
//! and answered `452`), a transaction at most [`MAX_RECIPIENTS`] recipients
//! (more get `452`, which Postfix sends again in a later transaction).
//! Nothing the peer sends can panic the session.

use super::relay::{Failure, MailParams, NextHop, RcptParams, Transaction};
use super::xforward::{Xforward, ATTRIBUTES};
use crate::filter::{Answer, Filter, Relayed, Reply};
use crate::message::{Envelope, Message};
use crate::sanitize::log_text;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use smtp_proto::{Request, MAIL_BODY_8BITMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The longest command line accepted (RFC 5321 allows 512; XFORWARD and
/// DSN parameters stay well below this).
pub const MAX_LINE: usize = 4096;
/// The largest message accepted (as the milter's limit).
pub const MAX_MESSAGE_BYTES: usize = crate::milter::MAX_MESSAGE_BYTES;
/// Recipients per transaction; more are answered `452 4.5.3` and Postfix
/// delivers them in a later transaction.
pub const MAX_RECIPIENTS: usize = 1000;
/// Protocol errors after which the session is closed.
pub const MAX_ERRORS: u32 = 20;
/// How long the peer may stay silent (Postfix's smtpd uses 300 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a session needs besides its socket.
#[derive(Debug, Clone)]
pub struct Context {
    /// The core.
    pub filter: Arc<Filter>,
    /// Where accepted copies go.
    pub next_hop: NextHop,
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// Cancelled on SIGTERM: an idle session then says 421 and closes.
    pub shutdown: CancellationToken,
    /// Mail from this listener counts as `authenticated` (the
    /// `authenticated_listen` port: the submission service's filter).
    pub authenticated: bool,
}

#[derive(Debug)]
struct Transact {
    mail: MailParams,
    declared_size: usize,
    rcpts: Vec<RcptParams>,
}

enum Input {
    Line(Vec<u8>),
    TooLong,
    Closed,
    Idle,
    Shutdown,
}

/// One session: call [`Session::run`].
pub struct Session<S> {
    stream: S,
    peer: String,
    ctx: Context,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    helo: Option<String>,
    xforward: Xforward,
    tx: Option<Transact>,
    errors: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session on `stream` from `peer` (for logs).
    pub fn new(stream: S, peer: String, ctx: Context) -> Session<S> {
        Session {
            stream,
            peer,
            ctx,
            inbuf: Vec::with_capacity(8192),
            pos: 0,
            out: Vec::with_capacity(1024),
            helo: None,
            xforward: Xforward::default(),
            tx: None,
            errors: 0,
        }
    }

    /// Runs the session to its end (QUIT, the peer closing, a timeout,
    /// shutdown, or too many errors). I/O errors end it quietly.
    pub async fn run(mut self) {
        let greeting = format!("220 {} ESMTP mailpolicyd\r\n", self.ctx.hostname);
        self.out.extend_from_slice(greeting.as_bytes());
        if let Err(e) = self.serve().await {
            tracing::debug!("smtp session from {} ended: {e}", self.peer);
        }
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn error(&mut self, text: &str) {
        self.errors += 1;
        self.reply(text);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads more input (after flushing the replies so far: pipelined
    /// commands are answered in one batch, as RFC 2920 allows). `Ok(false)`:
    /// the peer closed.
    async fn fill(&mut self, idle_cancels: bool) -> std::io::Result<Option<Input>> {
        self.flush().await?;
        if self.pos > 0 {
            self.inbuf.drain(..self.pos);
            self.pos = 0;
        }
        self.inbuf.reserve(64 * 1024);
        let shutdown = self.ctx.shutdown.clone();
        let read = tokio::time::timeout(IDLE_TIMEOUT, self.stream.read_buf(&mut self.inbuf));
        let n = if idle_cancels {
            tokio::select! {
                r = read => r,
                _ = shutdown.cancelled() => return Ok(Some(Input::Shutdown)),
            }
        } else {
            read.await
        };
        match n {
            Err(_) => Ok(Some(Input::Idle)),
            Ok(Ok(0)) => Ok(Some(Input::Closed)),
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => Err(e),
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Input> {
        loop {
            let pending = &self.inbuf[self.pos..];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                if i + 1 > MAX_LINE {
                    return Ok(Input::TooLong);
                }
                let line = pending[..=i].to_vec();
                self.pos += i + 1;
                return Ok(Input::Line(line));
            }
            if pending.len() > MAX_LINE {
                return Ok(Input::TooLong);
            }
            // Idle between transactions: a shutdown closes the session
            // (Postfix keeps the message and comes back).
            if let Some(stop) = self.fill(true).await? {
                return Ok(stop);
            }
        }
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        loop {
            if self.errors >= MAX_ERRORS {
                self.reply("421 4.7.0 Error: too many errors");
                return Ok(());
            }
            let line = match self.next_line().await? {
                Input::Line(l) => l,
                Input::TooLong => {
                    self.reply("500 5.5.2 Error: line too long");
                    self.reply("421 4.7.0 Error: closing the connection");
                    return Ok(());
                }
                Input::Closed => return Ok(()),
                Input::Idle => {
                    self.reply("421 4.4.2 Error: timeout exceeded");
                    return Ok(());
                }
                Input::Shutdown => {
                    self.reply("421 4.3.2 Service shutting down, closing the connection");
                    return Ok(());
                }
            };
            if !self.command(&line).await? {
                return Ok(());
            }
        }
    }

    /// Handles one command line; `Ok(false)` ends the session.
    async fn command(&mut self, line: &[u8]) -> std::io::Result<bool> {
        let word_end = line
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(line.len());
        if line[..word_end].eq_ignore_ascii_case(b"XFORWARD") {
            self.xforward_command(&line[word_end..]);
            return Ok(true);
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                let text = match e {
                    smtp_proto::Error::UnknownCommand => {
                        "502 5.5.2 Error: command not recognized".to_owned()
                    }
                    smtp_proto::Error::InvalidSenderAddress => {
                        "501 5.1.7 Bad sender address syntax".to_owned()
                    }
                    smtp_proto::Error::InvalidRecipientAddress => {
                        "501 5.1.3 Bad recipient address syntax".to_owned()
                    }
                    smtp_proto::Error::SyntaxError { syntax } => {
                        format!("501 5.5.4 Syntax: {syntax}")
                    }
                    smtp_proto::Error::InvalidParameter { param } => {
                        format!("501 5.5.4 Invalid parameter {param}")
                    }
                    smtp_proto::Error::UnsupportedParameter { param } => {
                        format!("555 5.5.4 Unsupported parameter {}", log_text(&param))
                    }
                    _ => "500 5.5.2 Error: bad syntax".to_owned(),
                };
                self.error(&text);
                return Ok(true);
            }
        };
        match request {
            Request::Ehlo { host } => {
                self.reset();
                self.helo = Some(host.into_owned());
                let text = format!(
                    "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                     250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 XFORWARD {}",
                    self.ctx.hostname,
                    MAX_MESSAGE_BYTES,
                    ATTRIBUTES.join(" ")
                );
                self.reply(&text);
            }
            Request::Helo { host } => {
                self.reset();
                self.helo = Some(host.into_owned());
                let text = format!("250 {}", self.ctx.hostname);
                self.reply(&text);
            }
            Request::Lhlo { .. } => self.error("502 5.5.1 Error: this is SMTP, not LMTP"),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => return self.data().await,
            Request::Bdat { chunk_size, .. } => {
                // CHUNKING is not offered; skip the chunk to stay in step.
                self.error("503 5.5.1 Error: BDAT without CHUNKING");
                return self.skip(chunk_size).await;
            }
            Request::Rset => {
                self.reset();
                self.reply("250 2.0.0 Ok");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 Ok"),
            Request::Quit => {
                self.reply("221 2.0.0 Bye");
                return Ok(false);
            }
            Request::Vrfy { .. } => self.reply("502 5.5.1 Error: VRFY is disabled"),
            Request::Help { .. } => self.reply("214 2.0.0 mailpolicyd content filter"),
            Request::StartTls => self.error("502 5.5.1 Error: STARTTLS is not offered"),
            Request::Auth { .. } => self.error("502 5.5.1 Error: AUTH is not offered"),
            _ => self.error("502 5.5.1 Error: command not implemented"),
        }
        Ok(true)
    }

    /// Forgets the transaction and the XFORWARD attributes (RSET, EHLO,
    /// the end of a message), as Postfix's own smtpd does.
    fn reset(&mut self) {
        self.tx = None;
        self.xforward = Xforward::default();
    }

    fn xforward_command(&mut self, args: &[u8]) {
        if self.helo.is_none() {
            self.error("503 5.5.1 Error: send EHLO first");
        } else if self.tx.is_some() {
            self.error("503 5.5.1 Error: XFORWARD not allowed within a transaction");
        } else {
            match self.xforward.apply(args) {
                Ok(()) => self.reply("250 2.0.0 Ok"),
                Err(e) => {
                    let text = format!("501 5.5.4 {}", log_text(&e));
                    self.error(&text);
                }
            }
        }
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<Cow<'_, str>>) {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Error: nested MAIL command");
        }
        if from.size > MAX_MESSAGE_BYTES {
            return self.reply("452 4.3.4 Message size exceeds the content filter's limit");
        }
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some("FULL")
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some("HDRS")
        } else {
            None
        };
        self.tx = Some(Transact {
            mail: MailParams {
                sender: from.address.into_owned(),
                eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
                smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
                ret,
                envid: from.env_id.map(Cow::into_owned),
            },
            declared_size: from.size,
            rcpts: Vec::new(),
        });
        self.reply("250 2.1.0 Ok");
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<Cow<'_, str>>) {
        let Some(tx) = self.tx.as_mut() else {
            return self.error("503 5.5.1 Error: need MAIL command");
        };
        if tx.rcpts.len() >= MAX_RECIPIENTS {
            return self.reply("452 4.5.3 Error: too many recipients");
        }
        tx.rcpts.push(RcptParams {
            address: to.address.into_owned(),
            notify: to.flags
                & (smtp_proto::RCPT_NOTIFY_NEVER
                    | smtp_proto::RCPT_NOTIFY_SUCCESS
                    | smtp_proto::RCPT_NOTIFY_FAILURE
                    | smtp_proto::RCPT_NOTIFY_DELAY),
            orcpt: to.orcpt.map(Cow::into_owned),
        });
        self.reply("250 2.1.5 Ok");
    }

    /// Skips `n` bytes of input (a BDAT chunk).
    async fn skip(&mut self, n: usize) -> std::io::Result<bool> {
        let mut skip = DummyDataReceiver::new_bdat(n);
        loop {
            let pending = &self.inbuf[self.pos..];
            let mut it = pending.iter();
            let done = skip.ingest(&mut it);
            self.pos += pending.len() - it.as_slice().len();
            if done {
                return Ok(true);
            }
            if self.fill(false).await?.is_some() {
                return Ok(false);
            }
        }
    }

    /// DATA: receive the message, decide, carry it out, answer.
    async fn data(&mut self) -> std::io::Result<bool> {
        let Some(tx) = self.tx.take() else {
            self.error("503 5.5.1 Error: need RCPT command");
            return Ok(true);
        };
        if tx.rcpts.is_empty() {
            self.tx = Some(tx);
            self.error("554 5.5.1 Error: no valid recipients");
            return Ok(true);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>");
        let mut receiver = DataReceiver::new();
        let mut bytes = Vec::with_capacity(tx.declared_size.clamp(4096, 1 << 20));
        // The data starts at the beginning of a line: prime the receiver
        // with a line end so a first line "." ends it and ".." is unstuffed.
        receiver.ingest(&mut b"\r\n".iter(), &mut bytes);
        bytes.clear();
        let mut skipping: Option<DummyDataReceiver> = None;
        loop {
            let pending = &self.inbuf[self.pos..];
            let mut it = pending.iter();
            let done = match skipping.as_mut() {
                Some(s) => s.ingest(&mut it),
                None => receiver.ingest(&mut it, &mut bytes),
            };
            self.pos += pending.len() - it.as_slice().len();
            if skipping.is_none() && bytes.len() > MAX_MESSAGE_BYTES {
                skipping = Some(DummyDataReceiver::new_data(&receiver));
                bytes = Vec::new();
            }
            if done {
                break;
            }
            if self.fill(false).await?.is_some() {
                // The peer went away or stalled mid-message: nothing was
                // accepted, so Postfix still has it.
                tracing::info!(
                    "smtp session from {}: connection lost during DATA; the message stays with the MTA",
                    self.peer
                );
                return Ok(false);
            }
        }
        let xforward = std::mem::take(&mut self.xforward);
        if skipping.is_some() {
            self.reply("452 4.3.4 Error: message too big for the content filter");
            return Ok(true);
        }
        let reply = self.deliver(tx, xforward, bytes).await;
        self.reply(&reply);
        Ok(true)
    }

    /// Runs the core on the message and carries the answer out; returns the
    /// reply to the end of data.
    async fn deliver(&mut self, tx: Transact, xf: Xforward, bytes: Vec<u8>) -> String {
        if xf.client_ip().is_none() {
            tracing::warn!(
                "smtp session from {}: no XFORWARD ADDR; the original client is unknown \
                 (set smtp_send_xforward_command = yes on the content_filter transport)",
                self.peer
            );
        }
        let message = Message {
            envelope: Envelope {
                queue_id: xf.ident.clone(),
                client_ip: xf.client_ip(),
                helo: xf.helo.clone(),
                authenticated: self.ctx.authenticated || xf.authenticated(),
                sender: tx.mail.sender.clone(),
                recipients: tx.rcpts.iter().map(|r| r.address.clone()).collect(),
            },
            bytes,
        };
        let filter = Arc::clone(&self.ctx.filter);
        let pending = filter.decide(&message).await;
        let (deliver, remove, tags) = match &pending.answer {
            Answer::Accept {
                deliver,
                remove,
                tags,
            } if !deliver.is_empty() => (deliver.clone(), remove.clone(), tags.clone()),
            Answer::Accept { .. } => {
                let outcome = filter.finish(pending, Relayed::NotNeeded).await;
                return accounted_reply(&outcome.entry, "not relayed: no recipient passed");
            }
            Answer::Discard => {
                let outcome = filter.finish(pending, Relayed::NotNeeded).await;
                return accounted_reply(&outcome.entry, "discarded");
            }
            Answer::Reject(r) | Answer::Tempfail(r) => {
                let text = r.to_string();
                filter.finish(pending, Relayed::NotNeeded).await;
                return text;
            }
        };
        // The recipients to relay to, with the DSN parameters they came with.
        let mut wanted = deliver.clone();
        let rcpts: Vec<RcptParams> = tx
            .rcpts
            .iter()
            .filter(|r| match wanted.iter().position(|w| *w == r.address) {
                Some(i) => {
                    wanted.remove(i);
                    true
                }
                None => false,
            })
            .cloned()
            .collect();
        let copy = message.with_tags(&tags);
        let copy: &[u8] = copy.as_deref().unwrap_or(&message.bytes);
        let (relayed, reply) = self
            .relay(&message, &xf, &tx.mail, &rcpts, copy, remove.is_empty())
            .await;
        filter.finish(pending, relayed).await;
        reply
    }

    /// Re-injects `copy` to `rcpts`; returns what to tell the core and the
    /// reply for the MTA. `whole`: the policy passed every recipient (so a
    /// next hop refusing them all may be answered with its own 5xx).
    async fn relay(
        &self,
        message: &Message,
        xf: &Xforward,
        mail: &MailParams,
        rcpts: &[RcptParams],
        copy: &[u8],
        whole: bool,
    ) -> (Relayed, String) {
        let filter = &self.ctx.filter;
        let tempfail = |r: Reply| (Relayed::Failed(Answer::Tempfail(r.clone())), r.to_string());
        let dsn_failed = |e: String| {
            tracing::error!(
                "cannot send the DSN for recipients the next hop refused, answering tempfail: {}",
                log_text(&e)
            );
            tempfail(Reply {
                code: 451,
                enhanced: Some("4.3.0".into()),
                text: "cannot send the delivery status notification, try again later".into(),
            })
        };
        let tx = match Transaction::open(&self.ctx.next_hop, xf, mail, copy.len(), rcpts).await {
            Ok(tx) => tx,
            Err(Failure::Temporary(r)) => return tempfail(r),
            Err(Failure::Permanent(r)) => {
                // MAIL FROM refused: every recipient is refused.
                let all: Vec<(usize, Reply)> = (0..rcpts.len()).map(|i| (i, r.clone())).collect();
                return self.all_refused(message, rcpts, &all, whole, false).await;
            }
        };
        if tx.accepted.is_empty() {
            let refused = tx.refused.clone();
            tx.abort().await;
            return self
                .all_refused(message, rcpts, &refused, whole, false)
                .await;
        }
        // Some recipients refused permanently: their clean DSN goes out
        // before the message, so a failure to send it can still tempfail a
        // message nothing has been delivered of.
        let refused = tx.refused.clone();
        let accepted = tx.accepted.clone();
        let notices = notice_list(rcpts, &refused);
        if let Err(e) = filter.send_refusal_dsn(message, &notices).await {
            tx.abort().await;
            return dsn_failed(e);
        }
        match tx.send(copy).await {
            Ok(done) => {
                let list = refused
                    .iter()
                    .map(|(i, r)| (rcpts[*i].address.clone(), r.to_string()))
                    .collect();
                let reply = format!("250 2.0.0 Ok: relayed ({})", done.text);
                (Relayed::Delivered { refused: list }, reply)
            }
            Err(Failure::Temporary(r)) => tempfail(r),
            Err(Failure::Permanent(r)) => {
                // The message itself refused: the recipients accepted so far
                // are refused too (the earlier ones have had their DSN).
                let rest: Vec<(usize, Reply)> = accepted.iter().map(|&i| (i, r.clone())).collect();
                let whole = whole && refused.is_empty();
                self.all_refused(message, rcpts, &rest, whole, !refused.is_empty())
                    .await
            }
        }
    }

    /// Every remaining recipient refused permanently by the next hop. When
    /// the policy passed all recipients and no DSN went out yet, the next
    /// hop's 5xx is passed back (Postfix bounces as it would without a
    /// filter, honouring the sender's DSN options); otherwise the filter's
    /// clean DSN goes to the sender and the message is accounted for.
    async fn all_refused(
        &self,
        message: &Message,
        rcpts: &[RcptParams],
        refused: &[(usize, Reply)],
        whole: bool,
        earlier_dsn: bool,
    ) -> (Relayed, String) {
        if whole && !earlier_dsn && refused.len() == rcpts.len() {
            if let Some((_, r)) = refused.first() {
                let r = r.clone();
                return (Relayed::Failed(Answer::Reject(r.clone())), r.to_string());
            }
        }
        let notices = notice_list(rcpts, refused);
        if let Err(e) = self.ctx.filter.send_refusal_dsn(message, &notices).await {
            tracing::error!(
                "cannot send the DSN for recipients the next hop refused, answering tempfail: {}",
                log_text(&e)
            );
            let r = Reply {
                code: 451,
                enhanced: Some("4.3.0".into()),
                text: "cannot send the delivery status notification, try again later".into(),
            };
            return (Relayed::Failed(Answer::Tempfail(r.clone())), r.to_string());
        }
        let list = refused
            .iter()
            .map(|(i, r)| (rcpts[*i].address.clone(), r.to_string()))
            .collect();
        (
            Relayed::Delivered { refused: list },
            "250 2.0.0 Ok: the next hop refused the recipients; a delivery status notification was sent".into(),
        )
    }
}

/// The (recipient, reply) pairs a failure notice may be sent for (`NOTIFY`
/// absent or naming FAILURE).
fn notice_list(rcpts: &[RcptParams], refused: &[(usize, Reply)]) -> Vec<(String, String)> {
    refused
        .iter()
        .filter(|(i, _)| rcpts[*i].wants_failure_notice())
        .map(|(i, r)| (rcpts[*i].address.clone(), r.to_string()))
        .collect()
}

fn accounted_reply(entry: &crate::decision_log::Entry, what: &str) -> String {
    match &entry.quarantine_id {
        Some(id) => format!("250 2.0.0 Ok: {what}, quarantined as {id}"),
        None => format!("250 2.0.0 Ok: {what}"),
    }
}
