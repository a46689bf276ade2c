//! Vector clocks end to end: SDK devices with clocks on exchange messages
//! in a group through the real `seqline dev` process, several sending at
//! once, one user on two devices. What each device receives carries the
//! clock its author stamped, and that clock dominates the clock of every
//! message the author had received before sending it (and counts it: the
//! receiver's clock advanced). Then the load generator runs W2 with clocks
//! and the checker holds them against the server's order (C13, C14).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_client::{Client, ClientConfig, Event, HttpApi};
use seqline_core::algo::vclock::{compare, Causality};
use seqline_core::ids::{ClientMsgId, ConversationId, UserId};
use seqline_core::model::{Message, MessageKind};
use seqline_loadgen::{Mode, RunOptions, Workload};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// One connected device and the text messages it received, in order.
struct Device {
    name: String,
    client: Client,
    received: Arc<Mutex<Vec<Message>>>,
}

impl Device {
    async fn connect(server: &Server, user: &str, device: &str) -> Device {
        let mut cfg = ClientConfig::new(server.ws_url(), token(user, device));
        cfg.vector_clocks = true;
        let (client, mut events) = Client::connect(cfg).await.unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let Event::Message { entry, .. } = ev {
                    if entry.message.kind == MessageKind::Text {
                        sink.lock().unwrap().push(entry.message);
                    }
                }
            }
        });
        Device {
            name: format!("{user}/{device}"),
            client,
            received,
        }
    }

    fn received(&self) -> Vec<Message> {
        self.received.lock().unwrap().clone()
    }
}

/// A send and what its device had received when the application made it.
struct Sent {
    id: ClientMsgId,
    device: usize,
    saw: Vec<ClientMsgId>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_clocks_dominate_what_their_authors_had_received() {
    let server = Server::start(&temp_dir("clocks"), "127.0.0.1:0");
    let users: Vec<UserId> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| UserId::parse(*u).unwrap())
        .collect();
    let http = HttpApi::new(&format!("http://{}", server.addr), token("alice", "http")).unwrap();
    let conv: ConversationId = http.create_group("clocks", &users[1..]).await.unwrap().conv;
    let devices = vec![
        Device::connect(&server, "alice", "phone").await,
        Device::connect(&server, "alice", "laptop").await,
        Device::connect(&server, "bob", "phone").await,
        Device::connect(&server, "carol", "phone").await,
    ];

    // Rounds: every device sends twice without waiting for the others, so
    // clocks are concurrent within a round; between rounds every device
    // catches up, so the next round happens after all of this one.
    let mut sent: Vec<Sent> = Vec::new();
    for round in 0..4 {
        for _ in 0..2 {
            for (i, d) in devices.iter().enumerate() {
                let saw = d.received().iter().map(|m| m.client_msg_id).collect();
                let h = d
                    .client
                    .send(conv.clone(), format!("{} round {round}", d.name))
                    .await
                    .unwrap();
                sent.push(Sent {
                    id: h.id(),
                    device: i,
                    saw,
                });
            }
        }
        let total = sent.len();
        for d in &devices {
            seqline_testkit::wait::until(WAIT, &format!("{} to receive {total} messages", d.name), || async {
                (d.received().len() >= total).then_some(())
            })
            .await;
        }
    }

    // Every device received every message once, with the same clock.
    let mut by_id: HashMap<ClientMsgId, Message> = HashMap::new();
    for d in &devices {
        let got = d.received();
        assert_eq!(got.len(), sent.len(), "{} received each message once", d.name);
        for m in got {
            assert!(
                !m.vclock.is_empty(),
                "{} got {} without a clock",
                d.name,
                m.client_msg_id
            );
            let first = by_id.entry(m.client_msg_id).or_insert_with(|| m.clone());
            assert_eq!(first.vclock, m.vclock, "one clock per message, whoever reads it");
        }
    }

    let mut edges = 0;
    for s in &sent {
        let m = &by_id[&s.id];
        // The author's clock dominates every clock it had received, and the
        // server sequenced the message after all of them.
        for seen in &s.saw {
            let before = &by_id[seen];
            assert_eq!(
                compare(&before.vclock, &m.vclock),
                Causality::Before,
                "{} sent {} (seq {}, clock {:?}) after receiving {} (seq {}, clock {:?})",
                devices[s.device].name,
                m.client_msg_id,
                m.conv_seq.0,
                m.vclock,
                before.client_msg_id,
                before.conv_seq.0,
                before.vclock
            );
            assert!(before.conv_seq.0 < m.conv_seq.0);
            edges += 1;
        }
        // It counts at least everything the author had received, by sender.
        let mut counted: HashMap<&UserId, u64> = HashMap::new();
        for seen in &s.saw {
            *counted.entry(&by_id[seen].sender).or_default() += 1;
        }
        for (user, n) in counted {
            let own = u64::from(*user == m.sender);
            assert!(
                m.vclock.get(user).copied().unwrap_or(0) >= n + own,
                "{} counts fewer than the {n} messages of {user} its author had received",
                m.client_msg_id
            );
        }
    }
    assert!(edges > 100, "rounds build on each other: {edges} causal edges checked");

    // A device's sends carry growing clocks.
    for (i, d) in devices.iter().enumerate() {
        let mine: Vec<&Message> = sent.iter().filter(|s| s.device == i).map(|s| &by_id[&s.id]).collect();
        for w in mine.windows(2) {
            assert_eq!(compare(&w[0].vclock, &w[1].vclock), Causality::Before, "{}", d.name);
        }
    }

    // Causal history: every message comes after everything its clock says it saw.
    let history = devices[2].client.causal_history(&conv, None, 100).await.unwrap();
    let texts: Vec<&Message> = history.iter().filter(|m| m.kind == MessageKind::Text).collect();
    assert_eq!(texts.len(), sent.len());
    for (i, later) in texts.iter().enumerate() {
        for earlier in &texts[..i] {
            assert_ne!(compare(&later.vclock, &earlier.vclock), Causality::Before);
        }
    }
    for d in &devices {
        d.client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_clocks_hold_against_the_servers_order() {
    let server = Server::start(&temp_dir("clocks-w2"), "127.0.0.1:0");
    let history = temp_dir("clocks-w2-history").join("history.jsonl");
    let mut opts = RunOptions::new(
        Workload::W2 {
            groups: 3,
            members: 5,
            senders: 3,
            messages: 600,
        },
        SECRET,
    );
    opts.url = server.ws_url();
    opts.http = format!("http://{}", server.addr);
    opts.mode = Mode::ClosedLoop { window: 4 };
    opts.max_duration = Duration::from_secs(60);
    opts.history = Some(history.clone());
    opts.seed = 15;
    let report = seqline_loadgen::run(opts).await.expect("loadgen run");
    eprintln!("{report}");
    let events = seqline_checker::read_history(&history).unwrap();
    let clocked = events
        .iter()
        .filter(|e| matches!(&e.body, seqline_checker::EventBody::Recv { vclock, .. } if !vclock.is_empty()))
        .count();
    assert!(
        clocked > 1_000,
        "the history records clocks: {clocked} receipts with one"
    );
    let checked = seqline_checker::check(&events, &Default::default());
    assert!(checked.is_clean(), "{checked}");
}
