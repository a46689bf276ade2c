//! One trace across every log hop, checked on a real OTLP/gRPC receiver:
//! a message sent by a real WebSocket client is traced from the gateway's
//! `send` through the sequencer, the timeline writer and fanout to the
//! recipient's push and the sender's ack, all under one trace id. Every
//! role runs in this process on real ports, on the embedded engine and on
//! Apache Kafka for the log.
//!
//! Its own test binary: telemetry installs the process's one `tracing`
//! subscriber. The receiver and the exporters run on a runtime of their own
//! that outlives each test's, so the tests may share a process.

#![allow(clippy::unwrap_used)]

mod common;

use common::{recv_until, send, token, Ws, SECRET};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use seqline_core::ids::ClientMsgId;
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::protocol::{ClientFrame, ServerFrame};
use seqline_core::{ConversationId, GatewayId};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions, MemoryPresence};
use seqline_telemetry::{LogSettings, TelemetryConfig};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One exported span: its name, trace id and `topic` attribute.
#[derive(Clone, Debug)]
struct Exported {
    name: String,
    trace_id: Vec<u8>,
    topic: Option<String>,
}

/// The OTLP receiver: keeps every exported span, answers metrics.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Exported>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|s| Exported {
                topic: string_attr(&s.attributes, "topic"),
                name: s.name,
                trace_id: s.trace_id,
            });
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        _: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// The process's receiver, with telemetry exporting to it: both started
/// once, on a runtime that lives as long as the process.
fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let receiver = Receiver::default();
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(receiver.clone()))
                        .add_service(MetricsServiceServer::new(receiver.clone()))
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
                );
                let config = TelemetryConfig {
                    otlp_endpoint: Some(format!("http://{addr}")),
                    ..TelemetryConfig::default()
                };
                let log = LogSettings {
                    level: "info",
                    json: false,
                };
                let guard = seqline_telemetry::init(&log, &config, "seqline");
                assert!(guard.exporting(), "OTLP export did not start");
                tx.send(receiver).unwrap();
                // Exports for as long as the process runs.
                std::future::pending::<()>().await;
                drop(guard);
            });
        });
        rx.recv().unwrap()
    })
}

