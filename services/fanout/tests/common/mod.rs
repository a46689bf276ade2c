//! What the fanout tests share: a real embedded log whose `user-events`
//! topic has one partition, and a user event to put on it.

#![allow(dead_code, clippy::unwrap_used)]

use seqline_core::ids::*;
use seqline_core::model::*;
use seqline_core::records::{LogRecord, UserEvent};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, LogOptions};
use std::path::PathBuf;

/// A user event for `user`: entry `seq`, message `seq` of `g:x`.
pub fn user_event(user: &UserId, seq: u64) -> LogRecord {
    LogRecord::UserEvent(UserEvent {
        user: user.clone(),
        entry: TimelineEntry {
            user_seq: UserSeq(seq),
            message: Message {
                read_diffusion: false,
                sender_name: String::new(),
                conv: ConversationId::parse("g:x").unwrap(),
                conv_seq: ConvSeq(seq),
                client_msg_id: ClientMsgId::random(),
                sender: user.clone(),
                sender_device: DeviceId::parse("d").unwrap(),
                kind: MessageKind::Text,
                body: format!("message {seq}"),
                members: vec![],
                priority: false,
                server_ts_ms: 0,
                vclock: Default::default(),
            },
        },
    })
}

/// An embedded log in a new private directory (returned, for removal)
/// whose `user-events` topic has one partition, so records keep their order.
pub fn one_partition_log(name: &str) -> (PathBuf, EmbeddedLog) {
    let dir = std::env::temp_dir().join(format!("seqline-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = EmbeddedEngine::open(&dir).unwrap();
    let options = LogOptions {
        user_events: 1,
        ..LogOptions::default()
    };
    (dir, EmbeddedLog::open(engine, options).unwrap())
}
