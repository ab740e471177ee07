//! Command-line parsing and the four subcommands.
//!
//! Exit codes: 0 success; 1 policy/facts errors (or warnings with
//! `--deny-warnings`, failed tests, unformatted files with `fmt --check`);
//! 2 usage or I/O problems.

mod diff;
mod render;
mod replay;
mod sarif;

use clap::{Parser, Subcommand, ValueEnum};
use mailpolicy::{Facts, FactsInput, Limits, MessageVerdict, Policy, Severity};
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Writes to standard output, ignoring a closed pipe (`policy check | head`
/// must not panic).
#[allow(unused_macros)]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like [`outln`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes `v` to standard output as pretty JSON and a newline, serialized
/// as it is written (a 60 MB report is not built as a string first),
/// ignoring a closed pipe.
fn print_json(v: &impl serde::Serialize) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
    let _ = out.flush();
}

/// `policy check --format json`: every diagnostic of every file, each made
/// into JSON as it is written.
struct JsonDiagnostics<'a>(&'a [(PathBuf, Vec<mailpolicy::Diagnostic>)]);

impl serde::Serialize for JsonDiagnostics<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let n = self.0.iter().map(|(_, d)| d.len()).sum();
        let mut seq = s.serialize_seq(Some(n))?;
        for (path, diags) in self.0 {
            let file = path.display().to_string();
            for d in diags {
                let mut v = json!({
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                    "file": file,
                    "line": d.line,
                    "column": d.column,
                });
                if let Some(obj) = v.as_object_mut() {
                    if let Some(h) = &d.help {
                        obj.insert("help".into(), json!(h));
                    }
                    if let Some(r) = &d.rule {
                        obj.insert("rule".into(), json!(r));
                    }
                    if let Some(e) = &d.example {
                        obj.insert("example".into(), json!(e));
                    }
                }
                seq.serialize_element(&v)?;
            }
        }
        seq.end()
    }
}

/// Writes to standard error, ignoring a closed pipe.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub(crate) use {errln, out, outln};

/// Exit code for policy or facts errors.
const EXIT_ERRORS: i32 = 1;
/// Exit code for usage and I/O problems.
const EXIT_USAGE: i32 = 2;

#[derive(Parser)]
#[command(
    name = "policy",
    version,
    about = "Check, evaluate, test and format mail virus-handling policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Most steps one evaluation of the policy may take (rules tried plus the tests in their
    /// conditions, counted for the worst facts); a policy past it is refused with a `limit`
    /// error. Default 32768. Raise it for a large policy you trust, never for policies
    /// written by strangers; `fmt` does not compile policies and ignores it.
    #[arg(long, global = true, value_name = "N", value_parser = eval_steps)]
    max_eval_steps: Option<u64>,
}

