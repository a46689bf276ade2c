//! Apache Cassandra for tests: the CQL server the ScyllaDB adapter is tested
//! against (ScyllaDB cannot be installed on the development machines).
//!
//! - [`shared_nodes`]: the node of the whole test run, started once by
//!   `make test` or by hand with `scripts/cassandra.sh start`, named by
//!   `SEQLINE_TEST_CASSANDRA`. Without it a test fails and says how to get one.
//! - [`CassandraServer`]: a private node of one test (free loopback ports, a
//!   data directory of its own removed on drop), for faults: SIGKILL, SIGSTOP,
//!   restart on the same data. Started through `scripts/cassandra.sh run`,
//!   whose `exec java` makes the child's PID the JVM's.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable naming the shared node, `127.0.0.1:PORT`.
pub const SHARED_VAR: &str = "SEQLINE_TEST_CASSANDRA";

/// How long a private node may take to accept CQL (a cold JVM on 2 cores
/// takes 10-30 s).
pub const START_DEADLINE: Duration = Duration::from_secs(180);

/// The shared node of the test run (`host:port` of its CQL port), from
/// `SEQLINE_TEST_CASSANDRA`; panics saying how to start one when unset.
pub fn shared_nodes() -> String {
    match std::env::var(SHARED_VAR) {
        Ok(nodes) if !nodes.trim().is_empty() => nodes.trim().to_string(),
        _ => panic!(
            "this test needs Apache Cassandra (standing in for ScyllaDB): run it through `make test` \
             (which starts one), or `scripts/cassandra.sh start` and \
             export {SHARED_VAR}=127.0.0.1:19042 (the address it prints)"
        ),
    }
}

/// The repository root (scripts/ lives there).
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    root.canonicalize().unwrap_or(root)
}

fn script() -> PathBuf {
    repo_root().join("scripts/cassandra.sh")
}

/// Fetches Cassandra's jars once per process (`scripts/cassandra.sh
/// install`; it takes a lock, so test processes installing at once wait
/// for one another).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script())
            .arg("install")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script().display()));
        assert!(
            out.status.success(),
            "`scripts/cassandra.sh install` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    (port(&a), port(&b))
}

/// A private Cassandra node of one test.
pub struct CassandraServer {
    dir: PathBuf,
    native_port: u16,
    storage_port: u16,
    child: Option<Child>,
    /// Settings for `cassandra.sh run` (password authentication, TLS).
    env: Vec<(String, String)>,
}

impl CassandraServer {
    /// Starts a node on free loopback ports with a fresh data directory and
    /// waits (at most [`START_DEADLINE`]) until it accepts connections on
    /// its CQL port. Blocks: from async code, call it in `spawn_blocking`.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Starts a node as [`CassandraServer::start`] does, that asks clients
    /// for a password (user `cassandra`, password `cassandra`) and, with
    /// `tls`, takes only TLS connections with the server certificate of
    /// those certificates.
    pub fn start_secure(tls: Option<&crate::tls::TestCerts>) -> Self {
        let mut env = vec![("SEQLINE_CASSANDRA_AUTH".to_string(), "password".to_string())];
        if let Some(certs) = tls {
            env.push((
                "SEQLINE_CASSANDRA_TLS_KEYSTORE".to_string(),
                certs.key_and_cert.display().to_string(),
            ));
        }
        Self::start_with(env)
    }

    fn start_with(env: Vec<(String, String)>) -> Self {
        install();
        let (native_port, storage_port) = free_ports();
        let dir = std::env::temp_dir().join(format!(
            "seqline-cassandra-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut server = Self {
            dir,
            native_port,
            storage_port,
            child: None,
            env,
        };
        server.launch();
        server
    }

    /// `127.0.0.1:PORT` of the CQL port.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.native_port)
    }

    /// The node's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Cassandra's log (`system.log`), where start-up failures are told.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("logs/system.log")
    }

    /// The JVM's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, …) to this node's JVM only.
    pub fn signal(&self, signal: &str) -> bool {
        self.pid().is_some_and(|pid| crate::servers::signal_pid(pid, signal))
    }

    /// SIGKILLs the JVM (no shutdown, no flush: a real crash) and waits
    /// until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the node if it runs, then starts it again on the same data
    /// and ports, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        let ports = [self.native_port, self.storage_port];
        let child =
            crate::servers::launch_engine(&script(), &self.dir, &ports, "SEQLINE_CASSANDRA_WATCH_PID", &self.env)
                .unwrap_or_else(|e| panic!("starting {} in {}: {e}", script().display(), self.dir.display()));
        self.child = Some(child);
        self.wait_accepting();
    }

    fn wait_accepting(&mut self) {
        let started = Instant::now();
        let addr: SocketAddr = match self.addr().parse() {
            Ok(a) => a,
            Err(e) => panic!("bad address {}: {e}", self.addr()),
        };
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "cassandra on {} exited at start-up ({status}); see {} and {}",
                    self.addr(),
                    self.log_file().display(),
                    self.dir.join("stdout.log").display()
                );
            }
            if started.elapsed() > START_DEADLINE {
                self.kill();
                panic!(
                    "cassandra did not accept CQL on {} within {START_DEADLINE:?} (killed it); see {}",
                    self.addr(),
                    self.log_file().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for CassandraServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("cassandra's data and logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
