//! `mailpolicyd`: run the filter, check its config, operate the quarantine.

use clap::{Parser, Subcommand, ValueEnum};
use mailpolicyd::config::Config;
use mailpolicyd::filter::LoadedPolicy;
use mailpolicyd::logfile::LogFile;
use mailpolicyd::notify::Submitter;
use mailpolicyd::quarantine::{Record, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mailpolicyd",
    version,
    about = "A milter and after-queue content filter that scans with clamd and carries out a mailpolicy policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the filter in the foreground (SIGHUP reloads the policy; SIGTERM stops).
    Run {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Check the config and the policy (its warnings shown); exit 0 or 1.
    Check {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// List, show and release quarantined messages.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Every quarantined copy.
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// One message's metadata and original headers.
    Show {
        id: String,
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Deliver the original to its recipients (or --to) through [notify] submit.
    Release {
        id: String,
        /// Deliver to this address instead (repeatable).
        #[arg(long)]
        to: Vec<String>,
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Quarantine { action } => quarantine(action),
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })
}

fn init_logging(config: &Config) -> Result<Option<LogFile>, String> {
    use mailpolicyd::config::LogLevel;
    let level = match config.log.level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .with_max_level(level);
    match &config.log.file {
        Some(path) => {
            let file = LogFile::open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            builder.with_writer(file.clone()).init();
            Ok(Some(file))
        }
        None => {
            builder.with_writer(std::io::stderr).init();
            Ok(None)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let log_file = match init_logging(&config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime().block_on(mailpolicyd::run::run(config, log_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let loaded = match LoadedPolicy::load(&config.policy, &config.limits) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut problems = 0;
    for d in loaded.policy.check() {
        eprintln!(
            "{}",
            mailpolicyd::filter::render_diagnostic(&config.policy, &d)
        );
    }
    if config.milter.is_some()
        && config.smtp.is_none()
        && loaded.policy.mode() == mailpolicy::Mode::AfterQueue
    {
        eprintln!("warning: the policy says `mode after_queue` but only the milter (before the queue) is configured");
    }
    if config.smtp.is_some()
        && config.milter.is_none()
        && loaded.policy.mode() == mailpolicy::Mode::BeforeQueue
    {
        eprintln!("warning: the policy is `mode before_queue` (the default) but only the after-queue [smtp] front end is configured");
    }
    if loaded.needs_scan {
        let clamd = mailpolicyd::clamd::Clamd::new(config.clamd.clone());
        if let Err(e) = runtime().block_on(clamd.ping()) {
            eprintln!(
                "warning: clamd at {} does not answer PING: {e}",
                config.clamd.address
            );
        }
        if let Some(dir) = &config.clamd.spool_dir {
            if !dir.is_dir() {
                eprintln!(
                    "error: [clamd] spool_dir {} is not a directory",
                    dir.display()
                );
                problems += 1;
            }
        }
    }
    if problems > 0 {
        return ExitCode::from(1);
    }
    println!(
        "{}: ok ({} warnings; {})",
        path.display(),
        loaded.warnings,
        if loaded.needs_scan {
            "scans with clamd"
        } else {
            "never needs clamd"
        }
    );
    ExitCode::SUCCESS
}

fn quarantine(action: QuarantineAction) -> ExitCode {
    match action {
        QuarantineAction::List { config, format } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let records = match Store::new(&config.quarantine_dir).list() {
                Ok(r) => r,
                Err(e) => return io_error(e),
            };
            if format == Format::Json {
                let list: Vec<_> = records.iter().map(Record::summary).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                for r in &records {
                    println!(
                        "{}  {:<10} {}  <{}> -> {}  {}  {}{}",
                        r.id,
                        r.bucket,
                        r.time,
                        r.sender,
                        r.recipients.join(","),
                        if r.virus.is_empty() {
                            "-".to_owned()
                        } else {
                            r.virus.join(",")
                        },
                        r.rule
                            .as_deref()
                            .map_or("(default)".to_owned(), |n| format!("rule \"{n}\"")),
                        if r.released { "  [released]" } else { "" }
                    );
                }
            }
            ExitCode::SUCCESS
        }
        QuarantineAction::Show { id, config, format } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let copies = match Store::new(&config.quarantine_dir).find(&id) {
                Ok(c) if c.is_empty() => {
                    eprintln!("error: no quarantined message with ID {id}");
                    return ExitCode::from(1);
                }
                Ok(c) => c,
                Err(e) => return io_error(e),
            };
            for (record, eml) in &copies {
                let headers = match std::fs::read(eml) {
                    Ok(b) => b[..mailpolicyd::message::header_end(&b)].to_vec(),
                    Err(e) => return io_error(e),
                };
                if format == Format::Json {
                    let mut v = serde_json::to_value(record).unwrap_or_default();
                    v["headers"] = String::from_utf8_lossy(&headers).into_owned().into();
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(record).unwrap_or_default()
                    );
                    println!();
                    print!("{}", String::from_utf8_lossy(&headers));
                }
            }
            ExitCode::SUCCESS
        }
        QuarantineAction::Release {
            id,
            to,
            config,
            format,
        } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            release(&config, &id, to, format)
        }
    }
}

fn release(config: &Config, id: &str, to: Vec<String>, format: Format) -> ExitCode {
    let store = Store::new(&config.quarantine_dir);
    let copies = match store.find(id) {
        Ok(c) if c.is_empty() => {
            eprintln!("error: no quarantined message with ID {id}");
            return ExitCode::from(1);
        }
        Ok(c) => c,
        Err(e) => return io_error(e),
    };
    let recipients: Vec<String> = if to.is_empty() {
        let mut all: Vec<String> = Vec::new();
        for (r, _) in &copies {
            for rcpt in &r.recipients {
                if !all.contains(rcpt) {
                    all.push(rcpt.clone());
                }
            }
        }
        all
    } else {
        to
    };
    if let Some(bad) = recipients
        .iter()
        .find(|r| !mailpolicyd::sanitize::is_plain_address(r) || r.is_empty())
    {
        eprintln!(
            "error: `{}` is not a plain mail address",
            mailpolicyd::sanitize::log_text(bad)
        );
        return ExitCode::from(2);
    }
    let (record, eml) = &copies[0];
    let original = match std::fs::read(eml) {
        Ok(b) => b,
        Err(e) => return io_error(e),
    };
    let mut message = format!("X-Mailpolicy-Released: {id}\r\n").into_bytes();
    message.extend_from_slice(&original);
    let submitter = Submitter::new(&config.notify);
    if let Err(e) = runtime().block_on(submitter.send(&record.sender, &recipients, &message)) {
        eprintln!("error: release failed: {e}");
        return ExitCode::from(1);
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    if let Err(e) = store.mark_released(id, &recipients, &now) {
        eprintln!("error: released, but could not record it: {e}");
        return ExitCode::from(1);
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({"id": id, "released": true, "to": recipients, "time": now})
        );
    } else {
        println!("{id}: released to {}", recipients.join(", "));
    }
    ExitCode::SUCCESS
}

fn io_error(e: std::io::Error) -> ExitCode {
    eprintln!("error: {e}");
    if e.kind() == std::io::ErrorKind::InvalidInput {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
