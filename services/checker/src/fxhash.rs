//! The checker's maps hash with rustc's FxHash (the workspace's
//! `rustc-hash`). Histories are our own recordings, not hostile input, so
//! SipHash's flood resistance buys nothing and costs half the run time on a
//! history of millions of events.

/// A `HashMap` with FxHash.
pub(crate) type Map<K, V> = rustc_hash::FxHashMap<K, V>;
/// A `HashSet` with FxHash.
pub(crate) type Set<K> = rustc_hash::FxHashSet<K>;
