//! The linter: every warning fires on its fixture and stays quiet on a near
//! twin; the analysis agrees with evaluation on sampled facts; the CLI's
//! `check` options work.

use mailpolicy::{Code, Diagnostic, Disposition, Facts, Policy};
use std::path::PathBuf;

#[path = "../benches/gen/mod.rs"]
mod gen;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lint_fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

fn lint(name: &str) -> Vec<Diagnostic> {
    let src = read(name);
    match Policy::parse(&src) {
        Ok(p) => p.check(),
        Err(e) => panic!("{name} does not parse:\n{e}"),
    }
}

fn lint_coverage(name: &str) -> Vec<Diagnostic> {
    Policy::parse(&read(name))
        .expect("fixture parses")
        .check_with_coverage()
}

fn with_code(diags: &[Diagnostic], code: &str) -> Vec<Diagnostic> {
    diags
        .iter()
        .filter(|d| d.code.as_str() == code)
        .cloned()
        .collect()
}

/// Asserts exactly one `code` warning, on `line`, about `rule`; returns it.
fn fires(name: &str, code: &str, line: usize, rule: &str) -> Diagnostic {
    let diags = lint(name);
    fires_in(name, &diags, code, line, rule)
}

fn fires_in(name: &str, diags: &[Diagnostic], code: &str, line: usize, rule: &str) -> Diagnostic {
    let hits = with_code(diags, code);
    assert_eq!(hits.len(), 1, "{name}: expected one {code}, got {diags:#?}");
    let d = hits[0].clone();
    assert_eq!(d.line, line, "{name}: {code} on the wrong line: {d:#?}");
    // The default is no rule (`rule` is `None`, as in a decision), so that
    // it cannot be confused with a rule named "default".
    assert_eq!(
        d.rule.as_deref(),
        Some(rule).filter(|r| *r != "default"),
        "{name}: {code} names the wrong rule"
    );
    assert!(
        d.help.as_deref().is_some_and(|h| !h.is_empty()),
        "{name}: {code} has no help"
    );
    assert!(
        d.message.contains(rule) || rule == "default",
        "{name}: message names the rule: {}",
        d.message
    );
    assert!(
        d.message.starts_with(|c: char| !c.is_uppercase()),
        "lowercase: {}",
        d.message
    );
    d
}

fn quiet(name: &str, code: &str) {
    let diags = lint(name);
    let hits = with_code(&diags, code);
    assert!(hits.is_empty(), "{name}: {code} must not fire: {hits:#?}");
}

#[test]
fn backscatter_alert() {
    let d = fires(
        "backscatter_alert.fires.policy",
        "backscatter-alert",
        1,
        "virus: tell everyone",
    );
    assert!(
        d.example
            .as_deref()
            .unwrap_or("")
            .contains("scanner = infected"),
        "{d:?}"
    );
    quiet("backscatter_alert.quiet.policy", "backscatter-alert");
}

#[test]
fn backscatter_bounce() {
    let d = fires(
        "backscatter_bounce.fires.policy",
        "backscatter-bounce",
        1,
        "virus: clean DSN",
    );
    assert!(
        d.example.as_deref().unwrap_or("").contains("forges_sender"),
        "{d:?}"
    );
    // Guarded by `forges_sender == false`: not backscatter.
    quiet("backscatter_bounce.quiet.policy", "backscatter-bounce");
}

#[test]
fn reject_after_queue() {
    fires(
        "reject_after_queue.fires.policy",
        "reject-after-queue",
        2,
        "virus",
    );
    quiet("reject_after_queue.quiet.policy", "reject-after-queue");
}

#[test]
fn silent_discard() {
    fires("silent_discard.fires.policy", "silent-discard", 2, "virus");
    quiet("silent_discard.quiet.policy", "silent-discard");
}

#[test]
fn fail_open_scanner_failure() {
    let d = fires("fail_open.fires.policy", "fail-open", 2, "everything else");
    let ex = d.example.unwrap_or_default();
    assert!(
        ex.contains("scanner = error") || ex.contains("scanner = timeout"),
        "{ex}"
    );
    quiet("fail_open.quiet.policy", "fail-open");
}

