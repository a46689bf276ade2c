//! The load generator of seqline: drives the benchmark workloads (W1
//! direct chats, W2 groups, W3 catch-up) against a running server over real
//! WebSocket connections through the client SDK, records every device's
//! history for the checker (the format in tests/README.md), waits for every device to converge,
//! reads every timeline back, runs the checker, and reports throughput,
//! latency (HDR histograms; open loop measures from the intended send time),
//! server RSS/CPU and the checker's counts.
//!
//! A run survives the server being killed and restarted under it: clients
//! reconnect and resend, so in-flight sends end acked or with an unknown
//! outcome (`send_info`), never as a failed run.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use seqline_loadgen::{run, RunOptions, Workload};
//! let opts = RunOptions::new(Workload::W1 { users: 20, messages: 2_000, two_device_fraction: 0.1 }, "dev-secret");
//! let report = run(opts).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`options`]: [`RunOptions`], [`Workload`], [`Mode`].
//! - `plan`: users, devices, conversations and quotas from the seed.
//! - `setup`: tokens, conversations over HTTP, connections (with retries).
//! - `device`: per device, the event recorder and the sender (closed/open loop).
//! - `stats`: the shared history writer, counters and latency histograms.
//! - `churn`: membership changes while messages flow (F12).
//! - `w4`: the huge-group workload (read diffusion, priority lane).
//! - `finale`: heal, convergence, final timeline reads.
//! - [`idle`]: W5, idle connections (server RSS per connection, idle CPU).
//! - [`slow`]: clients that stop reading (what each costs, how it is closed).
//! - [`procstat`]: server RSS and CPU from /proc, progress line.
//! - [`report`]: [`RunReport`] (table and JSON).
//! - `run`: [`run`], the whole sequence.

mod churn;
mod device;
mod finale;
pub mod idle;
pub mod options;
mod plan;
pub mod procstat;
pub mod report;
mod run;
mod setup;
pub mod slow;
mod stats;
mod w4;

pub use options::{DrainCheck, DrainFuture, Mode, RunOptions, Workload};
pub use procstat::ServerStats;
pub use report::{CatchUp, HugeGroup, LatencySummary, RunReport};
pub use run::run;
