//! In-memory state of one topic: per partition the next offset, the durable
//! mark and the low watermark; per consumer group the committed offsets and
//! the generation that owns the group. Recovered from disk on first use.

use crate::error::{lock, EngineError};
use crate::keys::{u64_value, Key, KeyReader};
use fjall::Keyspace;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// One partition.
pub(crate) struct PartitionState {
    /// Next offset to assign; held while a batch is written (append order).
    pub(crate) next: Mutex<u64>,
    /// Offsets below this are fsynced and visible to consumers.
    pub(crate) durable: AtomicU64,
    /// Offsets below this may have been trimmed.
    pub(crate) low: AtomicU64,
    /// Held by the one task trimming this partition.
    pub(crate) trimming: Mutex<()>,
}

/// One consumer group on the topic.
pub(crate) struct GroupState {
    /// Bumped by every subscribe: only the newest consumer may go on.
    pub(crate) generation: u64,
    /// Committed offset per partition (`None`: never committed).
    pub(crate) committed: Vec<Option<u64>>,
}

/// One topic.
pub(crate) struct TopicState {
    pub(crate) name: String,
    pub(crate) partitions: Vec<PartitionState>,
    /// Bumped whenever something a consumer waits for happens: records
    /// became durable or a group changed hands.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) groups: Mutex<HashMap<String, GroupState>>,
    /// Appends do not wait for their fsync (see `LogOptions`).
    pub(crate) volatile: bool,
}

impl TopicState {
    /// Recovers the topic from disk (blocking).
    pub(crate) fn load(
        records: &Keyspace,
        offsets: &Keyspace,
        meta: &Keyspace,
        name: &str,
        count: u32,
    ) -> Result<Self, EngineError> {
        let meta_key = Key::new().str(name).build();
        match meta.get(&meta_key)? {
            Some(v) => {
                let stored = u64_value(&v)?;
                if stored != u64::from(count) {
                    return Err(EngineError::Mismatch(format!(
                        "topic {name} has {stored} partitions on disk, {count} configured"
                    )));
                }
            }
            // Journaled before any record of the topic, so the first fsync
            // covering a record covers this too.
            None => meta.insert(meta_key, u64::from(count).to_be_bytes())?,
        }
        let mut partitions = Vec::with_capacity(count as usize);
        for p in 0..count {
            let prefix = Key::new().str(name).u32(p).build();
            let offset_of = |kv: fjall::Guard| -> Result<u64, EngineError> {
                let key = kv.key()?;
                KeyReader::new(&key).skip(prefix.len())?.u64()
            };
            let next = match records.prefix(&prefix).next_back() {
                Some(kv) => offset_of(kv)? + 1,
                None => 0,
            };
            let low = match records.prefix(&prefix).next() {
                Some(kv) => offset_of(kv)?,
                None => next,
            };
            partitions.push(PartitionState {
                next: Mutex::new(next),
                durable: AtomicU64::new(next),
                low: AtomicU64::new(low),
                trimming: Mutex::new(()),
            });
        }
        let topic_prefix = Key::new().str(name).build();
        let mut groups: HashMap<String, GroupState> = HashMap::new();
        for kv in offsets.prefix(&topic_prefix) {
            let (key, value) = kv.into_inner()?;
            let mut reader = KeyReader::new(&key).skip(topic_prefix.len())?;
            let group = reader.str()?.to_string();
            let partition = reader.u32()? as usize;
            let offset = u64_value(&value)?;
            let state = groups.entry(group).or_insert_with(|| GroupState {
                generation: 0,
                committed: vec![None; count as usize],
            });
            if let Some(slot) = state.committed.get_mut(partition) {
                *slot = Some(offset);
            }
        }
        // Retention may have trimmed a partition empty: offsets must still
        // never go back, so resume after the highest committed offset.
        for (p, part) in partitions.iter_mut().enumerate() {
            let committed = groups
                .values()
                .filter_map(|g| g.committed.get(p).copied().flatten())
                .max();
            if let Some(c) = committed {
                let next = part
                    .next
                    .get_mut()
                    .map_err(|_| EngineError::Mismatch("poisoned".into()))?;
                if c > *next {
                    *next = c;
                    part.durable.store(c, Ordering::Release);
                    part.low.store(c, Ordering::Release);
                }
            }
        }
        Ok(Self {
            name: name.to_string(),
            partitions,
            changed: watch::Sender::new(0),
            groups: Mutex::new(groups),
            volatile: false,
        })
    }

    pub(crate) fn partition_prefix(&self, partition: u32) -> Vec<u8> {
        Key::new().str(&self.name).u32(partition).build()
    }

    pub(crate) fn record_key(&self, partition: u32, offset: u64) -> Vec<u8> {
        Key::new().str(&self.name).u32(partition).u64(offset).build()
    }

    pub(crate) fn offset_key(&self, group: &str, partition: u32) -> Vec<u8> {
        Key::new().str(&self.name).str(group).u32(partition).build()
    }

    /// Wakes every consumer waiting on this topic.
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The generation owning `group` now.
    pub(crate) fn generation(&self, group: &str) -> u64 {
        lock(&self.groups).get(group).map_or(0, |g| g.generation)
    }

    /// Marks everything below `end` in `partition` durable.
    pub(crate) fn advance_durable(&self, partition: u32, end: u64) {
        if let Some(p) = self.partitions.get(partition as usize) {
            p.durable.fetch_max(end, Ordering::AcqRel);
        }
    }

    /// The lowest offset any group that ever committed on `partition` still
    /// needs (0 when none did). A group that never committed does not hold
    /// records back: like a new Kafka group, it starts at the earliest kept.
    pub(crate) fn retain_from(&self, partition: u32) -> u64 {
        let groups = lock(&self.groups);
        groups
            .values()
            .filter_map(|g| g.committed.get(partition as usize).copied().flatten())
            .min()
            .unwrap_or(0)
    }
}