#[test]
fn fail_open_unmarked_encrypted() {
    let d = fires(
        "fail_open_encrypted.fires.policy",
        "fail-open",
        3,
        "unscannable",
    );
    assert!(d.message.contains("encrypted"), "{}", d.message);
}

#[test]
fn virus_passes() {
    let d = fires(
        "virus_passes.fires.policy",
        "virus-passes",
        2,
        "small files",
    );
    assert!(d.example.unwrap_or_default().contains("scanner = infected"));
    // The infected rule comes first: neither the rule nor the default lets a virus pass.
    quiet("virus_passes.quiet.policy", "virus-passes");
}

#[test]
fn virus_passes_through_the_implicit_default() {
    let src = read("virus_passes_default.fires.policy");
    let diags = Policy::parse(&src).unwrap().check();
    let last_line = src.trim_end().lines().count();
    let d = fires_in(
        "virus_passes_default",
        &diags,
        "virus-passes",
        last_line,
        "default",
    );
    assert!(d.message.contains("implicit default"), "{}", d.message);
}

#[test]
fn outbound_virus_escapes() {
    let d = fires(
        "outbound_virus_escapes.fires.policy",
        "outbound-virus-escapes",
        2,
        "other virus: refuse",
    );
    let ex = d.example.unwrap_or_default();
    assert!(
        ex.contains("direction = outbound") || ex.contains("direction = internal"),
        "{ex}"
    );
    // `open_relay` is not outbound.
    quiet(
        "outbound_virus_escapes.quiet.policy",
        "outbound-virus-escapes",
    );
}

#[test]
fn unreachable_rule_cidr_containment() {
    let d = fires(
        "unreachable_rule.fires.policy",
        "unreachable-rule",
        2,
        "lab network: virus",
    );
    assert!(
        d.message.contains("our networks: virus"),
        "names the covering rule: {}",
        d.message
    );
    // Narrow before wide is fine, and a catch-all after `direction == inbound` and
    // `direction != inbound` is reachable (direction may be unknown).
    quiet("unreachable_rule.quiet.policy", "unreachable-rule");
}

#[test]
fn unreachable_rule_contradiction() {
    let d = fires(
        "unreachable_rule_contradiction.fires.policy",
        "unreachable-rule",
        1,
        "impossible",
    );
    assert!(d.message.contains("never true"), "{}", d.message);
    // No other warning is reported for a rule that cannot decide.
    let about: Vec<_> = lint("unreachable_rule_contradiction.fires.policy")
        .into_iter()
        .filter(|d| d.rule.as_deref() == Some("impossible"))
        .collect();
    assert_eq!(about.len(), 1, "{about:#?}");
}

#[test]
fn tempfail_permanent() {
    let d = fires(
        "tempfail_permanent.fires.policy",
        "tempfail-permanent",
        1,
        "cannot decide now",
    );
    assert!(d.message.contains("encrypted"), "{}", d.message);
    quiet("tempfail_permanent.quiet.policy", "tempfail-permanent");
}

#[test]
fn alert_null_sender() {
    // The policy never mentions `sender`: the null sender can still reach the bounce.
    let d = fires(
        "alert_null_sender.fires.policy",
        "alert-null-sender",
        1,
        "non-forging virus: clean DSN",
    );
    assert!(d.example.unwrap_or_default().contains("sender = \"\""));
    quiet("alert_null_sender.quiet.policy", "alert-null-sender");
}

#[test]
fn unused_list() {
    let diags = lint("unused_list.fires.policy");
    let hits = with_code(&diags, "unused-list");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!((hits[0].line, hits[0].column), (1, 6));
    assert!(hits[0].message.contains("mynets"));
    quiet("unused_list.quiet.policy", "unused-list");
}

