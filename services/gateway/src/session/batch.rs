//! The `batch` frame: several commands of one conversation published as one
//! record, which the sequencer applies whole (consecutive `conv_seq`s) or
//! not at all. Each command is answered by its own `ack` or `nack`.

use super::send::{Sender, MAX_VCLOCK};
use crate::admission;
use crate::edge::ratelimit::TokenBucket;
use crate::publisher::{Job, Requester};
use crate::state::Shared;
use seqline_core::model::now_ms;
use seqline_core::protocol::{BatchEntry, ErrorCode, ServerFrame};
use seqline_core::records::{
    BatchCommand, BatchItem, Command, MembersCommand, SendCommand, MAX_BATCH_BYTES, MAX_BATCH_COMMANDS,
};
use seqline_core::{ClientMsgId, ConversationId};
use std::collections::HashSet;
use std::time::Instant;

/// Publishes a batch; returns the frame to answer with now, if any (each
/// command's `ack` or `nack` comes later, from the receipt).
pub(crate) async fn batch(
    shared: &Shared,
    sender: Sender<'_>,
    conv: ConversationId,
    prev: Option<ClientMsgId>,
    commands: Vec<BatchEntry>,
) -> Option<ServerFrame> {
    if let Err((code, message)) = check(shared, &mut *sender.sends, prev, &commands) {
        // Named by its first command's id, like a send's refusal.
        let frame = ServerFrame::Error {
            req: None,
            code,
            message,
            id: commands.first().map(|c| c.id().to_string()),
            conv: Some(conv),
            retry_after_ms: None,
        };
        return Some(frame);
    }
    let first = commands[0].id();
    if let Err((slow, retry)) = shared.admission.check(commands.len()) {
        return Some(admission::refusal(&first.to_string(), Some(conv), slow, retry));
    }
    let ids: Vec<ClientMsgId> = commands.iter().map(BatchEntry::id).collect();
    let origin = sender.origin(shared);
    let sent_ms = now_ms();
    let mut last = prev;
    let items = commands
        .into_iter()
        .map(|entry| match entry {
            BatchEntry::Send {
                id,
                body,
                priority,
                vclock,
            } => {
                let item = BatchItem::Send(SendCommand {
                    origin: origin.clone(),
                    conv: conv.clone(),
                    client_msg_id: id,
                    prev: last,
                    body,
                    priority,
                    vclock,
                    sent_ms,
                });
                last = Some(id);
                item
            }
            BatchEntry::Leave { id } => BatchItem::ChangeMembers(MembersCommand {
                origin: origin.clone(),
                conv: conv.clone(),
                client_msg_id: id,
                add: Vec::new(),
                remove: vec![origin.user.clone()],
            }),
        })
        .collect();
    let job = Job {
        command: Command::Batch(BatchCommand {
            origin,
            conv: conv.clone(),
            commands: items,
        }),
        requester: Requester::Connection {
            tx: sender.link.tx.clone(),
            id: first,
            conv: conv.clone(),
        },
        trace: seqline_telemetry::current_traceparent(),
    };
    shared.admission.sent(ids.iter().copied());
    let published = tokio::select! {
        r = shared.publisher.publish(job) => r.is_ok(),
        () = shared.stop.cancelled() => false,
    };
    if published {
        return None;
    }
    for id in &ids {
        shared.admission.settled(id);
    }
    Some(ServerFrame::send_error(
        &first.to_string(),
        Some(conv),
        ErrorCode::Unavailable,
        "the gateway is stopping; resend the batch",
    ))
}

/// What the gateway itself refuses in a batch (nothing is published):
/// the message names the batch by its first id and the failing command
/// by its index and id.
fn check(
    shared: &Shared,
    sends: &mut TokenBucket,
    prev: Option<ClientMsgId>,
    commands: &[BatchEntry],
) -> Result<(), (ErrorCode, String)> {
    let Some(first) = commands.first().map(BatchEntry::id) else {
        return Err((ErrorCode::InvalidField, "batch: no commands".into()));
    };
    let invalid = |m: String| Err((ErrorCode::InvalidField, format!("batch {first}: {m}")));
    if commands.len() > MAX_BATCH_COMMANDS {
        return invalid(format!("{} commands, over {MAX_BATCH_COMMANDS}", commands.len()));
    }
    let max = shared.config.max_body_bytes;
    let mut ids = HashSet::new();
    let mut bytes = 0usize;
    for (i, entry) in commands.iter().enumerate() {
        let id = entry.id();
        let at = format!("command {i} ({id})");
        if id.0.is_nil() {
            return invalid(format!("{at}: the id must be a non-nil UUID"));
        }
        if !ids.insert(id) {
            return invalid(format!("{at}: the id is used twice in the batch"));
        }
        if let BatchEntry::Send { body, vclock, .. } = entry {
            if body.is_empty() {
                return invalid(format!("{at}: the body is empty"));
            }
            if body.len() > max {
                let m = format!("batch {first}: {at}: the body is {} bytes, over {max}", body.len());
                return Err((ErrorCode::TooLarge, m));
            }
            if vclock.len() > MAX_VCLOCK {
                return invalid(format!("{at}: the vector clock names over {MAX_VCLOCK} users"));
            }
            bytes += body.len();
            if bytes > MAX_BATCH_BYTES {
                let m = format!("batch {first}: {at}: the bodies are over {MAX_BATCH_BYTES} bytes together");
                return Err((ErrorCode::TooLarge, m));
            }
        }
    }
    match prev {
        Some(p) if p.0.is_nil() => return invalid("prev must be a non-nil UUID".into()),
        Some(p) if ids.contains(&p) => return invalid("prev names a command of the batch".into()),
        _ => {}
    }
    let n = u32::try_from(commands.len()).unwrap_or(u32::MAX);
    if !sends.try_take_n(n, Instant::now()) {
        let rate = shared.config.max_sends_per_sec;
        return Err((
            ErrorCode::RateLimited,
            format!("batch {first}: over {rate} sends per second; resend it later"),
        ));
    }
    Ok(())
}
