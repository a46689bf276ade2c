//! A record fanout cannot read goes to the dead-letter topic with its
//! reason, and the partition keeps flowing: the next good event is routed.

#![allow(clippy::unwrap_used)]

use seqline_core::ids::*;
use seqline_core::model::*;
use seqline_core::ports::{Log, Polled, Presence};
use seqline_core::records::{GatewayRecord, LogRecord, Topic, UserEvent};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, LogOptions, MemoryPresence};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn event(user: &UserId) -> LogRecord {
    LogRecord::UserEvent(UserEvent {
        user: user.clone(),
        entry: TimelineEntry {
            user_seq: UserSeq(1),
            message: Message {
                read_diffusion: false,
                sender_name: String::new(),
                conv: ConversationId::parse("g:x").unwrap(),
                conv_seq: ConvSeq(1),
                client_msg_id: ClientMsgId::random(),
                sender: user.clone(),
                sender_device: DeviceId::parse("d").unwrap(),
                kind: MessageKind::Text,
                body: "hi".into(),
                members: vec![],
                priority: false,
                server_ts_ms: 0,
                vclock: Default::default(),
            },
        },
    })
}

async fn next_records(log: &EmbeddedLog, group: &str, topic: &Topic) -> Vec<LogRecord> {
    let mut consumer = log.subscribe(group, topic).await.unwrap();
    loop {
        let polled = tokio::time::timeout(Duration::from_secs(10), consumer.poll(100))
            .await
            .expect("records in time");
        if let Polled::Records { records, .. } = polled.unwrap() {
            return records.into_iter().map(|c| c.record.unwrap()).collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_are_dead_lettered_and_the_partition_flows_on() {
    let dir = std::env::temp_dir().join(format!("seqline-fanout-dl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = EmbeddedEngine::open(&dir).unwrap();
    // One partition, so the junk sits right before the good event.
    let options = LogOptions {
        user_events: 1,
        ..LogOptions::default()
    };
    let log = EmbeddedLog::open(engine, options).unwrap();
    let presence = MemoryPresence::new();
    let user = UserId::parse("alice").unwrap();
    let gw = GatewayId::parse("gw-dl").unwrap();
    presence
        .register(&user, &DeviceId::parse("phone").unwrap(), &gw, Duration::from_secs(60))
        .await
        .unwrap();

    log.inject_raw_for_tests(&Topic::UserEvents, 0, b"\xffnot a record".to_vec())
        .await
        .unwrap();
    log.append(&Topic::UserEvents, vec![event(&user)]).await.unwrap();

    let stop = CancellationToken::new();
    let ports = seqline_fanout::Ports {
        log: Arc::new(log.clone()),
        presence: Arc::new(presence),
    };
    let task = tokio::spawn(seqline_fanout::run(Default::default(), ports, stop.clone()));

    let dead = next_records(&log, "test-dl", &Topic::DeadLetter).await;
    match &dead[..] {
        [LogRecord::DeadLetter(d)] => {
            assert_eq!((d.topic.as_str(), d.partition, d.offset), ("user-events", 0, 0));
            assert!(!d.reason.is_empty(), "a reason is given");
        }
        other => panic!("expected one dead letter, got {other:?}"),
    }
    let pushed = next_records(&log, "test-gw", &Topic::Gateway(gw)).await;
    assert!(
        matches!(&pushed[..], [LogRecord::Gateway(GatewayRecord::Package(p))] if p.user == user),
        "the good event after the junk was routed: {pushed:?}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
