//! A real gateway on 127.0.0.1:0 over the real embedded adapters in a
//! private directory, a WebSocket client, a raw HTTP client, and a reader of
//! the inbound topic (the tests play the sequencer's part on the log).

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use seqline_core::ports::{Log, LogConsumer, Polled, Presence, Store};
use seqline_core::records::{Command, GatewayRecord, LogRecord, Topic};
use seqline_core::token::{now_secs, TokenKey};
use seqline_core::{DeviceId, GatewayId, UserId};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions, MemoryPresence};
use seqline_gateway::{GatewayConfig, Ports};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "gateway-test-secret-0123456789";
/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn device(name: &str) -> DeviceId {
    DeviceId::parse(name).unwrap()
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("seqline-gw-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gateway and its ports.
pub struct Gw {
    pub addr: SocketAddr,
    pub id: GatewayId,
    pub config: GatewayConfig,
    pub log: Arc<EmbeddedLog>,
    pub store: Arc<EmbeddedStore>,
    pub presence: Arc<MemoryPresence>,
    pub key: TokenKey,
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), seqline_gateway::Error>>>,
    _dir: TempDir,
}

impl Gw {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut GatewayConfig)) -> Self {
        let dir = TempDir::new();
        let engine = EmbeddedEngine::open(&dir.0).unwrap();
        // One inbound partition: what the gateway appended is read back in order.
        let options = LogOptions {
            inbound: 1,
            ..LogOptions::default()
        };
        let log = Arc::new(EmbeddedLog::open(engine.clone(), options).unwrap());
        let store = Arc::new(EmbeddedStore::open(engine).unwrap());
        let presence = Arc::new(MemoryPresence::new());
        let id = GatewayId::parse(format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).unwrap();
        let mut config = GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            id: id.clone(),
            token_secret: SECRET.into(),
            hello_timeout: Duration::from_secs(5),
            rectifier_timeout: Duration::from_millis(150),
            // The fixtures' messages carry server timestamps from 2023: as
            // pushes they would read as years of delivery lag. The tests of
            // admission control turn it on themselves.
            max_delivery_lag: Duration::ZERO,
            ..GatewayConfig::default()
        };
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ports = Ports {
            log: log.clone() as Arc<dyn Log>,
            store: store.clone() as Arc<dyn Store>,
            presence: presence.clone() as Arc<dyn Presence>,
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(seqline_gateway::serve(
            config.clone(),
            ports,
            listener,
            shutdown.clone(),
        ));
        let gw = Self {
            addr,
            id,
            config,
            log,
            store,
            presence,
            key: TokenKey::new(SECRET),
            shutdown,
            task: Some(task),
            _dir: dir,
        };
        gw.wait_ready().await;
        gw
    }

    /// Waits for `/readyz` (the receipt consumer has joined its group).
    pub async fn wait_ready(&self) {
        seqline_testkit::wait::until(WAIT, "the gateway to be ready", || async {
            let (status, _) = http(self.addr, "GET", "/readyz", None, None).await;
            (status == 200).then_some(())
        })
        .await;
    }

    pub fn token(&self, u: &str, d: &str) -> String {
        self.key.sign(&user(u), &device(d), now_secs(), 3600)
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.url()).await.unwrap();
        Client { ws }
    }

    /// Connects and says hello; returns the client and its welcome.
    pub async fn login(&self, u: &str, d: &str) -> (Client, Value) {
        let mut c = self.connect().await;
        c.send(json!({"type": "hello", "token": self.token(u, d)})).await;
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (c, welcome)
    }

    /// A reader of the inbound topic from its start.
    pub async fn inbound(&self) -> Inbound {
        let group = format!("test-{}", uuid::Uuid::new_v4().simple());
        let consumer = self.log.subscribe(&group, &Topic::Inbound).await.unwrap();
        Inbound {
            consumer,
            buffered: VecDeque::new(),
        }
    }

    /// Appends a record to this gateway's topic, as the persister or fanout would.
    pub async fn deliver(&self, record: GatewayRecord) {
        self.log
            .append(&Topic::Gateway(self.id.clone()), vec![LogRecord::Gateway(record)])
            .await
            .unwrap();
    }

    pub async fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, Value) {
        http(self.addr, method, path, token, body).await
    }

    /// Stops the gateway and returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), seqline_gateway::Error> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("serve returns")
            .unwrap()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads commands the gateway appended to the inbound topic.
pub struct Inbound {
    consumer: Box<dyn LogConsumer>,
    buffered: VecDeque<Command>,
}

impl Inbound {
    async fn fill(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.buffered.is_empty() {
            match tokio::time::timeout_at(deadline, self.consumer.poll(256)).await {
                Err(_) => return false,
                Ok(polled) => {
                    if let Polled::Records { records, .. } = polled.unwrap() {
                        for r in records {
                            match r.record.unwrap() {
                                LogRecord::Command(c) => self.buffered.push_back(c),
                                other => panic!("not a command on inbound: {other:?}"),
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// The next command (fails the test after a while).
    pub async fn next(&mut self) -> Command {
        assert!(self.fill(WAIT).await, "no command appeared on the inbound topic");
        self.buffered.pop_front().unwrap()
    }

    /// Nothing more is on the topic right now (the log serves durable records
    /// at once, so a short look suffices once a later marker has been read).
    pub async fn assert_empty(&mut self) {
        assert!(
            !self.fill(Duration::from_millis(100)).await,
            "unexpected command: {:?}",
            self.buffered.front()
        );
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket test client.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect_with_origin(url: &str, origin: &str) -> Result<Client, u16> {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Client { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::Text(s.to_owned().into())).await.unwrap();
    }

    /// The next text frame as JSON (fails on close or after a while).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame must be `error` with `code`; returns it.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let f = self.recv().await;
        assert_eq!(f["type"], "error", "{f}");
        assert_eq!(f["code"], code, "{f}");
        f
    }

    /// Proves the connection is alive and idle: a ping is answered by a pong
    /// and nothing came before it.
    pub async fn assert_alive(&mut self) {
        let req = rand_req();
        self.send(json!({"type": "ping", "req": req})).await;
        let f = self.recv().await;
        assert_eq!(f["type"], "pong", "{f}");
        assert_eq!(f["req"], req);
    }

    /// Reads until the server closes; returns the close code (None when the
    /// socket ended without a close frame).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server closes in time");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                Some(Ok(Message::Frame(_))) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

pub fn rand_req() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_fields().0)
}

pub fn close_code(code: u16) -> CloseCode {
    CloseCode::from(code)
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the
/// body as JSON (a non-JSON body becomes a JSON string).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an HTTP answer in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, value)
}
