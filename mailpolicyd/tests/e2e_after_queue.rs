//! mailpolicyd after the queue, against real Postfix and clamd: Postfix's
//! `content_filter = smtp:[127.0.0.1]:FILTER` hands every message (with
//! XFORWARD) to the filter, which re-injects what passes through Postfix's
//! unfiltered smtpd (`next_hop`) — amavisd-new's 10024 → 10025 layout, on
//! dynamic ports. Every case observes from outside: SMTP replies, Maildirs,
//! Postfix's queue and log, the decision log, the quarantine.

mod support;

use support::proc::wait_until;
use support::*;

const POLICY: &str = r#"
policy "after-queue e2e"
mode after_queue
admin "postmaster@example.org"

rule "scanner failed: try later" {
    when scanner in [error, timeout]
    then tempfail "451 4.7.1 virus scanner unavailable, try again later"
}
rule "we emit no viruses" {
    when direction != inbound and scanner == infected
    then discard, quarantine "outbound", alert admin
}
rule "postmaster sees viruses, marked" {
    when scanner == infected and recipient == "postmaster@example.org"
    then pass, tag "[VIRUS]"
}
rule "bob's viruses are held" {
    when scanner == infected and recipient == "bob@example.org"
    then discard, quarantine "held"
}
rule "pua is refused (the D_REJECT case)" {
    when scanner == infected and virus matches "PUA.*"
    then reject "554 5.7.1 virus found"
}
rule "non-forging viruses get a clean DSN" {
    when scanner == infected and forges_sender == false and sender != ""
    then bounce, quarantine
}
rule "every other virus is discarded safely" {
    when scanner == infected
    then discard, quarantine
}
rule "unscannable: deliver, but marked" {
    when scanner == encrypted
    then pass, tag "***UNCHECKED***"
}
default pass
"#;

fn after_queue_lab(name: &str) -> Option<Lab> {
    let mut o = LabOptions::new(name);
    o.layout = Layout::AfterQueue;
    Lab::start(o)
}

/// Waits until Postfix's log contains `needle` (a bound on a hang, not a timing).
fn wait_postfix_log(lab: &Lab, needle: &str) {
    if !wait_until(patience(), || lab.postfix.log().contains(needle)) {
        panic!("Postfix never logged {needle:?}\n{}", lab.diagnostics());
    }
}

const OUTSIDE: &str = "203.0.113.9";
const INSIDE: &str = "10.1.2.3";

