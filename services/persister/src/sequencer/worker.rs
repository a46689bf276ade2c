//! The sequencer's batch handler: load, apply, store, then emit.

use super::state::{apply, Applied, ConvState, Limits};
use super::{diffusion, replay};
use crate::worker::{unexpected, Handler, Input};
use crate::{PersisterConfig, Ports};
use futures_util::future::join_all;
use seqline_core::failpoint;
use seqline_core::ids::{ConvSeq, ConversationId};
use seqline_core::model::{now_ms, Outcome};
use seqline_core::ports::{ConversationBatch, ConversationState, Store};
use seqline_core::records::{Command, ConvEvent, Delivery, GatewayRecord, LogRecord, Receipt, Topic};
use seqline_core::{Error, GatewayId, Result};
use seqline_telemetry::emit;
use seqline_telemetry::events::{CommandDeduplicated, FenceRefused, MessagesCommitted, ReceiptEmitted};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A send moves its device's sender-order chain (the state machine did the
/// same in memory); HTTP commands do not.
fn sender_chain(w: &mut ConversationBatch, cmd: &Command) {
    if let Command::Send(c) = cmd {
        w.device_last
            .push(((c.origin.user.clone(), c.origin.device.clone()), c.client_msg_id));
    }
}

/// A delivery to send, or a stored message whose deliveries are read back.
enum Pending {
    Ready(LogRecord),
    Replay(ConversationId, ConvSeq, ConvSeq),
}

pub(crate) struct SequencerHandler {
    ports: Ports,
    limits: Limits,
    batch_max: u64,
    cache: HashMap<ConversationId, Option<ConvState>>,
    cache_max: usize,
}

impl SequencerHandler {
    pub(crate) fn new(config: &PersisterConfig, ports: Ports) -> Self {
        Self {
            ports,
            limits: Limits {
                max_group_members: config.max_group_members,
                max_body_bytes: config.max_body_bytes,
                dedup_window: config.dedup_window,
                read_diffusion_threshold: config.read_diffusion_threshold,
            },
            batch_max: config.batch_max as u64,
            cache: HashMap::new(),
            cache_max: config.conversation_cache,
        }
    }

    /// Makes sure every conversation of the batch has its state loaded and
    /// the stored outcome of every command not in the window.
    async fn prepare(&mut self, convs: &[(ConversationId, Vec<&Command>)]) -> Result<()> {
        if self.cache.len() + convs.len() > self.cache_max {
            self.cache.clear();
        }
        let store = &self.ports.store;
        let missing: Vec<&ConversationId> = convs
            .iter()
            .map(|(c, _)| c)
            .filter(|c| !self.cache.contains_key(*c))
            .collect();
        let loaded = join_all(missing.iter().map(|c| load(store.as_ref(), c))).await;
        for (c, s) in missing.into_iter().zip(loaded) {
            let s = s?.map(|(s, read)| ConvState::from_stored(s, self.limits.dedup_window, read));
            self.cache.insert(c.clone(), s);
        }
        let mut lookups = Vec::new();
        for (conv, cmds) in convs {
            if let Some(Some(s)) = self
                .cache
                .get(conv)
                .filter(|s| !s.as_ref().is_some_and(ConvState::window_is_complete))
            {
                for id in cmds.iter().flat_map(|c| c.client_msg_ids()) {
                    if s.window.get(&id).is_none() {
                        lookups.push((conv.clone(), id));
                    }
                }
            }
        }
        let found = if lookups.is_empty() {
            Vec::new()
        } else {
            store.dedup_many(&lookups).await?
        };
        for ((conv, id), outcome) in lookups.into_iter().zip(found) {
            if let (Some(o), Some(Some(s))) = (outcome, self.cache.get_mut(&conv)) {
                s.window.insert(id, o);
            }
        }
        Ok(())
    }

