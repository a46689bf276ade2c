//! Head rows: reading them, claiming a range with one LWT, marking a batch
//! applied. Shared by conversations and timelines.

use super::Inner;
use crate::codec::{to_i64, to_u64};
use scylla::statement::prepared::PreparedStatement;
use scylla::DeserializeRow;
use seqline_core::{Error, Result};

/// Which kind of head.
#[derive(Clone, Copy, Debug)]
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

    /// The head row of `key`; `serial` also sees (and completes) LWTs in
    /// flight, for writers and loaders.
    pub(crate) async fn read_head(&self, kind: Kind, key: &str, serial: bool) -> Result<Option<Head>> {
        let [get, get_serial, ..] = self.head_statements(kind);
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

    /// Claims `expected → new_head` for `pending` with one LWT, after `prior`
    /// (the row as read; `None` creates it). The write timestamp of the
    /// batch's rows if won, `None` if lost.
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
        prior: Option<&Head>,
        expected: u64,
        new_head: u64,
        pending: &[u8],
    ) -> Result<Option<i64>> {
        let [_, _, create, advance, _] = self.head_statements(kind);
        let new = to_i64(new_head, "head")?;
        let attempt = match prior {
            None => {
                let ts = now_us();
                self.lwt(create, (key, new, ts, pending), "create head")
                    .await
                    .map(|won| won.then_some(ts))
            }
            Some(prior) => {
                // Strictly after the last batch, whatever the clocks say.
                let ts = now_us().max(prior.ts.saturating_add(1));
                let old = to_i64(expected, "head")?;
                self.lwt(advance, (new, old, ts, pending, key, old, prior.ts), "advance head")
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
            Some(now) if prior.is_some_and(|p| p.ts == now.ts) => Err(Error::Unavailable(unknown)),
            None if prior.is_none() => Err(Error::Unavailable(unknown)),
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
    fn timestamps_are_microseconds() {
        let t = now_us();
        assert!(t > 1_600_000_000_000_000 && t < 10_000_000_000_000_000);
    }
}
