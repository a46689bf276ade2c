//! Admission control over a real socket: while the timeline side is behind
//! (the entries pushed to devices are old) or too many sends wait for their
//! receipt, new sends are answered `rate_limited` with `retry_after_ms` and
//! never reach the log; once the timeline side catches up (or the receipts
//! come) the same message is admitted, and every send ends acked exactly
//! once. The tests play the sequencer and the timeline writer by reading the
//! inbound topic and appending receipts and packages to the gateway topic.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::{now_ms, Outcome, TimelineEntry};
use seqline_core::records::{Command, GatewayRecord, Origin, Package, Receipt};
use seqline_core::{ClientMsgId, ConvSeq, ConversationId, UserSeq};
use seqline_testkit::fixtures;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn conv() -> ConversationId {
    ConversationId::parse("g:room").unwrap()
}

/// The sequencer's ack of `id` for alice's phone.
fn ack(gw: &Gw, id: ClientMsgId, conv_seq: u64) -> GatewayRecord {
    GatewayRecord::Receipt(Receipt {
        origin: Origin {
            name: String::new(),
            gateway: gw.id.clone(),
            user: user("alice"),
            device: device("phone"),
            request: 0,
        },
        conv: conv(),
        client_msg_id: id,
        outcome: Outcome::Sequenced {
            conv_seq: ConvSeq(conv_seq),
        },
    })
}

/// What the gateway did with a send: refused it for now (the error frame),
/// or took it (published it to the log).
enum Answer {
    Refused(Value),
    Taken,
}

/// The sending device, counting the acks it gets per message.
struct Sender {
    c: Client,
    acks: HashMap<ClientMsgId, usize>,
}

impl Sender {
    /// Sends `id` and tells whether the gateway took it: a ping after it is
    /// answered only once the send has been handled, so an error naming
    /// `id` comes before the pong or not at all.
    async fn send(&mut self, id: ClientMsgId) -> Answer {
        self.c
            .send(json!({"type": "send", "id": id, "conv": "g:room", "body": "hi"}))
            .await;
        let req = rand_req();
        self.c.send(json!({"type": "ping", "req": req})).await;
        let mut refused = None;
        loop {
            let f = self.c.recv().await;
            match f["type"].as_str() {
                Some("pong") if f["req"] == req => break,
                Some("error") if f["id"] == json!(id) => refused = Some(f),
                Some("ack") => self.acked(&f),
                _ => panic!("unexpected frame {f}"),
            }
        }
        refused.map_or(Answer::Taken, Answer::Refused)
    }

    fn acked(&mut self, f: &Value) {
        let id: ClientMsgId = serde_json::from_value(f["id"].clone()).unwrap();
        *self.acks.entry(id).or_default() += 1;
    }

    /// Reads frames until the ack of `id`.
    async fn wait_ack(&mut self, id: ClientMsgId) {
        while !self.acks.contains_key(&id) {
            let f = self.c.recv().await;
            assert_eq!(f["type"], "ack", "{f}");
            self.acked(&f);
        }
    }
}

/// Plays the sequencer: takes the next command off the inbound topic and
/// acks it.
struct Sequencer {
    inbound: Inbound,
    head: u64,
    seen: Vec<ClientMsgId>,
}

impl Sequencer {
    async fn sequence_next(&mut self, gw: &Gw) -> ClientMsgId {
        let id = next_send(&mut self.inbound).await;
        self.head += 1;
        self.seen.push(id);
        gw.deliver(ack(gw, id, self.head)).await;
        id
    }
}

/// Plays the timeline writer of bob's phone: writes the next entry, of a
/// message the sequencer stamped `age_ms` ago, and bob reads its push.
struct Timeline {
    bob: Client,
    next: u64,
}

impl Timeline {
    async fn write(&mut self, gw: &Gw, age_ms: u64) {
        let s = self.next;
        self.next += 1;
        let mut message = fixtures::message(&conv(), s, &user("alice"));
        message.server_ts_ms = now_ms().saturating_sub(age_ms);
        let package = Package {
            user: user("bob"),
            device: device("phone"),
            package_id: s,
            index: 0,
            count: 1,
            entries: vec![TimelineEntry {
                user_seq: UserSeq(s),
                message,
            }],
        };
        gw.deliver(GatewayRecord::Package(package)).await;
        let push = self.bob.recv().await;
        assert_eq!(push["type"], "push", "{push}");
        assert_eq!(push["entries"][0]["user_seq"], s);
    }
}

async fn next_send(inbound: &mut Inbound) -> ClientMsgId {
    match inbound.next().await {
        Command::Send(s) => s.client_msg_id,
        other => panic!("not a send: {other:?}"),
    }
}

