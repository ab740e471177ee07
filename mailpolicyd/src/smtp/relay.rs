//! Re-injection: the accepted copy goes to `next_hop` over SMTP in one
//! transaction, with `mail-send`'s client doing the protocol (reply parsing,
//! dot-stuffing). The transaction is opened in two steps so the caller can
//! act on the per-recipient results before the message is sent: after the
//! `RCPT` replies ([`Transaction::open`]) and after `DATA`
//! ([`Transaction::send`]).
//!
//! Every failure is classified: [`Failure::Temporary`] (the next hop is down,
//! timed out, or answered 4xx — the whole message must be tempfailed, and
//! nothing was delivered) or [`Failure::Permanent`] (a 5xx to `MAIL FROM` or
//! to the message: every recipient of this transaction is refused).

use super::xforward::{self, Xforward};
use crate::config::SocketAddress;
use crate::filter::Reply;
use crate::sanitize::header_text;
use mail_send::SmtpClient;
use smtp_proto::Response;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long connecting and each command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the next hop may take to answer the end of the message
/// (Postfix's `smtp_data_done_timeout`).
pub const DATA_DONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Where and how to re-inject.
#[derive(Debug, Clone)]
pub struct NextHop {
    /// `next_hop` from the config.
    pub address: SocketAddress,
    /// The name the filter gives in EHLO.
    pub helo: String,
    /// Idle sessions with the next hop, shared by all front-end sessions.
    pub pool: Arc<Pool>,
}

/// What the original `MAIL FROM` carried that is passed on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The sender, `""` for `<>`.
    pub sender: String,
    /// `BODY=8BITMIME` was given.
    pub eight_bit: bool,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// `RET=FULL|HDRS` (DSN).
    pub ret: Option<&'static str>,
    /// `ENVID=` (DSN), decoded.
    pub envid: Option<String>,
}

/// One recipient with the DSN parameters it came with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// The address, without brackets.
    pub address: String,
    /// `NOTIFY=` as smtp-proto's `RCPT_NOTIFY_*` flags (0: not given).
    pub notify: u64,
    /// `ORCPT=rfc822;...`, decoded.
    pub orcpt: Option<String>,
}

impl RcptParams {
    /// Whether a failure notice may be sent for this recipient (`NOTIFY`
    /// absent, or naming `FAILURE`).
    pub fn wants_failure_notice(&self) -> bool {
        self.notify == 0 || self.notify & smtp_proto::RCPT_NOTIFY_FAILURE != 0
    }
}

/// Why the transaction could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing was delivered; try the whole message again later.
    Temporary(Reply),
    /// The next hop refused the whole transaction permanently.
    Permanent(Reply),
}

/// What the next hop offered in its EHLO reply.
#[derive(Debug, Clone, Default)]
struct Offers {
    xforward: Vec<String>,
    eight_bit: bool,
    smtputf8: bool,
    dsn: bool,
    size: bool,
    pipelining: bool,
}

/// An open transaction: `MAIL FROM` and every `RCPT TO` answered.
pub struct Transaction {
    client: SmtpClient<TcpStream>,
    hop: String,
    offers: Offers,
    uses: u32,
    pool: Arc<Pool>,
    /// Indexes (into the recipients given to [`Transaction::open`]) the next
    /// hop accepted.
    pub accepted: Vec<usize>,
    /// Indexes it refused permanently, with its reply.
    pub refused: Vec<(usize, Reply)>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("hop", &self.hop)
            .field("accepted", &self.accepted)
            .field("refused", &self.refused)
            .finish()
    }
}

/// A reply of the next hop as a [`Reply`] whose text says who said it.
fn hop_reply(hop: &str, r: &Response<String>) -> Reply {
    let enhanced = (r.esc[0] != 0).then(|| format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2]));
    let text = r.message.lines().collect::<Vec<_>>().join(" ");
    Reply {
        code: r.code,
        enhanced,
        text: header_text(&format!("next hop {hop} said: {text}")),
    }
}

/// A temporary failure the filter itself describes.
fn temporary(hop: &str, what: &str) -> Failure {
    Failure::Temporary(Reply {
        code: 451,
        enhanced: Some("4.4.0".into()),
        text: header_text(&format!("next hop {hop}: {what}; try again later")),
    })
}

