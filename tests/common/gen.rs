//! A deterministic generator of realistic N-rule virus policies, for benches
//! and tests: first-match rules over `direction`, `scanner`, virus-family
//! globs, `forges_sender`, client CIDRs, recipients and senders, with mixed
//! actions. No RNG crate: a 64-bit LCG (Knuth's MMIX constants).
//!
//! Use it from a test with `#[path = "common/gen.rs"] mod gen;` and from a
//! bench with `#[path = "../tests/common/gen.rs"] mod gen;`.
//!
//! Every generated rule is specific (a family glob, a network, a recipient,
//! a sender domain...), so the facts from [`no_match_clean`] and
//! [`no_match_infected`] make no rule apply, whatever `n` is.
#![allow(dead_code)]

use mailpolicy::{Direction, Facts, Scanner};
use std::fmt::Write;

/// A 64-bit linear congruential generator.
pub struct Lcg(u64);

impl Lcg {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }
}

/// How often each kind of rule is drawn (out of 64).
const KINDS: [(u32, u8); 8] = [
    (10, 0), // outbound virus from one of our networks
    (14, 1), // a non-forging family gets a clean DSN
    (14, 2), // a family is discarded to its own bucket
    (6, 3),  // unscannable mail for a user passes, tagged
    (6, 4),  // scanner trouble behind a relay: tempfail
    (6, 5),  // infected mail from an authenticated department
    (2, 6),  // a regex family
    (6, 7),  // oversized clean mail for a small mailbox
];

/// Each generated rule's kind and two random bytes, deterministic in `(n, seed)`.
pub fn plan(n: usize, seed: u64) -> Vec<(u8, u32, u32)> {
    let mut rng = Lcg::new(seed);
    (0..n)
        .map(|_| {
            let mut pick = rng.below(64);
            let mut kind = 0;
            for (w, k) in KINDS {
                if pick < w {
                    kind = k;
                    break;
                }
                pick -= w;
            }
            (kind, rng.below(256), rng.below(256))
        })
        .collect()
}

/// A policy of `n` generated rules plus a header and a default, deterministic
/// in `(n, seed)`.
pub fn virus_policy(n: usize, seed: u64) -> String {
    let mut s = String::with_capacity(n * 160 + 512);
    s.push_str(
        "policy \"generated\"\nmode before_queue\nadmin \"postmaster@example.org\"\n\
         list forgers = [\"W32/Sobig*\", \"W32/Bagle*\", \"W32/Netsky*\", \"W32/Mydoom*\", \"*@MM\"]\n\n",
    );
    for (i, (kind, a, b)) in plan(n, seed).into_iter().enumerate() {
        // `write!` to a String cannot fail.
        let _ = match kind {
            0 => writeln!(
                s,
                "rule \"outbound virus from site {i}\" {{\n    when direction in [outbound, internal] and scanner == infected\n         and client_ip in [10.{a}.{b}.0/24, 2001:db8:{i:x}::/48]\n    then discard, quarantine \"outbound\", alert admin\n}}"
            ),
            1 => writeln!(
                s,
                "rule \"family {i} does not forge\" {{\n    when scanner == infected and forges_sender == false\n         and (virus matches \"W32/Fam{i}*\" or virus matches \"*.Fam{i}@MM\") and sender != \"\"\n    then bounce, quarantine\n}}"
            ),
            2 => writeln!(
                s,
                "rule \"trojan family {i}\" {{\n    when scanner == infected and virus matches \"Trojan.Gen{i}.*\"\n    then discard, quarantine \"trojan\"\n}}"
            ),
            3 => writeln!(
                s,
                "rule \"unscannable for user {i}\" {{\n    when direction == inbound and scanner == encrypted\n         and recipient in [\"user{i}@example.org\", \"alias{i}@example.org\"]\n    then pass, tag \"***UNCHECKED***\"\n}}"
            ),
            4 => writeln!(
                s,
                "rule \"scanner trouble behind relay {i}\" {{\n    when scanner in [error, timeout] and client_ip in 172.{}.{b}.0/24\n    then tempfail \"451 4.7.1 try again later\"\n}}",
                16 + a % 16
            ),
            5 => writeln!(
                s,
                "rule \"department {i}\" {{\n    when authenticated and scanner == infected and sender matches \"*@dept{i}.example.org\"\n    then discard, quarantine \"internal\", alert admin\n}}"
            ),
            6 => writeln!(
                s,
                "rule \"worm family {i}\" {{\n    when scanner == infected and not forges_sender and virus matches /^Worm\\.X{i}\\b/\n    then reject \"554 5.7.1 virus found\"\n}}"
            ),
            _ => writeln!(
                s,
                "rule \"small mailbox {i}\" {{\n    when scanner == clean and size > {} and recipient == \"small{i}@example.org\"\n    then reject \"552 5.3.4 message too big\"\n}}",
                1_000_000 + a * 1000
            ),
        };
    }
    s.push_str("\nrule \"every other virus\" {\n    when scanner == infected and virus matches forgers and direction == open_relay\n    then discard, quarantine\n}\n");
    s.push_str("\ndefault pass\n");
    s
}

/// Clean inbound mail: no generated rule applies (the default decides).
pub fn no_match_clean() -> Facts {
    Facts::new()
        .direction(Direction::Inbound)
        .scanner(Scanner::Clean)
        .client_ip("203.0.113.9".parse().expect("a valid address"))
        .sender("someone@example.net")
        .recipient("nobody@example.org")
        .authenticated(false)
        .size(48_000)
}

