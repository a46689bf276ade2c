//! A small health endpoint for roles without the gateway's HTTP server
//! (`[health] listen`): `/healthz` while the process runs; `/readyz` while
//! it is not draining, every consumer group of its roles has a consumer
//! running and the backends its roles need answer (the persister's store,
//! fanout's presence); `/metrics` with the process's counters (consumer lag,
//! fence refusals, dead letters, failure point hits) in Prometheus text. [`probe`] is the
//! other side: `seqline health --url …`, the container healthcheck.

use anyhow::Context;
use axum::{http::StatusCode, routing::get, Router};
use futures_util::future::BoxFuture;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `/readyz` asks besides "not draining": `Err(why)` when a role's
/// consumers are not running or a backend it needs does not answer.
pub type Ready = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long `/readyz` waits for the readiness checks.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves `/healthz` and `/readyz` on `addr` until the process exits.
pub async fn spawn(addr: SocketAddr, draining: CancellationToken, ready: Ready) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("health endpoint on {addr}"))?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let (draining, ready) = (draining.clone(), Arc::clone(&ready));
                async move {
                    if draining.is_cancelled() {
                        return (StatusCode::SERVICE_UNAVAILABLE, "draining".to_string());
                    }
                    match tokio::time::timeout(READY_TIMEOUT, ready()).await {
                        Ok(Ok(())) => (StatusCode::OK, "ready".to_string()),
                        Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
                        Err(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: the checks took over {READY_TIMEOUT:?}"),
                        ),
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

/// GETs `url` (`http://HOST:PORT/PATH`) over plain HTTP/1.1 and returns its
/// status line when the status is 2xx; an error otherwise or after `timeout`
/// (per step: connect, write, read).
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?} is not an http:// URL like http://127.0.0.1:7601/healthz"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority:?}"))?
        .next()
        .with_context(|| format!("{authority:?} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending the request to {addr}"))?;
    // The status line is all we need; it fits the first read or two.
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading the answer of {addr}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default().trim().to_string();
    let code = status
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("{url} answered something other than HTTP: {status:?}"))?;
    if !(200..300).contains(&code) {
        anyhow::bail!("{url} answered {status:?}");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_refuses_other_schemes_and_closed_ports() {
        assert!(probe("https://127.0.0.1:1/healthz", Duration::from_secs(1)).is_err());
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let err = probe(&format!("http://{closed}/healthz"), Duration::from_secs(1)).unwrap_err();
        assert!(format!("{err:#}").contains("connecting"), "{err:#}");
    }

    /// One connection answered with `status`; the probe's result.
    fn answered(status: &'static str) -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"GET /readyz HTTP/1.1\r\n"));
            s.write_all(format!("{status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                .unwrap();
        });
        let result = probe(&format!("http://{addr}/readyz"), Duration::from_secs(5));
        server.join().unwrap();
        result
    }

    #[test]
    fn the_probe_passes_on_2xx_only() {
        assert_eq!(answered("HTTP/1.1 200 OK").unwrap(), "HTTP/1.1 200 OK");
        let err = answered("HTTP/1.1 503 Service Unavailable").unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        assert!(answered("SSH-2.0-OpenSSH").is_err());
    }
}
