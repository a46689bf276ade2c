//! C4, C7, C9: final views and live views.

use super::assert_only;
use super::builder::{base, run};
use crate::history::{Event, EventBody, FinalEntry, MemberOp, Scope};
use crate::report::CheckId::*;

fn final_of<'a>(events: &'a mut [Event], device: &str) -> &'a mut Vec<FinalEntry> {
    events
        .iter_mut()
        .find_map(|e| match &mut e.body {
            EventBody::Final { entries, .. } if e.device == device => Some(entries),
            _ => None,
        })
        .unwrap()
}

/// Gives `device` a conv-scope final of g1 (its view of g1 from now on):
/// its user-scope entries changed by `edit`. The user-scope final stays
/// intact, so C10 does not see the change.
fn conv_final(events: &mut Vec<Event>, device: &str, edit: impl FnOnce(&mut Vec<FinalEntry>)) {
    let mut entries = final_of(events, device).clone();
    edit(&mut entries);
    let user = if device == "a1" { "alice" } else { "bob" };
    let conv = Some("g1".to_string());
    events.push(Event::new(
        99_000,
        user,
        device,
        EventBody::Final {
            scope: Scope::Conv,
            conv,
            entries,
        },
    ));
}

#[test]
fn c4_acked_message_missing_from_a_final_view() {
    let mut events = base().finish();
    conv_final(&mut events, "b2", |f| f.retain(|f| f.client_msg_id != "m2"));
    let report = run(&events);
    assert_only(&report, &[C4, C7], "acked m2 at g1#3 missing from bob/b2");
    assert_eq!(report.count(C4), 1);
    assert!(report.witnesses(C7)[0].contains("missing 1 owed seq(s), first 3"));
}

#[test]
fn c4_device_without_a_final_view() {
    let mut events = base().finish();
    events.retain(|e| !(e.device == "b2" && matches!(e.body, EventBody::Final { .. })));
    let report = run(&events);
    assert_only(&report, &[C4], "bob/b2 recorded no final view");
    assert_eq!(report.count(C4), 1, "counted once per device");
}

#[test]
fn c4_and_c7_not_checked_without_finals() {
    let mut events = base().finish();
    events.retain(|e| !matches!(e.body, EventBody::Final { .. }));
    let report = run(&events);
    assert!(report.is_clean(), "{report}");
    assert!(report.notes.iter().any(|n| n.contains("C4 and C7 not checked")));
}

#[test]
fn c7_entries_out_of_order() {
    let mut events = base().finish();
    conv_final(&mut events, "a1", |f| f.swap(1, 2));
    assert_only(&run(&events), &[C7], "alice/a1 final view of g1: seq 2 after 3");
}

#[test]
fn c7_unacked_message_missing() {
    let mut events = base().finish();
    conv_final(&mut events, "a1", |f| f.retain(|f| f.client_msg_id != "m4"));
    assert_only(
        &run(&events),
        &[C7],
        "alice/a1 final view of g1: missing 1 owed seq(s), first 5",
    );
}

#[test]
fn c7_message_after_leaving() {
    let mut h = base();
    h.member(6, &["bob"], MemberOp::Leave);
    h.send("alice", "a1", "m6", "secret");
    h.ok("alice", "a1", "m6", 7);
    h.deliver(7, "m6", "secret");
    let report = run(&h.finish());
    assert_only(&report, &[C7], "bob/b1 final view of g1: holds seq 7 after leaving");
    assert_eq!(report.count(C7), 2, "both of bob's devices");
}

#[test]
fn c7_leave_and_rejoin_is_clean() {
    let mut h = base();
    h.member(6, &["bob"], MemberOp::Leave);
    let bob = h.users.remove(1);
    h.send("alice", "a1", "m6", "private");
    h.ok("alice", "a1", "m6", 7);
    h.deliver(7, "m6", "private");
    h.users.push(bob);
    h.member(8, &["bob"], MemberOp::Join);
    h.send("bob", "b1", "m7", "back");
    h.ok("bob", "b1", "m7", 9);
    h.deliver(9, "m7", "back");
    let report = run(&h.finish());
    assert!(report.is_clean(), "{report}");
}

#[test]
fn c9_a_hole_in_the_live_view() {
    let mut h = base();
    h.send("alice", "a1", "m6", "six");
    h.ok("alice", "a1", "m6", 6);
    h.deliver_but(6, "m6", "six", false, Some("b1"));
    h.send("alice", "a1", "m7", "seven");
    h.ok("alice", "a1", "m7", 7);
    h.deliver(7, "m7", "seven");
    assert_only(
        &run(&h.finish()),
        &[C9],
        "bob/b1 live view of g1: 1 hole(s) below seq 7, first 6",
    );
}

#[test]
fn c9_repeated_and_reordered_pushes_are_fine() {
    let mut events = base().finish();
    let pushes: Vec<Event> = events
        .iter()
        .filter(|e| e.device == "a1" && matches!(e.body, EventBody::Recv { .. }))
        .cloned()
        .collect();
    events.extend(pushes.into_iter().rev());
    assert!(run(&events).is_clean());
}
