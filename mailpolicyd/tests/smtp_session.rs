//! The after-queue front end against a scripted client (playing Postfix's
//! content_filter client) and a tiny capture server (playing the next hop
//! and the `[notify] submit` port). No Postfix and no clamd: the policy
//! here decides on envelope facts only, so no scan is made. The end-to-end
//! suite with real Postfix and clamd is `e2e_after_queue.rs`.

use mailpolicyd::config::Config;
use mailpolicyd::filter::Filter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const POLICY: &str = r#"
mode after_queue
admin "admin@example.org"
rule "tempfail" { when sender == "later@outside.test" then tempfail "451 4.7.1 not now" }
rule "reject" { when sender == "reject@outside.test" then reject "554 5.7.1 go away" }
rule "discard" { when recipient matches "discard*@*" then discard, quarantine "held" }
rule "bounce" { when recipient matches "bounce*@*" then bounce }
rule "alert" { when recipient matches "alert*@*" then pass, alert admin }
rule "authenticated" { when authenticated then pass, tag "[AUTH]" }
rule "outbound" { when direction == outbound then pass, tag "[OUT]" }
rule "tag" { when recipient matches "tag*@*" then pass, tag "[TAGGED]" }
default pass
"#;

/// One transaction the capture server saw.
#[derive(Debug, Clone, Default)]
struct Captured {
    commands: Vec<String>,
    sender: String,
    accepted: Vec<String>,
    data: Option<Vec<u8>>,
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(self.data.as_deref().unwrap_or_default()).into_owned()
    }
}

/// A minimal SMTP server that records what it gets. Recipients starting
/// with `refuse` get 550, with `later` 451; a message containing
/// `REFUSE-THIS-DATA` gets 554 at the end of data.
struct Capture {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    async fn start() -> Capture {
        Capture::start_with(false).await
    }

    /// `hang_up`: close the connection after each message (a next hop that
    /// does not keep sessions), to see that a dead pooled session is replaced.
    async fn start_with(hang_up: bool) -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((sock, _)) = listener.accept().await {
                n += 1;
                let s = Arc::clone(&s);
                tokio::spawn(capture_session(sock, s, n, hang_up));
            }
        });
        Capture { addr, seen }
    }

    fn delivered(&self) -> Vec<Captured> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.data.is_some())
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }
}

async fn capture_session(
    sock: TcpStream,
    seen: Arc<Mutex<Vec<Captured>>>,
    n: usize,
    hang_up: bool,
) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 capture ESMTP\r\n").await.unwrap();
    let mut cur = Captured::default();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        cur.commands.push(cmd.clone());
        let reply: String = if upper.starts_with("EHLO") {
            "250-capture\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n250-DSN\r\n250 XFORWARD NAME ADDR PROTO HELO IDENT SOURCE".into()
        } else if upper.starts_with("XFORWARD") {
            "250 2.0.0 Ok".into()
        } else if upper.starts_with("MAIL FROM:") {
            cur.sender = cmd[10..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<')
                .to_owned();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let a = cmd[8..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<')
                .to_owned();
            if a.starts_with("refuse") {
                format!("550 5.1.1 <{a}>: Recipient address rejected: User unknown")
            } else if a.starts_with("later") {
                "451 4.3.0 <later>: try later".into()
            } else {
                cur.accepted.push(a);
                "250 2.1.5 Ok".into()
            }
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n").await.unwrap();
            let mut data = Vec::new();
            let mut l = Vec::new();
            loop {
                l.clear();
                if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" {
                    break;
                }
                let unstuffed = if l.starts_with(b".") { &l[1..] } else { &l[..] };
                data.extend_from_slice(unstuffed);
            }
            let refuse = String::from_utf8_lossy(&data).contains("REFUSE-THIS-DATA");
            if refuse {
                cur.commands.push("(refused data)".into());
                "554 5.6.0 message refused".into()
            } else {
                cur.data = Some(data);
                let done = std::mem::take(&mut cur);
                seen.lock().unwrap().push(done);
                format!("250 2.0.0 Ok: queued as CAP{n}")
            }
        } else if upper == "RSET" {
            let done = std::mem::take(&mut cur);
            seen.lock().unwrap().push(done);
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
            break;
        } else {
            "502 5.5.2 what".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes())
            .await
            .unwrap();
        if hang_up && reply.contains("queued as") {
            return;
        }
    }
    if !cur.commands.is_empty() {
        seen.lock().unwrap().push(cur);
    }
}