#[test]
fn unused_fact_counts_only_rules() {
    let diags = lint("unused_fact.fires.policy");
    let hits = with_code(&diags, "unused-fact");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].line, 2);
    assert!(hits[0].message.contains("spf"));
    quiet("unused_fact.quiet.policy", "unused-fact");
}

#[test]
fn untested_rule_only_with_coverage() {
    let diags = lint_coverage("untested_rule.fires.policy");
    fires_in(
        "untested_rule",
        &diags,
        "untested-rule",
        2,
        "scanner failed",
    );
    assert!(with_code(&lint("untested_rule.fires.policy"), "untested-rule").is_empty());
    let diags = lint_coverage("untested_rule.quiet.policy");
    assert!(with_code(&diags, "untested-rule").is_empty(), "{diags:#?}");
}

#[test]
fn allow_silences_items_and_files() {
    let diags = lint("allow.policy");
    assert!(with_code(&diags, "unused-list").is_empty(), "{diags:#?}");
    let silent = with_code(&diags, "silent-discard");
    assert_eq!(silent.len(), 1, "{silent:#?}");
    assert_eq!(silent[0].rule.as_deref(), Some("spam"));
    assert_eq!(silent[0].line, 10);
}

#[test]
fn the_spec_example_is_clean() {
    let diags = lint("spec_example.policy");
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn output_is_sorted_by_position() {
    let diags = lint("virus_passes.fires.policy");
    let spans: Vec<usize> = diags.iter().map(|d| d.span.start).collect();
    let mut sorted = spans.clone();
    sorted.sort_unstable();
    assert_eq!(spans, sorted);
}

#[test]
fn one_warning_per_rule_and_code() {
    // Both `error` and `timeout` pass through the same rule: one fail-open.
    let diags = lint("fail_open.fires.policy");
    assert_eq!(with_code(&diags, "fail-open").len(), 1);
}

// ---- agreement with evaluation --------------------------------------------------------------

/// Values the sampler draws each fact from (`None`: unknown).
struct Sampler {
    rng: gen::Rng,
    nets: Vec<String>,
}

impl Sampler {
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len() as u64) as usize].clone()
    }

    fn facts(&mut self) -> Facts {
        use mailpolicy::{Direction, Scanner};
        let mut f = Facts::new();
        if self.rng.below(5) > 0 {
            f = f.direction(self.pick(&Direction::ALL));
        }
        if self.rng.below(6) > 0 {
            f = f.scanner(self.pick(&Scanner::ALL));
        }
        if self.rng.below(3) > 0 {
            let fam = self.pick(&[
                "W32/Sobig",
                "W32/Bagle",
                "W32/Netsky",
                "Troj/Agent",
                "JS/Redir",
                "x",
            ]);
            let v = self.rng.below(1000);
            let suffix = self.pick(&["", "@MM", ".A"]);
            f = f.virus(format!("{fam}.{v}{suffix}"));
        }
        if self.rng.below(3) > 0 {
            f = f.forges_sender(self.rng.below(2) == 0);
        }
        if self.rng.below(4) > 0 && !self.nets.is_empty() {
            let net = self.pick(&self.nets.clone());
            let base = net.trim_end_matches(".0/24");
            f = f.client_ip(format!("{base}.{}", self.rng.below(256)).parse().unwrap());
        }
        if self.rng.below(3) > 0 {
            f = f.sender(self.pick(&["", "a@example.org"]));
        }
        if self.rng.below(2) > 0 {
            f = f.authenticated(self.rng.below(2) == 0);
        }
        if self.rng.below(2) > 0 {
            f = f.size(self.rng.below(60_000) as i64);
        }
        if self.rng.below(2) > 0 {
            f = f.spam_score(self.rng.below(200) as f64 / 10.0);
        }
        f
    }
}

