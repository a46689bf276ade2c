//! W4, the huge group (docs/huge-groups.md): one group of `members`
//! members created by its admin with the first members and grown by the
//! HTTP API in chunks (the online members last, so they join in
//! read-diffusion mode and follow from their own join); `online` devices of
//! distinct members connected and following it through the SDK; one member
//! sending at a fixed rate (open loop) and the admin sending a priority
//! announcement now and then. Measures per-device delivery latency (intended
//! send time to the device having the message), priority push latency,
//! server CPU and RSS, and checks every device's stream of the group (C12:
//! each message once, in order, no gaps).

use crate::device::{Pace, Recording, Sender};
use crate::options::{RunOptions, Workload};
use crate::plan::DevicePlan;
use crate::procstat::Sampler;
use crate::report::{HugeGroup, LatencySummary, RunReport};
use crate::setup::{self, retry, LiveDevice, Tokens};
use crate::stats::{Counters, Stats};
use crate::{finale, run::close};
use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqline_checker::{check, read_history, CheckOptions, HistoryWriter};
use seqline_client::HttpApi;
use seqline_core::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use seqline_core::token::TokenKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Members per HTTP call (the gateway allows 1,000). Smaller than that on
/// purpose: each joiner's timeline entry carries the whole list of its
/// `joined` message, so the stored bytes grow with members × chunk.
pub(crate) const CHUNK: usize = 250;
/// Membership calls in flight at once (one conversation: the sequencer
/// orders them anyway; a few in flight hide the round trips).
const ADDING: usize = 4;
/// Connections opened at once.
const CONNECTING: usize = 32;
/// The server's default read-diffusion threshold: at or below it nobody
/// follows, so the run does not wait for it.
const THRESHOLD: usize = 500;

fn user(run: &str, name: &str) -> Result<UserId> {
    UserId::parse(format!("{run}-{name}")).context("user id")
}

fn device(name: &str) -> Result<DeviceId> {
    DeviceId::parse(name).context("device id")
}

/// Who is in the group, in the order they are added.
pub(crate) struct Cast {
    pub conv: ConversationId,
    pub admin: UserId,
    pub sender: UserId,
    pub fillers: Vec<UserId>,
    pub online: Vec<UserId>,
}

impl Cast {
    pub fn new(run: &str, members: usize, online: usize) -> Result<Cast> {
        let members = members.max(online + 2);
        Ok(Cast {
            conv: ConversationId::parse(format!("g:{run}-huge")).context("group id")?,
            admin: user(run, "admin")?,
            sender: user(run, "sender")?,
            fillers: (0..members - online - 2)
                .map(|i| user(run, &format!("m{i}")))
                .collect::<Result<_>>()?,
            online: (0..online)
                .map(|i| user(run, &format!("o{i}")))
                .collect::<Result<_>>()?,
        })
    }

    /// The members named at creation (the admin creates it): the sender and
    /// as many fillers as fit in one call.
    pub fn first(&self) -> Vec<UserId> {
        let fill = self.fillers.len().min(CHUNK - 1);
        std::iter::once(self.sender.clone())
            .chain(self.fillers[..fill].iter().cloned())
            .collect()
    }

    /// The further calls: the other fillers, then the online members.
    pub fn chunks(&self) -> (Vec<Vec<UserId>>, Vec<Vec<UserId>>) {
        let fill = self.fillers.len().min(CHUNK - 1);
        let fillers = self.fillers[fill..].chunks(CHUNK).map(<[UserId]>::to_vec).collect();
        let online = self.online.chunks(CHUNK).map(<[UserId]>::to_vec).collect();
        (fillers, online)
    }

    pub fn members(&self) -> usize {
        2 + self.fillers.len() + self.online.len()
    }
}

