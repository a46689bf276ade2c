//! A TCP proxy between the load generator and the gateways that injects the
//! network faults of F10 (docs/chaos.md): dropped sockets, half-open sockets and
//! lost ack frames.
//!
//! Bytes pass through unchanged. The server→client direction is watched for
//! an `HTTP/1.1 101` answer; from then on it is cut into RFC 6455 frames so
//! whole ack frames can be dropped. The client→server direction is never
//! parsed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Read size of each direction.
const CHUNK: usize = 16 * 1024;
/// A response head longer than this is not a WebSocket upgrade we parse.
const MAX_HEAD: usize = 64 * 1024;
/// A frame declaring more than this stops parsing: the rest passes raw.
const MAX_FRAME: u64 = 16 * 1024 * 1024;
/// The tag of `ServerFrame::Ack`, looked for near the start of text frames.
const ACK_TAG: &[u8] = br#""type":"ack""#;
const ACK_WINDOW: usize = 32;
/// The start of the response head after which frames are parsed.
const UPGRADED: &[u8] = b"HTTP/1.1 101";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters since the proxy started.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Connections open now (forwarding, frozen or connecting).
    pub open: u64,
    /// Connections closed by `cut_all` or at the end of a freeze.
    pub cut: u64,
    /// Connections that were frozen (existing ones and ones accepted during a freeze).
    pub frozen: u64,
    /// Server→client ack frames dropped.
    pub acks_dropped: u64,
    /// Failed attempts to connect to a backend.
    pub backend_failures: u64,
    /// Bytes forwarded client→server.
    pub bytes_to_server: u64,
    /// Bytes forwarded server→client (dropped frames not counted).
    pub bytes_to_client: u64,
}

