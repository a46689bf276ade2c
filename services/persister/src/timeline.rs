//! The timeline writer: per user, contiguous `user_seq`, idempotent under
//! replay because a user's deliveries from one conversation arrive in
//! `conv_seq` order and it keeps the last applied `conv_seq` of each.
//!
//! Should a delivery arrive past a message the user is owed and has not got
//! (its deliveries were lost, or come later: once this one is applied they
//! would be skipped as seen), the writer first takes the missing messages
//! from the store, which holds every message before a delivered one, so a
//! timeline never skips a message.

use crate::worker::{consume, unexpected, Handler, Input, Options};
use crate::{PersisterConfig, Ports};
use futures_util::future::join_all;
use seqline_core::failpoint;
use seqline_core::ids::{ConvSeq, ConversationId, UserId};
use seqline_core::model::{Message, MessageKind, TimelineEntry};
use seqline_core::ports::{Store, TimelineBatch, TimelineState};
use seqline_core::records::{Delivery, LogRecord, Topic, UserEvent};
use seqline_core::Result;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// Runs the timeline writer until `shutdown`.
pub async fn run(config: PersisterConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let handler = TimelineHandler {
        ports: ports.clone(),
        cache: HashMap::new(),
        cache_max: config.timeline_cache,
    };
    let options = Options::new(&config.timeline_group, Topic::Deliveries, config.batch_max);
    consume(ports.log.as_ref(), &options, shutdown, handler).await
}

/// Applies deliveries to a user's timeline state; returns the new entries.
/// Pure, so replays can be tested without a store.
pub fn apply(state: &mut TimelineState, deliveries: &[&Delivery]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for d in deliveries {
        let m = &d.message;
        let applied = state.applied.get(&m.conv).copied().unwrap_or_default();
        if m.conv_seq <= applied {
            continue;
        }
        state.head = state.head.next();
        state.applied.insert(m.conv.clone(), m.conv_seq);
        out.push(TimelineEntry {
            user_seq: state.head,
            message: m.clone(),
        });
    }
    out
}

struct TimelineHandler {
    ports: Ports,
    cache: HashMap<UserId, TimelineState>,
    cache_max: usize,
}

impl Handler for TimelineHandler {
    fn assigned(&mut self, _partitions: &[u32]) {
        self.cache.clear();
    }

    fn revoked(&mut self, _partitions: &[u32]) {
        self.cache.clear();
    }

    fn reset(&mut self) {
        self.cache.clear();
    }

