//! The fanout role: consumes user events (timeline appends, key = user),
//! looks up which gateways hold the user's devices, and sends each gateway
//! one package per device with that device's new entries, in order.
//!
//! Pushes are an optimisation: the store is the source of truth. A device
//! that is offline gets nothing here and syncs when it reconnects; a package
//! lost in a crash is noticed by the device's head check.
//!
//! # Layout
//! - [`FanoutConfig`] — settings.
//! - [`route`] — the pure packaging step.
//! - [`notices`] — the conversation lane (read-diffusion notices).
//! - `priority` — the priority lane (high-priority messages in full).
//! - [`run`] — the three lanes, each a worker of the shared runtime
//!   (`seqline-worker`: consume → route → append → commit), supervised together.

pub mod notices;
mod priority;
mod route;

pub use route::route;

use seqline_core::ports::{Log, Presence};
use seqline_core::records::{LogRecord, Topic};
use seqline_core::Result;
use seqline_worker::{consume, unexpected, Handler, Input, Options, Tasks};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings of the fanout role.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutConfig {
    /// Most user events handled in one batch.
    pub batch_max: usize,
    /// Consumer group.
    pub group: String,
    /// Most entries in one package fragment.
    pub package_max_entries: usize,
    /// Consumer group of the conversation lane (read-diffusion notices).
    pub conv_group: String,
    /// Consumer group of the priority lane (high-priority messages of
    /// read-diffusion conversations, on their own topic).
    pub priority_group: String,
    /// At most one ordinary "conversation advanced" notice per conversation
    /// per this interval; high-priority messages are never throttled.
    #[serde(with = "seqline_core::duration")]
    pub notice_interval: std::time::Duration,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            batch_max: 1024,
            group: "fanout".into(),
            package_max_entries: 256,
            conv_group: "fanout-conv".into(),
            priority_group: "fanout-priority".into(),
            notice_interval: std::time::Duration::from_millis(200),
        }
    }
}

/// The ports fanout needs.
#[derive(Clone)]
pub struct Ports {
    /// The log.
    pub log: Arc<dyn Log>,
    /// Where devices are connected.
    pub presence: Arc<dyn Presence>,
}

/// Runs fanout until `shutdown`: the user lane (timeline pushes), the
/// conversation lane (read-diffusion notices) and the priority lane
/// (high-priority messages in full) side by side, each on its own topic so
/// none waits behind another's backlog; one failing stops them all.
///
/// The priority lane starts first, and the others once it has its
/// partitions (or after [`PRIORITY_HEAD_START`]): after a restart the
/// ordinary lanes find a backlog waiting, and a priority message must not
/// wait behind it only because its lane's consumer joined its group last.
pub async fn run(config: FanoutConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let mut lanes = Tasks::new(&shutdown);
    let (ready, assigned) = tokio::sync::oneshot::channel();
    lanes.spawn(
        "priority lane",
        priority::run(config.clone(), ports.clone(), lanes.stop(), ready),
    );
    tokio::select! {
        _ = assigned => {}
        () = tokio::time::sleep(PRIORITY_HEAD_START) => {
            tracing::info!("the priority lane has no partitions yet; starting the other lanes");
        }
        () = shutdown.cancelled() => {}
    }
    lanes.spawn("user lane", user_lane(config.clone(), ports.clone(), lanes.stop()));
    lanes.spawn("conversation lane", notices::run(config, ports, lanes.stop()));
    Ok(lanes.join().await?)
}

/// Longest the ordinary lanes wait at start for the priority lane's
/// partitions (a member may get none when there are more fanout processes
/// than partitions).
const PRIORITY_HEAD_START: std::time::Duration = std::time::Duration::from_secs(5);

async fn user_lane(config: FanoutConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let options = Options::new(&config.group, Topic::UserEvents, config.batch_max);
    let lane = UserLane {
        config,
        ports,
        next_package: u64::from(rand_seed()),
    };
    let log = Arc::clone(&lane.ports.log);
    consume(log.as_ref(), &options, shutdown, lane).await
}

/// The user lane: timeline appends become packages for the devices' gateways.
struct UserLane {
    config: FanoutConfig,
    ports: Ports,
    next_package: u64,
}

impl Handler for UserLane {
    async fn handle(&mut self, partition: u32, batch: &[Input]) -> Result<()> {
        deliver(&self.config, &self.ports, partition, batch, &mut self.next_package).await
    }
}

/// Routes one batch of user events to the gateways of their devices.
async fn deliver(
    config: &FanoutConfig,
    ports: &Ports,
    partition: u32,
    batch: &[Input],
    next_package: &mut u64,
) -> Result<()> {
    let mut events = Vec::with_capacity(batch.len());
    let mut dead = Vec::new();
    for input in batch {
        match &input.record {
            LogRecord::UserEvent(e) => events.push(e.clone()),
            // Never dropped in silence, never blocking the partition.
            _ => dead.push(unexpected(
                &Topic::UserEvents,
                partition,
                input.offset,
                "not a user event",
            )),
        }
    }
    if !dead.is_empty() {
        ports.log.append(&Topic::DeadLetter, dead).await?;
    }
    let mut users: Vec<_> = events.iter().map(|e| e.user.clone()).collect();
    users.sort();
    users.dedup();
    let Some(located) = ask_presence("lookup", || ports.presence.lookup(&users)).await? else {
        return Ok(());
    };
    let outputs = route(&events, &located, next_package, config.package_max_entries);
    let topics: Vec<(Topic, Vec<LogRecord>)> = outputs.into_iter().map(|(g, p)| (Topic::Gateway(g), p)).collect();
    let results = futures_util::future::join_all(topics.iter().map(|(t, p)| ports.log.append(t, p.clone()))).await;
    let mut routed = 0;
    for ((_, packages), r) in topics.iter().zip(results) {
        match r {
            Ok(()) => routed += packages.len() as u64,
            // A lost push is not a lost message: devices pull what they miss.
            Err(e) => tracing::warn!(error = %e, "dropping pushes"),
        }
    }
    seqline_telemetry::emit(seqline_telemetry::events::PackagesRouted { count: routed });
    Ok(())
}

/// Tries of a presence call before a round's pushes are given up; the
/// waits between them double from 100 ms (1.5 s in all).
const PRESENCE_TRIES: u32 = 5;

/// Asks presence (Redis in cluster mode), retrying while it is unavailable.
/// `None` when it stays away: the caller drops this round's pushes and
/// goes on, since pushes are hints (devices catch up by sync and long-poll)
/// and fanout must not stop, nor hold its partitions, while Redis restarts.
/// Errors other than unavailability are returned.
pub(crate) async fn ask_presence<T, F, Fut>(what: &str, mut ask: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match ask().await {
            Ok(found) => return Ok(Some(found)),
            Err(e) if e.is_retryable() && tries < PRESENCE_TRIES => {
                tracing::debug!(what, error = %e, tries, "presence unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                tries += 1;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(what, error = %e, tries, "presence unavailable; dropping this round's pushes (devices catch up by sync)");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A start for package ids that differs between restarts, so a gateway's
/// rectifier never merges fragments of two incarnations.
fn rand_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(7);
    t ^ std::process::id().rotate_left(16)
}
