//! `commit_conversation` and `load_conversation`: claim, apply, roll forward.

use super::heads::{Head, Kind};
use super::Inner;
use crate::codec::{
    bucket, conv_kind_text, decode_pending, dedup_shard, encode_pending, message_columns, outcome_columns, role_text,
    to_i64, MessagePut, PendingConversation,
};
use crate::schema::DEDUP_SHARDS;
use futures_util::future::BoxFuture;
use seqline_core::ids::ConvSeq;
use seqline_core::ids::ConversationId;
use seqline_core::ports::{ConversationBatch, ConversationState, MemberWindow};
use seqline_core::{Error, Result};
use std::collections::BTreeMap;
use tracing::instrument;

/// What the batch writes; member changes reduced to their net effect.
fn pending_of(b: ConversationBatch) -> PendingConversation {
    let events = b
        .members
        .iter()
        .map(|c| (c.user.clone(), c.at.0, c.role.is_some()))
        .collect();
    let members: BTreeMap<_, _> = b.members.into_iter().map(|c| (c.user, c.role)).collect();
    PendingConversation {
        create: b.create,
        messages: b.messages,
        members: members.into_iter().collect(),
        events,
        dedup: b.dedup,
        device_last: b.device_last.into_iter().map(|((u, d), id)| (u, d, id)).collect(),
    }
}

impl Inner {
    #[instrument(skip_all, fields(conversation_id = %batch.conv, from = batch.expected_head.0, to = batch.new_head.0))]
    pub(super) async fn commit_conversation(&self, batch: ConversationBatch) -> Result<()> {
        batch.validate()?;
        let (conv, expected, new_head) = (batch.conv.clone(), batch.expected_head.0, batch.new_head.0);
        let has_rows = !batch.messages.is_empty() || !batch.members.is_empty();
        let pending = pending_of(batch);
        let bytes = encode_pending(&pending)?;
        let key = conv.as_str();
        let fenced = |why: String| Err(Error::Fenced(format!("conversation {conv}: {why}")));
        // Taken out: only a commit that succeeds puts an entry back.
        let cached = self.heads(Kind::Conversation).take(key);
        if let Some(cached) = cached.filter(|c| c.head == expected && pending.create.is_none()) {
            // Our last commit ended at `expected`, rows applied: claim at once.
            // Lost (or unknown, then found lost by a serial read): nothing
            // was written, so the full path below decides, from the row.
            let claimed = self
                .claim(Kind::Conversation, key, Some(cached.ts), expected, new_head, &bytes)
                .await?;
            if let Some(ts) = claimed {
                return self.apply_claimed_conversation(&conv, &pending, new_head, ts).await;
            }
            tracing::debug!("the cached head was stale; reading the head row");
        }
        let prior = self.read_head(Kind::Conversation, key, true).await?;
        match (&prior, pending.create.is_some()) {
            (Some(head), _) if !head.is_applied() && head.is_claim_of(&bytes, expected, new_head) => {
                // Our own claim, retried before its rows were all written.
                self.finish_conversation(&conv, head).await?;
                self.remember(Kind::Conversation, key, head.head, head.ts);
                return Ok(());
            }
            (Some(_), true) => return fenced("it already exists".into()),
            (Some(head), false) if head.head != expected => {
                return fenced(format!("head is {}, writer expected {expected}", head.head))
            }
            (Some(head), false) => self.finish_conversation(&conv, head).await?,
            (None, false) if has_rows => return Err(Error::NotFound(format!("conversation {conv}"))),
            (None, false) => {
                // Outcomes for a conversation that does not exist (refusals):
                // no head to move.
                let ts = super::heads::now_us();
                return self.apply_conversation(&conv, &pending, ts).await;
            }
            (None, true) => {}
        }
        let Some(ts) = self
            .claim(Kind::Conversation, key, prior.map(|p| p.ts), expected, new_head, &bytes)
            .await?
        else {
            return fenced(format!("lost the compare-and-set from head {expected}"));
        };
        self.apply_claimed_conversation(&conv, &pending, new_head, ts).await
    }

    /// Writes the rows of a batch this store just claimed at `ts`, marks it
    /// applied and remembers `new_head` as committed.
    async fn apply_claimed_conversation(
        &self,
        conv: &ConversationId,
        pending: &PendingConversation,
        new_head: u64,
        ts: i64,
    ) -> Result<()> {
        self.apply_conversation(conv, pending, ts).await?;
        self.mark_applied(Kind::Conversation, conv.as_str(), ts).await?;
        self.remember(Kind::Conversation, conv.as_str(), new_head, ts);
        Ok(())
    }

    /// Applies the last claimed batch if it is not yet (it is final).
    async fn finish_conversation(&self, conv: &ConversationId, head: &Head) -> Result<()> {
        if head.is_applied() {
            return Ok(());
        }
        let pending: PendingConversation = decode_pending(&head.pending)?;
        self.apply_conversation(conv, &pending, head.ts).await?;
        self.mark_applied(Kind::Conversation, conv.as_str(), head.ts).await
    }

