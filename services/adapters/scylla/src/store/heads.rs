//! Head rows: reading them, claiming a range with one LWT, marking a batch
//! applied, and the cache of heads this store committed. Shared by
//! conversations and timelines.

use super::Inner;
use crate::codec::{to_i64, to_u64};
use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;
use seqline_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Which kind of head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Conversation,
    Timeline,
}

#[derive(DeserializeRow)]
pub(crate) struct HeadRow {
    head: Option<i64>,
    prev_head: Option<i64>,
    ts: Option<i64>,
    pending: Option<Vec<u8>>,
    applied: Option<i64>,
}

/// A head row as stored.
#[derive(Debug)]
pub(crate) struct Head {
    /// Head after the last claimed batch.
    pub(crate) head: u64,
    /// Head before it.
    pub(crate) prev_head: u64,
    /// Write timestamp of its rows.
    pub(crate) ts: i64,
    /// The batch itself, encoded.
    pub(crate) pending: Vec<u8>,
    /// `ts` of the last batch whose rows are all written.
    pub(crate) applied: Option<i64>,
}

impl Head {
    /// Whether every row of the last batch is written.
    pub(crate) fn is_applied(&self) -> bool {
        self.applied.is_some_and(|a| a >= self.ts)
    }

    /// What readers may see: `head` once its batch is applied, else
    /// `prev_head`; `None` while the first (creating) batch is in flight.
    pub(crate) fn visible(&self) -> Option<u64> {
        match self.applied {
            Some(_) if self.is_applied() => Some(self.head),
            Some(_) => Some(self.prev_head),
            None => None,
        }
    }

    /// Whether the last batch is `pending` from `expected` to `new_head`:
    /// the retry of a claim that did succeed.
    pub(crate) fn is_claim_of(&self, pending: &[u8], expected: u64, new_head: u64) -> bool {
        self.pending == pending && self.prev_head == expected && self.head == new_head
    }
}

/// A head this store committed (or loaded) whose batch has every row
/// written and is marked applied: the claim written at `ts`, ending at
/// `head`.
///
/// `ts` names one claim of the head row for good: every claim sets a `ts`
/// above the one it replaced (`IF … ts = prior`), and head rows are never
/// deleted. So an LWT `IF head = head AND ts = ts` that applies proves the
/// row still holds this claim, applied, exactly what a serial read would
/// have shown; one that does not apply changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) head: u64,
    pub(crate) ts: i64,
}

/// Keys remembered per kind of head, at most. An entry is a key and two
/// numbers (about 100 bytes), so a full cache is a few MB.
pub(crate) const HEAD_CACHE_CAPACITY: usize = 65_536;

/// The last [`Committed`] head of each key this store wrote, bounded.
///
/// Two generations stand in for an LRU: entries go into `young`; when it
/// holds half the capacity it becomes `old` (the previous `old` is
/// dropped). A commit takes its key's entry out and puts the new one back
/// into `young`, so a key in use is never evicted, and one untouched for two
/// generations is. Only a cost, never an answer: a missing or stale entry
/// means one serial read more (see [`Committed`]).
pub(crate) struct HeadCache {
    half: usize,
    generations: Mutex<[HashMap<String, Committed>; 2]>,
}

impl HeadCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            generations: Mutex::new([HashMap::new(), HashMap::new()]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, Committed>; 2]> {
        // Nothing panics while it is held; a poisoned map is still whole.
        self.generations.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `key`'s entry out: whatever the commit or load then does, only
    /// what it succeeds in comes back ([`HeadCache::put`]).
    pub(crate) fn take(&self, key: &str) -> Option<Committed> {
        let mut g = self.lock();
        let [young, old] = &mut *g;
        young.remove(key).or_else(|| old.remove(key))
    }

