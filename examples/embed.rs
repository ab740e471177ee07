//! A small filter loop, the code a milter author would copy: evaluate a
//! policy once per recipient, with a lazy custom fact (a DNSBL lookup that
//! only runs when a rule needs it), and turn the recipients' decisions into
//! the one SMTP answer for each message.
//!
//! Run it with `cargo run --example embed`.

use mailpolicy::{
    Direction, FactKey, FactProvider, FactValue, Facts, MessageVerdict, Policy, Scanner, Verdict,
};
use std::cell::Cell;
use std::net::IpAddr;

/// The policy a site would keep in a file (`Policy::parse(&std::fs::read_to_string(path)?)`).
const POLICY: &str = r#"
policy "example.org"
admin "postmaster@example.org"

fact dnsbl_listed: bool

list mynets  = [10.0.0.0/8, 192.168.0.0/16, 2001:db8::/32]
list forgers = ["W32/Sobig*", "W32/Bagle*", "*@MM"]

rule "scanner failed: try later" {
    when scanner in [error, timeout]
    then tempfail "451 4.7.1 virus scanner unavailable, try again later"
}

rule "we emit no viruses" {
    when (direction != inbound or client_ip in mynets) and scanner == infected
    then discard, quarantine "outbound", alert admin
}

rule "viruses from listed clients are refused" {
    when scanner == infected and dnsbl_listed
    then reject "554 5.7.1 virus found; your client is listed"
}

rule "every other virus is discarded safely" {
    when scanner == infected
    then discard, quarantine
}

default pass
"#;

/// One message as the filter sees it after the scan.
struct Message {
    client_ip: IpAddr,
    originating: bool,
    sender: &'static str,
    recipients: Vec<(&'static str, bool)>, // (address, local?)
    scanner: Scanner,
    virus: Option<&'static str>,
}

/// Facts for one recipient: the cheap ones up front, the DNSBL lazily. The
/// crate memoises within one evaluation; the DNSBL answer is about the
/// message's client, so the filter caches it across the message's recipients.
struct RecipientFacts<'m> {
    eager: Facts,
    message: &'m Message,
    dnsbl_cache: &'m Cell<Option<bool>>,
    dnsbl_queries: &'m Cell<u32>,
}

impl FactProvider for RecipientFacts<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        match key.name {
            "dnsbl_listed" => {
                if let Some(listed) = self.dnsbl_cache.get() {
                    return Some(FactValue::Bool(listed));
                }
                // Stands in for a DNS query: it only runs when a rule needs it.
                self.dnsbl_queries.set(self.dnsbl_queries.get() + 1);
                let listed =
                    matches!(self.message.client_ip, IpAddr::V4(v4) if v4.octets()[0] == 198);
                self.dnsbl_cache.set(Some(listed));
                Some(FactValue::Bool(listed))
            }
            name => self.eager.get(name).cloned(),
        }
    }
}

fn main() {
    let policy = match Policy::parse(POLICY) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("policy has errors:\n{e}");
            std::process::exit(1);
        }
    };
    let needed: Vec<&str> = policy.facts_needed().iter().map(|k| k.name).collect();
    println!("the policy reads: {}\n", needed.join(", "));

    let messages = [
        Message {
            client_ip: "203.0.113.9".parse().unwrap(),
            originating: false,
            sender: "newsletter@example.net",
            recipients: vec![("alice@example.org", true), ("bob@example.org", true)],
            scanner: Scanner::Clean,
            virus: None,
        },
        Message {
            client_ip: "198.51.100.7".parse().unwrap(),
            originating: false,
            sender: "forged@example.com",
            recipients: vec![("alice@example.org", true)],
            scanner: Scanner::Infected,
            virus: Some("W32/Sobig.F@MM"),
        },
        Message {
            client_ip: "203.0.113.20".parse().unwrap(),
            originating: false,
            sender: "someone@example.com",
            recipients: vec![("alice@example.org", true), ("carol@example.org", true)],
            scanner: Scanner::Infected,
            virus: Some("W32/Bagle.A@MM"),
        },
        Message {
            client_ip: "10.1.2.3".parse().unwrap(),
            originating: true,
            sender: "dave@example.org",
            recipients: vec![("friend@example.com", false), ("erin@example.org", true)],
            scanner: Scanner::Infected,
            virus: Some("W32/Mydoom.A@MM"),
        },
        Message {
            client_ip: "203.0.113.30".parse().unwrap(),
            originating: false,
            sender: "",
            recipients: vec![("bob@example.org", true)],
            scanner: Scanner::Timeout,
            virus: None,
        },
    ];

    for (n, message) in messages.iter().enumerate() {
        let dnsbl_queries = Cell::new(0);
        let dnsbl_cache = Cell::new(None);
        let providers: Vec<RecipientFacts<'_>> = message
            .recipients
            .iter()
            .map(|(rcpt, local)| {
                let mut eager = Facts::new()
                    .direction(Direction::from_flags(message.originating, *local))
                    .scanner(message.scanner)
                    .client_ip(message.client_ip)
                    .sender(message.sender)
                    .recipient(*rcpt);
                if let Some(v) = message.virus {
                    eager = eager.virus(v);
                }
                RecipientFacts {
                    eager,
                    message,
                    dnsbl_cache: &dnsbl_cache,
                    dnsbl_queries: &dnsbl_queries,
                }
            })
            .collect();
        let decisions: Vec<_> = providers.iter().map(|p| policy.evaluate_lazy(p)).collect();
        // `combine` is `None` only for a message without recipients.
        let Some(verdict) = MessageVerdict::combine(&decisions) else {
            continue;
        };
        let reply = verdict
            .reply
            .as_deref()
            .unwrap_or(verdict.verdict.default_smtp_reply());
        println!(
            "message {} from {} ({}): {}",
            n + 1,
            message.client_ip,
            message.scanner.as_str(),
            reply
        );
        for (i, ((rcpt, _), d)) in message.recipients.iter().zip(&decisions).enumerate() {
            let action = match verdict.verdict {
                Verdict::Accept if verdict.deliver_to.contains(&i) => "deliver",
                Verdict::Accept if verdict.bounce.contains(&i) => "drop, send our own clean DSN",
                Verdict::Accept => "drop",
                _ => "-",
            };
            let extras: Vec<String> = d
                .quarantine()
                .map(|q| format!("quarantine {q:?}"))
                .into_iter()
                .chain(d.alerts().map(|a| format!("alert {}", a.as_str())))
                .collect();
            println!(
                "  {rcpt:<22} {:<9} {action:<30} {} [{}]",
                d.disposition().as_str(),
                extras.join(", "),
                d.rule().unwrap_or("default")
            );
        }
        println!("  (DNSBL queries: {})\n", dnsbl_queries.get());
    }
}
