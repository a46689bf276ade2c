//! Before the send phase: tokens, conversations over HTTP, connected devices.
//! Every step retries what a restarting server answers (refused connections,
//! 5xx, timeouts) until the setup deadline; HTTP calls carry a request id so
//! a retry never creates twice.

use crate::device::{spawn_recorder, Recording, Seen};
use crate::plan::{ConvPlan, DevicePlan, Plan};
use crate::stats::Stats;
use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use seqline_client::{Backoff, Client, ClientConfig, ClientError, EventStream, HttpApi};
use seqline_core::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use seqline_core::token::{now_secs, TokenKey};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Connections opened at once.
const PARALLEL: usize = 32;

/// A connected device of the run.
pub(crate) struct LiveDevice {
    pub user: UserId,
    pub device: DeviceId,
    pub client: Client,
    pub recorder: JoinHandle<()>,
    /// What it received, per conversation.
    pub seen: Seen,
    /// The conversations its user belongs to.
    pub member_of: Vec<ConversationId>,
}

/// Mints device tokens valid for the whole run.
#[derive(Clone, Debug)]
pub(crate) struct Tokens {
    pub key: TokenKey,
    pub ttl_secs: u64,
}

impl Tokens {
    pub fn mint(&self, user: &UserId, device: &DeviceId) -> String {
        self.key.sign(user, device, now_secs(), self.ttl_secs)
    }
}

/// The wait before retry `n` of a setup or final-phase call: doubling from
/// 50 ms up to 1 s, half of it random, so the devices a restarted server
/// refused together do not all come back at once.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_secs(1),
    jitter: 0.5,
};

/// Retries `f` on retryable errors until `deadline`, backing off (with
/// jitter) up to 1 s.
pub(crate) async fn retry<T, F, Fut>(deadline: Instant, mut f: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut rng = SmallRng::seed_from_u64(uuid::Uuid::new_v4().as_u64_pair().0);
    let mut attempt = 0;
    loop {
        let wait = RETRY.delay(attempt, &mut rng);
        match f().await {
            Err(e) if e.is_retryable() && Instant::now() + wait < deadline => {
                tracing::debug!(error = %e, "retrying");
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
            other => return other,
        }
    }
}

async fn create(http: &str, tokens: &Tokens, c: &ConvPlan, deadline: Instant) -> Result<()> {
    let d0 = DeviceId::parse("d0").context("device id")?;
    let api = HttpApi::new(http, tokens.mint(&c.creator, &d0))?;
    let request = ClientMsgId::random();
    let others: Vec<UserId> = c.members.iter().filter(|m| **m != c.creator).cloned().collect();
    let title = c.conv.to_string();
    let created = retry(deadline, || async {
        if c.group {
            api.create_group_with(Some(&c.conv), &title, &others, request).await
        } else {
            let peer = others
                .first()
                .ok_or_else(|| ClientError::Config("a direct conversation needs a peer".into()))?;
            api.create_direct_with(peer, request).await
        }
    })
    .await
    .with_context(|| format!("creating {}", c.conv))?;
    anyhow::ensure!(
        created.conv == c.conv,
        "asked for {} but the server created {}",
        c.conv,
        created.conv
    );
    Ok(())
}

/// Creates every conversation of the plan.
pub(crate) async fn create_conversations(http: &str, tokens: &Tokens, plan: &Plan, deadline: Instant) -> Result<()> {
    stream::iter(plan.convs.iter().map(Ok))
        .try_for_each_concurrent(PARALLEL, |c| create(http, tokens, c, deadline))
        .await
}

/// The client settings of a load-generating device.
pub(crate) fn client_config(url: &str, token: String) -> ClientConfig {
    let mut cfg = ClientConfig::new(url, token);
    cfg.event_capacity = 4096;
    cfg.outbox_capacity = 4096;
    cfg.ping_interval = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg.connect_timeout = Duration::from_secs(5);
    // Every send carries the device's vector clock; the checker holds the
    // clocks readers see against the server's order (C13, C14).
    cfg.vector_clocks = true;
    cfg
}

impl Default for Recording {
    fn default() -> Self {
        Self {
            measure_e2e: true,
            own_membership_only: false,
        }
    }
}

/// Connects one device (retrying until `deadline`) and starts recording it.
pub(crate) async fn connect(
    url: &str,
    tokens: &Tokens,
    stats: &Arc<Stats>,
    d: &DevicePlan,
    deadline: Instant,
    rec: Recording,
) -> Result<LiveDevice> {
    let (client, events): (Client, EventStream) = retry(deadline, || {
        Client::connect(client_config(url, tokens.mint(&d.user, &d.device)))
    })
    .await
    .with_context(|| format!("connecting {}/{}", d.user, d.device))?;
    let (recorder, seen) = spawn_recorder(stats.clone(), d.user.clone(), d.device.clone(), events, rec);
    Ok(LiveDevice {
        user: d.user.clone(),
        device: d.device.clone(),
        client,
        recorder,
        seen,
        member_of: d.member_of.clone(),
    })
}

/// Connects every device that is not late, in plan order.
pub(crate) async fn connect_all(
    url: &str,
    tokens: &Tokens,
    stats: &Arc<Stats>,
    plan: &Plan,
    deadline: Instant,
) -> Result<Vec<LiveDevice>> {
    stream::iter(plan.devices.iter().filter(|d| !d.late))
        .map(|d| connect(url, tokens, stats, d, deadline, Recording::default()))
        .buffered(PARALLEL)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn retry_waits_grow_to_a_second_with_jitter() {
        let mut rng = SmallRng::seed_from_u64(5);
        let first: Vec<Duration> = (0..20).map(|_| RETRY.delay(0, &mut rng)).collect();
        assert!(first
            .iter()
            .all(|d| *d >= Duration::from_millis(25) && *d <= Duration::from_millis(50)));
        assert!(first.windows(2).any(|w| w[0] != w[1]), "the waits are jittered");
        assert_eq!(RETRY.bounds(10), (Duration::from_millis(500), Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn retry_repeats_only_what_may_succeed_later() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let calls = AtomicU32::new(0);
        let got = retry(deadline, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(ClientError::Timeout),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.unwrap(), 2);
        let refused: Result<(), ClientError> = retry(deadline, || async { Err(ClientError::Closed) }).await;
        assert!(matches!(refused, Err(ClientError::Closed)));
    }
}