#[test]
fn warnings_agree_with_evaluation_on_sampled_facts() {
    let src = gen::policy(150, 7);
    let policy = Policy::parse(&src).unwrap();
    let diags = policy.check();
    let has = |code: &str, rule: &str| {
        diags
            .iter()
            .any(|d| d.code.as_str() == code && d.rule.as_deref().unwrap_or("default") == rule)
    };
    let nets: Vec<String> = src
        .split_whitespace()
        .filter(|t| t.ends_with(".0/24"))
        .map(|t| t.trim_end_matches([',', ']']).to_owned())
        .collect();
    let mut s = Sampler {
        rng: gen::Rng::new(99),
        nets,
    };
    let mut decided = std::collections::HashSet::new();
    for _ in 0..30_000 {
        let facts = s.facts();
        let d = policy.evaluate(&facts);
        let rule = d.rule().unwrap_or("default");
        decided.insert(rule.to_owned());
        assert!(
            !has("unreachable-rule", rule),
            "rule {rule} decided {facts:?}"
        );
        let scanner = facts.get("scanner").map(|v| format!("{v:?}"));
        let infected = scanner.as_deref() == Some("Scanner(Infected)");
        let failed = matches!(
            scanner.as_deref(),
            Some("Scanner(Error)" | "Scanner(Timeout)")
        );
        let dir = facts.get("direction").map(|v| format!("{v:?}"));
        let outbound = matches!(
            dir.as_deref(),
            Some("Direction(Outbound)" | "Direction(Internal)")
        );
        let disp = d.disposition();
        if infected && disp == Disposition::Pass {
            assert!(has("virus-passes", rule), "{rule}: {facts:?}");
        }
        if failed && disp == Disposition::Pass {
            assert!(has("fail-open", rule), "{rule}: {facts:?}");
        }
        if infected
            && outbound
            && matches!(
                disp,
                Disposition::Pass | Disposition::Bounce | Disposition::Reject
            )
        {
            assert!(has("outbound-virus-escapes", rule), "{rule}: {facts:?}");
        }
        let forges_false =
            matches!(facts.get("forges_sender"), Some(v) if format!("{v:?}") == "Bool(false)");
        if infected && !forges_false && disp == Disposition::Bounce {
            assert!(has("backscatter-bounce", rule), "{rule}: {facts:?}");
        }
        let null_sender =
            matches!(facts.get("sender"), Some(v) if format!("{v:?}").contains("\"\""));
        if null_sender && disp == Disposition::Bounce {
            assert!(has("alert-null-sender", rule), "{rule}: {facts:?}");
        }
        if disp == Disposition::Discard && d.quarantine().is_none() {
            assert!(has("silent-discard", rule), "{rule}: {facts:?}");
        }
    }
    assert!(
        decided.len() > 20,
        "the sampler reaches many rules: {}",
        decided.len()
    );
}

#[test]
fn a_thousand_rules_check_quickly() {
    let src = gen::policy(1000, 42);
    let start = std::time::Instant::now();
    let policy = Policy::parse(&src).unwrap();
    let diags = policy.check();
    let took = start.elapsed();
    assert!(!diags.is_empty());
    // Generous: debug builds on a loaded machine; release takes well under a second.
    assert!(took.as_secs() < 30, "took {took:?}");
}

#[test]
fn adversarial_policies_stay_bounded() {
    // Many overlapping patterns on string facts: the search must stay bounded (no hang),
    // and must not claim a rule unreachable that a message reaches.
    let mut src = String::new();
    for i in 0..300 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when (virus matches \"*{a}*\" or virus matches \"*{b}*\") and (sender matches \"*{c}*\" or recipient matches \"*{a}*\") then discard, quarantine }}\n",
            a = i % 17,
            b = i % 13,
            c = i % 11
        ));
    }
    // 30 contains globs on `virus`, a set: past the scan budget
    // (`tests/cost.rs`); what is tested here is the linter.
    let lifted = mailpolicy::Limits {
        max_scan_passes: usize::MAX,
        ..mailpolicy::Limits::default()
    };
    let policy = Policy::parse_with_limits(&src, &lifted).unwrap();
    let start = std::time::Instant::now();
    let diags = policy.check();
    assert!(start.elapsed().as_secs() < 60);
    // Whatever it claims unreachable, no sampled message reaches.
    let mut rng = gen::Rng::new(5);
    let digits = |rng: &mut gen::Rng| -> Option<String> {
        (rng.below(4) > 0).then(|| {
            (0..1 + rng.below(4))
                .map(|_| rng.below(17).to_string())
                .collect()
        })
    };
    for _ in 0..20_000 {
        let mut facts = Facts::new();
        for name in ["virus", "sender", "recipient"] {
            if let Some(v) = digits(&mut rng) {
                facts = match name {
                    "virus" => facts.virus(v),
                    "sender" => facts.sender(v),
                    _ => facts.recipient(v),
                };
            }
        }
        if let Some(rule) = policy.evaluate(&facts).rule() {
            assert!(
                !diags.iter().any(|d| d.code == Code::UnreachableRule
                    && d.rule.as_deref().unwrap_or("default") == rule),
                "{rule} is reached by {facts:?}"
            );
        }
    }
}

