//! Every CQL statement of the store, in one place so the unit tests can
//! check each against `schemas/seqline.cql`. Tables are unqualified: the
//! session uses the configured keyspace.
//!
//! Writes of a batch's rows carry `USING TIMESTAMP` = the batch's `ts`, which
//! strictly increases per conversation (or timeline): whatever order retries
//! and late writers land in, the newest batch's cells win.

// Settings.
pub(crate) const SETTING_INIT: &str = "INSERT INTO settings (name, value) VALUES (?, ?) IF NOT EXISTS";
pub(crate) const SETTING_GET: &str = "SELECT value FROM settings WHERE name = ?";

// Conversation heads: LWTs and the applied mark.
pub(crate) const CONV_HEAD_GET: &str =
    "SELECT head, prev_head, ts, pending, applied FROM conversation_heads WHERE conv = ?";
pub(crate) const CONV_HEAD_CREATE: &str = "INSERT INTO conversation_heads (conv, head, prev_head, ts, pending) \
     VALUES (?, ?, 0, ?, ?) IF NOT EXISTS";
pub(crate) const CONV_HEAD_ADVANCE: &str =
    "UPDATE conversation_heads SET head = ?, prev_head = ?, ts = ?, pending = ? \
     WHERE conv = ? IF head = ? AND ts = ?";
pub(crate) const CONV_APPLIED: &str = "UPDATE conversation_heads USING TIMESTAMP ? SET applied = ? WHERE conv = ?";

// Conversation rows.
pub(crate) const META_PUT: &str = "INSERT INTO conversations (conv, kind, title, created_by, created_ms) \
     VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?";
pub(crate) const META_GET: &str = "SELECT kind, title, created_by, created_ms FROM conversations WHERE conv = ?";
pub(crate) const MESSAGE_PUT: &str = "INSERT INTO messages (conv, bucket, conv_seq, client_msg_id, sender, \
     sender_device, kind, body, members, priority, server_ts_ms, vclock, sender_name, read_diffusion) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
pub(crate) const MESSAGES_ASC: &str = "SELECT conv_seq, client_msg_id, sender, sender_device, kind, body, members, \
     priority, server_ts_ms, vclock, sender_name, read_diffusion FROM messages WHERE conv = ? AND bucket = ? AND conv_seq >= ? AND conv_seq <= ? \
     ORDER BY conv_seq ASC LIMIT ?";
pub(crate) const MESSAGES_DESC: &str = "SELECT conv_seq, client_msg_id, sender, sender_device, kind, body, members, \
     priority, server_ts_ms, vclock, sender_name, read_diffusion FROM messages WHERE conv = ? AND bucket = ? AND conv_seq >= ? AND conv_seq <= ? \
     ORDER BY conv_seq DESC LIMIT ?";
pub(crate) const DEDUP_PUT: &str = "INSERT INTO dedup (conv, shard, client_msg_id, status, conv_seq, code, reason) \
     VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
pub(crate) const DEDUP_GET: &str =
    "SELECT status, conv_seq, code, reason FROM dedup WHERE conv = ? AND shard = ? AND client_msg_id = ?";
pub(crate) const MEMBER_PUT: &str = "INSERT INTO members (conv, user_id, role) VALUES (?, ?, ?) USING TIMESTAMP ?";
pub(crate) const MEMBER_DEL: &str = "DELETE FROM members USING TIMESTAMP ? WHERE conv = ? AND user_id = ?";
pub(crate) const MEMBER_GET: &str = "SELECT role FROM members WHERE conv = ? AND user_id = ?";
pub(crate) const MEMBERS_ALL: &str = "SELECT user_id, role FROM members WHERE conv = ?";
pub(crate) const MEMBERSHIP_PUT: &str =
    "INSERT INTO membership (conv, user_id, events) VALUES (?, ?, ?) USING TIMESTAMP ?";
pub(crate) const MEMBERSHIP_GET: &str = "SELECT events FROM membership WHERE conv = ? AND user_id = ?";
pub(crate) const USER_CONV_PUT: &str = "INSERT INTO user_conversations (user_id, conv) VALUES (?, ?) USING TIMESTAMP ?";
pub(crate) const USER_CONV_DEL: &str =
    "DELETE FROM user_conversations USING TIMESTAMP ? WHERE user_id = ? AND conv = ?";
pub(crate) const USER_CONVS: &str = "SELECT conv FROM user_conversations WHERE user_id = ?";
pub(crate) const DEVICE_LAST_PUT: &str = "INSERT INTO device_last (conv, user_id, device, client_msg_id) \
     VALUES (?, ?, ?, ?) USING TIMESTAMP ?";
