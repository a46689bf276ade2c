//! One run, start to end: plan, setup, send phase, (W3) catch-up, final
//! phase, checker, report.

use crate::device::{Pace, Sender};
use crate::options::{Mode, RunOptions, Workload};
use crate::plan::{self, Plan};
use crate::procstat::Sampler;
use crate::report::{CatchUp, LatencySummary, RunReport, SendCpu};
use crate::setup::{self, LiveDevice, Tokens};
use crate::stats::{Counters, Stats};
use crate::{churn, finale};
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqline_checker::{check, read_history, CheckOptions, HistoryWriter};
use seqline_core::token::TokenKey;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Runs `opts` against a server and checks what happened.
///
/// Connection errors during the run are expected (the server may be killed
/// and restarted): clients reconnect and resend; only a setup that cannot
/// finish before its deadline, or an unreadable history, is an error.
pub async fn run(opts: RunOptions) -> Result<RunReport> {
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    if matches!(opts.workload, Workload::W4 { .. }) {
        return crate::w4::run(opts, run_id).await;
    }
    let plan = plan::build(&opts.workload, &run_id, opts.seed)?;
    let writer = match &opts.history {
        Some(p) => HistoryWriter::to_file(p).with_context(|| format!("creating {}", p.display()))?,
        None => HistoryWriter::in_memory(),
    };
    let stats = Arc::new(Stats::new(writer)?);
    let ttl = opts.max_duration + opts.settle_timeout * 4 + Duration::from_secs(3600);
    let tokens = Tokens {
        key: TokenKey::new(opts.secret.clone()),
        ttl_secs: ttl.as_secs(),
    };
    let sampler = Sampler::start(stats.clone(), opts.server_pid, opts.progress);

    let setup_deadline = Instant::now() + opts.settle_timeout.max(Duration::from_secs(30));
    setup::create_conversations(&opts.http, &tokens, &plan, setup_deadline).await?;
    let mut live = setup::connect_all(&opts.url, &tokens, &stats, &plan, setup_deadline).await?;
    if let Some(flag) = &opts.set_up {
        flag.store(true, std::sync::atomic::Ordering::Release);
    }

    let (stop_churn, churn_stopped) = tokio::sync::watch::channel(false);
    let mut churn = match opts.churn {
        Some(every) => churn::start(
            &opts.http,
            &tokens,
            &plan,
            every,
            opts.seed,
            stats.clone(),
            churn_stopped,
        )?,
        None => JoinSet::new(),
    };
    let cpu_at_start = opts.server_pid.and_then(crate::procstat::cpu_ticks);
    let (send_secs, mut senders) = send_phase(&opts, &plan, &live, &stats, &run_id).await;
    let send_cpu = match (cpu_at_start, opts.server_pid.and_then(crate::procstat::cpu_ticks)) {
        (Some(t0), Some(t1)) => {
            let secs = t1.saturating_sub(t0) as f64 / crate::procstat::TICKS_PER_SEC;
            let acked = Counters::get(&stats.counters.acked);
            Some(SendCpu {
                percent: secs / send_secs.max(1e-9) * 100.0,
                us_per_message: secs * 1e6 / (acked.max(1) as f64),
            })
        }
        _ => None,
    };
    let _ = stop_churn.send(true);
    let mut member_changes = 0;
    while let Some(done) = churn.join_next().await {
        member_changes += done.unwrap_or(0);
    }
    let catch_up = match plan.devices.iter().find(|d| d.late) {
        Some(late) => {
            let deadline = Instant::now() + opts.settle_timeout;
            let started = Instant::now();
            let rec = crate::device::Recording {
                measure_e2e: false,
                own_membership_only: false,
            };
            let dev = setup::connect(&opts.url, &tokens, &stats, late, deadline, rec).await?;
            finale::converge(&stats, &dev, deadline, false).await;
            let secs = started.elapsed().as_secs_f64();
            let entries = dev.client.status().cursor;
            live.push(dev);
            Some(CatchUp {
                entries,
                secs,
                entries_per_sec: entries as f64 / secs.max(1e-9),
            })
        }
        None => None,
    };

    let settled = finale::settle(&stats, &live, opts.settle_timeout, true, opts.drained.as_ref()).await;
    let rate_limited = live.iter().map(|d| d.client.status().refused_for_now).sum();
    close(live, &mut senders).await;
    let server = sampler.finish().await;

    let events = match &opts.history {
        Some(p) => {
            stats.history().finish()?;
            read_history(p)?
        }
        None => stats.history().finish()?,
    };
    let check_opts = CheckOptions {
        initial_members: plan.initial_members(),
        convergence_bound_micros: (opts.settle_timeout * finale::PROGRESS_ROUNDS).as_micros() as u64,
        ..CheckOptions::default()
    };
    let check = check(&events, &check_opts);

    let c = &stats.counters;
    let per_sec = |n: u64| n as f64 / send_secs.max(1e-9);
    let (invoked, acked, pushed) = (
        Counters::get(&c.invoked),
        Counters::get(&c.acked),
        Counters::get(&c.pushed),
    );
    Ok(RunReport {
        workload: opts.workload.name().into(),
        mode: opts.mode.describe(),
        run_id,
        seed: opts.seed,
        users: plan.users,
        devices: plan.devices.len(),
        conversations: plan.convs.len(),
        send_secs,
        invoked,
        acked,
        failed: Counters::get(&c.failed),
        unknown: Counters::get(&c.unknown),
        rate_limited,
        pushed,
        pulled: Counters::get(&c.pulled),
        w4: None,
        reconnects: Counters::get(&c.connects).saturating_sub(plan.devices.len() as u64),
        resets: Counters::get(&c.resets),
        member_changes,
        accepted_per_sec: per_sec(invoked),
        committed_per_sec: per_sec(acked),
        deliveries_per_sec: per_sec(pushed),
        ack_latency: LatencySummary::of(&stats.ack_latency.snapshot()),
        e2e_latency: LatencySummary::of(&stats.e2e_latency.snapshot()),
        catch_up,
        converged: settled.converged,
        not_converged: settled.not_converged,
        final_views: settled.final_views,
        quiet_secs: settled.quiet_secs,
        final_errors: settled.final_errors,
        server,
        send_cpu,
        history: opts.history.as_ref().map(|p| p.display().to_string()),
        check,
    })
}

