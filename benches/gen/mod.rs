//! A deterministic generator of realistic site policies, for benchmarks and
//! scaling tests. Self-contained (no dependencies): include it elsewhere with
//! `#[path = "../benches/gen/mod.rs"] mod gen;`.

#![allow(dead_code)]

/// A small deterministic pseudo-random sequence (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const FAMILIES: [&str; 12] = [
    "W32/Sobig",
    "W32/Bagle",
    "W32/Netsky",
    "W32/Mydoom",
    "W32/Klez",
    "W32/Sober",
    "Troj/Agent",
    "Troj/Zbot",
    "JS/Redir",
    "VBS/Loveletter",
    "Mal/Phish",
    "EICAR-Test",
];

/// A policy with `rules` rules (plus a catch-all and a default), mixing the
/// shapes real sites write: per-network rules (CIDRs), per-virus-family rules
/// (globs), `forges_sender` guards, direction and scanner conditions, and
/// mixed actions.
pub fn policy(rules: usize, seed: u64) -> String {
    let mut r = Rng::new(seed);
    let mut s = String::with_capacity(rules * 120 + 512);
    s.push_str("policy \"generated\"\nadmin \"postmaster@example.org\"\n");
    s.push_str("list mynets = [10.0.0.0/8, 192.168.0.0/16, 2001:db8::/32]\n");
    s.push_str("list forgers = [\"W32/Sobig*\", \"W32/Bagle*\", \"*@MM\"]\n\n");
    s.push_str("rule \"scanner failed\" {\n    when scanner in [error, timeout]\n    then tempfail \"451 4.7.1 try again later\"\n}\n\n");
    for i in 0..rules {
        let fam = FAMILIES[r.below(FAMILIES.len() as u64) as usize];
        let variant = r.below(1000);
        let net = format!("10.{}.{}.0/24", r.below(256), r.below(256));
        let (cond, actions) = match r.below(8) {
            0 => (
                format!("direction != inbound and client_ip in {net} and scanner == infected"),
                "discard, quarantine \"outbound\", alert admin".to_owned(),
            ),
            1 => (
                format!("scanner == infected and virus matches \"{fam}.{variant}*\" and forges_sender == false and sender != \"\""),
                "bounce, quarantine".to_owned(),
            ),
            2 => (
                format!("scanner == infected and (virus matches \"{fam}*\" or virus matches forgers)"),
                format!("discard, quarantine \"{}\"", fam.replace('/', "-").to_lowercase()),
            ),
            3 => (
                format!("scanner == encrypted and client_ip in {net}"),
                "pass, tag \"***UNCHECKED***\"".to_owned(),
            ),
            4 => (
                format!("direction == inbound and scanner == clean and client_ip in 192.168.{}.0/24", r.below(256)),
                "pass".to_owned(),
            ),
            5 => (
                format!("client_ip in mynets and authenticated and scanner == clean and size < {}", 1000 * (1 + r.below(50))),
                "pass".to_owned(),
            ),
            6 => (
                format!("scanner == infected and direction == inbound and virus matches \"{fam}.{variant}*\""),
                "discard, quarantine, alert recipient".to_owned(),
            ),
            _ => (
                format!("scanner == clean and spam_score >= {}.{}", 5 + r.below(10), r.below(10)),
                format!("pass, tag \"[SPAM {i}]\""),
            ),
        };
        s.push_str(&format!(
            "rule \"r{i}\" {{\n    when {cond}\n    then {actions}\n}}\n\n"
        ));
    }
    s.push_str("rule \"every other virus\" {\n    when scanner == infected\n    then discard, quarantine\n}\n\n");
    s.push_str("default pass, tag \"[checked]\"\n");
    s
}

