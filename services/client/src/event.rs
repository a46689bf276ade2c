//! What the SDK tells the application, in order, on one bounded stream.

use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::{Message, TimelineEntry};
use tokio::sync::mpsc;

use crate::handle::FailReason;

/// How an entry reached the device first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// Pushed by the server.
    Push,
    /// Pulled by a sync (of the timeline, or of a followed conversation).
    Pull,
}

/// One thing that happened to the client.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Connected (again) and authenticated; `head` is the server's head.
    Connected {
        /// Committed head of the user's timeline.
        head: u64,
    },
    /// The connection dropped; the SDK reconnects by itself.
    Disconnected {
        /// Why, for humans.
        reason: String,
    },
    /// One timeline entry: exactly once per user_seq, in user_seq order.
    Message {
        /// The entry.
        entry: TimelineEntry,
        /// How it arrived.
        via: Via,
    },
    /// One message of a followed read-diffusion conversation (a huge
    /// group), pulled by conversation cursor: it has no timeline entry.
    /// Together with [`Event::Message`], every message of a conversation
    /// reaches the application exactly once and in conv_seq order.
    ConvMessage {
        /// The message.
        message: Message,
        /// How it arrived (pulled).
        via: Via,
    },
    /// A conversation page arrived (for observers that record pulls).
    ConvPulled {
        /// The conversation.
        conv: ConversationId,
        /// The conversation cursor the page was asked from.
        from: u64,
        /// The conv_seqs it returned, in order.
        returned: Vec<u64>,
    },
    /// A high-priority message of a followed conversation (an admin's
    /// announcement), pushed ahead of everything: alert now. It is delivered
    /// again, in order, as an ordinary message.
    Priority(Message),
    /// Another device of the user marked `conv` read up to `conv_seq`.
    ReadMark {
        /// The conversation.
        conv: ConversationId,
        /// Everything up to here is read.
        conv_seq: u64,
    },
    /// A sync page arrived (for observers that record pulls).
    Pulled {
        /// The cursor the page was asked from.
        from: u64,
        /// The user_seqs it returned, in order.
        returned: Vec<u64>,
    },
    /// The server could not serve the cursor; the device starts over at `head`
    /// (entries between were skipped: page history to fill them in).
    ///
    /// With `data_replaced`, the server's data is not the data the device
    /// synced before (the store was wiped, swapped, or restored from an
    /// older copy): drop every timeline entry and conversation position the
    /// device shows; `head` is 0 and the whole timeline of the new data
    /// follows, from user_seq 1, as [`Event::Message`]s.
    Reset {
        /// The cursor the device had.
        from: u64,
        /// The device's new cursor: the server's head, or 0 when the data
        /// was replaced.
        head: u64,
        /// The device's timeline belongs to other data: drop all of it.
        data_replaced: bool,
    },
    /// A send was acknowledged.
    Acked {
        /// The message.
        id: ClientMsgId,
        /// The conversation.
        conv: ConversationId,
        /// Where it sits.
        conv_seq: u64,
    },
    /// A send failed.
    Failed {
        /// The message.
        id: ClientMsgId,
        /// The conversation.
        conv: ConversationId,
        /// Why.
        reason: FailReason,
    },
}

/// The events of one client, in the order they happened.
///
/// The stream is a bounded channel (capacity
/// [`crate::ClientConfig::event_capacity`]). When it is full the SDK stops
/// reading its socket until there is room, so nothing is dropped; read it from
/// its own task, never from the task that awaits `send`, or the two can wait on
/// each other. It ends after the client is closed.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl EventStream {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` once the client is closed and drained.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}
