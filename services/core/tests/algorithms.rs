//! Unit and property tests of the pure algorithms: insert-by-seq views, the
//! dedup window, vector clocks and the gateway's rectifier.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use seqline_core::algo::rectifier::Release;
use seqline_core::algo::vclock::{causal_sort, compare, merge, tick, Causality};
use seqline_core::algo::{DedupWindow, Rectifier, SeqView};
use seqline_core::ids::*;
use seqline_core::model::*;
use seqline_core::records::Package;
use std::time::{Duration, Instant};

fn entry(seq: u64) -> TimelineEntry {
    TimelineEntry {
        user_seq: UserSeq(seq),
        message: Message {
            read_diffusion: false,
            sender_name: String::new(),
            conv: ConversationId::parse("g:x").unwrap(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("a").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: String::new(),
            members: vec![],
            priority: false,
            server_ts_ms: 0,
            vclock: Default::default(),
        },
    }
}

fn package(id: u64, index: u32, count: u32, seqs: &[u64]) -> Package {
    Package {
        user: UserId::parse("a").unwrap(),
        device: DeviceId::parse("d").unwrap(),
        package_id: id,
        index,
        count,
        entries: seqs.iter().map(|s| entry(*s)).collect(),
    }
}

fn pushed(out: &[Release]) -> Vec<u64> {
    out.iter()
        .flat_map(|r| match r {
            Release::Push { entries, .. } => entries.iter().map(|e| e.user_seq.0).collect(),
            Release::Pull { .. } => vec![],
        })
        .collect()
}

#[test]
fn view_inserts_by_seq_and_reports_gaps() {
    let mut v = SeqView::starting_after(2);
    assert!(v.insert(5, "e"));
    assert!(v.insert(3, "c"));
    assert!(!v.insert(3, "c again"), "a repeat is dropped");
    assert!(!v.insert(2, "old"), "at or below the base is dropped");
    assert_eq!(v.contiguous_upto(), 3);
    assert_eq!(v.gaps(), vec![(4, 4)]);
    assert!(v.insert(4, "d"));
    assert_eq!(v.contiguous_upto(), 5);
    assert_eq!(
        v.iter().map(|(s, t)| (s, *t)).collect::<Vec<_>>(),
        vec![(3, "c"), (4, "d"), (5, "e")]
    );
}

proptest! {
    /// Whatever order and repetition pushes arrive in, the view is sorted,
    /// holds each seq once, and its gaps are exactly the missing numbers.
    #[test]
    fn view_is_sorted_and_complete(seqs in proptest::collection::vec(1u64..60, 0..200)) {
        let mut v = SeqView::default();
        for s in &seqs { v.insert(*s, *s); }
        let got: Vec<u64> = v.iter().map(|(s, _)| s).collect();
        let mut want = seqs.clone();
        want.sort();
        want.dedup();
        prop_assert_eq!(&got, &want);
        let max = want.last().copied().unwrap_or(0);
        let missing: Vec<u64> = (1..=max).filter(|s| !want.contains(s)).collect();
        let from_gaps: Vec<u64> = v.gaps().into_iter().flat_map(|(a, b)| a..=b).collect();
        prop_assert_eq!(from_gaps, missing.clone());
        prop_assert_eq!(v.contiguous_upto(), missing.first().map(|m| m - 1).unwrap_or(max));
    }

    /// The window remembers exactly the last `cap` distinct keys inserted.
    #[test]
    fn window_keeps_the_newest(keys in proptest::collection::vec(0u32..50, 0..300), cap in 1usize..20) {
        let mut w: DedupWindow<u32, u32> = DedupWindow::new(cap);
        let mut order: Vec<u32> = Vec::new();
        for k in &keys {
            w.insert(*k, *k);
            if !order.contains(k) { order.push(*k); }
            if order.len() > cap { order.remove(0); }
        }
        prop_assert_eq!(w.len(), order.len());
        for k in &order { prop_assert_eq!(w.get(k), Some(k)); }
        prop_assert_eq!(w.has_evicted(), keys.iter().collect::<std::collections::HashSet<_>>().len() > cap);
    }

    /// Fragments and packages in any order come out complete, in order, once.
    #[test]
    fn rectifier_releases_in_order(perm in Just((1u64..=12).collect::<Vec<_>>()).prop_shuffle()) {
        let start = Instant::now();
        let mut r = Rectifier::new(0, Duration::from_secs(60), 1000);
        let mut out = Vec::new();
        // Each pair of seqs is one package cut into two fragments.
        for s in perm {
            let id = s.div_ceil(2);
            let index = ((s + 1) % 2) as u32;
            out.extend(r.offer(package(id, index, 2, &[s]), start));
        }
        prop_assert_eq!(pushed(&out), (1..=12).collect::<Vec<_>>());
        prop_assert!(r.deadline().is_none());
    }
}

#[test]
fn rectifier_turns_an_outlived_gap_into_a_pull() {
    let t0 = Instant::now();
    let mut r = Rectifier::new(5, Duration::from_millis(500), 1000);
    assert_eq!(pushed(&r.offer(package(1, 0, 1, &[6, 7]), t0)), vec![6, 7]);
    // 8 is missing: 9 waits.
    assert!(r.offer(package(2, 0, 1, &[9]), t0).is_empty());
    assert!(
        r.poll(t0 + Duration::from_millis(499)).is_empty(),
        "not before the timeout"
    );
    assert_eq!(
        r.poll(t0 + Duration::from_millis(500)),
        vec![Release::Pull { after: 7 }]
    );
    // A sync up to 9 catches the device up; later pushes continue from there.
    assert!(r.synced(9, t0).is_empty());
    assert_eq!(pushed(&r.offer(package(3, 0, 1, &[9, 10]), t0)), vec![10]);
}

#[test]
fn rectifier_gives_up_when_too_much_is_held() {
    let t0 = Instant::now();
    let mut r = Rectifier::new(0, Duration::from_secs(60), 3);
    for s in 2..=4 {
        assert!(r.offer(package(s, 0, 1, &[s]), t0).is_empty());
    }
    assert_eq!(r.offer(package(9, 0, 1, &[5]), t0), vec![Release::Pull { after: 0 }]);
}

#[test]
fn vector_clocks_order_causally() {
    let a = UserId::parse("a").unwrap();
    let b = UserId::parse("b").unwrap();
    let m1 = tick(&Default::default(), &a); // a:1
    let m2 = tick(&m1, &b); // a:1 b:1, saw m1
    let c = UserId::parse("c").unwrap();
    let m3 = tick(&Default::default(), &c); // c:1, concurrent with m1 and m2
    assert_eq!(compare(&m1, &m2), Causality::Before);
    assert_eq!(compare(&m2, &m1), Causality::After);
    assert_eq!(compare(&m1, &m3), Causality::Concurrent);
    assert_eq!(compare(&m1, &m1), Causality::Equal);
    let mut seen = m1.clone();
    merge(&mut seen, &m3);
    assert_eq!(compare(&m1, &seen), Causality::Before);
    // The server's order put m2 before m1 (seq 1 and 2): causal order fixes it;
    // m3 is concurrent and keeps its place by seq.
    let items = vec![(1u64, m2.clone()), (2, m1.clone()), (3, m3.clone())];
    let sorted = causal_sort(items, |(_, c)| c, |(s, _)| *s);
    let order: Vec<u64> = sorted.iter().map(|(s, _)| *s).collect();
    assert_eq!(order, vec![2, 1, 3]);
}

#[test]
fn byte_budgets_keep_a_prefix_and_at_least_one_item() {
    use seqline_core::model::{fit_budget, fitting};
    let sizes = [40usize, 40, 40, 40];
    assert_eq!(fitting(&sizes, 100, |s| *s), 2);
    assert_eq!(fitting(&sizes, 1000, |s| *s), 4);
    assert_eq!(fitting(&sizes, 10, |s| *s), 1, "an oversized item still goes alone");
    assert_eq!(fitting::<usize>(&[], 10, |s| *s), 0);
    let mut v = sizes.to_vec();
    assert!(fit_budget(&mut v, 100, |s| *s));
    assert_eq!(v.len(), 2);
    let mut v = sizes.to_vec();
    assert!(!fit_budget(&mut v, 160, |s| *s), "exactly the budget is not a cut");
}
