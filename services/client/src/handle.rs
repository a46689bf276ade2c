//! What the caller holds for one send: its id and a watch on its state.

use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::RefusalCode;
use tokio::sync::watch;

/// Where a send is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendState {
    /// Waiting for its ack (resent as needed).
    Sending {
        /// Transmissions so far.
        attempts: u32,
    },
    /// Sequenced at this conv_seq.
    Sent(u64),
    /// Will not be sent (again).
    Failed(FailReason),
}

impl SendState {
    /// Whether the state is final.
    pub fn is_final(&self) -> bool {
        !matches!(self, SendState::Sending { .. })
    }
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The server refused it for good: it is not in the conversation.
    Refused {
        /// The stable code.
        code: RefusalCode,
        /// For humans.
        message: String,
    },
    /// The gateway rejected the frame itself (invalid field, too large...).
    Rejected {
        /// The stable code.
        code: seqline_core::protocol::ErrorCode,
        /// For humans.
        message: String,
    },
    /// Every attempt went unanswered: it may or may not be sequenced.
    Exhausted,
    /// The client was closed first: it may or may not be sequenced.
    Closed,
    /// The outbox was full; it was never transmitted.
    OutboxFull,
}

impl FailReason {
    /// Whether the message may still have been sequenced (unknown outcome).
    pub fn is_unknown(&self) -> bool {
        matches!(self, FailReason::Exhausted | FailReason::Closed)
    }
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailReason::Refused { code, message } => write!(f, "refused ({code:?}): {message}"),
            FailReason::Rejected { code, message } => write!(f, "rejected ({code:?}): {message}"),
            FailReason::Exhausted => f.write_str("no answer after every attempt"),
            FailReason::Closed => f.write_str("the client closed before an answer"),
            FailReason::OutboxFull => f.write_str("the outbox is full"),
        }
    }
}

/// The caller's side of one send.
#[derive(Clone, Debug)]
pub struct SendHandle {
    id: ClientMsgId,
    conv: ConversationId,
    state: watch::Receiver<SendState>,
}

impl SendHandle {
    pub(crate) fn new(id: ClientMsgId, conv: ConversationId, state: watch::Receiver<SendState>) -> Self {
        Self { id, conv, state }
    }

    /// The client message id (the same on every resend).
    pub fn id(&self) -> ClientMsgId {
        self.id
    }

    /// The conversation.
    pub fn conv(&self) -> &ConversationId {
        &self.conv
    }

    /// The state now.
    pub fn state(&self) -> SendState {
        self.state.borrow().clone()
    }

    /// A watch on the state, for callers that want every change.
    pub fn watch(&self) -> watch::Receiver<SendState> {
        self.state.clone()
    }

    /// Waits for the final state: `Sent` or `Failed`.
    pub async fn outcome(&self) -> SendState {
        let mut rx = self.state.clone();
        let outcome = match rx.wait_for(SendState::is_final).await {
            Ok(state) => state.clone(),
            // The SDK task is gone without a final word: the outcome is unknown.
            Err(_) => SendState::Failed(FailReason::Closed),
        };
        outcome
    }
}