/// A filter serving the after-queue front end on an ephemeral port.
struct Lab {
    dir: PathBuf,
    addr: SocketAddr,
    next_hop: Capture,
    notify: Capture,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn lab_with(clients: Option<&str>, next_hop: Option<SocketAddr>) -> Lab {
    lab_full(clients, next_hop, false).await
}

async fn lab_full(clients: Option<&str>, next_hop: Option<SocketAddr>, hang_up: bool) -> Lab {
    lab_any(clients, next_hop, hang_up, false).await
}

async fn lab_any(
    clients: Option<&str>,
    next_hop: Option<SocketAddr>,
    hang_up: bool,
    authenticated: bool,
) -> Lab {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mailpolicyd-smtp-session-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("site.policy"), POLICY).unwrap();
    let hop = Capture::start_with(hang_up).await;
    let notify = Capture::start().await;
    let next_hop = next_hop.unwrap_or(hop.addr);
    let clients = clients
        .map(|c| format!("clients = [\"{c}\"]\n"))
        .unwrap_or_default();
    let config = format!(
        "policy = \"site.policy\"\n\
         [smtp]\nlisten = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:{}\"\n{clients}\
         [clamd]\naddress = \"unix:{}/no-clamd\"\n\
         [site]\nlocal_domains = [\"example.org\"]\nmynetworks = [\"10.0.0.0/8\"]\n\
         [quarantine]\ndir = \"quarantine\"\n\
         [notify]\nsubmit = \"inet:127.0.0.1:{}\"\nfrom = \"postmaster@example.org\"\nhostname = \"filter.example.org\"\n\
         [log]\ndecisions = \"decisions.jsonl\"\n",
        next_hop.port(),
        dir.display(),
        notify.addr.port()
    );
    let config = Config::parse(&config, "test.toml", &dir).unwrap();
    let filter = Arc::new(Filter::new(config).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (t, s) = (tasks.clone(), shutdown.clone());
    tokio::spawn(async move {
        mailpolicyd::smtp::serve_listener(listener, filter, t, s, authenticated).await
    });
    Lab {
        dir,
        addr,
        next_hop: hop,
        notify,
        shutdown,
        tasks,
    }
}

async fn lab() -> Lab {
    lab_with(None, None).await
}

impl Lab {
    fn decisions(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("decisions.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn quarantined(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for bucket in std::fs::read_dir(self.dir.join("quarantine"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(bucket.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if f.path().extension().is_some_and(|e| e == "eml") {
                    out.push(f.path());
                }
            }
        }
        out
    }

    async fn client(&self) -> Client {
        let sock = TcpStream::connect(self.addr).await.unwrap();
        let (r, w) = sock.into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }
}

struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    /// One whole reply (all its lines), or "" when the server closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(60), self.r.read_line(&mut line))
                .await
                .expect("the filter answers")
                .unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// A whole transaction as Postfix pipelines it; returns the final reply.
    async fn transaction(
        &mut self,
        xforward: &[&str],
        from: &str,
        to: &[&str],
        body: &str,
    ) -> String {
        let mut batch = String::new();
        for x in xforward {
            batch.push_str(&format!("XFORWARD {x}\r\n"));
        }
        batch.push_str(&format!("MAIL FROM:<{from}> BODY=8BITMIME\r\n"));
        for t in to {
            batch.push_str(&format!("RCPT TO:<{t}>\r\n"));
        }
        batch.push_str("DATA\r\n");
        self.send(batch.as_bytes()).await;
        for _ in xforward {
            let r = self.reply().await;
            assert!(r.starts_with("250 "), "XFORWARD: {r}");
        }
        let r = self.reply().await;
        assert!(r.starts_with("250 "), "MAIL: {r}");
        for _ in to {
            let r = self.reply().await;
            assert!(r.starts_with("250 "), "RCPT: {r}");
        }
        let r = self.reply().await;
        assert!(r.starts_with("354 "), "DATA: {r}");
        let mut data = String::new();
        for line in body.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send(data.as_bytes()).await;
        self.reply().await
    }
}

fn body(subject: &str) -> String {
    format!("From: <s@outside.test>\r\nTo: <alice@example.org>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@outside.test>\r\n\r\nHello.\r\n.leading dot\r\n..two dots\r\nbye")
}

const XF: [&str; 2] = [
    "NAME=mx.outside.test ADDR=203.0.113.9 PORT=4000 PROTO=ESMTP HELO=mx.outside.test",
    "IDENT=QID123 SOURCE=REMOTE",
];

