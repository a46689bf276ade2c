//! The final phase: once the sends are over, every device must reach its
//! server head (`converged`), then re-reads its whole timeline from 0
//! (`final`), so the checker can compare what everyone ends up with.

use crate::options::{DrainCheck, QUIET};
use crate::setup::{retry, LiveDevice};
use crate::stats::Stats;
use seqline_checker::{body_hash, EventBody, FinalEntry, Scope};
use seqline_client::{ClientError, SyncAnswer};
use seqline_core::model::MessageKind;
use std::time::{Duration, Instant};

/// Waits until the device's cursor reaches the head the server reports and
/// it received every acked message of its conversations (acks come before
/// the timeline fan-out, so the head alone can still move); records
/// `converged` when it does.
pub(crate) async fn converge(stats: &Stats, dev: &LiveDevice, deadline: Instant, record: bool) -> bool {
    let mut status = dev.client.watch_status();
    while Instant::now() < deadline {
        let Ok(head) = retry(deadline, || dev.client.ping()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2));
        // Map the guard away at once: holding it would block the SDK task.
        let reached = tokio::time::timeout(left, status.wait_for(|s| s.cursor >= head))
            .await
            .is_ok_and(|r| r.is_ok());
        let complete = dev.member_of.iter().all(|c| dev.seen.reached(c, stats.acked_max(c)));
        if reached && complete {
            if record {
                stats.record(dev.user.as_str(), dev.device.as_str(), EventBody::Converged {});
            }
            return true;
        }
        if reached {
            // Entries still on their way to the timeline: look again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    false
}

/// Reads the device's timeline from the start and records it as its final
/// user view; returns the number of entries, or why it could not.
pub(crate) async fn final_read(stats: &Stats, dev: &LiveDevice, deadline: Instant) -> Result<usize, ClientError> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        match retry(deadline, || dev.client.sync_page(after, None)).await? {
            SyncAnswer::Page {
                entries: page, more, ..
            } => {
                let Some(last) = page.last().map(|e| e.user_seq.0) else {
                    break;
                };
                after = last;
                entries.extend(page.into_iter().map(|e| {
                    let m = e.message;
                    FinalEntry {
                        conv: m.conv.to_string(),
                        conv_seq: m.conv_seq.0,
                        client_msg_id: m.client_msg_id.to_string(),
                        user_seq: Some(e.user_seq.0),
                        body_hash: body_hash(&m.body),
                        system: m.kind != MessageKind::Text,
                    }
                }));
                if !more {
                    break;
                }
            }
            SyncAnswer::Reset { head } => {
                return Err(ClientError::Protocol(format!(
                    "reading from 0 was answered with a reset to {head}"
                )))
            }
        }
    }
    let n = entries.len();
    stats.record(
        dev.user.as_str(),
        dev.device.as_str(),
        EventBody::Final {
            scope: Scope::User,
            conv: None,
            entries,
        },
    );
    Ok(n)
}

/// What the final phase found.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub converged: usize,
    pub not_converged: usize,
    pub final_views: usize,
    pub final_errors: Vec<String>,
    pub quiet_secs: Option<f64>,
}

/// Every device's head as the server reports it (`None`: no answer by
/// `deadline`).
async fn heads(devices: &[LiveDevice], deadline: Instant) -> Vec<Option<u64>> {
    futures_util::future::join_all(
        devices
            .iter()
            .map(|d| async move { retry(deadline, || d.client.ping()).await.ok() }),
    )
    .await
}

/// Waits until the system is quiet: the drained check (if any) says yes,
/// and every device's head stays the same for [`QUIET`], with the check
/// still saying yes at the end. Convergence alone is not enough before the
/// final reads: a send whose client gave up on it (unknown outcome) may
/// still sit in the log and be sequenced later, and a final read taken
/// before it would differ from one taken after. Returns the heads, or why
/// the system did not go quiet by `deadline`.
async fn quiesce(
    devices: &[LiveDevice],
    drained: Option<&DrainCheck>,
    deadline: Instant,
) -> Result<Vec<Option<u64>>, String> {
    let is_drained = || async {
        match drained {
            None => Ok(true),
            Some(check) => check.drained().await.map_err(|e| format!("{e:#}")),
        }
    };
    let mut why = "not asked".to_string();
    while Instant::now() < deadline {
        match is_drained().await {
            Ok(true) => {}
            not_yet => {
                why = match not_yet {
                    Err(e) => format!("the drained check failed: {e}"),
                    _ => "the system still had a backlog".into(),
                };
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        let before = heads(devices, deadline).await;
        tokio::time::sleep(QUIET).await;
        let after = heads(devices, deadline).await;
        if before == after && after.iter().all(Option::is_some) && is_drained().await == Ok(true) {
            return Ok(after);
        }
        why = "heads still moving or unanswered".into();
    }
    Err(why)
}

/// How much longer than the settle timeout convergence may take while
/// devices keep making progress (a server working off a fan-out backlog).
pub(crate) const PROGRESS_ROUNDS: u32 = 10;

fn total_cursor(devices: &[LiveDevice]) -> u64 {
    devices.iter().map(|d| d.client.status().cursor).sum()
}

/// Heal, convergence of every device, quiet (see [`quiesce`]), final
/// reads, and a check that no head moved during them. Convergence gets
/// `settle_timeout` at a time, again and again while the devices' cursors
/// still move, up to [`PROGRESS_ROUNDS`] times.
pub(crate) async fn settle(
    stats: &Stats,
    devices: &[LiveDevice],
    settle_timeout: Duration,
    final_reads: bool,
    drained: Option<&DrainCheck>,
) -> Settled {
    stats.record("", "", EventBody::Heal {});
    let mut out = Settled::default();
    let mut done = vec![false; devices.len()];
    for _ in 0..PROGRESS_ROUNDS {
        let before = total_cursor(devices);
        let deadline = Instant::now() + settle_timeout;
        let round = devices
            .iter()
            .zip(&done)
            .map(|(d, ok)| async move { *ok || converge(stats, d, deadline, true).await });
        done = futures_util::future::join_all(round).await;
        if done.iter().all(|ok| *ok) || total_cursor(devices) == before {
            break;
        }
        tracing::info!(
            converged = done.iter().filter(|ok| **ok).count(),
            "devices still catching up; waiting another round"
        );
    }
    out.converged = done.iter().filter(|ok| **ok).count();
    out.not_converged = done.len() - out.converged;
    if !final_reads {
        return out;
    }
    let started = Instant::now();
    let deadline = started + settle_timeout;
    let quiet = match quiesce(devices, drained, deadline).await {
        Ok(heads) => {
            out.quiet_secs = Some(started.elapsed().as_secs_f64());
            Some(heads)
        }
        Err(why) => {
            out.final_errors
                .push(format!("the system did not go quiet before the final reads: {why}"));
            None
        }
    };
    let deadline = Instant::now() + settle_timeout;
    let reads = futures_util::future::join_all(devices.iter().map(|d| final_read(stats, d, deadline))).await;
    for (d, r) in devices.iter().zip(reads) {
        match r {
            Ok(_) => out.final_views += 1,
            Err(e) => out.final_errors.push(format!("{}/{}: {e}", d.user, d.device)),
        }
    }
    // The reads compare devices with each other: they mean something only
    // if nothing was written while they ran.
    if let Some(before) = quiet {
        let after = heads(devices, deadline).await;
        for ((d, b), a) in devices.iter().zip(before).zip(after) {
            if a != b {
                out.final_errors.push(format!(
                    "{}/{}: head moved from {b:?} to {a:?} during the final reads",
                    d.user, d.device
                ));
            }
        }
    }
    out
}
