//! What a run measured and what the checker found; a table for people
//! (`Display`) and JSON for machines (`Serialize`).

use crate::procstat::ServerStats;
use hdrhistogram::Histogram;
use seqline_checker::{CheckId, Report};
use serde::Serialize;
use std::fmt;

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// The server's CPU over the send phase: what the messages cost it, setup
/// and the final reads left out.
#[derive(Clone, Debug, Serialize)]
pub struct SendCpu {
    /// Percent of one core.
    pub percent: f64,
    /// Microseconds of server CPU per committed message.
    pub us_per_message: f64,
}

/// W3: how fast the offline device caught up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CatchUp {
    /// Timeline entries synced.
    pub entries: u64,
    /// From connect to cursor = head, seconds.
    pub secs: f64,
    /// Entries per second.
    pub entries_per_sec: f64,
}

/// W4: the huge group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HugeGroup {
    /// Members of the group.
    pub members: usize,
    /// Online devices following it (sender and admin aside).
    pub online: usize,
    /// Offered rate of the sender, messages per second.
    pub rate: f64,
    /// Seconds between priority messages.
    pub priority_every: f64,
    /// Seconds to create the group and add every member.
    pub setup_secs: f64,
    /// Server CPU over the send phase only, percent of one core (setup
    /// excluded: adding members is not the per-message cost).
    pub send_cpu_percent: f64,
    /// Server CPU per message sent in the send phase, microseconds.
    pub cpu_us_per_message: f64,
    /// Server resident set at the end of the send phase, KiB.
    pub send_rss_kib: u64,
    /// Seconds until every online device followed the group.
    pub follow_secs: f64,
    /// Online devices following the group when the sends started.
    pub following: usize,
    /// Highest conv_seq of the group at the end (membership messages included).
    pub head: u64,
    /// Ordinary messages sent.
    pub sent: u64,
    /// Priority messages sent.
    pub priority_sent: u64,
    /// Messages delivered to online devices (sent by others).
    pub deliveries: u64,
    /// Deliveries per second over the send phase.
    pub deliveries_per_sec: f64,
    /// `priority` pushes received.
    pub priority_pushes: u64,
    /// Intended send time to the device having the message, per device.
    pub delivery_latency: LatencySummary,
    /// Intended send time to the `priority` push, per device.
    pub priority_latency: LatencySummary,
}

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// `w1`, `w2`, `w3`.
    pub workload: String,
    /// Pacing.
    pub mode: String,
    /// The user-id prefix of this run.
    pub run_id: String,
    /// Seed of the plan.
    pub seed: u64,
    /// Users.
    pub users: usize,
    /// Devices (connections).
    pub devices: usize,
    /// Conversations created.
    pub conversations: usize,
    /// Length of the send phase (first send to last outcome), seconds.
    pub send_secs: f64,
    /// Sends handed to the SDK.
    pub invoked: u64,
    /// Sends acknowledged.
    pub acked: u64,
    /// Sends refused for good.
    pub failed: u64,
    /// Sends whose outcome stayed unknown.
    pub unknown: u64,
    /// Times the server refused a send for now (`rate_limited`, e.g. by
    /// admission control, or `unavailable`) and the SDK resent it with the
    /// same id: not a loss.
    pub rate_limited: u64,
    /// Entries pushed to devices.
    pub pushed: u64,
    /// Entries devices pulled (sync after a gap, a reconnect or a pong).
    pub pulled: u64,
    /// Reconnections (connections beyond each device's first).
    pub reconnects: u64,
    /// Resets answered by the server.
    pub resets: u64,
    /// Membership changes made while messages flowed.
    pub member_changes: u64,
    /// Accepted commands per second (sends handed to the SDK).
    pub accepted_per_sec: f64,
    /// Committed (acknowledged) messages per second.
    pub committed_per_sec: f64,
    /// Pushed deliveries per second.
    pub deliveries_per_sec: f64,
    /// Send (intended time in open loop) to ack.
    pub ack_latency: LatencySummary,
    /// Send on one device to receipt on another.
    pub e2e_latency: LatencySummary,
    /// W3 only.
    pub catch_up: Option<CatchUp>,
    /// W4 only.
    pub w4: Option<HugeGroup>,
    /// Devices that reached their head after the heal.
    pub converged: usize,
    /// Devices that did not in time.
    pub not_converged: usize,
    /// Final views recorded.
    pub final_views: usize,
    /// Seconds from convergence until the system was quiet enough for the
    /// final reads (drained, every head still), when it got there.
    pub quiet_secs: Option<f64>,
    /// Devices whose final read failed, and why.
    pub final_errors: Vec<String>,
    /// Server RSS and CPU, when its pid was given.
    pub server: Option<ServerStats>,
    /// Server CPU over the send phase (W1-W3, when its pid was given).
    pub send_cpu: Option<SendCpu>,
    /// The history file, when written.
    pub history: Option<String>,
    /// The checker's verdict.
    pub check: Report,
}

