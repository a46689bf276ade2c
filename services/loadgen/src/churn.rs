//! Membership churn (F12) for group workloads: while messages flow, each
//! group's admin removes a random member (senders included, so a sender can
//! be removed mid-send and see `not_member`) and adds them back, over and
//! over. Every removal is followed by its re-add, so all members are back
//! when the final phase starts.

use crate::plan::Plan;
use crate::setup::{retry, Tokens};
use crate::stats::Stats;
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqline_client::HttpApi;
use seqline_core::ids::{ClientMsgId, DeviceId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

fn conv_seq_of(answer: &serde_json::Value) -> u64 {
    answer.get("conv_seq").and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// Starts one churning task per group; they stop when `stop` turns true.
pub(crate) fn start(
    http: &str,
    tokens: &Tokens,
    plan: &Plan,
    every: Duration,
    seed: u64,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> Result<JoinSet<u64>> {
    let mut tasks = JoinSet::new();
    // A device of its own: the sequencer counts HTTP commands as the calling
    // device's last command, which would break the prev chain of d0's sends.
    let admin = DeviceId::parse("admin").context("device id")?;
    for (i, c) in plan.convs.iter().filter(|c| c.group).enumerate() {
        let api = HttpApi::new(http, tokens.mint(&c.creator, &admin))?;
        let others: Vec<_> = c.members.iter().filter(|m| **m != c.creator).cloned().collect();
        let conv = c.conv.clone();
        let mut stop = stop.clone();
        let stats = stats.clone();
        let mut rng = StdRng::seed_from_u64(seed ^ 0xc4u64.wrapping_mul(i as u64 + 1));
        tasks.spawn(async move {
            let mut changes = 0;
            while !*stop.borrow() {
                if tokio::time::timeout(every, stop.changed()).await.is_ok() {
                    break;
                }
                let Some(member) = others.choose(&mut rng).cloned() else {
                    break;
                };
                let deadline = Instant::now() + Duration::from_secs(60);
                let (rm, add) = (ClientMsgId::random(), ClientMsgId::random());
                let gone = retry(deadline, || {
                    api.change_members_with(&conv, &[], std::slice::from_ref(&member), rm)
                })
                .await;
                match gone {
                    // Every member must end up past this change too (see finale).
                    Ok(answer) => stats.acked(&conv, conv_seq_of(&answer)),
                    Err(e) => {
                        tracing::warn!(error = %e, %conv, "removing a member failed");
                        continue;
                    }
                }
                changes += 1;
                tokio::time::sleep(every / 2).await;
                let back = retry(deadline, || {
                    api.change_members_with(&conv, std::slice::from_ref(&member), &[], add)
                })
                .await;
                match back {
                    Ok(answer) => {
                        stats.acked(&conv, conv_seq_of(&answer));
                        changes += 1;
                    }
                    Err(e) => tracing::warn!(error = %e, %conv, %member, "adding a member back failed"),
                }
            }
            changes
        });
    }
    Ok(tasks)
}