#[tokio::test]
async fn pass_is_relayed_with_xforward_and_the_exact_bytes() {
    let lab = lab().await;
    let mut c = lab.client().await;
    let ehlo = c.cmd("EHLO mx.example.org").await;
    for ext in [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "DSN",
        "XFORWARD NAME ADDR",
    ] {
        assert!(ehlo.contains(ext), "{ext} in {ehlo}");
    }
    let b = body("plain");
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org", "bob@example.org"],
            &b,
        )
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert!(
        r.contains("queued as CAP"),
        "the next hop's reply is quoted: {r}"
    );
    let got = lab.next_hop.delivered();
    assert_eq!(got.len(), 1, "{got:?}");
    let t = &got[0];
    assert_eq!(t.sender, "s@outside.test");
    assert_eq!(t.accepted, ["alice@example.org", "bob@example.org"]);
    // The message arrives byte for byte (dot-unstuffed by us, stuffed again
    // by the relay, unstuffed by the capture server).
    assert_eq!(t.text(), format!("{b}\r\n"));
    // XFORWARD passed on, in attributes the next hop offered.
    let xf: Vec<&String> = t
        .commands
        .iter()
        .filter(|c| c.starts_with("XFORWARD"))
        .collect();
    let xf_all = xf.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
    assert!(xf_all.contains("ADDR=203.0.113.9"), "{xf_all}");
    assert!(xf_all.contains("IDENT=QID123"), "{xf_all}");
    assert!(xf_all.contains("HELO=mx.outside.test"), "{xf_all}");
    assert!(!xf_all.contains("PORT="), "PORT was not offered: {xf_all}");
    let mail = t.commands.iter().find(|c| c.starts_with("MAIL")).unwrap();
    assert!(mail.contains("BODY=8BITMIME"), "{mail}");
    let log = lab.decisions();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["verdict"], "accept");
    assert_eq!(log[0]["queue_id"], "QID123");
    assert_eq!(log[0]["client_ip"], "203.0.113.9");
    assert_eq!(log[0]["recipients"][0]["direction"], "inbound");
    // The session goes on: a second message on the same connection.
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org"],
            &body("second"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert_eq!(got.len(), 2);
    // The session with the next hop was kept and reused: no second EHLO,
    // an RSET to check it first, and the same connection's queue IDs.
    assert!(
        got[1].commands.iter().all(|c| !c.starts_with("EHLO")),
        "{:?}",
        got[1].commands
    );
    let all = lab.next_hop.all();
    assert!(all.iter().any(|t| t.commands == ["RSET"]), "{all:?}");
    assert!(r.contains("queued as CAP1"), "{r}");
    assert!(c.cmd("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn a_dead_pooled_session_is_replaced() {
    let lab = lab_full(None, None, true).await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    for i in 0..3 {
        let r = c
            .transaction(
                &XF,
                "s@outside.test",
                &["alice@example.org"],
                &body(&format!("hang{i}")),
            )
            .await;
        assert!(r.starts_with("250 "), "{i}: {r}");
        assert!(
            r.contains(&format!("queued as CAP{}", i + 1)),
            "a new session each time: {r}"
        );
    }
    assert_eq!(lab.next_hop.delivered().len(), 3);
    assert_eq!(lab.decisions().len(), 3);
}

#[tokio::test]
async fn direction_comes_from_the_original_client() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    // From mynetworks (10/8) via XFORWARD: outbound; the peer is 127.0.0.1,
    // which is not in mynetworks here, so only XFORWARD can make it so.
    let r = c
        .transaction(
            &["ADDR=10.1.2.3 PROTO=ESMTP HELO=ws1", "IDENT=Q2"],
            "user@example.org",
            &["someone@outside.test"],
            &body("out"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert!(
        got[0].text().contains("Subject: [OUT] out"),
        "{}",
        got[0].text()
    );
    assert_eq!(lab.decisions()[0]["recipients"][0]["direction"], "outbound");
    // PROTO=ESMTPA: the client authenticated (RFC 3848), from outside.
    let r = c
        .transaction(
            &["ADDR=198.51.100.7 PROTO=ESMTPSA HELO=laptop"],
            "user@example.org",
            &["someone@outside.test"],
            &body("auth"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert!(
        got[1].text().contains("Subject: [AUTH] auth\r\n"),
        "{}",
        got[1].text()
    );
    assert_eq!(lab.decisions()[1]["recipients"][0]["direction"], "outbound");
    // No XFORWARD: the client is unknown (not Postfix's 127.0.0.1).
    let r = c
        .transaction(
            &[],
            "user@example.org",
            &["someone@outside.test"],
            &body("nox"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let d = &lab.decisions()[2];
    assert_eq!(d["client_ip"], serde_json::Value::Null);
    assert_eq!(d["recipients"][0]["direction"], "open_relay");
}

#[tokio::test]
async fn the_authenticated_port_makes_mail_originating() {
    // amavisd-new's ORIGINATING bank on 10026: the submission service's
    // mail, from a roaming client outside mynetworks.
    let lab = lab_any(None, None, false, true).await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    let r = c
        .transaction(
            &["ADDR=198.51.100.7 PROTO=ESMTP HELO=laptop"],
            "user@example.org",
            &["someone@outside.test"],
            &body("roaming"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert!(
        got[0].text().contains("Subject: [AUTH] roaming\r\n"),
        "{}",
        got[0].text()
    );
    let d = &lab.decisions()[0];
    assert_eq!(d["client_ip"], "198.51.100.7");
    assert_eq!(d["recipients"][0]["direction"], "outbound");
}

#[tokio::test]
async fn split_relays_some_bounces_some_quarantines_some() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &[
                "tag1@example.org",
                "discard1@example.org",
                "bounce1@example.org",
                "alice@example.org",
            ],
            &body("split"),
        )
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let got = lab.next_hop.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].accepted, ["tag1@example.org", "alice@example.org"]);
    assert!(
        got[0].text().contains("Subject: [TAGGED] split\r\n"),
        "{}",
        got[0].text()
    );
    // The bounced recipient's clean DSN went to the sender, without the body.
    let dsn = lab.notify.delivered();
    assert_eq!(dsn.len(), 1, "{dsn:?}");
    assert_eq!(dsn[0].sender, "");
    assert_eq!(dsn[0].accepted, ["s@outside.test"]);
    assert!(dsn[0]
        .text()
        .contains("Final-Recipient: rfc822; bounce1@example.org"));
    assert!(!dsn[0].text().contains("leading dot"), "no body in the DSN");
    // The discarded recipient's copy is in the quarantine.
    let q = lab.quarantined();
    assert_eq!(q.len(), 1);
    assert!(q[0].to_string_lossy().contains("/held/"));
    let log = &lab.decisions()[0];
    assert_eq!(log["verdict"], "accept");
    assert!(log["quarantine_id"].is_string());
}

#[tokio::test]
async fn reject_tempfail_discard_answers() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    let r = c
        .transaction(
            &XF,
            "reject@outside.test",
            &["alice@example.org"],
            &body("r"),
        )
        .await;
    assert!(r.starts_with("554 5.7.1 go away"), "{r}");
    let r = c
        .transaction(
            &XF,
            "later@outside.test",
            &["alice@example.org"],
            &body("t"),
        )
        .await;
    assert!(r.starts_with("451 4.7.1 not now"), "{r}");
    let r = c
        .transaction(&XF, "s@outside.test", &["discard9@example.org"], &body("d"))
        .await;
    assert!(
        r.starts_with("250 2.0.0 Ok: discarded, quarantined as "),
        "{r}"
    );
    assert!(lab.next_hop.all().is_empty(), "nothing relayed");
    assert!(
        lab.notify.all().is_empty(),
        "no DSN for a whole-message reject"
    );
    let verdicts: Vec<String> = lab
        .decisions()
        .iter()
        .map(|d| d["verdict"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verdicts, ["reject", "tempfail", "discard"]);
}

#[tokio::test]
async fn next_hop_down_is_a_tempfail_and_no_alert() {
    // A port nothing listens on.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = free.local_addr().unwrap();
    drop(free);
    let lab = lab_with(None, Some(dead)).await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alert1@example.org"],
            &body("down"),
        )
        .await;
    assert!(r.starts_with("451 4.4.0 next hop"), "{r}");
    let log = lab.decisions();
    assert_eq!(log[0]["verdict"], "tempfail");
    // The alert waits for the retry (it would go out twice otherwise).
    assert!(lab.notify.all().is_empty(), "{:?}", lab.notify.all());
}

#[tokio::test]
async fn next_hop_refusals() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    // One recipient refused permanently: the others get the message, the
    // sender a clean DSN for that one, Postfix a 250.
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org", "refuse1@example.org"],
            &body("one"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert_eq!(got[0].accepted, ["alice@example.org"]);
    let dsn = lab.notify.delivered();
    assert_eq!(dsn.len(), 1);
    assert!(dsn[0].text().contains("refuse1@example.org"));
    assert!(dsn[0].text().contains("5.1.1"));
    // Every recipient refused and the policy passed them all: the next
    // hop's own 5xx goes back, and Postfix bounces as without a filter.
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["refuse2@example.org"],
            &body("all"),
        )
        .await;
    assert!(r.starts_with("550 5.1.1 next hop"), "{r}");
    // A temporary refusal of one recipient: 4xx for the whole message, and
    // nothing delivered (the transaction is reset before DATA).
    let before = lab.next_hop.delivered().len();
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org", "later1@example.org"],
            &body("tmp"),
        )
        .await;
    assert!(r.starts_with("451 "), "{r}");
    assert_eq!(lab.next_hop.delivered().len(), before);
    // The message refused at the end of data: the policy-bounced recipient
    // already had its DSN, so the rest get one too and Postfix gets 250.
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org", "bounce2@example.org"],
            &format!("{}\r\nREFUSE-THIS-DATA", body("refd")),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let dsn = lab.notify.delivered();
    assert_eq!(dsn.len(), 3, "{dsn:?}");
    assert!(dsn[2].text().contains("alice@example.org") && dsn[2].text().contains("5.6.0"));
    let verdicts: Vec<String> = lab
        .decisions()
        .iter()
        .map(|d| d["verdict"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verdicts, ["accept", "reject", "tempfail", "accept"]);
}

#[tokio::test]
async fn protocol_errors_and_limits() {
    let lab = lab().await;
    let mut c = lab.client().await;
    assert!(c.cmd("MAIL FROM:<a@b>").await.starts_with("503"));
    assert!(c.cmd("XFORWARD ADDR=1.2.3.4").await.starts_with("503"));
    assert!(c.cmd("EHLO mx").await.starts_with("250"));
    assert!(c.cmd("BOGUS").await.starts_with("502"));
    assert!(c.cmd("DATA").await.starts_with("503"));
    assert!(c.cmd("RCPT TO:<a@b>").await.starts_with("503"));
    assert!(c.cmd("XFORWARD FOO=bar").await.starts_with("501"));
    assert!(c.cmd("XFORWARD ADDR").await.starts_with("501"));
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd("XFORWARD ADDR=1.2.3.4").await.starts_with("503"));
    assert!(c.cmd("MAIL FROM:<a@b>").await.starts_with("503"));
    assert!(c.cmd("DATA").await.starts_with("554"));
    assert!(c
        .cmd("MAIL FROM:<a@b> SIZE=999999999999")
        .await
        .starts_with("503"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    assert!(c
        .cmd("MAIL FROM:<a@b> SIZE=999999999999")
        .await
        .starts_with("452"));
    assert!(c
        .cmd("MAIL FROM:<a@b> FROBNICATE=1")
        .await
        .starts_with("555"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert!(c.cmd("VRFY x").await.starts_with("502"));
    // Binary garbage and a NUL: an error, not a crash.
    c.send(b"\x00\xff\xfe garbage \x01\r\n").await;
    assert!(c.reply().await.starts_with("50"));
    // A line over the limit: 500 and the connection closes.
    c.send(&vec![b'A'; 10_000]).await;
    c.send(b"\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    let rest = c.reply().await;
    assert!(rest.starts_with("421") || rest.is_empty(), "{rest}");
    // The server still serves others.
    let mut c2 = lab.client().await;
    assert!(c2.cmd("EHLO mx").await.starts_with("250"));
    // Too many errors: 421.
    let mut last = String::new();
    for _ in 0..30 {
        last = c2.cmd("BOGUS").await;
        if last.starts_with("421") || last.is_empty() {
            break;
        }
    }
    assert!(last.starts_with("421") || last.is_empty(), "{last}");
}

#[tokio::test]
async fn empty_and_dot_only_messages() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    c.cmd("MAIL FROM:<s@outside.test>").await;
    c.cmd("RCPT TO:<alice@example.org>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    // An empty message: the first line is the end mark.
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(lab.next_hop.delivered()[0].text(), "");
    // A message whose first line is dot-stuffed.
    c.cmd("MAIL FROM:<s@outside.test>").await;
    c.cmd("RCPT TO:<alice@example.org>").await;
    c.cmd("DATA").await;
    c.send(b"..x\r\nSubject: y\r\n\r\nz\r\n.\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(
        lab.next_hop.delivered()[1].text(),
        ".x\r\nSubject: y\r\n\r\nz\r\n"
    );
}

#[tokio::test]
async fn the_peer_vanishing_mid_message_accepts_nothing() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    c.cmd("MAIL FROM:<s@outside.test>").await;
    c.cmd("RCPT TO:<alice@example.org>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: cut\r\n\r\nhalf a mess").await;
    drop(c);
    // A later session still works and the cut message was never relayed.
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    let r = c
        .transaction(
            &XF,
            "s@outside.test",
            &["alice@example.org"],
            &body("after"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let got = lab.next_hop.delivered();
    assert_eq!(got.len(), 1);
    assert!(got[0].text().contains("Subject: after"));
    assert_eq!(lab.decisions().len(), 1);
}

#[tokio::test]
async fn clients_outside_the_list_are_refused() {
    let lab = lab_with(Some("192.0.2.0/24"), None).await;
    let mut sock = TcpStream::connect(lab.addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("554 5.7.1"), "{text}");
}

#[tokio::test]
async fn concurrent_sessions_account_for_every_message() {
    let lab = lab().await;
    let mut handles = Vec::new();
    for i in 0..20 {
        let addr = lab.addr;
        handles.push(tokio::spawn(async move {
            let sock = TcpStream::connect(addr).await.unwrap();
            let (r, w) = sock.into_split();
            let mut c = Client {
                r: BufReader::new(r),
                w,
            };
            c.reply().await;
            c.cmd("EHLO mx").await;
            let mut replies = Vec::new();
            for j in 0..5 {
                let rcpt = if j % 2 == 0 {
                    "alice@example.org"
                } else {
                    "discard@example.org"
                };
                replies.push(
                    c.transaction(&XF, "s@outside.test", &[rcpt], &body(&format!("m{i}-{j}")))
                        .await,
                );
            }
            c.cmd("QUIT").await;
            replies
        }));
    }
    let mut ok = 0;
    for h in handles {
        for r in h.await.unwrap() {
            assert!(r.starts_with("250 "), "{r}");
            ok += 1;
        }
    }
    assert_eq!(ok, 100);
    // 60 relayed (j = 0, 2, 4), 40 quarantined; each exactly once.
    let mut subjects: Vec<String> = lab
        .next_hop
        .delivered()
        .iter()
        .map(|t| {
            let text = t.text();
            text.lines()
                .find(|l| l.starts_with("Subject: "))
                .unwrap()
                .to_owned()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 60);
    assert_eq!(lab.next_hop.delivered().len(), 60);
    assert_eq!(lab.quarantined().len(), 40);
    assert_eq!(lab.decisions().len(), 100);
}

#[tokio::test]
async fn shutdown_closes_idle_sessions() {
    let lab = lab().await;
    let mut c = lab.client().await;
    c.cmd("EHLO mx").await;
    lab.shutdown.cancel();
    let r = c.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r}");
    lab.tasks.close();
    tokio::time::timeout(Duration::from_secs(30), lab.tasks.wait())
        .await
        .expect("sessions end after shutdown");
}

// ---- hostile input --------------------------------------------------------------------------

mod hostile {
    use super::POLICY;
    use mailpolicyd::config::Config;
    use mailpolicyd::filter::Filter;
    use mailpolicyd::smtp::relay::{NextHop, Pool};
    use mailpolicyd::smtp::session::{Context, Session};
    use proptest::prelude::*;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One filter for every case: the next hop is a closed port (a message
    /// that gets through is tempfailed), so nothing leaves the test.
    fn filter() -> Arc<Filter> {
        static F: OnceLock<Arc<Filter>> = OnceLock::new();
        Arc::clone(F.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!(
                "mailpolicyd-smtp-hostile-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("site.policy"), POLICY).unwrap();
            let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = dead.local_addr().unwrap().port();
            drop(dead);
            let config = format!(
                "policy = \"site.policy\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:{port}\"\n\
                 [site]\nlocal_domains = [\"example.org\"]\n[quarantine]\ndir = \"q\"\n\
                 [notify]\nsubmit = \"inet:127.0.0.1:{port}\"\nhostname = \"filter.example.org\"\n"
            );
            Arc::new(Filter::new(Config::parse(&config, "t.toml", &dir).unwrap()).unwrap())
        }))
    }

    fn input() -> impl Strategy<Value = Vec<u8>> {
        let fixed: Vec<&'static [u8]> = vec![
            b"EHLO mx.example.org\r\n",
            b"HELO x\r\n",
            b"MAIL FROM:<s@outside.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=a+2Bb\r\n",
            b"MAIL FROM:<>\r\n",
            b"MAIL FROM:<a b@c>\r\n",
            b"RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c\r\n",
            b"RCPT TO:<discard1@example.org>\r\n",
            b"RCPT TO:<>\r\n",
            b"DATA\r\n",
            b".\r\n",
            b"..\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"XFORWARD ADDR=10.1.2.3 IDENT=Q1 PROTO=ESMTPA\r\n",
            b"XFORWARD NAME=[UNAVAILABLE] HELO=+ZZ+0D\r\n",
            b"XFORWARD ADDR=IPv6:::1\r\n",
            b"BDAT 7 LAST\r\n",
            b"STARTTLS\r\n",
            b"AUTH PLAIN AAAA\r\n",
            b"QUIT\r\n",
            b"\r\n",
            b"\n",
            b"\r",
            b"\0",
        ];
        let token = prop_oneof![
            8 => proptest::sample::select(fixed).prop_map(|b| b.to_vec()),
            2 => proptest::collection::vec(any::<u8>(), 0..40),
            1 => "[ -~]{0,60}\r\n".prop_map(String::into_bytes),
            1 => (4000usize..5000).prop_map(|n| vec![b'A'; n]),
        ];
        proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
    }

    /// Runs one session over an in-memory pipe with `bytes` as the peer's
    /// whole input; returns everything the session wrote.
    fn run_session(bytes: &[u8]) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (ours, theirs) = tokio::io::duplex(1 << 20);
            let ctx = Context {
                filter: filter(),
                next_hop: NextHop {
                    address: filter().config().smtp.as_ref().unwrap().next_hop.clone(),
                    helo: "filter.example.org".into(),
                    pool: Arc::new(Pool::default()),
                },
                hostname: "filter.example.org".into(),
                shutdown: tokio_util::sync::CancellationToken::new(),
                authenticated: false,
            };
            let session = tokio::spawn(Session::new(theirs, "test".into(), ctx).run());
            let (mut r, mut w) = tokio::io::split(ours);
            let reader = tokio::spawn(async move {
                let mut out = Vec::new();
                let _ = r.read_to_end(&mut out).await;
                out
            });
            let _ = w.write_all(bytes).await;
            let _ = w.shutdown().await;
            tokio::time::timeout(Duration::from_secs(60), session)
                .await
                .expect("the session ends")
                .expect("the session does not panic");
            drop(w);
            tokio::time::timeout(Duration::from_secs(60), reader)
                .await
                .expect("the output ends")
                .unwrap()
        })
    }

    #[test]
    fn a_whole_transaction_reaches_the_filter() {
        let out = run_session(
            b"EHLO mx\r\nXFORWARD ADDR=203.0.113.9\r\nMAIL FROM:<s@outside.test>\r\n\
              RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n\
              MAIL FROM:<s@outside.test>\r\nRCPT TO:<discard1@example.org>\r\nDATA\r\n\
              Subject: y\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        );
        let text = String::from_utf8(out).unwrap();
        // The next hop is down: 4xx; the discarded one is accounted for: 250.
        assert!(text.contains("\r\n451 4.4.0 next hop"), "{text}");
        assert!(
            text.contains("\r\n250 2.0.0 Ok: discarded, quarantined as "),
            "{text}"
        );
        assert!(text.ends_with("221 2.0.0 Bye\r\n"), "{text}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the peer sends, the session ends (no panic, no hang)
        /// and every reply line is a well-formed SMTP reply line.
        #[test]
        fn any_input_gets_well_formed_replies(bytes in input()) {
            let out = run_session(&bytes);
            let text = String::from_utf8(out).expect("replies are UTF-8");
            prop_assert!(text.starts_with("220 "), "{text}");
            for line in text.split_terminator("\r\n") {
                let b = line.as_bytes();
                prop_assert!(
                    b.len() >= 4
                        && b[..3].iter().all(u8::is_ascii_digit)
                        && (b[3] == b' ' || b[3] == b'-')
                        && !line.contains(['\r', '\n']),
                    "bad reply line {line:?} in {text:?}"
                );
            }
        }
    }
}
