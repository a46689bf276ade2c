//! The plan of a run: users, devices, conversations and how many messages
//! each device sends, all derived from the workload and the seed.

use crate::options::Workload;
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqline_core::ids::{ConversationId, DeviceId, UserId};
use std::collections::{BTreeMap, BTreeSet};

/// One device of the run.
#[derive(Clone, Debug)]
pub(crate) struct DevicePlan {
    pub user: UserId,
    pub device: DeviceId,
    /// Conversations it sends to (picked at random per message).
    pub convs: Vec<ConversationId>,
    /// Messages it sends.
    pub quota: u64,
    /// Stays offline during the send phase (W3's catching-up device).
    pub late: bool,
    /// Every conversation its user belongs to.
    pub member_of: Vec<ConversationId>,
}

/// One conversation, created over HTTP by `creator` before the run.
#[derive(Clone, Debug)]
pub(crate) struct ConvPlan {
    pub conv: ConversationId,
    pub group: bool,
    pub creator: UserId,
    /// Every member, the creator included.
    pub members: Vec<UserId>,
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub devices: Vec<DevicePlan>,
    pub convs: Vec<ConvPlan>,
    pub users: usize,
}

impl Plan {
    /// The initial members per conversation, for the checker.
    pub fn initial_members(&self) -> std::collections::HashMap<String, Vec<String>> {
        self.convs
            .iter()
            .map(|c| (c.conv.to_string(), c.members.iter().map(ToString::to_string).collect()))
            .collect()
    }
}

fn user(run: &str, name: &str) -> Result<UserId> {
    UserId::parse(format!("{run}-{name}")).context("user id")
}

fn device(n: usize) -> Result<DeviceId> {
    DeviceId::parse(format!("d{n}")).context("device id")
}

/// Splits `total` over `n` shares as evenly as possible.
fn split(total: u64, n: usize) -> impl Iterator<Item = u64> {
    let n = n.max(1) as u64;
    (0..n).map(move |i| total / n + u64::from(i < total % n))
}

/// Builds the plan of `workload` for run `run` from `seed`.
pub(crate) fn build(workload: &Workload, run: &str, seed: u64) -> Result<Plan> {
    let mut plan = shape(workload, run, seed)?;
    let mut by_user: BTreeMap<UserId, Vec<ConversationId>> = BTreeMap::new();
    for c in &plan.convs {
        for m in &c.members {
            by_user.entry(m.clone()).or_default().push(c.conv.clone());
        }
    }
    for d in &mut plan.devices {
        d.member_of = by_user.get(&d.user).cloned().unwrap_or_default();
    }
    Ok(plan)
}

fn shape(workload: &Workload, run: &str, seed: u64) -> Result<Plan> {
    let mut rng = StdRng::seed_from_u64(seed);
    match *workload {
        Workload::W1 {
            users,
            messages,
            two_device_fraction,
        } => w1(&mut rng, run, users.max(2), messages, two_device_fraction),
        Workload::W2 {
            groups,
            members,
            senders,
            messages,
        } => w2(run, groups.max(1), members.max(2), senders, messages),
        Workload::W3 { entries, senders } => w3(run, entries, senders.max(1)),
        Workload::W4 { .. } => anyhow::bail!("w4 has its own plan"),
    }
}