// ---- the command line ----------------------------------------------------------------------

fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_policy"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn cli_json_output() {
    let path = fixture_path("silent_discard.fires.policy");
    let (code, out) = cli(&["check", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "warnings alone exit 0");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let arr = v.as_array().expect("array");
    let d = arr
        .iter()
        .find(|d| d["code"] == "silent-discard")
        .expect("silent-discard");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["line"], 2);
    assert_eq!(d["column"], 1);
    assert_eq!(d["file"], path.to_str().unwrap());
    assert!(d["message"].as_str().unwrap().contains("\"virus\""));
}

#[test]
fn cli_deny_warnings() {
    let fires = fixture_path("silent_discard.fires.policy");
    let quiet = fixture_path("spec_example.policy");
    assert_eq!(
        cli(&["check", "--deny-warnings", fires.to_str().unwrap()]).0,
        1
    );
    assert_eq!(
        cli(&["check", "--deny-warnings", quiet.to_str().unwrap()]).0,
        0
    );
}

#[test]
fn cli_coverage() {
    let path = fixture_path("untested_rule.fires.policy");
    let (_, plain) = cli(&["check", "--format", "json", path.to_str().unwrap()]);
    assert!(!plain.contains("untested-rule"));
    let (code, out) = cli(&[
        "check",
        "--coverage",
        "--format",
        "json",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hits: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "untested-rule")
        .collect();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["line"], 2);
}

#[test]
fn every_code_has_a_fixture() {
    let names: Vec<String> = std::fs::read_dir(fixture_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for code in Code::ALL
        .iter()
        .filter(|c| c.severity() == mailpolicy::Severity::Warning)
    {
        if *code == Code::UnknownLint {
            continue;
        }
        let stem = code.as_str().replace('-', "_");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("{stem}.fires"))),
            "no fixture for {code}"
        );
    }
}

// ---- random small policies ------------------------------------------------------------------

fn random_leaf(r: &mut gen::Rng) -> String {
    let pick = |r: &mut gen::Rng, xs: &[&str]| xs[r.below(xs.len() as u64) as usize].to_owned();
    match r.below(12) {
        0 => format!(
            "direction {} {}",
            pick(r, &["==", "!="]),
            pick(r, &["inbound", "outbound", "internal", "open_relay"])
        ),
        1 => format!(
            "scanner {} {}",
            pick(r, &["==", "!="]),
            pick(r, &["clean", "infected", "encrypted", "error", "timeout"])
        ),
        2 => format!(
            "scanner in [{}, {}]",
            pick(r, &["clean", "infected", "encrypted"]),
            pick(r, &["error", "timeout", "infected"])
        ),
        3 => format!("forges_sender == {}", pick(r, &["true", "false"])),
        4 => "forges_sender".to_owned(),
        5 => format!(
            "sender {} \"{}\"",
            pick(r, &["==", "!="]),
            pick(r, &["", "a@example.org"])
        ),
        6 => format!(
            "virus matches \"{}\"",
            pick(r, &["W32/*", "*@MM", "W32/Sobig*", "*", "?32*"])
        ),
        7 => format!(
            "client_ip in {}",
            pick(
                r,
                &[
                    "10.0.0.0/8",
                    "10.1.0.0/16",
                    "10.1.2.0/24",
                    "192.168.0.0/16",
                    "2001:db8::/32"
                ]
            )
        ),
        8 => format!(
            "size {} {}",
            pick(r, &["<", "<=", ">", ">=", "==", "!="]),
            pick(r, &["0", "1000", "1000.5", "5000"])
        ),
        9 => format!(
            "known {}",
            pick(r, &["direction", "scanner", "virus", "sender", "client_ip"])
        ),
        10 => format!("virus == \"{}\"", pick(r, &["W32/Sobig.F@MM", "EICAR"])),
        _ => pick(r, &["true", "false"]),
    }
}

