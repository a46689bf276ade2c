//! `/readyz` of a role process means what an orchestrator needs: its
//! consumers run and the backends it needs answer. A real `seqline fanout`
//! process on a private `redis-server`: ready once its lanes consume, not
//! ready (503, naming presence) while Redis is gone, ready again when Redis
//! is back; and a persister alone is ready once its store answers.

#![allow(clippy::unwrap_used)]

mod common;

use seqline_testkit::servers;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A role process, killed on drop.
struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Starts `seqline ROLE` on an embedded log and store in `data`, with
/// `presence`, its health endpoint on `health`.
fn start(role: &str, data: &std::path::Path, presence: &str, health: &str) -> Role {
    let dir = data.display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_seqline"))
        .arg(role)
        .env("SEQLINE__PORTS__LOG", format!("embedded://{dir}"))
        .env("SEQLINE__PORTS__STORE", format!("embedded://{dir}"))
        .env("SEQLINE__PORTS__PRESENCE", presence)
        .env("SEQLINE__HEALTH__LISTEN", health)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Role(child)
}

/// `/readyz`'s status line and body.
async fn readyz(health: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(health).await.ok()?;
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {health}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

/// Waits until `/readyz` answers `status`; returns its body.
async fn until_readyz(health: &str, status: u16, what: &str) -> String {
    seqline_testkit::wait::until(Duration::from_secs(60), what, || async move {
        readyz(health).await.filter(|(s, _)| *s == status).map(|(_, body)| body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_is_ready_only_while_its_consumers_run_and_presence_answers() {
    let data = common::temp_dir("ready-fanout");
    let mut redis = servers::redis();
    let port: u16 = redis.addr.rsplit(':').next().unwrap().parse().unwrap();
    let health = free_addr();
    let _fanout = start("fanout", &data, &format!("redis://{}", redis.addr), &health);
    let body = until_readyz(&health, 200, "fanout to be ready").await;
    assert_eq!(body, "ready");

    redis.kill();
    let body = until_readyz(&health, 503, "fanout to be not ready without Redis").await;
    assert!(body.contains("presence"), "the answer names what is missing: {body}");

    let _redis = servers::redis_on(port);
    until_readyz(&health, 200, "fanout to be ready again with Redis back").await;
    std::fs::remove_dir_all(&data).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persister_is_ready_once_its_consumers_run_and_its_store_answers() {
    let data = common::temp_dir("ready-persister");
    let health = free_addr();
    let _persister = start("persister", &data, "memory://", &health);
    let body = until_readyz(&health, 200, "the persister to be ready").await;
    assert_eq!(body, "ready");
    std::fs::remove_dir_all(&data).ok();
}
