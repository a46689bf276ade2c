//! Apache Kafka for tests: one KRaft node (broker and controller in one JVM)
//! run by `scripts/kafka.sh` from jars fetched from Maven Central.
//!
//! - [`shared_bootstrap`]: the broker of the whole test run (`make test`
//!   starts it, `SEQLINE_TEST_KAFKA` names it). Tests share it and keep apart
//!   by random topic prefixes and group names.
//! - [`KafkaServer`]: a private broker on free loopback ports with its own
//!   data directory, for a test that stops, kills or restarts it. Its data is
//!   on disk, so a SIGKILL and [`KafkaServer::restart`] is a real broker
//!   crash.
//!
//! A test whose broker is missing fails and says what to do; none passes by
//! not running.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a private broker may take to start (a cold JVM on a busy
/// two-core machine takes 5-15 s; a restart after a SIGKILL waits out the
/// dead broker's session, 4 s more).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// The line the broker logs once it has registered and been unfenced, so it
/// serves produce, fetch and group requests.
const READY: &str = "Kafka Server started";

/// The repository root (`scripts/kafka.sh` lives there).
fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn script() -> PathBuf {
    repo_root().join("scripts/kafka.sh")
}

/// The bootstrap address of the shared broker of this test run.
///
/// # Panics
/// When `SEQLINE_TEST_KAFKA` is not set: the test needs a real broker.
pub fn shared_bootstrap() -> String {
    match std::env::var("SEQLINE_TEST_KAFKA") {
        Ok(bootstrap) if !bootstrap.trim().is_empty() => bootstrap,
        _ => panic!(
            "this test needs Apache Kafka: run it through `make test` (which starts one), or \
             `scripts/kafka.sh start` and export SEQLINE_TEST_KAFKA=127.0.0.1:19092 (the address it prints)"
        ),
    }
}

/// Fetches the broker's jars once per process (`scripts/kafka.sh install`,
/// which skips the download when they are there and serializes concurrent
/// installs across processes).
fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script())
            .arg("install")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run bash {}: {e}", script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    if let Err(e) = result {
        panic!(
            "this test needs Apache Kafka's jars, and `scripts/kafka.sh install` failed (it needs java 17+, \
             mvn and Maven Central): {e}"
        );
    }
}

/// Two distinct free loopback ports (both held while picking).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free loopback port: {e}"));
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    (port(&a), port(&b))
}

/// The last `lines` lines of a file, for a failure message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A private Apache Kafka broker (KRaft, one node) this test started, on
/// free loopback ports with data in a directory of its own. Dropping it
/// kills the broker (by its PID) and removes the directory (kept, and its
/// path printed, when the test is panicking). A test process that dies
/// without dropping it takes the broker with it (`kafka.sh` watches the
/// test's PID).
pub struct KafkaServer {
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
    /// The SASL_SSL listener's port, and the script's settings for it.
    secure: Option<(u16, Vec<(String, String)>)>,
}

impl KafkaServer {
    /// Starts a fresh broker and waits until it serves requests.
    ///
    /// # Panics
    /// When the jars cannot be installed, or the broker exits or is not ready
    /// within two minutes (the message names its log).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a broker as [`KafkaServer::start`] does, with a second
    /// listener that takes SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) over
    /// TLS for `users` (`(name, password)`), its certificate from `certs`
    /// (see [`KafkaServer::secure_bootstrap`]).
    pub fn start_secure(certs: &crate::tls::TestCerts, users: &[(&str, &str)]) -> Self {
        let users: Vec<String> = users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
        let env = vec![
            (
                "SEQLINE_KAFKA_TLS_KEYSTORE".to_string(),
                certs.key_and_cert.display().to_string(),
            ),
            ("SEQLINE_KAFKA_SASL_USERS".to_string(), users.join(" ")),
        ];
        Self::start_with(Some(env))
    }

    fn start_with(secure_env: Option<Vec<(String, String)>>) -> Self {
        ensure_installed();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (port, controller_port) = free_ports();
            let id = uuid::Uuid::new_v4().simple().to_string();
            let dir = std::env::temp_dir().join(format!("seqline-kafka-{}-{}", std::process::id(), &id[..8]));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
            let secure = secure_env.clone().map(|mut env| {
                let port = free_ports().0;
                env.push(("SEQLINE_KAFKA_SASL_SSL_PORT".to_string(), port.to_string()));
                (port, env)
            });
            let mut server = Self {
                dir,
                port,
                controller_port,
                child: None,
                secure,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                // Another process took a port between picking and binding.
                Err(e) if attempt < 3 && e.contains("Address already in use") => {
                    eprintln!("kafka: a port was taken, trying others: {e}");
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `127.0.0.1:PORT` of the SASL_SSL listener of a broker started with
    /// [`KafkaServer::start_secure`].
    pub fn secure_bootstrap(&self) -> Option<String> {
        self.secure.as_ref().map(|(port, _)| format!("127.0.0.1:{port}"))
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PID of the broker's JVM while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's data directory (its log is `server.log` in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`…) to this broker only.
    ///
    /// # Panics
    /// When the broker is not running or `kill` fails.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the broker is not running");
        assert!(crate::servers::signal_pid(pid, signal), "kill -{signal} {pid} failed");
    }

    /// Kills the broker (SIGKILL, a crash: nothing is flushed or handed over)
    /// and waits until it is gone. Its data stays for [`KafkaServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same data and ports (killing it first
    /// if it still runs) and waits until it serves requests.
    ///
    /// # Panics
    /// As [`KafkaServer::start`].
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn_and_wait() {
            panic!("restarting: {e}");
        }
    }

    /// Runs `scripts/kafka.sh run` (which formats the data directory the first
    /// time and execs the JVM) and waits for the ready line in this run's part
    /// of the log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = self.log_file();
        let from = file_len(&log);
        let stdout_path = self.dir.join("stdout.log");
        let started = Instant::now();
        let ports = [self.port, self.controller_port];
        let env = self.secure.as_ref().map_or(&[][..], |(_, env)| env.as_slice());
        let child = crate::servers::launch_engine(&script(), &self.dir, &ports, "SEQLINE_KAFKA_WATCH_PID", env)
            .map_err(|e| {
                format!(
                    "could not run bash {} in {}: {e}",
                    script().display(),
                    self.dir.display()
                )
            })?;
        let child = self.child.insert(child);
        loop {
            if ready_since(&log, from) {
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "kafka (scripts/kafka.sh run {} {} {}) exited during start-up ({status}); see {} and {}:\n{}\n{}",
                    self.dir.display(),
                    self.port,
                    self.controller_port,
                    stdout_path.display(),
                    log.display(),
                    tail(&stdout_path, 20),
                    tail(&log, 10),
                ));
            }
            if started.elapsed() > START_DEADLINE {
                return Err(format!(
                    "kafka on 127.0.0.1:{} was not ready within {START_DEADLINE:?}; see {}:\n{}",
                    self.port,
                    log.display(),
                    tail(&log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the broker logged [`READY`] past byte `from` of its log.
fn ready_since(log: &Path, from: u64) -> bool {
    let Ok(mut file) = File::open(log) else {
        return false;
    };
    // The log rolls at 5 MB: a shorter file is a new one.
    let from = if file_len(log) < from { 0 } else { from };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(from)).is_ok()
        && file.read_to_end(&mut bytes).is_ok()
        && String::from_utf8_lossy(&bytes).contains(READY)
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "kafka: keeping the data and logs of the failed test in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
