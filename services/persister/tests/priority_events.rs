//! The sequencer puts the conversation events of a read-diffusion group on
//! two lanes: high-priority messages (an admin's announcements, membership
//! events) on `priority-events`, ordinary ones on `conv-events`, so no
//! backlog of ordinary events is ever ahead of a priority message.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::MessageKind;
use seqline_core::ports::{Log, LogConsumer, Polled};
use seqline_core::records::{Command, LogRecord, Topic};
use seqline_core::ClientMsgId;

/// The next `n` conversation events on `consumer`'s topic, as
/// `(conv_seq, kind, priority)` (waits for them).
async fn events(consumer: &mut dyn LogConsumer, n: usize) -> Vec<(u64, MessageKind, bool)> {
    let end = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        let polled = tokio::time::timeout_at(end, consumer.poll(100))
            .await
            .expect("the events in time")
            .unwrap();
        if let Polled::Records { records, .. } = polled {
            for r in records {
                match r.record.unwrap() {
                    LogRecord::ConvEvent(e) => out.push((e.message.conv_seq.0, e.message.kind, e.message.priority)),
                    other => panic!("not a conversation event: {other:?}"),
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_messages_of_a_huge_group_leave_on_their_own_topic() {
    let mut rig = Rig::start(1).await;
    let mut ordinary = rig.log.subscribe("test-conv", &Topic::ConvEvents).await.unwrap();
    let mut priority = rig
        .log
        .subscribe("test-priority", &Topic::PriorityEvents)
        .await
        .unwrap();
    // Above the default threshold of 500 members: read diffusion from the start.
    let members: Vec<String> = (0..501).map(|i| format!("m{i}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let (created, record) = rig.create("g:huge", "admin", &members);
    rig.append(&Topic::Inbound, vec![record]).await;
    assert_eq!(rig.receipt(created).await, sequenced(1));

    let (chat, record) = rig.send("g:huge", "admin", "ordinary");
    let announcement = ClientMsgId::random();
    let mut urgent = match rig.send_as("g:huge", "admin", announcement, "all hands", 0) {
        LogRecord::Command(Command::Send(s)) => s,
        other => panic!("not a send: {other:?}"),
    };
    urgent.priority = true;
    let urgent = LogRecord::Command(Command::Send(urgent));
    rig.append(&Topic::Inbound, vec![record, urgent]).await;
    assert_eq!(rig.receipt(chat).await, sequenced(2));
    assert_eq!(rig.receipt(announcement).await, sequenced(3));

    assert_eq!(
        events(priority.as_mut(), 2).await,
        vec![(1, MessageKind::Created, true), (3, MessageKind::Text, true)],
        "the group's creation and the announcement take the priority lane"
    );
    assert_eq!(
        events(ordinary.as_mut(), 1).await,
        vec![(2, MessageKind::Text, false)],
        "the ordinary message takes the ordinary lane"
    );
    rig.stop().await;
}
