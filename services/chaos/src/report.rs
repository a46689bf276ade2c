//! What a chaos run did and found: faults per id, failure points reached,
//! the two workloads' reports, and the checker's counts summed over both.

use crate::proxy::ProxyStats;
use crate::schedule::Fault;
use seqline_checker::CheckId;
use seqline_loadgen::RunReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Faults as they were injected.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Injections per fault label (`F1 kill a gateway`, …).
    pub by_label: BTreeMap<String, u64>,
    /// Injections per fault id (`F1` … `F13`, `F14` for mixed steps).
    pub by_id: BTreeMap<String, u64>,
    /// Every injection (a mixed step counts each of its faults).
    pub total: u64,
    /// Steps that mixed two faults (F14).
    pub mixed_steps: u64,
    /// A process died at its armed failure point, per point.
    pub points_reached: BTreeMap<String, u64>,
    /// An armed point was not reached in time (the process was killed).
    pub points_missed: BTreeMap<String, u64>,
    /// Processes that died when no fault asked them to.
    pub unexpected_exits: Vec<String>,
    /// Cluster mode: roles that ended on their own and were restarted.
    pub role_failures: Vec<String>,
    /// Broker outages during which an ack was still sent (must stay 0).
    pub acks_during_outage: u64,
    /// Failure point hits, summed over every process lifetime.
    pub failpoint_hits: BTreeMap<String, u64>,
    /// Cluster mode: writes of stale owners the store refused (the fence of
    /// F9: a stalled sequencer writing after the other took over).
    pub fence_refusals: Option<u64>,
}

impl Tally {
    /// Counts one injection of `fault`.
    pub fn injected(&mut self, fault: Fault) {
        *self.by_label.entry(fault.label()).or_default() += 1;
        *self.by_id.entry(fault.id().to_string()).or_default() += 1;
        self.total += 1;
    }

    /// Counts a step that mixed faults.
    pub fn mixed(&mut self) {
        self.mixed_steps += 1;
        *self.by_id.entry("F14".into()).or_default() += 1;
    }

    /// A process or role died at the failure point `name` as armed.
    pub fn point_reached(&mut self, name: &str) {
        *self.points_reached.entry(name.into()).or_default() += 1;
    }

    /// An armed point was not reached in time.
    pub fn point_missed(&mut self, name: &str) {
        *self.points_missed.entry(name.into()).or_default() += 1;
    }

    /// A role ended on its own and was restarted (Cluster mode: roles fail
    /// fast, e.g. while the broker is away, and an orchestrator restarts them).
    pub fn role_failure(&mut self, what: String) {
        tracing::warn!(%what, "role ended on its own; restarted");
        self.role_failures.push(what);
    }

    /// Something died on its own.
    pub fn unexpected_exit(&mut self, what: String) {
        tracing::error!(%what, "unexpected exit");
        self.unexpected_exits.push(what);
    }

    /// Adds the hits a process lifetime reported.
    pub fn add_hits(&mut self, hits: &[(String, u64)]) {
        for (p, n) in hits {
            *self.failpoint_hits.entry(p.clone()).or_default() += n;
        }
    }
}

/// A whole chaos run.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    /// `embedded` or `kafka`.
    pub mode: String,
    /// Seed of the schedule and the workloads.
    pub seed: u64,
    /// How the system was laid out.
    pub topology: String,
    /// Length of the fault phase, seconds.
    pub fault_secs: f64,
    /// Faults.
    pub tally: Tally,
    /// What the proxy did (F10).
    pub proxy: ProxyStats,
    /// W1 and W2.
    pub runs: Vec<RunReport>,
}

impl ChaosReport {
    /// Acknowledged messages over both workloads.
    pub fn acked(&self) -> u64 {
        self.runs.iter().map(|r| r.acked).sum()
    }

    /// The checker's count of `id`, summed over both workloads.
    pub fn count(&self, id: CheckId) -> u64 {
        self.runs.iter().map(|r| r.check.count(id)).sum()
    }

    /// Whether the run is clean: every check 0, every device converged and
    /// read back, nothing died on its own, no ack during an outage.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(RunReport::passed)
            && self.tally.unexpected_exits.is_empty()
            && self.tally.acks_during_outage == 0
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seqline-chaos {} mode, seed {}", self.mode, self.seed)?;
        writeln!(f, "  topology: {}", self.topology)?;
        let sent: u64 = self.runs.iter().map(|r| r.invoked).sum();
        let unknown: u64 = self.runs.iter().map(|r| r.unknown).sum();
        let reconnects: u64 = self.runs.iter().map(|r| r.reconnects).sum();
        let member_changes: u64 = self.runs.iter().map(|r| r.member_changes).sum();
        writeln!(
            f,
            "  fault phase {:.0}s: {} faults injected ({} mixed steps); messages sent {}, acked {}, unknown outcome {}",
            self.fault_secs,
            self.tally.total,
            self.tally.mixed_steps,
            sent,
            self.acked(),
            unknown
        )?;
        writeln!(
            f,
            "  reconnects {reconnects}, membership changes while sending (F12) {member_changes}"
        )?;
        writeln!(f, "  faults per id:")?;
        for (id, n) in &self.tally.by_id {
            writeln!(f, "    {id:<6} {n:>6}")?;
        }
        writeln!(f, "  faults:")?;
        for (label, n) in &self.tally.by_label {
            writeln!(f, "    {n:>6}  {label}")?;
        }
        writeln!(
            f,
            "  failure points (hits over all process lifetimes; died there; missed):"
        )?;
        for p in seqline_core::failpoint::ALL {
            let get = |m: &BTreeMap<String, u64>| m.get(p).copied().unwrap_or(0);
            writeln!(
                f,
                "    {:<28} {:>10} {:>6} {:>6}",
                p,
                get(&self.tally.failpoint_hits),
                get(&self.tally.points_reached),
                get(&self.tally.points_missed)
            )?;
        }
        let p = &self.proxy;
        writeln!(
            f,
            "  proxy: {} connections, {} cut, {} frozen, {} acks dropped",
            p.accepted, p.cut, p.frozen, p.acks_dropped
        )?;
        writeln!(
            f,
            "  acks sent while the broker was out (F8): {}",
            self.tally.acks_during_outage
        )?;
        if let Some(n) = self.tally.fence_refusals {
            writeln!(f, "  stale writes the store refused (F9 fencing): {n}")?;
        }
        for e in &self.tally.role_failures {
            writeln!(f, "  role ended on its own, restarted: {e}")?;
        }
        for e in &self.tally.unexpected_exits {
            writeln!(f, "  UNEXPECTED EXIT: {e}")?;
        }
        writeln!(f, "  checker, summed over the workloads:")?;
        for id in CheckId::ALL {
            writeln!(
                f,
                "    {:<4} {:>6}  {}",
                id.to_string(),
                self.count(id),
                id.description()
            )?;
        }
        for r in &self.runs {
            writeln!(f)?;
            write!(f, "{r}")?;
        }
        writeln!(f)?;
        writeln!(f, "{}", if self.passed() { "PASSED" } else { "FAILED" })
    }
}
