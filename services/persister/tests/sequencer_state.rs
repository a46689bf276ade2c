//! The sequencer's state machine: contiguous numbers, dedup, membership,
//! roles and sender order (G2, G4, G5), unit and property tested.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use seqline_core::ids::*;
use seqline_core::model::{ConversationKind, Outcome, RefusalCode};
use seqline_core::records::{Command, CreateCommand, MembersCommand, Origin, SendCommand};
use seqline_persister::sequencer::{apply, Applied, ConvState, Limits};
use std::collections::HashMap;

const LIMITS: Limits = Limits {
    max_group_members: 100,
    max_body_bytes: 1000,
    dedup_window: 64,
    read_diffusion_threshold: 5,
};

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn origin(u: &str, d: &str) -> Origin {
    Origin {
        name: String::new(),
        gateway: GatewayId::parse("gw").unwrap(),
        user: user(u),
        device: DeviceId::parse(d).unwrap(),
        request: 0,
    }
}

fn conv() -> ConversationId {
    ConversationId::parse("g:room").unwrap()
}

fn create_group(members: &[&str]) -> Option<ConvState> {
    let mut state = None;
    let cmd = Command::Create(CreateCommand {
        origin: origin("admin", "d"),
        conv: conv(),
        kind: ConversationKind::Group,
        title: "room".into(),
        members: members.iter().map(|m| user(m)).collect(),
        client_msg_id: ClientMsgId::random(),
    });
    assert!(matches!(apply(&mut state, cmd, 0, &LIMITS), Applied::Sequenced { .. }));
    state
}

fn send(u: &str, d: &str, id: ClientMsgId, prev: Option<ClientMsgId>) -> Command {
    Command::Send(SendCommand {
        origin: origin(u, d),
        conv: conv(),
        client_msg_id: id,
        prev,
        body: format!("from {u}"),
        priority: false,
        vclock: Default::default(),
        sent_ms: 0,
    })
}

fn seq_of(a: &Applied) -> Option<u64> {
    match a {
        Applied::Sequenced {
            outcome: Outcome::Sequenced { conv_seq },
            ..
        }
        | Applied::Duplicate(Outcome::Sequenced { conv_seq }) => Some(conv_seq.0),
        _ => None,
    }
}

