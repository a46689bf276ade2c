//! One chaos run: start the system, put the fault proxy in front of it, run
//! W1 and W2 through the proxy, inject the seeded schedule while they send,
//! heal, let the workloads settle and re-read, and collect the reports.

use crate::cluster::{Cluster, ClusterOptions};
use crate::embedded::DevProcess;
use crate::proxy::FaultProxy;
use crate::report::{ChaosReport, Tally};
use crate::schedule::{Fault, Schedule, Step};
use anyhow::{bail, Context, Result};
use seqline_loadgen::{DrainCheck, Mode, RunOptions, Workload};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which system is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One `seqline dev` process.
    Embedded,
    /// Apache Kafka, Apache Cassandra, redis-server and two processes of
    /// each role.
    Cluster,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The system under test.
    pub topology: Topology,
    /// Seed of the schedule and of both workloads.
    pub seed: u64,
    /// Length of the fault phase (and of the send phase).
    pub duration: Duration,
    /// Longest quiet time between fault steps.
    pub max_gap: Duration,
    /// Only these faults (default: every fault of the topology).
    pub faults: Option<Vec<Fault>>,
    /// Inject each fault of `faults` once, in order (a test that must see
    /// every one), instead of a seeded random mix.
    pub each_once: bool,
    /// W1 users.
    pub users: usize,
    /// W2 groups (of `members` members, `senders` sending each).
    pub groups: usize,
    /// W2 members per group.
    pub members: usize,
    /// W2 senders per group.
    pub senders: usize,
    /// W2 membership churn period (F12).
    pub churn: Duration,
    /// Unacked sends per device.
    pub window: usize,
    /// Most messages per workload (the duration usually ends it first).
    pub messages: u64,
    /// How long each final step may take.
    pub settle: Duration,
    /// Where the histories, the data and the server log go.
    pub dir: PathBuf,
    /// The `seqline` binary (every process of the system under test).
    pub seqline_bin: PathBuf,
    /// Token secret.
    pub secret: String,
    /// Progress lines on stderr.
    pub progress: bool,
}

enum System {
    Embedded(Box<DevProcess>),
    Cluster(Box<Cluster>),
}

impl System {
    fn backends(&self) -> Vec<String> {
        match self {
            System::Embedded(p) => vec![p.addr.clone()],
            System::Cluster(c) => c.gateways(),
        }
    }

    fn describe(&self) -> String {
        match self {
            System::Embedded(p) => format!("one `seqline dev` process on {} (embedded log and store)", p.addr),
            System::Cluster(c) => c.describe(),
        }
    }

    async fn acks(&self) -> u64 {
        let mut n = 0;
        for a in self.backends() {
            n += crate::metrics::acks(&a).await.unwrap_or(0);
        }
        n
    }

    /// Notices anything that died on its own and starts it again.
    async fn revive(&mut self, tally: &mut Tally) -> Result<()> {
        match self {
            System::Embedded(p) => {
                if let Some(status) = p.exited() {
                    tally.unexpected_exit(format!("seqline dev exited on its own: {status}"));
                    p.restart().await?;
                }
            }
            System::Cluster(c) => {
                for ended in c.restart_failed().await? {
                    tally.role_failure(ended);
                }
            }
        }
        Ok(())
    }

    async fn inject(&mut self, fault: Fault, step: &Step, tally: &mut Tally) -> Result<()> {
        match self {
            System::Embedded(p) => p.inject(fault, step, tally).await,
            System::Cluster(c) => c.inject(fault, step, tally).await,
        }
    }
}

fn workloads(o: &ChaosOptions, url: &str, http: &str, drained: Option<DrainCheck>) -> [RunOptions; 2] {
    let base = |w: Workload, history: &str, seed: u64| {
        let mut r = RunOptions::new(w, o.secret.clone());
        r.url = url.to_string();
        r.http = http.to_string();
        r.mode = Mode::ClosedLoop { window: o.window };
        r.max_duration = o.duration;
        r.settle_timeout = o.settle;
        r.history = Some(o.dir.join(history));
        r.seed = seed;
        r.drained = drained.clone();
        r.set_up = Some(Arc::new(AtomicBool::new(false)));
        r
    };
    let w1 = base(
        Workload::W1 {
            users: o.users,
            messages: o.messages,
            two_device_fraction: 0.2,
        },
        "w1.history.jsonl",
        o.seed,
    );
    let mut w2 = base(
        Workload::W2 {
            groups: o.groups,
            members: o.members,
            senders: o.senders,
            messages: o.messages,
        },
        "w2.history.jsonl",
        o.seed.wrapping_add(1),
    );
    w2.churn = Some(o.churn);
    [w1, w2]
}

