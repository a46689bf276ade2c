//! `commit_conversation`: validate, compare-and-set the head, one batch,
//! group commit.

use super::layout;
use super::{StoreInner, Wait};
use crate::error::EngineError;
use crate::keys::{u64_value, KeyReader};
use crate::sync::Ticket;
use crate::wire::{encode, WireMessage, WireOutcome};
use seqline_core::ids::ConvSeq;
use seqline_core::ports::{ConversationBatch, MemberWindow};
use seqline_core::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::instrument;

/// Writes a sequencer batch, waiting as `wait` says (see [`seqline_core::ports::Store`]).
#[instrument(skip_all, fields(conversation_id = %batch.conv, from = batch.expected_head.0, to = batch.new_head.0))]
pub(super) async fn commit(inner: &Arc<StoreInner>, batch: ConversationBatch, wait: Wait) -> Result<()> {
    batch.validate()?;
    let (pending_key, new_head) = (layout::pending_conv(&batch.conv), batch.new_head.0);
    super::commit_batch(inner, pending_key, new_head, batch, wait, write).await
}

/// Checks the head and writes the batch (blocking, under the stripe lock).
pub(super) fn write(
    inner: &StoreInner,
    pending_key: &[u8],
    b: ConversationBatch,
    wait: Wait,
) -> Result<Ticket, EngineError> {
    let ks = &inner.ks;
    let conv_key = layout::conv(&b.conv);
    // Encode before locking: the lock is held only for the check and write.
    let meta = b.create.as_ref().map(encode).transpose()?;
    let messages = b
        .messages
        .into_iter()
        .map(|m| Ok((layout::seq(&conv_key, m.conv_seq.0), encode(&WireMessage::from(m))?)))
        .collect::<Result<Vec<_>, EngineError>>()?;
    let dedup = b
        .dedup
        .into_iter()
        .map(|(id, o)| Ok((layout::dedup(&conv_key, id), encode(&WireOutcome::from(o))?)))
        .collect::<Result<Vec<_>, EngineError>>()?;

    let writing = inner.engine.enter()?;
    let _stripe = inner.stripes.lock(&conv_key);
    let stored = inner.ks.conv_head.get(&conv_key)?.map(|v| u64_value(&v)).transpose()?;
    let fenced = |why: String| {
        Err(EngineError::Port(Error::Fenced(format!(
            "conversation {}: {why}",
            b.conv
        ))))
    };
    match (stored, &meta) {
        (Some(_), Some(_)) => return fenced("it already exists".into()),
        (Some(head), None) if head != b.expected_head.0 => {
            return fenced(format!("head is {head}, writer expected {}", b.expected_head))
        }
        (None, None) if !messages.is_empty() || !b.members.is_empty() => {
            return Err(EngineError::Port(Error::NotFound(format!("conversation {}", b.conv))))
        }
        _ => {}
    }
    let exists = stored.is_some() || meta.is_some();

    let mut batch = inner.engine.batch();
    if let Some(meta) = meta {
        batch.insert(&ks.conv_meta, conv_key.clone(), meta);
    }
    if exists {
        batch.insert(&ks.conv_head, conv_key.clone(), b.new_head.0.to_be_bytes());
    }
    for (key, value) in messages {
        batch.insert(&ks.messages, key, value);
    }
    for (key, value) in dedup {
        batch.insert(&ks.dedup, key, value);
    }
    for change in &b.members {
        let member_key = layout::pair(b.conv.as_str(), change.user.as_str());
        let index_key = layout::pair(change.user.as_str(), b.conv.as_str());
        match change.role {
            Some(role) => {
                batch.insert(&ks.members, member_key, layout::role_byte(role));
                batch.insert(&ks.user_convs, index_key, []);
            }
            None => {
                batch.remove(&ks.members, member_key);
                batch.remove(&ks.user_convs, index_key);
            }
        }
    }
    let mut events: BTreeMap<&str, Vec<(ConvSeq, bool)>> = BTreeMap::new();
    for change in &b.members {
        let e = events.entry(change.user.as_str()).or_default();
        e.push((change.at, change.role.is_some()));
    }
    for (user, new) in events {
        let prefix = layout::pair(b.conv.as_str(), user);
        let mut kept = stored_events(inner, &prefix)?;
        let stored: Vec<ConvSeq> = kept.iter().map(|(at, _)| *at).collect();
        MemberWindow::merge_events(&mut kept, &new);
        for at in stored.iter().filter(|at| !kept.iter().any(|(k, _)| k == *at)) {
            batch.remove(&ks.membership, layout::seq(&prefix, at.0));
        }
        for (at, joined) in kept.iter().filter(|(at, _)| !stored.contains(at)) {
            batch.insert(&ks.membership, layout::seq(&prefix, at.0), [u8::from(*joined)]);
        }
    }
    for ((user, device), id) in &b.device_last {
        batch.insert(
            &ks.device_last,
            layout::device_last(&b.conv, user, device),
            *id.0.as_bytes(),
        );
    }
    inner.pending.begin(pending_key, stored);
    let committed = match wait {
        Wait::Durable => inner.engine.commit(writing, batch),
        Wait::Ordered => inner.engine.commit_lazy(writing, batch),
    };
    match committed {
        Ok(ticket) => Ok(ticket),
        Err(e) => {
            inner.pending.finish(pending_key, stored);
            Err(e)
        }
    }
}

/// The membership events stored under `prefix` (conv, user), oldest first.
pub(super) fn stored_events(inner: &StoreInner, prefix: &[u8]) -> Result<Vec<(ConvSeq, bool)>, EngineError> {
    let mut out = Vec::new();
    for kv in inner.ks.membership.prefix(prefix) {
        let (k, v) = kv.into_inner()?;
        let at = KeyReader::new(&k).skip(prefix.len())?.u64()?;
        out.push((ConvSeq(at), v.first() == Some(&1)));
    }
    Ok(out)
}
