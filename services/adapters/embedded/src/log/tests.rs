//! White-box: records of a synced topic written but not yet fsynced are
//! invisible to consumers.

use super::*;
use crate::test_dir::TestDir;
use seqline_core::ids::partition_for;
use seqline_core::ids::GatewayId;
use seqline_core::ports::Polled;
use seqline_testkit::fixtures::keyed_record;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_wait_for_the_durable_mark() {
    let dir = TestDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let log = EmbeddedLog::open(Arc::clone(&engine), LogOptions::default()).unwrap();
    let gw = GatewayId::parse("wb").unwrap();
    let topic = Topic::Deliveries;
    let state = log.inner.topic(&topic).await.unwrap();
    let mut consumer = log.subscribe("g", &topic).await.unwrap();
    assert!(matches!(consumer.poll(10).await.unwrap(), Polled::Assigned(_)));

    let bytes = crate::wire::encode_record(keyed_record("k", 0, &gw), None).unwrap();
    let partition = partition_for("k", state.partitions.len() as u32);
    let (ends, ticket) = append::write(&log.inner, &state, vec![(partition, bytes)]).unwrap();
    assert_eq!(ends, vec![(partition, 1)]);
    let early = tokio::time::timeout(Duration::from_millis(100), consumer.poll(10)).await;
    assert!(early.is_err(), "nothing is visible before the durable mark moves");

    engine.durable(ticket).await.unwrap();
    state.advance_durable(partition, 1);
    state.bump();
    match consumer.poll(10).await.unwrap() {
        Polled::Records { partition: p, records } if p == partition => assert_eq!(records[0].offset, 0),
        other => panic!("expected the record, got {other:?}"),
    }
}