    /// Writes every row of `p` at timestamp `ts`.
    async fn apply_conversation(&self, conv: &ConversationId, p: &PendingConversation, ts: i64) -> Result<()> {
        let (st, c) = (&self.st, conv.as_str());
        let mut writes: Vec<BoxFuture<'_, Result<()>>> = Vec::new();
        if let Some(meta) = &p.create {
            let created = to_i64(meta.created_ms, "created_ms")?;
            let values = (
                c,
                conv_kind_text(meta.kind),
                meta.title.as_str(),
                meta.created_by.as_str(),
                created,
                ts,
            );
            writes.push(self.write(&st.meta_put, values, "write settings"));
        }
        for m in &p.messages {
            let seq = to_i64(m.conv_seq.0, "conv_seq")?;
            let b = bucket(m.conv_seq.0, self.bucket_size);
            let values = MessagePut::new(c, b, seq, message_columns(m)?, ts);
            writes.push(self.write(&st.message_put, values, "write message"));
        }
        for (id, outcome) in &p.dedup {
            let (status, seq, code, reason) = outcome_columns(outcome)?;
            let shard = dedup_shard(*id, DEDUP_SHARDS);
            let values = (c, shard, id.0, status, seq, code, reason, ts);
            writes.push(self.write(&st.dedup_put, values, "write outcome"));
        }
        for (user, role) in &p.members {
            let u = user.as_str();
            match role {
                Some(role) => {
                    writes.push(self.write(&st.member_put, (c, u, role_text(*role), ts), "write member"));
                    writes.push(self.write(&st.user_conv_put, (u, c, ts), "index member"));
                }
                None => {
                    writes.push(self.write(&st.member_del, (ts, c, u), "remove member"));
                    writes.push(self.write(&st.user_conv_del, (ts, u, c), "unindex member"));
                }
            }
        }
        let mut events: BTreeMap<&str, Vec<(ConvSeq, bool)>> = BTreeMap::new();
        for (user, at, joined) in &p.events {
            events.entry(user.as_str()).or_default().push((ConvSeq(*at), *joined));
        }
        let fresh = p.create.is_some();
        for (user, new) in events {
            writes.push(Box::pin(self.write_membership(c, user, new, fresh, ts)));
        }
        for (user, device, id) in &p.device_last {
            let values = (c, user.as_str(), device.as_str(), id.0, ts);
            writes.push(self.write(&st.device_last_put, values, "write device last"));
        }
        self.run_all(writes).await
    }

    /// Adds a user's membership events of a batch to the stored ones (read
    /// first unless the batch creates the conversation), bounded.
    async fn write_membership(
        &self,
        conv: &str,
        user: &str,
        new: Vec<(ConvSeq, bool)>,
        fresh: bool,
        ts: i64,
    ) -> Result<()> {
        let mut events = if fresh {
            Vec::new()
        } else {
            self.membership_events(conv, user).await?
        };
        MemberWindow::merge_events(&mut events, &new);
        let encoded = events
            .iter()
            .map(|(at, joined)| to_i64(at.0, "conv_seq").map(|v| if *joined { v } else { -v }))
            .collect::<Result<Vec<i64>>>()?;
        self.exec(&self.st.membership_put, (conv, user, encoded, ts), "write membership")
            .await
            .map(drop)
    }

    /// Also refreshes the head cache: a writer taking a key over starts
    /// from what it loaded, never from an entry of an earlier ownership.
    pub(super) async fn load_conversation(&self, conv: &ConversationId) -> Result<Option<ConversationState>> {
        self.heads(Kind::Conversation).take(conv.as_str());
        let Some(head) = self.read_head(Kind::Conversation, conv.as_str(), true).await? else {
            return Ok(None);
        };
        self.finish_conversation(conv, &head).await?;
        let meta = self
            .conversation_meta(conv)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("conversation {conv} has a head but no settings")))?;
        let members = self.members(conv).await?.into_iter().collect();
        let device_last = self.device_last(conv).await?;
        self.remember(Kind::Conversation, conv.as_str(), head.head, head.ts);
        Ok(Some(ConversationState {
            meta,
            head: seqline_core::ids::ConvSeq(head.head),
            members,
            device_last,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ConvSeq, UserId};
    use seqline_core::model::Role;
    use seqline_core::ports::MemberChange;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn batch() -> ConversationBatch {
        ConversationBatch {
            conv: ConversationId::parse("g:x").unwrap(),
            expected_head: ConvSeq(3),
            new_head: ConvSeq(3),
            create: None,
            messages: vec![],
            members: vec![
                MemberChange {
                    user: user("bob"),
                    role: Some(Role::Member),
                    at: ConvSeq(2),
                },
                MemberChange {
                    user: user("amy"),
                    role: Some(Role::Admin),
                    at: ConvSeq(2),
                },
                MemberChange {
                    user: user("bob"),
                    role: None,
                    at: ConvSeq(3),
                },
            ],
            dedup: vec![],
            device_last: vec![],
        }
    }

    #[test]
    fn member_changes_reduce_to_their_net_effect() {
        let p = pending_of(batch());
        assert_eq!(p.members, vec![(user("amy"), Some(Role::Admin)), (user("bob"), None)]);
        assert_eq!(p.events.len(), 3, "every event is kept for the membership windows");
    }

    #[test]
    fn inconsistent_batches_are_invalid() {
        let mut b = batch();
        b.new_head = ConvSeq(4);
        assert!(matches!(b.validate(), Err(Error::Invalid(_))));
        let mut b = batch();
        b.create = Some(seqline_core::model::ConversationMeta {
            conv: b.conv.clone(),
            kind: seqline_core::model::ConversationKind::Group,
            title: String::new(),
            created_by: user("amy"),
            created_ms: 0,
        });
        assert!(
            matches!(b.validate(), Err(Error::Invalid(_))),
            "a create must start at head 0"
        );
    }
}
