//! The `Store` contract. Each check takes a harness, opens a store and uses
//! fresh ids.

use crate::fixtures::{conversation, create_batch, device, messages_batch, timeline_batch, user};
use crate::{ok, Harness};
use seqline_core::ids::{ClientMsgId, ConvSeq, UserSeq};
use seqline_core::ids::{ConversationId, UserId};
use seqline_core::model::Message;
use seqline_core::model::{Outcome, RefusalCode, Role};
use seqline_core::ports::{MemberChange, MemberWindow, Store, MAX_MEMBER_WINDOWS};
use seqline_core::Error;
use std::sync::Arc;

/// The store's harness.
pub type StoreHarness = dyn Harness<dyn Store>;

/// Runs every store check in turn.
pub async fn store_contract(h: &StoreHarness) {
    create_and_load(h).await;
    missing_conversation(h).await;
    cas_race(h).await;
    heads_contiguous(h).await;
    reads_clamp_at_head(h).await;
    dedup_recall(h).await;
    members_and_index(h).await;
    membership_windows(h).await;
    timeline_apply(h).await;
    device_cursor_monotonic(h).await;
    paging_before_after(h).await;
    read_position_monotonic(h).await;
    read_positions_listed_and_durable(h).await;
    message_display_fields_round_trip(h).await;
    epoch_identifies_the_data(h).await;
}

/// Generates one test per store check; `$harness` builds the harness.
#[macro_export]
macro_rules! store_tests {
    ($harness:expr) => {
        $crate::__contract_tests!(store, $harness; create_and_load, missing_conversation, cas_race,
            heads_contiguous, reads_clamp_at_head, dedup_recall, members_and_index, membership_windows, timeline_apply,
            device_cursor_monotonic, paging_before_after, read_position_monotonic,
            read_positions_listed_and_durable, message_display_fields_round_trip,
            epoch_identifies_the_data);
    };
}

/// A created conversation loads back whole; creating it again is fenced.
pub async fn create_and_load(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice, bob) = (conversation(), user("alice"), user("bob"));
    let mut batch = create_batch(&conv, &alice, std::slice::from_ref(&bob));
    let id = ClientMsgId::random();
    batch.device_last = vec![((alice.clone(), device("phone")), id)];
    ok(store.commit_conversation(batch.clone()).await, "create");
    let state = ok(store.load_conversation(&conv).await, "load").expect_some("created conversation");
    assert_eq!(state.meta, batch.create.clone().expect_some("meta"));
    assert_eq!(state.head, ConvSeq(0));
    assert_eq!(state.members.get(&alice), Some(&Role::Admin));
    assert_eq!(state.members.get(&bob), Some(&Role::Member));
    assert_eq!(state.device_last.get(&(alice.clone(), device("phone"))), Some(&id));
    assert_eq!(ok(store.conversation_head(&conv).await, "head"), Some(ConvSeq(0)));
    assert_eq!(ok(store.conversation_meta(&conv).await, "meta"), batch.create.clone());
    let again = store.commit_conversation(batch).await;
    assert!(
        matches!(again, Err(Error::Fenced(_))),
        "creating twice must be fenced, got {again:?}"
    );
}

/// An unknown conversation reads as absent, not as an error.
pub async fn missing_conversation(h: &StoreHarness) {
    let store = h.open().await;
    let conv = conversation();
    assert!(ok(store.load_conversation(&conv).await, "load").is_none());
    assert_eq!(ok(store.conversation_head(&conv).await, "head"), None);
    assert_eq!(ok(store.conversation_meta(&conv).await, "meta"), None);
    assert!(ok(store.messages_after(&conv, ConvSeq(0), 10).await, "after").is_empty());
    assert!(ok(store.members(&conv).await, "members").is_empty());
}

