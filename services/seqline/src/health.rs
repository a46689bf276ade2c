//! A small health endpoint for roles without the gateway's HTTP server
//! (`[health] listen`): `/healthz` while the process runs, `/readyz` until it
//! starts draining, `/metrics` with the process's counters (fence refusals,
//! dead letters, failure point hits) in Prometheus text.

use anyhow::Context;
use axum::{http::StatusCode, routing::get, Router};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Serves `/healthz` and `/readyz` on `addr` until the process exits.
pub async fn spawn(addr: SocketAddr, draining: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("health endpoint on {addr}"))?;
    let ready = draining.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready.is_cancelled() {
                        false => (StatusCode::OK, "ready"),
                        true => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
                    }
                }
            }),
        )
        .route("/metrics", get(|| async { metrics() }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "health endpoint stopped");
        }
    });
    Ok(())
}

/// The process's counters in Prometheus text (the gateway serves the same
/// series on its own `/metrics`).
fn metrics() -> String {
    let mut out = String::new();
    seqline_core::failpoint::render_prometheus(&mut out);
    seqline_telemetry::Metrics::global().render_prometheus(&mut out);
    out
}
