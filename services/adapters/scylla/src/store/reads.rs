//! The read side. Sequence ranges are clamped to the visible head and read
//! bucket by bucket, paged, until the limit is reached.

use super::heads::Kind;
use super::Inner;
use crate::codec::{
    bucket, corrupt, dedup_shard, id, role_of, to_i64, to_u64, EntryRow, MessageRow, MetaRow, OutcomeRow,
};
use crate::schema::DEDUP_SHARDS;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{ConversationMeta, Message, Outcome, Role, TimelineEntry};
use seqline_core::ports::MemberWindow;
use seqline_core::Result;
use std::collections::HashMap;

/// Which messages of a conversation.
pub(crate) enum Range {
    /// conv_seq > n, ascending.
    After(u64),
    /// conv_seq < n, the newest ones, returned ascending.
    Before(u64),
}

/// The seq range of bucket `b`, clipped to `lo..=hi`.
fn clip(b: u64, size: u64, lo: u64, hi: u64) -> (u64, u64) {
    (
        lo.max(b * size),
        hi.min(b.saturating_mul(size).saturating_add(size - 1)),
    )
}

/// Rows of a clamped range must be exactly `first, first+1, …`: the visible
/// head only covers fully written batches, so a hole is corruption.
fn check_contiguous(seqs: impl Iterator<Item = u64>, first: u64, step_up: bool) -> Result<()> {
    for (i, seq) in seqs.enumerate() {
        let want = if step_up { first + i as u64 } else { first - i as u64 };
        if seq != want {
            return Err(corrupt(format!(
                "sequence {want} is missing below the head (found {seq})"
            )));
        }
    }
    Ok(())
}

impl Inner {
    pub(super) async fn visible_conv_head(&self, conv: &ConversationId) -> Result<Option<u64>> {
        let head = self.read_head(Kind::Conversation, conv.as_str(), false).await?;
        Ok(head.and_then(|h| h.visible()))
    }

    pub(super) async fn visible_timeline_head(&self, user: &UserId) -> Result<u64> {
        let head = self.read_head(Kind::Timeline, user.as_str(), false).await?;
        Ok(head.and_then(|h| h.visible()).unwrap_or(0))
    }

    pub(super) async fn messages(&self, conv: &ConversationId, range: Range, limit: usize) -> Result<Vec<Message>> {
        let Some(head) = self.visible_conv_head(conv).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi, newest) = match range {
            Range::After(after) => (after.saturating_add(1), head, false),
            Range::Before(before) => (1, head.min(before.saturating_sub(1)), true),
        };
        if limit == 0 || lo > hi {
            return Ok(Vec::new());
        }
        let size = self.bucket_size;
        let (first, last) = (lo / size, hi / size);
        let buckets: Vec<u64> = if newest {
            (first..=last).rev().collect()
        } else {
            (first..=last).collect()
        };
        let st = if newest {
            &self.st.messages_desc
        } else {
            &self.st.messages_asc
        };
        let mut out = Vec::new();
        for b in buckets {
            let (from, to) = clip(b, size, lo, hi);
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let (from, to) = (to_i64(from, "conv_seq")?, to_i64(to, "conv_seq")?);
            let rows: Vec<MessageRow> = self
                .all(
                    st,
                    (conv.as_str(), bucket(b * size, size), from, to, want),
                    "read messages",
                )
                .await?;
            for row in rows {
                out.push(row.into_message(conv.clone())?);
            }
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        let seqs = out.iter().map(|m| m.conv_seq.0);
        if newest {
            check_contiguous(seqs, hi, false)?;
            out.reverse();
        } else {
            check_contiguous(seqs, lo, true)?;
        }
        Ok(out)
    }

