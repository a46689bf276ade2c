//! The accept loop. It serves HTTP/1.1 with hyper directly (rather than
//! `axum::serve`) to bound what a connection may cost before it is a
//! WebSocket: request headers must arrive within a deadline (slow-header
//! attacks), their size is capped, and so is the number of open HTTP
//! connections. Upgraded WebSockets leave this loop; the gateway's own
//! slots bound them.

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_layer::Layer;
use tracing::{debug, warn};

/// Largest request head (request line and headers), bytes; more gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bounds of the accept loop.
pub(crate) struct AcceptLimits {
    /// Open HTTP connections (not counting upgraded WebSockets).
    pub max_open: usize,
    /// Deadline for a request's headers.
    pub header_timeout: Duration,
}

/// Accepts until `stop`; each connection runs on `tracker` and finishes its
/// request in flight when stopping.
pub(crate) async fn accept(
    listener: TcpListener,
    app: Router,
    limits: AcceptLimits,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let open = Arc::new(Semaphore::new(limits.max_open));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep going.
                warn!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            debug!("too many open HTTP connections; dropping one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // The peer address travels with each request as `ConnectInfo`
        // (the upgrade counts connections per address).
        let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(app.clone()));
        let stop = stop.clone();
        let header_timeout = limits.header_timeout;
        tracker.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
}