fn random_cond(r: &mut gen::Rng, depth: u32) -> String {
    if depth == 0 || r.below(3) == 0 {
        return random_leaf(r);
    }
    match r.below(3) {
        0 => format!("not ({})", random_cond(r, depth - 1)),
        1 => format!(
            "({} and {})",
            random_cond(r, depth - 1),
            random_cond(r, depth - 1)
        ),
        _ => format!(
            "({} or {})",
            random_cond(r, depth - 1),
            random_cond(r, depth - 1)
        ),
    }
}

fn random_policy(r: &mut gen::Rng) -> String {
    let actions = [
        "pass",
        "pass, tag \"x\"",
        "discard",
        "discard, quarantine",
        "bounce",
        "bounce, quarantine",
        "reject",
        "tempfail",
        "discard, quarantine, alert sender",
        "pass, alert admin",
    ];
    let mut s = String::new();
    if r.below(2) == 0 {
        s.push_str("mode after_queue\n");
    }
    for i in 0..(2 + r.below(7)) {
        let a = actions[r.below(actions.len() as u64) as usize];
        if r.below(6) == 0 {
            s.push_str(&format!("rule \"r{i}\" {{ then {a} }}\n"));
        } else {
            s.push_str(&format!(
                "rule \"r{i}\" {{ when {} then {a} }}\n",
                random_cond(r, 3)
            ));
        }
    }
    if r.below(2) == 0 {
        s.push_str(&format!(
            "default {}\n",
            actions[r.below(actions.len() as u64) as usize]
        ));
    }
    s
}

fn random_facts(r: &mut gen::Rng) -> Facts {
    use mailpolicy::{Direction, Scanner};
    let mut f = Facts::new();
    let known = |r: &mut gen::Rng| r.below(4) > 0;
    if known(r) {
        f = f.direction(Direction::ALL[r.below(4) as usize]);
    }
    if known(r) {
        f = f.scanner(Scanner::ALL[r.below(5) as usize]);
    }
    if known(r) {
        f = f.forges_sender(r.below(2) == 0);
    }
    if known(r) {
        f = f.sender(["", "a@example.org", "b@example.org"][r.below(3) as usize]);
    }
    if known(r) {
        f = f.virus(["W32/Sobig.F@MM", "EICAR", "w32/x", "32", "Troj@mm", ""][r.below(6) as usize]);
    }
    if known(r) {
        let ip = [
            "10.1.2.3",
            "10.1.9.9",
            "10.9.9.9",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "::1",
            "::ffff:10.1.2.3",
        ];
        f = f.client_ip(ip[r.below(ip.len() as u64) as usize].parse().unwrap());
    }
    if known(r) {
        f = f.size([-1i64, 0, 1, 999, 1000, 1001, 4999, 5000, 5001][r.below(9) as usize]);
    }
    f
}

