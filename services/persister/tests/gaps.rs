//! Messages stored whose deliveries never left, or left after a later
//! message's: a timeline must still hold every message its user is owed, in
//! `conv_seq` order. (The Kafka-mode chaos run of seed 304 found timelines
//! of direct conversations skipping 1 to 9 acked messages: a batch emitted a
//! new message's deliveries before the replayed ones of messages an earlier
//! owner had stored, and the timeline writer then skipped those as seen.)

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::{ClientMsgId, ConvSeq};
use seqline_core::model::{Message, MessageKind};
use seqline_core::ports::{ConversationBatch, LogConsumer, Store};
use seqline_core::records::{Delivery, LogRecord, Topic};
use seqline_core::UserSeq;

/// A message like `template`, at `seq`, of `kind` about `members`.
fn message(template: &Message, seq: u64, kind: MessageKind, members: &[&str]) -> Message {
    Message {
        conv_seq: ConvSeq(seq),
        client_msg_id: ClientMsgId::random(),
        kind,
        body: format!("m{seq}"),
        members: members.iter().map(|m| user(m)).collect(),
        ..template.clone()
    }
}

/// Stores `messages` after the head `after` as an earlier sequencer would
/// have, its deliveries never sent.
async fn store_undelivered(rig: &Rig, c: &str, after: u64, messages: Vec<Message>) {
    let new_head = ConvSeq(after + messages.len() as u64);
    let dedup = messages
        .iter()
        .map(|m| (m.client_msg_id, sequenced(m.conv_seq.0)))
        .collect();
    rig.store
        .commit_conversation(ConversationBatch {
            conv: conv(c),
            expected_head: ConvSeq(after),
            new_head,
            create: None,
            messages,
            members: Vec::new(),
            dedup,
            device_last: Vec::new(),
        })
        .await
        .unwrap();
}

/// The conv_seqs of `c` on `u`'s timeline, in timeline order.
async fn timeline(rig: &Rig, u: &str, c: &str) -> Vec<u64> {
    let entries = rig.store.timeline_after(&user(u), UserSeq(0), 1_000).await.unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.user_seq.0).collect();
    assert_eq!(
        seqs,
        (1..=entries.len() as u64).collect::<Vec<_>>(),
        "user_seq contiguous"
    );
    entries
        .iter()
        .filter(|e| e.message.conv.as_str() == c)
        .map(|e| e.message.conv_seq.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_past_undelivered_messages_brings_the_owed_ones_first() {
    let mut rig = Rig::start(1).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob", "carol"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    let (sent, rec) = rig.send("g:room", "bob", "two");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(sent).await, sequenced(2));
    rig.timeline_reaches("bob", 2).await;
    rig.timeline_reaches("carol", 2).await;

    // 3 and 5 are text, 4 removes carol, 6 adds her back: none delivered.
    let two = rig.messages("g:room").await.pop().unwrap();
    let later = vec![
        message(&two, 3, MessageKind::Text, &[]),
        message(&two, 4, MessageKind::Left, &["carol"]),
        message(&two, 5, MessageKind::Text, &[]),
        message(&two, 6, MessageKind::Joined, &["carol"]),
    ];
    store_undelivered(&rig, "g:room", 2, later.clone()).await;

    // Only the last message's deliveries arrive.
    let deliver = |u: &str| {
        LogRecord::Delivery(Delivery {
            user: user(u),
            message: later[3].clone(),
        })
    };
    rig.append(&Topic::Deliveries, vec![deliver("bob"), deliver("carol")])
        .await;

    // bob was a member throughout; carol is owed her own removal and her
    // return, not what was said while she was out.
    rig.timeline_reaches("bob", 6).await;
    rig.timeline_reaches("carol", 5).await;
    assert_eq!(timeline(&rig, "bob", "g:room").await, [1, 2, 3, 4, 5, 6]);
    assert_eq!(timeline(&rig, "carol", "g:room").await, [1, 2, 3, 4, 6]);

    // The late deliveries of the filled messages add nothing.
    let late: Vec<LogRecord> = later[..3]
        .iter()
        .map(|m| {
            LogRecord::Delivery(Delivery {
                user: user("bob"),
                message: m.clone(),
            })
        })
        .collect();
    rig.append(&Topic::Deliveries, late).await;
    let (next, rec) = rig.send("g:room", "alice", "seven");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(next).await, sequenced(7));
    rig.timeline_reaches("bob", 7).await;
    assert_eq!(timeline(&rig, "bob", "g:room").await, [1, 2, 3, 4, 5, 6, 7]);
    rig.stop().await;
}

/// Every delivery to `u` on the deliveries topic until one of `c` at `seq`.
async fn deliveries_until(consumer: &mut dyn LogConsumer, u: &str, c: &str, seq: u64) -> Vec<u64> {
    let mut out = Vec::new();
    read_deliveries(consumer, |d| {
        if d.user.as_str() == u && d.message.conv.as_str() == c {
            out.push(d.message.conv_seq.0);
            return d.message.conv_seq.0 != seq;
        }
        true
    })
    .await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_new_message_in_one_batch_is_replayed_before_it() {
    let mut rig = Rig::start(1).await;
    let mut deliveries = tap(&rig).await;
    let (create, rec) = rig.create("g:pair", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));

    // An earlier owner stored alice's message 2 and died before its
    // deliveries left; its command is committed past (the owner that
    // takes over only sees her resend).
    let created = rig.messages("g:pair").await.pop().unwrap();
    let stored = Message {
        sender: user("alice"),
        ..message(&created, 2, MessageKind::Text, &[])
    };
    store_undelivered(&rig, "g:pair", 1, vec![stored.clone()]).await;
    rig.crash_and_restart();

    // The new owner's batch: a new message first, then the resend.
    let (fresh, rec) = rig.send("g:pair", "bob", "three");
    let resend = rig.send_as("g:pair", "alice", stored.client_msg_id, &stored.body, 0);
    rig.append(&Topic::Inbound, vec![rec, resend]).await;
    assert_eq!(rig.receipt(fresh).await, sequenced(3));
    assert_eq!(rig.receipt(stored.client_msg_id).await, sequenced(2));

    // (The restart may send message 1 again: at least once, in order.)
    let order = deliveries_until(deliveries.as_mut(), "bob", "g:pair", 3).await;
    let mut first_seen = Vec::new();
    for seq in &order {
        if !first_seen.contains(seq) {
            first_seen.push(*seq);
        }
    }
    assert_eq!(
        first_seen,
        [1, 2, 3],
        "message 2's replay goes out before message 3: {order:?}"
    );
    rig.timeline_reaches("bob", 3).await;
    assert_eq!(timeline(&rig, "bob", "g:pair").await, [1, 2, 3]);
    rig.stop().await;
}
