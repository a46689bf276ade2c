//! A private `redis-server` for integration tests, on a free loopback port,
//! started by the test and killed (by its own PID) when dropped. If the
//! binary is missing the test fails and says how to install it. (Kafka and
//! Cassandra live in [`crate::kafka`] and [`crate::cassandra`].)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(20);

/// A server process this test started.
pub struct ServerProcess {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Option<Child>,
}

impl ServerProcess {
    /// The PID of the process (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, …) to this process only.
    pub fn signal(&self, signal: &str) -> bool {
        self.pid().is_some_and(|pid| signal_pid(pid, signal))
    }
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`, …) to `pid` only.
pub fn signal_pid(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `bash SCRIPT run DIR PORT…` (an engine script that `exec`s its
/// JVM, so the child's PID is the JVM's), output appended to
/// `DIR/stdout.log`. `watch_var` names the variable through which the
/// script watches this test process: the engine dies with it even if the
/// test is killed before dropping its server. `env` adds settings of the
/// script's own (e.g. a secure configuration).
pub fn launch_engine(
    script: &std::path::Path,
    dir: &std::path::Path,
    ports: &[u16],
    watch_var: &str,
    env: &[(String, String)],
) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stdout.log"))?;
    let err = log.try_clone()?;
    Command::new("bash")
        .arg(script)
        .arg("run")
        .arg(dir)
        .args(ports.iter().map(u16::to_string))
        .env(watch_var, std::process::id().to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Starts a private `redis-server` without persistence on a free port.
pub fn redis() -> ServerProcess {
    redis_on(free_port())
}

/// Starts a private `redis-server` on `port` (a restart reuses the old
/// one's port) and waits until it answers PING.
pub fn redis_on(port: u16) -> ServerProcess {
    let child = spawn_redis(&["--port", &port.to_string()]);
    await_redis(child, port, None, format!("127.0.0.1:{port}"))
}

/// Starts a private `redis-server` that requires `password` and takes TLS
/// connections (with the server certificate of `certs`) on the returned
/// address. It also listens on a plain port of its own, used only to see
/// that it is up (behind the same password).
pub fn redis_tls(certs: &crate::tls::TestCerts, password: &str) -> ServerProcess {
    let (plain, tls) = (free_port(), free_port());
    let path = |p: &std::path::Path| p.display().to_string();
    let child = spawn_redis(&[
        "--port",
        &plain.to_string(),
        "--tls-port",
        &tls.to_string(),
        "--tls-cert-file",
        &path(&certs.cert),
        "--tls-key-file",
        &path(&certs.key),
        "--tls-ca-cert-file",
        &path(&certs.ca),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        password,
    ]);
    await_redis(child, plain, Some(password), format!("127.0.0.1:{tls}"))
}

fn spawn_redis(args: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(args)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--protected-mode", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-server is not installed: run `make test-tools` (Debian package redis-server)")
        }
        Err(e) => panic!("could not start redis-server: {e}"),
    }
}

/// Waits until the server answers PING on `port`; `addr` is the address the
/// test is given.
fn await_redis(mut child: Child, port: u16, password: Option<&str>, addr: String) -> ServerProcess {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited at start-up: {status}");
        }
        if ping(port, password) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer PING within {START_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ServerProcess {
        addr,
        child: Some(child),
    }
}

fn ping(port: u16, password: Option<&str>) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut request = Vec::new();
    let mut expect = Vec::new();
    if let Some(p) = password {
        // RESP, so a password with spaces or quotes goes through unchanged.
        request.extend_from_slice(format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()).as_bytes());
        expect.extend_from_slice(b"+OK\r\n");
    }
    request.extend_from_slice(b"PING\r\n");
    expect.extend_from_slice(b"+PONG");
    let mut buf = [0u8; 32];
    let mut got = Vec::new();
    if s.write_all(&request).is_err() {
        return false;
    }
    while got.len() < expect.len() {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(&expect)
}
