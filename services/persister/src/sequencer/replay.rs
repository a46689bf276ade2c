//! Re-emitting the deliveries of a message that was stored but whose
//! deliveries may not have left (a crash between store write and offset
//! commit). Recipients are the members at the time of the message: today's
//! members with later joins and leaves undone.

use seqline_core::ids::{ConvSeq, ConversationId, UserId};
use seqline_core::model::MessageKind;
use seqline_core::ports::Store;
use seqline_core::records::{Delivery, LogRecord};
use seqline_core::Result;
use std::collections::BTreeSet;

/// Deliveries of message `seq` of `conv` (whose head is `head`).
pub(crate) async fn deliveries(
    store: &dyn Store,
    conv: &ConversationId,
    seq: ConvSeq,
    head: ConvSeq,
) -> Result<Vec<LogRecord>> {
    let after = ConvSeq(seq.0.saturating_sub(1));
    let span = (head.0 - after.0) as usize;
    let messages = store.messages_after(conv, after, span.max(1)).await?;
    let Some(first) = messages.first().filter(|m| m.conv_seq == seq) else {
        return Ok(Vec::new());
    };
    let mut members: BTreeSet<UserId> = store.members(conv).await?.into_iter().map(|(u, _)| u).collect();
    for later in messages.iter().skip(1).rev() {
        match later.kind {
            MessageKind::Joined => later.members.iter().for_each(|u| {
                members.remove(u);
            }),
            MessageKind::Left => members.extend(later.members.iter().cloned()),
            _ => {}
        }
    }
    if first.kind == MessageKind::Left {
        members.extend(first.members.iter().cloned());
    }
    Ok(members
        .into_iter()
        .map(|user| {
            LogRecord::Delivery(Delivery {
                user,
                message: first.clone(),
            })
        })
        .collect())
}
