//! The Kafka adapter of seqline: the [`Log`](seqline_core::ports::Log) port
//! on a Kafka cluster through rdkafka (bundled librdkafka), for cluster mode.
//!
//! - Appends go through one idempotent producer (`acks=all`) with the
//!   partition set explicitly by [`seqline_core::ids::partition_for`], so a
//!   key lands on the same partition as on the embedded log; an append
//!   returns only when every delivery report succeeded.
//! - Consumers commit manually and synchronously; rebalances surface as
//!   `Polled::Assigned`/`Polled::Revoked`, and a commit of a partition that
//!   moved on fails with `Error::Fenced`.
//! - Records are Avro, single-object encoded (schemas in `schemas/*.avsc`);
//!   a reader accepts the current and the previous writer schemas.
//!
//! ```no_run
//! # async fn demo() -> seqline_core::Result<()> {
//! use seqline_kafka::{KafkaLog, KafkaOptions};
//! let log = KafkaLog::connect(KafkaOptions {
//!     bootstrap: "127.0.0.1:9092".into(),
//!     ..KafkaOptions::default()
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`KafkaOptions`], topic names and sizes, librdkafka settings.
//! - [`log`]: [`KafkaLog`], the port implementation, takeovers within a process.
//! - `producer`: the idempotent producer, delivery reports, rebuild after a fatal error.
//! - `consumer`: a group member on its own thread, rebalance events, commits.
//! - `admin`: topic creation and partition-count checks.
//! - [`avro`]: single-object encoding, schema versions, core ↔ Avro conversions.
//! - [`trace`]: the `traceparent` header, written from and read into the
//!   records' trace context.
//! - `context`: librdkafka logs and errors into `tracing`.
//! - `error`: librdkafka errors → `seqline_core::Error`.

mod admin;
pub mod avro;
pub mod config;
mod consumer;
mod context;
mod error;
pub mod log;
mod producer;
pub mod trace;

pub use config::{KafkaOptions, Sasl, SaslMechanism, Security};
pub use log::KafkaLog;
