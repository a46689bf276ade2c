//! What the task does with each server frame.

use super::requests::Waiter;
use super::session::Session;
use super::{now, Driver};
use crate::error::ClientError;
use crate::event::{Event, Via};
use crate::follow::Decision;
use crate::handle::{FailReason, SendState};
use crate::inbox::Inbox;
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::{Message, RefusalCode};
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::Epoch;

impl Driver {
    pub(super) async fn on_frame(&mut self, frame: ServerFrame, sess: &mut Session) {
        match frame {
            ServerFrame::Ack { id, conv, conv_seq } => {
                sess.slow_down = 0;
                if self.outbox.ack(&id).is_some() {
                    self.settle(id, conv, SendState::Sent(conv_seq)).await;
                } else {
                    self.batch_answer(id, Ok(conv_seq));
                }
            }
            ServerFrame::Nack {
                id,
                conv,
                code,
                message,
            } => {
                if !self.outbox.contains(&id) && self.batch_answer(id, Err((code, message.clone()))) {
                    // A command of a batch.
                } else if code == RefusalCode::OutOfOrder {
                    self.outbox.out_of_order(&id, now());
                } else if let Some(msg) = self.outbox.refuse(&id, true) {
                    self.unstamp(&msg);
                    self.settle(id, conv, SendState::Failed(FailReason::Refused { code, message }))
                        .await;
                }
            }
            ServerFrame::Push { entries, .. } => {
                for e in entries {
                    self.inbox.insert(e, Via::Push);
                }
                self.release().await;
                if self.inbox.has_gap() {
                    sess.need_sync = true;
                }
            }
            ServerFrame::Pull { .. } => sess.need_sync = true,
            ServerFrame::SyncPage {
                req,
                entries,
                head,
                more,
                epoch,
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::SyncPage {
                        req,
                        entries,
                        head,
                        more,
                        epoch,
                    }));
                }
                Some(Waiter::Sync { after }) => self.on_sync_page(sess, after, entries, head, more).await,
                _ => {}
            },
            ServerFrame::Reset {
                req,
                head,
                reason,
                code,
                epoch,
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::Reset {
                        req,
                        head,
                        reason,
                        code,
                        epoch,
                    }));
                }
                Some(Waiter::Sync { .. }) if code.data_replaced() => {
                    sess.sync_inflight = None;
                    tracing::info!(?code, %reason, "the server's data is not the device's");
                    self.head = head;
                    self.start_over(sess, epoch).await;
                }
                Some(Waiter::Sync { .. }) => {
                    sess.sync_inflight = None;
                    let from = self.inbox.cursor();
                    tracing::info!(from, head, %reason, "the server reset the cursor");
                    self.inbox.reset(head);
                    // Entries held for a pull belong to the old cursor.
                    self.staged.clear();
                    self.delivered = head;
                    self.delivered_id = None;
                    self.head = head;
                    self.requests.epoch = Some(epoch);
                    self.persist();
                    self.emit(Event::Reset {
                        from,
                        head,
                        data_replaced: false,
                    })
                    .await;
                    self.release().await;
                    sess.need_sync = true;
                }
                _ => {}
            },
            ServerFrame::HistoryPage {
                req,
                conv,
                messages,
                head,
                epoch,
            } => {
                if let Some(Waiter::Caller(c)) = self.requests.resolve(req) {
                    let _ = c.reply.send(Ok(ServerFrame::HistoryPage {
                        req,
                        conv,
                        messages,
                        head,
                        epoch,
                    }));
                }
            }
            ServerFrame::Pong { req, head } => {
                if let Some(Waiter::Caller(c)) = req.and_then(|r| self.requests.resolve(r)) {
                    let _ = c.reply.send(Ok(ServerFrame::Pong { req, head }));
                }
                self.head = head;
                // A lost push of the latest entry shows here, even with no later push.
                if sess.ready && head > self.inbox.cursor() {
                    sess.need_sync = true;
                }
            }
            ServerFrame::Error {
                req: Some(req),
                code,
                message,
                ..
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Err(ClientError::Server { code, message }));
                }
                Some(Waiter::SyncConv { conv, .. }) if code == ErrorCode::StaleEpoch => {
                    // The timeline sync finds out too and starts everything over.
                    tracing::info!(%message, %conv, "conversation pull from another epoch of the data");
                    self.follows.pull_failed(&conv, false, now());
                    sess.need_sync = true;
                }
                Some(Waiter::SyncConv { conv, .. }) => {
                    let for_good = matches!(code, ErrorCode::NotMember | ErrorCode::Forbidden | ErrorCode::NotFound);
                    tracing::debug!(?code, %message, %conv, for_good, "conversation pull refused");
                    let delay = self.resend.backoff.delay(self.follows.failures(&conv), &mut self.rng);
                    self.follows.pull_failed(&conv, for_good, now() + delay);
                    // A timeline entry held for this pull may go now.
                    self.release().await;
                }
                Some(Waiter::Poll) => {
                    tracing::debug!(?code, %message, "long-poll refused; retrying later");
                    if sess.poll.as_ref().is_some_and(|p| p.req == req) {
                        sess.poll = None;
                    }
                    sess.poll_retry_at = now() + self.resend.backoff.delay(sess.poll_failures, &mut self.rng);
                    sess.poll_failures = sess.poll_failures.saturating_add(1);
                }
                Some(Waiter::Sync { .. }) => {
                    if matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable) {
                        tracing::debug!(?code, %message, "sync refused; retrying later");
                    } else {
                        tracing::warn!(?code, %message, "sync refused; retrying later");
                    }
                    sess.sync_inflight = None;
                    sess.need_sync = true;
                    sess.sync_retry_at = now() + self.resend.backoff.delay(sess.sync_failures, &mut self.rng);
                    sess.sync_failures = sess.sync_failures.saturating_add(1);
                }
                _ => {}
            },
            ServerFrame::Error {
                req: None,
                code,
                message,
                id,
                retry_after_ms,
                ..
            } => {
                if !self.batches.refused(&message, code) {
                    let hint = retry_after_ms.map(std::time::Duration::from_millis);
                    self.on_send_error(sess, code, message, id.as_deref(), hint).await;
                }
            }
            ServerFrame::Welcome { .. } => {}
            ServerFrame::ConvPage {
                req,
                conv,
                messages,
                head,
                more,
                epoch,
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::ConvPage {
                        req,
                        conv,
                        messages,
                        head,
                        more,
                        epoch,
                    }));
                }
                Some(Waiter::SyncConv { conv, after }) => self.on_conv_page(conv, after, messages, head, more).await,
                _ => {}
            },
            ServerFrame::Polled { req, advanced } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::Polled { req, advanced }));
                }
                Some(Waiter::Poll) => {
                    if sess.poll.as_ref().is_some_and(|p| p.req == req) {
                        sess.poll = None;
                        sess.poll_failures = 0;
                    }
                    for a in advanced {
                        self.follows.on_head(&a.conv, a.head);
                    }
                }
                _ => {}
            },
            ServerFrame::UnreadPage { req, convs } => {
                if let Some(Waiter::Caller(c)) = self.requests.resolve(req) {
                    let _ = c.reply.send(Ok(ServerFrame::UnreadPage { req, convs }));
                }
            }
            ServerFrame::Notice { conv, head } => self.follows.on_head(&conv, head),
            ServerFrame::Priority { message } => {
                self.follows.on_head(&message.conv, message.conv_seq.0);
                self.emit(Event::Priority(message)).await;
            }
            ServerFrame::ReadMark { conv, conv_seq } => self.emit(Event::ReadMark { conv, conv_seq }).await,
        }
    }

    async fn on_sync_page(
        &mut self,
        sess: &mut Session,
        after: u64,
        entries: Vec<seqline_core::model::TimelineEntry>,
        head: u64,
        more: bool,
    ) {
        sess.sync_inflight = None;
        sess.sync_failures = 0;
        self.head = head;
        let before = self.inbox.cursor();
        let returned = entries.iter().map(|e| e.user_seq.0).collect();
        self.emit(Event::Pulled { from: after, returned }).await;
        for e in entries {
            self.inbox.insert(e, Via::Pull);
        }
        self.release().await;
        let progressed = self.inbox.cursor() > before;
        let behind = more || self.inbox.cursor() < head || self.inbox.has_gap();
        if behind && progressed {
            sess.need_sync = true;
        } else if !sess.ready {
            sess.ready = true;
            self.status.send_modify(|s| s.synced = true);
        }
    }

    /// An error frame without a request id may answer a send; the gateway
    /// names the message in `id` (and in the text, `message <id>: ...`)
    /// when it can. A final one (`too_large`, `invalid_field`) takes the
    /// message out of its conversation's chain: the next send names the
    /// previous one the gateway did not refuse (docs/protocol.md, "Sender
    /// order").
    ///
    /// A `rate_limited` refusal is not a transmission the server took: it
    /// does not count against `max_attempts`, and when the server gives a
    /// `retry_after_ms` hint (admission control) the message goes again
    /// after it (plus up to half of it again, at random) instead of after
    /// the growing backoff.
    async fn on_send_error(
        &mut self,
        sess: &mut Session,
        code: ErrorCode,
        message: String,
        named: Option<&str>,
        hint: Option<std::time::Duration>,
    ) {
        let slow_down = matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable);
        let id = match named {
            Some(named) => ClientMsgId::parse(named).ok(),
            None => message_id(&message),
        };
        if slow_down {
            let wait = match hint {
                Some(h) if code == ErrorCode::RateLimited => {
                    use rand::Rng;
                    h + h.mul_f64(self.rng.gen_range(0.0..0.5))
                }
                _ => {
                    let d = self.resend.backoff.delay(sess.slow_down, &mut self.rng);
                    sess.slow_down = sess.slow_down.saturating_add(1);
                    d
                }
            };
            let until = now() + wait;
            self.status.send_modify(|s| s.refused_for_now += 1);
            tracing::debug!(?code, ?hint, "the server asked to slow down");
            let unsent = code == ErrorCode::RateLimited;
            match id {
                Some(id) if self.outbox.retry_later(&id, until, unsent) => {}
                _ => self.outbox.pause(until),
            }
            return;
        }
        match id {
            Some(id) => {
                if let Some(msg) = self.outbox.refuse(&id, false) {
                    self.unstamp(&msg);
                    let reason = FailReason::Rejected { code, message };
                    self.settle(id, msg.conv, SendState::Failed(reason)).await;
                }
            }
            None => tracing::warn!(?code, %message, "error from the server"),
        }
    }

    /// The server's data is not the data the device synced (wiped, swapped
    /// or restored from an older copy): drop the timeline state and the
    /// conversation positions, tell the application, and sync the data of
    /// `epoch` from the start.
    pub(super) async fn start_over(&mut self, sess: &mut Session, epoch: Epoch) {
        let from = self.delivered;
        tracing::warn!(from, %epoch, "the server's data was replaced: starting over");
        self.requests.epoch = Some(epoch);
        self.inbox = Inbox::new(0);
        self.staged.clear();
        self.delivered = 0;
        self.delivered_id = None;
        self.follows.clear();
        // What the device saw and marked read belongs to the old data too.
        self.clocks = crate::clocks::Clocks::default();
        self.reads.clear();
        sess.reported = 0;
        self.persist();
        self.emit(Event::Reset {
            from,
            head: 0,
            data_replaced: true,
        })
        .await;
        sess.need_sync = true;
    }

    /// Emits the entries contiguous with the cursor, except repeats of
    /// pulled messages, stopping at one that waits for a conversation pull.
    pub(super) async fn release(&mut self) {
        self.staged.extend(self.inbox.take_ready());
        while let Some((entry, _)) = self.staged.front() {
            let decision = self.follows.on_timeline(&entry.message);
            if decision == Decision::Wait {
                break;
            }
            let Some((entry, via)) = self.staged.pop_front() else {
                break;
            };
            self.delivered = entry.user_seq.0;
            self.delivered_id = Some(entry.message.client_msg_id);
            if decision == Decision::Deliver {
                if self.vector_clocks {
                    self.clocks.observe(&entry.message);
                }
                self.emit(Event::Message { entry, via }).await;
            }
        }
    }

    /// A page of a followed conversation: emits what is new, in order, then
    /// releases timeline entries that waited for it.
    async fn on_conv_page(&mut self, conv: ConversationId, after: u64, messages: Vec<Message>, head: u64, more: bool) {
        let returned = messages.iter().map(|m| m.conv_seq.0).collect();
        self.emit(Event::ConvPulled {
            conv: conv.clone(),
            from: after,
            returned,
        })
        .await;
        for message in self.follows.on_page(&conv, messages, head, more) {
            if self.vector_clocks {
                self.clocks.observe(&message);
            }
            self.emit(Event::ConvMessage {
                message,
                via: Via::Pull,
            })
            .await;
        }
        self.release().await;
    }
}

/// The client id an error text names: `message <uuid>: ...`.
fn message_id(text: &str) -> Option<ClientMsgId> {
    let rest = text.strip_prefix("message ")?;
    let token = rest.split([':', ' ']).next()?;
    ClientMsgId::parse(token).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_message_an_error_names() {
        let id = seqline_core::ClientMsgId::random();
        assert_eq!(
            super::message_id(&format!("message {id}: over 100 sends per second")),
            Some(id)
        );
        assert_eq!(super::message_id(&format!("message {id} was not accepted")), Some(id));
        assert_eq!(super::message_id("too many requests"), None);
    }
}
