//! `mailpolicyd run`: start the configured front ends, reload on SIGHUP,
//! stop on SIGTERM/SIGINT after open sessions finish (at most
//! [`SHUTDOWN_GRACE`]).

use crate::config::Config;
use crate::filter::Filter;
use crate::logfile::LogFile;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long open sessions may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// SIGHUP: reopen the logs, re-read the policy (a bad one is refused and
/// logged; the old one stays).
fn reload(filter: &Filter, log_file: Option<&LogFile>) {
    if let Some(f) = log_file {
        if let Err(e) = f.reopen() {
            tracing::warn!("SIGHUP: cannot reopen the log file: {e}");
        }
    }
    match filter.reload() {
        Ok(p) => tracing::info!("SIGHUP: policy reloaded ({} warnings)", p.warnings),
        Err(e) => {
            tracing::error!("SIGHUP: the new policy is refused, the old one stays in force:\n{e}")
        }
    }
}

/// Runs the filter until SIGTERM/SIGINT; `log_file`, the main log when it
/// is a file, is reopened on SIGHUP. Errors are startup failures.
pub async fn run(config: Config, log_file: Option<LogFile>) -> Result<(), String> {
    let filter = Arc::new(Filter::new(config)?);
    let loaded = filter.policy();
    tracing::info!(
        "policy {} loaded ({} warnings; scanner {})",
        filter.config().policy.display(),
        loaded.warnings,
        if loaded.needs_scan {
            "needed"
        } else {
            "never read: no clamd round trips"
        }
    );
    let tasks = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let mut listeners = tokio::task::JoinSet::new();
    if let Some(m) = &filter.config().milter {
        let listen = m.listen.clone();
        // Bind now so that a busy port is a startup error, not a log line.
        let f = Arc::clone(&filter);
        let (t, s) = (tasks.clone(), shutdown.clone());
        listeners.spawn(async move {
            crate::milter::serve(f, &listen, t, s)
                .await
                .map_err(|e| format!("milter {listen}: {e}"))
        });
    }
    if filter.config().smtp.is_some() {
        let f = Arc::clone(&filter);
        let (t, s) = (tasks.clone(), shutdown.clone());
        listeners.spawn(async move {
            let listen = f
                .config()
                .smtp
                .as_ref()
                .map_or_else(String::new, |c| c.listen.to_string());
            crate::smtp::serve(f, t, s)
                .await
                .map_err(|e| format!("smtp {listen}: {e}"))
        });
    }
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&filter, log_file.as_ref()),
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(done) = listeners.join_next() => {
                match done {
                    Ok(Err(e)) => { shutdown.cancel(); return Err(e); }
                    Ok(Ok(())) => {}
                    Err(e) => { shutdown.cancel(); return Err(format!("listener failed: {e}")); }
                }
            }
        }
    }
    tracing::info!(
        "stopping: no new connections; waiting for {} open sessions",
        tasks.len()
    );
    shutdown.cancel();
    while listeners.join_next().await.is_some() {}
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} sessions still open after {:?}; exiting",
            tasks.len(),
            SHUTDOWN_GRACE
        );
    }
    tracing::info!("stopped");
    Ok(())
}
