//! [`KafkaConsumer`]: one member of a consumer group on one topic.
//!
//! A `BaseConsumer` runs on its own thread (`thread`), feeding a bounded
//! channel with assignments, revocations and decoded records; `poll` only
//! receives from that channel, so it is cancel-safe. Every revocation bumps
//! an epoch: records fetched before it are dropped unseen (librdkafka
//! fetches them again from the committed offset), and a commit after it
//! fails with [`Error::Fenced`] until the next assignment is polled.
//!
//! The thread stops polling librdkafka while the handle has not read for
//! [`thread::UNREAD`] (its worker is stuck), so a worker stuck for longer
//! than the max poll interval loses its partitions to the other members,
//! as in any Kafka consumer whose application stops calling poll.
//!
//! Within one [`crate::KafkaLog`], subscribing again to a group and topic
//! takes over: the older member is revoked, leaves the group, and then
//! fails every call, as on the embedded log.

mod thread;

use crate::avro::Codec;
use crate::config::KafkaOptions;
use crate::error::{client_error, commit_error, taken_over};
use async_trait::async_trait;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use seqline_core::ports::{Consumed, LogConsumer, Polled};
use seqline_core::{Error, Result};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use thread::GroupContext;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

/// What the thread tells the handle. `Record` is the hot variant and the
/// big one; boxing it would add an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Event {
    Assigned {
        partitions: Vec<u32>,
        epoch: u64,
    },
    Revoked(Vec<u32>),
    Record {
        partition: u32,
        epoch: u64,
        consumed: Consumed,
    },
    Failed(Error),
    Closed,
}

/// State shared by the thread and the handle.
pub(crate) struct Shared {
    epoch: AtomicU64,
    assigned: Mutex<BTreeSet<u32>>,
    closed: AtomicBool,
    /// When the consumer was made; `read_at` counts from here.
    born: Instant,
    /// Milliseconds after `born` the handle last entered or left `poll`.
    read_at: AtomicU64,
    /// Whether the handle is waiting in `poll` now.
    reading: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            assigned: Mutex::default(),
            closed: AtomicBool::new(false),
            born: Instant::now(),
            read_at: AtomicU64::new(0),
            reading: AtomicBool::new(false),
        }
    }
}

/// Marks the handle as reading while it waits in `poll`; a `poll` that
/// returns or is dropped stamps the time.
struct Reading<'a>(&'a Shared);

impl<'a> Reading<'a> {
    fn start(shared: &'a Shared) -> Self {
        shared.stamp();
        shared.reading.store(true, Ordering::Release);
        Reading(shared)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.stamp();
        self.0.reading.store(false, Ordering::Release);
    }
}

impl Shared {
    fn stamp(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.read_at.store(now, Ordering::Release);
    }