/// Waits for traffic, runs the schedule for the duration, heals. Returns the
/// tally and the length of the fault phase.
async fn inject_faults(
    o: &ChaosOptions,
    system: &mut System,
    proxy: &FaultProxy,
    loads_done: &AtomicBool,
    set_up: &[Arc<AtomicBool>],
    until: Instant,
) -> Result<(Tally, f64)> {
    // Faults start once both workloads are set up and traffic flows (the
    // setup is not the test: a fault then fails it before any guarantee
    // is at stake).
    let warm = Instant::now() + Duration::from_secs(120);
    while system.acks().await < 200 || !set_up.iter().all(|f| f.load(Ordering::Acquire)) {
        if loads_done.load(Ordering::Acquire) {
            bail!("the workloads ended before they were set up and 200 messages were acknowledged");
        }
        if Instant::now() > warm {
            bail!("the workloads were not set up with 200 messages acknowledged after 120 s: they could not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let faults = o.faults.clone().unwrap_or_else(|| match o.topology {
        Topology::Embedded => Fault::embedded(),
        Topology::Cluster => Fault::cluster(),
    });
    let mut schedule = match o.each_once {
        true => Schedule::each_once(o.seed, faults, o.max_gap),
        false => Schedule::new(o.seed, faults, o.max_gap),
    };
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut last_print = Instant::now();
    while Instant::now() < until {
        let Some(step) = schedule.next_step() else { break };
        tokio::time::sleep(step.gap).await;
        if Instant::now() >= until {
            break;
        }
        system.revive(&mut tally).await?;
        if step.faults.len() > 1 {
            tally.mixed();
        }
        // One line per step, so a run that goes wrong shows what hit it last.
        let labels: Vec<String> = step.faults.iter().map(|f| f.label()).collect();
        tracing::info!(at_secs = started.elapsed().as_secs(), faults = %labels.join(" + "), "fault step");
        for fault in &step.faults {
            tally.injected(*fault);
            match fault {
                Fault::CutConnections => {
                    proxy.cut_all();
                }
                Fault::HalfOpen => proxy.freeze_for(step.hold * 2),
                Fault::DropAcks => proxy.drop_acks_for(step.hold),
                f => {
                    system.inject(*f, &step, &mut tally).await?;
                    proxy.set_backends(system.backends());
                }
            }
        }
        if o.progress && last_print.elapsed() > Duration::from_secs(10) {
            last_print = Instant::now();
            let p = proxy.stats();
            eprintln!(
                "chaos: {:.0}s, {} faults, {} connections through the proxy ({} cut)",
                started.elapsed().as_secs_f64(),
                tally.total,
                p.accepted,
                p.cut
            );
        }
    }
    let fault_secs = started.elapsed().as_secs_f64();
    if o.progress {
        eprintln!(
            "chaos: fault phase over after {fault_secs:.0}s ({} faults); healing",
            tally.total
        );
    }
    // Heal: everything up; the proxy's timed faults end on their own.
    system.revive(&mut tally).await?;
    if let System::Cluster(c) = system {
        c.heal(&mut tally).await?;
    }
    proxy.set_backends(system.backends());
    // Then keep watching until the workloads are done, as an orchestrator
    // does: a role that was still failing over the last fault's aftermath
    // (e.g. a persister giving up on a store that had just come back) ends
    // after the heal, and must be started again for the final reads.
    while !loads_done.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        system.revive(&mut tally).await?;
    }
    Ok((tally, fault_secs))
}

/// Runs the whole thing; the report says whether every guarantee held.
pub async fn run(o: ChaosOptions) -> Result<ChaosReport> {
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    let mut system = match o.topology {
        Topology::Embedded => System::Embedded(Box::new(
            DevProcess::start(&o.seqline_bin, &o.dir.join("data"), &o.secret).await?,
        )),
        Topology::Cluster => System::Cluster(Box::new(
            Cluster::start(ClusterOptions::new(
                o.seqline_bin.clone(),
                o.dir.join("cluster"),
                &o.secret,
            ))
            .await?,
        )),
    };
    let proxy = FaultProxy::start(system.backends())
        .await
        .context("starting the proxy")?;
    let (url, http) = (
        format!("ws://{}/v1/ws", proxy.addr()),
        format!("http://{}", proxy.addr()),
    );
    let drained = match &system {
        System::Embedded(_) => None,
        System::Cluster(c) => Some(c.drain_check()),
    };
    let [w1, w2] = workloads(&o, &url, &http, drained);
    let set_up: Vec<Arc<AtomicBool>> = [&w1, &w2].iter().filter_map(|w| w.set_up.clone()).collect();
    let loads_done = AtomicBool::new(false);
    // The workloads and the faults run side by side on this task (the
    // workloads spawn a task per device of their own).
    let loads = async {
        let out = tokio::join!(seqline_loadgen::run(w1), seqline_loadgen::run(w2));
        loads_done.store(true, Ordering::Release);
        out
    };
    // The send phase ends `duration` after the workloads start; the faults
    // end with it, so the heal comes before the final reads.
    let until = Instant::now() + o.duration;
    let chaos = inject_faults(&o, &mut system, &proxy, &loads_done, &set_up, until);
    let ((w1, w2), chaos) = tokio::join!(loads, chaos);
    let w1 = w1.context("W1 run")?;
    let w2 = w2.context("W2 run")?;
    let (mut tally, fault_secs) = chaos?;
    match &mut system {
        System::Embedded(p) => {
            if let Some(status) = p.exited() {
                tally.unexpected_exit(format!("seqline dev exited on its own: {status}"));
            }
            let hits = p.failpoint_hits().await;
            p.bank(&hits);
            tally.add_hits(&p.banked());
        }
        System::Cluster(c) => {
            tally.add_hits(&c.failpoint_hits().await);
            tally.fence_refusals = Some(c.fence_refusals().await);
        }
    }
    let topology = system.describe();
    let proxy_stats = proxy.stats();
    proxy.shutdown();
    match system {
        System::Embedded(mut p) => p.kill().await,
        System::Cluster(c) => c.stop().await,
    }
    Ok(ChaosReport {
        mode: match o.topology {
            Topology::Embedded => "embedded".into(),
            Topology::Cluster => "cluster".into(),
        },
        seed: o.seed,
        topology,
        fault_secs,
        tally,
        proxy: proxy_stats,
        runs: vec![w1, w2],
    })
}
