//! C13 and C14: vector clocks against the server's order.

use super::assert_only;
use super::builder::{base, run};
use crate::history::{Event, EventBody};
use crate::report::CheckId::*;
use std::collections::BTreeMap;

fn clock(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(u, n)| (u.to_string(), *n)).collect()
}

/// The base history with the clocks the SDK stamps: alice sends m1 and m2,
/// bob replies m3 having seen both, alice sends m4 having seen m3 (bob's
/// refused m5 was stamped too, then never sequenced).
fn with_clocks(edit: impl Fn(&str, &str) -> Option<BTreeMap<String, u64>>) -> Vec<Event> {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Recv {
            client_msg_id, vclock, ..
        } = &mut e.body
        {
            let good = match client_msg_id.as_str() {
                "m1" => clock(&[("alice", 1)]),
                "m2" => clock(&[("alice", 2)]),
                "m3" => clock(&[("alice", 2), ("bob", 1)]),
                "m4" => clock(&[("alice", 3), ("bob", 1)]),
                _ => continue,
            };
            *vclock = edit(client_msg_id, &e.device).unwrap_or(good);
        }
    }
    events
}

#[test]
fn clocks_the_sdk_stamps_are_clean() {
    let report = run(&with_clocks(|_, _| None));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn c13_a_reply_sequenced_before_a_message_its_clock_counts() {
    // m3 (seq 4) says bob had seen three of alice's messages: the third is m4 at seq 5.
    let events = with_clocks(|id, _| (id == "m3").then(|| clock(&[("alice", 3), ("bob", 1)])));
    assert_only(
        &run(&events),
        &[C13],
        "m3 at g1 seq 4 (by bob): clock {alice:3, bob:1} counts 3 of alice's messages, but 2",
    );
}

#[test]
fn c13_allows_for_sends_never_sequenced_and_no_more() {
    // bob's refused m5 may have been counted before its refusal came back.
    let events = with_clocks(|id, _| match id {
        "m1" => Some(clock(&[("alice", 1), ("bob", 1)])),
        "m2" => Some(clock(&[("alice", 2), ("bob", 1)])),
        _ => None,
    });
    let report = run(&events);
    assert!(report.is_clean(), "{report}");
    let events = with_clocks(|id, _| match id {
        "m1" => Some(clock(&[("alice", 1), ("bob", 2)])),
        "m2" => Some(clock(&[("alice", 2), ("bob", 2)])),
        "m3" => Some(clock(&[("alice", 2), ("bob", 3)])),
        "m4" => Some(clock(&[("alice", 3), ("bob", 3)])),
        _ => None,
    });
    assert_only(&run(&events), &[C13], "m1 at g1 seq 2 (by alice)");
}

#[test]
fn c14_a_later_send_whose_clock_is_not_after_the_earlier_one() {
    let events = with_clocks(|id, _| (id == "m2").then(|| clock(&[("alice", 1)])));
    assert_only(&run(&events), &[C14], "alice/a1 in g1: m2 sent after m1");
}

#[test]
fn c14_readers_that_saw_two_clocks_for_one_message() {
    let events = with_clocks(|id, device| (id == "m3" && device == "b2").then(|| clock(&[("alice", 1), ("bob", 1)])));
    assert_only(&run(&events), &[C14], "m3 at g1 seq 4: bob/b2 saw clock");
}
