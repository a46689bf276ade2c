//! Starting and stopping the gateway: the router, the background tasks
//! (publisher, receipt and priority consumers, presence and follow
//! heartbeat) and the drain.

use crate::config::GatewayConfig;
use crate::edge::listener::{accept, AcceptLimits};
use crate::error::Error;
use crate::http::{self, conversations, upgrade};
use crate::state::{Ports, Shared};
use crate::{publisher, pushes};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

/// How long shutdown waits for connections to close before giving up on them.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Binds `config.listen` and serves until `shutdown` is cancelled.
pub async fn run(config: GatewayConfig, ports: Ports, shutdown: CancellationToken) -> Result<(), Error> {
    config.validate().map_err(Error::Config)?;
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    info!(addr = %listener.local_addr().unwrap_or(addr), gateway = %config.id, "gateway listening");
    serve(config, ports, listener, shutdown).await
}

/// Serves WebSocket and HTTP on `listener` until `shutdown` is cancelled or a
/// background task fails. On the way out it stops accepting, closes every
/// socket with 1001, unregisters presence and appends the commands it had
/// already accepted.
pub async fn serve(
    config: GatewayConfig,
    ports: Ports,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    config.validate().map_err(Error::Config)?;
    let stop = shutdown.child_token();
    let (publisher, jobs) = publisher::Publisher::channel(config.publish_queue);
    let shared = Arc::new(Shared::new(config, ports, publisher, stop.clone()));
    let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));

    // The publisher is not tracked with the connections: it must outlive
    // them to append what they handed over.
    let publisher_task = tokio::spawn(publisher::run(
        Arc::clone(&shared.ports.log),
        jobs,
        shared.config.publish_batch,
        Arc::clone(&shared.metrics),
        stop.clone(),
    ));
    {
        let (shared, failure) = (Arc::clone(&shared), Arc::clone(&failure));
        shared.tracker.clone().spawn(async move {
            if let Err(e) = pushes::run(Arc::clone(&shared)).await {
                warn!(error = %e, "the receipt consumer failed; stopping the gateway");
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                shared.stop.cancel();
            }
        });
    }
    {
        let (shared, failure) = (Arc::clone(&shared), Arc::clone(&failure));
        shared.tracker.clone().spawn(async move {
            if let Err(e) = pushes::run_priority(Arc::clone(&shared)).await {
                warn!(error = %e, "the priority consumer failed; stopping the gateway");
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                shared.stop.cancel();
            }
        });
    }
    shared.tracker.spawn(heartbeat(Arc::clone(&shared)));

    let app = router(Arc::clone(&shared));
    let limits = AcceptLimits {
        max_open: shared.config.max_connections,
        header_timeout: shared.config.http_header_timeout,
    };
    // Sets TCP_NODELAY on every connection: small frames (acks) must not
    // wait behind the peer's delayed ACK.
    accept(listener, app, limits, stop.clone(), shared.tracker.clone()).await;
    stop.cancel();
    shared.tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, shared.tracker.wait())
        .await
        .is_err()
    {
        warn!("connections did not close in time");
    }
    let _ = publisher_task.await;
    info!("gateway stopped");
    let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.max_http_body_bytes;
    Router::new()
        .route("/v1/ws", get(upgrade::upgrade))
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route("/v1/conversations/{conv}", get(conversations::show))
        .route("/v1/conversations/{conv}/members", post(conversations::change_members))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .method_not_allowed_fallback(http::method_not_allowed)
        .fallback(http::fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

/// Refreshes the presence entries of connected devices before they expire.
#[instrument(skip_all)]
async fn heartbeat(shared: Arc<Shared>) {
    let c = &shared.config;
    let mut tick = tokio::time::interval(c.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.stop.cancelled() => return,
        }
        for key in shared.registry.devices() {
            if let Err(e) = shared
                .ports
                .presence
                .register(&key.user, &key.device, &c.id, c.presence_ttl)
                .await
            {
                warn!(error = %e, "refreshing presence failed");
                break;
            }
        }
        shared.reads.follows.refresh().await;
    }
}
