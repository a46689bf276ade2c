//! A device whose cursor belongs to other data is told so (G6): the real
//! `seqline dev` process on a data directory that is wiped, restored from
//! an older copy, or swapped for another, with real WebSocket clients that
//! follow the protocol and with the client SDK and its file cursor.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_client::{Client, ClientConfig, CursorStore, Event, FileCursor};
use seqline_core::ids::ClientMsgId;
use seqline_core::model::TimelineEntry;
use seqline_core::protocol::{ClientFrame, ErrorCode, ResetCode, ServerFrame};
use seqline_core::{ConversationId, Epoch};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn create_dm(server: &Server) -> ConversationId {
    let (status, body) = http_post(
        server,
        "/v1/conversations",
        &token("alice", "http"),
        r#"{"kind":"direct","members":["bob"]}"#,
    )
    .await;
    assert_eq!(status, 200, "create dm: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    ConversationId::parse(v["conv"].as_str().unwrap()).unwrap()
}

/// Alice sends `n` messages `<tag> <i>` to bob (creating the direct
/// conversation when `create`); returns once all are acked and bob's
/// timeline holds `want` entries.
async fn write(server: &Server, create: bool, n: usize, tag: &str, want: usize) {
    let conv = if create {
        create_dm(server).await
    } else {
        ConversationId::direct(
            &seqline_core::UserId::parse("alice").unwrap(),
            &seqline_core::UserId::parse("bob").unwrap(),
        )
    };
    let (mut alice, _) = connect(server, "alice", &format!("w{}", uuid::Uuid::new_v4().simple())).await;
    let mut prev = None;
    let ids: Vec<ClientMsgId> = (0..n).map(|_| ClientMsgId::random()).collect();
    for (i, id) in ids.iter().enumerate() {
        let frame = ClientFrame::Send {
            id: *id,
            conv: conv.clone(),
            body: format!("{tag} {i}"),
            prev,
            priority: false,
            vclock: Default::default(),
        };
        send(&mut alice, &frame).await;
        prev = Some(*id);
    }
    let mut acked = 0;
    while acked < n {
        if let ServerFrame::Ack { .. } = recv(&mut alice).await {
            acked += 1;
        }
    }
    let (mut bob, _) = connect(server, "bob", "reader").await;
    let all = sync_at_least(&mut bob, want).await;
    assert_eq!(all.len(), want, "bob's timeline after writing {tag}");
}

fn epoch_of(welcome: &ServerFrame) -> Epoch {
    match welcome {
        ServerFrame::Welcome { epoch, .. } => *epoch,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// What a device keeps: the epoch, its timeline, and its cursor's entry id.
struct Device {
    epoch: Epoch,
    entries: Vec<TimelineEntry>,
}

impl Device {
    fn cursor(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.user_seq.0)
    }
    fn cursor_id(&self) -> Option<ClientMsgId> {
        self.entries.last().map(|e| e.message.client_msg_id)
    }
}

/// Bob's phone syncs everything, as a device does after `welcome`.
async fn bob_syncs(server: &Server) -> Device {
    let (mut ws, welcome) = connect(server, "bob", "phone").await;
    let epoch = epoch_of(&welcome);
    let mut entries: Vec<TimelineEntry> = Vec::new();
    for req in 1.. {
        let after = entries.last().map_or(0, |e| e.user_seq.0);
        let id = entries.last().map(|e| e.message.client_msg_id);
        match sync_marked(&mut ws, req, after, Some(epoch), id).await {
            ServerFrame::SyncPage {
                entries: page,
                more,
                epoch: e,
                ..
            } => {
                assert_eq!(e, epoch, "pages carry the welcome's epoch");
                entries.extend(page);
                if !more {
                    break;
                }
            }
            other => panic!("expected a page, got {other:?}"),
        }
    }
    Device { epoch, entries }
}

fn reset_code(frame: &ServerFrame) -> (ResetCode, Epoch) {
    match frame {
        ServerFrame::Reset { code, epoch, .. } => (*code, *epoch),
        other => panic!("expected reset, got {other:?}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn replace_dir(dir: &Path, with: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    copy_dir(with, dir);
}

#[tokio::test]
async fn a_wiped_store_has_another_epoch_and_old_cursors_get_reset() {
    let data = temp_dir("epoch-wipe");
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, true, 30, "old", 31).await;
    let bob = bob_syncs(&server).await;
    assert_eq!(bob.cursor(), 31);
    server.terminate();
    std::fs::remove_dir_all(&data).unwrap();
    let server = Server::start(&data, "127.0.0.1:0");
    // The new data grows past the device's cursor: the head alone says nothing.
    write(&server, true, 40, "new", 41).await;

    let (mut ws, welcome) = connect(&server, "bob", "phone").await;
    let now = epoch_of(&welcome);
    assert_ne!(now, bob.epoch, "a wiped store is a new epoch");
    let answer = sync_marked(&mut ws, 1, bob.cursor(), Some(bob.epoch), bob.cursor_id()).await;
    assert_eq!(reset_code(&answer), (ResetCode::StaleEpoch, now));
    // A client that sends no epoch is still caught by its cursor's mark.
    let answer = sync_marked(&mut ws, 2, bob.cursor(), None, bob.cursor_id()).await;
    assert_eq!(reset_code(&answer), (ResetCode::OtherEntry, now));
    // History and conversation pulls from the old epoch are refused.
    let conv = bob.entries[0].message.conv.clone();
    send(
        &mut ws,
        &ClientFrame::History {
            req: 3,
            conv: conv.clone(),
            before: None,
            after: None,
            limit: None,
            epoch: Some(bob.epoch),
        },
    )
    .await;
    send(
        &mut ws,
        &ClientFrame::SyncConv {
            req: 4,
            conv: conv.clone(),
            after: 0,
            limit: None,
            epoch: Some(bob.epoch),
        },
    )
    .await;
    for req in [3, 4] {
        let code = recv_until(&mut ws, |f| match f {
            ServerFrame::Error { req: Some(r), code, .. } if *r == req => Some(*code),
            _ => None,
        })
        .await;
        assert_eq!(code, ErrorCode::StaleEpoch, "request {req}");
    }
    // Starting over in the new epoch gives exactly the new timeline.
    send(
        &mut ws,
        &ClientFrame::History {
            req: 5,
            conv,
            before: None,
            after: None,
            limit: None,
            epoch: Some(now),
        },
    )
    .await;
    let head = recv_until(&mut ws, |f| match f {
        ServerFrame::HistoryPage {
            req: 5, head, epoch, ..
        } if *epoch == now => Some(*head),
        _ => None,
    })
    .await;
    assert_eq!(head, 41);
    let fresh = bob_syncs(&server).await;
    assert_eq!(fresh.epoch, now);
    let bodies: Vec<&str> = fresh.entries[1..].iter().map(|e| e.message.body.as_str()).collect();
    assert_eq!(bodies, (0..40).map(|i| format!("new {i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_store_restored_from_an_older_copy_keeps_its_epoch_and_a_reused_cursor_gets_reset() {
    let data = temp_dir("epoch-restore");
    let backup = temp_dir("epoch-restore-backup");
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, true, 10, "kept", 11).await;
    let early = bob_syncs(&server).await;
    server.terminate();
    copy_dir(&data, &backup);
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, false, 20, "lost", 31).await;
    let bob = bob_syncs(&server).await;
    assert_eq!((bob.cursor(), bob.epoch), (31, early.epoch));
    server.terminate();

    replace_dir(&data, &backup);
    let server = Server::start(&data, "127.0.0.1:0");
    // After the restore, user_seqs 12.. are given again to other messages.
    write(&server, false, 25, "after", 36).await;
    let (mut ws, welcome) = connect(&server, "bob", "phone").await;
    assert_eq!(epoch_of(&welcome), bob.epoch, "a restored store keeps its epoch");
    let answer = sync_marked(&mut ws, 1, bob.cursor(), Some(bob.epoch), bob.cursor_id()).await;
    assert_eq!(reset_code(&answer), (ResetCode::OtherEntry, bob.epoch));
    // A device whose cursor is inside the restored prefix syncs on as usual.
    let answer = sync_marked(&mut ws, 2, early.cursor(), Some(early.epoch), early.cursor_id()).await;
    match answer {
        ServerFrame::SyncPage { entries, more, .. } => {
            assert!(!more);
            let bodies: Vec<&str> = entries.iter().map(|e| e.message.body.as_str()).collect();
            assert_eq!(bodies, (0..25).map(|i| format!("after {i}")).collect::<Vec<_>>());
            assert_eq!(entries[0].user_seq.0, 12);
        }
        other => panic!("expected a page, got {other:?}"),
    }
    std::fs::remove_dir_all(&backup).ok();
}

#[tokio::test]
async fn swapped_data_directories_are_told_apart() {
    let (a, b) = (temp_dir("epoch-swap-a"), temp_dir("epoch-swap-b"));
    let mut on_a = Server::start(&a, "127.0.0.1:0");
    let mut on_b = Server::start(&b, "127.0.0.1:0");
    write(&on_a, true, 5, "a", 6).await;
    write(&on_b, true, 12, "b", 13).await;
    let from_a = bob_syncs(&on_a).await;
    let from_b = bob_syncs(&on_b).await;
    assert_ne!(from_a.epoch, from_b.epoch, "two stores, two epochs");
    on_a.terminate();
    on_b.terminate();
    drop((on_a, on_b));
    // The directories trade places: the device that knew A now meets B.
    let swap = temp_dir("epoch-swap-tmp");
    replace_dir(&swap, &a);
    replace_dir(&a, &b);
    replace_dir(&b, &swap);
    let server = Server::start(&a, "127.0.0.1:0");
    let (mut ws, welcome) = connect(&server, "bob", "phone").await;
    assert_eq!(epoch_of(&welcome), from_b.epoch);
    let answer = sync_marked(&mut ws, 1, from_a.cursor(), Some(from_a.epoch), from_a.cursor_id()).await;
    assert_eq!(reset_code(&answer), (ResetCode::StaleEpoch, from_b.epoch));
    let answer = sync_marked(&mut ws, 2, from_b.cursor(), Some(from_b.epoch), from_b.cursor_id()).await;
    assert!(
        matches!(answer, ServerFrame::SyncPage { ref entries, more: false, .. } if entries.is_empty()),
        "the device that knew B is up to date: {answer:?}"
    );
    std::fs::remove_dir_all(&swap).ok();
}

/// The SDK with a file cursor: runs until its cursor reaches `want`, then
/// closes; returns every event it emitted.
async fn sdk_run(server: &Server, cursor: &Path, want: u64) -> Vec<Event> {
    let config = ClientConfig::new(server.ws_url(), token("bob", "tablet")).with_cursor(FileCursor::new(cursor));
    let (client, mut events) = Client::connect(config).await.unwrap();
    let mut status = client.watch_status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.cursor == want && s.synced))
        .await
        .unwrap_or_else(|_| panic!("the SDK's cursor did not reach {want}: {:?}", client.status()))
        .unwrap();
    client.close().await;
    let mut out = Vec::new();
    while let Some(e) = events.recv().await {
        out.push(e);
    }
    out
}

fn delivered(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { entry, .. } => Some((entry.user_seq.0, entry.message.body.clone())),
            _ => None,
        })
        .collect()
}