fn code_of(a: &Applied) -> Option<RefusalCode> {
    match a {
        Applied::Refused {
            outcome: Outcome::Refused { code, .. },
            ..
        }
        | Applied::Duplicate(Outcome::Refused { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn numbers_are_contiguous_and_resends_get_the_original() {
    let mut s = create_group(&["bob"]);
    let a = ClientMsgId::random();
    let b = ClientMsgId::random();
    assert_eq!(seq_of(&apply(&mut s, send("bob", "p", a, None), 0, &LIMITS)), Some(2));
    assert_eq!(
        seq_of(&apply(&mut s, send("bob", "p", b, Some(a)), 0, &LIMITS)),
        Some(3)
    );
    // A resend (same id) returns the original number and changes nothing.
    let again = apply(&mut s, send("bob", "p", a, None), 0, &LIMITS);
    assert_eq!(again, Applied::Duplicate(Outcome::Sequenced { conv_seq: ConvSeq(2) }));
    assert_eq!(s.as_ref().unwrap().head, ConvSeq(3));
}

#[test]
fn a_resend_with_another_body_gets_the_original_and_changes_nothing() {
    let mut s = create_group(&["bob"]);
    let a = ClientMsgId::random();
    let first = apply(&mut s, send("bob", "p", a, None), 0, &LIMITS);
    let Applied::Sequenced { messages, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        (messages[0].conv_seq, messages[0].body.as_str()),
        (ConvSeq(2), "from bob")
    );
    let snapshot = |s: &Option<ConvState>| {
        let s = s.as_ref().unwrap();
        (s.head, s.members.clone(), s.device_last.clone())
    };
    let before = snapshot(&s);
    let mut other = send("bob", "p", a, None);
    if let Command::Send(c) = &mut other {
        c.body = "a different body".into();
    }
    // A duplicate carries no message to store: the original body stays.
    let again = apply(&mut s, other, 0, &LIMITS);
    assert_eq!(again, Applied::Duplicate(Outcome::Sequenced { conv_seq: ConvSeq(2) }));
    assert_eq!(snapshot(&s), before);
}

#[test]
fn non_members_and_missing_conversations_are_refused() {
    let mut s = create_group(&["bob"]);
    let r = apply(&mut s, send("mallory", "x", ClientMsgId::random(), None), 0, &LIMITS);
    assert_eq!(code_of(&r), Some(RefusalCode::NotMember));
    assert_eq!(s.as_ref().unwrap().head, ConvSeq(1));
    let mut none: Option<ConvState> = None;
    let r = apply(&mut none, send("bob", "p", ClientMsgId::random(), None), 0, &LIMITS);
    assert_eq!(
        r,
        Applied::Refused {
            outcome: Outcome::Refused {
                code: RefusalCode::NotMember,
                reason: "not a member of this conversation".into()
            },
            remember: false
        }
    );
    assert!(none.is_none());
}

#[test]
fn sender_order_refuses_a_message_whose_predecessor_is_missing() {
    let mut s = create_group(&["bob"]);
    let a = ClientMsgId::random();
    let b = ClientMsgId::random();
    // b names a as its predecessor, but a has not arrived: refused, transient.
    let r = apply(&mut s, send("bob", "p", b, Some(a)), 0, &LIMITS);
    assert!(matches!(r, Applied::Refused { remember: false, .. }));
    assert_eq!(code_of(&r), Some(RefusalCode::OutOfOrder));
    // The client resends from the first unacked one: a then b.
    assert_eq!(seq_of(&apply(&mut s, send("bob", "p", a, None), 0, &LIMITS)), Some(2));
    assert_eq!(
        seq_of(&apply(&mut s, send("bob", "p", b, Some(a)), 0, &LIMITS)),
        Some(3)
    );
}

#[test]
fn only_admins_change_members_or_send_priority_and_leaving_is_sequenced() {
    let mut s = create_group(&["bob"]);
    let add = |who: &str, u: &str| {
        Command::ChangeMembers(MembersCommand {
            origin: origin(who, "d"),
            conv: conv(),
            client_msg_id: ClientMsgId::random(),
            add: vec![user(u)],
            remove: vec![],
        })
    };
    assert_eq!(
        code_of(&apply(&mut s, add("bob", "carol"), 0, &LIMITS)),
        Some(RefusalCode::Forbidden)
    );
    assert_eq!(seq_of(&apply(&mut s, add("admin", "carol"), 0, &LIMITS)), Some(2));
    assert!(s.as_ref().unwrap().members.contains_key(&user("carol")));
    let mut p = send("bob", "p", ClientMsgId::random(), None);
    if let Command::Send(c) = &mut p {
        c.priority = true;
    }
    assert_eq!(code_of(&apply(&mut s, p, 0, &LIMITS)), Some(RefusalCode::Forbidden));
    let leave = Command::ChangeMembers(MembersCommand {
        origin: origin("carol", "d"),
        conv: conv(),
        client_msg_id: ClientMsgId::random(),
        add: vec![],
        remove: vec![user("carol")],
    });
    match apply(&mut s, leave, 0, &LIMITS) {
        Applied::Sequenced { removed, .. } => assert_eq!(removed, vec![user("carol")]),
        other => panic!("leave refused: {other:?}"),
    }
    // Send, then leave: a send after leaving is refused.
    assert_eq!(
        code_of(&apply(
            &mut s,
            send("carol", "d", ClientMsgId::random(), None),
            0,
            &LIMITS
        )),
        Some(RefusalCode::NotMember)
    );
}

#[test]
fn direct_conversations_are_fixed_and_idempotent() {
    let mut s = None;
    let a = user("alice");
    let b = user("bob");
    let create = |id| {
        Command::Create(CreateCommand {
            origin: origin("alice", "d"),
            conv: ConversationId::direct(&a, &b),
            kind: ConversationKind::Direct,
            title: String::new(),
            members: vec![b.clone()],
            client_msg_id: id,
        })
    };
    assert_eq!(
        seq_of(&apply(&mut s, create(ClientMsgId::random()), 0, &LIMITS)),
        Some(1)
    );
    assert_eq!(
        seq_of(&apply(&mut s, create(ClientMsgId::random()), 0, &LIMITS)),
        Some(1)
    );
    let mut bad = None;
    let three = Command::Create(CreateCommand {
        origin: origin("alice", "d"),
        conv: ConversationId::direct(&a, &b),
        kind: ConversationKind::Direct,
        title: String::new(),
        members: vec![b.clone(), user("carol")],
        client_msg_id: ClientMsgId::random(),
    });
    assert_eq!(code_of(&apply(&mut bad, three, 0, &LIMITS)), Some(RefusalCode::Invalid));
    assert!(bad.is_none());
}

proptest! {
    /// Random traffic from several devices with resends and reordering:
    /// numbers stay 1..=head, each id gets at most one number, a resend gets
    /// the same number, and each device's acked messages are in send order.
    #[test]
    fn random_traffic_keeps_the_guarantees(ops in proptest::collection::vec((0usize..4, 0usize..3, any::<bool>()), 1..300)) {
        let mut s = create_group(&["u0", "u1", "u2"]);
        // Per device: its sent ids in order, and the index of the next to send.
        let mut outbox: HashMap<usize, (Vec<ClientMsgId>, usize)> = HashMap::new();
        let mut numbers: HashMap<ClientMsgId, u64> = HashMap::new();
        for (dev, back, resend) in ops {
            let (ids, next) = outbox.entry(dev).or_insert_with(|| (Vec::new(), 0));
            let i = if resend && *next > 0 { next.saturating_sub(back + 1) } else {
                if *next == ids.len() { ids.push(ClientMsgId::random()); }
                *next
            };
            let id = ids[i];
            let prev = if i == 0 { None } else { Some(ids[i - 1]) };
            let u = format!("u{}", dev % 3);
            let r = apply(&mut s, send(&u, &format!("d{dev}"), id, prev), 0, &LIMITS);
            if let Some(n) = seq_of(&r) {
                if let Some(old) = numbers.insert(id, n) { prop_assert_eq!(old, n); }
                if i == *next { *next += 1; }
            }
        }
        let head = s.as_ref().unwrap().head.0;
        let mut seen: Vec<u64> = numbers.values().copied().collect();
        seen.sort();
        prop_assert_eq!(seen, (2..=head).collect::<Vec<_>>());
        for (ids, _) in outbox.values() {
            let acked: Vec<u64> = ids.iter().filter_map(|i| numbers.get(i).copied()).collect();
            prop_assert!(acked.windows(2).all(|w| w[0] < w[1]), "sender order broken: {:?}", acked);
        }
    }
}

#[test]
fn membership_commands_from_a_device_do_not_break_its_send_chain() {
    let mut s = create_group(&["bob"]);
    let m1 = ClientMsgId::random();
    assert_eq!(
        seq_of(&apply(&mut s, send("admin", "d", m1, None), 0, &LIMITS)),
        Some(2)
    );
    let add = Command::ChangeMembers(MembersCommand {
        origin: origin("admin", "d"),
        conv: conv(),
        client_msg_id: ClientMsgId::random(),
        add: vec![user("carol")],
        remove: vec![],
    });
    assert_eq!(seq_of(&apply(&mut s, add, 0, &LIMITS)), Some(3));
    // The next chat message names m1, its previous *send*: accepted.
    assert_eq!(
        seq_of(&apply(
            &mut s,
            send("admin", "d", ClientMsgId::random(), Some(m1)),
            0,
            &LIMITS
        )),
        Some(4)
    );
}

fn members_cmd(add: &[&str], remove: &[&str]) -> Command {
    Command::ChangeMembers(MembersCommand {
        origin: origin("admin", "d"),
        conv: conv(),
        client_msg_id: ClientMsgId::random(),
        add: add.iter().map(|u| user(u)).collect(),
        remove: remove.iter().map(|u| user(u)).collect(),
    })
}

/// (mode before, the messages' flags) of a sequenced command.
fn modes(a: &Applied) -> (bool, Vec<bool>) {
    match a {
        Applied::Sequenced {
            read_before, messages, ..
        } => (*read_before, messages.iter().map(|m| m.read_diffusion).collect()),
        other => panic!("not sequenced: {other:?}"),
    }
}

#[test]
fn the_mode_flips_at_the_message_that_crosses_the_threshold_and_back() {
    // Threshold 5: admin + 4 members is write mode, a sixth member flips it.
    let mut s = create_group(&["a", "b", "c", "d"]);
    assert!(!s.as_ref().unwrap().read_diffusion);
    let text = apply(&mut s, send("a", "p", ClientMsgId::random(), None), 0, &LIMITS);
    assert_eq!(modes(&text), (false, vec![false]));
    let grow = apply(&mut s, members_cmd(&["e"], &[]), 0, &LIMITS);
    assert_eq!(modes(&grow), (false, vec![true]), "the join is the boundary");
    let text = apply(&mut s, send("e", "p", ClientMsgId::random(), None), 0, &LIMITS);
    assert_eq!(modes(&text), (true, vec![true]), "read mode from here on");
    let shrink = apply(&mut s, members_cmd(&[], &["e"]), 0, &LIMITS);
    assert_eq!(modes(&shrink), (true, vec![false]), "the leave is the way back");
    assert!(!s.as_ref().unwrap().read_diffusion);
}

#[test]
fn a_group_created_above_the_threshold_starts_in_read_mode_and_names_its_sender() {
    let mut state = None;
    let mut o = origin("admin", "d");
    o.name = "The Admin".into();
    let cmd = Command::Create(CreateCommand {
        origin: o,
        conv: conv(),
        kind: ConversationKind::Group,
        title: "big".into(),
        members: ["a", "b", "c", "d", "e", "f"].iter().map(|m| user(m)).collect(),
        client_msg_id: ClientMsgId::random(),
    });
    let created = apply(&mut state, cmd, 0, &LIMITS);
    assert_eq!(modes(&created), (false, vec![true]), "creation is the boundary");
    match created {
        Applied::Sequenced { messages, .. } => assert_eq!(messages[0].sender_name, "The Admin"),
        _ => unreachable!(),
    }
}

#[test]
fn a_reloaded_conversation_keeps_its_mode() {
    let mut s = create_group(&["a", "b", "c", "d", "e"]);
    assert!(s.as_ref().unwrap().read_diffusion);
    let st = s.take().unwrap();
    let stored = seqline_core::ports::ConversationState {
        meta: st.meta.clone(),
        head: st.head,
        members: st.members.clone(),
        device_last: HashMap::new(),
    };
    let mut s = Some(ConvState::from_stored(stored, 64, true));
    let text = apply(&mut s, send("a", "p", ClientMsgId::random(), None), 0, &LIMITS);
    assert_eq!(modes(&text), (true, vec![true]));
}
