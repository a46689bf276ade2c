//! The idempotent producer. An append enqueues every record with an explicit
//! partition (and, in a traced span, a `traceparent` header), then waits for every delivery
//! report: the append is acknowledged only if all of them succeeded. After a
//! fatal error (the idempotence guarantees of this producer instance are
//! gone) the producer is rebuilt for the next append.

use crate::config::KafkaOptions;
use crate::context;
use crate::error::client_error;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message as _};
use seqline_core::trace::TraceParent;
use seqline_core::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// One record to produce.
pub(crate) struct Outgoing {
    pub partition: u32,
    pub key: String,
    pub payload: Vec<u8>,
}

/// What the delivery reports of one append said.
#[derive(Default)]
struct Reports {
    offsets: Vec<i64>,
    failure: Option<KafkaError>,
}

/// The delivery state of one append, shared by its records' opaques.
struct Batch {
    remaining: AtomicUsize,
    reports: Mutex<Reports>,
    done: Mutex<Option<oneshot::Sender<Reports>>>,
}

/// Delivery opaque: which record of which batch.
struct Slot {
    index: usize,
    batch: Arc<Batch>,
}

#[derive(Default)]
struct DeliveryContext {
    refusal: context::Refusal,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        context::log("producer", level, fac, log_message);
    }

    fn error(&self, e: KafkaError, reason: &str) {
        context::error("producer", &e, reason);
        self.refusal.note(&e, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Slot>;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: Box<Slot>) {
        let batch = &slot.batch;
        {
            let mut reports = batch.reports.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(message) => {
                    if let Some(o) = reports.offsets.get_mut(slot.index) {
                        *o = message.offset();
                    }
                }
                Err((e, _)) => {
                    reports.failure.get_or_insert_with(|| e.clone());
                }
            }
        }
        if batch.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let reports = std::mem::take(&mut *batch.reports.lock().unwrap_or_else(PoisonError::into_inner));
            if let Some(done) = batch.done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = done.send(reports);
            }
        }
    }
}

type Inner = ThreadedProducer<DeliveryContext>;

/// The producer of a [`crate::KafkaLog`], rebuilt after a fatal error.
pub(crate) struct Producer {
    options: KafkaOptions,
    /// `None` only while dropping.
    current: Mutex<Option<Arc<Inner>>>,
}

fn build(options: &KafkaOptions) -> Result<Inner> {
    Inner::from_config_and_context(&options.producer_config(), DeliveryContext::default())
        .map_err(|e| client_error("creating the kafka producer", &e))
}

impl Producer {
    pub(crate) fn new(options: KafkaOptions) -> Result<Self> {
        let inner = build(&options)?;
        Ok(Self {
            options,
            current: Mutex::new(Some(Arc::new(inner))),
        })
    }

    /// Why the brokers refused this producer's login or TLS handshake, if
    /// they did.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.current().ok()?.context().refusal.reason()
    }

    fn current(&self) -> Result<Arc<Inner>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().map(Arc::clone).ok_or(Error::ShuttingDown)
    }

    /// Produces `records` to `topic`, each with `trace` as its
    /// `traceparent` header if there is one, and waits for every delivery
    /// report; returns their offsets in order.
    pub(crate) async fn send_all(
        &self,
        topic: &str,
        records: &[Outgoing],
        trace: Option<TraceParent>,
    ) -> Result<Vec<i64>> {
        let producer = self.current()?;
        let (tx, rx) = oneshot::channel();
        let batch = Arc::new(Batch {
            remaining: AtomicUsize::new(records.len()),
            reports: Mutex::new(Reports {
                offsets: vec![-1; records.len()],
                failure: None,
            }),
            done: Mutex::new(Some(tx)),
        });
        let deadline = tokio::time::Instant::now() + self.options.message_timeout;
        for (index, r) in records.iter().enumerate() {
            let partition = i32::try_from(r.partition)
                .map_err(|_| Error::Invalid(format!("partition {} is out of range", r.partition)))?;
            let slot = Box::new(Slot {
                index,
                batch: Arc::clone(&batch),
            });
            let mut record = BaseRecord::with_opaque_to(topic, slot)
                .partition(partition)
                .key(r.key.as_str())
                .payload(r.payload.as_slice());
            if let Some(trace) = trace {
                record = record.headers(crate::trace::headers(trace));
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if tokio::time::Instant::now() < deadline =>
                    {
                        // The local queue is full: let deliveries drain it.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(self.failed(&producer, topic, &e)),
                }
            }
        }
        tracing::debug!(topic, records = records.len(), "append enqueued");
        // Delivery reports always come within the message timeout; the margin
        // only guards against a lost report.
        let margin = self.options.message_timeout + Duration::from_secs(10);
        let reports = match tokio::time::timeout(margin, rx).await {
            Ok(Ok(reports)) => reports,
            Ok(Err(_)) => return Err(Error::Unavailable(format!("append to {topic}: delivery reports lost"))),
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "append to {topic}: no delivery report within {margin:?}"
                )))
            }
        };
        match reports.failure {
            Some(e) => Err(self.failed(&producer, topic, &e)),
            None => Ok(reports.offsets),
        }
    }

    /// Maps a failure, rebuilding the producer if this instance is done for.
    fn failed(&self, producer: &Arc<Inner>, topic: &str, e: &KafkaError) -> Error {
        let fatal = producer.client().fatal_error();
        if fatal.is_some() || e.rdkafka_error_code().is_some_and(ends_producer) {
            let (code, reason) = match fatal {
                Some(fatal) => fatal,
                None => (e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fatal), e.to_string()),
            };
            tracing::error!(%code, reason, "kafka producer can no longer produce; rebuilding it");
            self.rebuild(producer);
            return Error::Unavailable(format!(
                "append to {topic}: producer failed ({code}: {reason}); rebuilt"
            ));
        }
        client_error(&format!("append to {topic}"), e)
    }
}

impl Producer {
    /// Replaces `broken` (if it is still the current producer) by a new one.
    fn rebuild(&self, broken: &Arc<Inner>) {
        let fresh = match build(&self.options) {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "rebuilding the kafka producer failed");
                return;
            }
        };
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            let old = current.replace(Arc::new(fresh));
            // Dropping flushes and joins its thread: not on the runtime.
            std::thread::spawn(move || drop(old));
        }
    }
}

/// Errors after which an idempotent producer instance cannot go on: its
/// producer id or epoch is no longer accepted (librdkafka raises most of
/// them as fatal; some brokers answer a plain `PRODUCER_FENCED`).
fn ends_producer(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::InvalidProducerIdMapping
    )
}

impl Drop for Producer {
    fn drop(&mut self) {
        let inner = self.current.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        // The last handle's drop purges, flushes and joins the polling
        // thread: keep that off the async runtime.
        std::thread::spawn(move || drop(inner));
    }
}
