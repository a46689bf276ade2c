//! A scripted WebSocket server on a private loopback port for the SDK's
//! tests: each test plays the server's side of protocol v1 frame by frame,
//! every wait bounded by [`WAIT`].

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use seqline_core::ids::{DeviceId, UserId};
use seqline_core::model::TimelineEntry;
use seqline_core::protocol::{ClientFrame, Limits, ServerFrame};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct Server {
    pub url: String,
    conns: mpsc::Receiver<Conn>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
        let (tx, conns) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = tx.send(Conn { ws }).await;
                }
            }
        });
        Server { url, conns }
    }

    /// The next connection the SDK opens.
    pub async fn next(&mut self) -> Conn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("no connection in time")
            .unwrap()
    }
}

/// One connection, seen from the server.
pub struct Conn {
    pub ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// The next frame that is not a cursor report or a keep-alive.
    pub async fn recv(&mut self) -> ClientFrame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame in time")
                .unwrap()
                .unwrap();
            let WsMessage::Text(text) = msg else { continue };
            let f: ClientFrame = serde_json::from_str(text.as_str()).unwrap();
            if !matches!(f, ClientFrame::Cursor { .. } | ClientFrame::Ping { .. }) {
                return f;
            }
        }
    }

    /// Asserts nothing but keep-alives arrive for a short while.
    pub async fn quiet(&mut self) {
        let got = tokio::time::timeout(Duration::from_millis(150), self.recv()).await;
        assert!(got.is_err(), "unexpected frame {got:?}");
    }

    pub async fn send(&mut self, f: ServerFrame) {
        self.ws
            .send(WsMessage::text(serde_json::to_string(&f).unwrap()))
            .await
            .unwrap();
    }

    /// Hello, welcome with `head`, and the initial timeline sync from
    /// `cursor` answered with `entries`.
    pub async fn accept_with(&mut self, head: u64, cursor: u64, entries: Vec<TimelineEntry>) {
        assert!(matches!(self.recv().await, ClientFrame::Hello { .. }));
        self.send(welcome(head)).await;
        match self.recv().await {
            ClientFrame::Sync { req, after, .. } => {
                assert_eq!(after, cursor);
                self.send(ServerFrame::SyncPage {
                    req,
                    entries,
                    head,
                    more: false,
                    epoch: seqline_core::Epoch::from_u64(1),
                })
                .await;
            }
            other => panic!("expected the initial sync, got {other:?}"),
        }
    }
}

/// The welcome of user alice, device phone.
pub fn welcome(head: u64) -> ServerFrame {
    ServerFrame::Welcome {
        protocol: 1,
        user: UserId::parse("alice").unwrap(),
        device: DeviceId::parse("phone").unwrap(),
        head,
        cursor: None,
        limits: Limits {
            max_frame_bytes: 65536,
            max_body_bytes: 4096,
            max_page: 100,
            max_sends_per_sec: 0,
            max_batch_commands: 16,
            max_batch_bytes: 32768,
        },
        epoch: seqline_core::Epoch::from_u64(1),
    }
}