fn w1(rng: &mut StdRng, run: &str, n: usize, messages: u64, fraction: f64) -> Result<Plan> {
    let users: Vec<UserId> = (0..n).map(|i| user(run, &format!("u{i}"))).collect::<Result<_>>()?;
    let mut pairs = BTreeSet::new();
    for i in 0..n {
        let mut others: Vec<usize> = (0..n).filter(|j| *j != i).collect();
        others.shuffle(rng);
        for j in others.into_iter().take(3) {
            pairs.insert((i.min(j), i.max(j)));
        }
    }
    let mut by_user: BTreeMap<usize, Vec<ConversationId>> = BTreeMap::new();
    let mut convs = Vec::new();
    for (a, b) in pairs {
        let conv = ConversationId::direct(&users[a], &users[b]);
        by_user.entry(a).or_default().push(conv.clone());
        by_user.entry(b).or_default().push(conv.clone());
        convs.push(ConvPlan {
            conv,
            group: false,
            creator: users[a].clone(),
            members: vec![users[a].clone(), users[b].clone()],
        });
    }
    let twos = ((n as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    let second: BTreeSet<usize> = idx.into_iter().take(twos).collect();
    let mut devices = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let count = if second.contains(&i) { 2 } else { 1 };
        for d in 0..count {
            let convs = by_user.get(&i).cloned().unwrap_or_default();
            devices.push(DevicePlan {
                user: u.clone(),
                device: device(d)?,
                convs,
                quota: 0,
                late: false,
                member_of: Vec::new(),
            });
        }
    }
    for (d, q) in devices.iter_mut().zip(split(messages, n + twos)) {
        d.quota = q;
    }
    Ok(Plan {
        devices,
        convs,
        users: n,
    })
}

fn w2(run: &str, groups: usize, members: usize, senders: usize, messages: u64) -> Result<Plan> {
    let senders = senders.clamp(1, members);
    let mut devices = Vec::new();
    let mut convs = Vec::new();
    for g in 0..groups {
        let conv = ConversationId::parse(format!("g:{run}-{g}")).context("group id")?;
        let users: Vec<UserId> = (0..members)
            .map(|m| user(run, &format!("g{g}-m{m}")))
            .collect::<Result<_>>()?;
        for (m, u) in users.iter().enumerate() {
            let convs = if m < senders { vec![conv.clone()] } else { Vec::new() };
            devices.push(DevicePlan {
                user: u.clone(),
                device: device(0)?,
                convs,
                quota: 0,
                late: false,
                member_of: Vec::new(),
            });
        }
        convs.push(ConvPlan {
            conv,
            group: true,
            creator: users[0].clone(),
            members: users,
        });
    }
    let mut quotas = split(messages, groups * senders);
    for d in devices.iter_mut().filter(|d| !d.convs.is_empty()) {
        d.quota = quotas.next().unwrap_or(0);
    }
    Ok(Plan {
        devices,
        convs,
        users: groups * members,
    })
}

fn w3(run: &str, entries: u64, senders: usize) -> Result<Plan> {
    let target = user(run, "target")?;
    let mut devices = Vec::new();
    let mut convs = Vec::new();
    // Each direct conversation puts its `created` entry in the target's timeline.
    let messages = entries.saturating_sub(senders as u64);
    for (s, quota) in (0..senders).zip(split(messages, senders)) {
        let u = user(run, &format!("s{s}"))?;
        let conv = ConversationId::direct(&u, &target);
        devices.push(DevicePlan {
            user: u.clone(),
            device: device(0)?,
            convs: vec![conv.clone()],
            quota,
            late: false,
            member_of: Vec::new(),
        });
        convs.push(ConvPlan {
            conv,
            group: false,
            creator: u.clone(),
            members: vec![u, target.clone()],
        });
    }
    let all: Vec<ConversationId> = convs.iter().map(|c| c.conv.clone()).collect();
    devices.push(DevicePlan {
        user: target,
        device: device(0)?,
        convs: all,
        quota: 0,
        late: true,
        member_of: Vec::new(),
    });
    Ok(Plan {
        devices,
        convs,
        users: senders + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w1_plans_are_seeded_and_complete() {
        let w = Workload::W1 {
            users: 20,
            messages: 1001,
            two_device_fraction: 0.1,
        };
        let a = build(&w, "r", 7).unwrap();
        let b = build(&w, "r", 7).unwrap();
        assert_eq!(a.devices.len(), 22);
        assert_eq!(a.devices.iter().map(|d| d.quota).sum::<u64>(), 1001);
        assert!(a.devices.iter().all(|d| !d.convs.is_empty()));
        let names = |p: &Plan| p.convs.iter().map(|c| c.conv.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        assert!(a.convs.iter().all(|c| c.members.len() == 2 && c.conv.is_direct()));
    }

    #[test]
    fn w2_and_w3_shapes() {
        let p = build(
            &Workload::W2 {
                groups: 2,
                members: 5,
                senders: 2,
                messages: 10,
            },
            "r",
            1,
        )
        .unwrap();
        assert_eq!((p.devices.len(), p.convs.len(), p.users), (10, 2, 10));
        assert_eq!(p.devices.iter().filter(|d| d.quota > 0).count(), 4);
        assert_eq!(p.devices.iter().map(|d| d.quota).sum::<u64>(), 10);
        let p = build(
            &Workload::W3 {
                entries: 100,
                senders: 4,
            },
            "r",
            1,
        )
        .unwrap();
        assert_eq!(p.devices.iter().map(|d| d.quota).sum::<u64>(), 96);
        assert_eq!(p.devices.iter().filter(|d| d.late).count(), 1);
        assert_eq!(p.initial_members().len(), 4);
    }
}