#[test]
fn random_policies_never_contradict_evaluation() {
    let mut r = gen::Rng::new(2024);
    let (mut unreachable_claims, mut value_checks) = (0, 0);
    for round in 0..300 {
        let src = random_policy(&mut r);
        let policy = Policy::parse(&src).unwrap_or_else(|e| panic!("{src}\n{e}"));
        let diags = policy.check();
        unreachable_claims += with_code(&diags, "unreachable-rule").len();
        let has = |code: &str, rule: &str| {
            diags
                .iter()
                .any(|d| d.code.as_str() == code && d.rule.as_deref().unwrap_or("default") == rule)
        };
        for _ in 0..3000 {
            let facts = random_facts(&mut r);
            let d = policy.evaluate(&facts);
            let rule = d.rule().unwrap_or("default");
            let ctx = || format!("round {round}\n{src}\nfacts {facts:?}\n{diags:#?}");
            assert!(!has("unreachable-rule", rule), "{rule} reached: {}", ctx());
            let scanner = facts.get("scanner").map(|v| format!("{v:?}"));
            let infected = scanner.as_deref() == Some("Scanner(Infected)");
            let disp = d.disposition();
            if infected && disp == Disposition::Pass {
                value_checks += 1;
                assert!(has("virus-passes", rule), "{}", ctx());
            }
            if matches!(
                scanner.as_deref(),
                Some("Scanner(Error)" | "Scanner(Timeout)")
            ) && disp == Disposition::Pass
            {
                assert!(has("fail-open", rule), "{}", ctx());
            }
            let alerts_sender = d.alerts().any(|a| a.as_str() == "sender");
            if infected && alerts_sender {
                assert!(has("backscatter-alert", rule), "{}", ctx());
            }
            let null = matches!(facts.get("sender"), Some(v) if format!("{v:?}").contains("\"\""));
            if null && (alerts_sender || disp == Disposition::Bounce) {
                assert!(has("alert-null-sender", rule), "{}", ctx());
            }
            if infected
                && disp == Disposition::Reject
                && policy.mode() == mailpolicy::Mode::AfterQueue
            {
                assert!(has("reject-after-queue", rule), "{}", ctx());
            }
            let enc = scanner.as_deref() == Some("Scanner(Encrypted)");
            if (infected || enc) && disp == Disposition::Tempfail {
                assert!(has("tempfail-permanent", rule), "{}", ctx());
            }
            if disp == Disposition::Discard && d.quarantine().is_none() {
                assert!(has("silent-discard", rule), "{}", ctx());
            }
        }
    }
    assert!(
        unreachable_claims > 20,
        "the test exercises unreachable-rule: {unreachable_claims}"
    );
    assert!(
        value_checks > 100,
        "the test exercises virus-passes: {value_checks}"
    );
}

#[test]
fn deeply_nested_conditions_are_fine() {
    let mut cond = String::from("scanner == infected");
    for i in 0..64 {
        cond = if i % 2 == 0 {
            format!("not ({cond} or direction == inbound)")
        } else {
            format!("({cond} and size > {i})")
        };
    }
    let src = format!("rule \"deep\" {{ when {cond} then pass }}\nrule \"after\" {{ when {cond} then discard }}\n");
    let policy = Policy::parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let diags = policy.check();
    // The second rule has the same condition as the first: it can never decide.
    assert!(diags
        .iter()
        .any(|d| d.code == Code::UnreachableRule && d.rule.as_deref() == Some("after")));
}

#[test]
fn the_empty_glob_matches_only_the_empty_string() {
    // `matches ""` is no match-everything glob: these rules apply (to
    // recipient "x", to a virus named ""), so neither is unreachable.
    // Found by `policy diff`'s completeness property.
    let p = mailpolicy::Policy::parse(
        "rule \"r\" { when not recipient matches \"\" then pass }\n\
         rule \"s\" { when any virus matches \"\" then discard, quarantine }\n",
    )
    .unwrap();
    let unreachable: Vec<_> = p
        .check()
        .into_iter()
        .filter(|d| d.code.as_str() == "unreachable-rule")
        .collect();
    assert!(unreachable.is_empty(), "{unreachable:?}");
    let d = p.evaluate(&mailpolicy::Facts::new().recipient("x"));
    assert_eq!(d.rule(), Some("r"));
}

