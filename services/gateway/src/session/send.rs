//! The `send` frame: checked, admitted, then handed to the publisher, which
//! appends it to the inbound topic; its `ack` or `nack` comes back as a
//! receipt on the gateway's topic.

use crate::admission;
use crate::edge::ratelimit::TokenBucket;
use crate::publisher::{Job, Requester};
use crate::registry::Link;
use crate::state::Shared;
use seqline_core::model::{now_ms, VectorClock};
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::records::{Command, Origin, SendCommand};
use seqline_core::{ClientMsgId, ConversationId};
use std::time::Instant;

/// Most participants a vector clock may name.
pub(crate) const MAX_VCLOCK: usize = 1024;

/// A `send` frame, as the session hands it over.
pub(crate) struct SendRequest {
    pub id: ClientMsgId,
    pub conv: ConversationId,
    pub body: String,
    pub prev: Option<ClientMsgId>,
    pub priority: bool,
    pub vclock: VectorClock,
}

/// Who sends: the connection, the display name from its token (copied into
/// every command) and its send budget.
pub(crate) struct Sender<'a> {
    pub link: &'a Link,
    pub name: &'a str,
    pub sends: &'a mut TokenBucket,
}

impl Sender<'_> {
    /// The origin of a command from this connection. The sender is the
    /// token's user and device, whatever the frame says: a frame cannot
    /// even name another sender (unknown fields are refused).
    pub fn origin(&self, shared: &Shared) -> Origin {
        Origin {
            name: self.name.to_owned(),
            gateway: shared.config.id.clone(),
            user: self.link.key.user.clone(),
            device: self.link.key.device.clone(),
            request: 0,
        }
    }
}

/// Publishes a send; returns the frame to answer with now, if any (the
/// `ack` or `nack` comes later, from the receipt).
pub(crate) async fn send(shared: &Shared, sender: Sender<'_>, request: SendRequest) -> Option<ServerFrame> {
    let SendRequest {
        id,
        conv,
        body,
        prev,
        priority,
        vclock,
    } = request;
    let max = shared.config.max_body_bytes;
    let refusal = if id.0.is_nil() {
        Some((ErrorCode::InvalidField, "the id must be a non-nil UUID".to_owned()))
    } else if body.len() > max {
        Some((
            ErrorCode::TooLarge,
            format!("the body is {} bytes, over {max}", body.len()),
        ))
    } else if body.is_empty() {
        Some((ErrorCode::InvalidField, "the body is empty".to_owned()))
    } else if prev.is_some_and(|p| p.0.is_nil()) {
        Some((ErrorCode::InvalidField, "prev must be a non-nil UUID".to_owned()))
    } else if prev == Some(id) {
        Some((ErrorCode::InvalidField, "prev names the message itself".to_owned()))
    } else if vclock.len() > MAX_VCLOCK {
        Some((
            ErrorCode::InvalidField,
            format!("the vector clock names over {MAX_VCLOCK} users"),
        ))
    } else if !sender.sends.try_take(Instant::now()) {
        let rate = shared.config.max_sends_per_sec;
        Some((
            ErrorCode::RateLimited,
            format!("over {rate} sends per second; resend it later"),
        ))
    } else {
        None
    };
    let key = &sender.link.key;
    if let Some((code, message)) = refusal {
        if code != ErrorCode::RateLimited {
            // Final: the sends chained after it skip it (see `refusals`).
            shared.refusals.remember(key, id, Some(conv.clone()), prev);
        }
        return Some(ServerFrame::send_error(&id.to_string(), Some(conv), code, message));
    }
    // Checked last: a send the gateway would refuse for good is refused
    // for good even while admission slows down.
    if let Err((slow, retry)) = shared.admission.check(1) {
        return Some(admission::refusal(&id.to_string(), Some(conv), slow, retry));
    }
    let prev = shared.refusals.passed(key, id, &conv, prev);
    let origin = sender.origin(shared);
    let conv_named = conv.clone();
    let command = Command::Send(SendCommand {
        origin,
        conv,
        client_msg_id: id,
        prev,
        body,
        priority,
        vclock,
        sent_ms: now_ms(),
    });
    let job = Job {
        command,
        requester: Requester::Connection {
            tx: sender.link.tx.clone(),
            id,
            conv: conv_named.clone(),
        },
        trace: seqline_telemetry::current_traceparent(),
    };
    shared.admission.sent([id]);
    let published = tokio::select! {
        r = shared.publisher.publish(job) => r.is_ok(),
        () = shared.stop.cancelled() => false,
    };
    if published {
        None
    } else {
        shared.admission.settled(&id);
        Some(ServerFrame::send_error(
            &id.to_string(),
            Some(conv_named),
            ErrorCode::Unavailable,
            "the gateway is stopping; resend it",
        ))
    }
}