pub(crate) const DEVICE_LAST_ALL: &str = "SELECT user_id, device, client_msg_id FROM device_last WHERE conv = ?";

// Timeline heads.
pub(crate) const TL_HEAD_GET: &str =
    "SELECT head, prev_head, ts, pending, applied FROM timeline_heads WHERE user_id = ?";
pub(crate) const TL_HEAD_CREATE: &str = "INSERT INTO timeline_heads (user_id, head, prev_head, ts, pending) \
     VALUES (?, ?, 0, ?, ?) IF NOT EXISTS";
pub(crate) const TL_HEAD_ADVANCE: &str = "UPDATE timeline_heads SET head = ?, prev_head = ?, ts = ?, pending = ? \
     WHERE user_id = ? IF head = ? AND ts = ?";
pub(crate) const TL_APPLIED: &str = "UPDATE timeline_heads USING TIMESTAMP ? SET applied = ? WHERE user_id = ?";

// Timeline rows and cursors.
pub(crate) const ENTRY_PUT: &str = "INSERT INTO timelines (user_id, bucket, user_seq, conv, conv_seq, \
     client_msg_id, sender, sender_device, kind, body, members, priority, server_ts_ms, vclock, sender_name, \
     read_diffusion) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
pub(crate) const ENTRIES_ASC: &str = "SELECT user_seq, conv, conv_seq, client_msg_id, sender, sender_device, kind, \
     body, members, priority, server_ts_ms, vclock, sender_name, read_diffusion FROM timelines \
     WHERE user_id = ? AND bucket = ? AND user_seq >= ? AND user_seq <= ? ORDER BY user_seq ASC LIMIT ?";
pub(crate) const APPLIED_PUT: &str =
    "INSERT INTO timeline_applied (user_id, conv, conv_seq) VALUES (?, ?, ?) USING TIMESTAMP ?";
pub(crate) const APPLIED_ALL: &str = "SELECT conv, conv_seq FROM timeline_applied WHERE user_id = ?";
pub(crate) const CURSOR_PUT: &str =
    "UPDATE device_cursors USING TIMESTAMP ? SET read_up_to = ? WHERE user_id = ? AND device = ?";
pub(crate) const CURSOR_GET: &str = "SELECT read_up_to FROM device_cursors WHERE user_id = ? AND device = ?";
pub(crate) const READ_PUT: &str =
    "UPDATE read_positions USING TIMESTAMP ? SET read_up_to = ? WHERE user_id = ? AND conv = ?";
pub(crate) const READ_GET: &str = "SELECT read_up_to FROM read_positions WHERE user_id = ? AND conv = ?";
pub(crate) const READ_ALL: &str = "SELECT conv, read_up_to FROM read_positions WHERE user_id = ?";

/// Every statement, for the checks; `true` when it is an LWT.
#[cfg(test)]
pub(crate) const ALL: &[(&str, bool)] = &[
    (SETTING_INIT, true),
    (SETTING_GET, false),
    (CONV_HEAD_GET, false),
    (CONV_HEAD_CREATE, true),
    (CONV_HEAD_ADVANCE, true),
    (CONV_APPLIED, false),
    (META_PUT, false),
    (META_GET, false),
    (MESSAGE_PUT, false),
    (MESSAGES_ASC, false),
    (MESSAGES_DESC, false),
    (DEDUP_PUT, false),
    (DEDUP_GET, false),
    (MEMBER_PUT, false),
    (MEMBER_DEL, false),
    (MEMBER_GET, false),
    (MEMBERS_ALL, false),
    (MEMBERSHIP_PUT, false),
    (MEMBERSHIP_GET, false),
    (USER_CONV_PUT, false),
    (USER_CONV_DEL, false),
    (USER_CONVS, false),
    (DEVICE_LAST_PUT, false),
    (DEVICE_LAST_ALL, false),
    (TL_HEAD_GET, false),
    (TL_HEAD_CREATE, true),
    (TL_HEAD_ADVANCE, true),
    (TL_APPLIED, false),
    (ENTRY_PUT, false),
    (ENTRIES_ASC, false),
    (APPLIED_PUT, false),
    (APPLIED_ALL, false),
    (CURSOR_PUT, false),
    (CURSOR_GET, false),
    (READ_PUT, false),
    (READ_GET, false),
    (READ_ALL, false),
];
