//! A small health endpoint for roles without the gateway's HTTP server
//! (`[health] listen`): `/healthz` while the process runs, `/readyz` until it
//! starts draining.

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
    let app = Router::new().route("/healthz", get(|| async { "ok" })).route(
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
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "health endpoint stopped");
        }
    });
    Ok(())
}
