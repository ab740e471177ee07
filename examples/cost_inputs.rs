//! The attack corpus of issue 11 (`tests/common/attack.rs`) for
//! `scripts/bench-cost`, in two modes:
//!
//!     cargo run --release --example cost_inputs -- write DIR
//!
//! writes one policy file per case (and a facts file where a stage reads
//! facts) and prints one line per measurement: `CASE STAGE POLICY FACTS`
//! (`-` for no facts);
//!
//!     cargo run --release --example cost_inputs -- run STAGE POLICY FACTS
//!
//! does what the stage needs first (reading the files, parsing the policy
//! for the stages that take a policy), then runs the stage alone and prints
//! `CPU_SECONDS PEAK_KB REPEATS OUTCOME`: the CPU time of this thread
//! (`/proc/thread-self/schedstat`) and the peak resident memory above the
//! resident memory when the stage began (`VmHWM` after resetting it through
//! `/proc/self/clear_refs`), so that the prerequisites do not count. An
//! evaluation is repeated until it has used 0.2 s and the CPU time is per
//! evaluation. Linux only.
//!
//! Stages: `parse` (`Policy::parse`: syntax, checks and compiling),
//! `compile` (`Policy::recompile`), `lint` (`Policy::check`), `eval`,
//! `explain` (and its JSON), `test` (`Policy::run_tests`), `fmt`
//! (`mailpolicy::format`), `facts` (`Policy::facts_from_json`); and
//! `steps`, which prints the steps (`Limits::max_eval_steps`) the worst
//! evaluation may take and all the rules' steps instead of a cost. With
//! `COST_INPUTS_MAX_EVAL_STEPS=N` in the environment the policy is parsed
//! with that `max_eval_steps`, to measure what the default refuses.

#[path = "../tests/common/attack.rs"]
mod attack;
#[path = "../tests/common/gen.rs"]
mod gen;

use mailpolicy::{Facts, FactsInput, Limits, Policy};
use std::path::Path;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", dir] => write(Path::new(dir)).map_err(|e| e.to_string()),
        ["run", stage, policy, facts] => run(stage, policy, facts),
        _ => Err("usage: cost_inputs write DIR | run STAGE POLICY FACTS".into()),
    }
}

/// A case: its name, its policy, and its stages (with their facts).
type Case = (&'static str, String, Vec<(&'static str, Option<String>)>);

/// The stages every policy that parses gets.
const POLICY_STAGES: [&str; 3] = ["parse", "compile", "lint"];

fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let kb64 = 64 * 1024;
    let sender_x = attack::long_string_facts("sender", 'x', kb64);
    let sender_a = attack::long_string_facts("sender", 'a', kb64);
    let virus_a = attack::long_string_facts("virus", 'a', 60 * 1024);
    let virus_x = attack::long_string_facts("virus", 'x', 60 * 1024);
    let sender_parts = format!("{{\"sender\": \"{}\"}}", attack::three_part_value());
    let most_names = attack::most_names_facts();
    let most_infected = attack::most_names_infected_facts();
    let ok = |extra: Vec<(&'static str, Option<String>)>| {
        let mut v: Vec<(&str, Option<String>)> = POLICY_STAGES.iter().map(|s| (*s, None)).collect();
        v.extend(extra);
        v
    };
    let refused = || vec![("parse", None)];
    let f = |s: &String| Some(s.clone());
    let cases: Vec<Case> = vec![
        (
            "list-used-2000-times",
            attack::list_uses(),
            ok(vec![
                ("eval", None),
                // Infected: every rule's glob list is read (33 ms per
                // evaluation before the lists were read a word at a time).
                (
                    "eval",
                    f(&r#"{"scanner": "infected", "virus": ["W32/Fam1.A", "Worm.X"], "recipient": "u1@example.org", "size": 5000}"#.to_owned()),
                ),
                ("fmt", None),
            ]),
        ),
        (
            "100k-strings-40k-networks",
            attack::strings_and_networks(),
            ok(vec![("eval", None), ("fmt", None)]),
        ),
        (
            "20k-descending-prefixes",
            attack::descending_prefixes(),
            ok(vec![("eval", None)]),
        ),
        (
            "20k-rules-one-value-enums",
            attack::one_value_enums(),
            // With every enum at its value, all 20,000 rules may be tried:
            // 140,000 steps, past `max_eval_steps` (0.7 ms per evaluation).
            refused(),
        ),
        (
            "50k-errors-one-line",
            attack::errors_on_one_line(),
            refused(),
        ),
        (
            "2k-quoted-enum-values",
            attack::quoted_enum_values(),
            refused(),
        ),
        ("4k-big-regexes", attack::big_regexes(), refused()),
        (
            "32k-glob-60k-value",
            attack::long_glob(),
            ok(vec![("eval", f(&virus_a))]),
        ),
        (
            "1k-regex-rules-64k-value",
            attack::regex_rules(1_000),
            ok(vec![("eval", f(&sender_x)), ("explain", f(&sender_x))]),
        ),
        (
            "1k-glob-rules-64k-value",
            attack::glob_rules(1_000),
            ok(vec![("eval", f(&sender_x))]),
        ),
        (
            // Past `Limits::max_scan_passes` on `virus` (a set): refused.
            "1k-contains-globs-60k-value",
            attack::contains_glob_rules(1_000),
            refused(),
        ),
        (
            "200-multipart-globs-64k-value",
            attack::multipart_glob_rules(200),
            ok(vec![("eval", f(&sender_x))]),
        ),
        (
            "200-three-part-globs-64k-value",
            attack::three_part_glob_rules(200),
            ok(vec![("eval", f(&sender_parts))]),
        ),
        (
            "1k-three-part-globs-64k-value",
            attack::three_part_glob_rules(1_000),
            ok(vec![("eval", f(&sender_parts))]),
        ),
        (
            "50-unicode-boundary-regexes",
            attack::unicode_boundary_rules(50),
            refused(),
        ),
        (
            "200-wild-three-part-globs",
            attack::wild_three_part_glob_rules(200),
            refused(),
        ),
        (
            "40-facts-x-10-globs-past-groups",
            attack::globs_past_the_groups(40, 10),
            refused(),
        ),
        (
            // Past `Limits::max_scan_passes` on `virus` (a set): refused.
            "50-big-dfa-regexes-64k-value",
            attack::big_dfa_regex_rules(),
            refused(),
        ),
        (
            // At the scan budget: two DFA groups on a set fact (6 passes),
            // on one 64 KB string and on the most names 64 KiB holds.
            "256-dfa-regexes-on-a-set",
            attack::dfa_regex_rules(256, "virus"),
            ok(vec![("eval", f(&virus_x)), ("eval", f(&most_names))]),
        ),
        (
            // Tests that do not search, on a set (issue 11's last hole):
            // the literal group answers them, one walk per name.
            "1k-generated-virus-most-names",
            gen::virus_policy(1_000, 7),
            ok(vec![("eval", f(&most_infected))]),
        ),
        (
            "10k-generated-virus-most-names",
            gen::virus_policy(10_000, 7),
            ok(vec![("eval", f(&most_infected))]),
        ),
        (
            "1k-eq-tests-on-a-set",
            attack::set_test_rules("eq", 1_000),
            ok(vec![("eval", f(&most_names))]),
        ),
        (
            "1k-in-lists-on-a-set",
            attack::set_test_rules("in", 1_000),
            ok(vec![("eval", f(&most_names))]),
        ),
        (
            "1k-lit-boundary-regexes-on-a-set",
            attack::set_test_rules("word", 1_000),
            ok(vec![("eval", f(&most_names))]),
        ),
        (
            // At the budget: 24 quarter passes.
            "24-non-ascii-prefix-globs-on-a-set",
            attack::set_test_rules("ascii", 24),
            ok(vec![("eval", f(&most_names))]),
        ),
        (
            // Past the budget: the 25th, and the 2nd non-literal bounded
            // regex with a Unicode `\b`.
            "25-non-ascii-prefix-globs-on-a-set",
            attack::set_test_rules("ascii", 25),
            refused(),
        ),
        (
            "2-unicode-boundary-bounded-regexes-on-a-set",
            attack::set_test_rules("wordre", 2),
            refused(),
        ),
        (
            // The worst accepted case found (red team): 1,000 exact lists
            // (the literal group and the exact gate per name) plus two DFA
            // groups (6 passes) on the most names.
            "1k-in-lists-256-dfa-regexes-on-a-set",
            format!(
                "{}{}",
                attack::set_test_rules("in", 1_000),
                attack::dfa_regex_rules(256, "virus").replace("rule \"r", "rule \"d")
            ),
            ok(vec![("eval", f(&most_names))]),
        ),
        (
            "10k-rules-explain-64k-value",
            attack::sender_rules(10_000),
            ok(vec![("explain", f(&sender_a))]),
        ),
        (
            "10k-tests-x-10k-rules",
            attack::tests_times_rules(10_000),
            ok(vec![("test", None)]),
        ),
        (
            "78k-plain-rules-16mb",
            attack::plain_rules(78_000),
            ok(vec![
                ("eval", None),
                ("eval", f(&attack::last_families_facts(78_000, 1024))),
                ("fmt", None),
            ]),
        ),
        (
            "100k-virus-families",
            attack::virus_family_rules(100_000),
            ok(vec![
                ("eval", f(&attack::last_families_facts(100_000, 6))),
                ("eval", f(&attack::last_families_facts(100_000, 1024))),
                ("eval", f(&most_names)),
            ]),
        ),
        (
            "100k-size-rules",
            attack::size_rules(100_000),
            // Every evaluation may try every rule: 200,000 steps (1.7 ms),
            // refused by `max_eval_steps` at rule r16384.
            refused(),
        ),
        (
            // At `max_eval_steps` (32,768 steps): every evaluation tries
            // every rule.
            "16k-size-rules-at-the-step-limit",
            attack::size_rules(16_384),
            ok(vec![("eval", f(&"{\"size\": 1}".to_owned()))]),
        ),
        (
            // 5 set facts, each a gate, 1,024 names each finding its own
            // rule: 5,120 lookups and 5,120 rules tried (31,365 steps).
            "5-set-gates-1024-names",
            attack::set_gate_rules(5, 1024),
            ok(vec![("eval", f(&attack::set_gate_facts(5, 1024)))]),
        ),
        (
            // A 100,000-string list used by 6,000 rules on one string:
            // 1.3 ms per evaluation when each use was a binary search.
            "100k-list-used-6000-times-on-one-string",
            attack::list_on_one_string(100_000, 6_000),
            ok(vec![(
                "eval",
                f(&"{\"sender\": \"user000001@example.org\", \"size\": 1}".to_owned()),
            )]),
        ),
        (
            "90k-paren-operands-one-rule",
            attack::paren_or_chain(90_000),
            ok(vec![("fmt", None)]),
        ),
        (
            "1.3mb-paren-operands-one-rule",
            attack::paren_or_chain(150_000),
            ok(vec![("fmt", None)]),
        ),
        (
            "3000-rules-100-paren-operands",
            attack::paren_rules(3_000),
            ok(vec![("fmt", None)]),
        ),
        (
            "16mb-comment",
            attack::one_comment(16 * 1024 * 1024 - 1),
            ok(vec![("fmt", None)]),
        ),
    ];
    let mut n = 0;
    let mut save = |text: &str, ext: &str| -> std::io::Result<String> {
        n += 1;
        let path = dir.join(format!("{n:03}.{ext}"));
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    for (case, policy, stages) in &cases {
        let pfile = save(policy, "policy")?;
        for (stage, facts) in stages {
            let ffile = match facts {
                Some(f) => save(f, "json")?,
                None => "-".into(),
            };
            println!("{case} {stage} {pfile} {ffile}");
        }
    }
    let pfile = save(&attack::regex_rules(10), "policy")?;
    for (case, bytes) in [
        ("40mb-facts", 40_000_000),
        ("4mb-facts-set", 4 * 1024 * 1024 - 64),
    ] {
        let ffile = save(&attack::big_set_facts(bytes), "json")?;
        println!("{case} facts {pfile} {ffile}");
    }
    Ok(())
}

/// This thread's CPU time so far, in seconds.
fn cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// A `kB` line of `/proc/self/status`.
fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn run(stage: &str, policy: &str, facts: &str) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let src = read(policy)?;
    let json = if facts == "-" {
        String::from("{}")
    } else {
        read(facts)?
    };
    // `COST_INPUTS_MAX_EVAL_STEPS=N`: parse with that `max_eval_steps`, to
    // measure what the default refuses.
    let limits = Limits {
        max_eval_steps: std::env::var("COST_INPUTS_MAX_EVAL_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Limits::default().max_eval_steps),
        ..Limits::default()
    };
    let parsed = if stage == "parse" || stage == "fmt" {
        None
    } else {
        Some(Policy::parse_with_limits(&src, &limits).map_err(|e| format!("{policy}: {e}"))?)
    };
    let one = |p: &Policy| -> Result<Facts, String> {
        match p.facts_from_json(&json).map_err(|e| e.to_string())? {
            FactsInput::One(f) => Ok(f),
            FactsInput::PerRecipient(mut all) => Ok(all.swap_remove(0)),
        }
    };
    let need = || parsed.as_ref().ok_or_else(|| "no policy".to_string());
    let f = match (&parsed, stage) {
        (Some(p), "eval" | "explain") => Some(one(p)?),
        _ => None,
    };
    // The stage starts here.
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("clear_refs: {e}"))?;
    let rss0 = status_kb("VmRSS:");
    let t0 = cpu();
    let mut repeats = 1u32;
    let outcome = match stage {
        "parse" => match Policy::parse_with_limits(&src, &limits) {
            Ok(p) => format!("ok:{}-rules", p.rule_names().count()),
            Err(e) => format!(
                "error:{}-diagnostics:first={}",
                e.diagnostics().len(),
                e.diagnostics().first().map_or("none", |d| d.code.as_str())
            ),
        },
        "fmt" => match mailpolicy::format(&src) {
            Ok(s) => format!("ok:{}-bytes", s.len()),
            Err(e) => format!("error:{}-diagnostics", e.diagnostics().len()),
        },
        "compile" => {
            // (`recompile`'s byte count counts a shared list once per use.)
            std::hint::black_box(need()?.recompile());
            "ok".into()
        }
        "lint" => format!("ok:{}-diagnostics", need()?.check().len()),
        // The steps the worst evaluation may take, and all rules' steps.
        "steps" => {
            let (worst, all) = need()?.eval_steps();
            format!("ok:{worst}-worst:{all}-all")
        }
        "test" => {
            let r = need()?.run_tests();
            format!("ok:{}-passed:{}-failed", r.passed(), r.failed())
        }
        "facts" => match need()?.facts_from_json(&json) {
            Ok(_) => "ok".into(),
            Err(e) => format!("error:{}", e.to_string().replace(' ', "_")),
        },
        "eval" | "explain" => {
            let (p, f) = (need()?, f.as_ref().ok_or("no facts")?);
            let mut out;
            loop {
                out = if stage == "eval" {
                    format!("ok:{:?}", p.evaluate(f).rule())
                } else {
                    let ex = p.explain(f);
                    let text = serde_json::to_string(&ex.trace).map_err(|e| e.to_string())?;
                    format!("ok:{}-trace-bytes", text.len())
                };
                if cpu() - t0 >= 0.2 || repeats >= 100_000 {
                    break;
                }
                repeats += 1;
            }
            out.replace(' ', "")
        }
        other => return Err(format!("unknown stage {other}")),
    };
    let secs = (cpu() - t0) / f64::from(repeats);
    let peak = status_kb("VmHWM:").saturating_sub(rss0);
    println!("{secs:.6} {peak} {repeats} {outcome}");
    Ok(())
}
