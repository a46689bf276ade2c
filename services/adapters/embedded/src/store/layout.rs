//! Keys and small values of the store's keyspaces.

use crate::error::EngineError;
use crate::keys::Key;
use seqline_core::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use seqline_core::model::Role;

/// `conv` as a key (and prefix of its members, messages, dedup, ...).
pub(super) fn conv(conv: &ConversationId) -> Vec<u8> {
    Key::new().str(conv.as_str()).build()
}

/// `user` as a key (and prefix of its timeline, conversations, ...).
pub(super) fn user(user: &UserId) -> Vec<u8> {
    Key::new().str(user.as_str()).build()
}

/// `(prefix, seq BE)`.
pub(super) fn seq(prefix: &[u8], seq: u64) -> Vec<u8> {
    Key::new().bytes(prefix).u64(seq).build()
}

/// `(conv, client id)`.
pub(super) fn dedup(conv_key: &[u8], id: ClientMsgId) -> Vec<u8> {
    Key::new().bytes(conv_key).bytes(id.0.as_bytes()).build()
}

/// `(a, b)`.
pub(super) fn pair(a: &str, b: &str) -> Vec<u8> {
    Key::new().str(a).str(b).build()
}

/// `(conv, user, device)`.
pub(super) fn device_last(conv: &ConversationId, user: &UserId, device: &DeviceId) -> Vec<u8> {
    Key::new()
        .str(conv.as_str())
        .str(user.as_str())
        .str(device.as_str())
        .build()
}

/// In-flight markers: one namespace per kind of head.
pub(super) fn pending_conv(conv: &ConversationId) -> Vec<u8> {
    Key::new().bytes(b"c").str(conv.as_str()).build()
}
pub(super) fn pending_user(user: &UserId) -> Vec<u8> {
    Key::new().bytes(b"u").str(user.as_str()).build()
}
pub(super) fn pending_cursor(user: &UserId, device: &DeviceId) -> Vec<u8> {
    Key::new().bytes(b"d").str(user.as_str()).str(device.as_str()).build()
}
pub(super) fn pending_read(user: &UserId, conv: &ConversationId) -> Vec<u8> {
    Key::new().bytes(b"r").str(user.as_str()).str(conv.as_str()).build()
}

pub(super) fn role_byte(role: Role) -> [u8; 1] {
    match role {
        Role::Admin => [1],
        Role::Member => [2],
    }
}

pub(super) fn role_of(v: &[u8]) -> Result<Role, EngineError> {
    match v {
        [1] => Ok(Role::Admin),
        [2] => Ok(Role::Member),
        _ => Err(EngineError::Corrupt(format!("bad role value {v:?}"))),
    }
}

pub(super) fn corrupt_id(e: seqline_core::Error) -> EngineError {
    EngineError::Corrupt(format!("stored id is invalid: {e}"))
}