fn resets(events: &[Event]) -> Vec<(u64, u64, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reset {
                from,
                head,
                data_replaced,
            } => Some((*from, *head, *data_replaced)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_sdk_starts_over_when_the_store_was_wiped_or_restored() {
    let data = temp_dir("epoch-sdk");
    let backup = temp_dir("epoch-sdk-backup");
    let cursor = data.with_extension("cursor");
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, true, 8, "kept", 9).await;
    server.terminate();
    copy_dir(&data, &backup);
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, false, 22, "lost", 31).await;
    let first = sdk_run(&server, &cursor, 31).await;
    assert!(resets(&first).is_empty());
    assert_eq!(delivered(&first).len(), 31);
    let mark = FileCursor::new(&cursor).load_mark().unwrap();
    assert!(
        mark.epoch.is_some() && mark.entry.is_some(),
        "the cursor is stored with its mark: {mark:?}"
    );
    server.terminate();

    // Restored from the older copy, then written past the device's cursor.
    replace_dir(&data, &backup);
    let mut server = Server::start(&data, "127.0.0.1:0");
    write(&server, false, 30, "after", 39).await;
    let second = sdk_run(&server, &cursor, 39).await;
    assert_eq!(resets(&second), vec![(31, 0, true)], "one reset, the data was replaced");
    let want: Vec<(u64, String)> = (1..=39)
        .map(|s| match s {
            1 => (1, String::new()),
            2..=9 => (s, format!("kept {}", s - 2)),
            _ => (s, format!("after {}", s - 10)),
        })
        .collect();
    assert_eq!(delivered(&second), want, "exactly the timeline of the restored data");
    server.terminate();

    // Wiped: another epoch, caught at `welcome` before anything names the old cursor.
    std::fs::remove_dir_all(&data).unwrap();
    let server = Server::start(&data, "127.0.0.1:0");
    write(&server, true, 45, "fresh", 46).await;
    let third = sdk_run(&server, &cursor, 46).await;
    assert_eq!(resets(&third), vec![(39, 0, true)]);
    let bodies: Vec<String> = delivered(&third).into_iter().skip(1).map(|(_, b)| b).collect();
    assert_eq!(bodies, (0..45).map(|i| format!("fresh {i}")).collect::<Vec<_>>());
    let (_, welcome) = connect(&server, "bob", "phone").await;
    assert_eq!(
        FileCursor::new(&cursor).load_mark().unwrap().epoch,
        Some(epoch_of(&welcome))
    );
    std::fs::remove_dir_all(&backup).ok();
    std::fs::remove_file(&cursor).ok();
}
