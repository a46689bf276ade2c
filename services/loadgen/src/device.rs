//! The two tasks of each device: one records every SDK event into the
//! history, the other sends the device's quota (closed or open loop).

use crate::stats::{Counters, Stats};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use seqline_checker::{body_hash, EventBody, MemberOp, Scope, Via};
use seqline_client::{Client, Event, EventStream, SendHandle, SendOptions, SendState};
use seqline_core::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use seqline_core::model::{Message, MessageKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Per conversation, the highest conv_seq a device received and whether
/// the last membership change it received about its own user removed it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen(Arc<Mutex<HashMap<ConversationId, (u64, bool)>>>);

impl Seen {
    fn saw(&self, user: &UserId, m: &Message) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(m.conv.clone()).or_insert((0, false));
        // Later numbers only: a late replay must not undo a newer change.
        if m.conv_seq.0 > e.0 && m.members.contains(user) {
            match m.kind {
                MessageKind::Left => e.1 = true,
                MessageKind::Joined | MessageKind::Created => e.1 = false,
                MessageKind::Text => {}
            }
        }
        e.0 = e.0.max(m.conv_seq.0);
    }

    /// Whether the device received at least up to `conv_seq` of `conv`, or
    /// its user is out of `conv` and it received that removal (nothing
    /// after it is owed to the device).
    pub fn reached(&self, conv: &ConversationId, conv_seq: u64) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(conv).is_some_and(|(seen, out)| *out || *seen >= conv_seq) || conv_seq == 0
    }
}

/// Records the events of one device until its stream ends (the client closed).
/// What a recorder records besides every delivery.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recording {
    /// Record send-to-receipt latency of other devices' messages.
    pub measure_e2e: bool,
    /// Record membership events only about the device's own user (huge
    /// groups: a join of a thousand users would be a thousand events on
    /// every device).
    pub own_membership_only: bool,
}

/// Records the events of one device until its stream ends (the client closed).
pub(crate) fn spawn_recorder(
    stats: Arc<Stats>,
    user: UserId,
    device: DeviceId,
    mut events: EventStream,
    rec: Recording,
) -> (JoinHandle<()>, Seen) {
    let seen = Seen::default();
    let mine = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match &ev {
                Event::Message { entry, .. } => mine.saw(&user, &entry.message),
                Event::ConvMessage { message, .. } => mine.saw(&user, message),
                _ => {}
            }
            on_event(&stats, &user, &device, ev, rec);
        }
    });
    (task, seen)
}

/// Records one delivered message (by timeline when `user_seq` is known,
/// else pulled by conversation cursor).
fn on_message(
    stats: &Stats,
    user: &UserId,
    device: &DeviceId,
    m: &Message,
    user_seq: Option<u64>,
    via: Via,
    rec: Recording,
) {
    let c = &stats.counters;
    let (u, d) = (user.as_str(), device.as_str());
    let system = m.kind != MessageKind::Text;
    Counters::add(if via == Via::Push { &c.pushed } else { &c.pulled }, 1);
    let body = EventBody::Recv {
        conv: m.conv.to_string(),
        conv_seq: m.conv_seq.0,
        client_msg_id: m.client_msg_id.to_string(),
        user_seq,
        via,
        body_hash: body_hash(&m.body),
        sender: m.sender.to_string(),
        system,
        read_diffusion: m.read_diffusion,
        vclock: m.vclock.iter().map(|(u, n)| (u.to_string(), *n)).collect(),
    };
    stats.record(u, d, body);
    let change = match m.kind {
        MessageKind::Joined => Some(MemberOp::Join),
        MessageKind::Left => Some(MemberOp::Leave),
        _ => None,
    };
    let about = m.members.iter().filter(|mb| !rec.own_membership_only || *mb == user);
    for (member, change) in change.iter().flat_map(|ch| about.clone().map(move |mb| (mb, *ch))) {
        let body = EventBody::Member {
            conv: m.conv.to_string(),
            member: member.to_string(),
            change,
            conv_seq: m.conv_seq.0,
        };
        stats.record(u, d, body);
    }
    let other_device = m.sender != *user || m.sender_device != *device;
    if rec.measure_e2e && !system && other_device {
        if let Some(t0) = stats.sent_time(&m.client_msg_id) {
            stats.e2e_latency.record(t0.elapsed());
        }
    }
}

