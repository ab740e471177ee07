//! What the daemon parses itself — the config, clamd's replies, message
//! headers, and whatever a (broken or hostile) MTA sends over the milter
//! protocol — never panics, never hangs, and keeps its invariants.

use mailpolicyd::clamd::{parse_reply, ScanResult};
use mailpolicyd::config::{Config, SocketAddress};
use mailpolicyd::filter::Filter;
use mailpolicyd::message::{header_end, raw_header, tagged_subject, Envelope, Message};
use mailpolicyd::sanitize::{header_text, log_text};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const VALID_CONFIG: &str = r#"policy = "p.policy"
[milter]
listen = "inet:127.0.0.1:7358"
[clamd]
address = "unix:/run/clamav/clamd.ctl"
timeout_ms = 30000
[site]
local_domains = ["example.org", "*.example.net"]
mynetworks = ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]
forging_viruses = ["(?i)sobig|bagle|mydoom|netsky|@mm|worm"]
[quarantine]
dir = "/var/lib/mailpolicyd/quarantine"
[notify]
submit = "inet:127.0.0.1:10025"
from = "postmaster@example.org"
[log]
decisions = "/var/log/mailpolicyd/decisions.jsonl"
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn config_text_never_panics_and_errors_are_placed(text in ".{0,400}") {
        if let Err(e) = Config::parse(&text, "c.toml", Path::new("/")) {
            let lines = text.split('\n').count();
            prop_assert!(e.line <= lines, "line {} of {} in {e}", e.line, lines);
            prop_assert!(!e.message.contains('\n'), "{e}");
        }
    }

    #[test]
    fn mutated_configs_never_panic(at in 0usize..VALID_CONFIG.len(), insert in ".{0,20}", cut in 0usize..30) {
        let mut text = VALID_CONFIG.to_owned();
        let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (at..=(at + cut).min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(at);
        text.replace_range(at..end, &insert);
        let _ = Config::parse(&text, "c.toml", Path::new("/"));
    }

    #[test]
    fn socket_addresses_never_panic(text in ".{0,60}") {
        if let Ok(a) = SocketAddress::parse(&text) {
            // What parses prints in a form that parses to the same address.
            prop_assert_eq!(SocketAddress::parse(&a.to_string()).ok(), Some(a));
        }
    }

    #[test]
    fn clamd_replies(reply in proptest::collection::vec(any::<u8>(), 0..300)) {
        match parse_reply(&reply) {
            ScanResult::Found(names) => {
                for (i, n) in names.iter().enumerate() {
                    prop_assert!(!n.is_empty() && !n.contains(['\0', '\n']), "{n:?}");
                    prop_assert!(!names[..i].contains(n), "duplicate {n:?}");
                }
            }
            ScanResult::Error(e) => prop_assert!(!e.contains(['\0', '\n', '\r']), "{e:?}"),
            ScanResult::Clean | ScanResult::Timeout => {}
        }
    }

    #[test]
    fn clamd_reply_lines(names in proptest::collection::vec("[A-Za-z0-9./@-]{1,30}", 1..5)) {
        let mut reply = Vec::new();
        for n in &names {
            reply.extend_from_slice(format!("/spool/x.eml: {n} FOUND\0").as_bytes());
        }
        let mut want: Vec<String> = Vec::new();
        for n in &names {
            if !want.contains(n) {
                want.push(n.clone());
            }
        }
        prop_assert_eq!(parse_reply(&reply), ScanResult::Found(want));
    }

    #[test]
    fn sanitised_text_has_no_controls(text in any::<String>()) {
        prop_assert!(!header_text(&text).chars().any(char::is_control));
        prop_assert!(!log_text(&text).chars().any(char::is_control));
    }

    #[test]
    fn headers_and_tags(bytes in proptest::collection::vec(any::<u8>(), 0..400), tag in any::<String>()) {
        let end = header_end(&bytes);
        prop_assert!(end <= bytes.len());
        if let Some((range, value)) = raw_header(&bytes[..end], b"subject") {
            prop_assert!(range.end <= end && range.start < range.end);
            prop_assert!(value.len() < range.len());
        }
        let message = Message { envelope: Envelope::default(), bytes: bytes.clone() };
        let _ = message.subject();
        let tags = vec![tag];
        if let Some(tagged) = message.with_tags(&tags) {
            // The body is untouched.
            prop_assert!(tagged.ends_with(&bytes[end..]));
        }
        if let Some(v) = tagged_subject(Some(b" x"), &tags) {
            prop_assert!(!v.contains(&b'\n') && !v.contains(&b'\r'));
            // Tagging is done once: a tagged subject is not tagged again.
            prop_assert_eq!(tagged_subject(Some(&v), &tags), None);
        }
    }
}

