//! Following read-diffusion conversations against a scripted WebSocket
//! server (the style of `scripted.rs`): the timeline entry that switches a
//! conversation to read diffusion starts pulls by conversation cursor, the
//! long-poll and notices drive further pulls, a priority push alerts at
//! once, a switch back waits for the pull to catch up, and a reconnect
//! resumes from the stored conversation cursor. Every message reaches the
//! application once, in conv_seq order.

#![allow(clippy::unwrap_used)]

use seqline_client::{Client, ClientConfig, ConvPosition, CursorStore, Event, EventStream, MemoryCursor, Via};
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{Message, MessageKind, TimelineEntry};
use seqline_core::protocol::{ClientFrame, ConvCursor, ConvHead, ServerFrame, UnreadCount};
use std::time::Duration;

mod common;

use common::{Conn, Server, WAIT};

impl Conn {
    /// Expects a pull of the huge group after `after`; answers `seqs`.
    async fn serve_pull(&mut self, after: u64, seqs: &[u64], head: u64) {
        match self.recv().await {
            ClientFrame::SyncConv {
                req, conv, after: a, ..
            } => {
                assert_eq!((conv, a), (huge(), after), "pull cursor");
                let messages = seqs.iter().map(|s| message(*s, true)).collect();
                self.send(ServerFrame::ConvPage {
                    req,
                    conv: huge(),
                    messages,
                    head,
                    more: false,
                    epoch: seqline_core::Epoch::from_u64(1),
                })
                .await;
            }
            other => panic!("expected a pull after {after}, got {other:?}"),
        }
    }

    /// Expects a long-poll over the huge group from `after`; returns its req.
    async fn expect_poll(&mut self, after: u64) -> u64 {
        match self.recv().await {
            ClientFrame::Poll { req, convs, .. } => {
                assert_eq!(convs, vec![ConvCursor { conv: huge(), after }]);
                req
            }
            other => panic!("expected a poll from {after}, got {other:?}"),
        }
    }

    /// Hello, welcome, and the initial timeline sync from `cursor` answered
    /// with `entries`.
    async fn accept(&mut self, cursor: u64, entries: Vec<TimelineEntry>) {
        let head = entries.last().map_or(cursor, |e| e.user_seq.0);
        self.accept_with(head, cursor, entries).await;
    }
}

fn huge() -> ConversationId {
    ConversationId::parse("g:huge").unwrap()
}

fn message(conv_seq: u64, read_diffusion: bool) -> Message {
    Message {
        read_diffusion,
        sender_name: "Bob".into(),
        conv: huge(),
        conv_seq: ConvSeq(conv_seq),
        client_msg_id: ClientMsgId::random(),
        sender: UserId::parse("bob").unwrap(),
        sender_device: DeviceId::parse("tablet").unwrap(),
        kind: MessageKind::Text,
        body: format!("m{conv_seq}"),
        members: vec![],
        priority: false,
        server_ts_ms: 0,
        vclock: Default::default(),
    }
}

fn entry(user_seq: u64, conv_seq: u64, read_diffusion: bool) -> TimelineEntry {
    TimelineEntry {
        user_seq: UserSeq(user_seq),
        message: message(conv_seq, read_diffusion),
    }
}

fn config(url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, "token");
    c.ping_interval = Duration::from_secs(3600);
    c.request_timeout = Duration::from_secs(3600);
    c.reconnect.base = Duration::from_millis(10);
    c.reconnect.max = Duration::from_millis(50);
    c
}

/// What the application saw of the huge group: (conv_seq, timeline or pull).
#[derive(Debug, PartialEq)]
enum Seen {
    Timeline(u64),
    Pulled(u64),
    Priority(u64),
    ReadMark(u64),
}

async fn next_seen(events: &mut EventStream) -> Seen {
    loop {
        let ev = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("no event in time")
            .expect("stream ended");
        match ev {
            Event::Message { entry, .. } => return Seen::Timeline(entry.message.conv_seq.0),
            Event::ConvMessage { message, via } => {
                assert_eq!(via, Via::Pull);
                return Seen::Pulled(message.conv_seq.0);
            }
            Event::Priority(m) => return Seen::Priority(m.conv_seq.0),
            Event::ReadMark { conv_seq, .. } => return Seen::ReadMark(conv_seq),
            _ => {}
        }
    }
}

