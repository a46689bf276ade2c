//! Batches in the sequencer: consecutive numbers or nothing, whatever is
//! interleaved with them; resends get the original numbers; a refusal names
//! the command that failed. The state machine directly, then the real
//! persister over the embedded log.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use seqline_core::ids::*;
use seqline_core::model::{ConversationKind, MessageKind, Outcome, RefusalCode};
use seqline_core::records::{
    BatchCommand, BatchItem, Command, CreateCommand, LogRecord, MembersCommand, Origin, SendCommand, Topic,
    MAX_BATCH_COMMANDS,
};
use seqline_persister::sequencer::{apply, Applied, ConvState, Limits};
use std::collections::HashMap;

const LIMITS: Limits = Limits {
    max_group_members: 100,
    max_body_bytes: 1000,
    dedup_window: 1024,
    read_diffusion_threshold: 50,
};

fn origin(u: &str) -> Origin {
    Origin {
        name: String::new(),
        gateway: GatewayId::parse("gw").unwrap(),
        user: common::user(u),
        device: DeviceId::parse("d").unwrap(),
        request: 0,
    }
}

fn room() -> ConversationId {
    common::conv("g:room")
}

fn group(members: &[&str]) -> Option<ConvState> {
    let mut state = None;
    let cmd = Command::Create(CreateCommand {
        origin: origin("admin"),
        conv: room(),
        kind: ConversationKind::Group,
        title: "room".into(),
        members: members.iter().map(|m| common::user(m)).collect(),
        client_msg_id: ClientMsgId::random(),
    });
    assert!(matches!(apply(&mut state, cmd, 0, &LIMITS), Applied::Sequenced { .. }));
    state
}

fn send_item(u: &str, id: ClientMsgId, prev: Option<ClientMsgId>, body: &str) -> BatchItem {
    BatchItem::Send(SendCommand {
        origin: origin(u),
        conv: room(),
        client_msg_id: id,
        prev,
        body: body.into(),
        priority: false,
        vclock: Default::default(),
        sent_ms: 0,
    })
}

fn remove_item(u: &str, id: ClientMsgId, who: &str) -> BatchItem {
    BatchItem::ChangeMembers(MembersCommand {
        origin: origin(u),
        conv: room(),
        client_msg_id: id,
        add: Vec::new(),
        remove: vec![common::user(who)],
    })
}

/// `sends` sends from `u` (chained from `prev`), then, when `leave`, `u`
/// leaves; with the ids, in order.
fn batch(u: &str, prev: Option<ClientMsgId>, sends: usize, leave: bool) -> (Vec<ClientMsgId>, Command) {
    let mut ids = Vec::new();
    let mut commands = Vec::new();
    let mut last = prev;
    for i in 0..sends {
        let id = ClientMsgId::random();
        commands.push(send_item(u, id, last, &format!("{u} {i}")));
        last = Some(id);
        ids.push(id);
    }
    if leave {
        let id = ClientMsgId::random();
        commands.push(remove_item(u, id, u));
        ids.push(id);
    }
    let cmd = Command::Batch(BatchCommand {
        origin: origin(u),
        conv: room(),
        commands,
    });
    (ids, cmd)
}

fn single(u: &str, id: ClientMsgId) -> Command {
    let BatchItem::Send(c) = send_item(u, id, None, "alone") else {
        unreachable!()
    };
    Command::Send(c)
}

/// A command's number, or its refusal.
type Answer = Result<u64, (RefusalCode, String)>;

