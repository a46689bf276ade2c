//! [`EmbeddedStore`]: conversations, messages, timelines and cursors on the
//! engine.
//!
//! Each commit is a compare-and-set on a head under a striped lock, one
//! atomic batch, then the group commit. Writes in flight are tracked in
//! `pending::Pending` so readers never see a head (or anything a batch
//! wrote) before it is fsynced: heads and ranges are clamped to the durable
//! head; other reads that raced a write wait for its fsync.

mod conversation;
mod layout;
mod pending;
mod reads;
mod timeline;

use crate::engine::EmbeddedEngine;
use crate::error::EngineError;
use async_trait::async_trait;
use fjall::Keyspace;
use pending::{Pending, Stripes};
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{ConversationMeta, Message, Outcome, Role, TimelineEntry};
use seqline_core::ports::{ConversationBatch, ConversationState, MemberWindow, Store, TimelineBatch, TimelineState};
use seqline_core::{Epoch, Result};
use std::sync::Arc;

/// The keyspaces of the store.
pub(crate) struct Spaces {
    /// conv → meta.
    conv_meta: Keyspace,
    /// conv → head (u64 BE).
    conv_head: Keyspace,
    /// (conv, user) → role.
    members: Keyspace,
    /// (user, conv) → ().
    user_convs: Keyspace,
    /// (conv, user, conv_seq BE) → 1 joined / 0 left: membership windows.
    membership: Keyspace,
    /// (conv, user, device) → last client id.
    device_last: Keyspace,
    /// (conv, client id) → outcome.
    dedup: Keyspace,
    /// (conv, conv_seq BE) → message.
    messages: Keyspace,
    /// (user, user_seq BE) → entry.
    timeline: Keyspace,
    /// user → head (u64 BE).
    timeline_head: Keyspace,
    /// (user, conv) → last applied conv_seq (u64 BE).
    applied: Keyspace,
    /// (user, device) → cursor (u64 BE).
    cursors: Keyspace,
    /// (user, conv) → read position (u64 BE).
    read_positions: Keyspace,
    /// Facts about the store itself: `epoch` → u64 BE.
    store_meta: Keyspace,
}

impl Spaces {
    fn open(engine: &EmbeddedEngine) -> Result<Self, EngineError> {
        Ok(Self {
            conv_meta: engine.keyspace("conv_meta")?,
            conv_head: engine.keyspace("conv_head")?,
            members: engine.keyspace("members")?,
            user_convs: engine.keyspace("user_convs")?,
            membership: engine.keyspace("membership")?,
            device_last: engine.keyspace("device_last")?,
            dedup: engine.keyspace("dedup")?,
            messages: engine.keyspace("messages")?,
            timeline: engine.keyspace("timeline")?,
            timeline_head: engine.keyspace("timeline_head")?,
            applied: engine.keyspace("applied")?,
            cursors: engine.keyspace("device_cursors")?,
            read_positions: engine.keyspace("read_positions")?,
            store_meta: engine.keyspace("store_meta")?,
        })
    }
}

/// The embedded [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    engine: Arc<EmbeddedEngine>,
    ks: Spaces,
    stripes: Stripes,
    pending: Arc<Pending>,
    epoch: Epoch,
}