/// Classifies a reply that is not the expected positive one.
fn refusal(hop: &str, r: &Response<String>) -> Failure {
    match r.code {
        500..=599 => Failure::Permanent(hop_reply(hop, r)),
        400..=499 => Failure::Temporary(hop_reply(hop, r)),
        _ => temporary(hop, &format!("unexpected reply {}", r.code)),
    }
}

fn io_failure(hop: &str, e: mail_send::Error) -> Failure {
    temporary(hop, &e.to_string())
}

async fn with_timeout<T>(
    hop: &str,
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = mail_send::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io_failure(hop, e)),
        Err(_) => Err(temporary(hop, &format!("timed out waiting for {what}"))),
    }
}

/// A new session with the next hop: connect, greeting, EHLO.
async fn connect(hop: &NextHop, name: &str) -> Result<(SmtpClient<TcpStream>, Offers), Failure> {
    let SocketAddress::Inet { host, port } = &hop.address else {
        return Err(temporary(name, "next_hop must be HOST:PORT"));
    };
    let stream =
        match tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect((host.as_str(), *port)))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(temporary(name, &format!("cannot connect: {e}"))),
            Err(_) => return Err(temporary(name, "timed out connecting")),
        };
    let _ = stream.set_nodelay(true);
    let mut client = SmtpClient {
        stream,
        timeout: COMMAND_TIMEOUT,
    };
    // Even a 5xx greeting or EHLO reply is the site's configuration, not the
    // message's fault: try again later.
    let as_temporary = |f: Failure| match f {
        Failure::Permanent(r) | Failure::Temporary(r) => Failure::Temporary(Reply {
            code: 451,
            enhanced: Some("4.4.0".into()),
            text: r.text,
        }),
    };
    let greeting = with_timeout(name, COMMAND_TIMEOUT, "the greeting", client.read()).await?;
    if greeting.code != 220 {
        return Err(as_temporary(refusal(name, &greeting)));
    }
    let ehlo = with_timeout(
        name,
        COMMAND_TIMEOUT,
        "the reply to EHLO",
        client.cmd(format!("EHLO {}\r\n", hop.helo).as_bytes()),
    )
    .await?;
    if ehlo.code != 250 {
        return Err(as_temporary(refusal(name, &ehlo)));
    }
    Ok((client, parse_offers(&ehlo.message)))
}

/// An idle pooled session that still answers RSET, if there is one.
async fn reuse(pool: &Pool) -> Option<Idle> {
    while let Some(mut idle) = pool.take() {
        let probe = tokio::time::timeout(POOL_PROBE_TIMEOUT, idle.client.cmd(b"RSET\r\n")).await;
        if matches!(probe, Ok(Ok(ref r)) if r.code == 250) {
            return Some(idle);
        }
    }
    None
}

/// Idle sessions with the next hop, kept after a delivery and reused for
/// later messages (what Postfix's and amavisd-new's SMTP connection caches
/// do): a new message then costs no connect, greeting and EHLO, and the next
/// hop no new smtpd process. A session is used for at most [`POOL_USES`]
/// messages and kept idle at most [`POOL_IDLE`]; at most [`POOL_MAX`] are kept.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

/// Most idle sessions kept.
pub const POOL_MAX: usize = 32;
/// Longest a session stays idle in the pool.
pub const POOL_IDLE: Duration = Duration::from_secs(30);
/// Most messages sent over one session.
pub const POOL_USES: u32 = 100;
const POOL_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

struct Idle {
    client: SmtpClient<TcpStream>,
    offers: Offers,
    since: Instant,
    uses: u32,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.idle.lock().map_or(0, |v| v.len());
        f.debug_struct("Pool").field("idle", &n).finish()
    }
}

impl Pool {
    /// The most recently used session that has not been idle too long
    /// (older ones are closed).
    fn take(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(i) = idle.pop() {
            if i.since.elapsed() < POOL_IDLE {
                return Some(i);
            }
            close_later(i.client);
        }
        None
    }

    fn put(&self, client: SmtpClient<TcpStream>, offers: Offers, uses: u32) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Expired sessions go first, so a quiet filter does not hold them.
        let (keep, old): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|i| i.since.elapsed() < POOL_IDLE);
        *idle = keep;
        for i in old {
            close_later(i.client);
        }
        if uses >= POOL_USES || idle.len() >= POOL_MAX {
            close_later(client);
            return;
        }
        idle.push(Idle {
            client,
            offers,
            since: Instant::now(),
            uses,
        });
    }
}

