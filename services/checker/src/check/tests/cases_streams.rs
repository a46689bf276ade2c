//! C8, C10, L1 and the report.

use super::assert_only;
use super::builder::{base, run};
use crate::check::{check, CheckOptions};
use crate::history::{EventBody, Scope};
use crate::report::CheckId::*;

#[test]
fn c8_pull_with_a_gap() {
    let mut h = base();
    h.pull("alice", "a1", 1, vec![2, 4]);
    assert_only(
        &run(&h.finish()),
        &[C8],
        "alice/a1 pull User from 1 returned [2, 4]: expected 3",
    );
}

#[test]
fn c8_pull_with_a_repeat() {
    let mut h = base();
    h.pull("alice", "a1", 1, vec![2, 2]);
    assert_only(&run(&h.finish()), &[C8], "expected 3 at index 1");
}

#[test]
fn c8_cursor_moved_back() {
    let mut h = base();
    h.pull("alice", "a1", 3, vec![4, 5]);
    h.pull("alice", "a1", 2, vec![3, 4, 5]);
    assert_only(&run(&h.finish()), &[C8], "cursor moved back from 3 to 2");
}

#[test]
fn c8_cursor_may_move_back_after_a_reset_or_to_zero() {
    let mut h = base();
    h.pull("alice", "a1", 3, vec![4, 5]);
    h.ev("alice", "a1", EventBody::Reset { from: 3, head: 5 });
    h.pull("alice", "a1", 1, vec![2, 3, 4, 5]);
    h.pull("alice", "a1", 0, vec![1, 2]);
    h.ev(
        "alice",
        "a1",
        EventBody::Pull {
            scope: Scope::Conv,
            conv: Some("g1".into()),
            from: 0,
            returned: vec![1],
        },
    );
    assert!(run(&h.finish()).is_clean());
}

#[test]
fn c10_one_user_seq_for_two_messages() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Final { entries, .. } = &mut e.body {
            if e.device == "a1" {
                entries[2].user_seq = Some(2);
            }
        }
    }
    assert_only(&run(&events), &[C10], "alice: user_seq 2 is both g1#2 and g1#3");
}

#[test]
fn c10_a_missing_user_seq() {
    let mut events = base().finish();
    for e in &mut events {
        match &mut e.body {
            EventBody::Recv { user_seq: Some(u), .. } if e.user == "alice" && *u >= 3 => *u += 1,
            EventBody::Final { entries, .. } if e.user == "alice" => {
                entries
                    .iter_mut()
                    .filter_map(|f| f.user_seq.as_mut())
                    .filter(|u| **u >= 3)
                    .for_each(|u| *u += 1);
            }
            _ => {}
        }
    }
    assert_only(&run(&events), &[C10], "alice: 1 user_seq(s) missing from 1..6, first 3");
}

#[test]
fn c10_user_seq_against_conv_seq() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Recv { user_seq: Some(u), .. } = &mut e.body {
            if e.user == "bob" && (*u == 2 || *u == 3) {
                *u = 5 - *u;
            }
        }
        if let EventBody::Final { entries, .. } = &mut e.body {
            if e.user == "bob" {
                entries.swap(1, 2);
                entries
                    .iter_mut()
                    .for_each(|f| f.user_seq = f.user_seq.map(|u| if u == 2 || u == 3 { 5 - u } else { u }));
                entries.swap(1, 2);
            }
        }
    }
    let report = run(&events);
    assert_only(&report, &[C10], "bob in g1: seq 2 has user_seq 3 but later seq 3 has 2");
}

#[test]
fn l1_a_device_never_converged() {
    let mut events = base().finish();
    events.retain(|e| !(e.device == "b1" && matches!(e.body, EventBody::Converged {})));
    assert_only(&run(&events), &[L1], "bob/b1 never converged");
}

#[test]
fn l1_a_device_converged_too_late() {
    let events = base().finish();
    let opts = CheckOptions {
        convergence_bound_micros: 5_500,
        ..CheckOptions::default()
    };
    let report = check(&events, &opts);
    assert_only(&report, &[L1], "bob/b2 converged");
    assert_eq!(report.count(L1), 1, "{report}");
}

#[test]
fn l1_not_checked_without_a_heal() {
    let mut events = base().finish();
    events.retain(|e| !matches!(e.body, EventBody::Heal {} | EventBody::Converged {}));
    let report = run(&events);
    assert!(report.is_clean());
    assert!(report.notes.iter().any(|n| n.contains("L1 not checked")));
}

#[test]
fn report_prints_a_table_and_witnesses() {
    let mut h = base();
    h.pull("alice", "a1", 1, vec![3]);
    let text = run(&h.finish()).to_string();
    assert!(text.contains("C8    pulls return"), "{text}");
    assert!(text.contains("  C8: alice/a1 pull User from 1 returned [3]"), "{text}");
    assert!(text.ends_with("ANOMALIES FOUND"));
    let json = serde_json::to_string(&run(&base().finish())).unwrap();
    assert!(json.contains(r#""counts":{"C1":0"#), "{json}");
}

#[test]
fn c10_user_scope_final_out_of_timeline_order() {
    let mut events = base().finish();
    for e in &mut events {
        if let EventBody::Final { entries, .. } = &mut e.body {
            if e.device == "a1" {
                entries.swap(0, 4);
            }
        }
    }
    // The conversation's own order breaks too (one conversation here).
    assert_only(&run(&events), &[C7, C10], "");
    let report = run(&events);
    assert!(
        report.witnesses(C10)[0].contains("alice/a1 user-scope final view: user_seq 1 missing (next is 5)"),
        "{report}"
    );
}

#[test]
fn c10_user_scope_final_lacks_an_entry() {
    let mut events = base().finish();
    let conv = Some("g1".to_string());
    let mut entries = None;
    for e in &mut events {
        if let EventBody::Final { entries: all, .. } = &mut e.body {
            if e.device == "b1" {
                entries = Some(all.clone());
                all.pop();
            }
        }
    }
    // A conv-scope final is the device's view of g1, so only C10 sees the hole.
    let entries = entries.unwrap();
    events.push(crate::history::Event::new(
        99_000,
        "bob",
        "b1",
        EventBody::Final {
            scope: Scope::Conv,
            conv,
            entries,
        },
    ));
    assert_only(
        &run(&events),
        &[C10],
        "bob/b1 user-scope final view: ends at user_seq 4 of 5",
    );
}
