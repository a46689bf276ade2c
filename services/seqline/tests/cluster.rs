//! Cluster mode, end to end: the three roles as separate tasks on the
//! cluster adapters — a real Kafka-protocol broker (tansu) for the log, a
//! real `redis-server` for presence, the embedded store — with W1 and W2
//! traffic through real WebSocket connections and the consistency checker.
//! The persister and fanout are restarted mid-traffic (each restart is a new
//! consumer-group member: the broker rebalances, the new one reloads state).

#![allow(clippy::unwrap_used)]

mod common;

use common::{temp_dir, wait_for_acks, SECRET};
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::GatewayId;
use seqline_loadgen::{Mode, RunOptions, Workload};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Cluster {
    log: Arc<dyn Log>,
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    addr: String,
    gateway: (CancellationToken, JoinHandle<()>),
    persister: (CancellationToken, JoinHandle<()>),
    fanout: (CancellationToken, JoinHandle<()>),
    _broker: seqline_testkit::servers::ServerProcess,
    _redis: seqline_testkit::servers::ServerProcess,
}

fn spawn_persister(log: &Arc<dyn Log>, store: &Arc<dyn Store>) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let ports = seqline_persister::Ports {
        log: log.clone(),
        store: store.clone(),
    };
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        seqline_persister::run(Default::default(), ports, s)
            .await
            .expect("persister failed");
    });
    (stop, handle)
}

fn spawn_fanout(log: &Arc<dyn Log>, presence: &Arc<dyn Presence>) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let ports = seqline_fanout::Ports {
        log: log.clone(),
        presence: presence.clone(),
    };
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        seqline_fanout::run(Default::default(), ports, s)
            .await
            .expect("fanout failed");
    });
    (stop, handle)
}

async fn start_cluster() -> Cluster {
    let broker = seqline_testkit::servers::tansu();
    let redis = seqline_testkit::servers::redis();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let kafka = seqline_kafka::KafkaOptions {
        bootstrap: broker.addr.clone(),
        topic_prefix: format!("c{}.", &run[..8]),
        inbound: 4,
        deliveries: 4,
        user_events: 4,
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        message_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let log: Arc<dyn Log> = Arc::new(seqline_kafka::KafkaLog::connect(kafka).await.unwrap());
    let engine = seqline_embedded::EmbeddedEngine::open(&temp_dir("cluster-store")).unwrap();
    let store: Arc<dyn Store> = Arc::new(seqline_embedded::EmbeddedStore::open(engine).unwrap());
    let redis_opts =
        seqline_redis::RedisOptions::new(format!("redis://{}", redis.addr)).with_prefix(format!("c{}", &run[..8]));
    let presence: Arc<dyn Presence> = Arc::new(seqline_redis::RedisPresence::connect(redis_opts).await.unwrap());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = seqline_gateway::GatewayConfig {
        token_secret: SECRET.into(),
        id: GatewayId::parse("gw-a").unwrap(),
        ..Default::default()
    };
    let gw_ports = seqline_gateway::Ports {
        log: log.clone(),
        store: store.clone(),
        presence: presence.clone(),
    };
    let gw_stop = CancellationToken::new();
    let s = gw_stop.clone();
    let gateway = tokio::spawn(async move {
        seqline_gateway::serve(config, gw_ports, listener, s)
            .await
            .expect("gateway failed");
    });
    let persister = spawn_persister(&log, &store);
    let fanout = spawn_fanout(&log, &presence);
    Cluster {
        log,
        store,
        presence,
        addr,
        gateway: (gw_stop, gateway),
        persister,
        fanout,
        _broker: broker,
        _redis: redis,
    }
}

impl Cluster {
    fn options(&self, workload: Workload) -> RunOptions {
        let mut o = RunOptions::new(workload, SECRET);
        o.url = format!("ws://{}/v1/ws", self.addr);
        o.http = format!("http://{}", self.addr);
        o.mode = Mode::ClosedLoop { window: 4 };
        o.max_duration = Duration::from_secs(150);
        o.settle_timeout = Duration::from_secs(60);
        o
    }

    async fn wait_for_acks(&self, at_least: u64) {
        wait_for_acks(&self.addr, at_least, Duration::from_secs(120)).await
    }

    /// Stops the persister and fanout (draining their batch) and starts new ones.
    async fn restart_workers(&mut self) {
        let (stop, handle) = std::mem::replace(&mut self.persister, spawn_persister(&self.log, &self.store));
        stop.cancel();
        handle.await.unwrap();
        let (stop, handle) = std::mem::replace(&mut self.fanout, spawn_fanout(&self.log, &self.presence));
        stop.cancel();
        handle.await.unwrap();
    }

    async fn stop(self) {
        for (stop, handle) in [self.gateway, self.persister, self.fanout] {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_and_w2_on_kafka_and_redis_with_workers_restarted_mid_traffic() {
    let mut cluster = start_cluster().await;

    // W1, with the persister and fanout restarted twice while it runs.
    let mut w1 = cluster.options(Workload::W1 {
        users: 16,
        messages: 1_500,
        two_device_fraction: 0.25,
    });
    w1.seed = 11;
    let restarts = async {
        for round in 1..=2u64 {
            cluster.wait_for_acks(400 * round).await;
            cluster.restart_workers().await;
            eprintln!("restarted persister and fanout ({round})");
        }
    };
    let (report, ()) = tokio::join!(seqline_loadgen::run(w1), restarts);
    let report = report.expect("w1 run");
    eprintln!("{report}");
    assert!(report.acked >= 1_000, "too little acknowledged: {}", report.acked);
    assert_eq!(report.check.anomalies(), 0, "W1 checker:\n{}", report.check);
    assert!(report.passed(), "W1 did not pass:\n{report}");

    // W2 (groups) on the same cluster.
    let mut w2 = cluster.options(Workload::W2 {
        groups: 4,
        members: 8,
        senders: 3,
        messages: 800,
    });
    w2.seed = 12;
    let report = seqline_loadgen::run(w2).await.expect("w2 run");
    eprintln!("{report}");
    assert_eq!(report.check.anomalies(), 0, "W2 checker:\n{}", report.check);
    assert!(report.passed(), "W2 did not pass:\n{report}");
    cluster.stop().await;
}