/// Every role in this process on `log` (and an embedded store).
struct Stack {
    gateway: SocketAddr,
    gateway_id: GatewayId,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    async fn start(log: Arc<dyn Log>, dir: &Path) -> Stack {
        std::fs::create_dir_all(dir).unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedEngine::open(dir).unwrap()).unwrap());
        let presence = Arc::new(MemoryPresence::new());
        let stop = CancellationToken::new();
        let ports = seqline_persister::Ports {
            log: Arc::clone(&log),
            store: Arc::clone(&store),
        };
        let mut tasks = vec![tokio::spawn({
            let stop = stop.clone();
            async move { seqline_persister::run(Default::default(), ports, stop).await.unwrap() }
        })];
        let ports = seqline_fanout::Ports {
            log: Arc::clone(&log),
            presence: Arc::clone(&presence) as Arc<dyn Presence>,
        };
        tasks.push(tokio::spawn({
            let stop = stop.clone();
            async move { seqline_fanout::run(Default::default(), ports, stop).await.unwrap() }
        }));
        let gateway_id = GatewayId::parse(format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).unwrap();
        let config = seqline_gateway::GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            id: gateway_id.clone(),
            token_secret: SECRET.into(),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        let ports = seqline_gateway::Ports {
            log,
            store,
            presence: presence as Arc<dyn Presence>,
        };
        tasks.push(tokio::spawn({
            let stop = stop.clone();
            async move { seqline_gateway::serve(config, ports, listener, stop).await.unwrap() }
        }));
        seqline_testkit::wait::until(Duration::from_secs(60), "the gateway to be ready", || async {
            http(gateway, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .filter(|out| out.starts_with("HTTP/1.1 200"))
        })
        .await;
        Stack {
            gateway,
            gateway_id,
            stop,
            tasks,
        }
    }

    async fn login(&self, user: &str, device: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", self.gateway))
            .await
            .unwrap();
        let hello = ClientFrame::Hello {
            token: token(user, device),
        };
        send(&mut ws, &hello).await;
        recv_until(&mut ws, |f| matches!(f, ServerFrame::Welcome { .. }).then_some(())).await;
        ws
    }

    async fn create_dm(&self, from: &str, to: &str) -> ConversationId {
        let body = format!(r#"{{"kind":"direct","members":["{to}"]}}"#);
        let request = format!(
            "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token(from, "http"),
            body.len()
        );
        let out = http(self.gateway, &request).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "create dm: {out}");
        let v: serde_json::Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        ConversationId::parse(v["conv"].as_str().unwrap()).unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

async fn http(addr: SocketAddr, request: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(request.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Sends `body` from `alice` to `bob`; returns once it is acked and pushed.
async fn deliver(alice: &mut Ws, bob: &mut Ws, conv: &ConversationId, body: &str) {
    let id = ClientMsgId::random();
    let frame = ClientFrame::Send {
        id,
        conv: conv.clone(),
        body: body.into(),
        prev: None,
        priority: false,
        vclock: Default::default(),
    };
    send(alice, &frame).await;
    recv_until(alice, |f| {
        matches!(f, ServerFrame::Ack { id: i, .. } if *i == id).then_some(())
    })
    .await;
    recv_until(bob, |f| match f {
        ServerFrame::Push { entries, .. } => entries.iter().any(|e| e.message.client_msg_id == id).then_some(()),
        _ => None,
    })
    .await;
}

/// The hops a message's trace must cover: (span name, `topic` attribute).
fn hops(gateway: &GatewayId) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("send", None),
        ("publish", None),
        ("batch", Some("inbound".to_string())),
        ("batch", Some("deliveries".to_string())),
        ("batch", Some("user-events".to_string())),
        ("batch", Some(format!("gw.{gateway}"))),
        ("push", None),
        ("ack", None),
    ]
}

async fn one_message_is_one_trace(log: Arc<dyn Log>, dir: &Path) {
    let receiver = receiver();
    let stack = Stack::start(log, dir).await;
    let conv = stack.create_dm("alice", "bob").await;
    let mut alice = stack.login("alice", "phone").await;
    let mut bob = stack.login("bob", "phone").await;

    // A batch continues the trace of its first record only (the others are
    // linked): a first message, pushed before the traced one is sent, has
    // every consumer caught up (on Kafka they join while the conversation
    // is created), so the traced message is first in each of its batches.
    for body in ["warm-up", "traced"] {
        deliver(&mut alice, &mut bob, &conv, body).await;
    }

    // The trace of a `send` span that reached every hop, this gateway's
    // topic included (the process may hold an earlier test's spans).
    let wanted = hops(&stack.gateway_id);
    let what = "one trace to cover every hop of the message";
    let covered = seqline_testkit::wait::until(Duration::from_secs(60), what, || async {
        let spans = receiver.spans.lock().unwrap().clone();
        spans
            .iter()
            .filter(|s| s.name == "send")
            .map(|send| {
                let trace: BTreeSet<(String, Option<String>)> = spans
                    .iter()
                    .filter(|s| s.trace_id == send.trace_id)
                    .map(|s| (s.name.clone(), s.topic.clone()))
                    .collect();
                trace
            })
            .find(|trace| {
                wanted
                    .iter()
                    .all(|(name, topic)| trace.contains(&(name.to_string(), topic.clone())))
            })
    })
    .await;
    eprintln!("the message's trace: {covered:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_engine_one_message_is_one_trace_across_every_hop() {
    let dir = common::temp_dir("traces");
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let engine = EmbeddedEngine::open(&dir.join("log")).unwrap();
    let log = EmbeddedLog::open(engine, LogOptions::default()).unwrap();
    one_message_is_one_trace(Arc::new(log), &dir.join("store")).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_apache_kafka_one_message_is_one_trace_across_every_hop() {
    let dir = common::temp_dir("traces-kafka");
    let options = seqline_kafka::KafkaOptions {
        bootstrap: seqline_testkit::kafka::shared_bootstrap(),
        topic_prefix: format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        ..Default::default()
    };
    let log = seqline_kafka::KafkaLog::connect(options).await.unwrap();
    one_message_is_one_trace(Arc::new(log), &dir).await;
    std::fs::remove_dir_all(&dir).ok();
}
