//! The priority lane end to end, with every role in this process on real
//! ports (the embedded engine, or Apache Kafka for the log) and a real
//! WebSocket client: a high-priority message committed behind a large
//! backlog of ordinary events (write-diffusion pushes and read-diffusion
//! messages) reaches a following device before that backlog has drained.
//!
//! The backlog is made real by stopping fanout while it is queued: every
//! ordinary event sits on `user-events` and `conv-events` when the priority
//! message commits, and fanout, started again, pushes the backlog in small
//! batches. The test asserts the order the client sees, never a time.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::ClientMsgId;
use seqline_core::model::MessageKind;
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::protocol::{ClientFrame, ConvCursor, ServerFrame};
use seqline_core::{ConversationId, GatewayId};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions, MemoryPresence};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Ordinary messages queued into the write-diffusion group ahead of the
/// priority one (each pushed to bob).
const BACKLOG: u64 = 400;
/// Ordinary messages queued into the huge group ahead of the priority one
/// (the priority message's own conversation).
const GROUP_BACKLOG: u64 = 1600;
/// Fanout's batch: the backlog takes many rounds to drain.
const FANOUT_BATCH: usize = 4;

struct Stack {
    log: Arc<dyn Log>,
    store: Arc<dyn Store>,
    presence: Arc<MemoryPresence>,
    gateway: SocketAddr,
    gateway_id: GatewayId,
    stop: CancellationToken,
    fanout: Option<(CancellationToken, JoinHandle<seqline_core::Result<()>>)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    async fn start(log: Arc<dyn Log>, dir: &Path) -> Stack {
        std::fs::create_dir_all(dir).unwrap();
        let engine = EmbeddedEngine::open(dir).unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(engine).unwrap());
        let presence = Arc::new(MemoryPresence::new());
        let stop = CancellationToken::new();
        let persister = seqline_persister::PersisterConfig {
            read_diffusion_threshold: 3,
            ..Default::default()
        };
        let ports = seqline_persister::Ports {
            log: Arc::clone(&log),
            store: Arc::clone(&store),
        };
        let mut tasks = vec![tokio::spawn({
            let stop = stop.clone();
            async move { seqline_persister::run(persister, ports, stop).await.unwrap() }
        })];
        let gateway_id = GatewayId::parse(format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).unwrap();
        let config = seqline_gateway::GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            id: gateway_id.clone(),
            token_secret: SECRET.into(),
            max_sends_per_sec: 100_000,
            send_burst: 100_000,
            send_queue: 4096,
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        let ports = seqline_gateway::Ports {
            log: Arc::clone(&log),
            store: Arc::clone(&store),
            presence: Arc::clone(&presence) as Arc<dyn Presence>,
        };
        tasks.push(tokio::spawn({
            let stop = stop.clone();
            async move { seqline_gateway::serve(config, ports, listener, stop).await.unwrap() }
        }));
        let mut stack = Stack {
            log,
            store,
            presence,
            gateway,
            gateway_id,
            stop,
            fanout: None,
            tasks,
        };
        stack.start_fanout();
        seqline_testkit::wait::until(Duration::from_secs(60), "the gateway to be ready", || async {
            let mut s = tokio::net::TcpStream::connect(gateway).await.ok()?;
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            out.starts_with("HTTP/1.1 200").then_some(())
        })
        .await;
        stack
    }

    fn start_fanout(&mut self) {
        let config = seqline_fanout::FanoutConfig {
            batch_max: FANOUT_BATCH,
            notice_interval: Duration::from_millis(50),
            ..Default::default()
        };
        let ports = seqline_fanout::Ports {
            log: Arc::clone(&self.log),
            presence: Arc::clone(&self.presence) as Arc<dyn Presence>,
        };
        let stop = self.stop.child_token();
        let task = tokio::spawn(seqline_fanout::run(config, ports, stop.clone()));
        self.fanout = Some((stop, task));
    }

    async fn stop_fanout(&mut self) {
        let (stop, task) = self.fanout.take().unwrap();
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    async fn login(&self, user: &str, device: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", self.gateway))
            .await
            .unwrap();
        send(
            &mut ws,
            &ClientFrame::Hello {
                token: token(user, device),
            },
        )
        .await;
        let welcome = recv(&mut ws).await;
        assert!(matches!(welcome, ServerFrame::Welcome { .. }), "{welcome:?}");
        ws
    }

    /// Creates a group through the HTTP API; returns its id.
    async fn create_group(&self, admin: &str, title: &str, members: &[&str]) -> ConversationId {
        let members: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        let body = format!(
            r#"{{"kind":"group","title":"{title}","members":[{}]}}"#,
            members.join(",")
        );
        let mut s = tokio::net::TcpStream::connect(self.gateway).await.unwrap();
        let req = format!(
            "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token(admin, "http"),
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "create group: {out}");
        let json = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        ConversationId::parse(v["conv"].as_str().unwrap()).unwrap()
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some((_, task)) = self.fanout.take() {
            task.await.unwrap().unwrap();
        }
        for t in self.tasks.drain(..) {
            t.await.unwrap();
        }
    }
}