/// A fault-injecting proxy listening on `127.0.0.1`.
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    runtime: Handle,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `backends` (host:port).
    pub async fn start(backends: Vec<String>) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            backends: Mutex::new(backends),
            ..Inner::default()
        });
        let accept = tokio::spawn(accept_loop(Arc::clone(&inner), listener));
        Ok(FaultProxy {
            inner,
            addr,
            runtime: Handle::current(),
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the backends; connections already open keep theirs.
    pub fn set_backends(&self, backends: Vec<String>) {
        *lock(&self.inner.backends) = backends;
    }

    /// Closes every proxied connection (both sides); returns how many.
    /// Connections accepted afterwards work normally.
    pub fn cut_all(&self) -> usize {
        let mut conns = lock(&self.inner.conns);
        let n = conns.map.len();
        for (_, ctl) in conns.map.drain() {
            ctl.send_replace(ConnState::Killed);
        }
        self.inner.counters.cut.fetch_add(n as u64, Relaxed);
        tracing::info!(connections = n, "proxy cut all connections");
        n
    }

    /// Half-opens every connection for `d`: nothing is forwarded either way
    /// and nothing is closed; connections accepted meanwhile are held the
    /// same way. When the freeze ends, every frozen connection is cut.
    /// Returns at once; overlapping freezes end at the latest deadline.
    pub fn freeze_for(&self, d: Duration) {
        let until = Instant::now() + d;
        {
            let mut conns = lock(&self.inner.conns);
            conns.frozen_until = Some(conns.frozen_until.map_or(until, |u| u.max(until)));
            let mut n = 0;
            for ctl in conns.map.values() {
                if ctl.send_if_modified(freeze) {
                    n += 1;
                }
            }
            self.inner.counters.frozen.fetch_add(n, Relaxed);
            tracing::info!(connections = n, ?d, "proxy froze connections");
        }
        let inner = Arc::clone(&self.inner);
        self.runtime.spawn(async move {
            tokio::time::sleep_until(until).await;
            inner.thaw();
        });
    }

    /// Drops server→client ack frames for `d`. Returns at once.
    pub fn drop_acks_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut acks = lock(&self.inner.acks);
        acks.until = Some(acks.until.map_or(until, |u| u.max(until)));
    }

    /// Drops the next `n` server→client ack frames (on any connection).
    pub fn drop_next_acks(&self, n: u64) {
        lock(&self.inner.acks).budget += n;
    }

    /// Counters since start.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        ProxyStats {
            accepted: c.accepted.load(Relaxed),
            open: lock(&self.inner.conns).map.len() as u64,
            cut: c.cut.load(Relaxed),
            frozen: c.frozen.load(Relaxed),
            acks_dropped: c.acks_dropped.load(Relaxed),
            backend_failures: c.backend_failures.load(Relaxed),
            bytes_to_server: c.bytes_to_server.load(Relaxed),
            bytes_to_client: c.bytes_to_client.load(Relaxed),
        }
    }

    /// Stops accepting and closes everything.
    pub fn shutdown(&self) {
        self.accept.abort();
        let mut conns = lock(&self.inner.conns);
        conns.closed = true;
        for (_, ctl) in conns.map.drain() {
            ctl.send_replace(ConnState::Killed);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Live,
    /// Half-open: hold both sockets, forward nothing, until killed.
    Frozen,
    Killed,
}

fn freeze(s: &mut ConnState) -> bool {
    let live = *s == ConnState::Live;
    if live {
        *s = ConnState::Frozen;
    }
    live
}

#[derive(Default)]
struct Conns {
    map: HashMap<u64, watch::Sender<ConnState>>,
    frozen_until: Option<Instant>,
    closed: bool,
}

#[derive(Default)]
struct AckDrop {
    until: Option<Instant>,
    budget: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    cut: AtomicU64,
    frozen: AtomicU64,
    acks_dropped: AtomicU64,
    backend_failures: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
}

#[derive(Default)]
struct Inner {
    backends: Mutex<Vec<String>>,
    next_backend: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<Conns>,
    acks: Mutex<AckDrop>,
    counters: Counters,
}

impl Inner {
    fn register(&self) -> Option<(u64, watch::Receiver<ConnState>)> {
        let mut conns = lock(&self.conns);
        if conns.closed {
            return None;
        }
        let state = if conns.frozen_until.is_some() {
            self.counters.frozen.fetch_add(1, Relaxed);
            ConnState::Frozen
        } else {
            ConnState::Live
        };
        let id = self.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = watch::channel(state);
        conns.map.insert(id, tx);
        Some((id, rx))
    }

    /// Ends the freeze if its deadline has passed and cuts the frozen connections.
    fn thaw(&self) {
        let mut conns = lock(&self.conns);
        match conns.frozen_until {
            Some(until) if until <= Instant::now() => conns.frozen_until = None,
            _ => return,
        }
        let frozen: Vec<u64> = (conns.map.iter())
            .filter(|(_, ctl)| *ctl.borrow() == ConnState::Frozen)
            .map(|(id, _)| *id)
            .collect();
        for id in &frozen {
            if let Some(ctl) = conns.map.remove(id) {
                ctl.send_replace(ConnState::Killed);
            }
        }
        self.counters.cut.fetch_add(frozen.len() as u64, Relaxed);
        tracing::info!(connections = frozen.len(), "proxy freeze ended, frozen connections cut");
    }

    /// Whether the ack frame just seen is to be dropped.
    fn take_ack_drop(&self) -> bool {
        let mut acks = lock(&self.acks);
        if acks.until.is_some_and(|u| Instant::now() < u) {
            return true;
        }
        if acks.budget > 0 {
            acks.budget -= 1;
            return true;
        }
        false
    }

    /// Round robin from the next backend, skipping the ones that refuse.
    async fn connect_backend(&self) -> Option<TcpStream> {
        let backends = lock(&self.backends).clone();
        let start = self.next_backend.fetch_add(1, Relaxed);
        for i in 0..backends.len() {
            let addr = &backends[(start + i) % backends.len()];
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str())).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(stream);
                }
                Ok(Err(error)) => tracing::debug!(%addr, %error, "proxy backend refused"),
                Err(_) => tracing::debug!(%addr, "proxy backend connect timed out"),
            }
            self.counters.backend_failures.fetch_add(1, Relaxed);
        }
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        inner.counters.accepted.fetch_add(1, Relaxed);
        if let Some((id, ctl)) = inner.register() {
            tokio::spawn(serve(Arc::clone(&inner), client, id, ctl));
        }
    }
}

