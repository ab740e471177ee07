//! `policy replay` on log lines a real amavisd-new 2.13 wrote (tests/replay/,
//! made by tests/replay/collect-amavis.sh) and on mailpolicyd decision logs.
//!
//! The expectations come from an independent reading of the same files (a
//! regex over the main entries, below) and from the traffic the collection
//! script sent, never from the tool's own output.

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FILE_LOG: &str = "tests/replay/amavis-file.log";
const SYSLOG_LOG: &str = "tests/replay/amavis-syslog.log";
const GZ_LOG: &str = "tests/replay/amavis-file.log.gz";
const DECISIONS: &str = "tests/replay/decisions.jsonl";
const SITE: &str = "tests/fixtures/spec_example.policy";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn temp(name: &str, text: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailpolicy-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn policy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run policy")
}

fn replay_json(policy_file: &str, logs: &[&str], extra: &[&str]) -> Value {
    let mut args = vec!["replay", policy_file];
    args.extend_from_slice(logs);
    args.extend_from_slice(&["--format", "json"]);
    args.extend_from_slice(extra);
    let o = policy(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// (from, to, direction, category) → count, from the `changes` array.
fn changes(v: &Value) -> BTreeMap<(String, String, String, String), u64> {
    let mut m = BTreeMap::new();
    for c in v["changes"].as_array().expect("changes") {
        let s = |k: &str| c[k].as_str().unwrap_or("null").to_owned();
        let prev = m.insert(
            (s("from"), s("to"), s("direction"), s("category")),
            c["count"].as_u64().expect("count"),
        );
        assert!(prev.is_none(), "duplicate change row {c}");
    }
    m
}

/// An independent reading of amavisd's main entries (the unsplit file log).
struct Main {
    id: String,
    blocked: bool,
    category: String,
    names: Vec<String>,
    actions: Vec<String>,
    recipients: usize,
}

fn main_entries(path: &str) -> Vec<Main> {
    let re = Regex::new(
        r"amavisd?\[\d+\]: \(([^)]+)\) (Passed|Blocked) ([A-Z-]+)(?: \(([^)]*)\))? \{([^}]*)\}, .*?<[^>]*> -> ((?:<[^>]*>,?)+)",
    )
    .unwrap();
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    text.lines()
        .filter_map(|l| re.captures(l))
        .map(|c| Main {
            id: c[1].to_owned(),
            blocked: &c[2] == "Blocked",
            category: c[3].to_owned(),
            names: c
                .get(4)
                .map(|n| n.as_str().split(", ").map(str::to_owned).collect())
                .unwrap_or_default(),
            actions: c[5].split(',').map(str::to_owned).collect(),
            recipients: c[6].matches('<').count(),
        })
        .collect()
}

fn direction_of(actions: &[String]) -> String {
    let dirs: Vec<&str> = ["Inbound", "Outbound", "Internal", "OpenRelay"]
        .into_iter()
        .filter(|d| actions.iter().any(|a| a.ends_with(d)))
        .collect();
    match dirs.as_slice() {
        [one] => match *one {
            "OpenRelay" => "open_relay".to_owned(),
            d => d.to_lowercase(),
        },
        _ => "null".to_owned(),
    }
}

fn old_of(m: &Main) -> &'static str {
    if !m.blocked {
        return "pass";
    }
    let has = |w: &str| m.actions.iter().any(|a| a.starts_with(w));
    if has("TempFailed") {
        "tempfail"
    } else if has("Rejected") {
        "reject"
    } else if has("Bounced") {
        "bounce"
    } else {
        "discard"
    }
}

#[test]
fn the_fixture_is_what_the_collection_script_sent() {
    let entries = main_entries(FILE_LOG);
    // 20 messages, 4 directions, every contents category the traffic makes.
    let ids: std::collections::BTreeSet<&str> = entries.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 20);
    for cat in [
        "CLEAN",
        "INFECTED",
        "UNCHECKED-ENCRYPTED",
        "UNCHECKED",
        "BANNED",
    ] {
        assert!(entries.iter().any(|m| m.category == cat), "{cat}");
    }
    for word in [
        "RelayedInbound",
        "RelayedOutbound",
        "RelayedInternal",
        "RelayedOpenRelay",
        "DiscardedOutbound",
        "BouncedInbound",
        "NoBounceInbound",
        "RejectedInbound",
        "RelayedTaggedInbound",
    ] {
        assert!(
            entries.iter().any(|m| m.actions.iter().any(|a| a == word)),
            "{word}"
        );
    }
    assert!(entries.iter().any(|m| m.recipients == 40));
    assert!(entries.iter().any(|m| m.names.len() == 2));
}