fn conv_seq_of(answer: &serde_json::Value) -> u64 {
    answer.get("conv_seq").and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// Creates the group and adds every member; the online ones last.
async fn build_group(http: &str, tokens: &Tokens, cast: &Cast, stats: &Stats, deadline: Instant) -> Result<()> {
    // Not the admin's WebSocket device: HTTP commands would break its prev chain.
    let api = HttpApi::new(http, tokens.mint(&cast.admin, &device("setup")?))?.with_timeout(Duration::from_secs(60));
    let request = ClientMsgId::random();
    let first = cast.first();
    let created = retry(deadline, || {
        api.create_group_with(Some(&cast.conv), "w4 huge group", &first, request)
    })
    .await
    .with_context(|| format!("creating {}", cast.conv))?;
    stats.acked(&cast.conv, created.conv_seq);
    let (fillers, online) = cast.chunks();
    for batch in [fillers, online] {
        stream::iter(batch.into_iter().map(Ok))
            .try_for_each_concurrent(ADDING, |chunk| {
                let api = api.clone();
                async move {
                    let id = ClientMsgId::random();
                    let answer = retry(deadline, || api.change_members_with(&cast.conv, &chunk, &[], id))
                        .await
                        .with_context(|| format!("adding {} members to {}", chunk.len(), cast.conv))?;
                    stats.acked(&cast.conv, conv_seq_of(&answer));
                    anyhow::Ok(())
                }
            })
            .await?;
    }
    Ok(())
}

fn plan_of(user: &UserId, dev: &str, conv: &ConversationId) -> Result<DevicePlan> {
    Ok(DevicePlan {
        user: user.clone(),
        device: device(dev)?,
        convs: vec![conv.clone()],
        quota: 0,
        late: false,
        member_of: vec![conv.clone()],
    })
}

/// Waits (until `deadline`) for every device to follow the group; returns
/// how many do.
async fn wait_following(devices: &[LiveDevice], deadline: Instant) -> usize {
    let waits = devices.iter().map(|d| async move {
        let mut status = d.client.watch_status();
        tokio::time::timeout_at(deadline.into(), status.wait_for(|s| s.following > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    });
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

/// Runs W4 (see the module docs).
pub(crate) async fn run(opts: RunOptions, run_id: String) -> Result<RunReport> {
    let Workload::W4 {
        members,
        online,
        rate,
        seconds,
        priority_every,
    } = opts.workload.clone()
    else {
        anyhow::bail!("not a w4 workload");
    };
    let cast = Cast::new(&run_id, members, online)?;
    let writer = match &opts.history {
        Some(p) => HistoryWriter::to_file(p).with_context(|| format!("creating {}", p.display()))?,
        None => HistoryWriter::in_memory(),
    };
    let stats = Arc::new(Stats::new(writer)?);
    let send_for = Duration::from_secs_f64(seconds.max(0.0));
    let ttl = send_for + opts.settle_timeout * 20 + Duration::from_secs(3600);
    let tokens = Tokens {
        key: TokenKey::new(opts.secret.clone()),
        ttl_secs: ttl.as_secs(),
    };
    let sampler = Sampler::start(stats.clone(), opts.server_pid, opts.progress);

    let setup_started = Instant::now();
    let setup_deadline = setup_started + opts.settle_timeout.max(Duration::from_secs(30)) * 10;
    build_group(&opts.http, &tokens, &cast, &stats, setup_deadline).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    if opts.progress {
        eprintln!("w4: {} members in {} after {setup_secs:.1}s", cast.members(), cast.conv);
    }

    let quiet = Recording {
        measure_e2e: false,
        own_membership_only: true,
    };
    let measured = Recording {
        measure_e2e: true,
        own_membership_only: true,
    };
    let mut plans = vec![
        (plan_of(&cast.admin, "admin", &cast.conv)?, quiet),
        (plan_of(&cast.sender, "d0", &cast.conv)?, quiet),
    ];
    for u in &cast.online {
        plans.push((plan_of(u, "d0", &cast.conv)?, measured));
    }
    let connect_deadline = Instant::now() + opts.settle_timeout.max(Duration::from_secs(30));
    let live: Vec<LiveDevice> = stream::iter(plans.iter())
        .map(|(d, rec)| setup::connect(&opts.url, &tokens, &stats, d, connect_deadline, *rec))
        .buffered(CONNECTING)
        .try_collect()
        .await?;
    let follow_started = Instant::now();
    let following = if cast.members() > THRESHOLD {
        wait_following(&live[2..], Instant::now() + opts.settle_timeout).await
    } else {
        0
    };
    let follow_secs = follow_started.elapsed().as_secs_f64();
    if opts.progress {
        eprintln!(
            "w4: {} devices connected, {following}/{} online following after {follow_secs:.1}s",
            live.len(),
            cast.online.len()
        );
    }

    // The send phase: the sender at `rate`, the admin's priority messages
    // half a period into each period.
    let started = Instant::now();
    let cpu_at_start = opts.server_pid.and_then(crate::procstat::cpu_ticks);
    let deadline = started + send_for;
    let mut senders = JoinSet::new();
    let quota = (rate.max(0.0) * send_for.as_secs_f64()).ceil() as u64;
    if quota > 0 {
        senders.spawn(
            Sender {
                stats: stats.clone(),
                client: live[1].client.clone(),
                user: cast.sender.clone(),
                device: live[1].device.clone(),
                convs: vec![cast.conv.clone()],
                quota,
                rng: StdRng::seed_from_u64(opts.seed),
                pace: Pace::Schedule {
                    first: started,
                    period: Duration::from_secs_f64(1.0 / rate.max(1e-3)),
                },
                deadline,
                stop: opts.stop_sending.clone(),
                tag: run_id.clone(),
                priority: false,
            }
            .run(),
        );
    }
    // Due at (k + 1/2) periods, k = 0, 1, ...: those before the end.
    let priority_quota = if priority_every > 0.0 {
        (send_for.as_secs_f64() / priority_every - 0.5).ceil().max(0.0) as u64
    } else {
        0
    };
    if priority_quota > 0 {
        let period = Duration::from_secs_f64(priority_every);
        senders.spawn(
            Sender {
                stats: stats.clone(),
                client: live[0].client.clone(),
                user: cast.admin.clone(),
                device: live[0].device.clone(),
                convs: vec![cast.conv.clone()],
                quota: priority_quota,
                rng: StdRng::seed_from_u64(opts.seed ^ 0x4),
                pace: Pace::Schedule {
                    first: started + period / 2,
                    period,
                },
                deadline,
                stop: opts.stop_sending.clone(),
                tag: format!("{run_id} priority"),
                priority: true,
            }
            .run(),
        );
    }
    let limit = deadline + opts.settle_timeout;
    while !senders.is_empty() {
        if tokio::time::timeout_at(limit.into(), senders.join_next())
            .await
            .is_err()
        {
            tracing::warn!(left = senders.len(), "sends still pending at the deadline");
            break;
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    let send_cpu_secs = match (cpu_at_start, opts.server_pid.and_then(crate::procstat::cpu_ticks)) {
        (Some(t0), Some(t1)) => t1.saturating_sub(t0) as f64 / crate::procstat::TICKS_PER_SEC,
        _ => 0.0,
    };
    let send_rss_kib = opts.server_pid.and_then(crate::procstat::rss_kib).unwrap_or(0);
    let c = &stats.counters;
    let invoked = Counters::get(&c.invoked);
    let priority_sent = Counters::get(&c.priority_invoked);

    let settled = finale::settle(&stats, &live, opts.settle_timeout, false, None).await;
    let devices = live.len();
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
    let initial: HashMap<String, Vec<String>> = HashMap::from([(
        cast.conv.to_string(),
        vec![cast.admin.to_string(), cast.sender.to_string()],
    )]);
    let check_opts = CheckOptions {
        initial_members: initial,
        infer_static_membership: false,
        convergence_bound_micros: (opts.settle_timeout * finale::PROGRESS_ROUNDS).as_micros() as u64,
        ..CheckOptions::default()
    };
    let check = check(&events, &check_opts);

    let per_sec = |n: u64| n as f64 / send_secs.max(1e-9);
    let delivery = stats.e2e_latency.snapshot();
    let acked = Counters::get(&c.acked);
    let w4 = HugeGroup {
        members: cast.members(),
        online: cast.online.len(),
        rate,
        priority_every,
        setup_secs,
        send_cpu_percent: send_cpu_secs / send_secs.max(1e-9) * 100.0,
        cpu_us_per_message: send_cpu_secs * 1e6 / (invoked.max(1) as f64),
        send_rss_kib,
        follow_secs,
        following,
        head: stats.acked_max(&cast.conv),
        sent: invoked.saturating_sub(priority_sent),
        priority_sent,
        deliveries: delivery.len(),
        deliveries_per_sec: per_sec(delivery.len()),
        priority_pushes: Counters::get(&c.priority_pushes),
        delivery_latency: LatencySummary::of(&delivery),
        priority_latency: LatencySummary::of(&stats.priority_latency.snapshot()),
    };
    Ok(RunReport {
        workload: opts.workload.name().into(),
        mode: format!("open loop, {rate}/s"),
        run_id,
        seed: opts.seed,
        users: cast.members(),
        devices,
        conversations: 1,
        send_secs,
        invoked,
        acked,
        failed: Counters::get(&c.failed),
        unknown: Counters::get(&c.unknown),
        rate_limited,
        pushed: Counters::get(&c.pushed),
        pulled: Counters::get(&c.pulled),
        reconnects: Counters::get(&c.connects).saturating_sub(devices as u64),
        resets: Counters::get(&c.resets),
        member_changes: 0,
        accepted_per_sec: per_sec(invoked),
        committed_per_sec: per_sec(acked),
        deliveries_per_sec: per_sec(Counters::get(&c.pushed)),
        ack_latency: LatencySummary::of(&stats.ack_latency.snapshot()),
        e2e_latency: LatencySummary::of(&delivery),
        catch_up: None,
        w4: Some(w4),
        converged: settled.converged,
        not_converged: settled.not_converged,
        final_views: settled.final_views,
        quiet_secs: settled.quiet_secs,
        final_errors: settled.final_errors,
        server,
        send_cpu: None,
        history: opts.history.as_ref().map(|p| p.display().to_string()),
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_online_members_join_last_in_chunks() {
        let cast = Cast::new("r", 2_600, 1_200).unwrap();
        assert_eq!(cast.members(), 2_600);
        let first = cast.first();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(first[0], cast.sender);
        let (fillers, online) = cast.chunks();
        assert_eq!(
            fillers.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![250, 250, 250, 250, 149]
        );
        assert_eq!(
            online.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![250, 250, 250, 250, 200]
        );
        assert!(online.iter().flatten().all(|u| cast.online.contains(u)));
        let small = Cast::new("r", 3, 5).unwrap();
        assert_eq!(
            small.members(),
            7,
            "at least the online members, the sender and the admin"
        );
        assert!(small.chunks().0.is_empty());
    }
}
