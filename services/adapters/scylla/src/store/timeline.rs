//! `commit_timeline`, `load_timeline` and device cursors.

use super::heads::{Head, Kind};
use super::Inner;
use crate::codec::{
    bucket, decode_pending, encode_pending, id, message_columns, to_i64, to_u64, EntryPut, PendingTimeline,
};
use futures_util::future::BoxFuture;
use seqline_core::ids::{ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::ports::{TimelineBatch, TimelineState};
use seqline_core::{Error, Result};
use tracing::instrument;

impl Inner {
    #[instrument(skip_all, fields(user_id = %batch.user, from = batch.expected_head.0, to = batch.new_head.0))]
    pub(super) async fn commit_timeline(&self, batch: TimelineBatch) -> Result<()> {
        batch.validate()?;
        let (user, expected, new_head) = (batch.user, batch.expected_head.0, batch.new_head.0);
        let pending = PendingTimeline {
            entries: batch.entries,
            applied: batch.applied,
        };
        let bytes = encode_pending(&pending)?;
        let key = user.as_str();
        let fenced = |why: String| Err(Error::Fenced(format!("timeline of {user}: {why}")));
        // As for conversations: the head cache first, the full path if the
        // claim from it is lost.
        let cached = self.heads(Kind::Timeline).take(key);
        if let Some(cached) = cached.filter(|c| c.head == expected) {
            let claimed = self
                .claim(Kind::Timeline, key, Some(cached.ts), expected, new_head, &bytes)
                .await?;
            if let Some(ts) = claimed {
                return self.apply_claimed_timeline(&user, &pending, new_head, ts).await;
            }
            tracing::debug!("the cached head was stale; reading the head row");
        }
        let prior = self.read_head(Kind::Timeline, key, true).await?;
        match &prior {
            Some(head) if !head.is_applied() && head.is_claim_of(&bytes, expected, new_head) => {
                self.finish_timeline(&user, head).await?;
                self.remember(Kind::Timeline, key, head.head, head.ts);
                return Ok(());
            }
            Some(head) if head.head != expected => {
                return fenced(format!("head is {}, writer expected {expected}", head.head))
            }
            Some(head) => self.finish_timeline(&user, head).await?,
            None if expected != 0 => return fenced(format!("head is 0, writer expected {expected}")),
            None => {}
        }
        let Some(ts) = self
            .claim(Kind::Timeline, key, prior.map(|p| p.ts), expected, new_head, &bytes)
            .await?
        else {
            return fenced(format!("lost the compare-and-set from head {expected}"));
        };
        self.apply_claimed_timeline(&user, &pending, new_head, ts).await
    }

    /// Writes the rows of a batch this store just claimed at `ts`, marks it
    /// applied and remembers `new_head` as committed.
    async fn apply_claimed_timeline(
        &self,
        user: &UserId,
        pending: &PendingTimeline,
        new_head: u64,
        ts: i64,
    ) -> Result<()> {
        self.apply_timeline(user, pending, ts).await?;
        self.mark_applied(Kind::Timeline, user.as_str(), ts).await?;
        self.remember(Kind::Timeline, user.as_str(), new_head, ts);
        Ok(())
    }

    async fn finish_timeline(&self, user: &UserId, head: &Head) -> Result<()> {
        if head.is_applied() {
            return Ok(());
        }
        let pending: PendingTimeline = decode_pending(&head.pending)?;
        self.apply_timeline(user, &pending, head.ts).await?;
        self.mark_applied(Kind::Timeline, user.as_str(), head.ts).await
    }

    async fn apply_timeline(&self, user: &UserId, p: &PendingTimeline, ts: i64) -> Result<()> {
        let (st, u) = (&self.st, user.as_str());
        let mut writes: Vec<BoxFuture<'_, Result<()>>> = Vec::new();
        for e in &p.entries {
            let m = &e.message;
            let (seq, conv_seq) = (to_i64(e.user_seq.0, "user_seq")?, to_i64(m.conv_seq.0, "conv_seq")?);
            let b = bucket(e.user_seq.0, self.bucket_size);
            let values = EntryPut::new(u, (b, seq), (m.conv.as_str(), conv_seq), message_columns(m)?, ts);
            writes.push(self.write(&st.entry_put, values, "write timeline entry"));
        }
        for (conv, seq) in &p.applied {
            let values = (u, conv.as_str(), to_i64(seq.0, "conv_seq")?, ts);
            writes.push(self.write(&st.applied_put, values, "write applied"));
        }
        self.run_all(writes).await
    }

    /// Also refreshes the head cache, as `load_conversation` does.
    pub(super) async fn load_timeline(&self, user: &UserId) -> Result<TimelineState> {
        self.heads(Kind::Timeline).take(user.as_str());
        let Some(head) = self.read_head(Kind::Timeline, user.as_str(), true).await? else {
            return Ok(TimelineState::default());
        };
        self.finish_timeline(user, &head).await?;
        let rows: Vec<(String, i64)> = self.all(&self.st.applied_all, (user.as_str(),), "read applied").await?;
        let applied = rows
            .into_iter()
            .map(|(conv, seq)| Ok((id(ConversationId::parse(conv))?, ConvSeq(to_u64(seq, "conv_seq")?))))
            .collect::<Result<_>>()?;
        self.remember(Kind::Timeline, user.as_str(), head.head, head.ts);
        Ok(TimelineState {
            head: UserSeq(head.head),
            applied,
        })
    }

    /// The cursor is its own write timestamp: the highest one always wins,
    /// so a cursor never moves back whatever order the writes land in.
    pub(super) async fn set_cursor(&self, user: &UserId, device: &DeviceId, cursor: UserSeq) -> Result<()> {
        let c = to_i64(cursor.0, "cursor")?;
        self.exec(
            &self.st.cursor_put,
            (c, c, user.as_str(), device.as_str()),
            "write cursor",
        )
        .await
        .map(drop)
    }

    pub(super) async fn device_cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<UserSeq>> {
        let row: Option<(Option<i64>,)> = self
            .first(&self.st.cursor_get, (user.as_str(), device.as_str()), "read cursor")
            .await?;
        row.and_then(|(c,)| c)
            .map(|c| Ok(UserSeq(to_u64(c, "cursor")?)))
            .transpose()
    }

    /// Like the cursor: the position is its own write timestamp. Returns
    /// the position stored after the write (a higher one may have won).
    pub(super) async fn set_read_position(
        &self,
        user: &UserId,
        conv: &ConversationId,
        seq: ConvSeq,
    ) -> Result<ConvSeq> {
        let c = to_i64(seq.0, "read position")?;
        self.exec(
            &self.st.read_put,
            (c, c, user.as_str(), conv.as_str()),
            "write read position",
        )
        .await?;
        let row: Option<(Option<i64>,)> = self
            .first(&self.st.read_get, (user.as_str(), conv.as_str()), "read read position")
            .await?;
        let stored = row.and_then(|(c,)| c).map(|c| to_u64(c, "read position")).transpose()?;
        Ok(ConvSeq(stored.unwrap_or(seq.0).max(seq.0)))
    }

    pub(super) async fn read_positions(&self, user: &UserId) -> Result<Vec<(ConversationId, ConvSeq)>> {
        let rows: Vec<(String, Option<i64>)> = self.all(&self.st.read_all, (user.as_str(),), "read positions").await?;
        rows.into_iter()
            .filter_map(|(conv, seq)| seq.map(|s| (conv, s)))
            .map(|(conv, s)| {
                let conv = ConversationId::parse(&conv).map_err(|e| Error::Corrupt(format!("read position: {e}")))?;
                Ok((conv, ConvSeq(to_u64(s, "read position")?)))
            })
            .collect()
    }
}