impl EmbeddedStore {
    /// Opens the store on `engine`.
    pub fn open(engine: Arc<EmbeddedEngine>) -> Result<Self> {
        let ks = Spaces::open(&engine)?;
        let epoch = load_or_create_epoch(&engine, &ks.store_meta)?;
        tracing::info!(%epoch, dir = %engine.dir().display(), "store opened");
        Ok(Self {
            inner: Arc::new(StoreInner {
                engine,
                ks,
                stripes: Stripes::new(256),
                pending: Arc::new(Pending::new()),
                epoch,
            }),
        })
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn epoch(&self) -> Result<Epoch> {
        Ok(self.inner.epoch)
    }
    async fn load_conversation(&self, conv: &ConversationId) -> Result<Option<ConversationState>> {
        self.inner.load_conversation(conv).await
    }
    async fn commit_conversation(&self, batch: ConversationBatch) -> Result<()> {
        conversation::commit(&self.inner, batch, Wait::Durable).await
    }
    async fn commit_conversation_ordered(&self, batch: ConversationBatch) -> Result<()> {
        conversation::commit(&self.inner, batch, Wait::Ordered).await
    }
    async fn flush(&self) -> Result<()> {
        self.inner.engine.flush().await
    }
    async fn dedup(&self, conv: &ConversationId, id: ClientMsgId) -> Result<Option<Outcome>> {
        self.inner.dedup(conv, id).await
    }
    async fn dedup_many(&self, keys: &[(ConversationId, ClientMsgId)]) -> Result<Vec<Option<Outcome>>> {
        self.inner.dedup_many(keys).await
    }
    async fn conversation_head(&self, conv: &ConversationId) -> Result<Option<ConvSeq>> {
        self.inner.conversation_head(conv).await
    }
    async fn conversation_meta(&self, conv: &ConversationId) -> Result<Option<ConversationMeta>> {
        self.inner.conversation_meta(conv).await
    }
    async fn member_role(&self, conv: &ConversationId, user: &UserId) -> Result<Option<Role>> {
        self.inner.member_role(conv, user).await
    }
    async fn members(&self, conv: &ConversationId) -> Result<Vec<(UserId, Role)>> {
        self.inner.members(conv).await
    }
    async fn membership(&self, conv: &ConversationId, user: &UserId) -> Result<Vec<MemberWindow>> {
        self.inner.membership(conv, user).await
    }
    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationId>> {
        self.inner.conversations_of(user).await
    }
    async fn messages_after(&self, conv: &ConversationId, after: ConvSeq, limit: usize) -> Result<Vec<Message>> {
        self.inner.messages(conv, reads::Range::After(after.0), limit).await
    }
    async fn messages_before(&self, conv: &ConversationId, before: ConvSeq, limit: usize) -> Result<Vec<Message>> {
        self.inner.messages(conv, reads::Range::Before(before.0), limit).await
    }
    async fn load_timeline(&self, user: &UserId) -> Result<TimelineState> {
        self.inner.load_timeline(user).await
    }
    async fn commit_timeline(&self, batch: TimelineBatch) -> Result<()> {
        timeline::commit(&self.inner, batch, Wait::Durable).await
    }
    async fn commit_timeline_ordered(&self, batch: TimelineBatch) -> Result<()> {
        timeline::commit(&self.inner, batch, Wait::Ordered).await
    }
    async fn timeline_head(&self, user: &UserId) -> Result<UserSeq> {
        self.inner.timeline_head(user).await
    }
    async fn timeline_after(&self, user: &UserId, after: UserSeq, limit: usize) -> Result<Vec<TimelineEntry>> {
        self.inner.timeline_after(user, after, limit).await
    }
    async fn set_device_cursor(&self, user: &UserId, device: &DeviceId, cursor: UserSeq) -> Result<()> {
        timeline::set_cursor(&self.inner, user, device, cursor).await
    }
    async fn device_cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<UserSeq>> {
        self.inner.device_cursor(user, device).await
    }
    async fn set_read_position(&self, user: &UserId, conv: &ConversationId, seq: ConvSeq) -> Result<ConvSeq> {
        timeline::set_read_position(&self.inner, user, conv, seq).await
    }
    async fn read_positions(&self, user: &UserId) -> Result<Vec<(ConversationId, ConvSeq)>> {
        self.inner.read_positions(user).await
    }
}

/// Key of the epoch in `store_meta`.
const EPOCH_KEY: &[u8] = b"epoch";

/// The epoch stored in this data directory, made (and fsynced) the first
/// time the store opens it. Only one process opens a directory at a time;
/// within it, stores opened at once on one engine agree through the lock.
fn load_or_create_epoch(engine: &EmbeddedEngine, meta: &Keyspace) -> std::result::Result<Epoch, EngineError> {
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = meta.get(EPOCH_KEY)? {
        let bytes: [u8; 8] = v
            .as_ref()
            .try_into()
            .map_err(|_| EngineError::Corrupt(format!("the store epoch has {} bytes, not 8", v.len())))?;
        return Ok(Epoch::from_u64(u64::from_be_bytes(bytes)));
    }
    let epoch = Epoch::random();
    meta.insert(EPOCH_KEY, epoch.as_u64().to_be_bytes())?;
    engine.persist_now()?;
    tracing::info!(%epoch, "new store: epoch created");
    Ok(epoch)
}

/// What a commit waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Its fsync: the batch asks the group commit for one.
    Durable,
    /// Only the journal: the batch asks for no fsync and becomes durable
    /// with the next one anybody asks for (see `Store::flush`).
    Ordered,
}

/// Writes a batch under its pending marker and, with [`Wait::Durable`],
/// waits for its fsync; the sync thread publishes `new_head` as durable
/// first (see [`StoreInner::finish_when_durable`]), so the marker is
/// cleared even if the caller stops waiting or its runtime goes away.
async fn commit_batch<B: Send + 'static>(
    inner: &Arc<StoreInner>,
    pending_key: Vec<u8>,
    new_head: u64,
    batch: B,
    wait: Wait,
    write: fn(&StoreInner, &[u8], B, Wait) -> std::result::Result<crate::sync::Ticket, EngineError>,
) -> Result<()> {
    let writer = Arc::clone(inner);
    let ticket = crate::engine::blocking(move || {
        let ticket = write(&writer, &pending_key, batch, wait)?;
        writer.finish_when_durable(ticket, pending_key, new_head);
        Ok(ticket)
    })
    .await?;
    if wait == Wait::Durable {
        inner.engine.durable(ticket).await?;
    }
    Ok(())
}

impl StoreInner {
    /// Once `ticket` is durable, `head` is the durable head of `pending_key`
    /// (a failed fsync leaves the head it had: the engine is failed).
    fn finish_when_durable(&self, ticket: crate::sync::Ticket, pending_key: Vec<u8>, head: u64) {
        let pending = Arc::clone(&self.pending);
        self.engine.on_durable(
            ticket,
            Box::new(move |durable| pending.finish(&pending_key, durable.then_some(head))),
        );
    }
}

#[cfg(test)]
mod tests;