#[tokio::test]
async fn follows_through_read_diffusion_and_back_delivering_each_message_once() {
    let mut server = Server::start().await;
    let cursor = MemoryCursor::new(0);
    let (client, mut events) = Client::start(config(&server.url).with_cursor(cursor.clone())).unwrap();
    let mut conn = server.next().await;
    // Write mode at 1; the boundary into read diffusion at 2.
    conn.accept(0, vec![entry(1, 1, false), entry(2, 2, true)]).await;
    conn.serve_pull(2, &[3, 4], 4).await;
    let poll = conn.expect_poll(4).await;
    // A notice: pull at once; the outstanding poll stays.
    conn.send(ServerFrame::Notice { conv: huge(), head: 6 }).await;
    conn.serve_pull(4, &[5, 6], 6).await;
    conn.quiet().await;
    // The poll answers: pull, then poll again from the new cursor.
    conn.send(ServerFrame::Polled {
        req: poll,
        advanced: vec![ConvHead { conv: huge(), head: 7 }],
    })
    .await;
    conn.serve_pull(6, &[7], 7).await;
    let poll = conn.expect_poll(7).await;
    // A priority announcement: an alert now, the message in order by pull.
    let mut announcement = message(8, true);
    announcement.priority = true;
    conn.send(ServerFrame::Priority { message: announcement }).await;
    conn.serve_pull(7, &[8], 8).await;
    // The poll from 7 is answered by the same advance; nothing left to pull.
    conn.send(ServerFrame::Polled {
        req: poll,
        advanced: vec![ConvHead { conv: huge(), head: 8 }],
    })
    .await;
    let poll = conn.expect_poll(8).await;
    // Back to write mode at 10: the timeline entry waits for 9 to be pulled.
    conn.send(ServerFrame::Push {
        package: 3,
        entries: vec![entry(3, 10, false)],
    })
    .await;
    conn.serve_pull(8, &[9], 10).await;
    conn.send(ServerFrame::ReadMark {
        conv: huge(),
        conv_seq: 9,
    })
    .await;
    // An answer to a superseded poll changes nothing.
    conn.send(ServerFrame::Polled {
        req: poll,
        advanced: vec![],
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(next_seen(&mut events).await);
    }
    use Seen::*;
    assert_eq!(
        seen,
        vec![
            Timeline(1),
            Timeline(2),
            Pulled(3),
            Pulled(4),
            Pulled(5),
            Pulled(6),
            Pulled(7),
            Priority(8),
            Pulled(8),
            Pulled(9),
            Timeline(10),
            ReadMark(9),
        ]
    );
    // Not following any more: no pull, no poll.
    conn.quiet().await;
    assert_eq!(client.status().following, 0);

    client.mark_read(huge(), 9).await.unwrap();
    assert_eq!(
        conn.recv().await,
        ClientFrame::Read {
            conv: huge(),
            conv_seq: 9
        }
    );
    let asking = tokio::spawn({
        let client = client.clone();
        async move { client.unread().await.unwrap() }
    });
    let ClientFrame::Unread { req } = conn.recv().await else {
        panic!("expected unread")
    };
    let counts = vec![UnreadCount {
        conv: huge(),
        head: 10,
        read: 9,
        unread: 1,
    }];
    conn.send(ServerFrame::UnreadPage {
        req,
        convs: counts.clone(),
    })
    .await;
    assert_eq!(asking.await.unwrap(), counts);
    client.close().await;
    assert_eq!(cursor.get(), 3);
    assert_eq!(
        cursor.convs(),
        vec![ConvPosition {
            conv: huge(),
            seq: 10,
            following: false
        }]
    );
}

#[tokio::test]
async fn a_reconnect_resumes_following_from_the_stored_conversation_cursor() {
    let mut server = Server::start().await;
    let mut cursor = MemoryCursor::new(0);
    cursor
        .store_all(
            2,
            &[ConvPosition {
                conv: huge(),
                seq: 5,
                following: true,
            }],
        )
        .unwrap();
    let (client, mut events) = Client::start(config(&server.url).with_cursor(cursor.clone())).unwrap();
    let mut conn = server.next().await;
    conn.accept(2, vec![]).await;
    conn.serve_pull(5, &[6], 6).await;
    let _ = conn.expect_poll(6).await;
    assert_eq!(next_seen(&mut events).await, Seen::Pulled(6));
    drop(conn);
    // Messages 7 and 8 were sent while the device was away.
    let mut conn = server.next().await;
    conn.accept(2, vec![]).await;
    conn.serve_pull(6, &[7, 8], 8).await;
    let _ = conn.expect_poll(8).await;
    assert_eq!(next_seen(&mut events).await, Seen::Pulled(7));
    assert_eq!(next_seen(&mut events).await, Seen::Pulled(8));
    // A repeat in a page (a retried pull) is not delivered again.
    conn.send(ServerFrame::Notice { conv: huge(), head: 9 }).await;
    conn.serve_pull(8, &[9], 9).await;
    assert_eq!(next_seen(&mut events).await, Seen::Pulled(9));
    client.close().await;
    assert_eq!(
        cursor.convs(),
        vec![ConvPosition {
            conv: huge(),
            seq: 9,
            following: true
        }]
    );
    while let Some(ev) = events.recv().await {
        assert!(!matches!(ev, Event::ConvMessage { .. }), "delivered twice: {ev:?}");
    }
}