/// Every sending device sends its quota; returns when all outcomes are in or
/// the deadline plus the settle timeout passed (stragglers keep running).
async fn send_phase(
    opts: &RunOptions,
    plan: &Plan,
    live: &[LiveDevice],
    stats: &Arc<Stats>,
    run_id: &str,
) -> (f64, JoinSet<()>) {
    let started = Instant::now();
    let deadline = started + opts.max_duration;
    let sending: Vec<_> = plan.devices.iter().filter(|d| !d.late && d.quota > 0).collect();
    let mut tasks = JoinSet::new();
    for (i, d) in sending.iter().enumerate() {
        let Some(dev) = live.iter().find(|l| l.user == d.user && l.device == d.device) else {
            continue;
        };
        let pace = match opts.mode {
            Mode::ClosedLoop { window } => Pace::Window(window),
            Mode::OpenLoop { rate } => {
                // Each device sends every `period`; devices are staggered evenly.
                let period = Duration::from_secs_f64(sending.len() as f64 / rate.max(1e-3));
                let offset = period.mul_f64(i as f64 / sending.len() as f64);
                Pace::Schedule {
                    first: started + offset,
                    period,
                }
            }
        };
        let sender = Sender {
            stats: stats.clone(),
            client: dev.client.clone(),
            user: d.user.clone(),
            device: d.device.clone(),
            convs: d.convs.clone(),
            quota: d.quota,
            rng: StdRng::seed_from_u64(opts.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            pace,
            deadline,
            stop: opts.stop_sending.clone(),
            tag: run_id.to_string(),
            priority: false,
        };
        tasks.spawn(sender.run());
    }
    let limit = deadline + opts.settle_timeout;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(limit.into(), tasks.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(left = tasks.len(), "sends still pending at the deadline");
                break;
            }
        }
    }
    (started.elapsed().as_secs_f64(), tasks)
}

/// Closes every client (pending sends end as unknown outcomes), then waits
/// for the recorders and senders to finish writing.
pub(crate) async fn close(live: Vec<LiveDevice>, senders: &mut JoinSet<()>) {
    futures_util::future::join_all(live.iter().map(|d| d.client.close())).await;
    let limit = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(_)) = tokio::time::timeout_at(limit.into(), senders.join_next()).await {}
    senders.abort_all();
    for d in live {
        let _ = tokio::time::timeout_at(limit.into(), d.recorder).await;
    }
}

impl Workload {
    /// The default size of each workload.
    pub fn default_of(name: &str) -> Option<Workload> {
        match name {
            "w1" => Some(Workload::W1 {
                users: 200,
                messages: 20_000,
                two_device_fraction: 0.1,
            }),
            "w2" => Some(Workload::W2 {
                groups: 20,
                members: 50,
                senders: 10,
                messages: 20_000,
            }),
            "w3" => Some(Workload::W3 {
                entries: 100_000,
                senders: 50,
            }),
            "w4" => Some(Workload::W4 {
                members: 100_000,
                online: 1_000,
                rate: 50.0,
                seconds: 30.0,
                priority_every: 10.0,
            }),
            _ => None,
        }
    }
}
