//! Random valid histories are clean; one random corruption of a final view
//! is always caught.

mod support;

use proptest::prelude::*;
use seqline_checker::{check, CheckId, Event, EventBody, FinalEntry};

#[derive(Clone, Copy, Debug)]
enum Mutation {
    /// Drop one chat entry (a membership message at the member's own
    /// boundary may legitimately be absent, so those are left alone).
    Drop,
    /// Repeat one entry right after itself.
    Duplicate,
    /// Swap two entries.
    Swap,
    /// Move one entry onto the seq of another entry of its conversation.
    Collide,
}

fn finals(events: &mut [Event]) -> Vec<&mut Vec<FinalEntry>> {
    events
        .iter_mut()
        .filter_map(|e| match &mut e.body {
            EventBody::Final { entries, .. } if entries.len() >= 2 => Some(entries),
            _ => None,
        })
        .collect()
}

/// Applies `m` to one final view chosen by `pick`; false if none fits.
fn mutate(events: &mut [Event], m: Mutation, pick: usize) -> bool {
    let mut views = finals(events);
    if views.is_empty() {
        return false;
    }
    let n = views.len();
    let entries = &mut *views[pick % n];
    let len = entries.len();
    let (i, j) = (pick % len, (pick / 7 + 1 + pick % len) % len);
    match m {
        Mutation::Drop => match (0..len).map(|k| (i + k) % len).find(|&k| !entries[k].system) {
            Some(k) => {
                entries.remove(k);
            }
            None => return false,
        },
        Mutation::Duplicate => {
            let e = entries[i].clone();
            entries.insert(i + 1, e);
        }
        Mutation::Swap if i != j => entries.swap(i, j),
        Mutation::Collide => {
            let conv = entries[i].conv.clone();
            let Some(k) = (0..len).find(|&k| k != i && entries[k].conv == conv) else {
                return false;
            };
            entries[i].conv_seq = entries[k].conv_seq;
        }
        Mutation::Swap => return false,
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_histories_are_clean(seed in any::<u64>(), users in 2usize..6, convs in 1usize..4, steps in 0usize..80) {
        let (events, opts) = support::generate(seed, users, convs, steps);
        let report = check(&events, &opts);
        prop_assert!(report.is_clean(), "seed {seed}:\n{report}");
        let acked = events.iter().filter(|e| matches!(e.body, EventBody::SendOk { .. })).count() as u64;
        prop_assert_eq!(report.totals.sends_ok, acked);
    }

    #[test]
    fn one_corruption_is_caught(
        seed in any::<u64>(),
        users in 2usize..5,
        convs in 1usize..3,
        steps in 5usize..60,
        m in prop_oneof![Just(Mutation::Drop), Just(Mutation::Duplicate), Just(Mutation::Swap), Just(Mutation::Collide)],
        pick in any::<usize>(),
    ) {
        let (mut events, opts) = support::generate(seed, users, convs, steps);
        prop_assume!(mutate(&mut events, m, pick));
        let report = check(&events, &opts);
        let caught: Vec<CheckId> = CheckId::ALL.into_iter().filter(|id| report.count(*id) > 0).collect();
        prop_assert!(!caught.is_empty(), "seed {seed}, {m:?} not caught:\n{report}");
    }
}