/// Two writers with the same expected head: exactly one wins; the loser is
/// fenced and wrote nothing.
pub async fn cas_race(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    for round in 0..5u64 {
        let head = round * 2;
        let a = messages_batch(&conv, head, 2, &alice);
        let b = messages_batch(&conv, head, 2, &alice);
        let (ra, rb) = tokio::join!(
            spawn_commit(Arc::clone(&store), a.clone()),
            spawn_commit(Arc::clone(&store), b.clone())
        );
        let (winner, loser) = match (ra, rb) {
            (Ok(()), Err(Error::Fenced(_))) => (a, b),
            (Err(Error::Fenced(_)), Ok(())) => (b, a),
            other => panic!("round {round}: expected one win and one fence, got {other:?}"),
        };
        let stored = ok(store.messages_after(&conv, ConvSeq(head), 10).await, "read back");
        assert_eq!(stored, winner.messages, "the winner's messages are stored");
        for (id, _) in &loser.dedup {
            assert_eq!(
                ok(store.dedup(&conv, *id).await, "dedup"),
                None,
                "the loser wrote nothing"
            );
        }
    }
    assert_eq!(ok(store.conversation_head(&conv).await, "head"), Some(ConvSeq(10)));
}

async fn spawn_commit(
    store: Arc<dyn Store>,
    batch: seqline_core::ports::ConversationBatch,
) -> seqline_core::Result<()> {
    match tokio::spawn(async move { store.commit_conversation(batch).await }).await {
        Ok(r) => r,
        Err(e) => panic!("commit task failed: {e}"),
    }
}

/// Heads advance by exactly the messages written; a stale or inconsistent
/// batch is refused and changes nothing.
pub async fn heads_contiguous(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    let mut head = 0;
    for count in [1u64, 3, 1, 5] {
        ok(
            store
                .commit_conversation(messages_batch(&conv, head, count, &alice))
                .await,
            "append",
        );
        head += count;
        assert_eq!(ok(store.conversation_head(&conv).await, "head"), Some(ConvSeq(head)));
    }
    let stale = store
        .commit_conversation(messages_batch(&conv, head - 1, 1, &alice))
        .await;
    assert!(
        matches!(stale, Err(Error::Fenced(_))),
        "stale head must be fenced, got {stale:?}"
    );
    let mut gap = messages_batch(&conv, head, 2, &alice);
    gap.messages[1].conv_seq = ConvSeq(head + 3);
    assert!(
        store.commit_conversation(gap).await.is_err(),
        "a gap in conv_seq is refused"
    );
    let mut short = messages_batch(&conv, head, 2, &alice);
    short.new_head = ConvSeq(head + 5);
    assert!(
        store.commit_conversation(short).await.is_err(),
        "new_head must match the messages"
    );
    let all = ok(store.messages_after(&conv, ConvSeq(0), 100).await, "all");
    let seqs: Vec<u64> = all.iter().map(|m| m.conv_seq.0).collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    assert_eq!(ok(store.conversation_head(&conv).await, "head"), Some(ConvSeq(head)));
}

/// While a writer appends, readers never see a head without the messages
/// below it, nor a message past the head they read afterwards.
pub async fn reads_clamp_at_head(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    let writer = {
        let store = Arc::clone(&store);
        let conv = conv.clone();
        tokio::spawn(async move {
            for i in 0..30u64 {
                ok(
                    store.commit_conversation(messages_batch(&conv, i * 2, 2, &alice)).await,
                    "append",
                );
            }
        })
    };
    let mut last = 0;
    while last < 60 {
        let head = ok(store.conversation_head(&conv).await, "head").map_or(0, |s| s.0);
        assert!(head >= last, "the head never goes back ({last} -> {head})");
        let msgs = ok(store.messages_after(&conv, ConvSeq(0), 1000).await, "read");
        let seqs: Vec<u64> = msgs.iter().map(|m| m.conv_seq.0).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "a contiguous prefix");
        assert!(seqs.len() as u64 >= head, "messages up to the head {head} are readable");
        let after = ok(store.conversation_head(&conv).await, "head").map_or(0, |s| s.0);
        assert!(seqs.len() as u64 <= after, "no message past the head");
        last = head;
        tokio::task::yield_now().await;
    }
    if let Err(e) = writer.await {
        panic!("writer failed: {e}");
    }
    assert!(ok(store.messages_after(&conv, ConvSeq(60), 10).await, "past head").is_empty());
}

