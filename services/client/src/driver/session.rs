//! One connected session: the select loop and what it puts on the wire.

use super::{now, Driver, Ws};
use crate::backoff::Pacer;
use crate::event::Event;
use crate::handle::{FailReason, SendState};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::protocol::{ClientFrame, ConvCursor, Limits, ServerFrame};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Sink = SplitSink<Ws, WsMessage>;

/// State of one connection.
pub(super) struct Session {
    /// The initial sync finished: the outbox may transmit.
    pub ready: bool,
    pub need_sync: bool,
    pub sync_inflight: Option<u64>,
    pub sync_retry_at: Instant,
    pub sync_failures: u32,
    pub last_rx: Instant,
    pub next_ping: Instant,
    pub next_cursor: Instant,
    pub reported: u64,
    pub pacer: Pacer,
    /// Consecutive "slow down" answers (rate_limited, unavailable).
    pub slow_down: u32,
    /// The long-poll outstanding over followed conversations.
    pub poll: Option<PollState>,
    pub poll_retry_at: Instant,
    pub poll_failures: u32,
}

/// The long-poll this connection has outstanding.
pub(super) struct PollState {
    pub req: u64,
    pub sent: Instant,
    pub convs: Vec<ConversationId>,
}

impl Session {
    fn new(t: Instant, limits: &Limits, ping: Duration) -> Self {
        // Stay a little under the announced rate so the server never has to refuse.
        let rate = limits.max_sends_per_sec.saturating_mul(9) / 10;
        let rate = if limits.max_sends_per_sec > 0 { rate.max(1) } else { 0 };
        Self {
            ready: false,
            need_sync: true,
            sync_inflight: None,
            sync_retry_at: t,
            sync_failures: 0,
            last_rx: t,
            next_ping: t + ping,
            next_cursor: t,
            reported: 0,
            pacer: Pacer::new(rate, t),
            slow_down: 0,
            poll: None,
            poll_retry_at: t,
            poll_failures: 0,
        }
    }
}

