//! Behaviour only a real broker shows: failing appends when it stops, a
//! broker crash and restart (F6), partitions and headers on the wire,
//! rebalances between processes, and older writer schemas read through the
//! log. Apache Kafka: the shared broker of the run, or a private
//! `KafkaServer` for a test that stops or kills it.

#![allow(clippy::unwrap_used)]

mod common;

use common::test_options;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use seqline_core::ids::partition_for;
use seqline_core::ports::{Log, LogConsumer, Polled};
use seqline_core::records::{LogRecord, Topic};
use seqline_core::Error;
use seqline_kafka::avro::{AvroValue, Codec, Kind, Version};
use seqline_kafka::{trace, KafkaLog, KafkaOptions};
use seqline_testkit::fixtures::{gateway, key_and_n, keyed_record, unique};
use seqline_testkit::kafka::{shared_bootstrap, KafkaServer};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const PROMPTLY: Duration = Duration::from_secs(20);

async fn poll(consumer: &mut dyn LogConsumer) -> Polled {
    tokio::time::timeout(PROMPTLY, consumer.poll(100))
        .await
        .expect("poll timed out")
        .unwrap()
}

/// Polls until the next assignment, returning it.
async fn assigned(consumer: &mut dyn LogConsumer) -> Vec<u32> {
    loop {
        if let Polled::Assigned(p) = poll(consumer).await {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_fails_while_the_broker_is_stopped_and_recovers() {
    let broker = KafkaServer::start();
    let options = KafkaOptions {
        message_timeout: Duration::from_secs(3),
        ..test_options(&broker.bootstrap())
    };
    let log = KafkaLog::connect(options).await.unwrap();
    let (topic, gw) = (Topic::Gateway(gateway("g")), gateway("g"));
    log.append(&topic, vec![keyed_record("k", 0, &gw)]).await.unwrap();

    broker.signal("STOP");
    let started = Instant::now();
    let result = log.append(&topic, vec![keyed_record("k", 1, &gw)]).await;
    let took = started.elapsed();
    broker.signal("CONT");
    let e = result.expect_err("an append to a stopped broker must not be acknowledged");
    assert!(e.is_retryable(), "{e}");
    assert!(
        took < Duration::from_secs(3 + 5),
        "failed after {took:?}, past the message timeout"
    );

    // The same log works again once the broker is back (its controller may
    // first fence it for the heartbeats it missed while stopped, and unfence
    // it a heartbeat later).
    let deadline = Instant::now() + PROMPTLY;
    loop {
        match log.append(&topic, vec![keyed_record("k", 2, &gw)]).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => eprintln!("still failing: {e}"),
            Err(e) => panic!("appends never recovered: {e}"),
        }
    }
}

/// What a consumer read: (partition, offset) -> (key, n) of the record.
type Read = BTreeMap<(u32, u64), (String, u64)>;

/// Polls `consumer` into `read` until `done` holds (a minute at most),
/// passing over assignments and revocations.
async fn read_until(consumer: &mut dyn LogConsumer, read: &mut Read, what: &str, done: impl Fn(&Read) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(read) {
        let left = deadline.saturating_duration_since(Instant::now());
        let polled = tokio::time::timeout(left, consumer.poll(100))
            .await
            .unwrap_or_else(|_| panic!("{what}: only {} records read within a minute", read.len()))
            .unwrap();
        if let Polled::Records { partition, records } = polled {
            for r in records {
                let (key, n) = key_and_n(r.record.as_ref().unwrap()).unwrap();
                read.insert((partition, r.offset), (key, n));
            }
        }
    }
}

/// Records `n` in `ns` of every key.
fn records_of(keys: &[String], ns: std::ops::Range<u64>, gw: &seqline_core::ids::GatewayId) -> Vec<LogRecord> {
    ns.flat_map(|n| keys.iter().map(move |k| keyed_record(k, n, gw)))
        .collect()
}

fn has_all(read: &Read, keys: &[String], ns: std::ops::Range<u64>) -> bool {
    let seen: BTreeSet<(&str, u64)> = read.values().map(|(k, n)| (k.as_str(), *n)).collect();
    ns.clone().all(|n| keys.iter().all(|k| seen.contains(&(k.as_str(), n))))
}

/// F6, a broker crash: SIGKILL and a restart on the same data. Every record
/// acknowledged before the crash is there afterwards at the same offset; an
/// append during the outage is either refused (a short message timeout) or
/// retried until the broker is back (the default one), never lost once
/// acknowledged; a member that lived through the crash goes on reading; and
/// a new member of the group resumes at the offsets committed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_crash_loses_no_acknowledged_record_and_groups_resume() {
    let mut broker = KafkaServer::start();
    let options = test_options(&broker.bootstrap());
    let log = KafkaLog::connect(options.clone()).await.unwrap();
    let impatient = KafkaLog::connect(KafkaOptions {
        message_timeout: Duration::from_secs(3),
        ..options.clone()
    })
    .await
    .unwrap();
    let (topic, gw, group) = (Topic::Gateway(gateway("g")), gateway("g"), unique("grp"));
    let keys: Vec<String> = (0..8).map(|i| unique(&format!("k{i}"))).collect();

    // 40 records acknowledged; the group reads them and commits about half
    // of each partition.
    log.append(&topic, records_of(&keys, 0..5, &gw)).await.unwrap();
    assert_eq!(impatient.appended(&topic).await.unwrap(), 40);
    let mut a = log.subscribe(&group, &topic).await.unwrap();
    let mut before = Read::new();
    read_until(a.as_mut(), &mut before, "before the crash", |r| r.len() == 40).await;
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    for partition in before.keys().map(|(p, _)| *p).collect::<BTreeSet<_>>() {
        let offsets: Vec<u64> = before
            .range((partition, 0)..(partition + 1, 0))
            .map(|((_, o), _)| *o)
            .collect();
        let next = offsets[offsets.len() / 2];
        a.commit(partition, next).await.unwrap();
        committed.insert(partition, next);
    }
    let committed_total: u64 = committed.values().sum();
    assert_eq!(log.backlog(&group, &topic).await.unwrap(), 40 - committed_total);

    // The crash. An append now waits for the broker (default message
    // timeout, 30 s) or, with a short one, fails.
    broker.kill();
    let crashed = Instant::now();
    let waiting = {
        let (log, topic, records) = (log.clone(), topic.clone(), records_of(&keys, 5..6, &gw));
        tokio::spawn(async move { log.append(&topic, records).await })
    };
    let e = impatient
        .append(&topic, records_of(&keys[..1], 100..101, &gw))
        .await
        .expect_err("an append while the broker is down must not be acknowledged");
    assert!(e.is_retryable(), "{e}");

    broker.restart();
    eprintln!("broker back {:?} after the crash", crashed.elapsed());
    match waiting.await.unwrap() {
        Ok(()) => eprintln!(
            "the append made during the outage went through after {:?}",
            crashed.elapsed()
        ),
        Err(e) => {
            // The restart outlasted the message timeout: the caller resends.
            assert!(e.is_retryable(), "{e}");
            eprintln!("the append made during the outage failed ({e}); resending");
            log.append(&topic, records_of(&keys, 5..6, &gw)).await.unwrap();
        }
    }
    let deadline = Instant::now() + PROMPTLY;
    loop {
        match impatient.append(&topic, records_of(&keys, 6..7, &gw)).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => eprintln!("still failing after the restart: {e}"),
            Err(e) => panic!("appends never recovered after the restart: {e}"),
        }
    }

    // Everything acknowledged before the crash is where it was.
    let reader = KafkaLog::connect(options.clone()).await.unwrap();
    let mut all = reader.subscribe(&unique("all"), &topic).await.unwrap();
    let mut after = Read::new();
    read_until(all.as_mut(), &mut after, "everything after the restart", |r| {
        has_all(r, &keys, 0..7)
    })
    .await;
    for (at, record) in &before {
        assert_eq!(after.get(at), Some(record), "record at {at:?} after the restart");
    }
    let appended = reader.appended(&topic).await.unwrap();
    assert!(appended >= 56, "{appended} records on the topic");

    // The member that lived through the crash reads what came after it
    // (after an outage longer than its session timeout, 10 s, it first
    // rejoins the group and reads again from the committed offsets).
    let mut seen = before.clone();
    read_until(a.as_mut(), &mut seen, "the member that lived through the crash", |r| {
        has_all(r, &keys, 5..7)
    })
    .await;
    drop(a);

    // Its group resumes where it committed before the crash.
    assert_eq!(
        reader.backlog(&group, &topic).await.unwrap(),
        appended - committed_total
    );
    let mut b = reader.subscribe(&group, &topic).await.unwrap();
    let mut resumed = Read::new();
    read_until(b.as_mut(), &mut resumed, "the group after the crash", |r| {
        has_all(r, &keys, 5..7) && r.len() as u64 >= appended - committed_total
    })
    .await;
    for (partition, next) in &committed {
        let first = resumed
            .range((*partition, 0)..(partition + 1, 0))
            .next()
            .map(|((_, o), _)| *o);
        assert_eq!(
            first,
            Some(*next),
            "partition {partition} resumes at its committed offset"
        );
    }
    for (at, record) in before
        .iter()
        .filter(|((p, o), _)| committed.get(p).is_some_and(|c| o >= c))
    {
        assert_eq!(
            resumed.get(at),
            Some(record),
            "record at {at:?} read again by the group"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_land_on_their_key_partition_and_carry_no_header_without_a_trace() {
    let bootstrap = shared_bootstrap();
    let options = test_options(&bootstrap);
    let log = KafkaLog::connect(options.clone()).await.unwrap();
    let (topic, gw) = (Topic::Gateway(gateway("g")), gateway("g"));
    let keys: Vec<String> = (0..12).map(|i| unique(&format!("k{i}"))).collect();
    let records: Vec<LogRecord> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| keyed_record(k, n as u64, &gw))
        .collect();
    log.append(&topic, records.clone()).await.unwrap();

    let raw: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique("raw"))
        .create()
        .unwrap();
    let name = options.topic_name(&topic);
    let mut tpl = TopicPartitionList::new();
    for p in 0..options.gateway as i32 {
        tpl.add_partition_offset(&name, p, Offset::Beginning).unwrap();
    }
    raw.assign(&tpl).unwrap();
    let codec = Codec::new().unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + PROMPTLY;
    while seen < records.len() {
        assert!(Instant::now() < deadline, "only {seen} records read back");
        let Some(message) = raw.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        let key = std::str::from_utf8(message.key().unwrap()).unwrap();
        let n = keys.iter().position(|k| k == key).unwrap();
        assert_eq!(
            message.partition() as u32,
            partition_for(key, options.gateway),
            "partition of {key}"
        );
        // Traces are not exported in this process: nothing to carry, so
        // no header (the OTLP test in the seqline crate checks the header).
        assert!(
            message
                .headers()
                .is_none_or(|h| h.iter().all(|h| h.key != trace::TRACEPARENT)),
            "no traceparent without trace context"
        );
        assert_eq!(codec.decode(message.payload().unwrap()).unwrap(), records[n]);
        seen += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conv_events_get_their_own_partition_count_and_new_records_travel() {
    let bootstrap = shared_bootstrap();
    let options = KafkaOptions {
        conv_events: 3,
        ..test_options(&bootstrap)
    };
    let log = KafkaLog::connect(options.clone()).await.unwrap();
    assert_eq!(log.partitions(&Topic::ConvEvents), 3);
    let user = seqline_testkit::fixtures::user("u");
    let convs: Vec<_> = (0..6).map(|_| seqline_testkit::fixtures::conversation()).collect();
    let events: Vec<LogRecord> = convs
        .iter()
        .map(|conv| {
            let mut message = seqline_testkit::fixtures::message(conv, 5, &user);
            message.read_diffusion = true;
            message.sender_name = "Ünïcode name".into();
            LogRecord::ConvEvent(seqline_core::records::ConvEvent { message })
        })
        .collect();
    log.append(&Topic::ConvEvents, events.clone()).await.unwrap();

    // The topic was created with the configured count, not another topic's.
    let raw: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let name = options.topic_name(&Topic::ConvEvents);
    assert!(name.ends_with("conv-events"), "{name}");
    let metadata = raw.fetch_metadata(Some(&name), Duration::from_secs(10)).unwrap();
    let topic = metadata.topics().iter().find(|t| t.name() == name).unwrap();
    assert_eq!(topic.partitions().len(), 3);

    let mut consumer = log.subscribe(&unique("grp"), &Topic::ConvEvents).await.unwrap();
    assigned(consumer.as_mut()).await;
    let mut got = Vec::new();
    while got.len() < events.len() {
        if let Polled::Records { partition, records } = poll(consumer.as_mut()).await {
            for r in records {
                let record = r.record.unwrap();
                assert_eq!(partition, partition_for(record.key(), 3), "{}", record.key());
                got.push(record);
            }
        }
    }
    for event in &events {
        assert!(got.contains(event), "{event:?} not read back");
    }

    // Notices and read marks travel on a gateway topic.
    let gw = gateway("g");
    let conv = convs[0].clone();
    let notices = vec![
        LogRecord::Gateway(seqline_core::records::GatewayRecord::Notice(
            seqline_core::records::Notice {
                conv: conv.clone(),
                head: seqline_core::ids::ConvSeq(5),
                message: None,
            },
        )),
        LogRecord::Gateway(seqline_core::records::GatewayRecord::ReadMark(
            seqline_core::records::ReadMark {
                user: user.clone(),
                device: seqline_testkit::fixtures::device("d"),
                conv,
                conv_seq: seqline_core::ids::ConvSeq(4),
            },
        )),
    ];
    log.append(&Topic::Gateway(gw.clone()), notices.clone()).await.unwrap();
    let mut consumer = log.subscribe(&unique("grp"), &Topic::Gateway(gw)).await.unwrap();
    assigned(consumer.as_mut()).await;
    let mut got = Vec::new();
    while got.len() < notices.len() {
        if let Polled::Records { records, .. } = poll(consumer.as_mut()).await {
            got.extend(records.into_iter().map(|r| r.record.unwrap()));
        }
    }
    for notice in &notices {
        assert!(got.contains(notice), "{notice:?} not read back");
    }
}

/// A member of `group` on `second` joins while `a` holds the partitions:
/// returns what `a` had revoked, and the new member with its assignment
/// (it waits for that on a task of its own).
async fn second_member_joins(
    a: &mut dyn LogConsumer,
    second: &KafkaLog,
    group: &str,
    topic: &Topic,
) -> (Vec<u32>, tokio::task::JoinHandle<(Box<dyn LogConsumer>, Vec<u32>)>) {
    let mut b = second.subscribe(group, topic).await.unwrap();
    let b_task = tokio::spawn(async move {
        let parts = assigned(b.as_mut()).await;
        (b, parts)
    });
    loop {
        if let Polled::Revoked(p) = poll(a).await {
            return (p, b_task);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_between_processes_revokes_and_fences_commits() {
    let bootstrap = shared_bootstrap();
    let options = test_options(&bootstrap);
    // Two logs: two processes as far as the group is concerned.
    let (first, second) = (
        KafkaLog::connect(options.clone()).await.unwrap(),
        KafkaLog::connect(options.clone()).await.unwrap(),
    );
    let (topic, gw, group) = (Topic::Gateway(gateway("g")), gateway("g"), unique("grp"));
    let key = unique("k");
    first.append(&topic, vec![keyed_record(&key, 0, &gw)]).await.unwrap();
    let mut a = first.subscribe(&group, &topic).await.unwrap();
    assert_eq!(assigned(a.as_mut()).await.len(), 4);
    let Polled::Records { partition, records } = poll(a.as_mut()).await else {
        panic!("expected the record")
    };

    let (revoked, b_task) = second_member_joins(a.as_mut(), &second, &group, &topic).await;
    assert_eq!(revoked.len(), 4, "eager rebalancing revokes everything");
    let e = a.commit(partition, records[0].offset + 1).await.unwrap_err();
    assert!(matches!(e, Error::Fenced(_)), "commit after revocation: {e}");

    // Unlike a takeover within one process, both members go on.
    let mine = assigned(a.as_mut()).await;
    let (_b, theirs) = b_task.await.unwrap();
    let mut all: Vec<u32> = mine.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        vec![0, 1, 2, 3],
        "the partitions are shared out: {mine:?} + {theirs:?}"
    );
    if mine.contains(&partition) {
        let Polled::Records { records, .. } = poll(a.as_mut()).await else {
            panic!("the record again, from the committed offset")
        };
        a.commit(partition, records[0].offset + 1).await.unwrap();
    }
}

/// A worker that stops reading (stuck in a batch) must not hold its
/// partitions for good: its consumer stops polling, leaves the group once
/// the max poll interval has passed, and the other member takes every
/// partition. Once the stuck worker reads again it is told of the
/// revocation first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_worker_stops_reading_loses_its_partitions() {
    let bootstrap = shared_bootstrap();
    // The shortest max poll interval the default session timeout allows.
    let options = KafkaOptions {
        max_poll_interval: Duration::from_secs(10),
        ..test_options(&bootstrap)
    };
    let (first, second) = (
        KafkaLog::connect(options.clone()).await.unwrap(),
        KafkaLog::connect(options.clone()).await.unwrap(),
    );
    let (topic, group) = (Topic::Gateway(gateway("g")), unique("grp"));
    let mut a = first.subscribe(&group, &topic).await.unwrap();
    assert_eq!(assigned(a.as_mut()).await.len(), 4);
    let (_, b_task) = second_member_joins(a.as_mut(), &second, &group, &topic).await;
    let mine = assigned(a.as_mut()).await;
    let (mut b, theirs) = b_task.await.unwrap();
    assert_eq!(mine.len() + theirs.len(), 4, "shared out: {mine:?} + {theirs:?}");
    assert!(!mine.is_empty(), "the stuck member must hold something: {mine:?}");

    // `a` stops reading. `b` ends up with every partition.
    let stuck = Instant::now();
    let deadline = Duration::from_secs(90);
    loop {
        let polled = tokio::time::timeout(deadline.saturating_sub(stuck.elapsed()), b.poll(100))
            .await
            .expect("the stuck member kept its partitions")
            .unwrap();
        if let Polled::Assigned(p) = polled {
            if p.len() == 4 {
                break;
            }
        }
    }
    eprintln!("taken over {:?} after the worker stopped reading", stuck.elapsed());

    // Reading again, `a` first learns that it lost its partitions.
    loop {
        match poll(a.as_mut()).await {
            Polled::Revoked(p) => {
                assert_eq!(p, mine, "the stuck member's partitions are revoked");
                break;
            }
            Polled::Records { .. } => {}
            Polled::Assigned(p) => panic!("assigned {p:?} before the revocation"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_the_previous_schema_and_junk_come_through_the_log() {
    let bootstrap = shared_bootstrap();
    let options = test_options(&bootstrap);
    let log = KafkaLog::connect(options).await.unwrap();
    let topic = Topic::Deliveries;
    let user = seqline_testkit::fixtures::user("u");
    let conv = seqline_testkit::fixtures::conversation();
    let delivery = seqline_core::records::Delivery {
        user: user.clone(),
        message: seqline_testkit::fixtures::message(&conv, 1, &user),
    };
    let partition = partition_for(user.as_str(), log.partitions(&topic));
    let AvroValue(apache_avro::types::Value::Record(mut fields)) = AvroValue::from(&delivery) else {
        unreachable!()
    };
    // The v1 Message had no `priority` (nor the v3 `sender_name`, `read_diffusion`).
    if let apache_avro::types::Value::Record(message) = &mut fields[1].1 {
        message.retain(|(k, _)| !matches!(k.as_str(), "priority" | "sender_name" | "read_diffusion"));
    }
    let v1 = Codec::encode_value(Kind::Delivery, Version::V1, apache_avro::types::Value::Record(fields)).unwrap();
    let mut unknown = v1.clone();
    unknown[5] ^= 0x5a;
    let old = log.inject_raw_for_tests(&topic, partition, v1).await.unwrap();
    let bad = log.inject_raw_for_tests(&topic, partition, unknown).await.unwrap();
    log.append(&topic, vec![LogRecord::Delivery(delivery.clone())])
        .await
        .unwrap();

    let mut consumer = log.subscribe(&unique("grp"), &topic).await.unwrap();
    assigned(consumer.as_mut()).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        if let Polled::Records { records, .. } = poll(consumer.as_mut()).await {
            got.extend(records);
        }
    }
    assert_eq!(got[0].offset, old);
    assert_eq!(got[0].record.as_ref().unwrap(), &LogRecord::Delivery(delivery.clone()));
    assert_eq!(got[1].offset, bad);
    let reason = got[1].record.as_ref().unwrap_err();
    assert!(reason.contains("fingerprint"), "{reason}");
    assert_eq!(got[2].record.as_ref().unwrap(), &LogRecord::Delivery(delivery));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_is_zero_only_once_a_group_has_committed_everything() {
    let bootstrap = shared_bootstrap();
    let options = test_options(&bootstrap);
    let log = KafkaLog::connect(options).await.unwrap();
    let (topic, gw, group) = (Topic::Gateway(gateway("g")), gateway("g"), unique("grp"));
    assert_eq!(log.backlog(&group, &topic).await.unwrap(), 0, "an empty topic");
    assert_eq!(log.appended(&topic).await.unwrap(), 0, "an empty topic");
    let records: Vec<LogRecord> = (0..10).map(|n| keyed_record(&unique("k"), n, &gw)).collect();
    log.append(&topic, records).await.unwrap();
    assert_eq!(log.appended(&topic).await.unwrap(), 10);
    assert_eq!(
        log.backlog(&group, &topic).await.unwrap(),
        10,
        "a group that never committed is behind by everything"
    );

    let mut consumer = log.subscribe(&group, &topic).await.unwrap();
    assigned(consumer.as_mut()).await;
    let mut left = 10usize;
    while left > 0 {
        let Polled::Records { partition, records } = poll(consumer.as_mut()).await else {
            continue;
        };
        let next = records.last().unwrap().offset + 1;
        consumer.commit(partition, next).await.unwrap();
        left -= records.len();
    }
    assert_eq!(log.backlog(&group, &topic).await.unwrap(), 0, "everything committed");
    // Another group's commits do not count for this one.
    assert_eq!(log.backlog(&unique("other"), &topic).await.unwrap(), 10);
}

/// The lag `/metrics` shows for `group` on `topic` (full name), partition 0.
fn rendered_lag(group: &str, topic: &str) -> Option<u64> {
    seqline_telemetry::Metrics::global().consumer_lag(group, topic, 0)
}

/// The consumer lag of `/metrics` is the group lag Kafka's tools show: the
/// records past the committed offset, read ahead or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_counts_the_records_past_the_committed_offset() {
    let options = KafkaOptions {
        gateway: 1,
        ..test_options(&shared_bootstrap())
    };
    let log = KafkaLog::connect(options).await.unwrap();
    let gw = gateway("lag");
    let topic = Topic::Gateway(gw.clone());
    let name = log.options().topic_name(&topic);
    log.append(&topic, (0..20).map(|n| keyed_record("k", n, &gw)).collect())
        .await
        .unwrap();
    let group = unique("lag");
    let mut consumer = log.subscribe(&group, &topic).await.unwrap();
    assert_eq!(assigned(&mut *consumer).await, vec![0]);
    let mut read = 0;
    while read < 5 {
        if let Polled::Records { records, .. } = poll(&mut *consumer).await {
            read += records.len();
        }
    }
    consumer.commit(0, 5).await.unwrap();
    // librdkafka's statistics, where the lag comes from, arrive every 5 s.
    seqline_testkit::wait::until(Duration::from_secs(30), "a lag of 15 after committing 5 of 20", || {
        let lag = rendered_lag(&group, &name);
        async move { (lag == Some(15)).then_some(()) }
    })
    .await;
}