/// QUIT in the background (best effort).
fn close_later(client: SmtpClient<TcpStream>) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.quit()).await;
        });
    }
}

impl Transaction {
    /// Gets a session with the next hop — an idle one from the pool (checked
    /// with RSET) or a new one (greeting, EHLO) — passes the XFORWARD
    /// attributes on when it offers XFORWARD, and gives `MAIL FROM` and every
    /// `RCPT TO`. A 4xx to any recipient is a [`Failure::Temporary`] for the
    /// whole message (the transaction is reset: nothing is delivered, so a
    /// retry duplicates nothing); 5xx recipients are listed in `refused`.
    pub async fn open(
        hop: &NextHop,
        xf: &Xforward,
        mail: &MailParams,
        size: usize,
        rcpts: &[RcptParams],
    ) -> Result<Transaction, Failure> {
        let name = hop.address.to_string();
        let name = name.strip_prefix("inet:").unwrap_or(&name).to_owned();
        let (client, offers, uses) = match reuse(&hop.pool).await {
            Some(idle) => (idle.client, idle.offers, idle.uses),
            None => {
                let (client, offers) = connect(hop, &name).await?;
                (client, offers, 0)
            }
        };
        let mut tx = Transaction {
            client,
            hop: name,
            offers,
            uses,
            pool: Arc::clone(&hop.pool),
            accepted: Vec::new(),
            refused: Vec::new(),
        };
        match tx.run_envelope(xf, mail, size, rcpts).await {
            Ok(()) => Ok(tx),
            Err(f) => {
                tx.abort().await;
                Err(f)
            }
        }
    }

    async fn run_envelope(
        &mut self,
        xf: &Xforward,
        mail: &MailParams,
        size: usize,
        rcpts: &[RcptParams],
    ) -> Result<(), Failure> {
        let name = self.hop.clone();
        let offers = self.offers.clone();
        for cmd in xf.commands(&offers.xforward) {
            let r = self.command(cmd).await?;
            if r.code != 250 {
                // A next hop that offers XFORWARD and then refuses it is
                // misconfigured: try again later rather than lose the client.
                return Err(match refusal(&name, &r) {
                    Failure::Permanent(r) | Failure::Temporary(r) => Failure::Temporary(Reply {
                        code: 451,
                        enhanced: Some("4.4.0".into()),
                        text: r.text,
                    }),
                });
            }
        }
        let mut mail_cmd = format!("MAIL FROM:<{}>", mail.sender);
        if mail.eight_bit && offers.eight_bit {
            mail_cmd.push_str(" BODY=8BITMIME");
        }
        if mail.smtputf8 && offers.smtputf8 {
            mail_cmd.push_str(" SMTPUTF8");
        }
        if offers.size {
            mail_cmd.push_str(&format!(" SIZE={size}"));
        }
        if offers.dsn {
            if let Some(ret) = mail.ret {
                mail_cmd.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = &mail.envid {
                mail_cmd.push_str(&format!(" ENVID={}", xforward::xtext_encode(envid)));
            }
        }
        mail_cmd.push_str("\r\n");
        let mut commands = vec![mail_cmd];
        for r in rcpts {
            let mut c = format!("RCPT TO:<{}>", r.address);
            if offers.dsn {
                if r.notify != 0 {
                    c.push_str(&format!(" NOTIFY={}", notify_text(r.notify)));
                }
                if let Some(o) = &r.orcpt {
                    c.push_str(&format!(" ORCPT=rfc822;{}", xforward::xtext_encode(o)));
                }
            }
            c.push_str("\r\n");
            commands.push(c);
        }
        let replies = if offers.pipelining {
            let n = commands.len();
            let replies = with_timeout(
                &name,
                COMMAND_TIMEOUT,
                "the envelope replies",
                self.client.cmds(commands.iter().map(String::as_bytes)),
            )
            .await?;
            if replies.len() != n {
                return Err(temporary(&name, "missing replies to the envelope"));
            }
            replies
        } else {
            let mut replies = Vec::with_capacity(commands.len());
            for (i, c) in commands.iter().enumerate() {
                let r = self.command(c.clone()).await?;
                let stop = i == 0 && !(200..300).contains(&r.code);
                replies.push(r);
                if stop {
                    break;
                }
            }
            replies
        };
        let mail_reply = &replies[0];
        if !(200..300).contains(&mail_reply.code) {
            return Err(refusal(&name, mail_reply));
        }
        for (i, r) in replies[1..].iter().enumerate() {
            match r.code {
                200..=299 => self.accepted.push(i),
                500..=599 => self.refused.push((i, hop_reply(&name, r))),
                _ => return Err(refusal(&name, r)),
            }
        }
        Ok(())
    }

    async fn command(&mut self, cmd: String) -> Result<Response<String>, Failure> {
        let name = self.hop.clone();
        let verb = cmd.split_whitespace().next().unwrap_or("").to_owned();
        with_timeout(
            &name,
            COMMAND_TIMEOUT,
            &format!("the reply to {verb}"),
            self.client.cmd(cmd.as_bytes()),
        )
        .await
    }

    /// Sends the message (dot-stuffed by `mail-send`) to the accepted
    /// recipients and returns the next hop's final reply. Ends the session.
    pub async fn send(mut self, message: &[u8]) -> Result<Reply, Failure> {
        let name = self.hop.clone();
        let result = async {
            let r = self.command("DATA\r\n".into()).await?;
            if r.code != 354 {
                return Err(refusal(&name, &r));
            }
            let client = &mut self.client;
            let done = async {
                crate::notify::write_payload(client, message).await?;
                client.read().await
            };
            let r = with_timeout(&name, DATA_DONE_TIMEOUT, "the end of the message", done).await?;
            if (200..300).contains(&r.code) {
                Ok(hop_reply(&name, &r))
            } else {
                Err(refusal(&name, &r))
            }
        }
        .await;
        match &result {
            Ok(_) => self.pool.put(self.client, self.offers, self.uses + 1),
            Err(_) => self.abort().await,
        }
        result
    }

    /// Resets and closes the session (best effort; nothing was delivered).
    pub async fn abort(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let _ = self.client.rset().await;
            let _ = self.client.quit().await;
        })
        .await;
    }
}

