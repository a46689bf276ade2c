//! Once a second: the server's RSS and CPU from /proc (when its pid is
//! known) and a progress line on stderr.

use crate::stats::{Counters, Stats};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux).
pub(crate) const TICKS_PER_SEC: f64 = 100.0;

/// Resource use of the server process during the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerStats {
    /// The process sampled.
    pub pid: u32,
    /// Largest resident set seen, KiB.
    pub max_rss_kib: u64,
    /// Resident set at the last sample, KiB.
    pub last_rss_kib: u64,
    /// CPU used between the first and last sample, percent of one core.
    pub cpu_percent: f64,
    /// Samples taken (0 when the process could not be read).
    pub samples: u64,
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // 3rd field of the line, utime the 14th and stime the 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Takes one RSS sample and updates the CPU share since `first`.
fn sample(out: Option<&mut ServerStats>, first: Option<(u64, Instant)>) {
    let Some(s) = out else { return };
    if let Some(rss) = rss_kib(s.pid) {
        s.max_rss_kib = s.max_rss_kib.max(rss);
        s.last_rss_kib = rss;
        s.samples += 1;
    }
    if let (Some((t0, at)), Some(t1)) = (first, cpu_ticks(s.pid)) {
        let secs = at.elapsed().as_secs_f64();
        if secs > 0.0 {
            s.cpu_percent = (t1.saturating_sub(t0) as f64 / TICKS_PER_SEC) / secs * 100.0;
        }
    }
}

/// The sampling task.
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<ServerStats>>,
}

impl Sampler {
    pub fn start(stats: Arc<Stats>, pid: Option<u32>, progress: bool) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut out = pid.map(|pid| ServerStats {
                pid,
                ..ServerStats::default()
            });
            let first = pid.and_then(cpu_ticks).map(|t| (t, Instant::now()));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_acked = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                sample(out.as_mut(), first);
                if progress {
                    let c = &stats.counters;
                    let acked = Counters::get(&c.acked);
                    eprintln!(
                        "[{:>6.1}s] sent {} acked {} recv {} (push {}) unknown {} | {} acks/s",
                        stats.elapsed().as_secs_f64(),
                        Counters::get(&c.invoked),
                        acked,
                        Counters::get(&c.pushed) + Counters::get(&c.pulled),
                        Counters::get(&c.pushed),
                        Counters::get(&c.unknown),
                        acked.saturating_sub(last_acked),
                    );
                    last_acked = acked;
                }
            }
            sample(out.as_mut(), first);
            out
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Option<ServerStats> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_process() {
        let pid = std::process::id();
        assert!(super::rss_kib(pid).is_some_and(|r| r > 0));
        assert!(super::cpu_ticks(pid).is_some());
        assert!(super::rss_kib(u32::MAX).is_none());
    }
}
