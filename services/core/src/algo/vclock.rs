//! Vector clocks per conversation and participant, for ordering history
//! causally when an app asks for it. The live view is never reordered.

use crate::ids::UserId;
use crate::model::VectorClock;
use std::cmp::Ordering;

/// How two clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Equal clocks.
    Equal,
    /// The first happened before the second.
    Before,
    /// The first happened after the second.
    After,
    /// Neither saw the other.
    Concurrent,
}

/// Compares two clocks (missing entries count as 0).
pub fn compare(a: &VectorClock, b: &VectorClock) -> Causality {
    let mut less = false;
    let mut greater = false;
    for k in a.keys().chain(b.keys()) {
        let x = a.get(k).copied().unwrap_or(0);
        let y = b.get(k).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Less => less = true,
            Ordering::Greater => greater = true,
            Ordering::Equal => {}
        }
    }
    match (less, greater) {
        (false, false) => Causality::Equal,
        (true, false) => Causality::Before,
        (false, true) => Causality::After,
        (true, true) => Causality::Concurrent,
    }
}

/// Takes the entry-wise maximum of `into` and `other` into `into`.
pub fn merge(into: &mut VectorClock, other: &VectorClock) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
}

/// The clock for a new message by `author`: what it has seen, plus one.
pub fn tick(seen: &VectorClock, author: &UserId) -> VectorClock {
    let mut c = seen.clone();
    *c.entry(author.clone()).or_insert(0) += 1;
    c
}

/// Sorts `items` into a causal order: whenever one clock happened before
/// another, it comes first; concurrent items keep `tiebreak` order (the
/// server's conv_seq). A stable topological sort (Kahn's algorithm).
pub fn causal_sort<T>(items: Vec<T>, clock: impl Fn(&T) -> &VectorClock, tiebreak: impl Fn(&T) -> u64) -> Vec<T> {
    let n = items.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|i| tiebreak(&items[*i]));
    let mut indegree = vec![0usize; n];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (pi, &i) in idx.iter().enumerate() {
        for &j in &idx[pi + 1..] {
            match compare(clock(&items[i]), clock(&items[j])) {
                Causality::Before => {
                    after[i].push(j);
                    indegree[j] += 1;
                }
                Causality::After => {
                    after[j].push(i);
                    indegree[i] += 1;
                }
                _ => {}
            }
        }
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        // The first ready item in tiebreak order.
        let Some(&next) = idx.iter().find(|&&i| !done[i] && indegree[i] == 0) else {
            // Only reachable with inconsistent clocks; keep the rest as they are.
            order.extend(idx.iter().copied().filter(|&i| !done[i]));
            break;
        };
        done[next] = true;
        order.push(next);
        for &j in &after[next] {
            indegree[j] -= 1;
        }
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