    /// Publishes a stored batch's outputs: the deliveries (replays read
    /// back from the store), conversation events, dead letters and receipts.
    async fn publish(
        &self,
        deliveries: Vec<Pending>,
        dead: Vec<LogRecord>,
        receipts: HashMap<GatewayId, Vec<LogRecord>>,
    ) -> Result<()> {
        let mut ready = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            match d {
                Pending::Ready(r) => ready.push(r),
                Pending::Replay(conv, seq, head) => {
                    // Members are read as stored after this whole batch, so
                    // undo every join and leave up to the batch's final head.
                    let last = self.cache.get(&conv).and_then(Option::as_ref).map_or(head, |s| s.head);
                    ready.extend(replay::deliveries(self.ports.store.as_ref(), &conv, seq, last).await?)
                }
            }
        }
        let (events, deliveries): (Vec<LogRecord>, Vec<LogRecord>) =
            ready.into_iter().partition(|r| matches!(r, LogRecord::ConvEvent(_)));
        let (priority, events) = priority_lane(events);
        failpoint::hit(failpoint::names::SEQUENCER_AFTER_STORE).await;
        let log = &self.ports.log;
        let (topics, batches): (Vec<Topic>, Vec<Vec<LogRecord>>) =
            receipts.into_iter().map(|(g, r)| (Topic::Gateway(g), r)).unzip();
        // The store writes were only ordered (see `handle`). The durable
        // appends and the store's flush go together: on the embedded engine
        // they share one group commit, and the flush is free when the
        // appends' fsync already covered the store writes. Receipts and
        // conversation events announce stored messages, so they leave only
        // once the flush says those are durable (on the embedded log they
        // are appended without an fsync of their own).
        let mut durable = vec![log.append(&Topic::Deliveries, deliveries)];
        if !dead.is_empty() {
            durable.push(log.append(&Topic::DeadLetter, dead));
        }
        let announce = async {
            self.ports.store.flush().await?;
            let mut appends = Vec::new();
            if !events.is_empty() {
                appends.push(log.append(&Topic::ConvEvents, events));
            }
            if !priority.is_empty() {
                appends.push(log.append(&Topic::PriorityEvents, priority));
            }
            for (topic, records) in topics.iter().zip(batches) {
                appends.push(log.append(topic, records));
            }
            join_all(appends).await.into_iter().collect::<Result<Vec<()>>>()
        };
        let (durable, announced) = futures_util::future::join(join_all(durable), announce).await;
        for r in durable {
            r?;
        }
        announced?;
        Ok(())
    }
}

/// Splits conversation events into the priority lane's and the ordinary
/// ones, each in the order given: a priority message must not wait behind
/// a backlog of ordinary events on its way to the devices.
fn priority_lane(events: Vec<LogRecord>) -> (Vec<LogRecord>, Vec<LogRecord>) {
    events.into_iter().partition(|r| match r {
        LogRecord::ConvEvent(e) => Topic::for_conv_event(&e.message) == Topic::PriorityEvents,
        _ => false,
    })
}

/// A `sent_ms` further ahead of this clock is not the gateway's stamp.
const MAX_SENT_AHEAD_MS: u64 = 60_000;
/// Nor is one older than this (the log's retention is shorter).
const MAX_SENT_AGE_MS: u64 = 30 * 24 * 3600 * 1000;

/// Whether a command's `sent_ms` (stamped by the gateway, but read from the
/// log, where anything may have written it) can be measured against: a
/// timestamp far off would put years, or nothing, into the ack latency.
/// Only the measurement depends on it; `server_ts_ms` is always this clock.
fn plausible_sent_ms(sent_ms: u64, now_ms: u64) -> bool {
    sent_ms <= now_ms.saturating_add(MAX_SENT_AHEAD_MS) && now_ms.saturating_sub(sent_ms) <= MAX_SENT_AGE_MS
}

/// A conversation's stored state and its mode (the head message's flag).
async fn load(store: &dyn Store, conv: &ConversationId) -> Result<Option<(ConversationState, bool)>> {
    let Some(state) = store.load_conversation(conv).await? else {
        return Ok(None);
    };
    let read = if state.head.0 == 0 {
        false
    } else {
        let last = store.messages_before(conv, ConvSeq(state.head.0 + 1), 1).await?;
        last.first().is_some_and(|m| m.read_diffusion)
    };
    Ok(Some((state, read)))
}

