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