    /// How long the handle has not been reading (zero while it waits in
    /// `poll`): its worker is busy or stuck.
    fn unread_for(&self) -> Duration {
        if self.reading.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        let at = Duration::from_millis(self.read_at.load(Ordering::Acquire));
        self.born.elapsed().saturating_sub(at)
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
    fn assigned(&self) -> Vec<u32> {
        self.assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
    fn revoke(&self) {
        self.assigned.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
    fn assign(&self, partitions: &[u32]) -> u64 {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        assigned.extend(partitions);
        self.epoch()
    }
    fn close(&self) {
        self.revoke();
        self.closed.store(true, Ordering::Release);
    }
}

/// The log's record of a live member, for takeovers.
pub(crate) struct Member {
    quit: CancellationToken,
    finished: watch::Receiver<bool>,
    /// Whether the member's last rebalance has finished.
    settled: Arc<AtomicBool>,
}

impl Member {
    /// Whether the member has already left its group (its consumer is gone).
    pub(crate) fn has_left(&self) -> bool {
        // A dropped sender means the consumer thread is gone too.
        *self.finished.borrow() || self.finished.has_changed().is_err()
    }

    /// Whether the member's last rebalance has finished: it holds an
    /// assignment (maybe an empty one) of the group's current generation.
    pub(crate) fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Makes the member leave its group and waits (bounded) until it has.
    pub(crate) async fn take_over(mut self, deadline: std::time::Duration) {
        self.quit.cancel();
        let _ = tokio::time::timeout(deadline, self.finished.wait_for(|done| *done)).await;
    }
}

/// A member of a consumer group on the Kafka log.
pub(crate) struct KafkaConsumer {
    group: String,
    topic: String,
    consumer: Arc<BaseConsumer<GroupContext>>,
    events: mpsc::Receiver<Event>,
    pending: Option<Event>,
    shared: Arc<Shared>,
    quit: CancellationToken,
    /// The partitions the caller was last told it has, and the epoch then.
    assigned: BTreeSet<u32>,
    epoch: u64,
    gone: bool,
}

/// Joins `group` on `topic` (the full topic name) of `partitions` partitions.
pub(crate) fn join(
    options: &KafkaOptions,
    codec: Arc<Codec>,
    group: &str,
    topic: &str,
    partitions: u32,
) -> Result<(KafkaConsumer, Member)> {
    let (tx, rx) = mpsc::channel(options.consumer_buffer.max(16));
    let shared = Arc::new(Shared::default());
    let quit = CancellationToken::new();
    let settled = Arc::new(AtomicBool::new(false));
    let lag = seqline_telemetry::metrics::LagGauge::register(group, topic, partitions);
    let context = GroupContext {
        lag,
        topic: topic.to_string(),
        events: tx,
        shared: Arc::clone(&shared),
        quit: quit.clone(),
        settled: Arc::clone(&settled),
    };
    let consumer = BaseConsumer::from_config_and_context(&options.consumer_config(group), context)
        .map_err(|e| client_error(&format!("creating a consumer of {topic}"), &e))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| client_error(&format!("subscribing to {topic}"), &e))?;
    let consumer = Arc::new(consumer);
    let (done_tx, done_rx) = watch::channel(false);
    let polled = Arc::clone(&consumer);
    std::thread::Builder::new()
        .name(format!("kafka-consumer-{group}"))
        .spawn(move || thread::run(polled, codec, done_tx))
        .map_err(|e| Error::Unavailable(format!("starting a consumer thread: {e}")))?;
    let handle = KafkaConsumer {
        group: group.to_string(),
        topic: topic.to_string(),
        consumer,
        events: rx,
        pending: None,
        shared,
        quit: quit.clone(),
        assigned: BTreeSet::new(),
        epoch: 0,
        gone: false,
    };
    Ok((
        handle,
        Member {
            quit,
            finished: done_rx,
            settled,
        },
    ))
}

impl KafkaConsumer {
    fn fenced(&self) -> Error {
        taken_over(&self.group, &self.topic)
    }

    fn next_event(&mut self) -> Option<Event> {
        self.pending.take().or_else(|| self.events.try_recv().ok())
    }

    /// Turns a received event into what `poll` returns, if anything.
    fn handle(&mut self, event: Event, max: usize) -> Option<Result<Polled>> {
        match event {
            Event::Assigned { partitions, epoch } => {
                self.assigned = partitions.iter().copied().collect();
                self.epoch = epoch;
                Some(Ok(Polled::Assigned(partitions)))
            }
            Event::Revoked(partitions) => {
                self.assigned.clear();
                Some(Ok(Polled::Revoked(partitions)))
            }
            Event::Record {
                partition,
                epoch,
                consumed,
            } => {
                if epoch != self.epoch || epoch != self.shared.epoch() || !self.assigned.contains(&partition) {
                    return None;
                }
                let mut records = vec![consumed];
                while records.len() < max {
                    match self.next_event() {
                        Some(Event::Record {
                            partition: p,
                            epoch: e,
                            consumed,
                        }) if p == partition && e == epoch => records.push(consumed),
                        Some(other) => {
                            self.pending = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                Some(Ok(Polled::Records { partition, records }))
            }
            Event::Failed(e) => {
                self.gone = true;
                Some(Err(e))
            }
            Event::Closed => {
                self.gone = true;
                if self.assigned.is_empty() {
                    Some(Err(self.fenced()))
                } else {
                    // The revocation was not queued (channel full): say it now.
                    let partitions = std::mem::take(&mut self.assigned).into_iter().collect();
                    Some(Ok(Polled::Revoked(partitions)))
                }
            }
        }
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    #[instrument(skip_all, fields(topic = %self.topic, group = %self.group))]
    async fn poll(&mut self, max_records: usize) -> Result<Polled> {
        if self.gone {
            return Err(self.fenced());
        }
        let shared = Arc::clone(&self.shared);
        let _reading = Reading::start(&shared);
        loop {
            // The only await: a poll dropped here has taken nothing.
            let event = match self.pending.take() {
                Some(event) => event,
                None => self.events.recv().await.unwrap_or(Event::Closed),
            };
            if let Some(result) = self.handle(event, max_records.max(1)) {
                return result;
            }
        }
    }

    #[instrument(skip_all, fields(topic = %self.topic, group = %self.group, partition, offset = next_offset))]
    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<()> {
        let owned = !self.gone
            && !self.shared.closed.load(Ordering::Acquire)
            && self.assigned.contains(&partition)
            && self.shared.epoch() == self.epoch;
        if !owned {
            return Err(Error::Fenced(format!(
                "partition {partition} of {} is no longer assigned to this member of {}",
                self.topic, self.group
            )));
        }
        let mut tpl = TopicPartitionList::new();
        let offset = i64::try_from(next_offset).map_err(|_| Error::Invalid(format!("offset {next_offset}")))?;
        tpl.add_partition_offset(&self.topic, partition as i32, Offset::Offset(offset))
            .map_err(|e| client_error("commit", &e))?;
        let consumer = Arc::clone(&self.consumer);
        let what = format!("commit of {}/{partition} at {next_offset}", self.topic);
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Unavailable(format!("commit task: {e}")))?
            .map_err(|e| commit_error(&what, &e))
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // The thread leaves the group and drops the consumer off the runtime.
        self.quit.cancel();
    }
}