#[test]
fn every_disposition_end_to_end() {
    let Some(mut lab) = after_queue_lab("aq_dispositions") else {
        return;
    };
    lab.start_mailpolicyd(POLICY);
    let check = lab.cli(&["check"]);
    let warnings = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        warnings.contains("reject-after-queue"),
        "the policy's reject after the queue is warned about:\n{warnings}"
    );

    // Clean mail from outside: relayed, direction inbound from the
    // XFORWARD address (Postfix connects from 127.0.0.1).
    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env, &message("aq-clean").build());
    assert!(out.accepted(), "{}", out.decisive());
    let got = lab.wait_mailbox("alice@example.org", "aq-clean", 1);
    assert_eq!(got.len(), 1);
    let d = lab
        .decision_for("sender@outside.test", "alice@example.org")
        .unwrap();
    assert_eq!(d["verdict"], "accept");
    assert_eq!(d["client_ip"], OUTSIDE);
    assert_eq!(d["scanner"], "clean");
    assert!(d["queue_id"].is_string(), "XFORWARD IDENT: {d}");
    assert_eq!(d["recipients"][0]["direction"], "inbound");
    wait_postfix_log(&lab, "orig_client=");

    // Encrypted: passed, tagged.
    let zip = encrypted_zip(&lab.dir, "secret.txt", b"nothing but text");
    let m = message("aq-zip").attach("secret.zip", "application/zip", &zip);
    let out = lab.send(&env, &m.build());
    assert!(out.accepted(), "{}", out.decisive());
    let got = lab.wait_mailbox("alice@example.org", "aq-zip", 1);
    assert_eq!(
        header(&got[0], "Subject").as_deref(),
        Some("***UNCHECKED*** lab message aq-zip")
    );

    // The split: one infected message, three recipients, three fates.
    let env3 = Envelope::new(
        "sender@outside.test",
        &[
            "alice@example.org",
            "bob@example.org",
            "postmaster@example.org",
        ],
    )
    .client(OUTSIDE);
    let out = lab.send(&env3, &message("aq-split").with_text(EICAR).build());
    assert!(out.accepted(), "{}", out.decisive());
    let pm = lab.wait_mailbox("postmaster@example.org", "aq-split", 1);
    assert_eq!(pm.len(), 1);
    assert_eq!(
        header(&pm[0], "Subject").as_deref(),
        Some("[VIRUS] lab message aq-split")
    );
    // alice's copy bounced: the clean DSN reaches the sender, without the virus.
    let dsn = lab.wait_mailbox("sender@outside.test", "aq-split", 1);
    assert_eq!(dsn.len(), 1);
    assert!(
        contains(&dsn[0], b"report-type=delivery-status")
            || contains(&dsn[0], b"report-type=\"delivery-status\"")
    );
    assert!(contains(
        &dsn[0],
        b"Final-Recipient: rfc822; alice@example.org"
    ));
    assert!(!contains(&dsn[0], EICAR.as_bytes()), "the DSN is clean");
    lab.wait_queue_empty();
    assert!(lab.mailbox_with("alice@example.org", "aq-split").is_empty());
    assert!(lab.mailbox_with("bob@example.org", "aq-split").is_empty());
    let q = lab.quarantined_with("aq-split");
    let buckets: Vec<&str> = q.iter().map(|e| e.bucket.as_str()).collect();
    assert!(
        buckets.contains(&"held") && buckets.contains(&"default"),
        "{buckets:?}"
    );
    assert_eq!(q[0].id, q[1].id, "one quarantine ID per message");

    // Release bob's held copy: it reaches bob, marked.
    let id = q[0].id.clone();
    let rel = lab.cli(&["quarantine", "release", &id, "--to", "bob@example.org"]);
    assert!(
        rel.status.success(),
        "{}",
        String::from_utf8_lossy(&rel.stderr)
    );
    let got = lab.wait_mailbox("bob@example.org", "aq-split", 1);
    assert_eq!(
        header(&got[0], "X-Mailpolicy-Released").as_deref(),
        Some(id.as_str())
    );

    // A whole-message reject after the queue: Postfix bounces it, and its
    // bounce carries the virus to the (possibly forged) sender — what the
    // reject-after-queue lint warns about, as amavisd-new's D_REJECT does.
    let env_r = Envelope::new("victim@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env_r, &message("aq-reject").with_text(PUA_MARKER).build());
    assert!(
        out.accepted(),
        "queued before the filter: {}",
        out.decisive()
    );
    let bounce = lab.wait_mailbox("victim@outside.test", "aq-reject", 1);
    assert!(
        contains(&bounce[0], b"MAILER-DAEMON"),
        "Postfix's own bounce"
    );
    assert!(contains(&bounce[0], b"554 5.7.1 virus found"));
    assert!(
        contains(&bounce[0], PUA_MARKER.as_bytes()),
        "Postfix's bounce carries the virus back"
    );
    let d = lab
        .decision_for("victim@outside.test", "alice@example.org")
        .unwrap();
    assert_eq!(d["verdict"], "reject");

    // Discard (a forging virus from outside): 250 to Postfix, not relayed,
    // quarantined, no DSN to the forged sender.
    let env_d = Envelope::new("forged@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env_d, &message("aq-sobig").with_text(SOBIG_MARKER).build());
    assert!(out.accepted(), "{}", out.decisive());
    lab.wait_decisions(5);
    lab.wait_queue_empty();
    let d = lab
        .decision_for("forged@outside.test", "alice@example.org")
        .unwrap();
    assert_eq!(d["verdict"], "discard");
    assert!(lab.mailbox_with("alice@example.org", "aq-sobig").is_empty());
    assert!(lab
        .mailbox_with("forged@outside.test", "aq-sobig")
        .is_empty());
    assert_eq!(lab.quarantined_with("aq-sobig").len(), 1);

    // The same virus from inside (XFORWARD ADDR in mynetworks): outbound,
    // quarantined "outbound", the admin alerted.
    let env_o = Envelope::new("user@example.org", &["someone@outside.test"]).client(INSIDE);
    let out = lab.send(&env_o, &message("aq-out").with_text(SOBIG_MARKER).build());
    assert!(out.accepted(), "{}", out.decisive());
    let alert = lab.wait_mailbox("postmaster@example.org", "aq-out", 1);
    assert!(
        !contains(&alert[0], SOBIG_MARKER.as_bytes()),
        "no virus in the alert"
    );
    let d = lab
        .decision_for("user@example.org", "someone@outside.test")
        .unwrap();
    assert_eq!(d["client_ip"], INSIDE);
    assert_eq!(d["recipients"][0]["direction"], "outbound");
    let q = lab.quarantined_with("aq-out");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].bucket, "outbound");
    lab.wait_queue_empty();
    assert!(lab
        .mailbox_with("someone@outside.test", "aq-out")
        .is_empty());
}