fn group_by_conv(partition: u32, batch: &[Input]) -> (Vec<(ConversationId, Vec<&Command>)>, Vec<LogRecord>) {
    let mut order: Vec<(ConversationId, Vec<&Command>)> = Vec::new();
    let mut index: HashMap<&ConversationId, usize> = HashMap::new();
    let mut dead = Vec::new();
    for input in batch {
        match &input.record {
            LogRecord::Command(c) => {
                let i = *index.entry(c.conv()).or_insert_with(|| {
                    order.push((c.conv().clone(), Vec::new()));
                    order.len() - 1
                });
                order[i].1.push(c);
            }
            other => dead.push(unexpected(
                &Topic::Inbound,
                partition,
                input.offset,
                &format!("{other:?}").chars().take(80).collect::<String>(),
            )),
        }
    }
    (order, dead)
}

impl Handler for SequencerHandler {
    fn assigned(&mut self, _partitions: &[u32]) {
        self.cache.clear();
    }

    fn revoked(&mut self, _partitions: &[u32]) {
        self.cache.clear();
    }

    fn reset(&mut self) {
        self.cache.clear();
    }

    #[tracing::instrument(skip_all, fields(topic = "inbound", partition = partition, records = batch.len()))]
    async fn handle(&mut self, partition: u32, batch: &[Input]) -> Result<()> {
        let (convs, dead) = group_by_conv(partition, batch);
        if let Err(e) = self.prepare(&convs).await {
            self.cache.clear();
            return Err(e);
        }
        let now = now_ms();
        let mut writes: Vec<ConversationBatch> = Vec::new();
        // Deliveries in conv_seq order per conversation: a replayed message
        // must reach each timeline before any later message of its
        // conversation, even when its resend comes after a new command.
        let mut deliveries: Vec<Pending> = Vec::new();
        let mut receipts: HashMap<GatewayId, Vec<LogRecord>> = HashMap::new();
        // Counted once the outputs are durable: a failed batch is retried.
        let mut duplicates: Vec<bool> = Vec::new();
        let mut accepted_ms: Vec<u64> = Vec::new();
        for (conv, cmds) in &convs {
            let Some(state) = self.cache.get_mut(conv) else {
                continue;
            };
            let expected = state.as_ref().map(|s| s.head).unwrap_or_default();
            let mut w = ConversationBatch {
                conv: conv.clone(),
                expected_head: expected,
                new_head: expected,
                create: None,
                messages: Vec::new(),
                members: Vec::new(),
                dedup: Vec::new(),
                device_last: Vec::new(),
            };
            let existed = state.is_some();
            // Replays are of messages stored before this batch, so they go
            // before every message this batch sequences.
            let mut replays: Vec<(ConvSeq, ConvSeq)> = Vec::new();
            let first_fresh = deliveries.len();
            // A batch's commands are handled one by one once the state
            // machine applied the batch as a whole.
            let mut steps: VecDeque<(Cow<'_, Command>, Applied)> = VecDeque::new();
            let mut next = cmds.iter();
            loop {
                let (cmd, applied) = match steps.pop_front() {
                    Some(step) => step,
                    None => {
                        let Some(cmd) = next.next() else { break };
                        match apply(state, (*cmd).clone(), now, &self.limits) {
                            Applied::Batch(items) => {
                                if let Command::Batch(b) = cmd {
                                    let each = b.commands.iter().map(|i| Cow::Owned(i.to_command()));
                                    steps.extend(each.zip(items));
                                }
                                continue;
                            }
                            applied => (Cow::Borrowed(*cmd), applied),
                        }
                    }
                };
                let cmd: &Command = &cmd;
                let outcome = match applied {
                    Applied::Duplicate(o) => {
                        duplicates.push(matches!(cmd, Command::Send(_)));
                        if let (Outcome::Sequenced { conv_seq }, Some(s)) = (&o, state.as_ref()) {
                            if !s.may_lack_deliveries(*conv_seq) {
                                // Sequenced by this owner: its deliveries left.
                            } else if s.head.0.saturating_sub(conv_seq.0) <= self.batch_max {
                                tracing::debug!(conversation_id = %conv, conv_seq = conv_seq.0, head = s.head.0, "replaying the deliveries of a duplicate");
                                replays.push((*conv_seq, s.head));
                            } else {
                                tracing::debug!(conversation_id = %conv, conv_seq = conv_seq.0, head = s.head.0, "duplicate too old to replay");
                            }
                        }
                        o
                    }
                    Applied::Refused { outcome, remember } => {
                        if remember {
                            w.dedup.push((cmd.client_msg_id(), outcome.clone()));
                            sender_chain(&mut w, cmd);
                        }
                        outcome
                    }
                    // Split into its commands before this match.
                    Applied::Batch(_) => continue,
                    Applied::Sequenced {
                        outcome,
                        read_before,
                        messages,
                        changes,
                        removed,
                    } => {
                        let Some(s) = state.as_ref() else { continue };
                        if !existed && w.create.is_none() {
                            w.create = Some(s.meta.clone());
                        }
                        let mut before = read_before;
                        for m in &messages {
                            let members = || s.members.keys().chain(removed.iter());
                            for user in diffusion::recipients(m, before, members) {
                                deliveries.push(Pending::Ready(LogRecord::Delivery(Delivery {
                                    user: user.clone(),
                                    message: diffusion::copy_for(m, before, user),
                                })));
                            }
                            if diffusion::is_conv_event(m, before) {
                                deliveries.push(Pending::Ready(LogRecord::ConvEvent(ConvEvent { message: m.clone() })));
                            }
                            before = m.read_diffusion;
                        }
                        w.messages.extend(messages);
                        w.members.extend(changes);
                        w.dedup.push((cmd.client_msg_id(), outcome.clone()));
                        sender_chain(&mut w, cmd);
                        outcome
                    }
                };
                if let Command::Send(send) = cmd {
                    if plausible_sent_ms(send.sent_ms, now) {
                        accepted_ms.push(send.sent_ms);
                    }
                }
                let o = cmd.origin();
                receipts
                    .entry(o.gateway.clone())
                    .or_default()
                    .push(LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
                        origin: o.clone(),
                        conv: conv.clone(),
                        client_msg_id: cmd.client_msg_id(),
                        outcome,
                    })));
            }
            replays.sort();
            replays.dedup_by_key(|(seq, _)| *seq);
            deliveries.splice(
                first_fresh..first_fresh,
                replays
                    .into_iter()
                    .map(|(seq, head)| Pending::Replay(conv.clone(), seq, head)),
            );
            w.new_head = state.as_ref().map(|s| s.head).unwrap_or_default();
            if !w.dedup.is_empty() || w.create.is_some() {
                writes.push(w);
            }
        }
        let touched: Vec<ConversationId> = writes.iter().map(|w| w.conv.clone()).collect();
        let committed: usize = writes.iter().map(|w| w.messages.len()).sum();
        let store = Arc::clone(&self.ports.store);
        failpoint::hit(failpoint::names::SEQUENCER_BEFORE_STORE).await;
        // Ordered, not yet durable: `publish` makes them durable together
        // with the batch's outputs, one group commit for the whole stage on
        // the embedded engine. A crash before it loses the stage as a
        // whole or leaves the store writes without their outputs (the
        // journal keeps order); the redone batch then finds its commands
        // stored and replays their deliveries, as for any duplicate.
        let results = join_all(writes.into_iter().map(|w| store.commit_conversation_ordered(w))).await;
        let mut failure = None;
        for (conv, r) in touched.iter().zip(results) {
            if let Err(e) = r {
                // The cached state ran ahead of the store: reload it next time.
                self.cache.remove(conv);
                if matches!(e, Error::Fenced(_)) {
                    emit(FenceRefused);
                    tracing::warn!(conversation_id = %conv, "fenced: another sequencer owns this conversation");
                }
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            // Everything stored is now a dedup hit: the retry re-emits it.
            self.cache.clear();
            return Err(e);
        }
        let published = self.publish(deliveries, dead, receipts).await;
        if published.is_err() {
            // This batch's deliveries may not all have left, yet its
            // messages are in the cached state: forget it, so the retry
            // loads the state again and replays them (see `loaded_head`).
            self.cache.clear();
        }
        published?;
        emit(MessagesCommitted {
            count: committed as u64,
        });
        for resend in duplicates {
            emit(CommandDeduplicated { resend });
        }
        let now_ms = now_ms();
        for accepted_ms in accepted_ms {
            emit(ReceiptEmitted { accepted_ms, now_ms });
        }
        Ok(())
    }
}