/// The number or the refusal of each command of a batch's answer.
fn outcomes(a: Applied) -> Vec<Answer> {
    let Applied::Batch(items) = a else {
        panic!("not a batch: {a:?}")
    };
    items
        .into_iter()
        .map(|a| match a {
            Applied::Sequenced {
                outcome: Outcome::Sequenced { conv_seq },
                ..
            }
            | Applied::Duplicate(Outcome::Sequenced { conv_seq }) => Ok(conv_seq.0),
            Applied::Refused {
                outcome: Outcome::Refused { code, reason },
                ..
            }
            | Applied::Duplicate(Outcome::Refused { code, reason }) => Err((code, reason)),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn head(s: &Option<ConvState>) -> u64 {
    s.as_ref().unwrap().head.0
}

fn is_member(s: &Option<ConvState>, u: &str) -> bool {
    s.as_ref().unwrap().members.contains_key(&common::user(u))
}

#[test]
fn send_then_leave_is_consecutive_and_a_resend_gets_the_same_numbers() {
    let mut s = group(&["bob"]);
    let (ids, cmd) = batch("bob", None, 2, true);
    let got = outcomes(apply(&mut s, cmd.clone(), 0, &LIMITS));
    assert_eq!(got, vec![Ok(2), Ok(3), Ok(4)]);
    assert!(!is_member(&s, "bob"));
    // The resend: the original numbers, nothing new.
    assert_eq!(outcomes(apply(&mut s, cmd, 0, &LIMITS)), vec![Ok(2), Ok(3), Ok(4)]);
    assert_eq!(head(&s), 4);
    assert_eq!(ids.len(), 3);
}

#[test]
fn the_leaver_receives_the_messages_it_sent_before_leaving() {
    let mut s = group(&["bob", "carol"]);
    let (_, cmd) = batch("bob", None, 1, true);
    let Applied::Batch(items) = apply(&mut s, cmd, 0, &LIMITS) else {
        panic!()
    };
    let Applied::Sequenced { removed, messages, .. } = &items[0] else {
        panic!()
    };
    assert_eq!(messages[0].kind, MessageKind::Text);
    assert_eq!(removed, &vec![common::user("bob")]);
}

#[test]
fn a_bad_command_refuses_the_whole_batch_naming_it_and_changes_nothing() {
    let mut s = group(&["bob"]);
    let (mut ids, cmd) = batch("bob", None, 2, true);
    let Command::Batch(mut b) = cmd else { unreachable!() };
    let big = ClientMsgId::random();
    b.commands.insert(
        1,
        send_item("bob", big, Some(ids[0]), &"x".repeat(LIMITS.max_body_bytes + 1)),
    );
    ids.insert(1, big);
    // The send after the big one follows it.
    if let BatchItem::Send(c) = &mut b.commands[2] {
        c.prev = Some(big);
    }
    let got = outcomes(apply(&mut s, Command::Batch(b.clone()), 0, &LIMITS));
    assert_eq!(got.len(), 4);
    for g in &got {
        let (code, reason) = g.as_ref().unwrap_err();
        assert_eq!(*code, RefusalCode::Invalid);
        assert!(reason.contains(&format!("command 1 ({big})")), "{reason}");
        assert!(reason.contains("too large"), "{reason}");
    }
    assert_eq!(head(&s), 1);
    assert!(is_member(&s, "bob"));
    // Remembered: the resend gets the same refusal.
    assert_eq!(outcomes(apply(&mut s, Command::Batch(b), 0, &LIMITS)), got);
    // The device's chain moved past the refused sends, as past one refused send.
    let (_, next) = batch("bob", Some(ids[2]), 1, false);
    assert_eq!(outcomes(apply(&mut s, next, 0, &LIMITS)), vec![Ok(2)]);
}

#[test]
fn a_send_after_the_leave_refuses_the_batch_and_the_sender_stays() {
    let mut s = group(&["bob"]);
    let leave = ClientMsgId::random();
    let after = ClientMsgId::random();
    let cmd = Command::Batch(BatchCommand {
        origin: origin("bob"),
        conv: room(),
        commands: vec![
            remove_item("bob", leave, "bob"),
            send_item("bob", after, None, "too late"),
        ],
    });
    let got = outcomes(apply(&mut s, cmd, 0, &LIMITS));
    for g in got {
        let (code, reason) = g.unwrap_err();
        assert_eq!(code, RefusalCode::NotMember);
        assert!(reason.contains(&format!("command 1 ({after})")), "{reason}");
    }
    assert!(is_member(&s, "bob"));
    assert_eq!(head(&s), 1);
}

#[test]
fn shape_errors_are_refused_whole() {
    let mut s = group(&["bob"]);
    // Too many commands.
    let (_, cmd) = batch("bob", None, MAX_BATCH_COMMANDS + 1, false);
    let got = outcomes(apply(&mut s, cmd, 0, &LIMITS));
    assert!(got
        .iter()
        .all(|g| g.as_ref().is_err_and(|(c, _)| *c == RefusalCode::Invalid)));
    // A later send that does not follow the one before it.
    let (_, cmd) = batch("bob", None, 2, false);
    let Command::Batch(mut b) = cmd else { unreachable!() };
    if let BatchItem::Send(c) = &mut b.commands[1] {
        c.prev = None;
    }
    let got = outcomes(apply(&mut s, Command::Batch(b), 0, &LIMITS));
    assert!(got[0].as_ref().unwrap_err().1.contains("command 1"), "{got:?}");
    // Another sender inside the batch.
    let (_, cmd) = batch("bob", None, 1, false);
    let Command::Batch(mut b) = cmd else { unreachable!() };
    b.commands
        .push(send_item("admin", ClientMsgId::random(), None, "me too"));
    let got = outcomes(apply(&mut s, Command::Batch(b), 0, &LIMITS));
    assert!(got[1].as_ref().unwrap_err().1.contains("another sender"), "{got:?}");
    // Adding members.
    let add = BatchItem::ChangeMembers(MembersCommand {
        origin: origin("admin"),
        conv: room(),
        client_msg_id: ClientMsgId::random(),
        add: vec![common::user("dave")],
        remove: Vec::new(),
    });
    let cmd = Command::Batch(BatchCommand {
        origin: origin("admin"),
        conv: room(),
        commands: vec![add],
    });
    let got = outcomes(apply(&mut s, cmd, 0, &LIMITS));
    assert!(got[0].as_ref().unwrap_err().1.contains("may not add"), "{got:?}");
    assert_eq!(head(&s), 1);
    assert!(!is_member(&s, "dave"));
}

#[test]
fn an_id_used_before_refuses_the_batch_and_keeps_its_outcome() {
    let mut s = group(&["bob"]);
    let old = ClientMsgId::random();
    assert!(matches!(
        apply(&mut s, single("bob", old), 0, &LIMITS),
        Applied::Sequenced { .. }
    ));
    let new = ClientMsgId::random();
    let cmd = Command::Batch(BatchCommand {
        origin: origin("bob"),
        conv: room(),
        commands: vec![
            send_item("bob", old, None, "again"),
            send_item("bob", new, Some(old), "new"),
        ],
    });
    let got = outcomes(apply(&mut s, cmd, 0, &LIMITS));
    assert_eq!(got[0], Ok(2));
    let (code, reason) = got[1].as_ref().unwrap_err();
    assert_eq!(*code, RefusalCode::Invalid);
    assert!(reason.contains(&format!("command 0 ({old})")), "{reason}");
    assert_eq!(head(&s), 2);
}

#[test]
fn an_out_of_order_batch_is_not_remembered() {
    let mut s = group(&["bob"]);
    let missing = ClientMsgId::random();
    let (ids, cmd) = batch("bob", Some(missing), 2, false);
    let got = outcomes(apply(&mut s, cmd.clone(), 0, &LIMITS));
    assert!(got
        .iter()
        .all(|g| g.as_ref().is_err_and(|(c, _)| *c == RefusalCode::OutOfOrder)));
    // Its predecessor arrives; the resent batch goes through.
    assert!(matches!(
        apply(&mut s, single("bob", missing), 0, &LIMITS),
        Applied::Sequenced { .. }
    ));
    assert_eq!(outcomes(apply(&mut s, cmd, 0, &LIMITS)), vec![Ok(3), Ok(4)]);
    assert_eq!(ids.len(), 2);
}

#[test]
fn a_batch_for_a_missing_conversation_is_refused() {
    let mut s = None;
    let (_, cmd) = batch("bob", None, 2, true);
    let got = outcomes(apply(&mut s, cmd, 0, &LIMITS));
    assert!(got
        .iter()
        .all(|g| g.as_ref().is_err_and(|(c, _)| *c == RefusalCode::NotMember)));
    assert!(s.is_none());
}

/// One step of random traffic.
#[derive(Clone, Debug)]
enum Step {
    /// User `u` sends a batch of `sends` sends, then leaves when `leave`;
    /// `bad` makes its last send's body too large.
    Batch {
        u: usize,
        sends: usize,
        leave: bool,
        bad: bool,
    },
    /// User `u` sends one message.
    Send { u: usize },
    /// The admin removes user `u`.
    Remove { u: usize },
    /// The admin adds user `u` back.
    Add { u: usize },
    /// Resend the `back`-th latest batch.
    Resend { back: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3, 0usize..4, any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(u, sends, leave, bad)| Step::Batch { u, sends, leave, bad }),
        (0usize..3).prop_map(|u| Step::Send { u }),
        (0usize..3).prop_map(|u| Step::Remove { u }),
        (0usize..3).prop_map(|u| Step::Add { u }),
        (0usize..4).prop_map(|back| Step::Resend { back }),
    ]
}

fn admin_members(id: ClientMsgId, add: &[UserId], remove: &[UserId]) -> Command {
    Command::ChangeMembers(MembersCommand {
        origin: origin("admin"),
        conv: room(),
        client_msg_id: id,
        add: add.to_vec(),
        remove: remove.to_vec(),
    })
}

proptest! {
    /// Batches interleaved with single sends and membership changes by
    /// someone else: a sequenced batch holds consecutive numbers, in its
    /// order, with its leave last; a refused one holds none and moves no
    /// number; a resend gets the first answer; numbers stay 1..=head.
    #[test]
    fn batches_are_consecutive_or_nothing_under_interleaving(steps in prop::collection::vec(step(), 1..120)) {
        let users = ["u0", "u1", "u2"];
        let mut s = group(&users);
        let mut numbers: HashMap<ClientMsgId, u64> = HashMap::new();
        let mut batches: Vec<(Command, Vec<Answer>)> = Vec::new();
        // Each user's last send, for the chain.
        let mut last: HashMap<usize, ClientMsgId> = HashMap::new();
        for step in steps {
            let before = head(&s);
            match step {
                Step::Batch { u, sends, leave, bad } => {
                    let name = users[u];
                    let (ids, cmd) = batch(name, last.get(&u).copied(), sends, leave);
                    if ids.is_empty() {
                        continue;
                    }
                    let bad = bad && sends > 0;
                    let Command::Batch(mut b) = cmd else { unreachable!() };
                    if bad {
                        if let BatchItem::Send(c) = &mut b.commands[sends - 1] {
                            c.body = "x".repeat(LIMITS.max_body_bytes + 1);
                        }
                    }
                    let was_member = is_member(&s, name);
                    let cmd = Command::Batch(b);
                    let got = outcomes(apply(&mut s, cmd.clone(), 0, &LIMITS));
                    prop_assert_eq!(got.len(), ids.len());
                    if got.iter().all(Result::is_ok) {
                        let seqs: Vec<u64> = got.iter().map(|g| *g.as_ref().unwrap()).collect();
                        let want: Vec<u64> = (before + 1..=before + ids.len() as u64).collect();
                        prop_assert_eq!(&seqs, &want);
                        prop_assert_eq!(head(&s), before + ids.len() as u64);
                        prop_assert!(was_member && !bad);
                        prop_assert_eq!(is_member(&s, name), !leave);
                        for (id, n) in ids.iter().zip(&seqs) {
                            prop_assert!(numbers.insert(*id, *n).is_none());
                        }
                    } else {
                        prop_assert!(got.iter().all(Result::is_err), "partly sequenced: {:?}", got);
                        prop_assert_eq!(head(&s), before);
                        prop_assert_eq!(is_member(&s, name), was_member);
                        prop_assert!(!was_member || bad, "refused for nothing: {:?}", got);
                    }
                    // Sequenced or refused for good, the chain moves on.
                    if sends > 0 && got.iter().all(|g| !matches!(g, Err((RefusalCode::OutOfOrder, _)))) {
                        last.insert(u, ids[sends - 1]);
                    }
                    batches.push((cmd, got));
                }
                Step::Send { u } => {
                    let id = ClientMsgId::random();
                    let BatchItem::Send(mut c) = send_item(users[u], id, last.get(&u).copied(), "one") else {
                        unreachable!()
                    };
                    c.prev = last.get(&u).copied();
                    if let Applied::Sequenced { outcome: Outcome::Sequenced { conv_seq }, .. } =
                        apply(&mut s, Command::Send(c), 0, &LIMITS)
                    {
                        prop_assert_eq!(conv_seq.0, before + 1);
                        numbers.insert(id, conv_seq.0);
                    }
                    last.insert(u, id);
                }
                Step::Remove { u } => {
                    let id = ClientMsgId::random();
                    let a = apply(&mut s, admin_members(id, &[], &[common::user(users[u])]), 0, &LIMITS);
                    if let Applied::Sequenced { outcome: Outcome::Sequenced { conv_seq }, .. } = a {
                        numbers.insert(id, conv_seq.0);
                    }
                }
                Step::Add { u } => {
                    let id = ClientMsgId::random();
                    let a = apply(&mut s, admin_members(id, &[common::user(users[u])], &[]), 0, &LIMITS);
                    if let Applied::Sequenced { outcome: Outcome::Sequenced { conv_seq }, .. } = a {
                        numbers.insert(id, conv_seq.0);
                    }
                }
                Step::Resend { back } => {
                    if let Some((cmd, first)) = batches.iter().rev().nth(back).cloned() {
                        let again = outcomes(apply(&mut s, cmd, 0, &LIMITS));
                        let transient = first.iter().any(|g| matches!(g, Err((RefusalCode::OutOfOrder, _))));
                        if !transient {
                            prop_assert_eq!(again, first);
                            prop_assert_eq!(head(&s), before);
                        }
                    }
                }
            }
        }
        let mut seen: Vec<u64> = numbers.values().copied().collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (2..=head(&s)).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn the_persister_sequences_a_batch_consecutively_and_answers_each_command() {
    let mut rig = common::Rig::start(1).await;
    let (created, create) = rig.create("g:room", "admin", &["bob", "carol"]);
    rig.append(&Topic::Inbound, vec![create]).await;
    assert_eq!(rig.receipt(created).await, common::sequenced(1));
    let farewell = ClientMsgId::random();
    let leave = ClientMsgId::random();
    let mut origin = rig.origin("bob");
    origin.request = 0;
    let send = SendCommand {
        origin: origin.clone(),
        conv: room(),
        client_msg_id: farewell,
        prev: None,
        body: "bye".into(),
        priority: false,
        vclock: Default::default(),
        sent_ms: seqline_core::model::now_ms(),
    };
    let remove = MembersCommand {
        origin: origin.clone(),
        conv: room(),
        client_msg_id: leave,
        add: Vec::new(),
        remove: vec![common::user("bob")],
    };
    let record = LogRecord::Command(Command::Batch(BatchCommand {
        origin,
        conv: room(),
        commands: vec![BatchItem::Send(send), BatchItem::ChangeMembers(remove)],
    }));
    // Carol's send in the same log batch, before and after.
    let (before, first) = rig.send("g:room", "carol", "first");
    let (after, last) = rig.send("g:room", "carol", "last");
    rig.append(&Topic::Inbound, vec![first, record.clone(), last]).await;
    assert_eq!(rig.receipt(before).await, common::sequenced(2));
    assert_eq!(rig.receipt(farewell).await, common::sequenced(3));
    assert_eq!(rig.receipt(leave).await, common::sequenced(4));
    assert_eq!(rig.receipt(after).await, common::sequenced(5));
    // Bob got his farewell and his leave; carol everything.
    rig.timeline_reaches("bob", 4).await;
    rig.timeline_reaches("carol", 5).await;
    let kinds: Vec<MessageKind> = rig.messages("g:room").await.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MessageKind::Created,
            MessageKind::Text,
            MessageKind::Text,
            MessageKind::Left,
            MessageKind::Text
        ]
    );
    // The resent batch: the same numbers, nothing stored.
    rig.append(&Topic::Inbound, vec![record]).await;
    assert_eq!(rig.receipt(farewell).await, common::sequenced(3));
    assert_eq!(rig.receipt(leave).await, common::sequenced(4));
    assert_eq!(rig.head("g:room").await, 5);
    rig.stop().await;
}

#[tokio::test]
async fn a_forged_batch_on_the_log_is_refused_whole_and_the_partition_keeps_flowing() {
    let mut rig = common::Rig::start(1).await;
    let (created, create) = rig.create("g:room", "admin", &["bob", "carol"]);
    rig.append(&Topic::Inbound, vec![create]).await;
    assert_eq!(rig.receipt(created).await, common::sequenced(1));
    // Bob's batch carrying a send in carol's name: refused, nothing stored.
    let (mine, theirs) = (ClientMsgId::random(), ClientMsgId::random());
    let mut forged = send_item("carol", theirs, None, "not from bob");
    if let BatchItem::Send(c) = &mut forged {
        c.origin.gateway = rig.gateway.clone();
    }
    let mut bob = rig.origin("bob");
    bob.device = DeviceId::parse("d").unwrap();
    let mut own = send_item("bob", mine, None, "from bob");
    if let BatchItem::Send(c) = &mut own {
        c.origin = bob.clone();
    }
    let record = LogRecord::Command(Command::Batch(BatchCommand {
        origin: bob,
        conv: room(),
        commands: vec![own, forged],
    }));
    let (next, later) = rig.send("g:room", "carol", "still flowing");
    rig.append(&Topic::Inbound, vec![record, later]).await;
    for id in [mine, theirs] {
        let Outcome::Refused { code, reason } = rig.receipt(id).await else {
            panic!("sequenced")
        };
        assert_eq!(code, RefusalCode::Invalid);
        assert!(reason.contains(&format!("command 1 ({theirs})")), "{reason}");
    }
    assert_eq!(rig.receipt(next).await, common::sequenced(2));
    assert_eq!(rig.head("g:room").await, 2);
    rig.stop().await;
}
