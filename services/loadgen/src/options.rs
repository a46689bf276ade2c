//! What a run does: workload, pacing, limits, where the history goes.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The traffic shape (the workloads of `make bench`).
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// Users chat one-to-one with random peers; some have two devices.
    W1 {
        /// Users.
        users: usize,
        /// Messages in total.
        messages: u64,
        /// Share of users with a second device (0.0-1.0).
        two_device_fraction: f64,
    },
    /// Small groups, a few active senders each.
    W2 {
        /// Groups.
        groups: usize,
        /// Members per group (distinct users).
        members: usize,
        /// Senders per group (the first members).
        senders: usize,
        /// Messages in total.
        messages: u64,
    },
    /// One device offline while its user's timeline grows to `entries`,
    /// then it connects and syncs to the head.
    W3 {
        /// Timeline entries to catch up on.
        entries: u64,
        /// Users sending to the offline one (one direct conversation each).
        senders: usize,
    },
    /// One huge group (read diffusion): `members` members, `online` of them
    /// connected and following it, one member sending `rate` messages per
    /// second (open loop) for `seconds`, the admin sending a high-priority
    /// announcement every `priority_every` seconds.
    W4 {
        /// Members of the group.
        members: usize,
        /// Connected devices of distinct members (besides sender and admin).
        online: usize,
        /// Messages per second of the sender.
        rate: f64,
        /// Length of the send phase, seconds.
        seconds: f64,
        /// Seconds between the admin's priority messages (0: none).
        priority_every: f64,
    },
}

impl Workload {
    /// Short name: `w1`, `w2`, `w3`.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::W1 { .. } => "w1",
            Workload::W2 { .. } => "w2",
            Workload::W3 { .. } => "w3",
            Workload::W4 { .. } => "w4",
        }
    }
}

/// How sends are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// At most `window` unacknowledged sends per device: maximum throughput.
    ClosedLoop {
        /// In-flight sends per device.
        window: usize,
    },
    /// A fixed offered rate over all sending devices; latency counts from the
    /// intended send time, so stalls are not hidden.
    OpenLoop {
        /// Messages per second, all devices together.
        rate: f64,
    },
}

impl Mode {
    /// Short description for the report.
    pub fn describe(&self) -> String {
        match self {
            Mode::ClosedLoop { window } => format!("closed loop, window {window}"),
            Mode::OpenLoop { rate } => format!("open loop, {rate}/s"),
        }
    }
}

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// WebSocket URL, `ws://127.0.0.1:7600/v1/ws`.
    pub url: String,
    /// HTTP base, `http://127.0.0.1:7600`.
    pub http: String,
    /// The server's token secret (tokens are minted per device).
    pub secret: String,
    /// The traffic shape.
    pub workload: Workload,
    /// The pacing.
    pub mode: Mode,
    /// Longest send phase; sends not started by then are skipped.
    pub max_duration: Duration,
    /// Where to write the history (JSON lines); in memory when `None`.
    pub history: Option<PathBuf>,
    /// Seed of every random choice of the plan.
    pub seed: u64,
    /// The server process, for RSS and CPU from /proc.
    pub server_pid: Option<u32>,
    /// How long each final step (outcomes, convergence, final reads) may take.
    pub settle_timeout: Duration,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// Group workloads: every this often, each group's admin removes a
    /// random member and adds them back (F12). Off when `None`.
    pub churn: Option<Duration>,
    /// Prefix of user ids (fresh per run when `None`, so runs never share users).
    pub run_id: Option<String>,
    /// Asked before the final reads, until it says yes: has the system
    /// processed everything it accepted? (In Kafka mode: no consumer group
    /// is behind.) Without it, the final reads wait only for every device's
    /// head to stay still for [`QUIET`].
    pub drained: Option<DrainCheck>,
    /// Set once the setup is done (every conversation created, every
    /// device connected) and the send phase begins, for a caller that
    /// must not disturb the setup (the chaos runner's faults).
    pub set_up: Option<Arc<AtomicBool>>,
    /// Once the caller sets it, no send starts (those in flight still end):
    /// a caller whose faults take an unknown time ends the send phase when
    /// they are done, with `max_duration` as the bound.
    pub stop_sending: Option<Arc<AtomicBool>>,
}

/// How long every device's head must stay the same before the final reads.
pub const QUIET: Duration = Duration::from_secs(3);

/// The future a [`DrainCheck`] returns: `Ok(true)` once drained.
pub type DrainFuture = Pin<Box<dyn Future<Output = anyhow::Result<bool>> + Send>>;

/// A drained signal of the system under test (see [`RunOptions::drained`]).
#[derive(Clone)]
pub struct DrainCheck(pub Arc<dyn Fn() -> DrainFuture + Send + Sync>);

impl DrainCheck {
    /// Wraps `f`.
    pub fn new(f: impl Fn() -> DrainFuture + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Asks once.
    pub async fn drained(&self) -> anyhow::Result<bool> {
        (self.0)().await
    }
}

impl std::fmt::Debug for DrainCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DrainCheck")
    }
}

impl RunOptions {
    /// Defaults for a local `seqline dev` with `secret`.
    pub fn new(workload: Workload, secret: impl Into<String>) -> Self {
        Self {
            url: "ws://127.0.0.1:7600/v1/ws".into(),
            http: "http://127.0.0.1:7600".into(),
            secret: secret.into(),
            workload,
            mode: Mode::ClosedLoop { window: 8 },
            max_duration: Duration::from_secs(120),
            history: None,
            seed: 1,
            server_pid: None,
            settle_timeout: Duration::from_secs(60),
            progress: false,
            churn: None,
            run_id: None,
            drained: None,
            set_up: None,
            stop_sending: None,
        }
    }
}
