//! The loop every persister worker runs: poll a batch, hand it to the
//! handler (which makes its outputs durable), then commit the input offset.
//! Undecodable records go to the dead-letter topic; the partition keeps
//! flowing. So does a record the handler refuses for good (`Invalid`, which
//! the same input will always get): the batch is redone one record at a
//! time and only the refused record is set aside, instead of the partition
//! failing on it forever.

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
                match handle_retrying(&mut handler, partition, &batch, group).await {
                    Ok(()) => {}
                    Err(seqline_core::Error::Invalid(reason)) => {
                        tracing::warn!(group, partition, %reason, "batch refused; isolating the record");
                        isolate(log, &topic, partition, &batch, &mut handler, group).await?;
                    }
                    Err(e) => return Err(e),
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

/// Handles a batch, retrying while the failure is transient. A batch in
/// hand is finished even during shutdown, so what is stored gets its outputs
/// and its commit.
async fn handle_retrying<H: Handler>(handler: &mut H, partition: u32, batch: &[Input], group: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        match handler.handle(partition, batch).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, group, "batch failed, retrying");
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Redoes a refused batch one record at a time, in order (handlers are
/// idempotent, so records already done are answered again, not redone) and
/// dead-letters each record the handler refuses for good.
async fn isolate<H: Handler>(
    log: &dyn Log,
    topic: &Topic,
    partition: u32,
    batch: &[Input],
    handler: &mut H,
    group: &str,
) -> Result<()> {
    for input in batch {
        match handle_retrying(handler, partition, std::slice::from_ref(input), group).await {
            Ok(()) => {}
            Err(seqline_core::Error::Invalid(reason)) => {
                tracing::warn!(group, partition, offset = input.offset, %reason, "dead-lettering a refused record");
                let dead = LogRecord::DeadLetter(DeadLetter {
                    topic: topic.name(),
                    partition,
                    offset: input.offset,
                    reason: format!("refused by {group}: {reason}"),
                    raw: Vec::new(),
                });
                log.append(&Topic::DeadLetter, vec![dead]).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use seqline_core::ports::LogConsumer;
    use seqline_embedded::{EmbeddedEngine, EmbeddedLog, LogOptions};
    use std::sync::{Arc, Mutex};

    /// Refuses for good any record whose reason says "poison"; remembers
    /// the offsets it handled.
    struct Picky(Arc<Mutex<Vec<u64>>>);

    impl Handler for Picky {
        fn assigned(&mut self, _: &[u32]) {}
        fn revoked(&mut self, _: &[u32]) {}
        async fn handle(&mut self, _partition: u32, batch: &[Input]) -> Result<()> {
            for input in batch {
                if matches!(&input.record, LogRecord::DeadLetter(d) if d.reason == "poison") {
                    return Err(seqline_core::Error::Invalid("a poisoned record".into()));
                }
                self.0.lock().unwrap().push(input.offset);
            }
            Ok(())
        }
    }

    fn record(reason: &str) -> LogRecord {
        LogRecord::DeadLetter(DeadLetter {
            topic: "test".into(),
            partition: 0,
            offset: 0,
            reason: reason.into(),
            raw: Vec::new(),
        })
    }

    async fn drain(consumer: &mut dyn LogConsumer) -> Vec<LogRecord> {
        loop {
            let polled = tokio::time::timeout(Duration::from_secs(10), consumer.poll(100)).await;
            if let Polled::Records { records, .. } = polled.expect("records in time").unwrap() {
                return records.into_iter().map(|c| c.record.unwrap()).collect();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_refused_for_good_is_dead_lettered_and_the_partition_flows_on() {
        let dir = std::env::temp_dir().join(format!("seqline-poison-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let engine = EmbeddedEngine::open(&dir).unwrap();
        let options = LogOptions {
            deliveries: 1,
            ..LogOptions::default()
        };
        let log = EmbeddedLog::open(engine, options).unwrap();
        let records = vec![record("a"), record("b"), record("poison"), record("c"), record("d")];
        log.append(&Topic::Deliveries, records).await.unwrap();

        let handled = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let worker = {
            let (log, stop, handled) = (log.clone(), stop.clone(), handled.clone());
            tokio::spawn(async move { consume(&log, "picky", Topic::Deliveries, 100, stop, Picky(handled)).await })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !handled.lock().unwrap().contains(&4) {
            assert!(
                std::time::Instant::now() < deadline,
                "the records after the poisoned one were never handled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut dead = log.subscribe("check", &Topic::DeadLetter).await.unwrap();
        let dead = drain(dead.as_mut()).await;
        assert_eq!(dead.len(), 1, "only the poisoned record is set aside: {dead:?}");
        let LogRecord::DeadLetter(d) = &dead[0] else {
            panic!("{dead:?}")
        };
        assert_eq!((d.offset, d.topic.as_str()), (2, "deliveries"));
        assert!(d.reason.contains("a poisoned record"), "{}", d.reason);
        let mut seen = handled.lock().unwrap().clone();
        seen.dedup();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![0, 1, 3, 4], "every other record was handled");
        stop.cancel();
        worker.await.unwrap().unwrap();
        // The batch was committed: the group starts after it.
        log.append(&Topic::Deliveries, vec![record("e")]).await.unwrap();
        let mut again = log.subscribe("picky", &Topic::Deliveries).await.unwrap();
        let rest = drain(again.as_mut()).await;
        assert!(
            matches!(&rest[..], [LogRecord::DeadLetter(d)] if d.reason == "e"),
            "{rest:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
