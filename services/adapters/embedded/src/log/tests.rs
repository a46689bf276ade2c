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

/// The lag `/metrics` shows for `group` on `deliveries`.
fn rendered_lag(group: &str, partition: u32) -> Option<u64> {
    seqline_telemetry::Metrics::global().consumer_lag(group, "deliveries", partition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reports_the_records_it_has_not_read_yet() {
    let dir = TestDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let log = EmbeddedLog::open(Arc::clone(&engine), LogOptions::default()).unwrap();
    let gw = GatewayId::parse("lag").unwrap();
    let records = (0..20).map(|n| keyed_record("k", n, &gw)).collect();
    log.append(&Topic::Deliveries, records).await.unwrap();
    let partition = partition_for("k", log.partitions(&Topic::Deliveries));
    let group = "lag-readers";
    let mut consumer = log.subscribe(group, &Topic::Deliveries).await.unwrap();
    assert!(matches!(consumer.poll(5).await.unwrap(), Polled::Assigned(_)));
    assert_eq!(rendered_lag(group, partition), Some(20), "nothing read yet");
    match consumer.poll(5).await.unwrap() {
        Polled::Records { records, .. } => assert_eq!(records.len(), 5),
        other => panic!("expected records, got {other:?}"),
    }
    assert_eq!(rendered_lag(group, partition), Some(15));
    drop(consumer);
    assert_eq!(rendered_lag(group, partition), None, "a dropped consumer's series goes");
}
