//! Ordered batches: commands for one conversation sent as one action (see
//! [`Client::send_batch`](crate::Client::send_batch)).

use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::VectorClock;
use seqline_core::protocol::BatchEntry;

/// Commands for one conversation that the server sequences consecutively,
/// in order, with nothing in between, or refuses whole. Each command gets
/// its id when added; resending the same `Batch` is idempotent (a batch that
/// was sequenced is answered with its original numbers).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    conv: ConversationId,
    commands: Vec<BatchEntry>,
}

impl Batch {
    /// An empty batch for `conv`.
    pub fn new(conv: ConversationId) -> Self {
        Self {
            conv,
            commands: Vec::new(),
        }
    }

    /// Adds a message.
    pub fn send(self, body: impl Into<String>) -> Self {
        self.send_with(body, false, VectorClock::new())
    }

    /// Adds a message with a priority and a vector clock (the SDK does not
    /// stamp batches with its clocks).
    pub fn send_with(mut self, body: impl Into<String>, priority: bool, vclock: VectorClock) -> Self {
        self.commands.push(BatchEntry::Send {
            id: ClientMsgId::random(),
            body: body.into(),
            priority,
            vclock,
        });
        self
    }

    /// Adds leaving the conversation (nothing can follow it in the batch).
    pub fn leave(mut self) -> Self {
        self.commands.push(BatchEntry::Leave {
            id: ClientMsgId::random(),
        });
        self
    }

    /// The conversation.
    pub fn conv(&self) -> &ConversationId {
        &self.conv
    }

    /// The commands' ids, in order.
    pub fn ids(&self) -> Vec<ClientMsgId> {
        self.commands.iter().map(BatchEntry::id).collect()
    }

    /// The commands.
    pub fn commands(&self) -> &[BatchEntry] {
        &self.commands
    }

    /// The id of the batch's last send, which later sends name as `prev`.
    pub(crate) fn last_send(&self) -> Option<ClientMsgId> {
        self.commands.iter().rev().find_map(|c| match c {
            BatchEntry::Send { id, .. } => Some(*id),
            BatchEntry::Leave { .. } => None,
        })
    }
}
