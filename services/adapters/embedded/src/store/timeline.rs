//! `commit_timeline` and `set_device_cursor`: compare-and-set writes keyed
//! by user.

use super::layout;
use super::{StoreInner, Wait};
use crate::engine::blocking;
use crate::error::EngineError;
use crate::keys::u64_value;
use crate::sync::Ticket;
use crate::wire::{encode, WireEntry};
use seqline_core::ids::{ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::ports::TimelineBatch;
use seqline_core::{Error, Result};
use std::sync::Arc;
use tracing::instrument;

/// Writes a timeline batch, waiting as `wait` says; `Error::Fenced` on a head mismatch.
#[instrument(skip_all, fields(user_id = %batch.user, from = batch.expected_head.0, to = batch.new_head.0))]
pub(super) async fn commit(inner: &Arc<StoreInner>, batch: TimelineBatch, wait: Wait) -> Result<()> {
    batch.validate()?;
    let (pending_key, new_head) = (layout::pending_user(&batch.user), batch.new_head.0);
    super::commit_batch(inner, pending_key, new_head, batch, wait, write).await
}

pub(super) fn write(
    inner: &StoreInner,
    pending_key: &[u8],
    b: TimelineBatch,
    wait: Wait,
) -> Result<Ticket, EngineError> {
    let ks = &inner.ks;
    let user_key = layout::user(&b.user);
    let entries = b
        .entries
        .into_iter()
        .map(|e| Ok((layout::seq(&user_key, e.user_seq.0), encode(&WireEntry::from(e))?)))
        .collect::<Result<Vec<_>, EngineError>>()?;

    let writing = inner.engine.enter()?;
    let _stripe = inner.stripes.lock(pending_key);
    let stored = ks.timeline_head.get(&user_key)?.map(|v| u64_value(&v)).transpose()?;
    let head = stored.unwrap_or(0);
    if head != b.expected_head.0 {
        return Err(EngineError::Port(Error::Fenced(format!(
            "timeline of {}: head is {head}, writer expected {}",
            b.user, b.expected_head
        ))));
    }
    let mut batch = inner.engine.batch();
    for (key, value) in entries {
        batch.insert(&ks.timeline, key, value);
    }
    batch.insert(&ks.timeline_head, user_key, b.new_head.0.to_be_bytes());
    for (conv, seq) in &b.applied {
        batch.insert(
            &ks.applied,
            layout::pair(b.user.as_str(), conv.as_str()),
            seq.0.to_be_bytes(),
        );
    }
    inner.pending.begin(pending_key, Some(head));
    let committed = match wait {
        Wait::Durable => inner.engine.commit(writing, batch),
        Wait::Ordered => inner.engine.commit_lazy(writing, batch),
    };
    match committed {
        Ok(ticket) => Ok(ticket),
        Err(e) => {
            inner.pending.finish(pending_key, Some(head));
            Err(e)
        }
    }
}

/// Moves `device`'s cursor forward to `cursor` (never back), durably.
pub(super) async fn set_cursor(
    inner: &Arc<StoreInner>,
    user: &UserId,
    device: &DeviceId,
    cursor: UserSeq,
) -> Result<()> {
    let key = layout::pair(user.as_str(), device.as_str());
    let pending_key = layout::pending_cursor(user, device);
    advance(inner, |s| &s.cursors, key, pending_key, cursor.0)
        .await
        .map(|_| ())
}

/// Moves `user`'s read position in `conv` forward to `seq` (never back),
/// durably; returns the position now stored.
pub(super) async fn set_read_position(
    inner: &Arc<StoreInner>,
    user: &UserId,
    conv: &ConversationId,
    seq: ConvSeq,
) -> Result<ConvSeq> {
    let key = layout::pair(user.as_str(), conv.as_str());
    let pending_key = layout::pending_read(user, conv);
    advance(inner, |s| &s.read_positions, key, pending_key, seq.0)
        .await
        .map(ConvSeq)
}

/// A monotonic u64 register: raises the value at `key` of `space` to
/// `value` unless it is already at least that, durably, and returns the
/// value now stored.
async fn advance(
    inner: &Arc<StoreInner>,
    space: fn(&super::Spaces) -> &fjall::Keyspace,
    key: Vec<u8>,
    pending_key: Vec<u8>,
    value: u64,
) -> Result<u64> {
    let writer = Arc::clone(inner);
    let marker = pending_key.clone();
    let written = blocking(move || {
        let writing = writer.engine.enter()?;
        let _stripe = writer.stripes.lock(&marker);
        let ks = space(&writer.ks);
        let stored = ks.get(&key)?.map(|v| u64_value(&v)).transpose()?;
        if let Some(s) = stored.filter(|s| *s >= value) {
            return Ok(Err(s));
        }
        let mut batch = writer.engine.batch();
        batch.insert(ks, key, value.to_be_bytes());
        writer.pending.begin(&marker, stored);
        match writer.engine.commit(writing, batch) {
            Ok(ticket) => {
                writer.finish_when_durable(ticket, marker, value);
                Ok(Ok(ticket))
            }
            Err(e) => {
                writer.pending.finish(&marker, stored);
                Err(e)
            }
        }
    })
    .await?;
    match written {
        Ok(ticket) => {
            inner.engine.durable(ticket).await?;
            Ok(value)
        }
        // Nothing written, but a value at least this far may still be
        // in flight, and the caller is owed durability.
        Err(stored) => {
            if inner.pending.is_pending(&pending_key) {
                inner.engine.sync_inner().await?;
            }
            Ok(stored)
        }
    }
}