async fn metrics(gw: &Gw) -> String {
    let (status, body) = gw.http("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sends_are_refused_while_deliveries_lag_and_admitted_once_the_timeline_catches_up() {
    let gw = Gw::start_with(|c| {
        c.max_delivery_lag = Duration::from_millis(300);
        c.max_inflight_sends = 0;
        // The probes below go as fast as the gateway answers: only
        // admission control may refuse them.
        (c.max_sends_per_sec, c.send_burst, c.max_requests_per_sec) = (1_000_000, 1_000_000, 1_000_000);
    })
    .await;
    let mut seq = Sequencer {
        inbound: gw.inbound().await,
        head: 0,
        seen: Vec::new(),
    };
    let (bob, _) = gw.login("bob", "phone").await;
    let mut timeline = Timeline { bob, next: 1 };
    let (c, _) = gw.login("alice", "phone").await;
    let mut alice = Sender {
        c,
        acks: HashMap::new(),
    };
    let mut sent = Vec::new();

    // The timeline writer is 2 s behind the sequencer: each entry it writes
    // is of a message sequenced 2 s ago. Sends are taken (and acked at once
    // by the sequencer) until the gateway has seen a window of such pushes.
    let refused = loop {
        assert!(sent.len() < 1000, "no send was refused while deliveries lagged by 2 s");
        timeline.write(&gw, 2000).await;
        let id = ClientMsgId::random();
        sent.push(id);
        match alice.send(id).await {
            Answer::Taken => {
                assert_eq!(seq.sequence_next(&gw).await, id);
                alice.wait_ack(id).await;
            }
            Answer::Refused(f) => break (id, f),
        }
    };
    let (refused_id, frame) = refused;
    assert_eq!(frame["code"], "rate_limited", "{frame}");
    assert_eq!(frame["conv"], "g:room");
    let hint = frame["retry_after_ms"].as_u64().expect("a retry hint");
    assert!((50..=1000).contains(&hint), "{frame}");
    assert!(
        frame["message"].as_str().unwrap().contains("behind on deliveries"),
        "{frame}"
    );
    let text = metrics(&gw).await;
    assert!(text.contains("seqline_gateway_admission_slowing 1"), "{text}");
    assert!(!text.contains("seqline_gateway_admission_refused_total 0\n"), "{text}");

    // The timeline writer catches up: its entries are fresh. The same
    // message goes again (a client waits the hint; the test writes entries
    // meanwhile) and is taken once the gateway has seen a window of fresh
    // pushes.
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries < 1000, "sends stayed refused after the timeline caught up");
        timeline.write(&gw, 0).await;
        if let Answer::Taken = alice.send(refused_id).await {
            break;
        }
    }
    assert_eq!(seq.sequence_next(&gw).await, refused_id);
    alice.wait_ack(refused_id).await;

    // Nothing lost, nothing doubled: every message reached the sequencer
    // once (the refusals never reached the log) and was acked once.
    seq.inbound.assert_empty().await;
    assert_eq!(seq.seen, sent);
    for id in &sent {
        assert_eq!(alice.acks.get(id), Some(&1), "{id}");
    }
    assert_eq!(alice.acks.len(), sent.len());
}

#[tokio::test]
async fn sends_waiting_for_receipts_are_capped() {
    let gw = Gw::start_with(|c| {
        c.max_delivery_lag = Duration::ZERO;
        c.max_inflight_sends = 2;
    })
    .await;
    let mut inbound = gw.inbound().await;
    let (c, _) = gw.login("alice", "phone").await;
    let mut alice = Sender {
        c,
        acks: HashMap::new(),
    };
    let [a, b, x] = std::array::from_fn(|_| ClientMsgId::random());
    assert!(matches!(alice.send(a).await, Answer::Taken));
    assert!(matches!(alice.send(b).await, Answer::Taken));
    // Two sends wait for the sequencer: the third is refused for now.
    let Answer::Refused(f) = alice.send(x).await else {
        panic!("a third send in flight was taken")
    };
    assert_eq!(f["code"], "rate_limited", "{f}");
    assert!(f["retry_after_ms"].as_u64().is_some(), "{f}");
    assert!(f["message"].as_str().unwrap().contains("wait for the sequencer"), "{f}");
    // So is a batch, named by its first command.
    let (y, z) = (ClientMsgId::random(), ClientMsgId::random());
    alice
        .c
        .send(json!({"type": "batch", "conv": "g:room", "commands": [
            {"type": "send", "id": y, "body": "y"}, {"type": "send", "id": z, "body": "z"}]}))
        .await;
    let f = alice.c.expect_error("rate_limited").await;
    assert_eq!(f["id"], json!(y), "{f}");

    // a's receipt comes: with only b waiting, x is taken on its resend.
    let mut seen = Vec::new();
    seen.push(next_send(&mut inbound).await);
    gw.deliver(ack(&gw, a, 1)).await;
    alice.wait_ack(a).await;
    assert!(matches!(alice.send(x).await, Answer::Taken));
    for head in 2..=3 {
        let id = next_send(&mut inbound).await;
        seen.push(id);
        gw.deliver(ack(&gw, id, head)).await;
    }
    alice.wait_ack(b).await;
    alice.wait_ack(x).await;
    inbound.assert_empty().await;
    assert_eq!(seen, [a, b, x]);
    assert_eq!(alice.acks, HashMap::from([(a, 1), (b, 1), (x, 1)]));
}
