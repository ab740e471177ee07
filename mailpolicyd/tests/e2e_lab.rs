//! The lab proves itself against the real peer, `clamav-milter`, before any mailpolicyd case
//! relies on it: a virus is refused by Postfix with a 5xx, clean mail lands in the mailbox,
//! clamd down gives a 4xx, a dead milter gives Postfix's `milter_default_action` (4xx),
//! XCLIENT sets the client and the SASL login Postfix reports, the signature database finds
//! what the cases need, and the after-queue layout hands mail (with XFORWARD) to a content
//! filter on its port and takes it back on the unfiltered one.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use support::*;

fn peer_lab(name: &str) -> Option<Lab> {
    let mut o = LabOptions::new(name);
    o.needs.push("clamav-milter");
    let mut lab = Lab::start(o)?;
    lab.start_clamav_milter();
    Some(lab)
}

#[test]
fn peer_rejects_eicar_and_delivers_clean() {
    let Some(lab) = peer_lab("peer_eicar") else {
        return;
    };
    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client("203.0.113.9");

    let clean = message("clean-1").build();
    let out = lab.send(&env, &clean);
    assert!(out.accepted(), "clean mail: {}", out.decisive());
    let got = lab.wait_mailbox("alice@example.org", "clean-1", 1);
    assert_eq!(got.len(), 1);
    assert!(contains(&got[0], b"Hello, this is lab message clean-1."));

    let virus = message("eicar-1").with_text(EICAR).build();
    let out = lab.send(&env, &virus);
    let r = out.final_reply.as_ref().expect("end of DATA answered");
    assert_eq!(r.code, 550, "EICAR: {r}\n{}", lab.diagnostics());
    assert!(r.text().starts_with("5.7.1"), "{r}");
    lab.wait_queue_empty();
    assert!(lab.mailbox_with("alice@example.org", "eicar-1").is_empty());
    assert!(
        lab.daemon_log().contains(EICAR_NAME),
        "clamav-milter logs the detection: {}",
        lab.daemon_log()
    );
}

#[test]
fn peer_clamd_down_is_a_tempfail_and_back_up_delivers() {
    let Some(mut lab) = peer_lab("peer_clamd_down") else {
        return;
    };
    let env = Envelope::new("sender@outside.test", &["bob@example.org"]);
    lab.clamd.stop();
    let msg = message("down-1").build();
    let out = lab.send(&env, &msg);
    assert!(
        out.decisive().is_transient(),
        "clamd down: {}",
        out.decisive()
    );
    assert!(lab.mailbox_with("bob@example.org", "down-1").is_empty());
    lab.clamd.restart();
    // clamav-milter re-probes a clamd it found dead only now and then: retry as a sending
    // MTA would, until it is taken (bounded by the lab's patience).
    let mut last = None;
    let taken = proc::wait_until(patience(), || {
        let out = lab.send(&env, &msg);
        let ok = out.accepted();
        if !ok {
            assert!(out.decisive().is_transient(), "{}", out.decisive());
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        last = Some(out.decisive().clone());
        ok
    });
    assert!(taken, "clamd back: {last:?}");
    assert_eq!(lab.wait_mailbox("bob@example.org", "down-1", 1).len(), 1);
}

#[test]
fn peer_killed_gives_milter_default_action() {
    let Some(mut lab) = peer_lab("peer_killed") else {
        return;
    };
    lab.kill_filter();
    let out = lab.send(
        &Envelope::new("sender@outside.test", &["alice@example.org"]),
        &message("nomilter-1").build(),
    );
    let r = out.decisive();
    assert_eq!(r.code, 451, "no milter: {r}");
    assert!(r.text().contains("4.7.1"), "{r}");
}

#[test]
fn xclient_null_sender_two_recipients_and_outside_capture() {
    let Some(lab) = peer_lab("peer_xclient") else {
        return;
    };
    let env = Envelope::new("", &["alice@example.org", "bob@example.org"])
        .client("203.0.113.77")
        .login("joe");
    let out = lab.send(&env, &message("xc-1").build());
    assert!(out.accepted(), "{}", out.decisive());
    assert_eq!(out.xclient.as_ref().map(|r| r.code), Some(220));
    assert_eq!(out.rcpts.len(), 2);
    lab.wait_mailbox("alice@example.org", "xc-1", 1);
    lab.wait_mailbox("bob@example.org", "xc-1", 1);
    let log = lab.postfix.log();
    assert!(
        log.contains("[203.0.113.77], sasl_method=XCLIENT, sasl_username=joe"),
        "Postfix saw the XCLIENT address and login:\n{log}"
    );
    assert!(log.contains("from=<>"), "null sender queued:\n{log}");

    // The outside domain is captured: anything @outside.test lands in one box.
    let out = lab.send_unfiltered(
        &Envelope::new("postmaster@example.org", &["forged-victim@outside.test"]),
        &message("outside-1")
            .to(&["forged-victim@outside.test"])
            .build(),
    );
    assert!(out.accepted(), "{}", out.decisive());
    lab.wait_mailbox("forged-victim@outside.test", "outside-1", 1);
    // And Postfix's own bounce to an outside sender lands there too (the unfiltered port
    // skips recipient checks, so the unknown user is bounced after the queue).
    let out = lab.send_unfiltered(
        &Envelope::new("someone@outside.test", &["nobody-here@example.org"]),
        &message("unknown-1").build(),
    );
    assert!(out.accepted(), "{}", out.decisive());
    let dsn = lab.wait_mailbox("someone@outside.test", "unknown-1", 1);
    assert!(contains(&dsn[0], b"MAILER-DAEMON"), "a Postfix DSN");
}

#[test]
fn signature_database_finds_what_the_cases_need() {
    let Some(lab) = Lab::before_queue("sigdb") else {
        return;
    };
    let c = &lab.clamd;
    assert_eq!(c.instream(b"nothing to see"), "stream: OK");
    for (marker, name) in [
        (EICAR, EICAR_NAME),
        (SOBIG_MARKER, SOBIG_NAME),
        (PHISH_MARKER, PHISH_NAME),
        (PUA_MARKER, PUA_NAME),
    ] {
        // Inside a base64 attachment of a MIME message: clamd decodes it.
        let m = message("sig").attach("x.bin", "application/octet-stream", marker.as_bytes());
        assert_eq!(
            c.instream(&m.build()),
            format!("stream: {name} FOUND"),
            "{marker}"
        );
    }
    let zip = encrypted_zip(&lab.dir, "secret.txt", b"nothing but text");
    let m = message("zip").attach("secret.zip", "application/zip", &zip);
    assert_eq!(
        c.instream(&m.build()),
        format!("stream: {ENCRYPTED_ZIP_NAME} FOUND")
    );
    // ALLMATCHSCAN on a file finds every detection, not just the first.
    let f = lab.dir.join("multi.eml");
    std::fs::write(
        &f,
        message("multi")
            .with_text(SOBIG_MARKER)
            .with_text(PHISH_MARKER)
            .build(),
    )
    .unwrap();
    let out = std::process::Command::new("clamdscan")
        .arg("--no-summary")
        .arg("--allmatch")
        .arg(format!("--config-file={}", lab.clamd.conf.display()))
        .arg(&f)
        .output()
        .expect("clamdscan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(SOBIG_NAME) && text.contains(PHISH_NAME),
        "{text}"
    );
}

/// A throw-away SMTP content filter for the after-queue layout check: takes one message on
/// the filter port (recording XFORWARD) and re-injects it through the unfiltered port.
fn one_message_content_filter(listener: TcpListener) -> (Vec<String>, Vec<u8>, String, String) {
    let (stream, _) = listener
        .accept()
        .expect("Postfix connects to the content filter");
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut xforward = Vec::new();
    let (mut from, mut rcpt) = (String::new(), String::new());
    let mut data = Vec::new();
    w.write_all(b"220 filter.lab ESMTP\r\n").unwrap();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(
                b"250-filter.lab\r\n250-XFORWARD NAME ADDR PROTO HELO IDENT\r\n250 8BITMIME\r\n",
            )
            .unwrap();
        } else if upper.starts_with("XFORWARD") {
            xforward.push(cmd);
            w.write_all(b"250 2.0.0 Ok\r\n").unwrap();
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim_matches(['<', '>', ' ']).to_string();
            w.write_all(b"250 2.1.0 Ok\r\n").unwrap();
        } else if upper.starts_with("RCPT TO:") {
            rcpt = cmd[8..].trim_matches(['<', '>', ' ']).to_string();
            w.write_all(b"250 2.1.5 Ok\r\n").unwrap();
        } else if upper == "DATA" {
            w.write_all(b"354 go\r\n").unwrap();
            loop {
                let mut l = Vec::new();
                r.read_until(b'\n', &mut l).unwrap();
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            w.write_all(b"250 2.0.0 Ok: filtered\r\n").unwrap();
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n").unwrap();
            break;
        } else {
            w.write_all(b"250 ok\r\n").unwrap();
        }
    }
    (xforward, data, from, rcpt)
}

