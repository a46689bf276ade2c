use super::*;

fn conv(s: &str) -> ConversationId {
    ConversationId::parse(s).unwrap()
}

fn msg(c: &str) -> Pending {
    Pending {
        id: ClientMsgId::random(),
        conv: conv(c),
        body: "hi".into(),
        priority: false,
        vclock: VectorClock::new(),
    }
}

const T: Duration = Duration::from_secs(5);

fn ids(d: &Due) -> Vec<ClientMsgId> {
    d.transmit.iter().map(|t| t.msg.id).collect()
}

#[test]
fn transmits_in_order_with_a_prev_chain_per_conversation() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 3, T);
    let (a1, b1, a2) = (msg("a"), msg("b"), msg("a"));
    for m in [&a1, &b1, &a2] {
        o.push(m.clone(), now).unwrap();
    }
    let d = o.due(now, || true);
    assert_eq!(ids(&d), vec![a1.id, b1.id, a2.id]);
    let prevs: Vec<_> = d.transmit.iter().map(|t| t.prev).collect();
    assert_eq!(prevs, vec![None, None, Some(a1.id)]);
    assert!(d.transmit.iter().all(|t| t.attempt == 1));
    // In flight, not timed out: nothing to do.
    assert!(o.due(now + Duration::from_secs(1), || true).transmit.is_empty());
    // Acked a1: a later a3 names a2, and after a2 is acked it names a2 still.
    assert_eq!(o.ack(&a1.id).map(|m| m.id), Some(a1.id));
    assert_eq!(o.ack(&a2.id).map(|m| m.id), Some(a2.id));
    let a3 = msg("a");
    o.push(a3.clone(), now).unwrap();
    let d = o.due(now, || true);
    assert_eq!(ids(&d), vec![a3.id]);
    assert_eq!(d.transmit[0].prev, Some(a2.id));
    assert_eq!(o.len(), 2);
}

#[test]
fn acks_out_of_order_never_move_the_chain_back() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 3, T);
    let (a1, a2, a3) = (msg("a"), msg("a"), msg("a"));
    for m in [&a1, &a2] {
        o.push(m.clone(), now).unwrap();
    }
    o.due(now, || true);
    o.ack(&a2.id);
    o.ack(&a1.id);
    assert!(o.ack(&a1.id).is_none(), "a repeated ack is ignored");
    o.push(a3.clone(), now).unwrap();
    assert_eq!(o.due(now, || true).transmit[0].prev, Some(a2.id));
}

#[test]
fn refused_messages_stay_in_the_chain_unless_never_sequenced() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 3, T);
    let (a1, a2, a3) = (msg("a"), msg("a"), msg("a"));
    o.push(a1.clone(), now).unwrap();
    o.due(now, || true);
    // The sequencer refused it: it is the device's last command there.
    assert!(o.refuse(&a1.id, true).is_some());
    o.push(a2.clone(), now).unwrap();
    assert_eq!(o.due(now, || true).transmit[0].prev, Some(a1.id));
    // The gateway rejected it before sequencing: it leaves the chain.
    assert!(o.refuse(&a2.id, false).is_some());
    o.push(a3.clone(), now).unwrap();
    assert_eq!(o.due(now, || true).transmit[0].prev, Some(a1.id));
}

#[test]
fn a_refused_settled_predecessor_frees_the_first_message() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 5, T);
    let (a1, a2, a3) = (msg("a"), msg("a"), msg("a"));
    o.push(a1.clone(), now).unwrap();
    o.due(now, || true);
    o.ack(&a1.id);
    o.push(a2.clone(), now).unwrap();
    o.push(a3.clone(), now).unwrap();
    let d = o.due(now, || true);
    assert_eq!(d.transmit[0].prev, Some(a1.id));
    // The server's last message is another one (say a send given up on that
    // was sequenced after all): a2 goes again unconstrained, a3 after it.
    assert!(o.out_of_order(&a2.id, now));
    let d = o.due(now, || true);
    assert_eq!(
        d.transmit.iter().map(|t| t.prev).collect::<Vec<_>>(),
        vec![None, Some(a2.id)]
    );
    // Once a2 is acked the chain is ordinary again.
    o.ack(&a2.id);
    o.disconnected(now);
    assert_eq!(o.due(now, || true).transmit[0].prev, Some(a2.id));
    // A nack for a message whose predecessor was pending is the ordinary case.
    let a4 = msg("a");
    o.push(a4.clone(), now).unwrap();
    o.due(now, || true);
    assert!(o.out_of_order(&a4.id, now));
    let d = o.due(now, || true);
    assert_eq!(
        d.transmit.iter().map(|t| t.prev).collect::<Vec<_>>(),
        vec![Some(a2.id), Some(a3.id)]
    );
}

#[test]
fn out_of_order_resends_from_the_first_unacked_once_per_burst() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 5, T);
    let (a1, a2, a3, b1) = (msg("a"), msg("a"), msg("a"), msg("b"));
    for m in [&a1, &b1, &a2, &a3] {
        o.push(m.clone(), now).unwrap();
    }
    o.due(now, || true);
    assert!(o.out_of_order(&a2.id, now));
    // a3's nack belongs to the same burst: already handled.
    assert!(!o.out_of_order(&a3.id, now));
    let d = o.due(now, || true);
    assert_eq!(
        ids(&d),
        vec![a1.id, a2.id, a3.id],
        "b1 is still in flight and untouched"
    );
    assert_eq!(
        d.transmit.iter().map(|t| t.prev).collect::<Vec<_>>(),
        vec![None, Some(a1.id), Some(a2.id)]
    );
    assert!(d.transmit.iter().all(|t| t.attempt == 2));
    // A nack of the new generation triggers another round.
    assert!(o.out_of_order(&a3.id, now));
    assert!(!o.out_of_order(&ClientMsgId::random(), now));
}