    pub(crate) fn put(&self, key: &str, committed: Committed) {
        let mut g = self.lock();
        let [young, old] = &mut *g;
        old.remove(key);
        if young.len() >= self.half && !young.contains_key(key) {
            *old = std::mem::take(young);
            old.remove(key);
        }
        young.insert(key.to_owned(), committed);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g[0].len() + g[1].len()
    }
}

/// Paxos operations a store has started: serial reads of a head row and
/// conditional writes (LWTs). On Cassandra each is a Paxos round, the most
/// expensive thing the store asks of the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PaxosCounts {
    /// Head rows read at the serial level.
    pub serial_reads: u64,
    /// Conditional writes: claims of a head and settings.
    pub conditional_writes: u64,
}

#[derive(Default)]
pub(crate) struct PaxosCounters {
    serial_reads: AtomicU64,
    conditional_writes: AtomicU64,
}

impl PaxosCounters {
    pub(crate) fn conditional_write(&self) {
        self.conditional_writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> PaxosCounts {
        PaxosCounts {
            serial_reads: self.serial_reads.load(Ordering::Relaxed),
            conditional_writes: self.conditional_writes.load(Ordering::Relaxed),
        }
    }
}

/// Microseconds since the Unix epoch, the unit of CQL write timestamps.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Inner {
    fn head_statements(&self, kind: Kind) -> [&PreparedStatement; 5] {
        let st = &self.st;
        match kind {
            Kind::Conversation => [
                &st.conv_head_get,
                &st.conv_head_serial,
                &st.conv_head_create,
                &st.conv_head_advance,
                &st.conv_applied,
            ],
            Kind::Timeline => [
                &st.tl_head_get,
                &st.tl_head_serial,
                &st.tl_head_create,
                &st.tl_head_advance,
                &st.tl_applied,
            ],
        }
    }

    /// The cache of committed heads of `kind`.
    pub(crate) fn heads(&self, kind: Kind) -> &HeadCache {
        match kind {
            Kind::Conversation => &self.conv_heads,
            Kind::Timeline => &self.tl_heads,
        }
    }

    /// Remembers that `key`'s head is `head`, claimed at `ts`, every row of
    /// it written and marked applied. Call only once that is so.
    pub(crate) fn remember(&self, kind: Kind, key: &str, head: u64, ts: i64) {
        self.heads(kind).put(key, Committed { head, ts });
    }

    /// The head row of `key`; `serial` also sees (and completes) LWTs in
    /// flight, for writers and loaders.
    pub(crate) async fn read_head(&self, kind: Kind, key: &str, serial: bool) -> Result<Option<Head>> {
        let [get, get_serial, ..] = self.head_statements(kind);
        if serial {
            self.paxos.serial_reads.fetch_add(1, Ordering::Relaxed);
        }
        let row: Option<HeadRow> = self
            .first(if serial { get_serial } else { get }, (key,), "read head")
            .await?;
        let Some(HeadRow {
            head: Some(head),
            prev_head,
            ts,
            pending,
            applied,
        }) = row
        else {
            return Ok(None);
        };
        Ok(Some(Head {
            head: to_u64(head, "head")?,
            prev_head: to_u64(prev_head.unwrap_or(0), "prev_head")?,
            ts: ts.unwrap_or(0),
            pending: pending.unwrap_or_default(),
            applied,
        }))
    }