/// Reads `--max-eval-steps`: a whole number of steps, at least 1 (a
/// bad value is a usage error, exit 2).
fn eval_steps(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("the limit must be at least 1 step".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{text}` is not a whole number of steps (e.g. 100000)"
        )),
    }
}

/// `policy check`'s output formats.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// rustc-style text.
    Human,
    /// A JSON array of diagnostics.
    Json,
    /// SARIF 2.1.0, for code scanning in CI.
    Sarif,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and lint policies: errors, and warnings where a policy breaks the experts' advice.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// Exit 1 when there are warnings.
        #[arg(long)]
        deny_warnings: bool,
        /// Also warn about rules that no `test` block reaches (`untested-rule`).
        #[arg(long)]
        coverage: bool,
    },
    /// Evaluate a policy over facts and print the decision as JSON.
    Eval {
        /// Policy file.
        file: PathBuf,
        /// Facts JSON file (`-` for standard input): an object, or an array of objects (one per recipient).
        /// Without --facts and --fact, facts piped or redirected to standard input are read.
        #[arg(long, value_name = "FACTS.json")]
        facts: Option<String>,
        /// A fact as NAME=VALUE (repeatable; applied after --facts).
        #[arg(long = "fact", value_name = "NAME=VALUE")]
        fact: Vec<String>,
        /// Add a "trace" of the rules tried and why each did (not) apply.
        #[arg(long)]
        explain: bool,
    },
    /// Run the `test` blocks of policies.
    Test {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Where two policies decide differently: every region of facts, with an example and
    /// both decisions. Exit 0: the same everywhere; 1: different; 2: usage, I/O, a policy
    /// with errors, or an analysis that could not finish.
    Diff {
        /// The policy in force.
        old: PathBuf,
        /// The policy to compare it with.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Replay mail logs (amavisd-new's main log, mailpolicyd's decision log) through a policy:
    /// what would it have done differently?
    Replay {
        /// The policy to try.
        policy: PathBuf,
        /// Log files (`.gz` read transparently; `-` for standard input).
        #[arg(required = true, value_name = "LOG")]
        logs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Show up to N example log lines for each change.
        #[arg(long, value_name = "N", default_value_t = 0)]
        show: usize,
        /// A regex of virus names that forge their senders (repeatable); without it
        /// `forges_sender` is unknown, as amavisd-new treats every virus as forging.
        #[arg(long, value_name = "REGEX")]
        forging: Vec<String>,
    },
    /// Print a policy in canonical form.
    Fmt {
        /// Policy file.
        file: PathBuf,
        /// Print nothing; exit 1 if the file is not in canonical form.
        #[arg(long)]
        check: bool,
        /// Rewrite the file in place.
        #[arg(long, short, conflicts_with = "check")]
        write: bool,
    },
}

/// Runs the tool; returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let mut limits = Limits::default();
    if let Some(steps) = cli.max_eval_steps {
        limits.max_eval_steps = steps;
    }
    let limits = &limits;
    let result = match cli.command {
        Command::Check {
            files,
            format,
            deny_warnings,
            coverage,
        } => check(&files, limits, format, deny_warnings, coverage),
        Command::Eval {
            file,
            facts,
            fact,
            explain,
        } => eval(&file, limits, facts.as_deref(), &fact, explain),
        Command::Test { files } => test(&files, limits),
        Command::Fmt { file, check, write } => fmt(&file, check, write),
        Command::Diff { old, new, format } => diff::run(&old, &new, limits, format == Format::Json),
        Command::Replay {
            policy,
            logs,
            format,
            show,
            forging,
        } => replay_command(&policy, &logs, limits, format, show, &forging),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            errln!("error: {message}");
            EXIT_USAGE
        }
    }
}

/// Reads a file as bytes; I/O problems are usage errors (exit 2).
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Parses a policy with `limits` (the defaults, or `--max-eval-steps`).
fn parse(bytes: &[u8], limits: &Limits) -> Result<Policy, Vec<mailpolicy::Diagnostic>> {
    Policy::parse_bytes_with_limits(bytes, limits).map_err(|e| e.diagnostics().to_vec())
}

fn check(
    files: &[PathBuf],
    limits: &Limits,
    format: CheckFormat,
    deny_warnings: bool,
    coverage: bool,
) -> Result<i32, String> {
    let mut all = Vec::new();
    for path in files {
        let bytes = read(path)?;
        let diags = match parse(&bytes, limits) {
            Ok(policy) => {
                if coverage {
                    policy.check_with_coverage()
                } else {
                    policy.check()
                }
            }
            Err(d) => d,
        };
        all.push((path.clone(), diags));
    }
    let errors = all
        .iter()
        .flat_map(|(_, d)| d)
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = all
        .iter()
        .flat_map(|(_, d)| d)
        .filter(|d| d.severity == Severity::Warning)
        .count();
    match format {
        CheckFormat::Sarif => print_json(&sarif::Log(&all)),
        CheckFormat::Json => print_json(&JsonDiagnostics(&all)),
        CheckFormat::Human => {
            let mut out = std::io::stdout().lock();
            for (path, diags) in &all {
                for d in diags {
                    let _ = writeln!(
                        out,
                        "{}\n",
                        render::diagnostic(&path.display().to_string(), d)
                    );
                }
            }
            let summary = match (errors, warnings) {
                (0, 0) => format!("{} file(s) checked: no problems", files.len()),
                (e, w) => format!(
                    "{} file(s) checked: {e} error(s), {w} warning(s)",
                    files.len()
                ),
            };
            let _ = writeln!(out, "{summary}");
        }
    }
    Ok(if errors > 0 || (deny_warnings && warnings > 0) {
        EXIT_ERRORS
    } else {
        0
    })
}

fn print_errors(path: &Path, diags: &[mailpolicy::Diagnostic]) {
    for d in diags.iter().filter(|d| d.severity == Severity::Error) {
        errln!("{}\n", render::diagnostic(&path.display().to_string(), d));
    }
}

/// Whether standard input is a pipe or a file (facts may be coming in),
/// not a terminal, `/dev/null` or a socket.
#[cfg(unix)]
fn stdin_is_piped() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata("/dev/stdin").is_ok_and(|m| {
        let t = m.file_type();
        t.is_fifo() || t.is_file()
    })
}

#[cfg(not(unix))]
fn stdin_is_piped() -> bool {
    use std::io::IsTerminal;
    !std::io::stdin().is_terminal()
}

fn eval(
    path: &Path,
    limits: &Limits,
    facts_arg: Option<&str>,
    fact_args: &[String],
    explain: bool,
) -> Result<i32, String> {
    let bytes = read(path)?;
    let policy = match parse(&bytes, limits) {
        Ok(p) => p,
        Err(d) => {
            print_errors(path, &d);
            return Ok(EXIT_ERRORS);
        }
    };
    // No facts given while facts are piped or redirected in: read them
    // (`policy eval p.policy < facts.json`), rather than silently deciding
    // on nothing. An empty input is no facts.
    let implicit = facts_arg.is_none() && fact_args.is_empty() && stdin_is_piped();
    let facts_arg = if implicit { Some("-") } else { facts_arg };
    let input = match facts_arg {
        None => FactsInput::One(Facts::new()),
        Some(source) => {
            let text = if source == "-" {
                let mut s = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut s)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                s
            } else {
                read(Path::new(source))?
            };
            let name = if source == "-" { "<stdin>" } else { source };
            let Ok(text) = String::from_utf8(text) else {
                errln!("error: {name}: facts are not valid UTF-8");
                return Ok(EXIT_ERRORS);
            };
            match policy.facts_from_json(&text) {
                _ if implicit && text.trim().is_empty() => FactsInput::One(Facts::new()),
                Ok(input) => input,
                Err(e) => {
                    errln!("error: {name}:{e}");
                    return Ok(EXIT_ERRORS);
                }
            }
        }
    };
    let apply = |facts: &mut Facts| -> Result<(), String> {
        for arg in fact_args {
            policy
                .set_fact_from_str(facts, arg)
                .map_err(|e| format!("--fact {arg}: {}", strip_position(&e.to_string())))?;
        }
        Ok(())
    };
    // One decision's JSON (with its trace under --explain), built through
    // the Serialize impls so that keys keep the documented order:
    // disposition, reply, quarantine, alerts, tags, rule.
    let write_decision = |out: &mut dyn Write, facts: &Facts| {
        let _ = if explain {
            let ex = policy.explain(facts);
            serde_json::to_writer(
                out,
                &WithTrace {
                    decision: ex.decision,
                    trace: &ex.trace,
                },
            )
        } else {
            serde_json::to_writer(out, &policy.evaluate(facts))
        };
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match input {
        FactsInput::One(mut facts) => {
            if let Err(e) = apply(&mut facts) {
                errln!("error: {e}");
                return Ok(EXIT_ERRORS);
            }
            write_decision(&mut out, &facts);
        }
        FactsInput::PerRecipient(mut all) => {
            for facts in &mut all {
                if let Err(e) = apply(facts) {
                    errln!("error: {e}");
                    return Ok(EXIT_ERRORS);
                }
            }
            let decisions: Vec<_> = all.iter().map(|f| policy.evaluate(f)).collect();
            let Some(verdict) = MessageVerdict::combine(&decisions) else {
                errln!("error: a facts array needs at least one object");
                return Ok(EXIT_ERRORS);
            };
            if explain {
                if let Some(at) = past_explain_budget(&policy, &all) {
                    errln!(
                        "error: {}: limit: --explain on the first {} of {} recipients traces more than {} rules and checks; explain fewer recipients at once",
                        facts_arg.unwrap_or("-"),
                        at + 1,
                        all.len(),
                        EXPLAIN_TRACE_BUDGET
                    );
                    return Ok(EXIT_ERRORS);
                }
            }
            // Written as each recipient is decided: nothing is held but the
            // decisions (the traces of 10,000 recipients of a 10,000-rule
            // policy were 24 GB as one JSON tree).
            let _ = write!(
                out,
                "{{\"verdict\":{},\"recipients\":[",
                json!(verdict.verdict)
            );
            for (i, facts) in all.iter().enumerate() {
                if i > 0 {
                    let _ = write!(out, ",");
                }
                write_decision(&mut out, facts);
            }
            let _ = write!(out, "]}}");
        }
    }
    let _ = writeln!(out);
    let _ = out.flush();
    Ok(0)
}

/// Rules and checks the explain traces of one `policy eval --explain` run
/// may hold together, over the recipients of a facts array (one
/// explanation is bounded by the policy; this bounds their number): about
/// half a second of tracing and JSON.
const EXPLAIN_TRACE_BUDGET: usize = 1_000_000;

/// The first recipient whose trace takes the traces of those before it
/// past [`EXPLAIN_TRACE_BUDGET`], counted one explanation at a time (none
/// is kept) before anything is written.
fn past_explain_budget(policy: &Policy, all: &[Facts]) -> Option<usize> {
    let mut total = 0usize;
    for (i, facts) in all.iter().enumerate() {
        let ex = policy.explain(facts);
        total += ex.trace.iter().map(|r| 1 + r.checks.len()).sum::<usize>();
        if total > EXPLAIN_TRACE_BUDGET {
            return Some(i);
        }
    }
    None
}

#[derive(serde::Serialize)]
struct WithTrace<'a> {
    #[serde(flatten)]
    decision: mailpolicy::Decision<'a>,
    trace: &'a [mailpolicy::RuleTrace],
}

fn strip_position(s: &str) -> &str {
    // "1:1: message" → "message"
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(rest))
            if a.parse::<usize>().is_ok() && b.parse::<usize>().is_ok() =>
        {
            rest.trim_start()
        }
        _ => s,
    }
}

fn test(files: &[PathBuf], limits: &Limits) -> Result<i32, String> {
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut out = std::io::stdout().lock();
    for path in files {
        let bytes = read(path)?;
        let policy = match parse(&bytes, limits) {
            Ok(p) => p,
            Err(d) => {
                print_errors(path, &d);
                let _ = writeln!(
                    out,
                    "{}: the policy has errors; its tests did not run",
                    path.display()
                );
                failed += 1;
                continue;
            }
        };
        let report = policy.run_tests();
        for r in &report.results {
            if r.passed() {
                let _ = writeln!(
                    out,
                    "test {}:{} {:?} ... ok",
                    path.display(),
                    r.line,
                    r.name
                );
            } else {
                let _ = writeln!(
                    out,
                    "test {}:{} {:?} ... FAILED",
                    path.display(),
                    r.line,
                    r.name
                );
                for f in &r.failures {
                    let _ = writeln!(out, "    {f}");
                }
            }
        }
        passed += report.passed();
        failed += report.failed();
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    Ok(if failed > 0 { EXIT_ERRORS } else { 0 })
}

fn replay_command(
    policy: &Path,
    logs: &[PathBuf],
    limits: &Limits,
    format: Format,
    show: usize,
    forging: &[String],
) -> Result<i32, String> {
    let forging = if forging.is_empty() {
        None
    } else {
        Some(
            regex::RegexSet::new(forging)
                .map_err(|e| format!("--forging: not a regular expression: {e}"))?,
        )
    };
    replay::run(
        policy,
        logs,
        format == Format::Json,
        replay::Options {
            show,
            forging,
            limits: limits.clone(),
        },
    )
}

fn fmt(path: &Path, check: bool, write: bool) -> Result<i32, String> {
    let bytes = read(path)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        let diags = match Policy::parse_bytes(&bytes) {
            Err(e) => e.diagnostics().to_vec(),
            Ok(_) => Vec::new(),
        };
        print_errors(path, &diags);
        return Ok(EXIT_ERRORS);
    };
    let formatted = match mailpolicy::format(text) {
        Ok(f) => f,
        Err(e) => {
            print_errors(path, e.diagnostics());
            return Ok(EXIT_ERRORS);
        }
    };
    if check {
        if formatted != text {
            errln!(
                "{} is not in canonical form (run `policy fmt --write {}`)",
                path.display(),
                path.display()
            );
            return Ok(EXIT_ERRORS);
        }
        return Ok(0);
    }
    if write {
        if formatted != text {
            std::fs::write(path, &formatted)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        return Ok(0);
    }
    out!("{formatted}");
    Ok(0)
}
