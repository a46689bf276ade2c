//! The `Log` contract. Checks use `gw.<fresh id>` topics and fresh groups;
//! they adapt to the number of partitions the backend gives such topics.

use crate::fixtures::{gateway, key_and_n, keyed_record, unique};
use crate::{ok, LogHarness};
use seqline_core::ports::{Consumed, Log, LogConsumer, Polled};
use seqline_core::records::Topic;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long a check waits for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(30);

/// Runs every log check in turn.
pub async fn log_contract(h: &dyn LogHarness) {
    per_key_order(h).await;
    starts_at_earliest(h).await;
    commit_and_resume(h).await;
    durable_across_reopen(h).await;
    takeover_revokes(h).await;
    poll_waits_and_is_cancel_safe(h).await;
    undecodable_is_an_error_record(h).await;
}

/// Generates one test per log check; `$harness` builds the harness.
#[macro_export]
macro_rules! log_tests {
    ($harness:expr) => {
        $crate::__contract_tests!(log, $harness; per_key_order, starts_at_earliest, commit_and_resume,
            durable_across_reopen, takeover_revokes, poll_waits_and_is_cancel_safe,
            undecodable_is_an_error_record);
    };
}

fn topic() -> Topic {
    Topic::Gateway(gateway("t"))
}

/// Polls until `want` records arrived (after the assignment), checking that
/// offsets are contiguous per partition from where they started.
pub async fn consume(consumer: &mut dyn LogConsumer, want: usize) -> BTreeMap<u32, Vec<Consumed>> {
    let mut got: BTreeMap<u32, Vec<Consumed>> = BTreeMap::new();
    let mut count = 0;
    while count < want {
        let polled = tokio::time::timeout(PROMPTLY, consumer.poll(64)).await;
        let polled = ok(
            polled.unwrap_or_else(|_| panic!("only {count} of {want} records arrived")),
            "poll",
        );
        match polled {
            Polled::Assigned(_) => {}
            Polled::Revoked(p) => panic!("unexpected revocation of {p:?}"),
            Polled::Records { partition, records } => {
                let seen = got.entry(partition).or_default();
                for r in records {
                    if let Some(last) = seen.last() {
                        assert_eq!(
                            r.offset,
                            last.offset + 1,
                            "offsets of partition {partition} are contiguous"
                        );
                    }
                    seen.push(r);
                    count += 1;
                }
            }
        }
    }
    got
}

fn keyed(records: &[Consumed]) -> Vec<(String, u64)> {
    records
        .iter()
        .map(|c| key_and_n(c.record.as_ref().unwrap_or_else(|e| panic!("bad record: {e}"))).unwrap_or_default())
        .collect()
}

async fn subscribe(log: &Arc<dyn Log>, group: &str, topic: &Topic) -> Box<dyn LogConsumer> {
    ok(log.subscribe(group, topic).await, "subscribe")
}

/// Records of one key come out in append order; offsets are contiguous.
pub async fn per_key_order(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw) = (topic(), gateway("g"));
    let keys: Vec<String> = (0..8).map(|i| unique(&format!("k{i}"))).collect();
    let mut writers = Vec::new();
    for chunk in keys.chunks(2) {
        let (log, topic, gw, chunk) = (Arc::clone(&log), topic.clone(), gw.clone(), chunk.to_vec());
        writers.push(tokio::spawn(async move {
            for n in 0..10u64 {
                let batch = chunk
                    .iter()
                    .flat_map(|k| (0..3).map(move |j| (k, n * 3 + j)))
                    .map(|(k, n)| keyed_record(k, n, &gw))
                    .collect();
                ok(log.append(&topic, batch).await, "append");
            }
        }));
    }
    for w in writers {
        if let Err(e) = w.await {
            panic!("writer failed: {e}");
        }
    }
    let mut consumer = subscribe(&log, &unique("grp"), &topic).await;
    let got = consume(consumer.as_mut(), keys.len() * 30).await;
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for records in got.values() {
        for (k, n) in keyed(records) {
            per_key.entry(k).or_default().push(n);
        }
    }
    for k in &keys {
        assert_eq!(per_key.get(k), Some(&(0..30).collect::<Vec<_>>()), "order of key {k}");
    }
}

/// A new group starts at the earliest record.
pub async fn starts_at_earliest(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw, key) = (topic(), gateway("g"), unique("k"));
    ok(
        log.append(&topic, (0..5).map(|n| keyed_record(&key, n, &gw)).collect())
            .await,
        "append",
    );
    let mut consumer = subscribe(&log, &unique("grp"), &topic).await;
    let first = ok(
        tokio::time::timeout(PROMPTLY, consumer.poll(10))
            .await
            .unwrap_or_else(|_| panic!("no assignment")),
        "poll",
    );
    match first {
        Polled::Assigned(p) => assert_eq!(p.len() as u32, log.partitions(&topic), "all partitions assigned"),
        other => panic!("the first poll must assign, got {other:?}"),
    }
    let got = consume(consumer.as_mut(), 5).await;
    let all: Vec<(String, u64)> = got.values().flat_map(|r| keyed(r)).collect();
    assert_eq!(all, (0..5).map(|n| (key.clone(), n)).collect::<Vec<_>>());
}

