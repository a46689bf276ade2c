//! EmbeddedLog against a simple in-memory model: random appends, polls,
//! commits and reopens; what each group consumes equals the model.

#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

mod common;

use common::TempDir;
use proptest::prelude::*;
use seqline_core::ids::{partition_for, GatewayId};
use seqline_core::ports::{Log, LogConsumer, Polled};
use seqline_core::records::Topic;
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, LogOptions};
use seqline_testkit::fixtures::{key_and_n, keyed_record};
use std::time::Duration;

const PARTITIONS: u32 = 3;
const GROUPS: usize = 2;
const KEYS: [&str; 4] = ["k-a", "k-b", "k-c", "k-d"];

#[derive(Clone, Debug)]
enum Op {
    Append { key: usize, count: u64 },
    Poll { group: usize, max: usize },
    Commit { group: usize, partition: u32 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), 1..5u64).prop_map(|(key, count)| Op::Append { key, count }),
        4 => (0..GROUPS, 1..6usize).prop_map(|(group, max)| Op::Poll { group, max }),
        2 => (0..GROUPS, 0..PARTITIONS).prop_map(|(group, partition)| Op::Commit { group, partition }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: records per partition; per group, committed and read positions.
#[derive(Default)]
struct Model {
    partitions: Vec<Vec<(String, u64)>>,
    committed: Vec<Vec<u64>>,
    position: Vec<Vec<u64>>,
}

struct Live {
    log: EmbeddedLog,
    consumers: Vec<Box<dyn LogConsumer>>,
}

async fn open(dir: &TempDir, topic: &Topic, first: bool) -> Live {
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let options = LogOptions {
        gateway: PARTITIONS,
        trim_batch: 3,
        unsynced_recoverable_topics: false,
        ..LogOptions::default()
    };
    let log = EmbeddedLog::open(engine, options).unwrap();
    let mut consumers = Vec::new();
    for g in 0..GROUPS {
        let mut c = log.subscribe(&format!("group-{g}"), topic).await.unwrap();
        assert!(matches!(c.poll(1).await.unwrap(), Polled::Assigned(p) if p.len() == PARTITIONS as usize));
        if first {
            // Retention keeps what committed groups need: every group
            // commits its start, so none of its records is trimmed.
            for p in 0..PARTITIONS {
                c.commit(p, 0).await.unwrap();
            }
        }
        consumers.push(c);
    }
    Live { log, consumers }
}

async fn run(ops: Vec<Op>) {
    let dir = TempDir::new();
    let gw = GatewayId::parse("model").unwrap();
    let topic = Topic::Gateway(gw.clone());
    let mut model = Model {
        partitions: vec![Vec::new(); PARTITIONS as usize],
        committed: vec![vec![0; PARTITIONS as usize]; GROUPS],
        position: vec![vec![0; PARTITIONS as usize]; GROUPS],
    };
    let mut live = Some(open(&dir, &topic, true).await);
    let mut n = 0u64;
    for op in ops {
        let Some(l) = live.as_mut() else { unreachable!() };
        match op {
            Op::Append { key, count } => {
                let records = (0..count).map(|i| keyed_record(KEYS[key], n + i, &gw)).collect();
                l.log.append(&topic, records).await.unwrap();
                let p = partition_for(KEYS[key], PARTITIONS) as usize;
                model.partitions[p].extend((0..count).map(|i| (KEYS[key].to_string(), n + i)));
                n += count;
            }
            Op::Poll { group, max } => {
                let ready =
                    (0..PARTITIONS as usize).any(|p| (model.position[group][p] as usize) < model.partitions[p].len());
                if !ready {
                    continue;
                }
                let polled = tokio::time::timeout(Duration::from_secs(10), l.consumers[group].poll(max)).await;
                let Polled::Records { partition, records } = polled.expect("records were due").unwrap() else {
                    panic!("expected records");
                };
                let p = partition as usize;
                let from = model.position[group][p] as usize;
                assert!(!records.is_empty() && records.len() <= max);
                let want = &model.partitions[p][from..from + records.len()];
                for (i, c) in records.iter().enumerate() {
                    assert_eq!(c.offset, (from + i) as u64, "offsets are contiguous from the position");
                    assert_eq!(key_and_n(c.record.as_ref().unwrap()).as_ref(), Some(&want[i]));
                }
                model.position[group][p] += records.len() as u64;
            }
            Op::Commit { group, partition } => {
                let next = model.position[group][partition as usize];
                l.consumers[group].commit(partition, next).await.unwrap();
                model.committed[group][partition as usize] = next;
            }
            Op::Reopen => {
                drop(live.take());
                live = Some(open(&dir, &topic, false).await);
                model.position = model.committed.clone();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn consumption_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
