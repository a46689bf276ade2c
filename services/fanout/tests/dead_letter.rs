//! A record fanout cannot read goes to the dead-letter topic with its
//! reason, and the partition keeps flowing: the next good event is routed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{one_partition_log, user_event};

use seqline_core::ids::*;
use seqline_core::ports::{Log, Polled, Presence};
use seqline_core::records::{GatewayRecord, LogRecord, Topic};
use seqline_embedded::{EmbeddedLog, MemoryPresence};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    let (dir, log) = one_partition_log("fanout-dl");
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
    log.append(&Topic::UserEvents, vec![user_event(&user, 1)])
        .await
        .unwrap();

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