impl RunReport {
    /// Whether the run is clean: no anomaly, everyone converged and read.
    pub fn passed(&self) -> bool {
        self.check.anomalies() == 0 && self.not_converged == 0 && self.final_errors.is_empty()
    }
}

fn latency_row(f: &mut fmt::Formatter<'_>, name: &str, l: &LatencySummary) -> fmt::Result {
    writeln!(
        f,
        "  {name:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2}   (n={})",
        l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
    )
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seqline-loadgen {} ({}), run {}, seed {}",
            self.workload, self.mode, self.run_id, self.seed
        )?;
        writeln!(
            f,
            "  {} users, {} devices, {} conversations; send phase {:.2}s",
            self.users, self.devices, self.conversations, self.send_secs
        )?;
        writeln!(f, "  {:<22} {:>12} {:>12}", "", "total", "per second")?;
        writeln!(
            f,
            "  {:<22} {:>12} {:>12.0}",
            "accepted commands", self.invoked, self.accepted_per_sec
        )?;
        writeln!(
            f,
            "  {:<22} {:>12} {:>12.0}",
            "committed (acked)", self.acked, self.committed_per_sec
        )?;
        writeln!(
            f,
            "  {:<22} {:>12} {:>12.0}",
            "deliveries (pushed)", self.pushed, self.deliveries_per_sec
        )?;
        writeln!(
            f,
            "  refused {}, unknown outcome {}, rate_limited (resent) {}, pulled {}, reconnects {}, resets {}, member changes {}",
            self.failed,
            self.unknown,
            self.rate_limited,
            self.pulled,
            self.reconnects,
            self.resets,
            self.member_changes
        )?;
        writeln!(
            f,
            "  {:<22} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p99", "p99.9", "max"
        )?;
        latency_row(f, "ack", &self.ack_latency)?;
        latency_row(f, "end-to-end", &self.e2e_latency)?;
        if let Some(h) = &self.w4 {
            writeln!(
                f,
                "  huge group: {} members, {} online following ({} at start, after {:.1}s), head {}; setup {:.1}s",
                h.members, h.online, h.following, h.follow_secs, h.head, h.setup_secs
            )?;
            writeln!(
                f,
                "  sent {} at {}/s, priority {} every {}s; deliveries {} ({:.0}/s), priority pushes {}",
                h.sent,
                h.rate,
                h.priority_sent,
                h.priority_every,
                h.deliveries,
                h.deliveries_per_sec,
                h.priority_pushes
            )?;
            latency_row(f, "delivery (per device)", &h.delivery_latency)?;
            latency_row(f, "priority push", &h.priority_latency)?;
            writeln!(
                f,
                "  send phase: server CPU {:.0}% of a core, {:.0} µs per message, RSS {:.0} MiB",
                h.send_cpu_percent,
                h.cpu_us_per_message,
                h.send_rss_kib as f64 / 1024.0
            )?;
        }
        if let Some(c) = &self.catch_up {
            writeln!(
                f,
                "  catch-up: {} entries in {:.2}s = {:.0} entries/s",
                c.entries, c.secs, c.entries_per_sec
            )?;
        }
        match &self.server {
            Some(s) => writeln!(
                f,
                "  server pid {}: max RSS {:.1} MiB, last {:.1} MiB, CPU {:.0}% of a core ({} samples)",
                s.pid,
                s.max_rss_kib as f64 / 1024.0,
                s.last_rss_kib as f64 / 1024.0,
                s.cpu_percent,
                s.samples
            )?,
            None => writeln!(f, "  server: no pid given")?,
        }
        if let Some(c) = &self.send_cpu {
            writeln!(
                f,
                "  send phase: server CPU {:.0}% of a core, {:.0} µs per committed message",
                c.percent, c.us_per_message
            )?;
        }
        write!(
            f,
            "  converged {}/{}, final views {}",
            self.converged,
            self.converged + self.not_converged,
            self.final_views
        )?;
        match self.quiet_secs {
            Some(s) => writeln!(f, " (read once quiet, {s:.1}s after convergence)")?,
            None => writeln!(f)?,
        }
        for e in &self.final_errors {
            writeln!(f, "  final read failed: {e}")?;
        }
        let counts: Vec<String> = CheckId::ALL
            .iter()
            .map(|c| format!("{c}={}", self.check.count(*c)))
            .collect();
        writeln!(f, "  checker: {}", counts.join(" "))?;
        for c in CheckId::ALL {
            for w in self.check.witnesses(c) {
                writeln!(f, "    {c}: {w}")?;
            }
        }
        for n in &self.check.notes {
            writeln!(f, "  note: {n}")?;
        }
        if let Some(h) = &self.history {
            writeln!(f, "  history: {h}")?;
        }
        write!(f, "  verdict: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