/// Outcomes are recalled by client id, refusals included; unknown ids are not.
pub async fn dedup_recall(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    let mut batch = messages_batch(&conv, 0, 2, &alice);
    let refused = ClientMsgId::random();
    let refusal = Outcome::Refused {
        code: RefusalCode::Forbidden,
        reason: "admins only".into(),
    };
    batch.dedup.push((refused, refusal.clone()));
    ok(store.commit_conversation(batch.clone()).await, "commit");
    for (id, outcome) in &batch.dedup {
        assert_eq!(ok(store.dedup(&conv, *id).await, "dedup").as_ref(), Some(outcome));
    }
    assert_eq!(ok(store.dedup(&conv, refused).await, "refusal"), Some(refusal));
    assert_eq!(ok(store.dedup(&conv, ClientMsgId::random()).await, "unknown"), None);
    assert_eq!(
        ok(
            store.dedup(&conversation(), batch.dedup[0].0).await,
            "other conversation"
        ),
        None
    );
}

/// Members come and go; `conversations_of` follows.
pub async fn members_and_index(h: &StoreHarness) {
    let store = h.open().await;
    let (c1, c2, alice, bob) = (conversation(), conversation(), user("alice"), user("bob"));
    ok(
        store
            .commit_conversation(create_batch(&c1, &alice, std::slice::from_ref(&bob)))
            .await,
        "create 1",
    );
    ok(
        store.commit_conversation(create_batch(&c2, &alice, &[])).await,
        "create 2",
    );
    let mut of_alice = ok(store.conversations_of(&alice).await, "of alice");
    of_alice.sort();
    let mut want = vec![c1.clone(), c2.clone()];
    want.sort();
    assert_eq!(of_alice, want);
    assert_eq!(ok(store.conversations_of(&bob).await, "of bob"), vec![c1.clone()]);
    assert_eq!(ok(store.member_role(&c1, &bob).await, "role"), Some(Role::Member));

    let mut change = messages_batch(&c1, 0, 0, &alice);
    change.members = vec![MemberChange {
        user: bob.clone(),
        role: None,
        at: ConvSeq(2),
    }];
    ok(store.commit_conversation(change).await, "remove bob");
    let mut add = messages_batch(&c2, 0, 0, &alice);
    add.members = vec![MemberChange {
        user: bob.clone(),
        role: Some(Role::Admin),
        at: ConvSeq(2),
    }];
    ok(store.commit_conversation(add).await, "add bob");

    assert_eq!(ok(store.member_role(&c1, &bob).await, "gone"), None);
    assert_eq!(ok(store.conversations_of(&bob).await, "of bob"), vec![c2.clone()]);
    let members = ok(store.members(&c2).await, "members of 2");
    assert_eq!(members.len(), 2);
    assert!(members.contains(&(bob.clone(), Role::Admin)));
    assert!(members.contains(&(alice.clone(), Role::Admin)));
    assert_eq!(ok(store.members(&c1).await, "members of 1"), vec![(alice, Role::Admin)]);
}

/// Joins and leaves open and close membership windows, a user's latest
/// [`MAX_MEMBER_WINDOWS`] are kept, and a member stored without events has
/// one window from the start.
pub async fn membership_windows(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice, bob, carol) = (conversation(), user("alice"), user("bob"), user("carol"));
    ok(
        store
            .commit_conversation(create_batch(&conv, &alice, std::slice::from_ref(&bob)))
            .await,
        "create",
    );
    let window = |joined: u64, left: Option<u64>| MemberWindow {
        joined: ConvSeq(joined),
        left: left.map(ConvSeq),
    };
    // One batch per change; the events' conv_seqs only need to increase.
    let changes = [(3, None), (5, Some(Role::Member)), (8, None)];
    for (at, role) in changes {
        let mut b = messages_batch(&conv, 0, 0, &alice);
        b.members = vec![MemberChange {
            user: bob.clone(),
            role,
            at: ConvSeq(at),
        }];
        ok(store.commit_conversation(b).await, "change bob");
    }
    assert_eq!(
        ok(store.membership(&conv, &bob).await, "bob"),
        vec![window(1, Some(3)), window(5, Some(8))]
    );
    assert_eq!(
        ok(store.membership(&conv, &alice).await, "alice"),
        vec![window(1, None)]
    );
    assert!(ok(store.membership(&conv, &carol).await, "carol").is_empty());
    for i in 0..MAX_MEMBER_WINDOWS as u64 + 2 {
        let mut b = messages_batch(&conv, 0, 0, &alice);
        b.members = [Some(Role::Member), None]
            .into_iter()
            .enumerate()
            .map(|(k, role)| MemberChange {
                user: carol.clone(),
                role,
                at: ConvSeq(10 + 2 * i + k as u64),
            })
            .collect();
        ok(store.commit_conversation(b).await, "churn carol");
    }
    let kept = ok(store.membership(&conv, &carol).await, "carol churned");
    assert_eq!(kept.len(), MAX_MEMBER_WINDOWS, "bounded");
    let last = 10 + 2 * (MAX_MEMBER_WINDOWS as u64 + 1);
    assert_eq!(kept.last(), Some(&window(last, Some(last + 1))));
    assert_eq!(kept.first(), Some(&window(14, Some(15))), "the latest ones");
}

