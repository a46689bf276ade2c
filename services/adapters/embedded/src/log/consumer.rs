//! The read path: one consumer per group and topic owns all partitions,
//! reads below the durable marks, round-robin across partitions, and is
//! fenced off when a newer consumer of its group subscribes.

use super::topic::{GroupState, TopicState};
use super::LogInner;
use crate::engine::{blocking, detached};
use crate::error::{lock, EngineError};
use crate::keys::{Key, KeyReader};
use crate::wire::decode_record;
use async_trait::async_trait;
use seqline_core::ports::{Consumed, LogConsumer, Polled};
use seqline_core::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::instrument;

enum Phase {
    /// The assignment has not been announced yet.
    Joining,
    /// Reading.
    Active,
    /// Revocation announced; every further call fails.
    Gone,
}

/// A member of a consumer group on the embedded log.
pub(crate) struct EmbeddedConsumer {
    inner: Arc<LogInner>,
    topic: Arc<TopicState>,
    group: String,
    generation: u64,
    phase: Phase,
    positions: Vec<u64>,
    next_partition: usize,
    changed: watch::Receiver<u64>,
    /// Records not read yet per partition, for `/metrics`.
    lag: Arc<seqline_telemetry::metrics::LagGauge>,
}

impl EmbeddedConsumer {
    /// Takes over `group` on `topic`, starting at its committed offsets.
    pub(crate) fn join(inner: Arc<LogInner>, topic: Arc<TopicState>, group: &str) -> Self {
        let count = topic.partitions.len();
        let (generation, positions): (u64, Vec<u64>) = {
            let mut groups = lock(&topic.groups);
            let state = groups.entry(group.to_string()).or_insert_with(|| GroupState {
                generation: 0,
                committed: vec![None; count],
            });
            state.generation += 1;
            let positions = state.committed.iter().map(|c| c.unwrap_or(0)).collect();
            (state.generation, positions)
        };
        // Wakes the previous owner, whose next poll reports the revocation.
        topic.bump();
        let changed = topic.changed.subscribe();
        tracing::debug!(topic = %topic.name, group, generation, "consumer joined");
        let lag = seqline_telemetry::metrics::LagGauge::register(group, &topic.name, count as u32);
        for (p, (part, position)) in topic.partitions.iter().zip(&positions).enumerate() {
            let durable = part.durable.load(Ordering::Acquire);
            lag.set(p as u32, durable.saturating_sub(*position));
        }
        Self {
            inner,
            topic,
            group: group.to_string(),
            generation,
            phase: Phase::Joining,
            positions,
            next_partition: 0,
            changed,
            lag,
        }
    }

    fn all_partitions(&self) -> Vec<u32> {
        (0..self.positions.len() as u32).collect()
    }

    fn fenced(&self) -> Error {
        Error::Fenced(format!(
            "consumer of group {} on {} was replaced by a newer one",
            self.group, self.topic.name
        ))
    }

    /// The next partition with durable records past our position.
    fn ready_partition(&mut self) -> Option<(u32, u64, u64)> {
        let count = self.positions.len();
        for i in 0..count {
            let p = (self.next_partition + i) % count;
            let part = &self.topic.partitions[p];
            let low = part.low.load(Ordering::Acquire);
            let position = self.positions[p].max(low);
            self.positions[p] = position;
            let durable = part.durable.load(Ordering::Acquire);
            if position < durable {
                self.next_partition = (p + 1) % count;
                return Some((p as u32, position, durable));
            }
        }
        None
    }
}

/// Reads `[from, to)` of `partition` (blocking), decoding each record.
fn read(
    inner: &LogInner,
    topic: &TopicState,
    partition: u32,
    from: u64,
    to: u64,
) -> Result<Vec<Consumed>, EngineError> {
    let prefix = topic.partition_prefix(partition);
    let start = Key::new().bytes(&prefix).u64(from).build();
    let end = Key::new().bytes(&prefix).u64(to).build();
    let mut out = Vec::with_capacity((to - from).min(1024) as usize);
    for kv in inner.records.range(start..end) {
        let (key, value) = kv.into_inner()?;
        let offset = KeyReader::new(&key).skip(prefix.len())?.u64()?;
        let (record, trace) = decode_record(&value);
        out.push(Consumed { offset, record, trace });
    }
    Ok(out)
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    #[instrument(skip_all, fields(topic = %self.topic.name, group = %self.group))]
    async fn poll(&mut self, max_records: usize) -> Result<Polled> {
        match self.phase {
            Phase::Gone => return Err(self.fenced()),
            Phase::Joining => {
                self.phase = Phase::Active;
                return Ok(Polled::Assigned(self.all_partitions()));
            }
            Phase::Active => {}
        }
        let max = max_records.max(1) as u64;
        loop {
            // Marks the current version seen before checking, so a change
            // after the check wakes the wait below.
            self.changed.borrow_and_update();
            if self.topic.generation(&self.group) != self.generation {
                self.phase = Phase::Gone;
                return Ok(Polled::Revoked(self.all_partitions()));
            }
            if let Some((partition, from, durable)) = self.ready_partition() {
                let to = durable.min(from.saturating_add(max));
                let inner = Arc::clone(&self.inner);
                let topic = Arc::clone(&self.topic);
                let records = blocking(move || read(&inner, &topic, partition, from, to)).await?;
                // Only now, with no await left, does the position move:
                // a poll cancelled during the read re-reads the same range.
                self.positions[partition as usize] = records.last().map_or(to, |c| c.offset + 1);
                self.lag
                    .set(partition, durable.saturating_sub(self.positions[partition as usize]));
                if records.is_empty() {
                    // Trimmed under us: the range is gone, look again.
                    continue;
                }
                return Ok(Polled::Records { partition, records });
            }
            if self.changed.changed().await.is_err() {
                return Err(Error::ShuttingDown);
            }
        }
    }

    #[instrument(skip_all, fields(topic = %self.topic.name, group = %self.group, partition, offset = next_offset))]
    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<()> {
        if matches!(self.phase, Phase::Gone) || self.topic.generation(&self.group) != self.generation {
            return Err(self.fenced());
        }
        let Some(part) = self.topic.partitions.get(partition as usize) else {
            return Err(Error::Invalid(format!(
                "topic {} has no partition {partition}",
                self.topic.name
            )));
        };
        if next_offset > part.durable.load(Ordering::Acquire) {
            return Err(Error::Invalid(format!(
                "offset {next_offset} is past the end of partition {partition}"
            )));
        }
        let inner = Arc::clone(&self.inner);
        let topic = Arc::clone(&self.topic);
        let group = self.group.clone();
        detached(async move {
            let key = topic.offset_key(&group, partition);
            let writer = Arc::clone(&inner);
            // The offset is journaled lazily: it asks for no fsync, the
            // next group commit of any writer makes it durable. Losing it in
            // a crash only means redoing a batch, which every worker does
            // idempotently. The journal keeps order, so a durable offset
            // implies the durable outputs of the batch it follows. (A trim
            // below this offset is journaled after it, so a durable trim
            // implies a durable offset.)
            let _ticket = blocking(move || {
                let mut batch = writer.engine.batch();
                batch.insert(&writer.offsets, key, next_offset.to_be_bytes());
                writer.engine.commit_lazy(writer.engine.enter()?, batch)
            })
            .await?;
            if let Some(state) = lock(&topic.groups).get_mut(&group) {
                if let Some(slot) = state.committed.get_mut(partition as usize) {
                    *slot = Some(next_offset);
                }
            }
            super::retention::trim(&inner, &topic, partition).await
        })
        .await
    }
}
