//! C12: a conversation that switches write → read → write diffusion.
//! Messages 1-3 and 6-7 reach timelines (3 and 6 are the boundaries), 4
//! and 5 are pulled by conversation cursor.

use super::assert_only;
use super::builder::{run, G, H};
use crate::history::{body_hash, EventBody, FinalEntry, MemberOp, Scope, Via};
use crate::report::CheckId::*;

/// (conv_seq, read_diffusion after it, by timeline)
const SHAPE: [(u64, bool, bool); 7] = [
    (1, false, true),
    (2, false, true),
    (3, true, true),
    (4, true, false),
    (5, true, false),
    (6, false, true),
    (7, false, true),
];

fn cmid(seq: u64) -> String {
    if seq == 1 {
        "member-1".into()
    } else {
        format!("m{seq}")
    }
}

fn text(seq: u64) -> String {
    if seq == 1 {
        String::new()
    } else {
        format!("text {seq}")
    }
}

/// What one device receives: `(conv_seq, user_seq)`, in order.
type Stream = Vec<(u64, Option<u64>)>;

/// The clean stream: timeline entries with their user_seq, pulls without.
fn clean_stream() -> Stream {
    let mut us = 0;
    SHAPE
        .iter()
        .map(|&(seq, _, timeline)| {
            (
                seq,
                timeline.then(|| {
                    us += 1;
                    us
                }),
            )
        })
        .collect()
}

/// A history where every device of alice (a1) and bob (b1, b2) receives
/// `edit(device, clean stream)`; finals are complete conv-scope views.
fn history(edit: impl Fn(&str, Stream) -> Stream) -> Vec<crate::history::Event> {
    let mut h = H::new();
    for (user, devices) in h.users.clone() {
        for device in devices {
            h.ev(
                user,
                device,
                EventBody::Member {
                    conv: G.into(),
                    member: "alice".into(),
                    change: MemberOp::Join,
                    conv_seq: 1,
                },
            );
            h.ev(
                user,
                device,
                EventBody::Member {
                    conv: G.into(),
                    member: "bob".into(),
                    change: MemberOp::Join,
                    conv_seq: 1,
                },
            );
        }
    }
    for seq in 2..=7 {
        h.send("alice", "a1", &cmid(seq), &text(seq));
        h.ok("alice", "a1", &cmid(seq), seq);
    }
    for (user, devices) in h.users.clone() {
        for device in devices {
            let stream = edit(device, clean_stream());
            for (seq, us) in stream {
                let rd = SHAPE[(seq - 1) as usize].1;
                let via = if us.is_some() { Via::Push } else { Via::Pull };
                if us.is_none() && seq == 4 {
                    h.ev(
                        user,
                        device,
                        EventBody::Pull {
                            scope: Scope::Conv,
                            conv: Some(G.into()),
                            from: 3,
                            returned: vec![4, 5],
                        },
                    );
                }
                h.ev(
                    user,
                    device,
                    EventBody::Recv {
                        conv: G.into(),
                        conv_seq: seq,
                        client_msg_id: cmid(seq),
                        user_seq: us,
                        via,
                        body_hash: body_hash(&text(seq)),
                        sender: "alice".into(),
                        system: seq == 1,
                        read_diffusion: rd,
                        vclock: Default::default(),
                    },
                );
            }
            let entries = clean_stream()
                .into_iter()
                .map(|(seq, us)| FinalEntry {
                    conv: G.into(),
                    conv_seq: seq,
                    client_msg_id: cmid(seq),
                    user_seq: us,
                    body_hash: body_hash(&text(seq)),
                    system: seq == 1,
                })
                .collect();
            h.finals.insert((user, device), entries);
        }
    }
    h.finish()
}

#[test]
fn c12_a_clean_switch_and_back_is_clean() {
    let report = run(&history(|_, s| s));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn c12_the_boundary_by_timeline_and_again_by_pull() {
    let events = history(|d, mut s| {
        if d == "b2" {
            s.insert(3, (3, None));
        }
        s
    });
    assert_only(&run(&events), &[C12], "bob/b2 stream of g1: 1 repeat(s), first seq 3");
}

#[test]
fn c12_a_pulled_message_out_of_order() {
    let events = history(|d, mut s| {
        if d == "a1" {
            s.swap(3, 4);
        }
        s
    });
    assert_only(
        &run(&events),
        &[C12],
        "alice/a1 stream of g1: 1 out of order, first seq 4 after 5",
    );
}

#[test]
fn c12_a_device_that_never_followed() {
    let events = history(|d, s| {
        if d == "b1" {
            s.into_iter().filter(|(_, us)| us.is_some()).collect()
        } else {
            s
        }
    });
    // The hole below 6 is C9's too.
    let report = run(&events);
    assert_only(
        &report,
        &[C9, C12],
        "bob/b1 live view of g1: 2 hole(s) below seq 7, first 4",
    );
    assert!(report.witnesses(C12)[0].contains("bob/b1 stream of g1: missing 2 owed seq(s), first 4"));
}

#[test]
fn c12_a_stream_that_stops_early() {
    let events = history(|d, mut s| {
        if d == "a1" {
            s.truncate(5);
        }
        s
    });
    // Nothing below the last received seq is missing: only C12 sees it.
    assert_only(
        &run(&events),
        &[C12],
        "alice/a1 stream of g1: missing 2 owed seq(s), first 6",
    );
}
