//! The loop: poll a batch, set the undecodable records aside, hand the rest
//! to the handler (retrying, isolating or resetting as the error says),
//! then commit the offset.

use crate::dead;
use seqline_core::failpoint;
use seqline_core::ports::{Consumed, Log, LogConsumer, Polled};
use seqline_core::records::{LogRecord, Topic};
use seqline_core::trace::TraceParent;
use seqline_core::{Error, Result};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A record that decoded, with its offset and trace context.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its offset in the partition.
    pub offset: u64,
    /// The record.
    pub record: LogRecord,
    /// The trace context it was appended in, if any: a handler that works
    /// per record may continue it in a span of its own (the batch's span
    /// already continues the first one).
    pub trace: Option<TraceParent>,
}

/// What a role does with the records of its partitions.
pub trait Handler: Send {
    /// The group was joined; records follow.
    fn subscribed(&mut self) {}

    /// These partitions are ours now: forget cached state for them.
    fn assigned(&mut self, partitions: &[u32]) {
        let _ = partitions;
    }

    /// These partitions are gone.
    fn revoked(&mut self, partitions: &[u32]) {
        let _ = partitions;
    }

    /// Another owner wrote data this handler caches (its `handle` returned
    /// `Fenced`): forget what is cached, the batch is handled again.
    fn reset(&mut self) {}

    /// Handles a batch of one partition, in offset order; returns once
    /// every output is durable. Called again with the same records after a
    /// failure, so it must be idempotent.
    fn handle(&mut self, partition: u32, batch: &[Input]) -> impl Future<Output = Result<()>> + Send;

    /// When [`Handler::wake`] is due without a record arriving (work the
    /// handler deferred, such as coalesced notices); `None` when nothing is.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Does the deferred work due now. An error stops the loop.
    fn wake(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// What a failure of the log while polling or committing does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnLogFailure {
    /// Return it: the role stops and its supervisor decides.
    #[default]
    Return,
    /// Log it and go on. A transient poll failure is retried after a pause
    /// that doubles from 50 ms up to `max_pause`; any other poll failure is
    /// still returned. A failed commit is logged and the loop polls on:
    /// the records are read again after a restart, handled twice at worst.
    Retry {
        /// The longest pause between two polls.
        max_pause: Duration,
    },
}

/// Where and how a worker consumes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: Topic,
    /// Most records in one batch.
    pub max_records: usize,
    /// What a failure of the log while polling or committing does.
    pub on_log_failure: OnLogFailure,
}

impl Options {
    /// Consumes `topic` as `group`, up to `max_records` a batch, returning
    /// log failures.
    pub fn new(group: impl Into<String>, topic: Topic, max_records: usize) -> Self {
        Self {
            group: group.into(),
            topic,
            max_records,
            on_log_failure: OnLogFailure::Return,
        }
    }

    /// With `policy` for log failures.
    pub fn on_log_failure(mut self, policy: OnLogFailure) -> Self {
        self.on_log_failure = policy;
        self
    }
}

/// What an error means for the batch that got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// May succeed later: retry after a pause.
    Transient,
    /// Will fail again with the same input: isolate and dead-letter.
    Refused,
    /// Another owner wrote the data: forget cached state, then retry.
    Fenced,
    /// Neither: return it.
    Fatal,
}

/// The class of `e`.
pub fn classify(e: &Error) -> Class {
    match e {
        _ if e.is_retryable() => Class::Transient,
        Error::Invalid(_) => Class::Refused,
        Error::Fenced(_) => Class::Fenced,
        _ => Class::Fatal,
    }
}

/// Attempts after the first before a transient or fenced failure is
/// returned; the pauses double from 100 ms to 3.2 s (about 13 s in all).
pub const MAX_ATTEMPTS: u32 = 8;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6))
}

const FIRST_POLL_PAUSE: Duration = Duration::from_millis(50);

/// Consumes `options.topic` as `options.group` with `handler` until
/// `shutdown`; returns `Ok` once shut down, or the error that stopped it.
pub async fn consume<H: Handler>(
    log: &dyn Log,
    options: &Options,
    shutdown: CancellationToken,
    handler: H,
) -> Result<()> {
    let span = tracing::info_span!("consume", group = %options.group, topic = %options.topic.name());
    run(log, options, shutdown, handler).instrument(span).await
}

enum Next {
    Stop,
    Polled(Result<Polled>),
    Wake,
}

