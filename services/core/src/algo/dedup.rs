//! A bounded map remembering the most recent keys: the in-memory half of the
//! sequencer's dedup window (the store holds the durable half).
//!
//! Layout, chosen for the sequencer's hot path (one lookup and usually one
//! insert per command, over many conversations, so nearly every access is a
//! cache miss): the keys live in insertion order in one vector that becomes
//! a ring once full, so the key a new one overwrites is the oldest, in the
//! very place being written, and consecutive inserts write consecutive
//! places (one cache line per several keys). An open-addressing index
//! (linear probing, at most half full) maps a key's hash to a slot holding
//! the hash's top 32 bits (which also give its home slot), the key's
//! position and the value. A miss is decided by the index alone, the insert
//! that follows writes the slot the lookup just read, and a removal needs no
//! key comparison: a new key costs about one cache line of the index plus a
//! fraction of one of the ring (and, once full, the evicted key's slot),
//! where a hash map plus an order queue touches four or more.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

/// Largest capacity: positions and hashes share a `u64` slot.
const MAX_CAPACITY: usize = 1 << 30;
/// Smallest index, in slots.
const MIN_SLOTS: usize = 8;

/// Remembers up to `capacity` keys; the oldest inserted is forgotten first.
/// `S` picks the hasher (callers with random keys may use a faster one).
#[derive(Debug, Clone)]
pub struct DedupWindow<K, V, S = RandomState> {
    capacity: usize,
    /// In insertion order until full; then a ring whose oldest key is at
    /// `next`.
    keys: Vec<K>,
    /// The oldest key once full.
    next: usize,
    /// The index: `0` when empty, else `(hash >> 32) << 32 | (position + 1)`,
    /// with the key's value. Its length is a power of two, at least twice
    /// the keys.
    slots: Vec<(u64, Option<V>)>,
    hasher: S,
    evicted: bool,
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher + Default> DedupWindow<K, V, S> {
    /// An empty window holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            keys: Vec::new(),
            next: 0,
            slots: Vec::new(),
            hasher: S::default(),
            evicted: false,
        }
    }

    /// The top 32 bits of the key's hash, mixed so that any hasher spreads.
    fn tag(&self, key: &K) -> u64 {
        self.hasher.hash_one(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
    }

    /// The home slot of `tag`: its top bits.
    fn home(&self, tag: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (tag >> (32 - bits)) as usize
    }

    /// The slot of `key`.
    fn find(&self, key: &K) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = self.tag(key);
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        loop {
            let s = self.slots[i].0;
            if s == 0 {
                return None;
            }
            if s >> 32 == tag && self.keys[(s as u32 - 1) as usize] == *key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Indexes the key at `pos` under `tag`, with its value.
    fn place(&mut self, tag: u64, pos: usize, value: Option<V>) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        while self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = ((tag << 32) | (pos as u64 + 1), value);
    }

    /// Drops the key at `pos`, indexed under `tag`, from the index, shifting
    /// later slots of the probe run back so no lookup stops short.
    fn unplace(&mut self, tag: u64, pos: usize) {
        let mask = self.slots.len() - 1;
        let want = (tag << 32) | (pos as u64 + 1);
        let mut hole = self.home(tag);
        while self.slots[hole].0 != want {
            hole = (hole + 1) & mask;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j].0;
            if s == 0 {
                break;
            }
            // The slot may fill the hole when the hole lies on its probe
            // path (from its home up to `j`).
            let home = self.home(s >> 32);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots.swap(hole, j);
                hole = j;
            }
        }
        self.slots[hole] = (0, None);
    }

    /// Doubles the index (or creates it) and indexes every key again, from
    /// the tags it holds (no key is hashed or read).
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(MIN_SLOTS);
        let fresh = std::iter::repeat_with(|| (0, None)).take(len).collect();
        let old = std::mem::replace(&mut self.slots, fresh);
        for (s, value) in old.into_iter().filter(|(s, _)| *s != 0) {
            self.place(s >> 32, (s as u32 - 1) as usize, value);
        }
    }

    /// The value remembered for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).and_then(|i| self.slots[i].1.as_ref())
    }

    /// Remembers `key`; a key already present keeps its place and gets the new value.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(i) = self.find(&key) {
            self.slots[i].1 = Some(value);
            return;
        }
        if self.keys.len() < self.capacity {
            if self.slots.len() < 2 * (self.keys.len() + 1) {
                self.grow();
            }
            if self.keys.len() == self.keys.capacity() {
                // Grow by doubling, but never past the capacity.
                let more = self.keys.len().max(4).min(self.capacity - self.keys.len());
                self.keys.reserve_exact(more);
            }
            let tag = self.tag(&key);
            let pos = self.keys.len();
            self.keys.push(key);
            self.place(tag, pos, Some(value));
            return;
        }
        // Full: the new key takes the oldest key's place in the ring.
        let pos = self.next;
        let old = self.tag(&self.keys[pos]);
        self.unplace(old, pos);
        let tag = self.tag(&key);
        self.keys[pos] = key;
        self.place(tag, pos, Some(value));
        self.next = (pos + 1) % self.capacity;
        self.evicted = true;
    }

    /// Whether any key was ever forgotten to make room.
    pub fn has_evicted(&self) -> bool {
        self.evicted
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that all hash alike, so every probe run collides and the
    /// backward shift on removal is exercised.
    #[derive(Default, Clone)]
    struct Constant;
    struct ConstantHasher;
    impl std::hash::Hasher for ConstantHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }
    impl BuildHasher for Constant {
        type Hasher = ConstantHasher;
        fn build_hasher(&self) -> ConstantHasher {
            ConstantHasher
        }
    }

    #[test]
    fn colliding_keys_survive_evictions() {
        let mut w: DedupWindow<u32, u32, Constant> = DedupWindow::new(5);
        for k in 0..40u32 {
            w.insert(k, k * 10);
            let oldest = k.saturating_sub(4);
            for kept in oldest..=k {
                assert_eq!(w.get(&kept), Some(&(kept * 10)), "after {k}: {kept}");
            }
            if oldest > 0 {
                assert_eq!(w.get(&(oldest - 1)), None, "after {k}");
            }
        }
        assert_eq!(w.len(), 5);
        assert!(w.has_evicted());
    }

    #[test]
    fn a_present_key_keeps_its_place() {
        let mut w: DedupWindow<u32, &str> = DedupWindow::new(2);
        w.insert(1, "a");
        w.insert(2, "b");
        w.insert(1, "c");
        assert!(!w.has_evicted());
        w.insert(3, "d");
        assert_eq!(w.get(&1), None, "1 was the oldest insert");
        assert_eq!(w.get(&2), Some(&"b"));
        assert_eq!(w.get(&3), Some(&"d"));
    }
}
