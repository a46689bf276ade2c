//! Notices from fanout on the gateway's topic: a conversation in read mode
//! advanced. The head is recorded (waking long-polls), and the following
//! connections get a `notice`, or a `priority` frame when the message came
//! in full. Notices are hints: a full queue drops one rather than kicking
//! the connection (its next poll or page catches up).

use crate::outbox::Outbound;
use crate::state::Shared;
use seqline_core::model::MessageKind;
use seqline_core::protocol::ServerFrame;
use seqline_core::records::Notice;
use seqline_core::{ConversationId, UserId};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;

/// A notice from fanout: record the head, wake polls, push `notice` (or
/// `priority` for a message sent in full) to the following connections.
pub(super) fn notice(shared: &Arc<Shared>, n: Notice) {
    let links = shared.reads.noticed(&n.conv, n.head.0, n.message.as_ref());
    let m = &shared.metrics;
    match n.message {
        Some(message) => {
            let left: Vec<UserId> = if message.kind == MessageKind::Left {
                message.members.clone()
            } else {
                Vec::new()
            };
            for l in &links {
                match l.priority.try_send(ServerFrame::Priority {
                    message: message.clone(),
                }) {
                    Ok(()) => m.priority_pushed.inc(),
                    Err(TrySendError::Full(_)) => m.priority_dropped.inc(),
                    Err(TrySendError::Closed(_)) => {}
                }
            }
            if !left.is_empty() {
                drop_users(shared, &n.conv, &left);
            }
        }
        None => {
            for l in &links {
                let frame = ServerFrame::Notice {
                    conv: n.conv.clone(),
                    head: n.head.0,
                };
                match l.tx.try_send(Outbound::Frame(frame)) {
                    Ok(()) => m.notices_pushed.inc(),
                    Err(TrySendError::Full(_)) => m.notices_dropped.inc(),
                    Err(TrySendError::Closed(_)) => {}
                }
            }
        }
    }
}

/// Users who left `conv`: their connections here stop following it and
/// must prove membership again (their long-polls look again: the window
/// they wait in may have closed).
fn drop_users(shared: &Arc<Shared>, conv: &ConversationId, users: &[UserId]) {
    let gone = shared.reads.follows.unfollow_users(conv, users);
    for l in shared.registry.of_users(users) {
        l.forget(conv);
    }
    if gone {
        let reads = Arc::clone(&shared.reads);
        let conv = conv.clone();
        shared
            .tracker
            .spawn(async move { reads.follows.withdraw(vec![conv]).await });
    }
}
