//! Single flight: at most one computation per key at a time, so a burst of
//! identical store reads (a huge group's members paging the same tail)
//! costs one read.

use futures_util::future::{BoxFuture, FutureExt, Shared as SharedFuture};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

type Flight<V> = SharedFuture<BoxFuture<'static, V>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map stays consistent: every update is a single insert or remove.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs at most one computation per key at a time; callers of a key that is
/// in flight wait for its result instead of starting their own.
pub(crate) struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The result of `work` for `key`, and whether this call joined one
    /// already in flight. The key is released when the work is done (after
    /// whatever the work itself records), even if the caller that started
    /// it went away: any waiter drives it.
    pub async fn run<F>(&self, key: K, work: impl FnOnce() -> F) -> (V, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, joined) = {
            let mut map = lock(&self.flights);
            match map.get(&key) {
                Some(f) => (f.clone(), true),
                None => {
                    let flights = Arc::clone(&self.flights);
                    let k = key.clone();
                    let work = work();
                    let f = async move {
                        let v = work.await;
                        lock(&flights).remove(&k);
                        v
                    }
                    .boxed()
                    .shared();
                    map.insert(key, f.clone());
                    (f, false)
                }
            }
        };
        (flight.await, joined)
    }
}