#[test]
fn the_default_is_not_confusable_with_a_rule_named_default() {
    let src = "rule \"default\" { when scanner == infected then pass }\ndefault pass\n";
    let diags = Policy::parse(src).unwrap().check();
    let by_rule = with_code(&diags, "virus-passes");
    assert_eq!(by_rule.len(), 1, "{diags:#?}");
    assert_eq!(by_rule[0].rule.as_deref(), Some("default"));
    assert!(by_rule[0].message.contains("rule \"default\""));
    assert_eq!(by_rule[0].line, 1);
    let by_default = with_code(&diags, "fail-open");
    assert_eq!(by_default.len(), 1, "{diags:#?}");
    assert_eq!(by_default[0].rule, None);
    assert!(by_default[0].message.contains("the default"));
    assert_eq!(by_default[0].line, 2);
}

#[test]
fn globs_fold_case_as_documented_and_the_linter_agrees() {
    // LANGUAGE.md: globs ignore case by Unicode simple case folding.
    let src = "rule \"k\" { when recipient matches \"k*\" then pass }\n\
               rule \"kelvin\" { when recipient == \"\u{212A}elvin\" then discard, quarantine }\n\
               rule \"élise\" { when sender matches \"ÉLISE@*\" then pass, tag \"e\" }\n\
               rule \"sharp s\" { when virus matches \"ß*\" then discard, quarantine }\n\
               rule \"SS\" { when virus == \"SS\" then discard, quarantine }\n\
               default pass\n";
    let p = Policy::parse(src).unwrap();
    // The Kelvin sign folds to `k`: evaluation sends it to "k" ...
    let d = p.evaluate(&mailpolicy::Facts::new().recipient("\u{212A}elvin"));
    assert_eq!(d.rule(), Some("k"));
    let d = p.evaluate(&mailpolicy::Facts::new().sender("élise@example.fr"));
    assert_eq!(d.rule(), Some("élise"));
    // Simple folding: "ẞ" is "ß", but "SS" (full folding) is not.
    let d = p.evaluate(&mailpolicy::Facts::new().virus("\u{1E9E}x"));
    assert_eq!(d.rule(), Some("sharp s"));
    let d = p.evaluate(&mailpolicy::Facts::new().virus("SS"));
    assert_eq!(d.rule(), Some("SS"));
    // ... and the linter knows: "kelvin" is unreachable, "SS" is not.
    let unreachable: Vec<String> = p
        .check()
        .into_iter()
        .filter(|d| d.code == Code::UnreachableRule)
        .filter_map(|d| d.rule)
        .collect();
    assert_eq!(unreachable, ["kelvin"]);
}

#[test]
fn a_lint_about_facts_no_earlier_rule_reads_keeps_the_reaching_example() {
    // No rule reads `scanner`: the example that reaches each rule, with
    // `scanner = infected` added, still reaches it (found without a search).
    let src = "rule \"x\" { when recipient == \"x@example.org\" then pass }\n\
               rule \"big\" { when size > 1000 then pass, tag \"big\" }\n\
               default pass\n";
    let p = Policy::parse(src).unwrap();
    let diags = p.check();
    let passes = with_code(&diags, "virus-passes");
    let rules: Vec<Option<&str>> = passes.iter().map(|d| d.rule.as_deref()).collect();
    assert_eq!(rules, [Some("x"), Some("big"), None], "{diags:#?}");
    let ex = passes[0].example.as_deref().unwrap_or("");
    assert!(ex.contains("scanner = infected"), "{ex}");
    assert!(ex.contains("recipient = \"x@example.org\""), "{ex}");
    let facts = mailpolicy::Facts::new()
        .recipient("x@example.org")
        .scanner(mailpolicy::Scanner::Infected);
    assert_eq!(p.evaluate(&facts).rule(), Some("x"));
    let ex = passes[1].example.as_deref().unwrap_or("");
    assert!(
        ex.contains("scanner = infected") && ex.contains("size = "),
        "{ex}"
    );
}