/// A filter whose policy needs no scanner, so no clamd is involved.
fn filter(dir: &Path) -> Arc<Filter> {
    std::fs::write(
        dir.join("p.policy"),
        "rule \"r\" { when sender == \"drop@x\" then discard, quarantine } default pass\n",
    )
    .unwrap();
    let config = format!(
        "policy = \"p.policy\"\n[milter]\nlisten = \"inet:127.0.0.1:1\"\n[quarantine]\ndir = \"{}\"\n[notify]\nsubmit = \"inet:127.0.0.1:1\"\n",
        dir.join("q").display()
    );
    Arc::new(Filter::new(Config::parse(&config, "c.toml", dir).unwrap()).unwrap())
}

fn packet(command: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    p.push(command);
    p.extend_from_slice(payload);
    p
}

/// Runs one milter connection over an in-memory pipe with `input` from the
/// MTA side; returns what the milter answered. Fails on a hang.
fn milter_exchange(filter: &Arc<Filter>, input: Vec<u8>) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (mta, milter) = tokio::io::duplex(1 << 20);
        let f = Arc::clone(filter);
        let server = tokio::spawn(async move {
            let mut session = mailpolicyd::milter::Session::new(f);
            let mut server = miltr_server::Server::default_postfix(&mut session);
            let _ = server.handle_connection(milter.compat()).await;
        });
        let (mut rd, mut wr) = tokio::io::split(mta);
        wr.write_all(&input).await.unwrap();
        wr.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut out))
            .await
            .expect("the milter hung")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the milter hung")
            .unwrap();
        out
    })
}

fn optneg() -> Vec<u8> {
    let mut p = 6u32.to_be_bytes().to_vec();
    p.extend_from_slice(&0x1ffu32.to_be_bytes());
    p.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
    packet(b'O', &p)
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mpd-inputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_whole_transaction_is_answered() {
    let dir = tempdir("whole");
    let f = filter(&dir);
    let mut input = optneg();
    input.extend(packet(b'C', b"client\x004\x30\x39192.0.2.7\x00"));
    input.extend(packet(b'M', b"<drop@x>\x00"));
    input.extend(packet(b'R', b"<alice@example.org>\x00"));
    input.extend(packet(b'L', b"Subject\x00 hi\x00"));
    input.extend(packet(b'N', b""));
    input.extend(packet(b'B', b"body\r\n"));
    input.extend(packet(b'E', b""));
    let out = milter_exchange(&f, input);
    // The last reply is SMFIR_DISCARD ('d'): the policy discarded it.
    assert_eq!(out.last(), Some(&b'd'), "{out:?}");
    let copies = std::fs::read_dir(dir.join("q").join("default"))
        .unwrap()
        .count();
    assert_eq!(copies, 2, "one .eml and one .json");
    let eml = std::fs::read_dir(dir.join("q").join("default"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    assert_eq!(std::fs::read(eml).unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
    let _ = std::fs::remove_dir_all(dir);
}

fn command() -> impl Strategy<Value = Vec<u8>> {
    let code = prop::sample::select(b"OCHMRLNBEADQTUK".to_vec());
    (code, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(c, p)| packet(c, &p))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_milter_commands_never_panic(cmds in proptest::collection::vec(command(), 0..12), valid_start in any::<bool>()) {
        let dir = tempdir("cmds");
        let f = filter(&dir);
        let mut input = if valid_start { optneg() } else { Vec::new() };
        for c in cmds {
            input.extend(c);
        }
        milter_exchange(&f, input);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn random_milter_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempdir("bytes");
        let f = filter(&dir);
        milter_exchange(&f, bytes);
        let _ = std::fs::remove_dir_all(dir);
    }
}
