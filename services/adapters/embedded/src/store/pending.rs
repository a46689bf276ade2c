//! Durable heads of keys with writes in flight.
//!
//! A writer registers its key *before* writing a batch, with the head that
//! was stored before (durable, or itself covered by an earlier entry), and
//! raises the durable head only after its fsync. Readers read the stored
//! value first and consult this map second: a value they saw that is not
//! durable yet was registered before it was written and is still here, so
//! readers clamp to the durable head or wait for the fsync. Keys with no
//! write in flight have no entry: what is stored is durable.

use crate::error::lock;
use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 64;

struct Entry {
    durable: Option<u64>,
    writers: u32,
}

/// Keys with writes in flight and their durable heads.
pub(crate) struct Pending {
    shards: Vec<Mutex<HashMap<Vec<u8>, Entry>>>,
}

impl Pending {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<HashMap<Vec<u8>, Entry>> {
        &self.shards[(fnv(key) % SHARDS as u64) as usize]
    }

    /// A write of `key` is about to happen; `stored` is the head before it.
    pub(crate) fn begin(&self, key: &[u8], stored: Option<u64>) {
        let mut shard = lock(self.shard(key));
        let entry = shard.entry(key.to_vec()).or_insert(Entry {
            durable: stored,
            writers: 0,
        });
        entry.writers += 1;
    }

    /// A write of `key` ended; `durable` is now fsynced (or, after a failed
    /// batch, the head it started from).
    pub(crate) fn finish(&self, key: &[u8], durable: Option<u64>) {
        let mut shard = lock(self.shard(key));
        if let Some(entry) = shard.get_mut(key) {
            entry.durable = entry.durable.max(durable);
            entry.writers = entry.writers.saturating_sub(1);
            if entry.writers == 0 {
                shard.remove(key);
            }
        }
    }

    /// The durable head of `key`, given the `stored` one read just before.
    pub(crate) fn clamp(&self, key: &[u8], stored: Option<u64>) -> Option<u64> {
        match lock(self.shard(key)).get(key) {
            Some(entry) => entry.durable.min(stored),
            None => stored,
        }
    }

    /// Whether a write of `key` is in flight.
    pub(crate) fn is_pending(&self, key: &[u8]) -> bool {
        lock(self.shard(key)).contains_key(key)
    }
}

/// FNV-1a, to spread keys over shards and stripes.
pub(crate) fn fnv(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Striped locks serializing the read-check-write of one key.
pub(crate) struct Stripes(Vec<Mutex<()>>);

impl Stripes {
    pub(crate) fn new(n: usize) -> Self {
        Self((0..n.max(1)).map(|_| Mutex::new(())).collect())
    }
    pub(crate) fn lock(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.0[(fnv(key) % self.0.len() as u64) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_until_the_last_writer_finishes() {
        let p = Pending::new();
        assert_eq!(p.clamp(b"k", Some(3)), Some(3));
        p.begin(b"k", Some(3));
        p.begin(b"k", Some(5));
        assert_eq!(p.clamp(b"k", Some(7)), Some(3));
        p.finish(b"k", Some(7));
        assert_eq!(p.clamp(b"k", Some(7)), Some(7));
        assert!(p.is_pending(b"k"));
        p.finish(b"k", Some(5));
        assert!(!p.is_pending(b"k"));
        p.begin(b"new", None);
        assert_eq!(p.clamp(b"new", Some(1)), None);
    }
}
