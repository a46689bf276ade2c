//! The loop against the real embedded log, one test per error class, and
//! the supervision of named tasks.

#![allow(clippy::unwrap_used)]

use super::*;
use seqline_core::ports::{Log, LogConsumer, Polled};
use seqline_core::records::{DeadLetter, LogRecord, Topic};
use seqline_core::{Error, Result};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, LogOptions};
use seqline_testkit::wait::until;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

/// A log in a private directory, removed on drop.
struct Fixture {
    dir: PathBuf,
    log: EmbeddedLog,
}

impl Fixture {
    /// `deliveries` has one partition, so every record is in one batch order.
    fn open() -> Self {
        let dir = std::env::temp_dir().join(format!("seqline-worker-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let engine = EmbeddedEngine::open(&dir).unwrap();
        let options = LogOptions {
            deliveries: 1,
            ..LogOptions::default()
        };
        let log = EmbeddedLog::open(engine, options).unwrap();
        Self { dir, log }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A record telling itself apart by `reason` (any record type would do).
fn record(reason: &str) -> LogRecord {
    LogRecord::DeadLetter(DeadLetter {
        topic: "test".into(),
        partition: 0,
        offset: 0,
        reason: reason.into(),
        raw: Vec::new(),
    })
}

fn reason(r: &LogRecord) -> &str {
    match r {
        LogRecord::DeadLetter(d) => &d.reason,
        other => panic!("{other:?}"),
    }
}

/// The next batch of records `consumer` gets.
async fn drain(consumer: &mut dyn LogConsumer) -> Vec<LogRecord> {
    loop {
        let polled = tokio::time::timeout(DEADLINE, consumer.poll(100)).await;
        if let Polled::Records { records, .. } = polled.expect("records in time").unwrap() {
            return records.into_iter().map(|c| c.record.unwrap()).collect();
        }
    }
}

/// What a [`Scripted`] handler went through, in order.
type Journal = Arc<Mutex<Vec<String>>>;

fn journal(j: &Journal) -> Vec<String> {
    j.lock().unwrap().clone()
}

/// Fails its first calls with the errors given, then succeeds; refuses for
/// good any record whose reason is "poison"; may hold its first batch until
/// released; may have deferred work due. Writes down every call.
struct Scripted {
    journal: Journal,
    failures: VecDeque<Error>,
    gate: Option<Arc<Notify>>,
    /// When deferred work is due.
    due: Option<tokio::time::Instant>,
}

impl Scripted {
    fn new(journal: &Journal) -> Self {
        Self {
            journal: Arc::clone(journal),
            failures: VecDeque::new(),
            gate: None,
            due: None,
        }
    }

    fn note(&self, what: String) {
        self.journal.lock().unwrap().push(what);
    }
}

impl Handler for Scripted {
    fn revoked(&mut self, _: &[u32]) {
        self.note("revoked".into());
    }

    fn reset(&mut self) {
        self.note("reset".into());
    }

    fn wake_at(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    async fn wake(&mut self) -> Result<()> {
        self.due = None;
        self.note("wake".into());
        Ok(())
    }

    async fn handle(&mut self, _partition: u32, batch: &[Input]) -> Result<()> {
        let offsets: Vec<String> = batch.iter().map(|i| i.offset.to_string()).collect();
        self.note(format!("handle {}", offsets.join(",")));
        if let Some(gate) = self.gate.take() {
            gate.notified().await;
        }
        if let Some(e) = self.failures.pop_front() {
            return Err(e);
        }
        for input in batch {
            if reason(&input.record) == "poison" {
                return Err(Error::Invalid("a poisoned record".into()));
            }
            self.note(format!("done {}", input.offset));
        }
        Ok(())
    }
}

fn options(group: &str) -> Options {
    Options::new(group, Topic::Deliveries, 100)
}

/// Runs `handler` on `deliveries` as `group` until `stop`.
fn start(
    log: &EmbeddedLog,
    group: &str,
    stop: &CancellationToken,
    handler: Scripted,
) -> tokio::task::JoinHandle<Result<()>> {
    let (log, stop, options) = (log.clone(), stop.clone(), options(group));
    tokio::spawn(async move { consume(&log, &options, stop, handler).await })
}

/// Waits until `journal` holds `entry`.
async fn wait_for(j: &Journal, entry: &str) {
    until(DEADLINE, entry, || async {
        journal(j).iter().any(|e| e == entry).then_some(())
    })
    .await
}

/// Stops the worker, appends one more record and checks that the group
/// starts after everything the worker had: its batches were committed.
async fn assert_committed(
    log: &EmbeddedLog,
    group: &str,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<Result<()>>,
) {
    stop.cancel();
    worker.await.unwrap().unwrap();
    log.append(&Topic::Deliveries, vec![record("after")]).await.unwrap();
    let mut again = log.subscribe(group, &Topic::Deliveries).await.unwrap();
    let rest = drain(again.as_mut()).await;
    let reasons: Vec<&str> = rest.iter().map(reason).collect();
    assert_eq!(reasons, vec!["after"], "the group resumes after the handled batch");
}

/// Appends the records "a" and "b" to `deliveries`.
async fn append_two(f: &Fixture) {
    f.log
        .append(&Topic::Deliveries, vec![record("a"), record("b")])
        .await
        .unwrap();
}

/// Runs a scripted handler that first fails with `failures` over two
/// records; returns its journal once both are done and committed.
async fn two_records_after(group: &str, failures: Vec<Error>) -> Vec<String> {
    let f = Fixture::open();
    append_two(&f).await;
    let j = Journal::default();
    let mut handler = Scripted::new(&j);
    handler.failures.extend(failures);
    let stop = CancellationToken::new();
    let worker = start(&f.log, group, &stop, handler);
    wait_for(&j, "done 1").await;
    let seen = journal(&j);
    assert_committed(&f.log, group, stop, worker).await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_until_the_batch_succeeds() {
    let failures = vec![
        Error::Unavailable("store down".into()),
        Error::Unavailable("still down".into()),
    ];
    assert_eq!(
        two_records_after("transient", failures).await,
        vec!["handle 0,1", "handle 0,1", "handle 0,1", "done 0", "done 1"],
        "the same batch is handled again until it succeeds, without a reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_for_good_is_dead_lettered_and_the_partition_flows_on() {
    let f = Fixture::open();
    let records = vec![record("a"), record("b"), record("poison"), record("c"), record("d")];
    f.log.append(&Topic::Deliveries, records).await.unwrap();
    let j = Journal::default();
    let stop = CancellationToken::new();
    let worker = start(&f.log, "picky", &stop, Scripted::new(&j));
    wait_for(&j, "done 4").await;

    let mut dead = f.log.subscribe("check", &Topic::DeadLetter).await.unwrap();
    let dead = drain(dead.as_mut()).await;
    assert_eq!(dead.len(), 1, "only the poisoned record is set aside: {dead:?}");
    let LogRecord::DeadLetter(d) = &dead[0] else {
        panic!("{dead:?}")
    };
    assert_eq!((d.offset, d.topic.as_str()), (2, "deliveries"));
    assert!(d.reason.contains("refused by picky"), "{}", d.reason);
    assert!(d.reason.contains("a poisoned record"), "{}", d.reason);
    let mut done: Vec<String> = journal(&j).into_iter().filter(|e| e.starts_with("done")).collect();
    done.sort_unstable();
    done.dedup();
    assert_eq!(
        done,
        vec!["done 0", "done 1", "done 3", "done 4"],
        "every other record was handled"
    );
    assert_committed(&f.log, "picky", stop, worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_handler_forgets_its_state_and_the_batch_is_retried() {
    let failures = vec![Error::Fenced("another sequencer owns the conversation".into())];
    assert_eq!(
        two_records_after("fenced", failures).await,
        vec!["handle 0,1", "reset", "handle 0,1", "done 0", "done 1"],
        "the cached state is forgotten before the batch is handled again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_commit_drops_the_batch_and_polling_goes_on() {
    let f = Fixture::open();
    append_two(&f).await;
    let j = Journal::default();
    let gate = Arc::new(Notify::new());
    let mut handler = Scripted::new(&j);
    handler.gate = Some(Arc::clone(&gate));
    let stop = CancellationToken::new();
    let worker = start(&f.log, "moving", &stop, handler);
    wait_for(&j, "handle 0,1").await;

    // A newer member of the group takes the partition while the batch is
    // in hand: the worker's commit is fenced.
    let mut successor = f.log.subscribe("moving", &Topic::Deliveries).await.unwrap();
    gate.notify_one();
    wait_for(&j, "revoked").await;
    assert_eq!(
        journal(&j),
        vec!["handle 0,1", "done 0", "done 1", "revoked"],
        "after the fenced commit the worker polled on and learnt of the revocation"
    );
    // The embedded log retires a replaced member for good: its next poll
    // is refused, which ends the loop.
    let ended = tokio::time::timeout(DEADLINE, worker)
        .await
        .expect("the worker stops")
        .unwrap();
    assert!(matches!(ended, Err(Error::Fenced(_))), "{ended:?}");
    // The batch was dropped, not committed: the new owner redoes it.
    let redo = drain(successor.as_mut()).await;
    let reasons: Vec<&str> = redo.iter().map(reason).collect();
    assert_eq!(reasons, vec!["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_record_is_dead_lettered_and_the_handler_gets_the_others() {
    let f = Fixture::open();
    f.log.append(&Topic::Deliveries, vec![record("a")]).await.unwrap();
    f.log
        .inject_raw_for_tests(&Topic::Deliveries, 0, b"\xffnot a record".to_vec())
        .await
        .unwrap();
    f.log.append(&Topic::Deliveries, vec![record("b")]).await.unwrap();
    let j = Journal::default();
    let stop = CancellationToken::new();
    let worker = start(&f.log, "reader", &stop, Scripted::new(&j));
    wait_for(&j, "done 2").await;

    let mut dead = f.log.subscribe("check", &Topic::DeadLetter).await.unwrap();
    let dead = drain(dead.as_mut()).await;
    match &dead[..] {
        [LogRecord::DeadLetter(d)] => {
            assert_eq!((d.topic.as_str(), d.partition, d.offset), ("deliveries", 0, 1));
            assert!(!d.reason.is_empty(), "the decoder's reason is kept");
        }
        other => panic!("expected one dead letter, got {other:?}"),
    }
    let done: Vec<String> = journal(&j).into_iter().filter(|e| e.starts_with("done")).collect();
    assert_eq!(done, vec!["done 0", "done 2"], "the handler never sees the junk");
    assert_committed(&f.log, "reader", stop, worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_work_is_done_when_due_without_a_record() {
    let f = Fixture::open();
    let j = Journal::default();
    let mut handler = Scripted::new(&j);
    handler.due = Some(tokio::time::Instant::now() + Duration::from_millis(20));
    let stop = CancellationToken::new();
    let worker = start(&f.log, "idle", &stop, handler);
    wait_for(&j, "wake").await;
    f.log.append(&Topic::Deliveries, vec![record("a")]).await.unwrap();
    wait_for(&j, "done 0").await;
    assert_eq!(
        journal(&j),
        vec!["wake", "handle 0", "done 0"],
        "woken once, then records flow"
    );
    assert_committed(&f.log, "idle", stop, worker).await;
}

#[tokio::test]
async fn the_first_failing_task_stops_the_others_and_is_named() {
    let parent = CancellationToken::new();
    let mut tasks = Tasks::new(&parent);
    let stopped = Arc::new(Mutex::new(Vec::new()));
    for name in ["user lane", "conv lane"] {
        let (stop, stopped) = (tasks.stop(), Arc::clone(&stopped));
        tasks.spawn(name, async move {
            stop.cancelled().await;
            stopped.lock().unwrap().push(name);
            Ok(())
        });
    }
    tasks.spawn("priority lane", async { Err(Error::Corrupt("a broken record".into())) });
    let failed = tokio::time::timeout(DEADLINE, tasks.join())
        .await
        .expect("the others stop")
        .unwrap_err();
    assert_eq!(failed.task, "priority lane");
    assert!(matches!(failed.error, Error::Corrupt(_)), "{failed}");
    let mut stopped = stopped.lock().unwrap().clone();
    stopped.sort_unstable();
    assert_eq!(
        stopped,
        vec!["conv lane", "user lane"],
        "both other tasks were told to stop"
    );
    assert!(!parent.is_cancelled(), "the parent's token is not the tasks' to cancel");
}

#[tokio::test]
async fn a_panicking_task_is_a_failure_and_tasks_that_end_well_are_not() {
    let parent = CancellationToken::new();
    let mut tasks = Tasks::new(&parent);
    tasks.spawn("quick", async { Ok(()) });
    tasks.spawn("broken", async { panic!("a bug") });
    let stop = tasks.stop();
    tasks.spawn("waiting", async move {
        stop.cancelled().await;
        Ok(())
    });
    let failed = tokio::time::timeout(DEADLINE, tasks.join()).await.unwrap().unwrap_err();
    assert_eq!(failed.task, "broken");
    assert!(failed.error.to_string().contains("panicked"), "{failed}");

    let mut tasks = Tasks::new(&parent);
    tasks.spawn("quick", async { Ok(()) });
    let stop = tasks.stop();
    tasks.spawn("waiting", async move {
        stop.cancelled().await;
        Ok(())
    });
    parent.cancel();
    tokio::time::timeout(DEADLINE, tasks.join())
        .await
        .expect("cancelling the parent stops the tasks")
        .unwrap();
}

#[test]
fn errors_are_classed_by_what_a_retry_can_do() {
    assert_eq!(classify(&Error::Unavailable("x".into())), Class::Transient);
    assert_eq!(classify(&Error::Invalid("x".into())), Class::Refused);
    assert_eq!(classify(&Error::Fenced("x".into())), Class::Fenced);
    assert_eq!(classify(&Error::Corrupt("x".into())), Class::Fatal);
    assert_eq!(classify(&Error::ShuttingDown), Class::Fatal);
}
