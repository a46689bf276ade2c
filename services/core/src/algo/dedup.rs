//! A bounded map remembering the most recent keys: the in-memory half of the
//! sequencer's dedup window (the store holds the durable half).
//!
//! Layout, chosen for the sequencer's hot path (one lookup and usually one
//! insert per command, over many conversations, so nearly every access is a
//! cache miss): the entries live in insertion order in one vector that
//! becomes a ring once full, so the entry a new key overwrites is the oldest
//! one, in the very slot being written; an open-addressing index of `u64`
//! slots (linear probing, at most half full) maps a key's hash to its entry.
//! A slot holds the hash's top 32 bits (which also give its home slot) and
//! the entry's position, so a miss is decided by the index alone and a
//! removal needs no key comparison. A new key then costs about three cache
//! lines (its index slot, its entry, the evicted key's index slot), where a
//! hash map plus an order queue touches six or more.

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
    /// In insertion order until full; then a ring whose oldest entry is at
    /// `next`.
    entries: Vec<(K, V)>,
    /// The oldest entry once full.
    next: usize,
    /// The index: 0 when empty, else `(hash >> 32) << 32 | (position + 1)`.
    /// Its length is a power of two, at least twice the entries.
    slots: Vec<u64>,
    hasher: S,
    evicted: bool,
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher + Default> DedupWindow<K, V, S> {
    /// An empty window holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            entries: Vec::new(),
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

    /// The slot and entry position of `key`.
    fn find(&self, key: &K) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let tag = self.tag(key);
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s >> 32 == tag {
                let pos = (s as u32 - 1) as usize;
                if self.entries[pos].0 == *key {
                    return Some((i, pos));
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Indexes entry `pos` under `tag`.
    fn place(&mut self, tag: u64, pos: usize) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (tag << 32) | (pos as u64 + 1);
    }

    /// Drops entry `pos`, indexed under `tag`, from the index, shifting
    /// later slots of the probe run back so no lookup stops short.
    fn unplace(&mut self, tag: u64, pos: usize) {
        let mask = self.slots.len() - 1;
        let want = (tag << 32) | (pos as u64 + 1);
        let mut hole = self.home(tag);
        while self.slots[hole] != want {
            hole = (hole + 1) & mask;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            // `s` may fill the hole when the hole lies on its probe path
            // (from its home up to `j`).
            let home = self.home(s >> 32);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
    }

    /// Doubles the index (or creates it) and indexes every entry again,
    /// from the tags it holds (no key is hashed or read).
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; len]);
        for s in old.into_iter().filter(|s| *s != 0) {
            self.place(s >> 32, (s as u32 - 1) as usize);
        }
    }

    /// The value remembered for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).map(|(_, pos)| &self.entries[pos].1)
    }

    /// Remembers `key`; a key already present keeps its place and gets the new value.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some((_, pos)) = self.find(&key) {
            self.entries[pos].1 = value;
            return;
        }
        if self.entries.len() < self.capacity {
            if self.slots.len() < 2 * (self.entries.len() + 1) {
                self.grow();
            }
            if self.entries.len() == self.entries.capacity() {
                // Grow by doubling, but never past the capacity.
                let more = self.entries.len().max(4).min(self.capacity - self.entries.len());
                self.entries.reserve_exact(more);
            }
            let tag = self.tag(&key);
            let pos = self.entries.len();
            self.entries.push((key, value));
            self.place(tag, pos);
            return;
        }
        // Full: the new key takes the oldest entry's place in the ring.
        let pos = self.next;
        let old = self.tag(&self.entries[pos].0);
        self.unplace(old, pos);
        let tag = self.tag(&key);
        self.entries[pos] = (key, value);
        self.place(tag, pos);
        self.next = (pos + 1) % self.capacity;
        self.evicted = true;
    }

    /// Whether any key was ever forgotten to make room.
    pub fn has_evicted(&self) -> bool {
        self.evicted
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
