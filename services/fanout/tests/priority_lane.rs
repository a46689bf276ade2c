//! The priority lane routes on its own topics: a high-priority message of a
//! read-diffusion conversation, read from `priority-events`, reaches each
//! following gateway in full on `gw-priority.<id>`; ordinary messages
//! become notices on `gw.<id>`; a priority message found on `conv-events`
//! (written before the lanes were split) also takes the priority topic.
//! Real embedded log, real in-process presence.

#![allow(clippy::unwrap_used)]

mod common;

use common::one_partition_log;
use seqline_core::ids::*;
use seqline_core::model::{Message, MessageKind};
use seqline_core::ports::{Log, LogConsumer, Polled, Presence};
use seqline_core::records::{ConvEvent, GatewayRecord, LogRecord, Notice, Topic};
use seqline_embedded::MemoryPresence;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn message(conv: &ConversationId, seq: u64, priority: bool) -> LogRecord {
    LogRecord::ConvEvent(ConvEvent {
        message: Message {
            read_diffusion: true,
            sender_name: String::new(),
            conv: conv.clone(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("admin").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: format!("message {seq}"),
            members: vec![],
            priority,
            server_ts_ms: 0,
            vclock: Default::default(),
        },
    })
}

/// The next notice on `consumer`'s topic (10 s at most).
async fn next_notice(consumer: &mut dyn LogConsumer) -> Notice {
    loop {
        let polled = tokio::time::timeout(Duration::from_secs(10), consumer.poll(1))
            .await
            .expect("a notice in time");
        if let Polled::Records { mut records, .. } = polled.unwrap() {
            match records.pop().unwrap().record.unwrap() {
                LogRecord::Gateway(GatewayRecord::Notice(n)) => return n,
                other => panic!("not a notice: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_messages_reach_the_gateways_priority_topic_and_ordinary_ones_its_ordinary_topic() {
    let (dir, log) = one_partition_log("fanout-priority");
    let presence = MemoryPresence::new();
    let conv = ConversationId::parse("g:all").unwrap();
    let gw = GatewayId::parse("gw-p").unwrap();
    presence.follow(&conv, &gw, Duration::from_secs(60)).await.unwrap();
    let mut priority = log
        .subscribe("test-p", &Topic::GatewayPriority(gw.clone()))
        .await
        .unwrap();
    let mut ordinary = log.subscribe("test-o", &Topic::Gateway(gw.clone())).await.unwrap();

    let stop = CancellationToken::new();
    let ports = seqline_fanout::Ports {
        log: Arc::new(log.clone()),
        presence: Arc::new(presence),
    };
    let task = tokio::spawn(seqline_fanout::run(Default::default(), ports, stop.clone()));

    log.append(&Topic::ConvEvents, vec![message(&conv, 1, false)])
        .await
        .unwrap();
    let n = next_notice(ordinary.as_mut()).await;
    assert_eq!((n.head.0, n.message), (1, None), "an ordinary message is announced");

    log.append(&Topic::PriorityEvents, vec![message(&conv, 2, true)])
        .await
        .unwrap();
    let n = next_notice(priority.as_mut()).await;
    let m = n.message.expect("sent in full");
    assert_eq!((n.head.0, m.conv_seq.0, m.body.as_str()), (2, 2, "message 2"));

    // Written by a sequencer from before the split: still the priority lane.
    log.append(&Topic::ConvEvents, vec![message(&conv, 3, true)])
        .await
        .unwrap();
    let n = next_notice(priority.as_mut()).await;
    assert_eq!(n.message.map(|m| m.conv_seq.0), Some(3));

    stop.cancel();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