    #[tracing::instrument(skip_all, fields(topic = "deliveries", partition = partition, records = batch.len()))]
    async fn handle(&mut self, partition: u32, batch: &[Input]) -> Result<()> {
        let mut order: Vec<(UserId, Vec<&Delivery>)> = Vec::new();
        let mut index: HashMap<&UserId, usize> = HashMap::new();
        let mut dead = Vec::new();
        for input in batch {
            match &input.record {
                LogRecord::Delivery(d) => {
                    let i = *index.entry(&d.user).or_insert_with(|| {
                        order.push((d.user.clone(), Vec::new()));
                        order.len() - 1
                    });
                    order[i].1.push(d);
                }
                _ => dead.push(unexpected(
                    &Topic::Deliveries,
                    partition,
                    input.offset,
                    "not a delivery",
                )),
            }
        }
        if self.cache.len() + order.len() > self.cache_max {
            self.cache.clear();
        }
        let store = &self.ports.store;
        let missing: Vec<&UserId> = order
            .iter()
            .map(|(u, _)| u)
            .filter(|u| !self.cache.contains_key(*u))
            .collect();
        let loaded = join_all(missing.iter().map(|u| store.load_timeline(u))).await;
        for (u, s) in missing.into_iter().zip(loaded) {
            self.cache.insert(u.clone(), s?);
        }
        let mut filled: HashMap<&UserId, Vec<Delivery>> = HashMap::new();
        for (user, ds) in &order {
            if let Some(state) = self.cache.get(user) {
                if let Some(with_gaps_filled) = fill_gaps(store.as_ref(), user, &state.applied, ds, partition).await? {
                    filled.insert(user, with_gaps_filled);
                }
            }
        }
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for (user, ds) in &order {
            let Some(state) = self.cache.get_mut(user) else {
                continue;
            };
            let expected = state.head;
            let entries = match filled.get(user) {
                Some(all) => apply(state, &all.iter().collect::<Vec<_>>()),
                None => apply(state, ds),
            };
            if entries.is_empty() {
                continue;
            }
            let mut applied: HashMap<_, _> = HashMap::new();
            for e in &entries {
                applied.insert(e.message.conv.clone(), e.message.conv_seq);
                events.push(LogRecord::UserEvent(UserEvent {
                    user: user.clone(),
                    entry: e.clone(),
                }));
            }
            writes.push(TimelineBatch {
                user: user.clone(),
                expected_head: expected,
                new_head: state.head,
                entries,
                applied: applied.into_iter().collect(),
            });
        }
        let users: Vec<UserId> = writes.iter().map(|w| w.user.clone()).collect();
        // Ordered, then one flush for the whole batch (one group commit on
        // the embedded engine) before the user events announce the entries.
        let results = join_all(writes.into_iter().map(|w| store.commit_timeline_ordered(w))).await;
        let mut failure = None;
        for (user, r) in users.iter().zip(results) {
            if let Err(e) = r {
                self.cache.remove(user);
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            self.cache.clear();
            return Err(e);
        }
        if !dead.is_empty() {
            self.ports.log.append(&Topic::DeadLetter, dead).await?;
        }
        store.flush().await?;
        failpoint::hit(failpoint::names::TIMELINE_AFTER_STORE).await;
        self.ports.log.append(&Topic::UserEvents, events).await
    }
}

/// Most messages one gap is filled with; a longer gap is logged and left.
const MAX_FILL: u64 = 4096;

/// `ds` with the messages `user` is owed but was not delivered inserted
/// before the delivery that skips them; `None` when nothing is missing.
async fn fill_gaps(
    store: &dyn Store,
    user: &UserId,
    applied: &HashMap<ConversationId, ConvSeq>,
    ds: &[&Delivery],
    partition: u32,
) -> Result<Option<Vec<Delivery>>> {
    let mut last: HashMap<&ConversationId, u64> = HashMap::new();
    let mut out: Option<Vec<Delivery>> = None;
    for (i, d) in ds.iter().enumerate() {
        let m = &d.message;
        let seen = *last
            .entry(&m.conv)
            .or_insert_with(|| applied.get(&m.conv).map_or(0, |s| s.0));
        last.insert(&m.conv, seen.max(m.conv_seq.0));
        // Before the first delivered message of a group, the user's
        // membership is not known here: a gap is only a gap after one. In
        // read mode (huge groups) members are owed only their own joins and
        // leaves, so a gap before a read-mode message is the norm.
        let gap = m.conv_seq.0 > seen + 1 && (seen > 0 || m.conv.is_direct()) && !m.read_diffusion;
        if gap {
            let missing = m.conv_seq.0 - seen - 1;
            if missing > MAX_FILL {
                tracing::warn!(
                    user = %user, conversation_id = %m.conv, applied = seen, conv_seq = m.conv_seq.0,
                    partition, "deliveries skip more messages than a gap is checked for; not filled"
                );
            } else {
                let from = ConvSeq(seen.saturating_sub(1));
                let span = (m.conv_seq.0 - 1 - from.0) as usize;
                let stored = store.messages_after(&m.conv, from, span).await?;
                let owed = owed(user, seen, &stored);
                if !owed.is_empty() {
                    tracing::warn!(
                        user = %user, conversation_id = %m.conv, applied = seen, conv_seq = m.conv_seq.0,
                        filled = owed.len(), partition,
                        "deliveries skipped messages the user is owed; filled them from the store"
                    );
                    let out = out.get_or_insert_with(|| ds[..i].iter().map(|d| (*d).clone()).collect());
                    out.extend(owed.into_iter().map(|message| Delivery {
                        user: user.clone(),
                        message,
                    }));
                }
            }
        }
        if let Some(out) = out.as_mut() {
            out.push((*d).clone());
        }
    }
    Ok(out)
}

/// Of `stored` (the conversation's messages from `seen`, the last one the
/// user got, or from the first when `seen` is 0), those after `seen` whose
/// delivery `user` is owed, as the sequencer would have addressed them:
/// every message while a member in write mode (its own `left` included),
/// and in read mode only the `joined`/`left` naming it.
pub fn owed(user: &UserId, seen: u64, stored: &[Message]) -> Vec<Message> {
    let names = |m: &Message| m.members.contains(user);
    let mut member = seen == 0;
    let mut read_before = false;
    let mut out = Vec::new();
    for m in stored {
        if m.conv_seq.0 == seen {
            member = !(m.kind == MessageKind::Left && names(m));
            read_before = m.read_diffusion;
            continue;
        }
        if m.conv_seq.0 < seen {
            continue;
        }
        let joined = matches!(m.kind, MessageKind::Joined | MessageKind::Created) && names(m);
        let left = m.kind == MessageKind::Left && names(m);
        if joined {
            member = true;
        }
        let to_user = if !read_before || !m.read_diffusion {
            member
        } else {
            joined || left
        };
        if to_user {
            out.push(crate::sequencer::copy_for(m, read_before, user));
        }
        if left {
            member = false;
        }
        read_before = m.read_diffusion;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, DeviceId};

    fn m(seq: u64, kind: MessageKind, members: &[&str], read: bool) -> Message {
        Message {
            conv: ConversationId::parse("g:room").unwrap_or_else(|e| panic!("{e}")),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("alice").unwrap_or_else(|e| panic!("{e}")),
            sender_device: DeviceId::parse("phone").unwrap_or_else(|e| panic!("{e}")),
            kind,
            body: String::new(),
            members: members
                .iter()
                .map(|u| UserId::parse(*u).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
            priority: false,
            server_ts_ms: 0,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: read,
        }
    }

    fn seqs(owed: &[Message]) -> Vec<u64> {
        owed.iter().map(|m| m.conv_seq.0).collect()
    }

    fn bob() -> UserId {
        UserId::parse("bob").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_member_is_owed_everything_until_it_leaves_and_again_from_its_return() {
        use MessageKind::*;
        let stored = [
            m(4, Text, &[], false),
            m(5, Text, &[], false),
            m(6, Left, &["bob", "carol"], false),
            m(7, Text, &[], false),
            m(8, Joined, &["bob"], false),
            m(9, Text, &[], false),
        ];
        assert_eq!(seqs(&owed(&bob(), 4, &stored)), [5, 6, 8, 9]);
        // Its own removal was the last it got: only the return.
        assert_eq!(seqs(&owed(&bob(), 6, &stored[2..])), [8, 9]);
        // Its last message not among those read: no membership assumed
        // until a join names it.
        assert_eq!(seqs(&owed(&bob(), 3, &stored)), [8, 9]);
    }

    #[test]
    fn a_direct_conversation_owes_every_message_from_the_first() {
        let stored = [m(1, MessageKind::Text, &[], false), m(2, MessageKind::Text, &[], false)];
        assert_eq!(seqs(&owed(&bob(), 0, &stored)), [1, 2]);
    }

    #[test]
    fn in_read_mode_only_the_joins_and_leaves_naming_the_user_are_owed() {
        use MessageKind::*;
        let stored = [
            m(10, Text, &[], false),
            m(11, Text, &[], true), // the switch: every member
            m(12, Text, &[], true),
            m(13, Joined, &["carol"], true),
            m(14, Left, &["bob", "carol"], true),
            m(15, Text, &[], true),
        ];
        let owed = owed(&bob(), 10, &stored);
        assert_eq!(seqs(&owed), [11, 14]);
        let names: Vec<&str> = owed[1].members.iter().map(|u| u.as_str()).collect();
        assert_eq!(names, ["bob"], "a read-mode leave names only its reader");
    }
}
