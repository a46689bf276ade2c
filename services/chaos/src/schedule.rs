//! The faults (named by their ids in docs/chaos.md) and the seeded schedule that
//! picks them: the same seed gives the same sequence of faults, gaps and
//! fault lengths (what the system is doing when each lands still depends on
//! timing).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use seqline_core::failpoint::names;
use std::time::Duration;

/// A named failure point a process can be made to die at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// Gateway: command appended to the log, ack not sent.
    AfterAppend,
    /// Sequencer: stored, receipts and deliveries not published.
    SequencerAfterStore,
    /// Any persister worker: outputs durable, input offset not committed.
    BeforeOffsetCommit,
    /// Timeline writer: timeline stored (head moved), user events not sent.
    TimelineAfterStore,
}

impl Point {
    /// The failpoint's name in the code.
    pub fn name(self) -> &'static str {
        match self {
            Point::AfterAppend => names::GATEWAY_AFTER_APPEND,
            Point::SequencerAfterStore => names::SEQUENCER_AFTER_STORE,
            Point::BeforeOffsetCommit => names::WORKER_BEFORE_OFFSET_COMMIT,
            Point::TimelineAfterStore => names::TIMELINE_AFTER_STORE,
        }
    }

    /// The fault this point belongs to.
    fn id(self) -> &'static str {
        match self {
            Point::AfterAppend => "F1",
            Point::SequencerAfterStore | Point::BeforeOffsetCommit => "F2",
            Point::TimelineAfterStore => "F3",
        }
    }

    /// Every point.
    pub const ALL: [Point; 4] = [
        Point::AfterAppend,
        Point::SequencerAfterStore,
        Point::BeforeOffsetCommit,
        Point::TimelineAfterStore,
    ];
}

/// One fault the runner can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Embedded: SIGKILL the whole `seqline dev` process, restart it.
    KillProcess,
    /// Embedded: restart the process with `point` armed; it aborts there.
    KillProcessAt(Point),
    /// Embedded: SIGTERM (drain) and restart.
    TerminateProcess,
    /// Embedded: SIGSTOP the process past the clients' ping timeout, SIGCONT.
    StallProcess,
    /// Cluster: SIGKILL one gateway process, start a new one.
    KillGateway,
    /// Cluster: kill one persister (sequencer + timeline writer).
    KillPersister,
    /// Cluster: restart a role process armed to abort at `point`.
    KillRoleAt(Point),
    /// Cluster: kill one fanout, losing its queued pushes.
    KillFanout,
    /// Cluster: stop every role instance gracefully, one after the other, and
    /// start each again.
    RollingRestart,
    /// Cluster: SIGSTOP the broker for a while, then SIGCONT.
    BrokerPause,
    /// Cluster: SIGSTOP the broker past the producer timeout: no ack may be
    /// sent meanwhile.
    BrokerOutage,
    /// Cluster: SIGKILL the broker and start it again on the same data.
    BrokerKill,
    /// Cluster: SIGKILL the store (Cassandra) and start it again on the
    /// same data.
    StoreRestart,
    /// Cluster: a persister process stops itself (SIGSTOP) mid-batch before
    /// its store write, stays stopped past the consumer session timeout so
    /// the other takes over, then SIGCONT: its write must be fenced off.
    SequencerStall,
    /// Cluster: SIGKILL `redis-server` and start it again on the same port.
    RedisRestart,
    /// Cluster: undecodable and oversized records injected into the topics.
    PoisonRecords,
    /// Both: close every client connection at once.
    CutConnections,
    /// Both: connections go silent (half-open), then are reset.
    HalfOpen,
    /// Both: ack frames are dropped on the way to the clients, which resend.
    DropAcks,
}

