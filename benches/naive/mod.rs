//! The baseline `Policy::evaluate` is measured against: a hand-written
//! interpreter with no indexing, as a site would write it for its own rules —
//! a `Vec` of rules, each a `Vec` of condition enums that must all hold, tried
//! in order; the first rule whose conditions all hold decides.
//!
//! It shares nothing with the library: its own facts struct ([`NFacts`],
//! plain fields, `None` = unknown), its own tests (ASCII case-insensitive
//! prefix/suffix comparisons for the globs, which is all the benchmarked
//! globs need; `ipnet`-free address arithmetic), and a rule set written by
//! hand for each benchmarked policy. A test on an unknown fact is false, so
//! only positive formulas are written (`forges_sender == false`, never
//! `not forges_sender`): on these policies that is Kleene logic's answer too.
//! Each translation is checked against `Policy::evaluate` on the
//! benchmarked facts and on varied facts before anything is timed.
#![allow(dead_code)]

use mailpolicy::{Direction, FactValue, Facts, Scanner};
use std::net::IpAddr;

/// The facts, as a hand-written filter would keep them.
#[derive(Debug, Clone, Default)]
pub struct NFacts {
    pub direction: Option<Direction>,
    pub scanner: Option<Scanner>,
    /// The detection names (a set: clamd reports every match).
    pub virus: Option<Vec<String>>,
    pub forges_sender: Option<bool>,
    pub client_ip: Option<IpAddr>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub authenticated: Option<bool>,
    pub size: Option<i64>,
    pub spam_score: Option<f64>,
    /// The one custom fact the benchmarked policies declare (a bool).
    pub custom_bool: Option<bool>,
}

