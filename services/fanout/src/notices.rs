//! The conversation lane: read-diffusion conversations (huge groups).
//!
//! Consumes `conv-events` (one per message, key = conversation) and tells
//! the gateways that have connections following a conversation that it
//! advanced, at a cost of O(following gateways) per message, never
//! O(members):
//! - ordinary messages are coalesced into one `Notice { head }` per
//!   conversation and gateway, at most one per `notice_interval`: a burst
//!   of 100 messages becomes a few notices;
//! - high-priority messages (announcements, membership events) travel on
//!   their own lane (`priority-events`, consumed by the priority lane, then
//!   each gateway's `gw-priority.<id>`); one found on `conv-events` (written
//!   before the lanes were split) is sent at once and in full, ahead of the
//!   ordinary notices of the same round, and never throttled.
//!
//! Notices are hints: a lost one is made up by the device's next pull or
//! long-poll, so the lane commits its offsets without waiting for pending
//! coalesced notices.

use crate::{FanoutConfig, Ports};
use seqline_core::ids::{ConvSeq, ConversationId, GatewayId};
use seqline_core::model::Message;
use seqline_core::records::{GatewayRecord, LogRecord, Notice, Topic};
use seqline_core::Result;
use seqline_worker::{consume, unexpected, Handler, Input, Options};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The coalescing state of the lane: pure, so it is tested without a log.
#[derive(Debug, Default)]
pub struct Coalescer {
    interval: Duration,
    /// Newest head not yet announced, per conversation, and when it is due.
    pending: HashMap<ConversationId, (ConvSeq, Instant)>,
    /// When each conversation was last announced, and the head then.
    sent: HashMap<ConversationId, (Instant, ConvSeq)>,
}

/// What to send now.
#[derive(Debug, Default, PartialEq)]
pub struct Round {
    /// High-priority messages, in log order, sent in full.
    pub priority: Vec<Message>,
    /// Conversations to announce with their head.
    pub notices: Vec<(ConversationId, ConvSeq)>,
}

impl Coalescer {
    /// A coalescer sending at most one ordinary notice per conversation per
    /// `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            ..Self::default()
        }
    }

    /// Takes one message of a read-diffusion conversation at `now`; a
    /// high-priority one is returned to be sent at once.
    pub fn offer(&mut self, message: Message, now: Instant) -> Option<Message> {
        let conv = message.conv.clone();
        let head = message.conv_seq;
        if message.priority {
            // The full message also announces its head.
            self.sent.insert(conv.clone(), (now, head));
            if self.pending.get(&conv).is_some_and(|(h, _)| *h <= head) {
                self.pending.remove(&conv);
            }
            return Some(message);
        }
        if self.sent.get(&conv).is_some_and(|(_, h)| *h >= head) {
            return None;
        }
        let due = match self.sent.get(&conv) {
            Some((at, _)) => (*at + self.interval).max(now),
            None => now,
        };
        let entry = self.pending.entry(conv).or_insert((head, due));
        entry.0 = entry.0.max(head);
        None
    }

    /// The notices due at `now`, marked as sent.
    pub fn due(&mut self, now: Instant) -> Vec<(ConversationId, ConvSeq)> {
        let ready: Vec<ConversationId> = self
            .pending
            .iter()
            .filter(|(_, (_, due))| *due <= now)
            .map(|(c, _)| c.clone())
            .collect();
        let mut out = Vec::with_capacity(ready.len());
        for conv in ready {
            if let Some((head, _)) = self.pending.remove(&conv) {
                self.sent.insert(conv.clone(), (now, head));
                out.push((conv, head));
            }
        }
        // Forget conversations that went quiet: the memory follows the
        // active ones, not every conversation ever seen.
        let horizon = self.interval * 16;
        self.sent
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < horizon);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// When the next pending notice is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|(_, due)| *due).min()
    }
}

/// Runs the conversation lane until `shutdown`.
pub(crate) async fn run(config: FanoutConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let options = Options::new(&config.conv_group, Topic::ConvEvents, config.batch_max);
    let lane = ConvLane {
        coalescer: Coalescer::new(config.notice_interval),
        ports,
    };
    let log = std::sync::Arc::clone(&lane.ports.log);
    consume(log.as_ref(), &options, shutdown, lane).await
}

/// The conversation lane: coalesces ordinary messages into notices, sends
/// priority ones at once, and wakes when coalesced notices fall due.
struct ConvLane {
    ports: Ports,
    coalescer: Coalescer,
}

impl ConvLane {
    /// Sends `priority` and the notices due now.
    async fn send_due(&mut self, priority: Vec<Message>) -> Result<()> {
        let notices = self.coalescer.due(Instant::now());
        if !priority.is_empty() || !notices.is_empty() {
            send(&self.ports, Round { priority, notices }).await?;
        }
        Ok(())
    }
}

impl Handler for ConvLane {
    async fn handle(&mut self, partition: u32, batch: &[Input]) -> Result<()> {
        let now = Instant::now();
        let mut priority = Vec::new();
        let mut dead = Vec::new();
        for input in batch {
            match message_of(input, partition, &Topic::ConvEvents) {
                Ok(m) => priority.extend(self.coalescer.offer(m, now)),
                Err(d) => dead.push(*d),
            }
        }
        if !dead.is_empty() {
            self.ports.log.append(&Topic::DeadLetter, dead).await?;
        }
        self.send_due(priority).await
    }

    fn wake_at(&self) -> Option<Instant> {
        self.coalescer.next_due()
    }

    async fn wake(&mut self) -> Result<()> {
        self.send_due(Vec::new()).await
    }
}