/// Timeline batches advance the head, remember what was applied, and are
/// fenced on a stale head.
pub async fn timeline_apply(h: &StoreHarness) {
    let store = h.open().await;
    let (bob, c1, c2) = (user("bob"), conversation(), conversation());
    let empty = ok(store.load_timeline(&bob).await, "empty");
    assert_eq!(empty.head, UserSeq(0));
    assert!(empty.applied.is_empty());
    let first = timeline_batch(&bob, 0, &c1, 1, 3);
    ok(store.commit_timeline(first.clone()).await, "first");
    ok(
        store.commit_timeline(timeline_batch(&bob, 3, &c2, 1, 2)).await,
        "second",
    );
    let stale = store.commit_timeline(timeline_batch(&bob, 3, &c2, 3, 1)).await;
    assert!(
        matches!(stale, Err(Error::Fenced(_))),
        "stale timeline head must be fenced, got {stale:?}"
    );
    let state = ok(store.load_timeline(&bob).await, "load");
    assert_eq!(state.head, UserSeq(5));
    assert_eq!(state.applied.get(&c1), Some(&ConvSeq(3)));
    assert_eq!(state.applied.get(&c2), Some(&ConvSeq(2)));
    assert_eq!(ok(store.timeline_head(&bob).await, "head"), UserSeq(5));
    let entries = ok(store.timeline_after(&bob, UserSeq(0), 100).await, "all");
    let seqs: Vec<u64> = entries.iter().map(|e| e.user_seq.0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(entries[..3], first.entries[..]);
    let page = ok(store.timeline_after(&bob, UserSeq(1), 2).await, "page");
    assert_eq!(page.iter().map(|e| e.user_seq.0).collect::<Vec<_>>(), vec![2, 3]);
    assert!(ok(store.timeline_after(&bob, UserSeq(5), 10).await, "past head").is_empty());
}

/// A device cursor only moves forward.
pub async fn device_cursor_monotonic(h: &StoreHarness) {
    let store = h.open().await;
    let (bob, phone, laptop) = (user("bob"), device("phone"), device("laptop"));
    assert_eq!(ok(store.device_cursor(&bob, &phone).await, "none"), None);
    ok(store.set_device_cursor(&bob, &phone, UserSeq(5)).await, "set 5");
    ok(store.set_device_cursor(&bob, &phone, UserSeq(3)).await, "set 3");
    assert_eq!(ok(store.device_cursor(&bob, &phone).await, "still 5"), Some(UserSeq(5)));
    ok(store.set_device_cursor(&bob, &phone, UserSeq(9)).await, "set 9");
    assert_eq!(ok(store.device_cursor(&bob, &phone).await, "9"), Some(UserSeq(9)));
    assert_eq!(ok(store.device_cursor(&bob, &laptop).await, "other device"), None);
}

/// History pages backwards and forwards with limits, never past the head.
pub async fn paging_before_after(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    ok(
        store.commit_conversation(messages_batch(&conv, 0, 25, &alice)).await,
        "append",
    );
    let seqs = |msgs: Vec<seqline_core::model::Message>| msgs.iter().map(|m| m.conv_seq.0).collect::<Vec<_>>();
    assert_eq!(
        seqs(ok(store.messages_before(&conv, ConvSeq(11), 3).await, "before 11")),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(ok(store.messages_before(&conv, ConvSeq(3), 10).await, "before 3")),
        vec![1, 2]
    );
    assert!(ok(store.messages_before(&conv, ConvSeq(1), 10).await, "before 1").is_empty());
    assert_eq!(
        seqs(ok(store.messages_before(&conv, ConvSeq(1000), 2).await, "latest")),
        vec![24, 25]
    );
    assert_eq!(
        seqs(ok(store.messages_after(&conv, ConvSeq(20), 3).await, "after 20")),
        vec![21, 22, 23]
    );
    assert_eq!(
        seqs(ok(store.messages_after(&conv, ConvSeq(23), 10).await, "after 23")),
        vec![24, 25]
    );
    assert!(ok(store.messages_after(&conv, ConvSeq(0), 0).await, "limit 0").is_empty());
    // Paging back from the head reaches conv_seq 1.
    let mut before = ConvSeq(26);
    let mut seen = Vec::new();
    loop {
        let page = ok(store.messages_before(&conv, before, 7).await, "page");
        let Some(first) = page.first() else { break };
        before = first.conv_seq;
        seen.splice(0..0, seqs(page));
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

/// A read position only moves forward; each set returns the position now
/// stored, the higher of the old and the new.
pub async fn read_position_monotonic(h: &StoreHarness) {
    let store = h.open().await;
    let (bob, carol, c1, c2) = (user("bob"), user("carol"), conversation(), conversation());
    assert!(ok(store.read_positions(&bob).await, "none yet").is_empty());
    assert_eq!(
        ok(store.set_read_position(&bob, &c1, ConvSeq(5)).await, "set 5"),
        ConvSeq(5)
    );
    assert_eq!(
        ok(store.set_read_position(&bob, &c1, ConvSeq(3)).await, "set 3"),
        ConvSeq(5),
        "a lower position does not move it back"
    );
    assert_eq!(
        ok(store.set_read_position(&bob, &c1, ConvSeq(5)).await, "again 5"),
        ConvSeq(5)
    );
    assert_eq!(positions(&store, &bob).await, vec![(c1.clone(), ConvSeq(5))]);
    assert_eq!(
        ok(store.set_read_position(&bob, &c1, ConvSeq(9)).await, "set 9"),
        ConvSeq(9)
    );
    assert_eq!(positions(&store, &bob).await, vec![(c1.clone(), ConvSeq(9))]);
    // Another conversation and another user start from nothing.
    assert_eq!(
        ok(store.set_read_position(&bob, &c2, ConvSeq(1)).await, "other conv"),
        ConvSeq(1)
    );
    assert_eq!(
        ok(store.set_read_position(&carol, &c1, ConvSeq(2)).await, "other user"),
        ConvSeq(2)
    );
    assert_eq!(positions(&store, &carol).await, vec![(c1.clone(), ConvSeq(2))]);
    let mut want = vec![(c1, ConvSeq(9)), (c2, ConvSeq(1))];
    want.sort();
    assert_eq!(positions(&store, &bob).await, want);
}

/// `read_positions` lists one position per conversation, and they survive
/// a reopen.
pub async fn read_positions_listed_and_durable(h: &StoreHarness) {
    let store = h.open().await;
    let bob = user("bob");
    let convs: Vec<ConversationId> = (0..5).map(|_| conversation()).collect();
    for (i, conv) in convs.iter().enumerate() {
        let seq = 10 * (i as u64 + 1);
        // Several moves per conversation, out of order: one row each.
        for s in [seq - 3, seq, seq - 7] {
            ok(store.set_read_position(&bob, conv, ConvSeq(s)).await, "set");
        }
    }
    let mut want: Vec<(ConversationId, ConvSeq)> = convs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), ConvSeq(10 * (i as u64 + 1))))
        .collect();
    want.sort();
    assert_eq!(positions(&store, &bob).await, want);
    drop(store);
    let store = h.open().await;
    assert_eq!(positions(&store, &bob).await, want, "after a reopen");
    assert_eq!(
        ok(
            store.set_read_position(&bob, &convs[0], ConvSeq(1)).await,
            "lower after reopen"
        ),
        ConvSeq(10)
    );
}

