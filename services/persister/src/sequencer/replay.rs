//! Re-emitting the deliveries of a message that was stored but whose
//! deliveries may not have left (a crash between store write and offset
//! commit). Recipients are the members at the time of the message: today's
//! members with later joins and leaves undone.

use super::diffusion;
use seqline_core::ids::{ConvSeq, ConversationId, UserId};
use seqline_core::model::MessageKind;
use seqline_core::ports::Store;
use seqline_core::records::{ConvEvent, Delivery, LogRecord};
use seqline_core::Result;
use std::collections::BTreeSet;

/// Deliveries (and the conversation event, in read-diffusion mode) of
/// message `seq` of `conv` (whose head is `head`).
pub(crate) async fn deliveries(
    store: &dyn Store,
    conv: &ConversationId,
    seq: ConvSeq,
    head: ConvSeq,
) -> Result<Vec<LogRecord>> {
    // From the message before `seq`: its flag is the mode before `seq`.
    let after = ConvSeq(seq.0.saturating_sub(2));
    let span = (head.0 - after.0) as usize;
    let mut messages = store.messages_after(conv, after, span.max(1)).await?;
    let read_before = match messages.first() {
        Some(p) if p.conv_seq.0 + 1 == seq.0 => {
            let read = p.read_diffusion;
            messages.remove(0);
            read
        }
        _ => false,
    };
    let Some(first) = messages.first().filter(|m| m.conv_seq == seq) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if diffusion::is_conv_event(first, read_before) {
        out.push(LogRecord::ConvEvent(ConvEvent { message: first.clone() }));
    }
    // Read mode on both sides: no member list needed (it may be huge).
    if read_before && first.read_diffusion {
        let none = std::iter::empty::<&UserId>;
        for user in diffusion::recipients(first, true, none) {
            out.push(LogRecord::Delivery(Delivery {
                user: user.clone(),
                message: diffusion::copy_for(first, true, user),
            }));
        }
        return Ok(out);
    }
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
    out.extend(members.into_iter().map(|user| {
        LogRecord::Delivery(Delivery {
            user,
            message: first.clone(),
        })
    }));
    Ok(out)
}