/// A policy of `rules` rules, each a conjunction of 2–4 random comparisons
/// on different facts, over strings, globs, CIDRs, numbers, enums and bools
/// (sometimes negated or an `or` of two), with random actions: the shapes
/// of a real policy without its regularity. Deterministic in `(rules, seed)`.
pub fn mixed_policy(rules: usize, seed: u64) -> String {
    let mut r = Rng::new(seed ^ 0x5EED);
    let mut s = String::with_capacity(rules * 140 + 512);
    s.push_str("policy \"mixed\"\nmode after_queue\nadmin \"postmaster@example.org\"\n");
    s.push_str("fact dnsbl: enum(none, listed, whitelisted)\n");
    s.push_str("list mynets = [10.0.0.0/8, 192.168.0.0/16, 2001:db8::/32]\n");
    s.push_str("list forgers = [\"W32/Sobig*\", \"W32/Bagle*\", \"*@MM\"]\n");
    s.push_str("list vips = [\"ceo@example.org\", \"cfo@example.org\", \"it@example.org\"]\n\n");
    let dirs = ["inbound", "outbound", "internal", "open_relay"];
    let scans = ["clean", "infected", "encrypted", "error", "timeout"];
    let ops = ["<", "<=", ">", ">=", "==", "!="];
    for i in 0..rules {
        let n = 2 + r.below(3) as usize;
        let mut parts: Vec<String> = Vec::with_capacity(n);
        // Each comparison on a different fact, as written rules do.
        let mut used: Vec<u64> = Vec::with_capacity(n);
        for _ in 0..n {
            let fam = FAMILIES[r.below(FAMILIES.len() as u64) as usize];
            let mut kind = r.below(13);
            let fact = |k: u64| match k {
                1 | 2 => 1,
                3..=5 => 3,
                6 | 7 => 6,
                _ => k,
            };
            while used.contains(&fact(kind)) {
                kind = (kind + 1) % 13;
            }
            used.push(fact(kind));
            let c = match kind {
                0 => format!("direction == {}", dirs[r.below(4) as usize]),
                1 => format!(
                    "scanner in [{}, {}]",
                    scans[r.below(5) as usize],
                    scans[r.below(5) as usize]
                ),
                2 => format!("scanner == {}", scans[r.below(5) as usize]),
                3 => format!("virus matches \"{fam}.{}*\"", r.below(200)),
                4 => format!("virus matches \"*.{}@MM\"", r.below(50)),
                5 => "virus matches forgers".to_owned(),
                6 => format!("client_ip in 10.{}.{}.0/24", r.below(256), r.below(256)),
                7 => "client_ip in mynets".to_owned(),
                8 => format!("recipient == \"user{}@example.org\"", r.below(500)),
                9 => format!("sender matches \"*@dept{}.example.org\"", r.below(100)),
                10 => format!(
                    "size {} {}",
                    ops[r.below(6) as usize],
                    1000 * (1 + r.below(100))
                ),
                11 => format!(
                    "spam_score {} {}.{}",
                    ops[r.below(4) as usize],
                    r.below(15),
                    r.below(10)
                ),
                _ => match r.below(4) {
                    0 => "forges_sender == false".to_owned(),
                    1 => "authenticated".to_owned(),
                    2 => format!(
                        "dnsbl == {}",
                        ["none", "listed", "whitelisted"][r.below(3) as usize]
                    ),
                    _ => "recipient in vips".to_owned(),
                },
            };
            parts.push(match r.below(10) {
                0 => format!("not ({c})"),
                _ => c,
            });
        }
        if parts.len() >= 3 && r.below(4) == 0 {
            let b = parts.pop().unwrap_or_default();
            let a = parts.pop().unwrap_or_default();
            parts.push(format!("({a} or {b})"));
        }
        let actions = match r.below(7) {
            0 => "pass".to_owned(),
            1 => format!("pass, tag \"[{i}]\""),
            2 => "discard, quarantine".to_owned(),
            3 => "bounce, quarantine".to_owned(),
            4 => "reject".to_owned(),
            5 => "tempfail".to_owned(),
            _ => "discard, quarantine \"review\", alert admin".to_owned(),
        };
        s.push_str(&format!(
            "rule \"m{i}\" {{\n    when {}\n    then {actions}\n}}\n",
            parts.join(" and ")
        ));
    }
    s.push_str("\ndefault pass, tag \"[checked]\"\n");
    s
}
