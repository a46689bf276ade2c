//! The history of a run: one JSON object per line, one clock for the whole
//! run (`t`, microseconds since the run started). Every event names the user
//! and device that did or saw something; the `ev` field says what.
//!
//! ```json
//! {"t":12,"user":"u1","device":"d1","ev":"send_invoke","conv":"g:1","client_msg_id":"…","body_hash":42}
//! ```

mod file;

pub use file::{read_history, HistoryWriter};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One thing a device did or saw, at one time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the run started (one clock for every device).
    pub t: u64,
    /// The user whose device this is.
    pub user: String,
    /// The device.
    pub device: String,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// An event of `user`'s `device` at time `t`.
    pub fn new(t: u64, user: impl Into<String>, device: impl Into<String>, body: EventBody) -> Self {
        Self {
            t,
            user: user.into(),
            device: device.into(),
            body,
        }
    }
}

/// What happened, tagged by `ev` in the JSON line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum EventBody {
    /// The device asked to send a message.
    SendInvoke {
        /// Into which conversation.
        conv: String,
        /// The id the client chose (the same across resends).
        client_msg_id: String,
        /// [`body_hash`] of the text.
        body_hash: u64,
    },
    /// The ack arrived: the message sits at `conv_seq`.
    SendOk {
        /// The conversation.
        conv: String,
        /// The message.
        client_msg_id: String,
        /// Where the server says it sits.
        conv_seq: u64,
    },
    /// A definite refusal (not a member, invalid): it must never be seen.
    SendFail {
        /// The conversation.
        conv: String,
        /// The message.
        client_msg_id: String,
        /// Why, as the server said.
        reason: String,
    },
    /// The outcome is unknown (timeout, disconnect): it may or may not exist.
    SendInfo {
        /// The conversation.
        conv: String,
        /// The message.
        client_msg_id: String,
    },
    /// The device received one message.
    Recv {
        /// The conversation.
        conv: String,
        /// Its position in the conversation.
        conv_seq: u64,
        /// The message's client id (the command's id for system events).
        client_msg_id: String,
        /// Its position in this user's timeline, when delivered through it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_seq: Option<u64>,
        /// How it arrived.
        via: Via,
        /// [`body_hash`] of the text (of `""` for system events).
        body_hash: u64,
        /// Who sent it.
        #[serde(default)]
        sender: String,
        /// A membership or creation event rather than a chat message; it may
        /// have no `send_invoke` (created over HTTP).
        #[serde(default, skip_serializing_if = "is_false")]
        system: bool,
        /// The message says its conversation is in read-diffusion mode after
        /// it (a huge group): later messages are pulled by conversation
        /// cursor (`user_seq` absent) rather than delivered by timeline.
        #[serde(default, skip_serializing_if = "is_false")]
        read_diffusion: bool,
        /// The message's vector clock as the server returned it (user id to
        /// how many of that user's messages the author had seen); absent
        /// when it has none.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        vclock: BTreeMap<String, u64>,
    },
    /// The device pulled from a cursor.
    Pull {
        /// The user's timeline or one conversation.
        scope: Scope,
        /// The conversation, for `scope: conv`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<String>,
        /// The cursor: the last seq the device had.
        from: u64,
        /// The seqs returned, in order (user_seq or conv_seq by scope).
        returned: Vec<u64>,
    },
    /// The device saw a membership change (a message that occupies a conv_seq).
    Member {
        /// The conversation.
        conv: String,
        /// Whom it is about.
        member: String,
        /// Joined or left.
        change: MemberOp,
        /// The conv_seq of the membership message.
        conv_seq: u64,
    },
    /// The device's final view after faults healed.
    Final {
        /// The user's timeline or one conversation.
        scope: Scope,
        /// The conversation, for `scope: conv`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<String>,
        /// Every entry, in the device's order.
        entries: Vec<FinalEntry>,
    },
    /// The server answered "reset" to a cursor: the device starts over.
    Reset {
        /// The cursor the device had.
        from: u64,
        /// The head the server reported.
        head: u64,
    },
    /// The last fault healed (recorded once, for L1).
    Heal {},
    /// This device reached the head after the heal.
    Converged {},
}

/// One entry of a final view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalEntry {
    /// The conversation.
    pub conv: String,
    /// Its position in the conversation.
    pub conv_seq: u64,
    /// The message's client id.
    pub client_msg_id: String,
    /// Its position in this user's timeline, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_seq: Option<u64>,
    /// [`body_hash`] of the text.
    pub body_hash: u64,
    /// A membership or creation event rather than a chat message.
    #[serde(default, skip_serializing_if = "is_false")]
    pub system: bool,
}

/// How a message reached the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Pushed by the server.
    Push,
    /// Pulled from the user's or conversation's cursor.
    Pull,
    /// Paged from conversation history.
    History,
}

/// Which stream a pull or final view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The user's timeline (user_seq).
    User,
    /// One conversation (conv_seq).
    Conv,
}

/// A membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberOp {
    /// The member joined (or was a first member at creation).
    Join,
    /// The member left or was removed.
    Leave,
}

/// The hash of a message body recorded in the history: FNV-1a 64 over the
/// UTF-8 bytes, the same function everywhere (it is core's `stable_hash`).
pub fn body_hash(body: &str) -> u64 {
    seqline_core::ids::stable_hash(body)
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests;