fn on_event(stats: &Stats, user: &UserId, device: &DeviceId, ev: Event, rec: Recording) {
    let c = &stats.counters;
    let (u, d) = (user.as_str(), device.as_str());
    match ev {
        Event::Message { entry, via } => {
            let via = match via {
                seqline_client::Via::Push => Via::Push,
                seqline_client::Via::Pull => Via::Pull,
            };
            on_message(stats, user, device, &entry.message, Some(entry.user_seq.0), via, rec);
        }
        Event::ConvMessage { message, .. } => on_message(stats, user, device, &message, None, Via::Pull, rec),
        Event::ConvPulled { conv, from, returned } => {
            stats.record(
                u,
                d,
                EventBody::Pull {
                    scope: Scope::Conv,
                    conv: Some(conv.to_string()),
                    from,
                    returned,
                },
            );
        }
        Event::Priority(m) => {
            Counters::add(&c.priority_pushes, 1);
            if let Some(t0) = stats.sent_time(&m.client_msg_id) {
                stats.priority_latency.record(t0.elapsed());
            }
        }
        Event::ReadMark { .. } => {}
        Event::Pulled { from, returned } => {
            stats.record(
                u,
                d,
                EventBody::Pull {
                    scope: Scope::User,
                    conv: None,
                    from,
                    returned,
                },
            );
        }
        Event::Reset { from, head, .. } => {
            Counters::add(&c.resets, 1);
            stats.record(u, d, EventBody::Reset { from, head });
        }
        Event::Connected { .. } => Counters::add(&c.connects, 1),
        Event::Disconnected { .. } => Counters::add(&c.disconnects, 1),
        Event::Acked { .. } | Event::Failed { .. } => {}
    }
}

/// How a device paces its sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// At most `window` unacknowledged.
    Window(usize),
    /// Message `k` is due at `first + k * period`.
    Schedule { first: Instant, period: Duration },
}

/// One device's sending.
pub(crate) struct Sender {
    pub stats: Arc<Stats>,
    pub client: Client,
    pub user: UserId,
    pub device: DeviceId,
    pub convs: Vec<ConversationId>,
    pub quota: u64,
    pub rng: StdRng,
    pub pace: Pace,
    /// No send starts after this.
    pub deadline: Instant,
    /// Nor once this is set.
    pub stop: Option<Arc<AtomicBool>>,
    /// Tag in every body, so bodies are unique across runs.
    pub tag: String,
    /// Send with high priority (a group admin's announcements).
    pub priority: bool,
}

struct Done {
    state: SendState,
    id: ClientMsgId,
    conv: ConversationId,
    t0: Instant,
}

async fn wait(handle: SendHandle, t0: Instant) -> Done {
    let state = handle.outcome().await;
    Done {
        state,
        id: handle.id(),
        conv: handle.conv().clone(),
        t0,
    }
}

