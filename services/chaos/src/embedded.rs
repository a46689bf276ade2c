//! Embedded mode: one `seqline dev` process (every role, the embedded log and
//! store) that the faults kill, abort at failure points, stop and restart on
//! the same data directory and port.

use crate::metrics;
use crate::report::Tally;
use crate::schedule::{Fault, Point, Step};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `seqline dev` process under test.
pub struct DevProcess {
    bin: PathBuf,
    data: PathBuf,
    secret: String,
    /// `127.0.0.1:PORT`, fixed after the first start.
    pub addr: String,
    child: Option<Child>,
    /// Failure point hits of the process lifetimes that ended.
    banked: BTreeMap<String, u64>,
}

/// SIGABRT: how a process armed with `SEQLINE_FAILPOINTS` dies at its point.
const SIGABRT: i32 = 6;

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to `pid`.
pub fn signal(pid: u32, signal: &str) -> bool {
    seqline_testkit::servers::signal_pid(pid, signal)
}

impl DevProcess {
    /// Starts `bin dev` on a free loopback port with `data`.
    pub async fn start(bin: &Path, data: &Path, secret: &str) -> Result<DevProcess> {
        let mut p = DevProcess {
            bin: bin.to_path_buf(),
            data: data.to_path_buf(),
            secret: secret.to_string(),
            addr: "127.0.0.1:0".into(),
            child: None,
            banked: BTreeMap::new(),
        };
        p.spawn(None).await?;
        Ok(p)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process (again) on the same port and data; with
    /// `failpoints` (`point=abort@N`) armed when given.
    async fn spawn(&mut self, failpoints: Option<String>) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .context("opening the server log")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cmd = Command::new(&self.bin);
            cmd.args(["dev", "--listen", &self.addr, "--data"])
                .arg(&self.data)
                .env("SEQLINE_SECRET", &self.secret)
                .env(
                    "RUST_LOG",
                    std::env::var("SEQLINE_CHAOS_SERVER_LOG").unwrap_or("warn".into()),
                )
                .env_remove("SEQLINE_FAILPOINTS")
                .stdout(Stdio::piped())
                .stderr(log.try_clone().context("server log")?)
                .kill_on_drop(true);
            if let Some(f) = &failpoints {
                cmd.env("SEQLINE_FAILPOINTS", f);
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", self.bin.display()))?;
            let stdout = child.stdout.take().context("server stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let banner = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
            match banner {
                Ok(Ok(Some(line))) if line.starts_with("seqline dev listening on") => {
                    self.addr = line.rsplit(' ').next().unwrap_or_default().to_string();
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    self.child = Some(child);
                    return Ok(());
                }
                other => {
                    let _ = child.kill().await;
                    // The old port may still be held for a moment after a kill.
                    if Instant::now() > deadline {
                        bail!(
                            "seqline dev did not start ({other:?}); see {}",
                            self.data.with_extension("log").display()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Whether the process died on its own (not by a fault), and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL and wait (the failure point hits so far are banked first).
    pub async fn kill(&mut self) {
        if self.child.is_some() {
            let hits = self.failpoint_hits().await;
            self.bank(&hits);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM, wait for the drain (SIGKILL after 30 s).
    pub async fn terminate(&mut self) -> Result<()> {
        let hits = self.failpoint_hits().await;
        self.bank(&hits);
        let Some(mut c) = self.child.take() else { return Ok(()) };
        if let Some(pid) = c.id() {
            signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(30), c.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for seqline dev")?;
                if !status.success() {
                    bail!("seqline dev exited with {status} after SIGTERM");
                }
                Ok(())
            }
            Err(_) => {
                let _ = c.kill().await;
                bail!("seqline dev did not stop within 30 s of SIGTERM")
            }
        }
    }

    /// Starts it again (clean).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await;
        self.spawn(None).await
    }

    /// Injects one process fault, and leaves the process running.
    pub async fn inject(&mut self, fault: Fault, step: &Step, tally: &mut Tally) -> Result<()> {
        match fault {
            Fault::KillProcess => {
                // Anywhere in the next second: mid-batch, mid-push, mid-write.
                tokio::time::sleep(Duration::from_millis(step.pick % 1_000)).await;
                self.restart().await?;
            }
            Fault::TerminateProcess => {
                self.terminate().await?;
                self.spawn(None).await?;
            }
            Fault::StallProcess => {
                let pid = self.pid().context("no server process")?;
                signal(pid, "STOP");
                // Past the SDK's request timeout (10 s) for some of them.
                tokio::time::sleep(step.hold * 3).await;
                signal(pid, "CONT");
            }
            Fault::KillProcessAt(point) => self.abort_at(point, step, tally).await?,
            other => bail!("{other:?} is not a fault of embedded mode"),
        }
        Ok(())
    }

    /// Kills the process, restarts it armed to abort on the N-th hit of
    /// `point`, waits for that, and restarts it clean. A point not reached in
    /// 20 s is counted as missed and the process is killed instead.
    async fn abort_at(&mut self, point: Point, step: &Step, tally: &mut Tally) -> Result<()> {
        let nth = 1 + step.pick % 200;
        self.kill().await;
        self.spawn(Some(format!("{}=abort@{nth}", point.name()))).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.exited() {
                if status.signal() == Some(SIGABRT) {
                    tally.point_reached(point.name());
                    // It died on hit `nth` (the other points' hits of this
                    // short lifetime are not known).
                    self.bank(&[(point.name().to_string(), nth)]);
                } else {
                    tally.unexpected_exit(format!("armed at {}: exited with {status}", point.name()));
                }
                break;
            }
            if Instant::now() > deadline {
                tally.point_missed(point.name());
                self.kill().await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = None;
        self.spawn(None).await
    }

    /// Adds one lifetime's failure point hits to the bank.
    pub fn bank(&mut self, hits: &[(String, u64)]) {
        for (p, n) in hits {
            *self.banked.entry(p.clone()).or_default() += n;
        }
    }

    /// The hits banked over every lifetime so far.
    pub fn banked(&self) -> Vec<(String, u64)> {
        self.banked.iter().map(|(p, n)| (p.clone(), *n)).collect()
    }

    /// The failure points hit since the last start, from `/metrics`.
    pub async fn failpoint_hits(&self) -> Vec<(String, u64)> {
        metrics::failpoint_hits(&self.addr).await
    }
}