#[test]
fn timeouts_resend_and_attempts_are_bounded() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 2, T);
    let a1 = msg("a");
    o.push(a1.clone(), now).unwrap();
    assert_eq!(o.due(now, || true).transmit[0].attempt, 1);
    assert_eq!(o.next_wakeup(), Some(now + T));
    let t1 = now + T;
    let d = o.due(t1, || true);
    assert_eq!((d.transmit.len(), d.transmit[0].attempt), (1, 2));
    let d = o.due(t1 + T, || true);
    assert!(d.transmit.is_empty());
    assert_eq!(d.exhausted.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a1.id]);
    assert!(o.is_empty());
}

#[test]
fn a_waiting_message_holds_back_its_conversation_only() {
    let now = Instant::now();
    let later = now + Duration::from_secs(1);
    let mut o = Outbox::new(10, 5, T);
    let (a1, a2, b1) = (msg("a"), msg("a"), msg("b"));
    o.push(a1.clone(), now).unwrap();
    o.due(now, || true);
    o.pause(later);
    o.push(a2.clone(), now).unwrap();
    o.push(b1.clone(), now).unwrap();
    assert_eq!(ids(&o.due(now, || true)), vec![b1.id]);
    assert_eq!(o.next_wakeup(), Some(later));
    assert_eq!(ids(&o.due(later, || true)), vec![a1.id, a2.id]);
}

#[test]
fn disconnect_resends_everything_in_flight_in_order() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 5, T);
    let (a1, b1) = (msg("a"), msg("b"));
    o.push(a1.clone(), now).unwrap();
    o.push(b1.clone(), now).unwrap();
    o.due(now, || true);
    o.disconnected(now);
    let d = o.due(now, || true);
    assert_eq!(ids(&d), vec![a1.id, b1.id]);
    assert_eq!(d.transmit[0].msg.id, a1.id, "same id on every resend");
}

#[test]
fn capacity_rate_limit_and_drain() {
    let now = Instant::now();
    let mut o = Outbox::new(2, 5, T);
    let m = msg("a");
    o.push(m.clone(), now).unwrap();
    assert!(o.push(m.clone(), now).is_err(), "same id twice");
    o.push(msg("a"), now).unwrap();
    assert!(o.is_full());
    assert!(o.push(msg("a"), now).is_err());
    let mut budget = 1;
    let d = o.due(now, || {
        budget -= 1;
        budget >= 0
    });
    assert_eq!(ids(&d), vec![m.id]);
    assert!(o.contains(&m.id));
    assert_eq!(o.drain().len(), 2);
    assert!(o.is_empty() && !o.contains(&m.id));
}

#[test]
fn a_batch_sent_outside_moves_the_chain_of_its_conversation() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 3, T);
    let a1 = msg("a");
    o.push(a1.clone(), now).unwrap();
    assert!(o.pending_in(&conv("a")) && !o.pending_in(&conv("b")));
    o.due(now, || true);
    o.ack(&a1.id);
    assert!(!o.pending_in(&conv("a")));
    assert_eq!(o.last_settled(&conv("a")), Some(a1.id));
    // A batch's last send was processed: the next message names it.
    let batch_last = ClientMsgId::random();
    o.settled_outside(&conv("a"), batch_last);
    assert_eq!(o.last_settled(&conv("a")), Some(batch_last));
    let a2 = msg("a");
    o.push(a2.clone(), now).unwrap();
    let d = o.due(now, || true);
    assert_eq!(
        d.transmit.iter().map(|t| t.prev).collect::<Vec<_>>(),
        vec![Some(batch_last)]
    );
    assert_eq!(o.last_settled(&conv("b")), None);
}

#[test]
fn a_send_refused_for_now_by_rate_limiting_does_not_use_an_attempt() {
    let now = Instant::now();
    let mut o = Outbox::new(10, 2, T);
    let a = msg("a");
    o.push(a.clone(), now).unwrap();
    // Refused for now five times over, more than max_attempts: each time it
    // goes again, with the same id, and is never given up on.
    for i in 1..=5u32 {
        let at = now + Duration::from_millis(u64::from(i) * 100);
        let d = o.due(at, || true);
        assert_eq!(ids(&d), vec![a.id], "{i}");
        assert_eq!(d.transmit[0].attempt, 1);
        assert!(d.exhausted.is_empty());
        assert!(o.retry_later(&a.id, at + Duration::from_millis(50), true));
        assert!(o.due(at, || true).transmit.is_empty(), "it waits for the hint");
    }
    // Unavailable counts: two of those use up its attempts.
    let at = now + Duration::from_secs(1);
    assert_eq!(o.due(at, || true).transmit[0].attempt, 1);
    assert!(o.retry_later(&a.id, at, false));
    assert_eq!(o.due(at, || true).transmit[0].attempt, 2);
    assert!(o.retry_later(&a.id, at, false));
    assert_eq!(o.due(at, || true).exhausted.len(), 1);
}