/// After a commit, a new consumer of the group resumes after it.
pub async fn commit_and_resume(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw, key, group) = (topic(), gateway("g"), unique("k"), unique("grp"));
    ok(
        log.append(&topic, (0..10).map(|n| keyed_record(&key, n, &gw)).collect())
            .await,
        "append",
    );
    let mut consumer = subscribe(&log, &group, &topic).await;
    let got = consume(consumer.as_mut(), 10).await;
    let (&partition, records) = got.iter().next().unwrap_or_else(|| panic!("no records"));
    ok(consumer.commit(partition, records[4].offset + 1).await, "commit");
    drop(consumer);
    let mut again = subscribe(&log, &group, &topic).await;
    let rest = consume(again.as_mut(), 5).await;
    let ns: Vec<u64> = rest.values().flat_map(|r| keyed(r)).map(|(_, n)| n).collect();
    assert_eq!(ns, vec![5, 6, 7, 8, 9], "resumes after the committed offset");
}

/// Appended records and committed offsets survive closing and reopening.
pub async fn durable_across_reopen(h: &dyn LogHarness) {
    let (topic, gw, key, group) = (topic(), gateway("g"), unique("k"), unique("grp"));
    let first_offsets = {
        let log = h.open().await;
        ok(
            log.append(&topic, (0..6).map(|n| keyed_record(&key, n, &gw)).collect())
                .await,
            "append",
        );
        let mut consumer = subscribe(&log, &group, &topic).await;
        let got = consume(consumer.as_mut(), 6).await;
        let (&partition, records) = got.iter().next().unwrap_or_else(|| panic!("no records"));
        ok(consumer.commit(partition, records[2].offset + 1).await, "commit");
        records.iter().map(|r| r.offset).collect::<Vec<_>>()
    };
    let log = h.open().await;
    ok(
        log.append(&topic, (6..8).map(|n| keyed_record(&key, n, &gw)).collect())
            .await,
        "append after reopen",
    );
    let mut consumer = subscribe(&log, &group, &topic).await;
    let got = consume(consumer.as_mut(), 5).await;
    let records: Vec<&Consumed> = got.values().flatten().collect();
    let ns: Vec<u64> = records
        .iter()
        .filter_map(|c| c.record.as_ref().ok().and_then(key_and_n))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        ns,
        vec![3, 4, 5, 6, 7],
        "resumes after the commit, with the new records"
    );
    assert_eq!(
        records[0].offset, first_offsets[3],
        "offsets are stable across a reopen"
    );
}

/// A second consumer of the same group takes over; the first is revoked
/// and then refused.
pub async fn takeover_revokes(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw, key, group) = (topic(), gateway("g"), unique("k"), unique("grp"));
    ok(log.append(&topic, vec![keyed_record(&key, 0, &gw)]).await, "append");
    let mut old = subscribe(&log, &group, &topic).await;
    consume(old.as_mut(), 1).await;
    let mut new = subscribe(&log, &group, &topic).await;
    let revoked = tokio::time::timeout(PROMPTLY, async {
        loop {
            match old.poll(10).await {
                Ok(Polled::Revoked(p)) => return p,
                Ok(_) => continue,
                Err(e) => panic!("the old consumer must see a revocation first, got {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the old consumer was never revoked"));
    assert_eq!(revoked.len() as u32, log.partitions(&topic));
    assert!(old.poll(10).await.is_err(), "a revoked consumer's poll fails");
    assert!(old.commit(0, 1).await.is_err(), "a revoked consumer cannot commit");
    let got = consume(new.as_mut(), 1).await;
    assert_eq!(
        got.values().map(Vec::len).sum::<usize>(),
        1,
        "the new owner reads from the committed offset"
    );
}

/// `poll` waits for records, and a poll dropped while waiting loses nothing.
pub async fn poll_waits_and_is_cancel_safe(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw, key) = (topic(), gateway("g"), unique("k"));
    let mut consumer = subscribe(&log, &unique("grp"), &topic).await;
    consume(consumer.as_mut(), 0).await;
    for round in 0..3u64 {
        let waited = tokio::time::timeout(Duration::from_millis(50), consumer.poll(10)).await;
        match waited {
            Err(_) => {}
            Ok(Ok(Polled::Assigned(_))) => {}
            Ok(other) => panic!("round {round}: nothing was appended, got {other:?}"),
        }
        ok(log.append(&topic, vec![keyed_record(&key, round, &gw)]).await, "append");
        let got = consume(consumer.as_mut(), 1).await;
        let ns: Vec<u64> = got.values().flat_map(|r| keyed(r)).map(|(_, n)| n).collect();
        assert_eq!(ns, vec![round]);
    }
}

/// Bytes that are not a record come back as an `Err` record with their
/// offset, and the records around them still arrive.
pub async fn undecodable_is_an_error_record(h: &dyn LogHarness) {
    let log = h.open().await;
    let (topic, gw, key) = (topic(), gateway("g"), unique("k"));
    ok(log.append(&topic, vec![keyed_record(&key, 0, &gw)]).await, "append");
    let partition = seqline_core::ids::partition_for(&key, log.partitions(&topic));
    let Some(bad) = h.inject_raw(&topic, partition, vec![0xde, 0xad, 0xbe, 0xef]).await else {
        return;
    };
    ok(log.append(&topic, vec![keyed_record(&key, 1, &gw)]).await, "append");
    let mut consumer = subscribe(&log, &unique("grp"), &topic).await;
    let got = consume(consumer.as_mut(), 3).await;
    let records = got
        .get(&partition)
        .unwrap_or_else(|| panic!("nothing on partition {partition}"));
    assert_eq!(records.len(), 3);
    assert!(records[0].record.is_ok());
    assert_eq!(records[1].offset, bad);
    assert!(records[1].record.is_err(), "junk must decode to an error");
    assert!(records[2].record.is_ok());
}