impl Fault {
    /// The fault id (docs/chaos.md).
    pub fn id(self) -> &'static str {
        match self {
            Fault::KillProcess | Fault::KillGateway => "F1",
            Fault::KillProcessAt(p) | Fault::KillRoleAt(p) => p.id(),
            Fault::KillPersister => "F2",
            Fault::KillFanout => "F4",
            Fault::TerminateProcess | Fault::RollingRestart => "F5",
            Fault::StallProcess | Fault::BrokerPause => "F7",
            Fault::BrokerOutage => "F8",
            Fault::BrokerKill => "F6",
            Fault::StoreRestart => "store",
            Fault::SequencerStall => "F9",
            Fault::CutConnections | Fault::HalfOpen | Fault::DropAcks => "F10",
            Fault::PoisonRecords => "F13",
            Fault::RedisRestart => "redis",
        }
    }

    /// A short label for reports: id and what was done.
    pub fn label(self) -> String {
        let what = match self {
            Fault::KillProcess => "SIGKILL seqline dev".to_string(),
            Fault::KillProcessAt(p) => format!("abort seqline dev at {}", p.name()),
            Fault::TerminateProcess => "SIGTERM + restart seqline dev".to_string(),
            Fault::StallProcess => "SIGSTOP/SIGCONT seqline dev".to_string(),
            Fault::KillGateway => "kill a gateway".to_string(),
            Fault::KillPersister => "kill a persister".to_string(),
            Fault::KillRoleAt(p) => format!("kill the role at {}", p.name()),
            Fault::KillFanout => "kill a fanout".to_string(),
            Fault::RollingRestart => "rolling restart of every role".to_string(),
            Fault::BrokerPause => "SIGSTOP/SIGCONT the broker".to_string(),
            Fault::BrokerOutage => "broker stopped past the producer timeout".to_string(),
            Fault::BrokerKill => "SIGKILL + restart Kafka on its data".to_string(),
            Fault::StoreRestart => "SIGKILL + restart Cassandra on its data".to_string(),
            Fault::SequencerStall => "persister SIGSTOPped mid-batch past the session timeout".to_string(),
            Fault::RedisRestart => "SIGKILL + restart redis-server".to_string(),
            Fault::PoisonRecords => "malformed records into the topics".to_string(),
            Fault::CutConnections => "cut every connection".to_string(),
            Fault::HalfOpen => "half-open connections".to_string(),
            Fault::DropAcks => "drop ack frames".to_string(),
        };
        format!("{} {what}", self.id())
    }

    /// Whether the fault takes the servers down or away (two of these are
    /// never mixed in one step: one restart at a time).
    pub fn is_disruptive(self) -> bool {
        !matches!(
            self,
            Fault::CutConnections | Fault::HalfOpen | Fault::DropAcks | Fault::PoisonRecords
        )
    }

    /// The faults of embedded mode.
    pub fn embedded() -> Vec<Fault> {
        let mut all = vec![Fault::KillProcess, Fault::TerminateProcess, Fault::StallProcess];
        all.extend(Point::ALL.map(Fault::KillProcessAt));
        all.extend([Fault::CutConnections, Fault::HalfOpen, Fault::DropAcks]);
        all
    }

    /// The faults of cluster mode.
    pub fn cluster() -> Vec<Fault> {
        let mut all = vec![
            Fault::KillGateway,
            Fault::KillPersister,
            Fault::KillFanout,
            Fault::RollingRestart,
            Fault::BrokerPause,
            Fault::BrokerOutage,
            Fault::BrokerKill,
            Fault::StoreRestart,
            Fault::SequencerStall,
            Fault::RedisRestart,
            Fault::PoisonRecords,
        ];
        all.extend(Point::ALL.map(Fault::KillRoleAt));
        all.extend([Fault::CutConnections, Fault::HalfOpen, Fault::DropAcks]);
        all
    }
}

/// One step of the schedule: wait `gap`, then inject `faults` together (two
/// faults make it an F14 mix), each lasting about `hold`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Quiet time before the step.
    pub gap: Duration,
    /// The faults, injected together.
    pub faults: Vec<Fault>,
    /// How long a fault with a length (stall, half-open, dropped acks) lasts.
    pub hold: Duration,
    /// A number for choices inside the fault (which instance, which hit).
    pub pick: u64,
}

/// The seeded sequence of steps.
pub struct Schedule {
    rng: StdRng,
    faults: Vec<Fault>,
    /// Longest quiet time between steps.
    max_gap: Duration,
    /// Each fault once, in order, one per step (then none).
    in_order: bool,
}