/// The message of a conversation event, or the dead letter of a record
/// that is not one.
pub(crate) fn message_of(input: &Input, partition: u32, topic: &Topic) -> std::result::Result<Message, Box<LogRecord>> {
    match &input.record {
        LogRecord::ConvEvent(e) => Ok(e.message.clone()),
        _ => Err(Box::new(unexpected(
            topic,
            partition,
            input.offset,
            "not a conversation event",
        ))),
    }
}

/// Sends one round to the gateways following each conversation: the
/// priority messages first, on each gateway's priority topic, then the
/// notices on its ordinary topic.
#[tracing::instrument(skip_all, fields(priority = round.priority.len(), notices = round.notices.len()))]
pub(crate) async fn send(ports: &Ports, round: Round) -> Result<()> {
    let mut convs: Vec<ConversationId> = round
        .priority
        .iter()
        .map(|m| m.conv.clone())
        .chain(round.notices.iter().map(|(c, _)| c.clone()))
        .collect();
    convs.sort();
    convs.dedup();
    let Some(followers) = crate::ask_presence("followers", || ports.presence.followers(&convs)).await? else {
        return Ok(());
    };
    let mut urgent: HashMap<Topic, Vec<LogRecord>> = HashMap::new();
    for m in round.priority {
        for g in followers.get(&m.conv).into_iter().flatten() {
            route(&mut urgent, g, notice(&m.conv, m.conv_seq, Some(m.clone())));
        }
    }
    let mut ordinary: HashMap<Topic, Vec<LogRecord>> = HashMap::new();
    for (conv, head) in round.notices {
        for g in followers.get(&conv).into_iter().flatten() {
            route(&mut ordinary, g, notice(&conv, head, None));
        }
    }
    let priority = append_all(ports, urgent).await;
    let notices = append_all(ports, ordinary).await;
    seqline_telemetry::emit(seqline_telemetry::events::NoticesRouted { notices, priority });
    Ok(())
}

fn notice(conv: &ConversationId, head: ConvSeq, message: Option<Message>) -> Notice {
    Notice {
        conv: conv.clone(),
        head,
        message,
    }
}

/// Puts `notice` for `gateway` on its lane: the gateway's priority topic
/// for a message in full, its ordinary topic for "advanced to `head`".
fn route(by_topic: &mut HashMap<Topic, Vec<LogRecord>>, gateway: &GatewayId, notice: Notice) {
    by_topic
        .entry(Topic::for_notice(gateway.clone(), &notice))
        .or_default()
        .push(LogRecord::Gateway(GatewayRecord::Notice(notice)));
}

/// Appends each topic's records; returns how many went out. A failed
/// append loses only hints.
async fn append_all(ports: &Ports, by_topic: HashMap<Topic, Vec<LogRecord>>) -> u64 {
    let topics: Vec<(Topic, Vec<LogRecord>)> = by_topic.into_iter().collect();
    let results = futures_util::future::join_all(topics.iter().map(|(t, r)| ports.log.append(t, r.clone()))).await;
    let mut sent = 0;
    for ((topic, records), r) in topics.iter().zip(results) {
        match r {
            Ok(()) => sent += records.len() as u64,
            Err(e) => tracing::warn!(topic = %topic.name(), error = %e, "dropping notices"),
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, DeviceId, UserId};
    use seqline_core::model::MessageKind;

    fn msg(conv: &str, seq: u64, priority: bool) -> Message {
        Message {
            conv: ConversationId::parse(conv).unwrap(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("a").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: String::new(),
            members: Vec::new(),
            priority,
            server_ts_ms: 0,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: true,
        }
    }

    #[tokio::test]
    async fn a_burst_becomes_a_few_notices_with_the_newest_head() {
        let mut c = Coalescer::new(Duration::from_millis(100));
        let start = Instant::now();
        let mut notices = Vec::new();
        // 100 messages over 250 ms.
        for seq in 1..=100u64 {
            let now = start + Duration::from_micros(2500 * seq);
            assert!(c.offer(msg("g", seq, false), now).is_none());
            notices.extend(c.due(now));
        }
        notices.extend(c.due(start + Duration::from_secs(1)));
        assert!(notices.len() <= 4, "{} notices for a burst of 100", notices.len());
        assert_eq!(
            notices.last().map(|(_, h)| h.0),
            Some(100),
            "the last notice names the newest head"
        );
        let heads: Vec<u64> = notices.iter().map(|(_, h)| h.0).collect();
        assert!(heads.windows(2).all(|w| w[0] < w[1]), "heads only grow: {heads:?}");
    }

    #[tokio::test]
    async fn priority_messages_pass_at_once_and_are_never_throttled() {
        let mut c = Coalescer::new(Duration::from_secs(10));
        let now = Instant::now();
        assert!(c.offer(msg("g", 1, false), now).is_none());
        assert_eq!(c.due(now).len(), 1);
        for seq in 2..=5 {
            let m = c.offer(msg("g", seq, true), now).expect("a priority message passes");
            assert_eq!(m.conv_seq.0, seq);
        }
        assert!(
            c.due(now).is_empty(),
            "the priority messages announced the head already"
        );
    }

    #[tokio::test]
    async fn conversations_are_throttled_independently() {
        let mut c = Coalescer::new(Duration::from_millis(100));
        let now = Instant::now();
        c.offer(msg("a", 1, false), now);
        c.offer(msg("b", 1, false), now);
        assert_eq!(c.due(now).len(), 2);
        c.offer(msg("a", 2, false), now);
        assert!(c.due(now).is_empty(), "a is throttled");
        assert_eq!(c.next_due(), Some(now + Duration::from_millis(100)));
        assert_eq!(
            c.due(now + Duration::from_millis(100)),
            vec![(ConversationId::parse("a").unwrap(), ConvSeq(2))]
        );
    }
}