async fn positions(store: &Arc<dyn Store>, user: &UserId) -> Vec<(ConversationId, ConvSeq)> {
    let mut all = ok(store.read_positions(user).await, "read positions");
    all.sort();
    all
}

/// A message's sender name and read-diffusion flag are stored and read back
/// exactly, through conversations and timelines, also after a reopen.
pub async fn message_display_fields_round_trip(h: &StoreHarness) {
    let store = h.open().await;
    let (conv, alice, bob) = (conversation(), user("alice"), user("bob"));
    ok(
        store
            .commit_conversation(create_batch(&conv, &alice, std::slice::from_ref(&bob)))
            .await,
        "create",
    );
    let mut batch = messages_batch(&conv, 0, 4, &alice);
    let names = ["Alice", "", "Ålice «the admin» 🦀", "Alice"];
    for (i, m) in batch.messages.iter_mut().enumerate() {
        m.sender_name = names[i].to_string();
        // The mode flips at the third message (the boundary).
        m.read_diffusion = i >= 2;
    }
    ok(store.commit_conversation(batch.clone()).await, "commit");
    let check_conv = |got: Vec<Message>, what: &str| {
        assert_eq!(got, batch.messages, "{what}");
        let flags: Vec<bool> = got.iter().map(|m| m.read_diffusion).collect();
        assert_eq!(flags, [false, false, true, true], "{what}");
        assert_eq!(got[2].sender_name, names[2], "{what}");
    };
    check_conv(ok(store.messages_after(&conv, ConvSeq(0), 10).await, "after"), "after");
    check_conv(
        ok(store.messages_before(&conv, ConvSeq(5), 10).await, "before"),
        "before",
    );

    let mut timeline = timeline_batch(&bob, 0, &conv, 1, 4);
    for (entry, m) in timeline.entries.iter_mut().zip(&batch.messages) {
        entry.message = m.clone();
    }
    ok(store.commit_timeline(timeline.clone()).await, "timeline");
    let entries = ok(store.timeline_after(&bob, UserSeq(0), 10).await, "timeline after");
    assert_eq!(entries, timeline.entries);
    assert!(entries[3].message.read_diffusion && entries[0].message.sender_name == "Alice");

    drop(store);
    let store = h.open().await;
    check_conv(
        ok(store.messages_after(&conv, ConvSeq(0), 10).await, "reopened"),
        "after a reopen",
    );
    assert_eq!(
        ok(store.timeline_after(&bob, UserSeq(0), 10).await, "reopened timeline"),
        timeline.entries
    );
}

