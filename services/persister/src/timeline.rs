//! The timeline writer: per user, contiguous `user_seq`, idempotent under
//! replay because a user's deliveries from one conversation arrive in
//! `conv_seq` order and it keeps the last applied `conv_seq` of each.

use crate::worker::{consume, unexpected, Handler, Input};
use crate::{PersisterConfig, Ports};
use futures_util::future::join_all;
use seqline_core::failpoint;
use seqline_core::ids::{ConvSeq, ConversationId, UserId};
use seqline_core::model::TimelineEntry;
use seqline_core::ports::{TimelineBatch, TimelineState};
use seqline_core::records::{Delivery, LogRecord, Topic, UserEvent};
use seqline_core::{Error, Result};
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// Runs the timeline writer until `shutdown`.
pub async fn run(config: PersisterConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let handler = TimelineHandler {
        ports: ports.clone(),
        cache: HashMap::new(),
        cache_max: config.timeline_cache,
    };
    consume(
        ports.log.as_ref(),
        &config.timeline_group,
        Topic::Deliveries,
        config.batch_max,
        shutdown,
        handler,
    )
    .await
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
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for (user, ds) in &order {
            let Some(state) = self.cache.get_mut(user) else {
                continue;
            };
            let expected = state.head;
            // Both users of a direct conversation get every message: a
            // skipped conv_seq there means a delivery went missing.
            let mut last: HashMap<&ConversationId, u64> = HashMap::new();
            for d in ds.iter().filter(|d| d.message.conv.is_direct()) {
                let m = &d.message;
                let seen = last
                    .entry(&m.conv)
                    .or_insert_with(|| state.applied.get(&m.conv).map_or(0, |s| s.0));
                let applied = ConvSeq(std::mem::replace(seen, (*seen).max(m.conv_seq.0)));
                if applied.0 > 0 && m.conv_seq.0 > applied.0 + 1 {
                    tracing::error!(
                        user = %user, conversation_id = %m.conv, applied = applied.0, conv_seq = m.conv_seq.0,
                        partition, "a direct conversation's deliveries skip a message"
                    );
                }
            }
            let entries = apply(state, ds);
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
        let results = join_all(writes.into_iter().map(|w| store.commit_timeline(w))).await;
        let mut failure = None;
        for (user, r) in users.iter().zip(results) {
            if let Err(e) = r {
                self.cache.remove(user);
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            self.cache.clear();
            return Err(match e {
                Error::Fenced(m) => Error::Unavailable(format!("fenced: {m}")),
                other => other,
            });
        }
        if !dead.is_empty() {
            self.ports.log.append(&Topic::DeadLetter, dead).await?;
        }
        failpoint::hit(failpoint::names::TIMELINE_AFTER_STORE).await;
        self.ports.log.append(&Topic::UserEvents, events).await
    }
}
