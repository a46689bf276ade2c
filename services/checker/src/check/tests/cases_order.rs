//! C1, C2, C3, C5, C6, C11 and the clean baseline.

use super::assert_only;
use super::builder::{base, run, G};
use crate::history::{body_hash, EventBody};
use crate::report::CheckId::*;

#[test]
fn the_base_history_is_clean() {
    let report = run(&base().finish());
    assert!(report.is_clean(), "{report}");
    let t = &report.totals;
    assert_eq!(
        (t.sends_invoked, t.messages_acked, t.sends_failed, t.sends_unknown),
        (5, 3, 1, 1)
    );
    assert_eq!((t.unknown_recovered, t.devices, t.conversations), (1, 3, 1));
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(report.to_string().ends_with("CLEAN"));
}

#[test]
fn c1_two_bodies_at_one_position() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Recv {
            conv_seq: 1, body_hash, ..
        } = &mut e.body
        {
            if e.device == "b1" {
                *body_hash = 99;
            }
        }
    }
    assert_only(&run(&events), &[C1], "g1 seq 1");
}

#[test]
fn c1_two_messages_at_one_position() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Recv {
            conv_seq: 2,
            client_msg_id,
            body_hash: h,
            ..
        } = &mut e.body
        {
            if e.device == "a1" {
                *client_msg_id = "m3".into();
                *h = body_hash("hi");
            }
        }
    }
    // m3 now also sits at seq 2 besides its own seq 4.
    assert_only(&run(&events), &[C1, C2], "g1 seq 2");
}

#[test]
fn c2_one_id_at_two_positions() {
    let mut h = base();
    h.deliver(6, "m1", "hello");
    assert_only(&run(&h.finish()), &[C2], "m1 seen at");
}

#[test]
fn c2_one_id_acked_twice_differently() {
    let mut h = base();
    h.ok("alice", "a1", "m1", 7);
    // The second ack names a position nobody saw: sender order sees it too.
    assert_only(&run(&h.finish()), &[C2, C11], "m1 acked at g1#2, g1#7");
}

#[test]
fn c3_a_gap_in_the_conversation() {
    let mut h = base();
    h.send("bob", "b1", "m6", "skip");
    h.ok("bob", "b1", "m6", 7);
    h.deliver(7, "m6", "skip");
    assert_only(&run(&h.finish()), &[C3], "seq 6 never seen");
}

#[test]
fn c5_never_sent() {
    let mut h = base();
    h.deliver(6, "ghost", "boo");
    assert_only(&run(&h.finish()), &[C5], "ghost at g1 seq 6");
}

#[test]
fn c5_refused_yet_seen() {
    let mut h = base();
    h.deliver(6, "m5", "nope");
    assert_only(&run(&h.finish()), &[C5], "m5 at g1 seq 6");
}

#[test]
fn c5_body_differs() {
    let mut h = base();
    h.send("bob", "b1", "m6", "original");
    h.ok("bob", "b1", "m6", 6);
    h.deliver(6, "m6", "tampered");
    let report = run(&h.finish());
    assert_only(&report, &[C5], &format!("sent with hash {:x}", body_hash("original")));
    assert_eq!(report.count(C5), 1, "one id, counted once");
}

#[test]
fn c6_unknown_outcome_sequenced_twice() {
    let mut h = base();
    h.deliver(6, "m4", "lost?");
    let report = run(&h.finish());
    assert_only(&report, &[C6], "unknown-outcome send m4");
    assert_eq!(report.totals.unknown_recovered, 1);
}

#[test]
fn c11_later_send_got_a_lower_seq() {
    let mut h = base();
    h.send("alice", "a1", "first", "1");
    h.send("alice", "a1", "second", "2");
    h.ok("alice", "a1", "second", 6);
    h.deliver(6, "second", "2");
    h.ok("alice", "a1", "first", 7);
    h.deliver(7, "first", "1");
    assert_only(&run(&h.finish()), &[C11], "second sent after first");
}

#[test]
fn c11_ack_disagrees_with_readers() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::SendOk {
            client_msg_id,
            conv_seq,
            ..
        } = &mut e.body
        {
            if client_msg_id == "m3" {
                *conv_seq = 5;
            }
        }
    }
    assert_only(&run(&events), &[C11], &format!("m3 acked at {G}#5 but seen at {G}#4"));
}
