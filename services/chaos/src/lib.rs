//! The chaos runner of seqline (workload W7): W1 and W2 traffic over
//! real WebSocket connections while a seeded schedule injects the faults of
//! docs/chaos.md (F1-F14), then heal, let every device converge and re-read, and
//! run the checker (C1-C14, L1) over both histories.
//!
//! Two topologies: **embedded** (one `seqline dev` process, killed, aborted
//! at failure points, stopped and restarted) and **cluster** (Apache Kafka,
//! Apache Cassandra, `redis-server` and two processes of each role, all
//! separate OS processes that the faults signal). A fault proxy in front of
//! the gateways cuts, freezes and drops acks (F10).
//!
//! # Layout
//! - [`schedule`]: the faults by fault id and the seeded schedule.
//! - [`embedded`]: the `seqline dev` process and its faults.
//! - [`cluster`]: cluster mode (every part a process) and its faults.
//! - [`proxy`]: the fault-injecting TCP/WebSocket proxy.
//! - [`metrics`]: reading the gateways' `/metrics`.
//! - [`report`]: faults tallied, the checker's counts, the printed table.
//! - [`run`]: [`run()`], the whole sequence.

pub mod cluster;
pub mod embedded;
pub mod metrics;
pub mod proxy;
pub mod report;
pub mod run;
pub mod schedule;

pub use report::ChaosReport;
pub use run::{run, ChaosOptions, Topology};
