//! The steps of a generated run.

use super::{user, Conv, Mode, Rng, Run};
use seqline_checker::{body_hash, CheckOptions, Event, EventBody, MemberOp, Scope};
use std::collections::BTreeSet;

/// A random valid history of `users` users (1-3 devices each), `convs`
/// conversations and `steps` steps, and the options to check it with.
pub fn generate(seed: u64, users: usize, convs: usize, steps: usize) -> (Vec<Event>, CheckOptions) {
    let mut rng = Rng::new(seed);
    let devices: Vec<Vec<String>> = (0..users)
        .map(|u| (0..1 + rng.below(3)).map(|d| format!("u{u}d{d}")).collect())
        .collect();
    let mut run = Run {
        rng,
        t: 0,
        events: Vec::new(),
        pending: devices.iter().map(|ds| vec![Vec::new(); ds.len()]).collect(),
        received: devices.iter().map(|ds| vec![BTreeSet::new(); ds.len()]).collect(),
        timeline: vec![Vec::new(); users],
        devices,
        cmids: 0,
    };
    let mut opts = CheckOptions {
        convergence_bound_micros: u64::MAX,
        ..CheckOptions::default()
    };
    let mut convs: Vec<Conv> = (0..convs).map(|i| create(&mut run, &mut opts, i, users)).collect();
    for _ in 0..steps {
        let c = run.rng.below(convs.len());
        match run.rng.below(20) {
            0..=12 => send(&mut run, &mut convs[c], Outcome::Acked),
            13 | 14 => send(&mut run, &mut convs[c], Outcome::Unknown),
            15 => send(&mut run, &mut convs[c], Outcome::Refused),
            16 | 17 => change_membership(&mut run, &mut convs[c], users),
            _ => {
                let u = run.rng.below(users);
                let d = run.rng.below(run.devices[u].len());
                if run.rng.chance(50) {
                    run.flush(u, d);
                } else {
                    run.pull(u, d);
                }
            }
        }
    }
    finish(&mut run, &convs);
    (run.events, opts)
}

fn create(run: &mut Run, opts: &mut CheckOptions, i: usize, users: usize) -> Conv {
    let mode = [Mode::Created, Mode::Initial, Mode::Inferred][run.rng.below(3)];
    let mut members: BTreeSet<usize> = (0..users).filter(|_| run.rng.chance(60)).collect();
    members.insert(run.rng.below(users));
    let mut conv = Conv {
        name: format!("c{i}"),
        mode,
        members,
        next_seq: 1,
    };
    match mode {
        Mode::Created => {
            let first = conv.members.clone();
            membership_message(run, &mut conv, MemberOp::Join, first, BTreeSet::new());
        }
        Mode::Initial => {
            opts.initial_members
                .insert(conv.name.clone(), conv.members.iter().map(|&u| user(u)).collect());
        }
        Mode::Inferred => {}
    }
    conv
}

/// A membership message about `who`, seen by the members before and after.
fn membership_message(run: &mut Run, conv: &mut Conv, op: MemberOp, who: BTreeSet<usize>, before: BTreeSet<usize>) {
    let seq = conv.next_seq;
    conv.next_seq += 1;
    let audience: BTreeSet<usize> = before.union(&conv.members).copied().collect();
    for &u in &audience {
        for d in 0..run.devices[u].len() {
            let device = run.devices[u][d].clone();
            for &w in &who {
                let body = EventBody::Member {
                    conv: conv.name.clone(),
                    member: user(w),
                    change: op,
                    conv_seq: seq,
                };
                run.ev(u, &device, body);
            }
        }
    }
    let cmid = run.cmid();
    run.deliver(&conv.name.clone(), seq, &cmid, body_hash(""), true, &audience);
}

fn change_membership(run: &mut Run, conv: &mut Conv, users: usize) {
    if conv.mode == Mode::Inferred {
        return;
    }
    let before = conv.members.clone();
    let u = run.rng.below(users);
    let op = if conv.members.contains(&u) {
        if conv.members.len() == 1 {
            return;
        }
        conv.members.remove(&u);
        MemberOp::Leave
    } else {
        conv.members.insert(u);
        MemberOp::Join
    };
    membership_message(run, conv, op, BTreeSet::from([u]), before);
}

#[derive(PartialEq)]
enum Outcome {
    Acked,
    Unknown,
    Refused,
}

fn send(run: &mut Run, conv: &mut Conv, outcome: Outcome) {
    let members: Vec<usize> = conv.members.iter().copied().collect();
    let u = members[run.rng.below(members.len())];
    let device = run.devices[u][run.rng.below(run.devices[u].len())].clone();
    let cmid = run.cmid();
    let hash = body_hash(&format!("text {}", run.rng.next()));
    let name = conv.name.clone();
    run.ev(
        u,
        &device,
        EventBody::SendInvoke {
            conv: name.clone(),
            client_msg_id: cmid.clone(),
            body_hash: hash,
        },
    );
    let sequenced = match outcome {
        Outcome::Refused => {
            let body = EventBody::SendFail {
                conv: name,
                client_msg_id: cmid,
                reason: "invalid".into(),
            };
            run.ev(u, &device, body);
            return;
        }
        Outcome::Unknown => {
            run.ev(
                u,
                &device,
                EventBody::SendInfo {
                    conv: name.clone(),
                    client_msg_id: cmid.clone(),
                },
            );
            run.rng.chance(50)
        }
        Outcome::Acked => true,
    };
    if !sequenced {
        return;
    }
    let seq = conv.next_seq;
    conv.next_seq += 1;
    if outcome == Outcome::Acked {
        run.ev(
            u,
            &device,
            EventBody::SendOk {
                conv: name.clone(),
                client_msg_id: cmid.clone(),
                conv_seq: seq,
            },
        );
    }
    run.deliver(&name, seq, &cmid, hash, false, &conv.members);
}

/// Heal; every device gets its pushes, pulls the rest, converges and records
/// its final views (user scope, sometimes also one conversation's).
fn finish(run: &mut Run, convs: &[Conv]) {
    run.ev(0, "fault-injector", EventBody::Heal {});
    let convs: Vec<&str> = convs.iter().map(|c| c.name.as_str()).collect();
    for u in 0..run.devices.len() {
        for d in 0..run.devices[u].len() {
            run.flush(u, d);
            run.pull(u, d);
            let device = run.devices[u][d].clone();
            run.ev(u, &device, EventBody::Converged {});
            let entries = run.timeline[u].clone();
            if run.rng.chance(30) {
                let conv = convs[run.rng.below(convs.len())];
                let mine: Vec<_> = entries.iter().filter(|e| e.conv == conv).cloned().collect();
                let body = EventBody::Final {
                    scope: Scope::Conv,
                    conv: Some(conv.into()),
                    entries: mine,
                };
                run.ev(u, &device, body);
            }
            run.ev(
                u,
                &device,
                EventBody::Final {
                    scope: Scope::User,
                    conv: None,
                    entries,
                },
            );
        }
    }
}
