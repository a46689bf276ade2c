//! Ordered batches end to end over real WebSockets against `seqline dev`:
//! "send, then leave" as one batch while others send and an admin removes
//! the sender; a batch with a bad command refused whole, naming it; a
//! resent batch answered with the original numbers.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::ClientMsgId;
use seqline_core::model::{Message, MessageKind, RefusalCode};
use seqline_core::protocol::{BatchEntry, ClientFrame, ServerFrame};
use seqline_core::ConversationId;
use std::collections::HashMap;

async fn create_group(server: &Server, admin: &str, id: &str, members: &[&str]) -> ConversationId {
    let members = members.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(",");
    let body = format!(r#"{{"kind":"group","id":"{id}","members":[{members}]}}"#);
    let (status, text) = http_post(server, "/v1/conversations", &token(admin, "http"), &body).await;
    assert_eq!(status, 200, "create {id}: {text}");
    ConversationId::parse(id).unwrap()
}

fn text(id: ClientMsgId, body: &str) -> BatchEntry {
    BatchEntry::Send {
        id,
        body: body.into(),
        priority: false,
        vclock: Default::default(),
    }
}

/// The answers to `ids` (acks as numbers, nacks as code and message).
async fn answers(ws: &mut Ws, ids: &[ClientMsgId]) -> Vec<Result<u64, (RefusalCode, String)>> {
    let mut got: HashMap<ClientMsgId, Result<u64, (RefusalCode, String)>> = HashMap::new();
    while got.len() < ids.len() {
        match recv(ws).await {
            ServerFrame::Ack { id, conv_seq, .. } if ids.contains(&id) => {
                got.insert(id, Ok(conv_seq));
            }
            ServerFrame::Nack { id, code, message, .. } if ids.contains(&id) => {
                got.insert(id, Err((code, message)));
            }
            ServerFrame::Error { req: None, message, .. } => panic!("the gateway refused: {message}"),
            _ => {}
        }
    }
    ids.iter().map(|id| got.remove(id).unwrap()).collect()
}

/// Every message of `conv`, read by a member.
async fn all_messages(ws: &mut Ws, conv: &ConversationId) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m.conv_seq.0);
        let req = 1000 + after;
        let frame = ClientFrame::History {
            req,
            conv: conv.clone(),
            before: None,
            after: Some(after),
            limit: None,
            epoch: None,
        };
        send(ws, &frame).await;
        let (messages, head) = recv_until(ws, |f| match f {
            ServerFrame::HistoryPage {
                req: r, messages, head, ..
            } if *r == req => Some((messages.clone(), *head)),
            _ => None,
        })
        .await;
        out.extend(messages);
        if out.last().map_or(0, |m| m.conv_seq.0) >= head {
            return out;
        }
    }
}

