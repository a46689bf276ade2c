//! A bounded map remembering the most recent keys: the in-memory half of the
//! sequencer's dedup window (the store holds the durable half).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Remembers up to `capacity` keys; the oldest inserted is forgotten first.
/// `S` picks the hasher (callers with random keys may use a faster one).
#[derive(Debug, Clone)]
pub struct DedupWindow<K, V, S = RandomState> {
    capacity: usize,
    map: HashMap<K, V, S>,
    order: VecDeque<K>,
    evicted: bool,
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher + Default> DedupWindow<K, V, S> {
    /// An empty window holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::default(),
            order: VecDeque::new(),
            evicted: false,
        }
    }

    /// The value remembered for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Remembers `key`; a key already present keeps its place and gets the new value.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(v) = self.map.get_mut(&key) {
            *v = value;
            return;
        }
        if self.map.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
                self.evicted = true;
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }

    /// Whether any key was ever forgotten to make room.
    pub fn has_evicted(&self) -> bool {
        self.evicted
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