/// Infected inbound mail of a family no rule names, forging its sender:
/// every rule is a candidate by scanner, none applies.
pub fn no_match_infected() -> Facts {
    Facts::new()
        .direction(Direction::Inbound)
        .scanner(Scanner::Infected)
        .virus("W32/Novel.A@MM")
        .forges_sender(true)
        .client_ip("203.0.113.9".parse().expect("a valid address"))
        .sender("someone@example.net")
        .recipient("nobody@example.org")
        .authenticated(false)
        .size(48_000)
}

/// Varied facts for agreement tests with `virus_policy(n, seed)`: `k`
/// deterministic fact sets, half aimed at a generated rule, some
/// hitting generated rules, some not, with unknowns.
pub fn varied_facts(k: usize, n: usize, seed: u64) -> Vec<Facts> {
    let mut rng = Lcg::new(seed);
    let planned = plan(n, seed);
    let n = n.max(1) as u32;
    (0..k)
        .map(|_| {
            let i = rng.below(n);
            if rng.below(2) == 0 {
                if let Some(&(kind, a, b)) = planned.get(i as usize) {
                    return aimed(kind, i, a, b);
                }
            }
            let mut f = Facts::new();
            if rng.below(5) > 0 {
                f = f.direction(Direction::ALL[rng.below(4) as usize]);
            }
            if rng.below(6) > 0 {
                f = f.scanner(Scanner::ALL[rng.below(5) as usize]);
            }
            if rng.below(4) > 0 {
                let v = match rng.below(6) {
                    0 => format!("W32/Fam{i}.B"),
                    1 => format!("x.fam{i}@mm"),
                    2 => format!("Trojan.Gen{i}.Z"),
                    3 => format!("Worm.X{i} variant"),
                    4 => "W32/Sobig.F@MM".to_owned(),
                    _ => "W32/Novel.A@MM".to_owned(),
                };
                f = f.virus(v);
                // Sometimes a second detection (clamd's ALLMATCHSCAN).
                if rng.below(4) == 0 {
                    f = f.virus(match rng.below(3) {
                        0 => "Heuristics.Phishing.Email.SpoofedDomain".to_owned(),
                        1 => format!("PUA.Win.Fam{i}"),
                        _ => format!("Trojan.Gen{}.Z", rng.below(n)),
                    });
                }
            }
            if rng.below(3) > 0 {
                f = f.forges_sender(rng.below(2) == 0);
            }
            if rng.below(4) > 0 {
                let ip = match rng.below(4) {
                    0 => format!("10.{}.{}.7", rng.below(256), rng.below(256)),
                    1 => format!("2001:db8:{i:x}::1"),
                    2 => format!("172.{}.{}.1", 16 + rng.below(16), rng.below(256)),
                    _ => "203.0.113.9".to_owned(),
                };
                f = f.client_ip(ip.parse().expect("a valid address"));
            }
            if rng.below(4) > 0 {
                f = f.sender(match rng.below(3) {
                    0 => String::new(),
                    1 => format!("a@dept{i}.example.org"),
                    _ => "someone@example.net".to_owned(),
                });
            }
            if rng.below(4) > 0 {
                f = f.recipient(match rng.below(3) {
                    0 => format!("user{i}@example.org"),
                    1 => format!("small{i}@example.org"),
                    _ => "nobody@example.org".to_owned(),
                });
            }
            if rng.below(3) > 0 {
                f = f.authenticated(rng.below(2) == 0);
            }
            if rng.below(3) > 0 {
                f = f.size(i64::from(rng.below(3_000_000)));
            }
            f
        })
        .collect()
}

/// Facts that make a rule of `kind` (number `i`, random bytes `a`, `b`) apply,
/// unless an earlier rule does.
fn aimed(kind: u8, i: u32, a: u32, b: u32) -> Facts {
    let ip = |s: String| s.parse().expect("a valid address");
    let f = Facts::new()
        .sender("someone@example.net")
        .recipient("nobody@example.org");
    match kind {
        0 => f
            .direction(Direction::Outbound)
            .scanner(Scanner::Infected)
            .virus("W32/Novel.A@MM")
            .client_ip(ip(format!("10.{a}.{b}.9"))),
        1 => f
            .direction(Direction::Inbound)
            .scanner(Scanner::Infected)
            .virus(format!("W32/Fam{i}.C"))
            .forges_sender(false),
        2 => f
            .direction(Direction::Inbound)
            .scanner(Scanner::Infected)
            .virus(format!("trojan.gen{i}.x")),
        3 => f
            .direction(Direction::Inbound)
            .scanner(Scanner::Encrypted)
            .recipient(format!("alias{i}@example.org")),
        4 => f
            .scanner(Scanner::Timeout)
            .client_ip(ip(format!("172.{}.{b}.1", 16 + a % 16))),
        5 => f
            .direction(Direction::Outbound)
            .scanner(Scanner::Infected)
            .authenticated(true)
            .virus("W32/Novel.A@MM")
            .sender(format!("joe@dept{i}.example.org")),
        6 => f
            .scanner(Scanner::Infected)
            .forges_sender(false)
            .virus(format!("Worm.X{i}.B")),
        _ => f
            .scanner(Scanner::Clean)
            .size(5_000_000)
            .recipient(format!("small{i}@example.org")),
    }
}