    pub(super) async fn timeline_after(
        &self,
        user: &UserId,
        after: UserSeq,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>> {
        let head = self.visible_timeline_head(user).await?;
        let (lo, hi) = (after.0.saturating_add(1), head);
        if limit == 0 || lo > hi {
            return Ok(Vec::new());
        }
        let size = self.bucket_size;
        let mut out = Vec::new();
        for b in lo / size..=hi / size {
            let (from, to) = clip(b, size, lo, hi);
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let (from, to) = (to_i64(from, "user_seq")?, to_i64(to, "user_seq")?);
            let rows: Vec<EntryRow> = self
                .all(
                    &self.st.entries_asc,
                    (user.as_str(), bucket(b * size, size), from, to, want),
                    "read timeline",
                )
                .await?;
            for row in rows {
                out.push(row.into_entry()?);
            }
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        check_contiguous(out.iter().map(|e| e.user_seq.0), lo, true)?;
        Ok(out)
    }

    pub(super) async fn dedup(&self, conv: &ConversationId, client: ClientMsgId) -> Result<Option<Outcome>> {
        let shard = dedup_shard(client, DEDUP_SHARDS);
        let row: Option<OutcomeRow> = self
            .first(&self.st.dedup_get, (conv.as_str(), shard, client.0), "read outcome")
            .await?;
        row.map(OutcomeRow::into_outcome).transpose()
    }

    pub(super) async fn conversation_meta(&self, conv: &ConversationId) -> Result<Option<ConversationMeta>> {
        let row: Option<MetaRow> = self.first(&self.st.meta_get, (conv.as_str(),), "read settings").await?;
        row.map(|r| r.into_meta(conv.clone())).transpose()
    }

    pub(super) async fn member_role(&self, conv: &ConversationId, user: &UserId) -> Result<Option<Role>> {
        let row: Option<(String,)> = self
            .first(&self.st.member_get, (conv.as_str(), user.as_str()), "read member")
            .await?;
        row.map(|(role,)| role_of(&role)).transpose()
    }

    pub(super) async fn membership(&self, conv: &ConversationId, user: &UserId) -> Result<Vec<MemberWindow>> {
        let events = self.membership_events(conv.as_str(), user.as_str()).await?;
        let member = self.member_role(conv, user).await?.is_some();
        Ok(MemberWindow::from_events(&events, member))
    }

    /// The stored membership events of `user` in `conv`, oldest first.
    pub(super) async fn membership_events(&self, conv: &str, user: &str) -> Result<Vec<(ConvSeq, bool)>> {
        let row: Option<(Option<Vec<i64>>,)> = self
            .first(&self.st.membership_get, (conv, user), "read membership")
            .await?;
        row.and_then(|(events,)| events)
            .unwrap_or_default()
            .into_iter()
            .map(|e| Ok((ConvSeq(to_u64(e.abs(), "conv_seq")?), e > 0)))
            .collect()
    }

    pub(super) async fn members(&self, conv: &ConversationId) -> Result<Vec<(UserId, Role)>> {
        let rows: Vec<(String, String)> = self.all(&self.st.members_all, (conv.as_str(),), "read members").await?;
        rows.into_iter()
            .map(|(user, role)| Ok((id(UserId::parse(user))?, role_of(&role)?)))
            .collect()
    }

    pub(super) async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationId>> {
        let rows: Vec<(String,)> = self
            .all(&self.st.user_convs, (user.as_str(),), "read conversations of user")
            .await?;
        rows.into_iter()
            .map(|(conv,)| id(ConversationId::parse(conv)))
            .collect()
    }

    pub(super) async fn device_last(&self, conv: &ConversationId) -> Result<HashMap<(UserId, DeviceId), ClientMsgId>> {
        let rows: Vec<(String, String, uuid::Uuid)> = self
            .all(&self.st.device_last_all, (conv.as_str(),), "read device last")
            .await?;
        rows.into_iter()
            .map(|(user, device, last)| {
                Ok((
                    (id(UserId::parse(user))?, id(DeviceId::parse(device))?),
                    ClientMsgId(last),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_buckets() {
        assert_eq!(clip(0, 10, 3, 25), (3, 9));
        assert_eq!(clip(1, 10, 3, 25), (10, 19));
        assert_eq!(clip(2, 10, 3, 25), (20, 25));
    }

    #[test]
    fn holes_are_corruption() {
        assert!(check_contiguous([4, 5, 6].into_iter(), 4, true).is_ok());
        assert!(check_contiguous([9, 8].into_iter(), 9, false).is_ok());
        assert!(check_contiguous([4, 6].into_iter(), 4, true).is_err());
        assert!(check_contiguous([3].into_iter(), 4, true).is_err());
    }
}
