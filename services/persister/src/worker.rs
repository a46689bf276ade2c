//! The loop every persister worker runs: poll a batch, hand it to the
//! handler (which makes its outputs durable), then commit the input offset.
//! Undecodable records go to the dead-letter topic; the partition keeps
//! flowing.

use seqline_core::ports::{Consumed, Log, Polled};
use seqline_core::records::{DeadLetter, LogRecord, Topic};
use seqline_core::Result;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A record that decoded, with its offset.
pub(crate) struct Input {
    pub offset: u64,
    pub record: LogRecord,
}

/// What a worker does with its partitions.
pub(crate) trait Handler: Send {
    /// These partitions are ours now: forget cached state for them.
    fn assigned(&mut self, partitions: &[u32]);
    /// These partitions are gone.
    fn revoked(&mut self, partitions: &[u32]);
    /// Processes a batch; returns once every output is durable.
    fn handle(&mut self, partition: u32, batch: &[Input]) -> impl std::future::Future<Output = Result<()>> + Send;
}

const MAX_ATTEMPTS: u32 = 8;

/// Consumes `topic` as `group` until `shutdown`.
#[tracing::instrument(skip_all, fields(group = group, topic = %topic.name()))]
pub(crate) async fn consume<H: Handler>(
    log: &dyn Log,
    group: &str,
    topic: Topic,
    max_records: usize,
    shutdown: CancellationToken,
    mut handler: H,
) -> Result<()> {
    let mut consumer = log.subscribe(group, &topic).await?;
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            p = consumer.poll(max_records) => p?,
        };
        match polled {
            Polled::Assigned(p) => handler.assigned(&p),
            Polled::Revoked(p) => handler.revoked(&p),
            Polled::Records { partition, records } => {
                let Some(next) = records.last().map(|r| r.offset + 1) else {
                    continue;
                };
                tracing::debug!(group, partition, first = records[0].offset, next, "batch");
                let batch = split_dead(log, &topic, partition, records).await?;
                let mut attempt = 0;
                loop {
                    // A batch in hand is finished even during shutdown, so
                    // what is stored gets its outputs and its commit.
                    match handler.handle(partition, &batch).await {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                            attempt += 1;
                            tracing::warn!(error = %e, attempt, group, "batch failed, retrying");
                            tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                seqline_core::failpoint::hit(seqline_core::failpoint::names::WORKER_BEFORE_OFFSET_COMMIT).await;
                match consumer.commit(partition, next).await {
                    Ok(()) => {}
                    // The partition moved to another member while we worked: our
                    // outputs are durable and idempotent, the new owner redoes the
                    // batch from the committed offset. Drop it and poll on.
                    Err(seqline_core::Error::Fenced(reason)) => {
                        tracing::warn!(partition, %reason, "partition lost before commit; dropping the batch");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

async fn split_dead(log: &dyn Log, topic: &Topic, partition: u32, records: Vec<Consumed>) -> Result<Vec<Input>> {
    let mut good = Vec::with_capacity(records.len());
    let mut dead = Vec::new();
    for c in records {
        match c.record {
            Ok(record) => good.push(Input {
                offset: c.offset,
                record,
            }),
            Err(reason) => {
                tracing::warn!(topic = %topic.name(), partition, offset = c.offset, %reason, "dead-lettering a record");
                dead.push(LogRecord::DeadLetter(DeadLetter {
                    topic: topic.name(),
                    partition,
                    offset: c.offset,
                    reason,
                    raw: Vec::new(),
                }));
            }
        }
    }
    if !dead.is_empty() {
        log.append(&Topic::DeadLetter, dead).await?;
    }
    Ok(good)
}

/// Dead-letters one decoded record a handler cannot use (wrong type for the topic).
pub(crate) fn unexpected(topic: &Topic, partition: u32, offset: u64, what: &str) -> LogRecord {
    LogRecord::DeadLetter(DeadLetter {
        topic: topic.name(),
        partition,
        offset,
        reason: format!("unexpected record on {}: {what}", topic.name()),
        raw: Vec::new(),
    })
}