/// `Option::expect` without the lint: fail the check with `what`.
trait ExpectSome<T> {
    fn expect_some(self, what: &str) -> T;
}

impl<T> ExpectSome<T> for Option<T> {
    #[track_caller]
    fn expect_some(self, what: &str) -> T {
        match self {
            Some(v) => v,
            None => panic!("expected {what}"),
        }
    }
}

/// The epoch is the same on every read and after a reopen of the same data,
/// and another for other, new data (a wiped store).
pub async fn epoch_identifies_the_data(h: &StoreHarness) {
    let store = h.open().await;
    let epoch = ok(store.epoch().await, "epoch");
    assert_eq!(ok(store.epoch().await, "epoch again"), epoch);
    let (conv, alice) = (conversation(), user("alice"));
    ok(
        store.commit_conversation(create_batch(&conv, &alice, &[])).await,
        "create",
    );
    drop(store);
    let store = h.open().await;
    assert_eq!(ok(store.epoch().await, "epoch after a reopen"), epoch);
    assert!(ok(store.conversation_head(&conv).await, "head").is_some());
    drop(store);
    let Some(other) = h.open_other().await else {
        panic!("this store harness cannot open a fresh store (Harness::open_other), so the epoch check cannot run");
    };
    let fresh = ok(other.epoch().await, "epoch of a fresh store");
    assert_ne!(fresh, epoch, "a fresh store must have another epoch");
    assert_eq!(
        ok(other.conversation_head(&conv).await, "head in the fresh store"),
        None
    );
    assert_eq!(ok(other.epoch().await, "fresh epoch again"), fresh);
}
