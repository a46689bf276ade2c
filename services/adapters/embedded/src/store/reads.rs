//! The read side of the store. Heads and seq ranges are clamped to durable
//! heads; other reads that saw a write in flight wait for its fsync (what
//! they read was written before they asked, so that fsync covers it).

use super::layout::{self, corrupt_id, role_of};
use super::StoreInner;
use crate::engine::blocking;
use crate::error::EngineError;
use crate::keys::{u64_value, KeyReader};
use crate::wire::{decode_stored, WireEntry, WireMessage, WireOutcome};
use fjall::Readable;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{ConversationMeta, Message, Outcome, Role, TimelineEntry};
use seqline_core::ports::{ConversationState, MemberWindow, TimelineState};
use seqline_core::Result;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Which messages of a conversation.
pub(super) enum Range {
    /// conv_seq > n, ascending.
    After(u64),
    /// conv_seq < n, the newest ones, returned ascending.
    Before(u64),
}

impl StoreInner {
    /// Waits for the fsync of an in-flight write to `pending_key`, if any.
    async fn settle(&self, pending_key: &[u8]) -> Result<()> {
        if self.pending.is_pending(pending_key) {
            self.engine.sync_inner().await?;
        }
        Ok(())
    }

    async fn read<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&StoreInner) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R> {
        let this = Arc::clone(self);
        Ok(blocking(move || f(&this)).await?)
    }

    pub(super) async fn load_conversation(
        self: &Arc<Self>,
        conv: &ConversationId,
    ) -> Result<Option<ConversationState>> {
        let key = layout::conv(conv);
        let state = self
            .read(move |s| {
                let snap = s.engine.snapshot();
                let Some(meta) = snap.get(&s.ks.conv_meta, &key)? else {
                    return Ok(None);
                };
                let meta: ConversationMeta = decode_stored(&meta)?;
                let head = snap
                    .get(&s.ks.conv_head, &key)?
                    .map(|v| u64_value(&v))
                    .transpose()?
                    .unwrap_or(0);
                let mut members = BTreeMap::new();
                for kv in snap.prefix(&s.ks.members, &key) {
                    let (k, v) = kv.into_inner()?;
                    let user = KeyReader::new(&k).skip(key.len())?.str()?;
                    members.insert(UserId::parse(user).map_err(corrupt_id)?, role_of(&v)?);
                }
                let mut device_last = HashMap::new();
                for kv in snap.prefix(&s.ks.device_last, &key) {
                    let (k, v) = kv.into_inner()?;
                    let mut r = KeyReader::new(&k).skip(key.len())?;
                    let user = UserId::parse(r.str()?).map_err(corrupt_id)?;
                    let device = DeviceId::parse(r.str()?).map_err(corrupt_id)?;
                    let id = uuid::Uuid::from_slice(&v).map_err(|e| EngineError::Corrupt(e.to_string()))?;
                    device_last.insert((user, device), ClientMsgId(id));
                }
                Ok(Some(ConversationState {
                    meta,
                    head: ConvSeq(head),
                    members,
                    device_last,
                }))
            })
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(state)
    }

    pub(super) async fn dedup(self: &Arc<Self>, conv: &ConversationId, id: ClientMsgId) -> Result<Option<Outcome>> {
        let key = layout::dedup(&layout::conv(conv), id);
        let outcome = self
            .read(move |s| {
                s.ks.dedup
                    .get(&key)?
                    .map(|v| decode_stored::<WireOutcome>(&v).map(Outcome::from))
                    .transpose()
            })
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(outcome)
    }

    /// Many dedup lookups in one trip to the blocking pool.
    pub(super) async fn dedup_many(
        self: &Arc<Self>,
        keys: &[(ConversationId, ClientMsgId)],
    ) -> Result<Vec<Option<Outcome>>> {
        let raw: Vec<Vec<u8>> = keys
            .iter()
            .map(|(c, id)| layout::dedup(&layout::conv(c), *id))
            .collect();
        let outcomes = self
            .read(move |s| {
                raw.iter()
                    .map(|key| {
                        s.ks.dedup
                            .get(key)?
                            .map(|v| decode_stored::<WireOutcome>(&v).map(Outcome::from))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>, EngineError>>()
            })
            .await?;
        let mut convs: Vec<&ConversationId> = keys.iter().map(|(c, _)| c).collect();
        convs.sort();
        convs.dedup();
        for conv in convs {
            self.settle(&layout::pending_conv(conv)).await?;
        }
        Ok(outcomes)
    }

    pub(super) async fn conversation_head(self: &Arc<Self>, conv: &ConversationId) -> Result<Option<ConvSeq>> {
        let key = layout::conv(conv);
        let pending_key = layout::pending_conv(conv);
        self.read(move |s| Ok(s.durable_conv_head(&key, &pending_key)?.map(ConvSeq)))
            .await
    }

    /// The stored head of a conversation, clamped to its durable head.
    fn durable_conv_head(&self, key: &[u8], pending_key: &[u8]) -> Result<Option<u64>, EngineError> {
        let stored = self.ks.conv_head.get(key)?.map(|v| u64_value(&v)).transpose()?;
        Ok(self.pending.clamp(pending_key, stored))
    }

    pub(super) async fn conversation_meta(self: &Arc<Self>, conv: &ConversationId) -> Result<Option<ConversationMeta>> {
        let key = layout::conv(conv);
        let meta = self
            .read(move |s| s.ks.conv_meta.get(&key)?.map(|v| decode_stored(&v)).transpose())
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(meta)
    }

    pub(super) async fn member_role(self: &Arc<Self>, conv: &ConversationId, user: &UserId) -> Result<Option<Role>> {
        let key = layout::pair(conv.as_str(), user.as_str());
        let role = self
            .read(move |s| s.ks.members.get(&key)?.map(|v| role_of(&v)).transpose())
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(role)
    }

    pub(super) async fn membership(
        self: &Arc<Self>,
        conv: &ConversationId,
        user: &UserId,
    ) -> Result<Vec<MemberWindow>> {
        let key = layout::pair(conv.as_str(), user.as_str());
        let windows = self
            .read(move |s| {
                let snap = s.engine.snapshot();
                let member = snap.get(&s.ks.members, &key)?.is_some();
                // Bounded when written (see `MemberWindow::merge_events`).
                let events = super::conversation::stored_events(s, &key)?;
                Ok(MemberWindow::from_events(&events, member))
            })
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(windows)
    }

    pub(super) async fn members(self: &Arc<Self>, conv: &ConversationId) -> Result<Vec<(UserId, Role)>> {
        let key = layout::conv(conv);
        let members = self
            .read(move |s| {
                let mut out = Vec::new();
                for kv in s.ks.members.prefix(&key) {
                    let (k, v) = kv.into_inner()?;
                    let user = KeyReader::new(&k).skip(key.len())?.str()?;
                    out.push((UserId::parse(user).map_err(corrupt_id)?, role_of(&v)?));
                }
                Ok(out)
            })
            .await?;
        self.settle(&layout::pending_conv(conv)).await?;
        Ok(members)
    }

    pub(super) async fn conversations_of(self: &Arc<Self>, user: &UserId) -> Result<Vec<ConversationId>> {
        let key = layout::user(user);
        let convs = self
            .read(move |s| {
                let mut out = Vec::new();
                for kv in s.ks.user_convs.prefix(&key) {
                    let k = kv.key()?;
                    let conv = KeyReader::new(&k).skip(key.len())?.str()?;
                    out.push(ConversationId::parse(conv).map_err(corrupt_id)?);
                }
                Ok(out)
            })
            .await?;
        if convs.iter().any(|c| self.pending.is_pending(&layout::pending_conv(c))) {
            self.engine.sync_inner().await?;
        }
        Ok(convs)
    }

    pub(super) async fn messages(
        self: &Arc<Self>,
        conv: &ConversationId,
        range: Range,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let key = layout::conv(conv);
        let pending_key = layout::pending_conv(conv);
        self.read(move |s| {
            let Some(head) = s.durable_conv_head(&key, &pending_key)? else {
                return Ok(Vec::new());
            };
            let (lo, hi, newest) = match range {
                Range::After(after) => (after.saturating_add(1), head, false),
                Range::Before(before) => (1, head.min(before.saturating_sub(1)), true),
            };
            if limit == 0 || lo > hi {
                return Ok(Vec::new());
            }
            let range = s.ks.messages.range(layout::seq(&key, lo)..=layout::seq(&key, hi));
            let decode = |kv: fjall::Guard| -> Result<Message, EngineError> {
                Ok(decode_stored::<WireMessage>(&kv.value()?)?.into())
            };
            if newest {
                let mut out = range.rev().take(limit).map(decode).collect::<Result<Vec<_>, _>>()?;
                out.reverse();
                Ok(out)
            } else {
                range.take(limit).map(decode).collect()
            }
        })
        .await
    }

    pub(super) async fn load_timeline(self: &Arc<Self>, user: &UserId) -> Result<TimelineState> {
        let key = layout::user(user);
        let state = self
            .read(move |s| {
                let snap = s.engine.snapshot();
                let head = snap
                    .get(&s.ks.timeline_head, &key)?
                    .map(|v| u64_value(&v))
                    .transpose()?
                    .unwrap_or(0);
                let mut applied = HashMap::new();
                for kv in snap.prefix(&s.ks.applied, &key) {
                    let (k, v) = kv.into_inner()?;
                    let conv = KeyReader::new(&k).skip(key.len())?.str()?;
                    applied.insert(
                        ConversationId::parse(conv).map_err(corrupt_id)?,
                        ConvSeq(u64_value(&v)?),
                    );
                }
                Ok(TimelineState {
                    head: UserSeq(head),
                    applied,
                })
            })
            .await?;
        self.settle(&layout::pending_user(user)).await?;
        Ok(state)
    }

    fn durable_user_head(&self, key: &[u8], pending_key: &[u8]) -> Result<u64, EngineError> {
        let stored = self.ks.timeline_head.get(key)?.map(|v| u64_value(&v)).transpose()?;
        Ok(self.pending.clamp(pending_key, stored).unwrap_or(0))
    }

    pub(super) async fn timeline_head(self: &Arc<Self>, user: &UserId) -> Result<UserSeq> {
        let key = layout::user(user);
        let pending_key = layout::pending_user(user);
        self.read(move |s| Ok(UserSeq(s.durable_user_head(&key, &pending_key)?)))
            .await
    }

    pub(super) async fn timeline_after(
        self: &Arc<Self>,
        user: &UserId,
        after: UserSeq,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>> {
        let key = layout::user(user);
        let pending_key = layout::pending_user(user);
        self.read(move |s| {
            let head = s.durable_user_head(&key, &pending_key)?;
            let lo = after.0.saturating_add(1);
            if limit == 0 || lo > head {
                return Ok(Vec::new());
            }
            s.ks.timeline
                .range(layout::seq(&key, lo)..=layout::seq(&key, head))
                .take(limit)
                .map(|kv| Ok(decode_stored::<WireEntry>(&kv.value()?)?.into()))
                .collect()
        })
        .await
    }

    pub(super) async fn device_cursor(self: &Arc<Self>, user: &UserId, device: &DeviceId) -> Result<Option<UserSeq>> {
        let key = layout::pair(user.as_str(), device.as_str());
        let pending_key = layout::pending_cursor(user, device);
        self.read(move |s| {
            let stored = s.ks.cursors.get(&key)?.map(|v| u64_value(&v)).transpose()?;
            Ok(s.pending.clamp(&pending_key, stored).map(UserSeq))
        })
        .await
    }

    pub(super) async fn read_positions(self: &Arc<Self>, user: &UserId) -> Result<Vec<(ConversationId, ConvSeq)>> {
        let key = layout::user(user);
        let user = user.clone();
        let positions = self
            .read(move |s| {
                let mut out = Vec::new();
                for kv in s.ks.read_positions.prefix(&key) {
                    let (k, v) = kv.into_inner()?;
                    let conv = KeyReader::new(&k).skip(key.len())?.str()?;
                    out.push((
                        ConversationId::parse(conv).map_err(corrupt_id)?,
                        ConvSeq(u64_value(&v)?),
                    ));
                }
                Ok(out)
            })
            .await?;
        let mut out = Vec::with_capacity(positions.len());
        for (conv, seq) in positions {
            let pending_key = layout::pending_read(&user, &conv);
            // A position still in flight is reported as it was before it.
            if let Some(seq) = self.pending.clamp(&pending_key, Some(seq.0)) {
                out.push((conv, ConvSeq(seq)));
            }
        }
        Ok(out)
    }
}
