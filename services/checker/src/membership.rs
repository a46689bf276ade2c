//! Who was a member of which conversation at which conv_seq.
//!
//! A membership change is itself a message at some conv_seq `j`. A member
//! joined at `j` and left at `l` is *covered* for `j < s < l`: it must have
//! every message strictly between. The boundary positions themselves may or
//! may not be in its view (the joiner may or may not get its own join
//! message), so nothing is required or forbidden there.

use crate::fxhash::Map;
use crate::history::MemberOp;
use crate::index::Index;
use std::collections::BTreeSet;

/// Where a conv_seq falls for one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Strictly inside a membership span: the message is owed.
    Covered,
    /// At a join or leave: allowed either way.
    Boundary,
    /// Before the first join: history the member may page back to.
    BeforeJoin,
    /// After a leave and before any rejoin: the member must not have it.
    AfterLeave,
}

/// One member's spans `(lo, hi)`, exclusive, `hi = None` for still a member.
#[derive(Clone, Debug, Default)]
pub(crate) struct Coverage {
    spans: Vec<(u64, Option<u64>)>,
    boundaries: Vec<u64>,
}

impl Coverage {
    fn from_ops(initial: bool, ops: &[(u64, MemberOp)]) -> Self {
        let mut c = Coverage::default();
        let mut open = initial.then_some(0);
        for &(seq, op) in ops {
            c.boundaries.push(seq);
            match (op, open) {
                (MemberOp::Join, None) => open = Some(seq),
                (MemberOp::Leave, Some(lo)) => {
                    c.spans.push((lo, Some(seq)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(lo) = open {
            c.spans.push((lo, None));
        }
        c
    }

    /// Whether the member owes the message at `seq`.
    pub fn covers(&self, seq: u64) -> bool {
        self.place(seq) == Place::Covered
    }

    pub fn place(&self, seq: u64) -> Place {
        if self.boundaries.contains(&seq) {
            return Place::Boundary;
        }
        if self
            .spans
            .iter()
            .any(|&(lo, hi)| lo < seq && hi.is_none_or(|hi| seq < hi))
        {
            return Place::Covered;
        }
        match self.spans.first() {
            Some(&(lo, _)) if seq > lo => Place::AfterLeave,
            _ => Place::BeforeJoin,
        }
    }
}

/// Coverage of every known member of every conversation.
pub(crate) struct Membership<'a> {
    members: Map<&'a str, Vec<&'a str>>,
    coverage: Map<&'a str, Map<&'a str, Coverage>>,
    /// Conversations whose membership was inferred (no membership recorded).
    pub inferred: usize,
}

impl<'a> Membership<'a> {
    /// Members come from `member` events, from `initial` (members from
    /// conv_seq 0) and, for a conversation with neither, when `infer` is set,
    /// from the users who got an ack in it or hold a final view of it: a
    /// static membership from conv_seq 0.
    pub fn build(ix: &Index<'a>, initial: &'a std::collections::HashMap<String, Vec<String>>, infer: bool) -> Self {
        let mut users: Map<&str, BTreeSet<&str>> = Map::default();
        for &(conv, member) in ix.member_ops.keys() {
            users.entry(conv).or_default().insert(member);
        }
        for (conv, members) in initial {
            users
                .entry(conv)
                .or_default()
                .extend(members.iter().map(String::as_str));
        }
        let mut inferred_users: Map<&str, BTreeSet<&str>> = Map::default();
        if infer {
            for send in ix.sends.values() {
                if let Some(inv) = &send.invoke {
                    for &(conv, _) in &send.acks {
                        inferred_users.entry(conv).or_default().insert(inv.dev.0);
                    }
                }
            }
            for (&(user, _), views) in &ix.views {
                for &conv in views.keys() {
                    inferred_users.entry(conv).or_default().insert(user);
                }
            }
            inferred_users.retain(|conv, _| !users.contains_key(conv));
        }
        let inferred = inferred_users.len();
        let empty = Vec::new();
        let mut m = Membership {
            members: Map::default(),
            coverage: Map::default(),
            inferred,
        };
        for (conv, list) in users {
            let from_start: BTreeSet<&str> = initial.get(conv).into_iter().flatten().map(String::as_str).collect();
            for u in list {
                let ops = ix.member_ops.get(&(conv, u)).unwrap_or(&empty);
                m.add(conv, u, Coverage::from_ops(from_start.contains(u), ops));
            }
        }
        for (conv, list) in inferred_users {
            for u in list {
                m.add(conv, u, Coverage::from_ops(true, &[]));
            }
        }
        m
    }

    fn add(&mut self, conv: &'a str, user: &'a str, c: Coverage) {
        self.members.entry(conv).or_default().push(user);
        self.coverage.entry(conv).or_default().insert(user, c);
    }

    /// Known members of `conv`.
    pub fn of(&self, conv: &str) -> &[&'a str] {
        self.members.get(conv).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `user`'s coverage in `conv`, if it is a known member.
    pub fn coverage(&self, conv: &str, user: &str) -> Option<&Coverage> {
        self.coverage.get(conv).and_then(|m| m.get(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_exclusive_and_boundaries_free() {
        let c = Coverage::from_ops(false, &[(3, MemberOp::Join), (7, MemberOp::Leave), (9, MemberOp::Join)]);
        assert_eq!(c.place(2), Place::BeforeJoin);
        assert_eq!(c.place(3), Place::Boundary);
        assert!(c.covers(4) && c.covers(6));
        assert_eq!(c.place(7), Place::Boundary);
        assert_eq!(c.place(8), Place::AfterLeave);
        assert!(c.covers(10) && c.covers(1000));
        let initial = Coverage::from_ops(true, &[(5, MemberOp::Leave)]);
        assert!(initial.covers(1) && initial.covers(4));
        assert_eq!(initial.place(6), Place::AfterLeave);
    }
}