impl Driver {
    /// Serves one connection until it drops or the client closes; returns why.
    pub(super) async fn session(&mut self, ws: Ws, welcome: ServerFrame) -> String {
        let ServerFrame::Welcome {
            user,
            device,
            head,
            limits,
            epoch,
            ..
        } = welcome
        else {
            return "no welcome".into();
        };
        let mut sess = Session::new(now(), &limits, self.ping_interval);
        self.head = head;
        self.follows.set_me(user.clone());
        self.follows.reconnected();
        self.stamp_late(&user);
        self.status.send_modify(|s| {
            s.connected = true;
            s.connects += 1;
            s.user = Some(user);
            s.device = Some(device);
            s.limits = Some(limits);
        });
        self.emit(Event::Connected { head }).await;
        match self.requests.epoch {
            // Before anything names the old cursor (the sync, the cursor report).
            Some(known) if known != epoch => self.start_over(&mut sess, epoch).await,
            Some(_) => {}
            None => self.requests.epoch = Some(epoch),
        }
        let silence = self.ping_interval * 2 + self.request_timeout;
        let (mut sink, mut stream) = ws.split();
        loop {
            if let Err(e) = self.pump(&mut sink, &mut sess).await {
                return e;
            }
            self.publish();
            if self.closed {
                let _ = sink.send(WsMessage::Close(None)).await;
                return "closed by the client".into();
            }
            let t = now();
            if t.saturating_duration_since(sess.last_rx) > silence {
                return "no frame from the server in time".into();
            }
            let wake = self.wakeup(&mut sess, t, silence);
            tokio::select! {
                msg = stream.next() => match msg {
                    None | Some(Ok(WsMessage::Close(_))) => return "the server closed the connection".into(),
                    Some(Err(e)) => return format!("read: {e}"),
                    Some(Ok(WsMessage::Text(text))) => {
                        sess.last_rx = now();
                        match serde_json::from_str::<ServerFrame>(text.as_str()) {
                            Ok(frame) => self.on_frame(frame, &mut sess).await,
                            Err(e) => tracing::warn!(error = %e, "unreadable frame from the server"),
                        }
                    }
                    Some(Ok(_)) => sess.last_rx = now(),
                },
                c = self.control.recv() => self.on_control(c),
                s = self.sends.recv(), if !self.outbox.is_full() => self.on_send(s),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn wakeup(&self, sess: &mut Session, t: Instant, silence: Duration) -> Instant {
        let mut w = sess.next_ping.min(sess.next_cursor).min(sess.last_rx + silence);
        if let Some(d) = self.requests.next_deadline() {
            w = w.min(d);
        }
        if let Some(d) = self.batches.next_deadline() {
            w = w.min(d);
        }
        if sess.need_sync && sess.sync_inflight.is_none() {
            w = w.min(sess.sync_retry_at);
        }
        if let Some(r) = self.follows.next_retry() {
            w = w.min(r);
        }
        if !self.follows.following().is_empty() {
            match &sess.poll {
                Some(p) => w = w.min(p.sent + self.poll_wait + self.request_timeout),
                None => w = w.min(sess.poll_retry_at),
            }
        }
        if sess.ready {
            if let Some(o) = self.outbox.next_wakeup() {
                // When only the rate limiter holds a message back, wait for a token.
                w = w.min(o.max(sess.pacer.next_token_at(t) + Duration::from_millis(1)));
            }
        }
        w
    }

    /// Puts on the wire whatever is due: callers' requests, a sync, a ping,
    /// the cursor, and sends (once the initial sync is done).
    async fn pump(&mut self, sink: &mut Sink, sess: &mut Session) -> Result<(), String> {
        let t = now();
        self.requests.expire(t);
        self.batches.expire(t);
        let mut frames = self.requests.take_unsent();
        if sess.need_sync && sess.sync_inflight.is_none() && t >= sess.sync_retry_at {
            let after = self.inbox.cursor();
            // The id of the entry at the cursor, once everything up to it was delivered.
            let after_id = self.delivered_id.filter(|_| self.delivered == after);
            let (req, f) = self.requests.sync(after, self.sync_page, after_id);
            sess.sync_inflight = Some(req);
            sess.need_sync = false;
            frames.push(f);
        }
        if t >= sess.next_ping {
            frames.push(self.requests.ping());
            sess.next_ping = t + self.ping_interval;
        }
        for (conv, conv_seq) in self.reads.drain() {
            frames.push(ClientFrame::Read { conv, conv_seq });
        }
        for due in self.follows.due(t) {
            frames.push(self.requests.sync_conv(due.conv, due.after, self.conv_page));
        }
        if let Some(f) = self.poll_frame(sess, t) {
            frames.push(f);
        }
        if t >= sess.next_cursor {
            let cursor = self.delivered;
            if cursor > sess.reported {
                frames.push(ClientFrame::Cursor { user_seq: cursor });
                sess.reported = cursor;
            }
            self.persist();
            sess.next_cursor = t + self.cursor_interval;
        }
        if sess.ready {
            frames.extend(self.batches.take_unsent());
            let pacer = &mut sess.pacer;
            let due = self.outbox.due(t, || pacer.try_take(t));
            for msg in due.exhausted {
                self.settle(msg.id, msg.conv, SendState::Failed(FailReason::Exhausted))
                    .await;
            }
            for tx in due.transmit {
                if let Some(h) = self.handles.get(&tx.msg.id) {
                    h.send_replace(SendState::Sending { attempts: tx.attempt });
                }
                let m = tx.msg;
                let vclock = match self.late_clocks.get(&m.id) {
                    Some(c) => c.clone(),
                    None => m.vclock,
                };
                frames.push(ClientFrame::Send {
                    id: m.id,
                    conv: m.conv,
                    body: m.body,
                    prev: tx.prev,
                    priority: m.priority,
                    vclock,
                });
            }
        }
        if frames.is_empty() {
            return Ok(());
        }
        for f in frames {
            let text = serde_json::to_string(&f).map_err(|e| format!("encode: {e}"))?;
            sink.feed(WsMessage::text(text))
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        sink.flush().await.map_err(|e| format!("write: {e}"))
    }

    /// A long-poll over every followed conversation, when one is due: none
    /// is outstanding (or it names other conversations, or its answer is
    /// overdue), and no pull is due or in flight (it would be answered at
    /// once).
    fn poll_frame(&mut self, sess: &mut Session, t: Instant) -> Option<ClientFrame> {
        let following = self.follows.following();
        if following.is_empty() {
            sess.poll = None;
            return None;
        }
        if self.follows.busy() || t < sess.poll_retry_at {
            return None;
        }
        let convs: Vec<ConversationId> = following.iter().map(|p| p.conv.clone()).collect();
        if let Some(p) = &sess.poll {
            let overdue = t >= p.sent + self.poll_wait + self.request_timeout;
            if p.convs == convs && !overdue {
                return None;
            }
        }
        let cursors = following
            .into_iter()
            .take(seqline_core::protocol::MAX_POLL_CONVS)
            .map(|p| ConvCursor {
                conv: p.conv,
                after: p.after,
            })
            .collect();
        let wait_ms = u64::try_from(self.poll_wait.as_millis()).unwrap_or(u64::MAX);
        let (req, f) = self.requests.poll(cursors, wait_ms);
        sess.poll = Some(PollState { req, sent: t, convs });
        Some(f)
    }

    /// A send reached its final state: tell its handle and the stream.
    pub(super) async fn settle(&mut self, id: ClientMsgId, conv: ConversationId, state: SendState) {
        if let Some(h) = self.handles.remove(&id) {
            h.send_replace(state.clone());
        }
        self.late_clocks.remove(&id);
        let ev = match state {
            SendState::Sent(conv_seq) => Event::Acked { id, conv, conv_seq },
            SendState::Failed(reason) => Event::Failed { id, conv, reason },
            SendState::Sending { .. } => return,
        };
        self.emit(ev).await;
    }
}