fn notify_text(flags: u64) -> String {
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        return "NEVER".into();
    }
    let mut words = Vec::new();
    for (bit, word) in [
        (smtp_proto::RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (smtp_proto::RCPT_NOTIFY_FAILURE, "FAILURE"),
        (smtp_proto::RCPT_NOTIFY_DELAY, "DELAY"),
    ] {
        if flags & bit != 0 {
            words.push(word);
        }
    }
    words.join(",")
}

fn parse_offers(ehlo: &str) -> Offers {
    let mut o = Offers {
        xforward: xforward::offered(ehlo),
        ..Offers::default()
    };
    for line in ehlo.lines().skip(1) {
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match word.as_str() {
            "8BITMIME" => o.eight_bit = true,
            "SMTPUTF8" => o.smtputf8 = true,
            "DSN" => o.dsn = true,
            "SIZE" => o.size = true,
            "PIPELINING" => o.pipelining = true,
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_from_postfix_ehlo() {
        let ehlo = "mx.example.org\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nXFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\nCHUNKING";
        let o = parse_offers(ehlo);
        assert!(o.pipelining && o.size && o.eight_bit && o.dsn && o.smtputf8);
        assert_eq!(o.xforward.len(), 7);
        let o = parse_offers("mx\nSIZE");
        assert!(!o.pipelining && o.xforward.is_empty());
    }

    #[test]
    fn notify_words() {
        use smtp_proto::*;
        assert_eq!(notify_text(RCPT_NOTIFY_NEVER), "NEVER");
        assert_eq!(
            notify_text(RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_DELAY),
            "SUCCESS,DELAY"
        );
        let r = RcptParams {
            notify: RCPT_NOTIFY_SUCCESS,
            ..RcptParams::default()
        };
        assert!(!r.wants_failure_notice());
        assert!(RcptParams::default().wants_failure_notice());
    }

    #[test]
    fn replies_name_the_hop() {
        let r = Response {
            code: 550,
            esc: [5, 1, 1],
            message: "<x@y>: Recipient address rejected:\nUser unknown".to_owned(),
        };
        let reply = hop_reply("127.0.0.1:10025", &r);
        assert_eq!(
            reply.to_string(),
            "550 5.1.1 next hop 127.0.0.1:10025 said: <x@y>: Recipient address rejected: User unknown"
        );
        assert!(matches!(refusal("h", &r), Failure::Permanent(_)));
    }
}
