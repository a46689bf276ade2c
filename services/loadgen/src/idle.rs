//! W5, what a connection costs the server: many authenticated idle
//! WebSockets (server RSS per connection, idle CPU over a window), and
//! clients that stop reading while messages flow to them (how much each
//! makes the server hold before it is closed, and with which close code).
//!
//! The connections are plain WebSockets (hello, welcome, then nothing but
//! answering the server's pings), bound to several 127.0.0.x source
//! addresses so 10,000 or more do not exhaust one address's ephemeral
//! ports. Their own buffers are small: the load generator must not need
//! more memory than the server it measures.

use crate::procstat::{cpu_ticks, rss_kib, TICKS_PER_SEC};
use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use seqline_core::ids::{DeviceId, UserId};
use seqline_core::token::{now_secs, TokenKey};
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Connections opened at once.
const PARALLEL: usize = 64;
/// How long one connection may take to be welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What an idle run does.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// WebSocket URL of the server (`ws://127.0.0.1:7600/v1/ws`).
    pub url: String,
    /// The server's token secret.
    pub secret: String,
    /// Idle connections to open.
    pub connections: usize,
    /// Source addresses to spread them over: 127.0.0.2 and up.
    pub sources: u8,
    /// How long the server's idle CPU is measured once all are open.
    pub window: Duration,
    /// The server process, for RSS and CPU.
    pub server_pid: Option<u32>,
    /// Prefix of user ids (fresh per run when `None`).
    pub run_id: Option<String>,
}

/// What an idle run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub connections: usize,
    /// Connections welcomed and still open at the end of the window.
    pub open: usize,
    /// Source addresses used.
    pub sources: u8,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every connection open, KiB.
    pub rss_after_kib: u64,
    /// (after - before) / open, bytes.
    pub rss_per_connection_bytes: u64,
    /// Server CPU over the window, percent of one core.
    pub idle_cpu_percent: f64,
    /// Length of the CPU window, seconds.
    pub window_secs: f64,
    /// Seconds to open and welcome every connection.
    pub connect_secs: f64,
}

/// The server address of a `ws://host:port/...` URL.
pub(crate) fn server_addr(url: &str) -> Result<SocketAddr> {
    let rest = url.strip_prefix("ws://").context("only ws:// URLs")?;
    let host = rest.split('/').next().unwrap_or(rest);
    host.parse().with_context(|| format!("`{host}` is not an ip:port"))
}

/// Source address `i` of `sources`: 127.0.0.2 and up.
pub(crate) fn source(i: usize, sources: u8) -> SocketAddr {
    let n = u8::try_from(i % usize::from(sources.max(1))).unwrap_or(0);
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2 + n), 0))
}

/// A raw client WebSocket.
pub(crate) type RawWs = WebSocketStream<TcpStream>;

/// Opens a WebSocket from `from`, says hello and waits for the welcome.
pub(crate) async fn open(server: SocketAddr, url: &str, from: SocketAddr, token: &str) -> Result<RawWs> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(from).with_context(|| format!("binding {from}"))?;
    let tcp = socket.connect(server).await.context("connecting")?;
    tcp.set_nodelay(true)?;
    // Small buffers: this process holds as many sockets as the server.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .context("WebSocket handshake")?;
    let hello = serde_json::json!({"type": "hello", "token": token}).to_string();
    ws.send(Message::Text(hello.into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                if v["type"] == "welcome" {
                    return Ok(ws);
                }
                bail!("expected welcome, got {v}");
            }
            Some(Ok(Message::Close(f))) => bail!("closed before welcome: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the server hung up before welcome"),
        }
    }
}

/// Opens `n` connections, `PARALLEL` at a time; connection `i` is the
/// user and device `ids(i)` names.
pub(crate) async fn open_many(
    url: &str,
    secret: &str,
    ids: impl Fn(usize) -> (String, String),
    n: usize,
    sources: u8,
) -> Result<Vec<RawWs>> {
    let server = server_addr(url)?;
    let key = TokenKey::new(secret.as_bytes());
    let opened = stream::iter(0..n)
        .map(|i| {
            let (user, device) = ids(i);
            let key = &key;
            async move {
                let user = UserId::parse(user).context("user id")?;
                let device = DeviceId::parse(device).context("device id")?;
                let token = key.sign(&user, &device, now_secs(), 24 * 3600);
                tokio::time::timeout(CONNECT_TIMEOUT, open(server, url, source(i, sources), &token))
                    .await
                    .context("no welcome in time")?
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await;
    opened.into_iter().collect()
}

/// Keeps `ws` open: reads (so the server's pings are answered) until the
/// server closes it; returns whether it is still open when `stop` fires.
pub(crate) async fn hold(mut ws: RawWs, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => return true,
        }
    }
}

/// Runs the idle measurement.
pub async fn run_idle(opts: IdleOptions) -> Result<IdleReport> {
    let pid = opts.server_pid;
    let prefix = opts
        .run_id
        .clone()
        .unwrap_or_else(|| format!("idle{}", &uuid::Uuid::new_v4().simple().to_string()[..6]));
    let rss_before = pid.and_then(rss_kib).unwrap_or(0);
    let started = Instant::now();
    let ids = |i: usize| (format!("{prefix}-{i}"), "d".to_owned());
    let sockets = open_many(&opts.url, &opts.secret, ids, opts.connections, opts.sources).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut holders = JoinSet::new();
    for ws in sockets {
        holders.spawn(hold(ws, stop.clone()));
    }
    // Let the welcomes' answers drain and the allocator settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.and_then(rss_kib).unwrap_or(0);
    let t0 = pid.and_then(cpu_ticks);
    let at = Instant::now();
    tokio::time::sleep(opts.window).await;
    let window_secs = at.elapsed().as_secs_f64();
    let idle_cpu_percent = match (t0, pid.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => (b.saturating_sub(a) as f64 / TICKS_PER_SEC) / window_secs * 100.0,
        _ => 0.0,
    };
    let _ = stop_tx.send(true);
    let mut open = 0;
    while let Some(r) = holders.join_next().await {
        if r.unwrap_or(false) {
            open += 1;
        }
    }
    let grown = rss_after.saturating_sub(rss_before) * 1024;
    Ok(IdleReport {
        connections: opts.connections,
        open,
        sources: opts.sources,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_bytes: grown / (open.max(1) as u64),
        idle_cpu_percent,
        window_secs,
        connect_secs,
    })
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| connections | open at end | sources | server RSS before (MiB) | after (MiB) | RSS per connection (KiB) | idle server CPU ({:.0} s) | connect time (s) |",
            self.window_secs
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        write!(
            f,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1}% | {:.1} |",
            self.connections,
            self.open,
            self.sources,
            self.rss_before_kib as f64 / 1024.0,
            self.rss_after_kib as f64 / 1024.0,
            self.rss_per_connection_bytes as f64 / 1024.0,
            self.idle_cpu_percent,
            self.connect_secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            server_addr("ws://127.0.0.1:7600/v1/ws").unwrap(),
            "127.0.0.1:7600".parse().unwrap()
        );
        assert!(server_addr("wss://x/v1/ws").is_err());
        assert_eq!(source(0, 4), "127.0.0.2:0".parse().unwrap());
        assert_eq!(source(5, 4), "127.0.0.3:0".parse().unwrap());
    }
}
