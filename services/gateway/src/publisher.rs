//! One task per gateway appends the commands of all its connections to the
//! inbound topic in batches: while one append is being made durable, the next
//! batch gathers, so one fsync (or one Kafka round trip) serves many sends.
//!
//! A single task also keeps the order in which a connection handed over its
//! sends, which is the order the sequencer sees them in.

use crate::metrics::Metrics;
use crate::outbox::{Outbound, Outbox};
use seqline_core::ports::Log;
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::records::{Command, LogRecord, Topic};
use seqline_core::trace::TraceParent;
use seqline_core::{ClientMsgId, ConversationId};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{instrument, warn, Instrument, Span};

/// Who asked for an append: told if it fails (or, for HTTP, how it went).
pub(crate) enum Requester {
    /// A WebSocket send: on failure, an `unavailable` error naming `id`.
    Connection {
        /// The connection's outgoing queue.
        tx: Outbox,
        /// The client's message id.
        id: ClientMsgId,
        /// Its conversation.
        conv: ConversationId,
    },
    /// An HTTP request: told either way.
    Request(oneshot::Sender<Result<(), String>>),
}

/// A command to append, and who to tell.
pub(crate) struct Job {
    pub command: Command,
    pub requester: Requester,
    /// The trace context of the send (see [`send_span`]), if traced.
    pub trace: Option<TraceParent>,
}

/// The span a client's `send` or `batch` frame is handled in: the root of
/// the message's trace, which continues through every log hop to the
/// pushes and the ack. Only when traces are exported: otherwise a send
/// costs no span.
pub(crate) fn send_span() -> Span {
    if seqline_telemetry::exporting() {
        tracing::info_span!(parent: None, "send")
    } else {
        Span::none()
    }
}

/// The publisher's queue was closed: the gateway is stopping.
#[derive(Debug)]
pub(crate) struct Closed;

/// The handle connections and handlers publish through.
#[derive(Clone)]
pub(crate) struct Publisher {
    tx: mpsc::Sender<Job>,
}

impl Publisher {
    /// A publisher and the receiving end for [`run`].
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    /// Queues a command; waits while the queue is full (back-pressure).
    pub async fn publish(&self, job: Job) -> Result<(), Closed> {
        self.tx.send(job).await.map_err(|_| Closed)
    }
}

/// Appends queued commands in batches of at most `batch_max` until `stop`;
/// then appends what is already queued and returns.
pub(crate) async fn run(
    log: Arc<dyn Log>,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    loop {
        let first = tokio::select! {
            biased;
            job = rx.recv() => job,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        append(log.as_ref(), &mut batch, &metrics).await;
    }
    // Stopping: refuse new jobs, append the ones already accepted.
    rx.close();
    while let Some(job) = rx.recv().await {
        batch.push(job);
        if batch.len() >= batch_max {
            append(log.as_ref(), &mut batch, &metrics).await;
        }
    }
    if !batch.is_empty() {
        append(log.as_ref(), &mut batch, &metrics).await;
    }
}

#[instrument(skip_all, fields(topic = "inbound", records = batch.len()))]
async fn append(log: &dyn Log, batch: &mut Vec<Job>, metrics: &Metrics) {
    let mut records = Vec::with_capacity(batch.len());
    let mut requesters = Vec::with_capacity(batch.len());
    let mut traces = Vec::new();
    for job in batch.drain(..) {
        records.push(LogRecord::Command(job.command));
        requesters.push(job.requester);
        traces.extend(job.trace);
    }
    let n = records.len() as u64;
    // The append continues the first send's trace and links the others'.
    let publish = if traces.is_empty() {
        Span::none()
    } else {
        tracing::info_span!("publish", records = n)
    };
    seqline_telemetry::continue_traces(&publish, traces.iter().copied());
    let result = log.append(&Topic::Inbound, records).instrument(publish).await;
    if result.is_ok() {
        seqline_core::failpoint::hit(seqline_core::failpoint::names::GATEWAY_AFTER_APPEND).await;
    }
    metrics.publish_batches.inc();
    match &result {
        Ok(()) => {
            metrics.commands_published.add(n);
            seqline_telemetry::emit(seqline_telemetry::events::CommandsAccepted { count: n });
        }
        Err(e) => {
            metrics.publish_failures.add(n);
            warn!(error = %e, "appending commands to the inbound topic failed");
        }
    }
    for requester in requesters {
        match (requester, &result) {
            (Requester::Request(tx), r) => {
                let _ = tx.send(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
            (Requester::Connection { .. }, Ok(())) => {}
            (Requester::Connection { tx, id, conv }, Err(_)) => {
                metrics.error(ErrorCode::Unavailable);
                let frame = ServerFrame::send_error(
                    &id.to_string(),
                    Some(conv),
                    ErrorCode::Unavailable,
                    "not accepted: the log is unavailable; resend it",
                );
                // A full queue means the connection is being kicked anyway;
                // the client resends whatever was not acknowledged.
                let _ = tx.try_send(Outbound::Frame(frame));
            }
        }
    }
}