/// Sends `count` messages on `ws` without waiting between them, then waits
/// for every ack; returns the last `conv_seq`.
async fn send_all(ws: &mut Ws, sends: Vec<(ConversationId, String, bool)>) -> u64 {
    let ids: Vec<ClientMsgId> = sends.iter().map(|_| ClientMsgId::random()).collect();
    for ((conv, body, priority), id) in sends.into_iter().zip(&ids) {
        send(
            ws,
            &ClientFrame::Send {
                id: *id,
                conv,
                body,
                prev: None,
                priority,
                vclock: Default::default(),
            },
        )
        .await;
    }
    let mut pending: std::collections::HashSet<ClientMsgId> = ids.iter().copied().collect();
    let mut last = 0;
    while !pending.is_empty() {
        match recv(ws).await {
            ServerFrame::Ack { id, conv_seq, .. } if pending.remove(&id) => last = last.max(conv_seq),
            ServerFrame::Nack { id, message, .. } if pending.contains(&id) => panic!("refused: {message}"),
            _ => {}
        }
    }
    last
}

/// The scenario, on whatever log `log` is.
async fn a_priority_message_overtakes_the_ordinary_backlog(log: Arc<dyn Log>, dir: &Path) {
    let mut stack = Stack::start(log, dir).await;
    let mut bob = stack.login("bob", "phone").await;
    let mut alice = stack.login("alice", "phone").await;
    // Four members, above the threshold of 3: read diffusion.
    let big = stack.create_group("alice", "big", &["bob", "carol", "dave"]).await;
    // Two members: write diffusion, every message pushed to bob.
    let small = stack.create_group("alice", "small", &["bob"]).await;

    // bob follows the huge group (a long-poll), and Presence knows it.
    send(
        &mut bob,
        &ClientFrame::Poll {
            req: 1,
            convs: vec![ConvCursor {
                conv: big.clone(),
                after: 0,
            }],
            wait_ms: Some(1000),
        },
    )
    .await;
    recv_until(&mut bob, |f| {
        matches!(f, ServerFrame::Polled { req: 1, .. }).then_some(())
    })
    .await;
    seqline_testkit::wait::until(Duration::from_secs(30), "bob's gateway to follow the group", || {
        let (presence, big, gw) = (Arc::clone(&stack.presence), big.clone(), stack.gateway_id.clone());
        async move {
            let followers = presence.followers(std::slice::from_ref(&big)).await.ok()?;
            followers.get(&big)?.contains(&gw).then_some(())
        }
    })
    .await;

    // The backlog: fanout is away while ordinary events pile up on its
    // topics, all committed before the priority message.
    stack.stop_fanout().await;
    let mut ordinary = Vec::new();
    for i in 0..GROUP_BACKLOG {
        if i % (GROUP_BACKLOG / BACKLOG) == 0 {
            ordinary.push((small.clone(), format!("small {i}"), false));
        }
        ordinary.push((big.clone(), format!("big {i}"), false));
    }
    send_all(&mut alice, ordinary).await;
    let announced = send_all(&mut alice, vec![(big.clone(), "all hands at 10".into(), true)]).await;
    // Every ordinary message is stored before the priority one was sequenced.
    let last_small = stack.store.conversation_head(&small).await.unwrap().unwrap().0;
    assert_eq!(last_small, BACKLOG + 1, "created + the backlog");
    stack.start_fanout();

    // What bob's connection sees, in order: pushes of the small group's
    // backlog, notices, and the priority frame.
    let mut pushed_before_priority = None;
    let mut pushed: Vec<u64> = Vec::new();
    let mut priority_seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while pushed.last() != Some(&last_small) || pushed_before_priority.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "after 120 s bob has {} pushes (last {:?} of {last_small}) and {priority_seen} priority frames; \
             fanout finished: {:?}, other roles finished: {:?}",
            pushed.len(),
            pushed.last(),
            stack.fanout.as_ref().map(|(_, t)| t.is_finished()),
            stack.tasks.iter().map(JoinHandle::is_finished).collect::<Vec<_>>()
        );
        let frame = tokio::time::timeout(Duration::from_secs(5), recv(&mut bob)).await;
        let Ok(frame) = frame else { continue };
        match frame {
            ServerFrame::Push { entries, .. } => pushed.extend(
                entries
                    .iter()
                    .map(|e| &e.message)
                    .filter(|m| m.conv == small && m.kind == MessageKind::Text)
                    .map(|m| m.conv_seq.0),
            ),
            // The group's `created` is a priority message too: skip it.
            ServerFrame::Priority { message } if message.conv == big && message.kind == MessageKind::Text => {
                assert_eq!(message.conv_seq.0, announced);
                assert_eq!(message.body, "all hands at 10");
                priority_seen += 1;
                pushed_before_priority.get_or_insert(pushed.len() as u64);
            }
            ServerFrame::Pull { .. } => panic!("the rectifier gave up on a push: the test cannot count"),
            _ => {}
        }
    }
    let before = pushed_before_priority.unwrap();
    assert!(
        before < BACKLOG,
        "the priority message came after the whole backlog ({before} of {BACKLOG} pushes before it)"
    );
    assert_eq!(priority_seen, 1, "one priority frame");
    assert_eq!(
        pushed,
        (2..=last_small).collect::<Vec<_>>(),
        "the backlog drained after it, every push once and in order"
    );
    eprintln!("priority frame after {before} of {BACKLOG} backlog pushes");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_engine_a_priority_message_overtakes_the_ordinary_backlog() {
    let dir = temp_dir("priority-lane");
    let engine_dir = dir.join("log");
    std::fs::create_dir_all(&engine_dir).unwrap();
    let log = EmbeddedLog::open(EmbeddedEngine::open(&engine_dir).unwrap(), LogOptions::default()).unwrap();
    a_priority_message_overtakes_the_ordinary_backlog(Arc::new(log), &dir.join("store")).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_apache_kafka_a_priority_message_overtakes_the_ordinary_backlog() {
    let dir = temp_dir("priority-lane-kafka");
    let options = seqline_kafka::KafkaOptions {
        bootstrap: seqline_testkit::kafka::shared_bootstrap(),
        topic_prefix: format!("p{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        ..Default::default()
    };
    let log = seqline_kafka::KafkaLog::connect(options).await.unwrap();
    a_priority_message_overtakes_the_ordinary_backlog(Arc::new(log), &dir).await;
    std::fs::remove_dir_all(&dir).ok();
}