    /// Claims `expected → new_head` for `pending` with one LWT, after the
    /// claim written at `prior_ts` (read, or remembered in the cache; `None`
    /// creates the row). The write timestamp of the batch's rows if won,
    /// `None` if lost.
    ///
    /// An LWT that times out (contention, a slow replica) may or may not
    /// have been applied: a serial read, which completes a round in flight,
    /// tells. If it shows our batch we won; another batch, we lost; the old
    /// row, the answer stays unknown (`Unavailable`, safe to retry). Should
    /// our batch still land later, it is final and is rolled forward by the
    /// next commit or load, like any claimed batch.
    pub(crate) async fn claim(
        &self,
        kind: Kind,
        key: &str,
        prior_ts: Option<i64>,
        expected: u64,
        new_head: u64,
        pending: &[u8],
    ) -> Result<Option<i64>> {
        let [_, _, create, advance, _] = self.head_statements(kind);
        let new = to_i64(new_head, "head")?;
        let attempt = match prior_ts {
            None => {
                let ts = now_us();
                self.lwt(create, (key, new, ts, pending), "create head")
                    .await
                    .map(|won| won.then_some(ts))
            }
            Some(prior_ts) => {
                // Strictly after the last batch, whatever the clocks say.
                let ts = now_us().max(prior_ts.saturating_add(1));
                let old = to_i64(expected, "head")?;
                self.lwt(advance, (new, old, ts, pending, key, old, prior_ts), "advance head")
                    .await
                    .map(|won| won.then_some(ts))
            }
        };
        let unknown = match attempt {
            Err(Error::Unavailable(why)) => why,
            settled => return settled,
        };
        match self.read_head(kind, key, true).await? {
            Some(now) if now.is_claim_of(pending, expected, new_head) => Ok(Some(now.ts)),
            Some(now) if prior_ts == Some(now.ts) => Err(Error::Unavailable(unknown)),
            None if prior_ts.is_none() => Err(Error::Unavailable(unknown)),
            _ => Ok(None),
        }
    }

    /// Records that every row of the batch written at `ts` is stored.
    pub(crate) async fn mark_applied(&self, kind: Kind, key: &str, ts: i64) -> Result<()> {
        let [.., applied] = self.head_statements(kind);
        self.exec(applied, (ts, ts, key), "mark applied").await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(applied: Option<i64>) -> Head {
        Head {
            head: 7,
            prev_head: 4,
            ts: 100,
            pending: b"batch".to_vec(),
            applied,
        }
    }

    #[test]
    fn readers_see_only_applied_batches() {
        assert_eq!(head(Some(100)).visible(), Some(7));
        assert_eq!(head(Some(101)).visible(), Some(7));
        assert_eq!(head(Some(99)).visible(), Some(4), "in flight: the head before it");
        assert_eq!(head(None).visible(), None, "the creating batch is in flight");
        assert!(head(Some(100)).is_applied() && !head(Some(99)).is_applied());
    }

    #[test]
    fn recognises_its_own_claim() {
        let h = head(None);
        assert!(h.is_claim_of(b"batch", 4, 7));
        assert!(!h.is_claim_of(b"other", 4, 7));
        assert!(!h.is_claim_of(b"batch", 5, 7));
        assert!(!h.is_claim_of(b"batch", 4, 8));
    }

    #[test]
    fn the_head_cache_is_bounded_and_keeps_keys_in_use() {
        let cache = HeadCache::new(4);
        let c = |head| Committed { head, ts: 1 };
        cache.put("a", c(1));
        cache.put("b", c(2));
        assert_eq!(cache.take("a"), Some(c(1)));
        assert_eq!(cache.take("a"), None, "taken out");
        cache.put("a", c(3)); // young = {b, a} hit half: becomes old on the next new key
        cache.put("c", c(4)); // old = {b, a}, young = {c}
        assert_eq!(cache.take("b"), Some(c(2)), "found in the old generation");
        cache.put("b", c(5)); // young = {c, b}
        cache.put("d", c(6)); // old = {c, b}, young = {d}; a is gone
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.take("a"), None, "untouched for two generations: evicted");
        assert_eq!(cache.take("b"), Some(c(5)));
        cache.put("d", c(7)); // replaced in place
        assert_eq!(cache.take("d"), Some(c(7)));
        for i in 0..100u64 {
            cache.put(&i.to_string(), c(i));
            assert!(cache.len() <= 4);
        }
        assert_eq!(cache.take("99"), Some(c(99)));
    }

    #[test]
    fn timestamps_are_microseconds() {
        let t = now_us();
        assert!(t > 1_600_000_000_000_000 && t < 10_000_000_000_000_000);
    }
}