impl NFacts {
    /// The same facts as `f` (read through its public getters; `custom` names
    /// the policy's custom bool fact, if any).
    pub fn from_facts(f: &Facts, custom: &str) -> NFacts {
        let s = |n: &str| match f.get(n) {
            Some(FactValue::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        let b = |n: &str| match f.get(n) {
            Some(FactValue::Bool(b)) => Some(*b),
            _ => None,
        };
        NFacts {
            direction: match f.get("direction") {
                Some(FactValue::Direction(d)) => Some(*d),
                _ => None,
            },
            scanner: match f.get("scanner") {
                Some(FactValue::Scanner(s)) => Some(*s),
                _ => None,
            },
            virus: match f.get("virus") {
                Some(FactValue::Set(names)) => Some(names.to_vec()),
                Some(FactValue::Str(s)) => Some(vec![s.to_string()]),
                _ => None,
            },
            forges_sender: b("forges_sender"),
            client_ip: match f.get("client_ip") {
                Some(FactValue::Ip(ip)) => Some(*ip),
                _ => None,
            },
            sender: s("sender"),
            recipient: s("recipient"),
            authenticated: b("authenticated"),
            size: match f.get("size") {
                Some(FactValue::Int(i)) => Some(*i),
                _ => None,
            },
            spam_score: match f.get("spam_score") {
                Some(FactValue::Number(x)) => Some(*x),
                Some(FactValue::Int(i)) => Some(*i as f64),
                _ => None,
            },
            custom_bool: if custom.is_empty() { None } else { b(custom) },
        }
    }
}

/// A network: `(first, last)` address, inclusive.
#[derive(Debug, Clone, Copy)]
pub enum Net {
    V4(u32, u32),
    V6(u128, u128),
}

/// Parses `a.b.c.d/len` or `x::/len`.
pub fn net(s: &str) -> Net {
    let (addr, len) = s.split_once('/').unwrap_or((s, ""));
    match addr.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(a) => {
            let len: u32 = len.parse().unwrap_or(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let a = u32::from(a) & mask;
            Net::V4(a, a | !mask)
        }
        IpAddr::V6(a) => {
            let len: u32 = len.parse().unwrap_or(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let a = u128::from(a) & mask;
            Net::V6(a, a | !mask)
        }
    }
}

/// A glob of the shapes the benchmarked policies use.
#[derive(Debug, Clone)]
pub enum Glob {
    /// `lit*`
    Prefix(String),
    /// `*lit`
    Suffix(String),
}

impl Glob {
    pub fn new(g: &str) -> Glob {
        if let Some(p) = g.strip_suffix('*') {
            Glob::Prefix(p.to_owned())
        } else {
            Glob::Suffix(
                g.strip_prefix('*')
                    .expect("a prefix or suffix glob")
                    .to_owned(),
            )
        }
    }

    #[inline]
    fn matches(&self, s: &str) -> bool {
        let (s, l) = (s.as_bytes(), self.lit().as_bytes());
        match self {
            Glob::Prefix(_) => s.len() >= l.len() && s[..l.len()].eq_ignore_ascii_case(l),
            Glob::Suffix(_) => s.len() >= l.len() && s[s.len() - l.len()..].eq_ignore_ascii_case(l),
        }
    }

    fn lit(&self) -> &str {
        match self {
            Glob::Prefix(l) | Glob::Suffix(l) => l,
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `direction in [...]` (a bitmask of `Direction as u8`).
    Direction(u8),
    /// `scanner in [...]` (a bitmask of `Scanner as u8`).
    Scanner(u8),
    /// Some virus name matches one of the globs.
    VirusAny(Vec<Glob>),
    /// The virus set is known and no name matches any glob.
    VirusNone(Vec<Glob>),
    /// Some virus name matches the regex.
    VirusRegex(regex::Regex),
    ForgesSender(bool),
    Authenticated(bool),
    CustomBool(bool),
    ClientIn(Vec<Net>),
    SenderNe(String),
    SenderGlob(Glob),
    RecipientIn(Vec<String>),
    SizeGt(i64),
    SpamGe(f64),
    /// Any of the conditions holds.
    Any(Vec<Cond>),
}

impl Cond {
    #[inline]
    fn holds(&self, f: &NFacts) -> bool {
        match self {
            Cond::Direction(m) => f.direction.is_some_and(|d| m & (1 << d as u8) != 0),
            Cond::Scanner(m) => f.scanner.is_some_and(|s| m & (1 << s as u8) != 0),
            Cond::VirusAny(g) => f
                .virus
                .as_ref()
                .is_some_and(|v| v.iter().any(|n| g.iter().any(|g| g.matches(n)))),
            Cond::VirusNone(g) => f
                .virus
                .as_ref()
                .is_some_and(|v| !v.iter().any(|n| g.iter().any(|g| g.matches(n)))),
            Cond::VirusRegex(re) => f
                .virus
                .as_ref()
                .is_some_and(|v| v.iter().any(|n| re.is_match(n))),
            Cond::ForgesSender(b) => f.forges_sender == Some(*b),
            Cond::Authenticated(b) => f.authenticated == Some(*b),
            Cond::CustomBool(b) => f.custom_bool == Some(*b),
            Cond::ClientIn(nets) => f.client_ip.is_some_and(|ip| in_nets(nets, ip)),
            Cond::SenderNe(s) => f.sender.as_ref().is_some_and(|x| x != s),
            Cond::SenderGlob(g) => f.sender.as_ref().is_some_and(|x| g.matches(x)),
            Cond::RecipientIn(set) => f.recipient.as_ref().is_some_and(|r| set.contains(r)),
            Cond::SizeGt(n) => f.size.is_some_and(|s| s > *n),
            Cond::SpamGe(x) => f.spam_score.is_some_and(|s| s >= *x),
            Cond::Any(cs) => cs.iter().any(|c| c.holds(f)),
        }
    }
}

fn in_nets(nets: &[Net], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| match (n, ip) {
        (Net::V4(s, e), IpAddr::V4(a)) => (*s..=*e).contains(&u32::from(a)),
        (Net::V6(s, e), IpAddr::V6(a)) => (*s..=*e).contains(&u128::from(a)),
        _ => false,
    })
}

/// The rules: each a list of conditions that must all hold.
pub type Rules = Vec<Vec<Cond>>;

/// The first rule whose conditions all hold.
#[inline]
pub fn decide(rules: &[Vec<Cond>], f: &NFacts) -> Option<usize> {
    rules.iter().position(|r| r.iter().all(|c| c.holds(f)))
}

pub fn dir(ds: &[Direction]) -> Cond {
    Cond::Direction(ds.iter().fold(0, |m, d| m | 1 << *d as u8))
}
pub fn scan(ss: &[Scanner]) -> Cond {
    Cond::Scanner(ss.iter().fold(0, |m, s| m | 1 << *s as u8))
}
pub fn globs(gs: &[&str]) -> Vec<Glob> {
    gs.iter().map(|g| Glob::new(g)).collect()
}
pub fn nets(ns: &[&str]) -> Vec<Net> {
    ns.iter().map(|n| net(n)).collect()
}

use Direction::{Inbound, Internal, OpenRelay, Outbound};
use Scanner::{Clean, Encrypted, Error, Infected, Timeout};

/// `tests/fixtures/spec_example.policy` (custom fact: `dnsbl_listed`).
pub fn example() -> Rules {
    let forgers = &["W32/Sobig*", "W32/Bagle*", "*@MM"];
    vec![
        vec![scan(&[Error, Timeout])],
        vec![
            Cond::Any(vec![
                dir(&[Outbound, Internal, OpenRelay]),
                Cond::ClientIn(nets(&["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"])),
            ]),
            scan(&[Infected]),
        ],
        vec![scan(&[Encrypted])],
        vec![
            scan(&[Infected]),
            Cond::ForgesSender(false),
            Cond::VirusNone(globs(forgers)),
            Cond::SenderNe(String::new()),
        ],
        vec![scan(&[Infected])],
        vec![Cond::CustomBool(true), Cond::SpamGe(8.0)],
    ]
}

/// The ISP site policy of `benches/eval.rs`.
pub fn site_isp() -> Rules {
    let mass = &[
        "W32/Sobig*",
        "W32/Bagle*",
        "W32/Netsky*",
        "W32/Mydoom*",
        "W32/Klez*",
        "*@MM",
    ];
    let customers = nets(&["198.51.100.0/24", "203.0.113.0/25", "2001:db8:100::/40"]);
    vec![
        vec![scan(&[Error, Timeout])],
        vec![Cond::ClientIn(customers), scan(&[Infected])],
        vec![
            scan(&[Encrypted]),
            Cond::RecipientIn(vec!["ceo@isp.example".into(), "noc@isp.example".into()]),
        ],
        vec![scan(&[Encrypted])],
        // `*@mm!*` matches nothing the benchmarks supply; left out.
        vec![scan(&[Infected]), Cond::VirusAny(globs(mass))],
        vec![scan(&[Infected])],
    ]
}

/// The university site policy of `benches/eval.rs` (custom fact: `quarantine_full`).
pub fn site_uni() -> Rules {
    let campus = nets(&[
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.0.2.0/24",
        "2001:db8:42::/48",
    ]);
    let labs = &[
        "*@cs.uni.example",
        "*@physics.uni.example",
        "*@bio.uni.example",
    ];
    vec![
        vec![scan(&[Error, Timeout])],
        vec![scan(&[Infected]), Cond::CustomBool(true)],
        vec![dir(&[Outbound, Internal]), scan(&[Infected])],
        vec![Cond::ClientIn(campus), scan(&[Infected])],
        vec![
            scan(&[Encrypted]),
            Cond::Any(
                labs.iter()
                    .map(|g| Cond::SenderGlob(Glob::new(g)))
                    .collect(),
            ),
            Cond::Authenticated(true),
        ],
        vec![dir(&[Inbound]), scan(&[Encrypted])],
        vec![
            scan(&[Infected]),
            Cond::ForgesSender(false),
            Cond::SenderNe(String::new()),
        ],
        vec![scan(&[Infected])],
        vec![Cond::SizeGt(50_000_000)],
    ]
}

/// `tests/common/gen.rs`'s `virus_policy(n, seed)`, rule for rule.
pub fn generated(plan: &[(u8, u32, u32)]) -> Rules {
    let mut rules: Rules = plan
        .iter()
        .enumerate()
        .map(|(i, &(kind, a, b))| match kind {
            0 => vec![
                dir(&[Outbound, Internal]),
                scan(&[Infected]),
                Cond::ClientIn(vec![
                    net(&format!("10.{a}.{b}.0/24")),
                    net(&format!("2001:db8:{i:x}::/48")),
                ]),
            ],
            1 => vec![
                scan(&[Infected]),
                Cond::ForgesSender(false),
                Cond::VirusAny(globs(&[&format!("W32/Fam{i}*"), &format!("*.Fam{i}@MM")])),
                Cond::SenderNe(String::new()),
            ],
            2 => vec![
                scan(&[Infected]),
                Cond::VirusAny(globs(&[&format!("Trojan.Gen{i}.*")])),
            ],
            3 => vec![
                dir(&[Inbound]),
                scan(&[Encrypted]),
                Cond::RecipientIn(vec![
                    format!("user{i}@example.org"),
                    format!("alias{i}@example.org"),
                ]),
            ],
            4 => vec![
                scan(&[Error, Timeout]),
                Cond::ClientIn(vec![net(&format!("172.{}.{b}.0/24", 16 + a % 16))]),
            ],
            5 => vec![
                Cond::Authenticated(true),
                scan(&[Infected]),
                Cond::SenderGlob(Glob::new(&format!("*@dept{i}.example.org"))),
            ],
            6 => vec![
                scan(&[Infected]),
                Cond::ForgesSender(false),
                Cond::VirusRegex(
                    regex::Regex::new(&format!(r"^Worm\.X{i}\b")).expect("a valid regex"),
                ),
            ],
            _ => vec![
                scan(&[Clean]),
                Cond::SizeGt(1_000_000 + i64::from(a) * 1000),
                Cond::RecipientIn(vec![format!("small{i}@example.org")]),
            ],
        })
        .collect();
    rules.push(vec![
        scan(&[Infected]),
        Cond::VirusAny(globs(&[
            "W32/Sobig*",
            "W32/Bagle*",
            "W32/Netsky*",
            "W32/Mydoom*",
            "*@MM",
        ])),
        dir(&[OpenRelay]),
    ]);
    rules
}

/// The side-by-side "virus policy" (see `side_by_side` in `benches/eval.rs`):
/// rule `i` is one of three shapes, by `i % 3`.
pub fn side_by_side(n: usize) -> Rules {
    (0..n)
        .map(|i| match i % 3 {
            0 => vec![
                scan(&[Infected]),
                Cond::VirusAny(globs(&[&format!("Fam{i}.*")])),
            ],
            1 => vec![
                scan(&[Infected]),
                Cond::VirusAny(globs(&[&format!("Fam{i}.*")])),
                Cond::ForgesSender(false),
            ],
            _ => vec![
                dir(&[Outbound]),
                scan(&[Infected]),
                Cond::ClientIn(vec![net(&format!("10.{}.{}.0/24", i / 256 % 256, i % 256))]),
            ],
        })
        .collect()
}

/// The same policy in the language.
pub fn side_by_side_source(n: usize) -> String {
    use std::fmt::Write;
    let mut s = String::from("policy \"side by side\"\nadmin \"postmaster@example.org\"\n\n");
    for i in 0..n {
        let when = match i % 3 {
            0 => format!("scanner == infected and virus matches \"Fam{i}.*\""),
            1 => format!(
                "scanner == infected and virus matches \"Fam{i}.*\" and forges_sender == false"
            ),
            _ => format!(
                "direction == outbound and scanner == infected and client_ip in 10.{}.{}.0/24",
                i / 256 % 256,
                i % 256
            ),
        };
        let then = match i % 3 {
            0 => "discard, quarantine",
            1 => "bounce, quarantine",
            _ => "discard, quarantine \"outbound\", alert admin",
        };
        // `write!` to a String cannot fail.
        let _ = writeln!(s, "rule \"rule {i}\" {{ when {when} then {then} }}");
    }
    s.push_str("default pass\n");
    s
}