async fn run<H: Handler>(log: &dyn Log, options: &Options, shutdown: CancellationToken, mut handler: H) -> Result<()> {
    let mut consumer = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        c = log.subscribe(&options.group, &options.topic) => c?,
    };
    handler.subscribed();
    let mut pause = FIRST_POLL_PAUSE;
    loop {
        let wake = handler.wake_at();
        let next = tokio::select! {
            _ = shutdown.cancelled() => Next::Stop,
            p = consumer.poll(options.max_records) => Next::Polled(p),
            () = sleep_until(wake) => Next::Wake,
        };
        let polled = match next {
            Next::Stop => return Ok(()),
            Next::Wake => {
                handler.wake().await?;
                continue;
            }
            Next::Polled(Ok(p)) => {
                pause = FIRST_POLL_PAUSE;
                p
            }
            Next::Polled(Err(e)) => match options.on_log_failure {
                OnLogFailure::Retry { max_pause } if e.is_retryable() => {
                    tracing::warn!(error = %e, "polling failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                    pause = (pause * 2).min(max_pause);
                    continue;
                }
                _ => return Err(e),
            },
        };
        match polled {
            Polled::Assigned(p) => handler.assigned(&p),
            Polled::Revoked(p) => handler.revoked(&p),
            Polled::Records { partition, records } => {
                let Some(first) = records.first().map(|r| r.offset) else {
                    continue;
                };
                // A root span (its fields name the consumer): a batch is in
                // its first record's trace, or in one of its own, never in
                // the trace of the consumer, which lasts as long as it runs.
                let span = tracing::info_span!(
                    parent: None,
                    "batch",
                    group = %options.group,
                    topic = %options.topic.name(),
                    partition,
                    first,
                    records = records.len(),
                );
                // Records carry no context when traces are not exported:
                // then this only looks.
                seqline_telemetry::continue_traces(&span, records.iter().filter_map(|r| r.trace));
                batch(log, options, consumer.as_mut(), &mut handler, partition, records)
                    .instrument(span)
                    .await?;
            }
        }
    }
}

/// Handles and commits one batch.
async fn batch<H: Handler>(
    log: &dyn Log,
    options: &Options,
    consumer: &mut dyn LogConsumer,
    handler: &mut H,
    partition: u32,
    records: Vec<Consumed>,
) -> Result<()> {
    let group = options.group.as_str();
    let Some(next) = records.last().map(|r| r.offset + 1) else {
        return Ok(());
    };
    tracing::debug!(group, partition, first = records[0].offset, next, "batch");
    let batch = split_dead(log, &options.topic, partition, records, group).await?;
    if !batch.is_empty() {
        match handle_retrying(handler, partition, &batch, group).await {
            Ok(()) => {}
            Err(Error::Invalid(reason)) => {
                tracing::warn!(group, partition, %reason, "batch refused; isolating the record");
                isolate(log, &options.topic, partition, &batch, handler, group).await?;
            }
            Err(e) => return Err(e),
        }
    }
    failpoint::hit(failpoint::names::WORKER_BEFORE_OFFSET_COMMIT).await;
    match consumer.commit(partition, next).await {
        Ok(()) => Ok(()),
        // The partition moved to another member while we worked: our
        // outputs are durable and idempotent, the new owner redoes the
        // batch from the committed offset. Drop it and poll on.
        Err(Error::Fenced(reason)) => {
            tracing::warn!(partition, %reason, "partition lost before commit; dropping the batch");
            Ok(())
        }
        Err(e) => match options.on_log_failure {
            OnLogFailure::Retry { .. } => {
                tracing::warn!(error = %e, partition, "committing the offset failed");
                Ok(())
            }
            OnLogFailure::Return => Err(e),
        },
    }
}

/// Handles a batch, retrying while the failure is transient, and after
/// telling the handler to forget its cached state when it was fenced.
async fn handle_retrying<H: Handler>(handler: &mut H, partition: u32, batch: &[Input], group: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        let e = match handler.handle(partition, batch).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let class = classify(&e);
        if !matches!(class, Class::Transient | Class::Fenced) || attempt >= MAX_ATTEMPTS {
            return Err(e);
        }
        attempt += 1;
        if class == Class::Fenced {
            tracing::warn!(error = %e, attempt, group, "batch fenced; forgetting cached state and retrying");
            handler.reset();
        } else {
            tracing::warn!(error = %e, attempt, group, "batch failed, retrying");
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Redoes a refused batch one record at a time, in order (handlers are
/// idempotent, so records already done are answered again, not redone) and
/// dead-letters each record the handler refuses for good.
async fn isolate<H: Handler>(
    log: &dyn Log,
    topic: &Topic,
    partition: u32,
    batch: &[Input],
    handler: &mut H,
    group: &str,
) -> Result<()> {
    for input in batch {
        match handle_retrying(handler, partition, std::slice::from_ref(input), group).await {
            Ok(()) => {}
            Err(Error::Invalid(reason)) => {
                let letter = dead::refused(topic, partition, input.offset, group, &reason);
                append_dead(log, vec![letter], group).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The decoded records of a batch; the others are dead-lettered.
async fn split_dead(
    log: &dyn Log,
    topic: &Topic,
    partition: u32,
    records: Vec<Consumed>,
    group: &str,
) -> Result<Vec<Input>> {
    let mut good = Vec::with_capacity(records.len());
    let mut dead = Vec::new();
    for c in records {
        match c.record {
            Ok(record) => good.push(Input {
                offset: c.offset,
                record,
                trace: c.trace,
            }),
            Err(reason) => dead.push(dead::undecodable(topic, partition, c.offset, reason)),
        }
    }
    if !dead.is_empty() {
        append_dead(log, dead, group).await?;
    }
    Ok(good)
}

/// Appends dead letters, retrying while the log is unavailable.
async fn append_dead(log: &dyn Log, dead: Vec<LogRecord>, group: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        match log.append(&Topic::DeadLetter, dead.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, group, "dead-lettering failed, retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