impl Schedule {
    /// A schedule over `faults` (in this order of preference for a seed) with
    /// gaps of up to `max_gap`.
    pub fn new(seed: u64, faults: Vec<Fault>, max_gap: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_c4a0_5f00_0001),
            faults,
            max_gap,
            in_order: false,
        }
    }

    /// Every fault of `faults` exactly once, in that order, one per step,
    /// then the schedule ends (a test that must see each fault).
    pub fn each_once(seed: u64, faults: Vec<Fault>, max_gap: Duration) -> Self {
        Self {
            in_order: true,
            ..Self::new(seed, faults, max_gap)
        }
    }

    /// The next step. Every fourth step or so mixes two faults (F14), never
    /// two disruptive ones.
    pub fn next_step(&mut self) -> Option<Step> {
        if self.in_order {
            if self.faults.is_empty() {
                return None;
            }
            let fault = self.faults.remove(0);
            let gap_ms = self.rng.gen_range(0..=self.max_gap.as_millis().max(1) as u64);
            return Some(Step {
                gap: Duration::from_millis(gap_ms),
                faults: vec![fault],
                hold: Duration::from_millis(self.rng.gen_range(1_000..=6_000)),
                pick: self.rng.gen(),
            });
        }
        let first = *self.faults.choose(&mut self.rng)?;
        let mut faults = vec![first];
        if self.rng.gen_bool(0.25) {
            let others: Vec<Fault> = self
                .faults
                .iter()
                .copied()
                .filter(|f| *f != first && !(f.is_disruptive() && first.is_disruptive()))
                .collect();
            if let Some(second) = others.choose(&mut self.rng) {
                faults.push(*second);
            }
        }
        let gap_ms = self.rng.gen_range(0..=self.max_gap.as_millis().max(1) as u64);
        Some(Step {
            gap: Duration::from_millis(gap_ms),
            faults,
            hold: Duration::from_millis(self.rng.gen_range(1_000..=6_000)),
            pick: self.rng.gen(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(seed: u64, faults: Vec<Fault>, n: usize) -> Vec<Step> {
        let mut s = Schedule::new(seed, faults, Duration::from_secs(2));
        (0..n).map_while(|_| s.next_step()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(steps(7, Fault::cluster(), 50), steps(7, Fault::cluster(), 50));
        assert_ne!(steps(7, Fault::cluster(), 50), steps(8, Fault::cluster(), 50));
    }

    #[test]
    fn every_fault_comes_up_and_mixes_never_pair_two_restarts() {
        for faults in [Fault::embedded(), Fault::cluster()] {
            let all = steps(1, faults.clone(), 2_000);
            for f in &faults {
                assert!(all.iter().any(|s| s.faults.contains(f)), "{f:?} never scheduled");
            }
            assert!(all.iter().any(|s| s.faults.len() == 2), "no F14 mix");
            for s in &all {
                assert!(s.faults.iter().filter(|f| f.is_disruptive()).count() <= 1, "{s:?}");
                assert!(s.gap <= Duration::from_secs(2));
            }
        }
        assert!(steps(1, vec![], 3).is_empty());
    }

    #[test]
    fn each_once_gives_every_fault_once_in_order_then_ends() {
        let faults = vec![Fault::KillPersister, Fault::BrokerKill, Fault::StoreRestart];
        let mut s = Schedule::each_once(3, faults.clone(), Duration::from_secs(1));
        let got: Vec<Fault> = std::iter::from_fn(|| s.next_step()).flat_map(|s| s.faults).collect();
        assert_eq!(got, faults);
        assert_eq!(Fault::BrokerKill.id(), "F6");
    }

    #[test]
    fn ids_follow_the_proof_page() {
        assert_eq!(Fault::KillProcessAt(Point::AfterAppend).id(), "F1");
        assert_eq!(Fault::KillRoleAt(Point::BeforeOffsetCommit).id(), "F2");
        assert_eq!(Fault::KillRoleAt(Point::TimelineAfterStore).id(), "F3");
        assert_eq!(Fault::SequencerStall.id(), "F9");
        assert!(Fault::DropAcks.label().starts_with("F10 "));
    }
}
