//! Fencing (fault F9 of the proof plan), in one process on a real
//! Kafka-protocol broker: sequencer A stalls while holding a batch (paused on
//! purpose at the failure point before its store write), sequencer B takes
//! its partitions over and stores the same commands, then A wakes up and
//! tries to write its stale batch. A's compare-and-set on the conversation
//! heads must be refused (the fence counter moves), and the history the
//! clients saw must stay clean: nothing lost, duplicated or reordered.
//!
//! The issue asks for two persister *processes* with SIGSTOP; they need a
//! store both can reach, which here would be ScyllaDB (not installable on
//! this machine). The stall below is the same event seen from the store: a
//! writer that lost its partition comes back with an old head.

#![allow(clippy::unwrap_used)]

mod common;

use common::{metric, temp_dir, wait_for_acks, SECRET};
use seqline_core::failpoint::{self, names};
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::GatewayId;
use seqline_loadgen::{Mode, RunOptions, Workload};
use seqline_telemetry::metrics::Counter;
use seqline_telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn acks(addr: &str) -> u64 {
    metric(addr, "seqline_gateway_acks_total").await.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sequencer_is_fenced_off_when_it_wakes_up() {
    let broker = seqline_testkit::servers::tansu();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let kafka = seqline_kafka::KafkaOptions {
        bootstrap: broker.addr.clone(),
        topic_prefix: format!("f{}.", &run[..8]),
        inbound: 2,
        deliveries: 2,
        user_events: 2,
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        message_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let log: Arc<dyn Log> = Arc::new(seqline_kafka::KafkaLog::connect(kafka).await.unwrap());
    let engine = seqline_embedded::EmbeddedEngine::open(&temp_dir("fencing")).unwrap();
    let store: Arc<dyn Store> = Arc::new(seqline_embedded::EmbeddedStore::open(engine).unwrap());
    let presence: Arc<dyn Presence> = Arc::new(seqline_embedded::MemoryPresence::new());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = seqline_gateway::GatewayConfig {
        token_secret: SECRET.into(),
        id: GatewayId::parse("gw-f").unwrap(),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let gw = seqline_gateway::Ports {
        log: log.clone(),
        store: store.clone(),
        presence: presence.clone(),
    };
    tokio::spawn(seqline_gateway::serve(config, gw, listener, stop.clone()));
    let fan = seqline_fanout::Ports {
        log: log.clone(),
        presence: presence.clone(),
    };
    tokio::spawn(seqline_fanout::run(Default::default(), fan, stop.clone()));
    let persister = seqline_persister::Ports {
        log: log.clone(),
        store: store.clone(),
    };
    let a_stop = CancellationToken::new();
    let a = tokio::spawn(seqline_persister::run(
        Default::default(),
        persister.clone(),
        a_stop.clone(),
    ));

    let mut opts = RunOptions::new(
        Workload::W1 {
            users: 12,
            messages: 1_200,
            two_device_fraction: 0.25,
        },
        SECRET,
    );
    opts.url = format!("ws://{addr}/v1/ws");
    opts.http = format!("http://{addr}");
    opts.mode = Mode::ClosedLoop { window: 4 };
    opts.settle_timeout = Duration::from_secs(60);
    opts.seed = 21;
    let fenced_before = Metrics::global().counter(Counter::FenceRefusals);

    let scenario = async {
        wait_for_acks(&addr, 200, Duration::from_secs(120)).await;
        // A stalls holding its next batch.
        let gate = failpoint::pause_next(names::SEQUENCER_BEFORE_STORE);
        gate.reached().await;
        // B joins with the same group: the log moves every partition to it,
        // and B stores the commands A is holding.
        let b_stop = CancellationToken::new();
        let b = tokio::spawn(seqline_persister::run(
            Default::default(),
            persister.clone(),
            b_stop.clone(),
        ));
        let now = acks(&addr).await;
        wait_for_acks(&addr, now + 100, Duration::from_secs(120)).await;
        // A wakes up with its old heads.
        gate.release();
        let a_result = tokio::time::timeout(Duration::from_secs(60), a)
            .await
            .expect("A stops after being fenced");
        eprintln!("stalled sequencer ended with {a_result:?}");
        (b_stop, b)
    };
    let (report, (b_stop, b)) = tokio::join!(seqline_loadgen::run(opts), scenario);
    let report = report.expect("w1 run");
    eprintln!("{report}");
    let fenced = Metrics::global().counter(Counter::FenceRefusals) - fenced_before;
    assert!(fenced > 0, "the stale writer was never refused by the store");
    assert!(report.acked >= 1_000, "too little acknowledged: {}", report.acked);
    assert_eq!(report.check.anomalies(), 0, "checker:\n{}", report.check);
    assert!(report.passed(), "run did not pass:\n{report}");
    b_stop.cancel();
    a_stop.cancel();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), b).await;
}
