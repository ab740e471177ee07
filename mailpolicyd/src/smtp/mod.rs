//! The after-queue front end (`[smtp]`): an SMTP content filter in
//! amavisd-new's 10024 → 10025 layout. Postfix hands every message to
//! `listen` (`content_filter = smtp:[127.0.0.1]:10024`, with
//! `smtp_send_xforward_command = yes` so the filter learns the original
//! client); the filter decides with the same core as the milter and
//! re-injects the passing copy to `next_hop`, an smtpd that does not filter
//! again, passing XFORWARD on.
//!
//! - [`session`]: the server side (one session per connection);
//! - [`relay`]: the re-injection client;
//! - [`xforward`]: Postfix's XFORWARD attributes.
//!
//! Only clients in `[smtp] clients` (default: loopback) may connect; others
//! get `554` and are disconnected. With `authenticated_listen`, a second
//! port takes the submission service's mail, which counts as
//! `authenticated` (amavisd-new's `ORIGINATING` policy bank on 10026):
//! Postfix does not forward the SASL login through XFORWARD.

pub mod relay;
pub mod session;
pub mod xforward;

use crate::config::SocketAddress;
use crate::filter::Filter;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves SMTP on `[smtp] listen` until `shutdown` is cancelled; sessions
/// are spawned on `tasks` so the caller can wait for them to finish (an idle
/// session closes with `421` at shutdown; one in the middle of a message
/// finishes it). Errors are startup failures (the port cannot be bound).
pub async fn serve(
    filter: Arc<Filter>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(smtp) = filter.config().smtp.clone() else {
        return Ok(());
    };
    // Bind both now, so that a busy port is a startup error.
    let main = bind(&smtp.listen).await?;
    let authenticated = match &smtp.authenticated_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let first = serve_listener(
        main,
        Arc::clone(&filter),
        tasks.clone(),
        shutdown.clone(),
        false,
    );
    match authenticated {
        Some(l) => {
            let second = serve_listener(l, filter, tasks, shutdown, true);
            tokio::try_join!(first, second).map(|_| ())
        }
        None => first.await,
    }
}

async fn bind(address: &SocketAddress) -> std::io::Result<tokio::net::TcpListener> {
    let SocketAddress::Inet { host, port } = address else {
        return Err(std::io::Error::other(
            "the smtp front end listens on HOST:PORT",
        ));
    };
    tokio::net::TcpListener::bind((host.as_str(), *port)).await
}

/// [`serve`] on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    filter: Arc<Filter>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_listener(listener, filter, tasks, shutdown, false).await
}

/// Serves one bound listener; `authenticated`: its mail counts as
/// `authenticated` (the `authenticated_listen` port).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    filter: Arc<Filter>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    authenticated: bool,
) -> std::io::Result<()> {
    let Some(smtp) = filter.config().smtp.clone() else {
        return Ok(());
    };
    tracing::info!(
        "smtp content filter listening on {}{}, re-injecting to {}",
        listener
            .local_addr()
            .map_or_else(|_| smtp.listen.to_string(), |a| a.to_string()),
        if authenticated {
            " (its mail counts as authenticated)"
        } else {
            ""
        },
        smtp.next_hop
    );
    let ctx = session::Context {
        next_hop: relay::NextHop {
            address: smtp.next_hop.clone(),
            helo: filter.config().notify.hostname.clone(),
            pool: Arc::new(relay::Pool::default()),
        },
        hostname: filter.config().notify.hostname.clone(),
        filter,
        shutdown: shutdown.clone(),
        authenticated,
    };
    loop {
        let (mut socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("smtp accept failed: {e}");
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ip = crate::config::canonical_ip(peer.ip());
        if !smtp.clients.iter().any(|net| net.contains(&ip)) {
            tracing::warn!("smtp: refused a connection from {peer}: not in [smtp] clients");
            tasks.spawn(async move {
                let _ = socket
                    .write_all(b"554 5.7.1 Error: not authorized to use this content filter\r\n")
                    .await;
                let _ = socket.shutdown().await;
            });
            continue;
        }
        let _ = socket.set_nodelay(true);
        let ctx = ctx.clone();
        tasks.spawn(async move {
            session::Session::new(socket, peer.to_string(), ctx)
                .run()
                .await;
        });
    }
}