#[test]
fn after_queue_layout_hands_mail_to_the_content_filter_with_xforward() {
    let mut o = LabOptions::new("after_queue");
    o.layout = Layout::AfterQueue;
    let Some(lab) = Lab::start(o) else {
        return;
    };
    let listener = TcpListener::bind(lab.filter_addr()).expect("bind the content filter port");
    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client("198.51.100.7");
    let out = lab.send(&env, &message("aq-1").build());
    assert!(
        out.accepted(),
        "queued before the filter: {}",
        out.decisive()
    );
    let (xforward, data, from, rcpt) = one_message_content_filter(listener);
    assert!(
        xforward.iter().any(|x| x.contains("ADDR=198.51.100.7")),
        "XFORWARD carries the original client: {xforward:?}"
    );
    assert_eq!(
        (from.as_str(), rcpt.as_str()),
        ("sender@outside.test", "alice@example.org")
    );
    assert!(contains(&data, b"X-Lab-Id: aq-1"));
    // Re-inject through the unfiltered port, as the filter's next_hop.
    let out = lab.send_unfiltered(&Envelope::new(&from, &[&rcpt]), &data);
    assert!(out.accepted(), "{}", out.decisive());
    lab.wait_mailbox("alice@example.org", "aq-1", 1);
    lab.wait_queue_empty();
}

/// The lab's own helpers (no daemon, no packages needed).
#[test]
fn helpers_wire_form_base64_headers() {
    use support::smtp::{crlf, wire_body, xtext};
    assert_eq!(wire_body(b"a\n.b\r\n..c"), b"a\r\n..b\r\n...c\r\n");
    assert_eq!(crlf(b"x\ry"), b"x\r\ny\r\n");
    assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    assert_eq!(base64_lines(b"Man"), "TWFu\r\n");
    assert_eq!(base64_lines(b"Ma"), "TWE=\r\n");
    assert_eq!(base64_lines(b"M"), "TQ==\r\n");
    let m = b"Subject: a\r\n  b\r\nX: y\r\n\r\nbody";
    assert_eq!(header(m, "subject").as_deref(), Some("a b"));
    assert_eq!(header(m, "x").as_deref(), Some("y"));
}
