//! The consumer's own thread: it polls librdkafka (which runs the rebalance
//! callbacks on it), decodes records, and feeds a bounded channel. When told
//! to quit it leaves the group before it ends, so a successor gets every
//! partition at once.

use super::{Event, Shared};
use crate::avro::Codec;
use crate::context;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Message as _, TopicPartitionList};
use seqline_core::ports::Consumed;
use seqline_core::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How long one librdkafka poll blocks; bounds how late a quit is noticed.
const POLL: Duration = Duration::from_millis(100);
/// After the handle has not read for this long, the thread stops polling
/// librdkafka until it reads again: librdkafka then leaves the group once
/// its max poll interval has passed without a poll.
pub(super) const UNREAD: Duration = Duration::from_secs(5);
/// How long leaving the group may take.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// Turns rebalance callbacks into [`Event`]s.
pub(crate) struct GroupContext {
    pub(super) topic: String,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) shared: Arc<Shared>,
    pub(super) quit: CancellationToken,
    /// Whether the last rebalance this member took part in has finished (an
    /// assignment came, even an empty one). False from joining, and from
    /// every revocation, until the next assignment.
    pub(super) settled: Arc<AtomicBool>,
    /// Records not read yet per partition, for `/metrics`: set from
    /// librdkafka's statistics (`statistics.interval.ms`).
    pub(super) lag: Arc<seqline_telemetry::metrics::LagGauge>,
}

impl GroupContext {
    /// Queues `event`, waiting while the channel is full unless told to
    /// quit; false when the event could not be queued.
    pub(super) fn send(&self, mut event: Event) -> bool {
        loop {
            match self.events.try_send(event) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(back)) => event = back,
            }
            if self.quit.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<u32> {
        let mut out: Vec<u32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect();
        out.sort_unstable();
        out
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        context::log("consumer", level, fac, log_message);
    }

    fn error(&self, e: KafkaError, reason: &str) {
        context::error("consumer", &e, reason);
    }

    /// The lag of every partition of the topic as this member sees it: the
    /// high watermark minus the group's committed offset (librdkafka's
    /// `consumer_lag`, the group lag Kafka's tools show) where this member
    /// holds the partition; 0 where another member does, or before the
    /// group's first commit (-1, not known). Records read ahead into the
    /// consumer's buffer but not handled yet still count.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, p) in &topic.partitions {
            if let Ok(partition) = u32::try_from(*partition) {
                self.lag.set(partition, u64::try_from(p.consumer_lag).unwrap_or(0));
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let revoked = match rebalance {
            Rebalance::Assign(_) => return,
            Rebalance::Revoke(tpl) => self.partitions(tpl),
            Rebalance::Error(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "rebalance failed; dropping the assignment");
                self.shared.assigned()
            }
        };
        self.settled.store(false, Ordering::Release);
        // Before librdkafka unassigns: records fetched until now are stale.
        self.shared.revoke();
        tracing::info!(topic = %self.topic, ?revoked, "partitions revoked");
        self.send(Event::Revoked(revoked));
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            self.settled.store(true, Ordering::Release);
            let epoch = self.shared.assign(&partitions);
            tracing::info!(topic = %self.topic, ?partitions, "partitions assigned");
            self.send(Event::Assigned { partitions, epoch });
        }
    }
}

/// Polls until told to quit (or the handle is gone), then leaves the group.
pub(super) fn run(consumer: Arc<BaseConsumer<GroupContext>>, codec: Arc<Codec>, done: watch::Sender<bool>) {
    let context = Arc::clone(consumer.context());
    let mut stuck = false;
    while !context.quit.is_cancelled() {
        let unread = context.shared.unread_for();
        if unread > UNREAD {
            if !stuck {
                stuck = true;
                tracing::warn!(
                    topic = %context.topic,
                    unread = ?unread,
                    "the worker stopped reading records; not polling, so the group moves its partitions \
                     once the max poll interval has passed"
                );
            }
            std::thread::sleep(POLL);
            continue;
        }
        if std::mem::take(&mut stuck) {
            tracing::info!(topic = %context.topic, "the worker reads again; polling");
        }
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(message)) => {
                let (Ok(partition), Ok(offset)) = (u32::try_from(message.partition()), u64::try_from(message.offset()))
                else {
                    continue;
                };
                let record = match message.payload() {
                    Some(bytes) => codec.decode(bytes),
                    None => Err("a record without a value".to_string()),
                };
                let event = Event::Record {
                    partition,
                    epoch: context.shared.epoch(),
                    consumed: Consumed {
                        offset,
                        record,
                        trace: crate::trace::read(message.headers()),
                    },
                };
                if !context.send(event) {
                    break;
                }
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                tracing::error!(topic = %context.topic, %code, "fatal consumer error");
                let reason = format!("fatal consumer error on {}: {code}", context.topic);
                context.send(Event::Failed(Error::Unavailable(reason)));
                break;
            }
            Some(Err(e)) => tracing::warn!(topic = %context.topic, error = %e, "consumer error; retrying"),
        }
    }
    close(&consumer);
    context.shared.close();
    context.settled.store(false, Ordering::Release);
    // Best effort: a handle still reading learns it is done.
    let _ = context.events.try_send(Event::Closed);
    let _ = done.send(true);
}

/// Leaves the group: the revocation callback runs in these polls.
fn close(consumer: &BaseConsumer<GroupContext>) {
    if let Err(e) = consumer.close_queue() {
        tracing::warn!(error = %e, "closing the kafka consumer failed");
        return;
    }
    let deadline = Instant::now() + CLOSE_DEADLINE;
    while !consumer.closed() && Instant::now() < deadline {
        // Records still arriving belong to a consumer that is leaving.
        let _ = consumer.poll(POLL);
    }
}