#[test]
fn scanner_down_tempfails_and_the_retry_delivers_once() {
    let Some(mut lab) = after_queue_lab("aq_clamd_down") else {
        return;
    };
    lab.start_mailpolicyd(POLICY);
    lab.clamd.stop();
    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env, &message("aq-down").build());
    assert!(
        out.accepted(),
        "queued before the filter: {}",
        out.decisive()
    );
    wait_postfix_log(&lab, "451 4.7.1 virus scanner unavailable");
    assert_eq!(lab.postfix.queue().len(), 1, "Postfix keeps the message");
    assert!(lab.mailbox_with("alice@example.org", "aq-down").is_empty());
    lab.clamd.restart();
    lab.postfix.flush();
    lab.wait_mailbox("alice@example.org", "aq-down", 1);
    lab.wait_queue_empty();
    assert_eq!(lab.mailbox_with("alice@example.org", "aq-down").len(), 1);
    let verdicts: Vec<String> = lab
        .decisions()
        .iter()
        .map(|d| d["verdict"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(verdicts.first().map(String::as_str), Some("tempfail"));
    assert_eq!(verdicts.last().map(String::as_str), Some("accept"));
}

#[test]
fn filter_killed_mid_message_loses_nothing() {
    let Some(mut lab) = after_queue_lab("aq_killed") else {
        return;
    };
    let mut cfg = DaemonConfig::new(POLICY);
    cfg.clamd_timeout_ms = 600_000;
    lab.start_mailpolicyd_with(&cfg);
    // clamd frozen: the filter has the whole message and waits for the scan.
    lab.clamd.freeze(true);
    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env, &message("aq-kill").build());
    assert!(out.accepted(), "{}", out.decisive());
    let spool = lab.spool_dir();
    let scanning = wait_until(patience(), || {
        std::fs::read_dir(&spool).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(
        scanning,
        "the filter reached the scan\n{}",
        lab.diagnostics()
    );
    lab.kill_filter();
    wait_postfix_log(&lab, "status=deferred");
    assert_eq!(lab.postfix.queue().len(), 1, "Postfix still has it");
    assert!(lab.mailbox_with("alice@example.org", "aq-kill").is_empty());
    lab.clamd.freeze(false);
    lab.restart_mailpolicyd();
    lab.postfix.flush();
    lab.wait_mailbox("alice@example.org", "aq-kill", 1);
    lab.wait_queue_empty();
    assert_eq!(
        lab.mailbox_with("alice@example.org", "aq-kill").len(),
        1,
        "delivered exactly once"
    );
}

#[test]
fn next_hop_down_is_a_4xx_and_the_retry_delivers() {
    let Some(mut lab) = after_queue_lab("aq_next_hop_down") else {
        return;
    };
    lab.write_config(&DaemonConfig::new(POLICY));
    let good = std::fs::read_to_string(lab.config_path()).unwrap();
    let dead = proc::free_port();
    let unfiltered = format!("next_hop = \"127.0.0.1:{}\"", lab.postfix.ports.unfiltered);
    assert!(good.contains(&unfiltered));
    let bad = good.replace(&unfiltered, &format!("next_hop = \"127.0.0.1:{dead}\""));
    std::fs::write(lab.config_path(), &bad).unwrap();
    lab.restart_mailpolicyd();

    let env = Envelope::new("sender@outside.test", &["alice@example.org"]).client(OUTSIDE);
    let out = lab.send(&env, &message("aq-hop").build());
    assert!(out.accepted(), "{}", out.decisive());
    wait_postfix_log(&lab, "451 4.4.0 next hop");
    assert_eq!(lab.postfix.queue().len(), 1);
    assert_eq!(lab.decisions()[0]["verdict"], "tempfail");

    // The next hop is back (the filter pointed at it again): the retry delivers.
    lab.stop_filter();
    std::fs::write(lab.config_path(), &good).unwrap();
    lab.restart_mailpolicyd();
    lab.postfix.flush();
    lab.wait_mailbox("alice@example.org", "aq-hop", 1);
    lab.wait_queue_empty();
    assert_eq!(lab.mailbox_with("alice@example.org", "aq-hop").len(), 1);
}

#[test]
fn concurrent_clients_every_message_accounted_for() {
    let Some(mut lab) = after_queue_lab("aq_concurrency") else {
        return;
    };
    lab.start_mailpolicyd(POLICY);
    let lab = std::sync::Arc::new(lab);
    const THREADS: usize = 8;
    const EACH: usize = 6;
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let lab = std::sync::Arc::clone(&lab);
        handles.push(std::thread::spawn(move || {
            for i in 0..EACH {
                let id = format!("aq-c-{t}-{i}");
                let infected = i % 3 == 2;
                let mut m = message(&id);
                if infected {
                    // Forging: discarded and quarantined.
                    m = m.with_text(SOBIG_MARKER);
                }
                let env =
                    Envelope::new("sender@outside.test", &["alice@example.org"]).client(OUTSIDE);
                let out = lab.send(&env, &m.build());
                assert!(out.accepted(), "{id}: {}", out.decisive());
            }
        }));
    }
    for h in handles {
        h.join().expect("sender thread");
    }
    let total = THREADS * EACH;
    lab.wait_decisions(total);
    lab.wait_queue_empty();
    let mut delivered = 0;
    let mut quarantined = 0;
    for t in 0..THREADS {
        for i in 0..EACH {
            let id = format!("X-Lab-Id: aq-c-{t}-{i}");
            let got = lab.mailbox_with("alice@example.org", &id).len();
            let held = lab.quarantined_with(&id).len();
            if i % 3 == 2 {
                assert_eq!((got, held), (0, 1), "{id}");
                quarantined += 1;
            } else {
                assert_eq!((got, held), (1, 0), "{id}");
                delivered += 1;
            }
        }
    }
    assert_eq!(delivered + quarantined, total);
    assert_eq!(lab.decisions().len(), total, "one decision per message");
}