#[tokio::test]
async fn send_then_leave_stays_together_while_others_send_and_an_admin_removes() {
    let server = Server::start(&temp_dir("batch-race"), "127.0.0.1:0");
    let (mut carol, _) = connect(&server, "carol", "phone").await;
    for round in 0..4 {
        let conv = create_group(&server, "alice", &format!("g:race{round}"), &["bob", "carol"]).await;
        let (mut bob, _) = connect(&server, "bob", &format!("phone{round}")).await;
        let ids: Vec<ClientMsgId> = (0..3).map(|_| ClientMsgId::random()).collect();
        let batch = ClientFrame::Batch {
            conv: conv.clone(),
            prev: None,
            commands: vec![
                text(ids[0], "bye all"),
                text(ids[1], "it was fun"),
                BatchEntry::Leave { id: ids[2] },
            ],
        };
        let carol_ids: Vec<ClientMsgId> = (0..4).map(|_| ClientMsgId::random()).collect();
        for (i, id) in carol_ids.iter().enumerate().take(2) {
            let prev = (i > 0).then(|| carol_ids[i - 1]);
            send(&mut carol, &carol_send(&conv, *id, prev, i)).await;
        }
        // The last round removes bob before his batch arrives; the others
        // race the removal against it.
        let remove = format!("/v1/conversations/{conv}/members");
        let admin = token("alice", "http");
        let remove_first = round == 3;
        let mut status = 0;
        if remove_first {
            status = http_post(&server, &remove, &admin, r#"{"remove":["bob"]}"#).await.0;
            assert_eq!(status, 200);
        }
        send(&mut bob, &batch).await;
        for (i, id) in carol_ids.iter().enumerate().skip(2) {
            send(&mut carol, &carol_send(&conv, *id, Some(carol_ids[i - 1]), i)).await;
        }
        if !remove_first {
            status = http_post(&server, &remove, &admin, r#"{"remove":["bob"]}"#).await.0;
        }
        let got = answers(&mut bob, &ids).await;
        let carol_got = answers(&mut carol, &carol_ids).await;
        assert!(carol_got.iter().all(Result::is_ok), "{carol_got:?}");
        let messages = all_messages(&mut carol, &conv).await;
        let seqs: Vec<u64> = messages.iter().map(|m| m.conv_seq.0).collect();
        assert_eq!(seqs, (1..=messages.len() as u64).collect::<Vec<_>>());
        if got.iter().all(Result::is_ok) {
            assert!(!remove_first);
            // The batch won: consecutive, the leave right after the sends,
            // and the admin's removal found nothing to do.
            let first = *got[0].as_ref().unwrap();
            assert_eq!(got, vec![Ok(first), Ok(first + 1), Ok(first + 2)]);
            let at = |s: u64| &messages[s as usize - 1];
            assert_eq!(
                (at(first).kind, at(first).body.as_str()),
                (MessageKind::Text, "bye all")
            );
            assert_eq!(at(first + 1).body, "it was fun");
            assert_eq!(at(first + 2).kind, MessageKind::Left);
            assert_eq!(at(first + 2).members, vec![seqline_core::UserId::parse("bob").unwrap()]);
            assert!((first..=first + 2).all(|s| at(s).sender.as_str() == "bob"));
            assert_eq!(status, 400, "removing a member who left");
        } else {
            // The removal won: nothing of the batch is sequenced.
            assert_eq!(status, 200);
            for g in &got {
                assert_eq!(g.as_ref().unwrap_err().0, RefusalCode::NotMember, "{got:?}");
            }
            assert!(messages.iter().all(|m| !ids.contains(&m.client_msg_id)));
        }
    }
}

fn carol_send(conv: &ConversationId, id: ClientMsgId, prev: Option<ClientMsgId>, i: usize) -> ClientFrame {
    ClientFrame::Send {
        id,
        conv: conv.clone(),
        body: format!("carol {i}"),
        prev,
        priority: false,
        vclock: Default::default(),
    }
}

#[tokio::test]
async fn a_bad_command_refuses_the_batch_whole_and_a_resend_gets_the_same_numbers() {
    let server = Server::start(&temp_dir("batch-whole"), "127.0.0.1:0");
    let conv = create_group(&server, "alice", "g:whole", &["bob"]).await;
    let (mut bob, _) = connect(&server, "bob", "phone").await;

    // Only admins may send high priority: command 1 fails, nothing is sequenced.
    let bad: Vec<ClientMsgId> = (0..3).map(|_| ClientMsgId::random()).collect();
    let frame = ClientFrame::Batch {
        conv: conv.clone(),
        prev: None,
        commands: vec![
            text(bad[0], "fine"),
            BatchEntry::Send {
                id: bad[1],
                body: "urgent".into(),
                priority: true,
                vclock: Default::default(),
            },
            BatchEntry::Leave { id: bad[2] },
        ],
    };
    send(&mut bob, &frame).await;
    let got = answers(&mut bob, &bad).await;
    for g in &got {
        let (code, message) = g.as_ref().unwrap_err();
        assert_eq!(*code, RefusalCode::Forbidden);
        assert!(message.contains(&format!("command 1 ({})", bad[1])), "{message}");
    }
    assert_eq!(all_messages(&mut bob, &conv).await.len(), 1, "only the creation");

    // A good batch after it (its sends follow the refused ones), then resent.
    let good: Vec<ClientMsgId> = (0..2).map(|_| ClientMsgId::random()).collect();
    let frame = ClientFrame::Batch {
        conv: conv.clone(),
        prev: Some(bad[1]),
        commands: vec![text(good[0], "one"), text(good[1], "two")],
    };
    send(&mut bob, &frame).await;
    assert_eq!(answers(&mut bob, &good).await, vec![Ok(2), Ok(3)]);
    send(&mut bob, &frame).await;
    assert_eq!(answers(&mut bob, &good).await, vec![Ok(2), Ok(3)]);
    // The bad batch resent: the same refusal.
    let again = ClientFrame::Batch {
        conv: conv.clone(),
        prev: None,
        commands: vec![
            text(bad[0], "fine"),
            BatchEntry::Send {
                id: bad[1],
                body: "urgent".into(),
                priority: true,
                vclock: Default::default(),
            },
            BatchEntry::Leave { id: bad[2] },
        ],
    };
    send(&mut bob, &again).await;
    assert_eq!(answers(&mut bob, &bad).await, got);
    let messages = all_messages(&mut bob, &conv).await;
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(&bodies[1..], ["one", "two"]);
}

#[tokio::test]
async fn the_sdk_sends_a_batch_in_its_chain_and_names_the_command_a_refusal_failed_at() {
    use seqline_client::{Batch, Client, ClientConfig, ClientError};
    let server = Server::start(&temp_dir("batch-sdk"), "127.0.0.1:0");
    let conv = create_group(&server, "alice", "g:sdk", &["bob"]).await;
    let (bob, _events) = Client::connect(ClientConfig::new(server.ws_url(), token("bob", "phone")))
        .await
        .unwrap();
    // A send first: the batch follows it in the device's chain.
    let first = bob.send(conv.clone(), "hello").await.unwrap();
    assert!(matches!(first.outcome().await, seqline_client::SendState::Sent(2)));
    let two = Batch::new(conv.clone()).send("one").send("two");
    assert_eq!(bob.send_batch(&two).await.unwrap(), vec![3, 4]);
    // A send after it follows its last send (no out-of-order round trip).
    let after = bob.send(conv.clone(), "three").await.unwrap();
    assert!(matches!(after.outcome().await, seqline_client::SendState::Sent(5)));
    let batch = Batch::new(conv.clone()).send("bye").leave();
    assert_eq!(bob.send_batch(&batch).await.unwrap(), vec![6, 7]);
    // The same batch again: the original numbers.
    assert_eq!(bob.send_batch(&batch).await.unwrap(), vec![6, 7]);
    // Bob left: a new batch is refused at its first command, nothing sequenced.
    let late = Batch::new(conv.clone()).send("still here?");
    match bob.send_batch(&late).await {
        Err(ClientError::BatchRefused { index, id, code, .. }) => {
            assert_eq!((index, id, code), (0, late.ids()[0], RefusalCode::NotMember));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Refused by the gateway before anything is published.
    let big = Batch::new(conv.clone()).send("ok").send("x".repeat(20_000));
    match bob.send_batch(&big).await {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, seqline_core::protocol::ErrorCode::TooLarge);
            assert!(message.contains(&format!("command 1 ({})", big.ids()[1])), "{message}");
        }
        other => panic!("expected the gateway's refusal, got {other:?}"),
    }
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    assert_eq!(all_messages(&mut alice, &conv).await.len(), 7);
    bob.close().await;
}