#[test]
fn passing_everything_undoes_exactly_what_amavisd_blocked() {
    let pass_all = temp("pass-all.policy", b"default pass\n");
    let v = replay_json(pass_all.to_str().unwrap(), &[FILE_LOG], &[]);
    let entries = main_entries(FILE_LOG);
    let mut want: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    for m in entries.iter().filter(|m| m.blocked) {
        *want
            .entry((
                old_of(m).to_owned(),
                "pass".to_owned(),
                direction_of(&m.actions),
                m.category.clone(),
            ))
            .or_default() += m.recipients as u64;
    }
    assert_eq!(changes(&v), want);
    let ids: std::collections::BTreeSet<&str> = entries.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(v["messages"], ids.len() as u64);
    let recipients: usize = entries.iter().map(|m| m.recipients).sum();
    assert_eq!(v["recipients"], recipients as u64);
    assert_eq!(v["unreadable"], 0);
    // Safety of "pass everything": every infected recipient passes.
    let infected: usize = entries
        .iter()
        .filter(|m| m.category == "INFECTED")
        .map(|m| m.recipients)
        .sum();
    assert!(infected >= 40 + 5, "{infected}");
    assert_eq!(v["safety"]["infected_pass"], infected as u64);
    let unchecked: usize = entries
        .iter()
        .filter(|m| m.category == "UNCHECKED")
        .map(|m| m.recipients)
        .sum();
    assert_eq!(v["safety"]["scanner_failure_pass"], unchecked as u64);
    // The one outbound Sobig (DiscardedOutbound) would leave.
    assert_eq!(v["safety"]["outbound_leaves"], 1);
    // Every change row points at a line holding a main entry of its category.
    let text = std::fs::read_to_string(root().join(FILE_LOG)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for c in v["changes"].as_array().unwrap() {
        let n = c["example_line"].as_u64().unwrap() as usize;
        let line = lines[n - 1];
        let cat = c["category"].as_str().unwrap();
        assert!(line.contains(&format!("Blocked {cat} ")), "{n}: {line}");
        assert_eq!(c["example_file"], FILE_LOG);
    }
}

#[test]
fn split_syslog_lines_and_gzip_read_the_same_as_the_plain_log_file() {
    let site = |log| replay_json(SITE, &[log], &["--forging", "(?i)sobig|mydoom"]);
    let (file, syslog, gz) = (site(FILE_LOG), site(SYSLOG_LOG), site(GZ_LOG));
    for key in ["messages", "recipients", "unreadable", "safety"] {
        assert_eq!(file[key], syslog[key], "{key}");
        assert_eq!(file[key], gz[key], "{key}");
    }
    assert_eq!(changes(&file), changes(&syslog));
    assert_eq!(changes(&file), changes(&gz));
    assert_eq!(file["unreadable"], 0);
    // The syslog fixture really holds entries split in three.
    let text = std::fs::read_to_string(root().join(SYSLOG_LOG)).unwrap();
    assert!(text.lines().filter(|l| l.ends_with("...")).count() >= 4);
}

#[test]
fn the_example_policy_on_real_traffic() {
    let v = replay_json(SITE, &[FILE_LOG], &[]);
    let c = changes(&v);
    let row = |from: &str, to: &str, dir: &str, cat: &str| {
        c.get(&(from.into(), to.into(), dir.into(), cat.into()))
            .copied()
    };
    // The PASSER bank let Mydoom through to two recipients: now discarded.
    assert_eq!(row("pass", "discard", "inbound", "INFECTED"), Some(2));
    // amavisd passed mail it could not scan; the policy tempfails it.
    assert_eq!(row("pass", "tempfail", "inbound", "UNCHECKED"), Some(2));
    // Without --forging every virus may forge: EICAR's bounce becomes a discard.
    assert_eq!(row("bounce", "discard", "inbound", "INFECTED"), Some(1));
    assert_eq!(row("reject", "discard", "inbound", "INFECTED"), Some(1));
    // The encrypted zip was passed tagged, as the policy does: no change.
    assert!(c.keys().all(|k| k.3 != "UNCHECKED-ENCRYPTED"));
    for (k, n) in v["safety"].as_object().unwrap() {
        assert_eq!(n, 0, "{k}");
    }
    // With --forging naming Sobig only, EICAR does not forge: the bounce stays.
    let v = replay_json(SITE, &[FILE_LOG], &["--forging", "(?i)sobig"]);
    let c = changes(&v);
    assert!(!c.contains_key(&(
        "bounce".into(),
        "discard".into(),
        "inbound".into(),
        "INFECTED".into()
    )));
}

#[test]
fn backscatter_counts_bounces_of_viruses_that_may_forge() {
    let bouncer = temp(
        "bouncer.policy",
        b"rule \"bounce viruses\" { when scanner == infected then bounce, quarantine }\n",
    );
    let p = bouncer.to_str().unwrap();
    let entries = main_entries(FILE_LOG);
    let infected: Vec<&Main> = entries
        .iter()
        .filter(|m| m.category == "INFECTED")
        .collect();
    let all: usize = infected.iter().map(|m| m.recipients).sum();
    let v = replay_json(p, &[FILE_LOG], &[]);
    assert_eq!(v["safety"]["backscatter"], all as u64);
    let v = replay_json(p, &[FILE_LOG], &["--forging", "(?i)sobig"]);
    let forging: usize = infected
        .iter()
        .filter(|m| m.names.iter().any(|n| n.to_lowercase().contains("sobig")))
        .map(|m| m.recipients)
        .sum();
    assert!(forging > 0 && forging < all);
    assert_eq!(v["safety"]["backscatter"], forging as u64);
    assert_eq!(v["safety"]["outbound_leaves"], 1);
}

#[test]
fn only_the_program_field_is_trusted_and_bad_lines_are_counted() {
    let log = temp(
        "crafted.log",
        b"Nov 30 06:25:38 mx postfix/smtpd[77]: warning: amavis[1]: (00001-01) Blocked INFECTED (X) {DiscardedInbound}, <a@b> -> <c@example.org>, Hits: -, size: 1, 1 ms\n\
Nov 30 06:25:38 mx amavis[2]: (00002-01) Passed CLEAN {RelayedInbound}, [192.0.2.1]:25 <a@b> -> <c@example.org>, Hits: 3.5, size: 10, 1 ms\n\
Nov 30 06:25:38 mx amavis[2]: (00002-02) Passed CLEAN {RelayedInbound}, no sender here\n\
\n\
binary \x00\xff garbage\n\
Nov 30 06:25:38 mx amavis[2]: (00002-03) Checking: abc\n\
{\"recipients\": 3}\n\
Nov 30 06:25:38 mx amavis[2]: (00002-04) Blocked INFECTED (Y) {DiscardedInbound}, <a@b> -> <d@example.org>,<e@exa...\n",
    );
    let quarantine = temp(
        "q.policy",
        b"rule \"spam\" { when spam_score >= 3 then discard, quarantine }\n",
    );
    let o = policy(&[
        "replay",
        quarantine.to_str().unwrap(),
        log.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["messages"], 1, "{v}");
    assert_eq!(v["recipients"], 1);
    assert_eq!(v["unreadable"], 4, "{v}");
    let lines: Vec<u64> = v["unreadable_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 7, 8]);
    let c = changes(&v);
    assert_eq!(
        c.get(&(
            "pass".into(),
            "discard".into(),
            "inbound".into(),
            "CLEAN".into()
        )),
        Some(&1)
    );
    // Human output names the unreadable lines too.
    let o = policy(&[
        "replay",
        quarantine.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("crafted.log:3: no `<sender>`"), "{text}");
    assert!(text.contains("4 unreadable line(s)"), "{text}");
}

#[test]
fn decision_logs_give_facts_per_recipient() {
    // Tempfail outbound and internal mail, discard infected inbound: the
    // decision log's own directions and scanner results decide.
    let p = temp(
        "dl.policy",
        b"rule \"ours\" { when direction in [outbound, internal] and scanner == clean then tempfail }\n\
          rule \"virus\" { when scanner == infected and forges_sender == true then bounce }\n\
          rule \"unscannable\" { when scanner == encrypted then pass, tag \"U\" }\n\
          rule \"failed\" { when scanner == error then tempfail }\n\
          default discard, quarantine\n",
    );
    let v = replay_json(
        p.to_str().unwrap(),
        &[DECISIONS],
        &["--forging", "(?i)sobig"],
    );
    assert_eq!(v["messages"], 5, "{v}");
    assert_eq!(v["recipients"], 6);
    assert_eq!(v["unreadable"], 2);
    let c = changes(&v);
    let mut want = BTreeMap::new();
    // Sobig among the names: forges → bounce instead of discard.
    want.insert(
        (
            "discard".into(),
            "bounce".into(),
            "inbound".into(),
            "INFECTED".into(),
        ),
        1,
    );
    want.insert(
        (
            "pass".into(),
            "tempfail".into(),
            "outbound".into(),
            "CLEAN".into(),
        ),
        1,
    );
    want.insert(
        (
            "pass".into(),
            "tempfail".into(),
            "internal".into(),
            "CLEAN".into(),
        ),
        1,
    );
    assert_eq!(c, want, "{v}");
    assert_eq!(v["safety"]["backscatter"], 1);
    // Mydoom does not match --forging: forges_sender is false, the default discards.
    assert_eq!(v["safety"]["discard_without_quarantine"], 0);
}

#[test]
fn usage_and_policy_errors() {
    let o = policy(&["replay", SITE, "tests/replay/no-such.log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such.log"));
    let bad = temp(
        "bad.policy",
        b"rule \"x\" { when scaner == clean then pass }\n",
    );
    let o = policy(&["replay", bad.to_str().unwrap(), FILE_LOG]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let o = policy(&["replay", SITE, FILE_LOG, "--forging", "("]);
    assert_eq!(o.status.code(), Some(2));
    let o = policy(&["replay", SITE]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn show_gives_that_many_examples_per_change() {
    let pass_all = temp("pass-all-show.policy", b"default pass\n");
    let v = replay_json(pass_all.to_str().unwrap(), &[FILE_LOG], &["--show", "2"]);
    for c in v["changes"].as_array().unwrap() {
        let n = c["count"].as_u64().unwrap().min(2) as usize;
        let ex = c["examples"].as_array().expect("examples");
        assert_eq!(ex.len(), n, "{c}");
        for e in ex {
            assert!(e["text"].as_str().unwrap().starts_with("Blocked "), "{e}");
        }
    }
    let o = policy(&[
        "replay",
        pass_all.to_str().unwrap(),
        FILE_LOG,
        "--show",
        "1",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("now by the default"), "{text}");
    assert!(Path::new(&root().join(FILE_LOG)).exists());
}

#[test]
fn every_name_amavisd_logged_is_in_the_virus_set() {
    // "Let EICAR-only mail through": a message with EICAR *and* Sobig must not pass.
    let p = temp(
        "eicar-only.policy",
        b"rule \"eicar only\" { when all virus matches \"Eicar-*\" then pass }\n\
          rule \"clean\" { when virus in [] or scanner != infected then pass }\n\
          default discard, quarantine\n",
    );
    let v = replay_json(p.to_str().unwrap(), &[FILE_LOG], &[]);
    let entries = main_entries(FILE_LOG);
    let infected = |m: &&Main| m.category == "INFECTED";
    let eicar_only: usize = entries
        .iter()
        .filter(infected)
        .filter(|m| m.names.iter().all(|n| n.starts_with("Eicar-")))
        .map(|m| m.recipients)
        .sum();
    let all: usize = entries.iter().filter(infected).map(|m| m.recipients).sum();
    assert!(entries
        .iter()
        .any(|m| m.names.len() == 2 && m.names[0].starts_with("Eicar-")));
    assert_eq!(v["safety"]["infected_pass"], eicar_only as u64);
    assert!(eicar_only > 0 && eicar_only < all);
}

/// An amavisd main entry naming `names` for one recipient.
fn infected_line(id: u32, names: &[String], rcpt: &str) -> String {
    format!(
        "Nov 30 06:25:39 mx.example.org amavis[9064]: (09064-{id:02}) Blocked INFECTED ({}) {{DiscardedInbound,Quarantined}}, [203.0.113.9]:43500 [203.0.113.9] <alice@example.com> -> <{rcpt}>, quarantine: virus-x, Queue-ID: 8BB0399463{id}, mail_id: x{id}, Hits: -, size: 933, 130 ms\n",
        names.join(",")
    )
}

#[test]
fn a_message_naming_more_viruses_than_a_set_takes_is_cut_as_mailpolicyd_cuts_it() {
    // mailpolicyd gives the policy clamd's first `max_set_names` (1,024)
    // detections; replay does the same, so a 4 MiB line naming 100,000
    // viruses costs each recipient's evaluation 1,024 names, not 100,000.
    let p = temp(
        "late.policy",
        b"rule \"late\" { when virus matches \"W32/Late*\" then discard, quarantine }\n\
          default pass\n",
    );
    let names_with_late_at = |at: usize| -> Vec<String> {
        (0..1_500)
            .map(|i| {
                if i == at {
                    "W32/Late.A".to_owned()
                } else {
                    format!("Fam{}.A", i % 700)
                }
            })
            .collect()
    };
    // Seen: at the 1,000th name. Not seen: at the 1,100th (duplicates count
    // among the first 1,024, as in mailpolicyd's cut).
    let log = [
        infected_line(1, &names_with_late_at(999), "seen@example.org"),
        infected_line(2, &names_with_late_at(1_100), "cut@example.org"),
    ]
    .concat();
    let log = temp("many-names.log", log.as_bytes());
    let v = replay_json(p.to_str().unwrap(), &[log.to_str().unwrap()], &[]);
    assert_eq!(v["messages"], 2);
    assert_eq!(v["recipients"], 2);
    assert_eq!(v["unreadable"], 0);
    assert_eq!(v["safety"]["infected_pass"], 1, "{v}");
    let o = policy(&["replay", p.to_str().unwrap(), log.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            "2 message(s) named more than 1024 viruses: the policy saw the first 1024 of each"
        ),
        "{text}"
    );
}