impl Sender {
    /// Sends the quota, then waits for every outcome (they all end: acked,
    /// refused, given up, or failed when the client closes).
    pub async fn run(mut self) {
        let mut inflight = FuturesUnordered::new();
        for k in 0..self.quota {
            let intended = match self.pace {
                Pace::Window(window) => {
                    while inflight.len() >= window.max(1) {
                        match inflight.next().await {
                            Some(done) => self.settle(done),
                            None => break,
                        }
                    }
                    Instant::now()
                }
                Pace::Schedule { first, period } => {
                    let at = first + period.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
                    if at >= self.deadline {
                        break;
                    }
                    let sleep = tokio::time::sleep_until(at.into());
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            Some(done) = inflight.next(), if !inflight.is_empty() => self.settle(done),
                            _ = &mut sleep => break,
                        }
                    }
                    at
                }
            };
            if Instant::now() >= self.deadline || self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            match self.send_one(k, intended).await {
                Some(h) => inflight.push(wait(h, intended)),
                None => break,
            }
        }
        while let Some(done) = inflight.next().await {
            self.settle(done);
        }
    }

    async fn send_one(&mut self, k: u64, intended: Instant) -> Option<SendHandle> {
        let conv = self.convs.choose(&mut self.rng)?.clone();
        let body = format!("{} {}/{} #{k}", self.tag, self.user, self.device);
        let id = ClientMsgId::random();
        let (u, d) = (self.user.as_str(), self.device.as_str());
        let invoke = EventBody::SendInvoke {
            conv: conv.to_string(),
            client_msg_id: id.to_string(),
            body_hash: body_hash(&body),
        };
        self.stats.record(u, d, invoke);
        Counters::add(&self.stats.counters.invoked, 1);
        if self.priority {
            Counters::add(&self.stats.counters.priority_invoked, 1);
        }
        self.stats.sent(id, intended);
        let opts = SendOptions {
            conv: conv.clone(),
            body,
            priority: self.priority,
            id: Some(id),
            vclock: None,
        };
        match self.client.send_with(opts).await {
            Ok(h) => Some(h),
            Err(e) => {
                let fail = EventBody::SendFail {
                    conv: conv.to_string(),
                    client_msg_id: id.to_string(),
                    reason: e.to_string(),
                };
                self.stats.record(u, d, fail);
                Counters::add(&self.stats.counters.failed, 1);
                None
            }
        }
    }

    fn settle(&self, done: Done) {
        let (u, d) = (self.user.as_str(), self.device.as_str());
        let (conv, client_msg_id) = (done.conv.to_string(), done.id.to_string());
        let c = &self.stats.counters;
        match done.state {
            SendState::Sent(conv_seq) => {
                self.stats.ack_latency.record(done.t0.elapsed());
                self.stats.acked(&done.conv, conv_seq);
                Counters::add(&c.acked, 1);
                self.stats.record(
                    u,
                    d,
                    EventBody::SendOk {
                        conv,
                        client_msg_id,
                        conv_seq,
                    },
                );
            }
            SendState::Failed(reason) if !reason.is_unknown() => {
                Counters::add(&c.failed, 1);
                self.stats.record(
                    u,
                    d,
                    EventBody::SendFail {
                        conv,
                        client_msg_id,
                        reason: reason.to_string(),
                    },
                );
            }
            SendState::Failed(_) | SendState::Sending { .. } => {
                Counters::add(&c.unknown, 1);
                self.stats.record(u, d, EventBody::SendInfo { conv, client_msg_id });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use seqline_core::ids::ConvSeq;

    fn message(kind: MessageKind, seq: u64, members: &[&UserId]) -> Message {
        Message {
            conv: ConversationId::parse("g:churn").unwrap(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("admin").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind,
            body: String::new(),
            members: members.iter().map(|u| (*u).clone()).collect(),
            priority: false,
            server_ts_ms: 0,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: false,
        }
    }

    #[test]
    fn a_device_whose_user_was_removed_is_owed_nothing_after_its_removal() {
        let (me, other) = (UserId::parse("me").unwrap(), UserId::parse("other").unwrap());
        let conv = ConversationId::parse("g:churn").unwrap();
        let seen = Seen::default();
        assert!(seen.reached(&conv, 0));
        assert!(!seen.reached(&conv, 1));
        seen.saw(&me, &message(MessageKind::Text, 4, &[]));
        assert!(seen.reached(&conv, 4) && !seen.reached(&conv, 5));
        // Someone else leaving changes nothing.
        seen.saw(&me, &message(MessageKind::Left, 5, &[&other]));
        assert!(!seen.reached(&conv, 9));
        // Removed at 6: messages acked after it are not owed.
        seen.saw(&me, &message(MessageKind::Left, 6, &[&me]));
        assert!(seen.reached(&conv, 9));
        // A late replay of an older join does not put it back.
        seen.saw(&me, &message(MessageKind::Joined, 3, &[&me]));
        assert!(seen.reached(&conv, 9));
        // Added again at 8: owed everything from then on.
        seen.saw(&me, &message(MessageKind::Joined, 8, &[&me]));
        assert!(seen.reached(&conv, 8) && !seen.reached(&conv, 9));
    }
}
