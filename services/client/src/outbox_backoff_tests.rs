//! Resends after an ack timeout: a seeded backoff with jitter, exponential
//! in the timeouts in a row, reset by an answer (pure, on given instants).

use super::*;

const T: Duration = Duration::from_secs(5);

fn msg(c: &str) -> Pending {
    Pending {
        id: ClientMsgId::random(),
        conv: ConversationId::parse(c).unwrap(),
        body: "hi".into(),
        priority: false,
        vclock: VectorClock::new(),
    }
}

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(400),
        max: Duration::from_secs(3),
        jitter: 0.5,
    }
}

fn outbox(seed: u64) -> Outbox {
    Outbox::new(10, 10, T).with_timeout_backoff(backoff(), seed)
}

fn ids(d: &Due) -> Vec<ClientMsgId> {
    d.transmit.iter().map(|t| t.msg.id).collect()
}

/// The wait after the timeout that `o` chose, read from its next wakeup.
fn waited(o: &Outbox, sent: Instant) -> Duration {
    o.next_wakeup().unwrap() - (sent + T)
}

#[test]
fn a_timed_out_message_waits_a_growing_jittered_delay_then_goes_again() {
    let t0 = Instant::now();
    let mut o = outbox(7);
    let a1 = msg("a");
    o.push(a1.clone(), t0).unwrap();
    assert_eq!(ids(&o.due(t0, || true)), vec![a1.id]);
    assert_eq!(o.next_wakeup(), Some(t0 + T), "the ack timeout itself is fixed");
    let mut sent = t0;
    for n in 0..4u32 {
        // The timeout passes: nothing goes yet, the resend waits its backoff.
        assert!(o.due(sent + T, || true).transmit.is_empty());
        let w = waited(&o, sent);
        let (low, high) = backoff().bounds(n);
        assert!(w >= low && w <= high, "retry {n}: {w:?} not in {low:?}..{high:?}");
        assert_eq!(o.timeouts_in_a_row(), n + 1);
        let at = sent + T + w;
        assert!(o.due(at - Duration::from_millis(1), || true).transmit.is_empty());
        let d = o.due(at, || true);
        assert_eq!(
            (ids(&d), d.transmit[0].attempt),
            (vec![a1.id], n + 2),
            "same id, next attempt"
        );
        sent = at;
    }
    // An ack resets the streak: the next timeout waits the first delay again.
    o.ack(&a1.id);
    assert_eq!(o.timeouts_in_a_row(), 0);
    let a2 = msg("a");
    o.push(a2.clone(), sent).unwrap();
    o.due(sent, || true);
    o.due(sent + T, || true);
    let (low, high) = backoff().bounds(0);
    let w = waited(&o, sent);
    assert!(w >= low && w <= high, "{w:?} after the reset");
}

#[test]
fn the_rest_of_the_conversation_goes_right_after_its_first_message() {
    let t0 = Instant::now();
    let mut o = outbox(1);
    let (a1, a2, b1) = (msg("a"), msg("a"), msg("b"));
    for m in [&a1, &a2, &b1] {
        o.push(m.clone(), t0).unwrap();
    }
    o.due(t0, || true);
    assert!(o.due(t0 + T, || true).transmit.is_empty());
    // Two conversations timed out together: two retries in a row, spread apart.
    assert_eq!(o.timeouts_in_a_row(), 2);
    let first = waited(&o, t0);
    let d = o.due(t0 + T + first, || true);
    let got = ids(&d);
    assert!(
        got == vec![a1.id, a2.id] || got == vec![b1.id],
        "a conversation resends whole and in order: {got:?}"
    );
    let mut rest = d;
    while rest.transmit.len() < 3 {
        let at = o.next_wakeup().unwrap();
        let more = o.due(at, || true);
        assert!(!more.transmit.is_empty(), "something is due at its wakeup");
        rest.transmit.extend(more.transmit);
    }
    let order: Vec<ClientMsgId> = ids(&rest);
    let pos = |id| order.iter().position(|x| *x == id).unwrap();
    assert!(pos(a1.id) + 1 == pos(a2.id), "a2 right after a1: {order:?}");
}

#[test]
fn a_message_out_of_attempts_gives_up_at_its_timeout_without_waiting() {
    let t0 = Instant::now();
    let mut o = Outbox::new(10, 1, T).with_timeout_backoff(backoff(), 3);
    let a1 = msg("a");
    o.push(a1.clone(), t0).unwrap();
    o.due(t0, || true);
    let d = o.due(t0 + T, || true);
    assert_eq!(d.exhausted.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a1.id]);
    assert!(o.is_empty());
}

#[test]
fn the_jitter_depends_on_the_seed_only() {
    let t0 = Instant::now();
    let wait = |seed: u64| {
        let mut o = outbox(seed);
        o.push(msg("a"), t0).unwrap();
        o.due(t0, || true);
        o.due(t0 + T, || true);
        waited(&o, t0)
    };
    assert_eq!(wait(42), wait(42), "same seed, same delay");
    let spread: std::collections::BTreeSet<Duration> = (0..20).map(wait).collect();
    assert!(
        spread.len() > 10,
        "devices cut off together come back apart: {spread:?}"
    );
}