async fn serve(inner: Arc<Inner>, mut client: TcpStream, id: u64, mut ctl: watch::Receiver<ConnState>) {
    let mut server = None;
    let mut halted = tokio::select! {
        biased;
        _ = ctl.wait_for(|s| *s != ConnState::Live) => true,
        s = inner.connect_backend() => { server = s; false }
    };
    if let (false, Some(server)) = (halted, server.as_mut()) {
        halted = tokio::select! {
            biased;
            _ = ctl.wait_for(|s| *s != ConnState::Live) => true,
            result = pump(&inner, &mut client, server) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "proxied connection failed");
                }
                false
            }
        };
    }
    if halted {
        // Frozen keeps both sockets open and silent until the cut.
        let _ = ctl.wait_for(|s| *s == ConnState::Killed).await;
    }
    lock(&inner.conns).map.remove(&id);
}

async fn pump(inner: &Inner, client: &mut TcpStream, server: &mut TcpStream) -> io::Result<()> {
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    tokio::try_join!(
        to_server(inner, client_read, server_write),
        to_client(inner, server_read, client_write),
    )?;
    Ok(())
}

async fn to_server(inner: &Inner, mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        inner.counters.bytes_to_server.fetch_add(n as u64, Relaxed);
    }
}

async fn to_client(inner: &Inner, mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut filter = AckFilter::default();
    let mut out = Vec::new();
    loop {
        let n = from.read(&mut buf).await?;
        out.clear();
        if n == 0 {
            filter.finish(&mut out);
        } else {
            let dropped = filter.feed(&buf[..n], &mut out, || inner.take_ack_drop());
            inner.counters.acks_dropped.fetch_add(dropped, Relaxed);
        }
        to.write_all(&out).await?;
        inner.counters.bytes_to_client.fetch_add(out.len() as u64, Relaxed);
        if n == 0 {
            return to.shutdown().await;
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Holding the response head until it is complete.
    #[default]
    Head,
    /// After `101`: whole WebSocket frames.
    Frames,
    /// Not a WebSocket stream (or one we gave up on): bytes as they come.
    Raw,
}

/// The server→client stream cut into frames, with matching ack frames dropped.
#[derive(Default)]
struct AckFilter {
    phase: Phase,
    pending: Vec<u8>,
}

enum Parsed {
    Incomplete,
    TooBig,
    Frame { header: usize, total: usize },
}

impl AckFilter {
    /// Appends what may be forwarded to `out`; `drop_ack` decides for each
    /// ack frame. Returns how many frames were dropped.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>, mut drop_ack: impl FnMut() -> bool) -> u64 {
        if self.phase == Phase::Raw {
            out.extend_from_slice(data);
            return 0;
        }
        self.pending.extend_from_slice(data);
        if self.phase == Phase::Head {
            // Hold bytes only while they may still become a `101` head.
            let n = self.pending.len().min(UPGRADED.len());
            if self.pending[..n] != UPGRADED[..n] {
                self.phase = Phase::Raw;
            } else if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                out.extend(self.pending.drain(..i + 4));
                self.phase = Phase::Frames;
            } else if self.pending.len() > MAX_HEAD {
                self.phase = Phase::Raw;
            } else {
                return 0;
            }
        }
        let mut pos = 0;
        let mut dropped = 0;
        while self.phase == Phase::Frames {
            match parse_frame(&self.pending[pos..]) {
                Parsed::Incomplete => break,
                Parsed::TooBig => self.phase = Phase::Raw,
                Parsed::Frame { header, total } => {
                    let frame = &self.pending[pos..pos + total];
                    if is_ack(frame, header) && drop_ack() {
                        dropped += 1;
                    } else {
                        out.extend_from_slice(frame);
                    }
                    pos += total;
                }
            }
        }
        self.pending.drain(..pos);
        if self.phase == Phase::Raw {
            self.finish(out);
        }
        dropped
    }

    /// Releases whatever is held back (at end of stream).
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_frame(buf: &[u8]) -> Parsed {
    let [_, b1, rest @ ..] = buf else {
        return Parsed::Incomplete;
    };
    let (len, header) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Parsed::Incomplete,
        },
        127 => match rest.get(..8) {
            Some(b) => {
                let mut be = [0; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Parsed::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Parsed::TooBig;
    }
    let header = if b1 & 0x80 != 0 { header + 4 } else { header };
    // len <= MAX_FRAME, so this fits in usize.
    let total = header + len as usize;
    if buf.len() < total {
        Parsed::Incomplete
    } else {
        Parsed::Frame { header, total }
    }
}

/// A final, uncompressed text frame whose payload starts like an ack.
fn is_ack(frame: &[u8], header: usize) -> bool {
    if frame.first() != Some(&0x81) {
        return false;
    }
    let payload = &frame[header..];
    let mut head: Vec<u8> = payload.iter().take(ACK_WINDOW).copied().collect();
    if frame[1] & 0x80 != 0 {
        let key = &frame[header - 4..header];
        for (i, b) in head.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    find(&head, ACK_TAG).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                f.extend_from_slice(&key);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

    fn run(chunks: &[&[u8]], drop: bool) -> (Vec<u8>, u64) {
        let mut filter = AckFilter::default();
        let mut out = Vec::new();
        let mut dropped = 0;
        for c in chunks {
            dropped += filter.feed(c, &mut out, || drop);
        }
        filter.finish(&mut out);
        (out, dropped)
    }

    #[test]
    fn acks_dropped_at_every_split_point() {
        let ack = frame(1, br#"{"type":"ack","id":"a","conv":"c","conv_seq":1}"#, None);
        let masked_ack = frame(1, br#"{"type":"ack"}"#, Some([1, 2, 3, 4]));
        let pong = frame(1, br#"{"type":"pong"}"#, None);
        let mid = frame(1, &[b'x'; 300], None);
        let big = frame(2, &vec![7; 70_000], None);
        let stream = [HEAD, &ack, &pong, &masked_ack, &mid, &ack, &big].concat();
        let expected = [HEAD, &pong, &mid, &big].concat();
        for split in (0..stream.len()).step_by(7) {
            let (a, b) = stream.split_at(split);
            let (out, dropped) = run(&[a, b], true);
            assert!(out == expected && dropped == 3, "split at {split}");
        }
        assert!(run(&[&stream], false) == (stream.clone(), 0));
        let bytewise: Vec<&[u8]> = stream[..400].chunks(1).collect();
        assert!(run(&bytewise, false).0 == stream[..400]);
    }

    #[test]
    fn non_upgrade_and_huge_frames_pass_raw() {
        // Bytes that cannot start a `101` head are not held back.
        let mut filter = AckFilter::default();
        let mut out = Vec::new();
        filter.feed(b"x", &mut out, || true);
        assert_eq!(out, b"x");
        filter.feed(b"HTTP/1.1 101 \r\n\r\n", &mut out, || true);
        assert_eq!(filter.phase, Phase::Raw);
        let ack = frame(1, br#"{"type":"ack"}"#, None);
        let http = [b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n".as_slice(), &ack[2..]].concat();
        let with_ack = [http.as_slice(), &ack].concat();
        assert_eq!(run(&[&with_ack], true), (with_ack.clone(), 0));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        let stream = [HEAD, &huge, &ack].concat();
        assert_eq!(run(&[&stream], true), (stream.clone(), 0));
        // Not an ack: a later field, a fragment, a binary frame.
        let late = frame(1, br#"{"type":"push","x":"      ","type":"ack"}"#, None);
        let mut fragment = ack.clone();
        fragment[0] = 0x01;
        let binary = frame(2, br#"{"type":"ack"}"#, None);
        let stream = [HEAD, &late, &fragment, &binary].concat();
        assert_eq!(run(&[&stream], true), (stream.clone(), 0));
    }
}
