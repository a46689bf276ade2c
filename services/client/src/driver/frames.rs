//! What the task does with each server frame.

use super::requests::Waiter;
use super::session::Session;
use super::{now, Driver};
use crate::error::ClientError;
use crate::event::{Event, Via};
use crate::handle::{FailReason, SendState};
use seqline_core::ids::ClientMsgId;
use seqline_core::model::RefusalCode;
use seqline_core::protocol::{ErrorCode, ServerFrame};

impl Driver {
    pub(super) async fn on_frame(&mut self, frame: ServerFrame, sess: &mut Session) {
        match frame {
            ServerFrame::Ack { id, conv, conv_seq } => {
                sess.slow_down = 0;
                if self.outbox.ack(&id).is_some() {
                    self.settle(id, conv, SendState::Sent(conv_seq)).await;
                }
            }
            ServerFrame::Nack {
                id,
                conv,
                code,
                message,
            } => {
                if code == RefusalCode::OutOfOrder {
                    self.outbox.out_of_order(&id, now());
                } else if self.outbox.refuse(&id, true).is_some() {
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
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::SyncPage {
                        req,
                        entries,
                        head,
                        more,
                    }));
                }
                Some(Waiter::Sync { after }) => self.on_sync_page(sess, after, entries, head, more).await,
                _ => {}
            },
            ServerFrame::Reset { req, head, reason } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Ok(ServerFrame::Reset { req, head, reason }));
                }
                Some(Waiter::Sync { .. }) => {
                    sess.sync_inflight = None;
                    let from = self.inbox.cursor();
                    tracing::info!(from, head, %reason, "the server reset the cursor");
                    self.inbox.reset(head);
                    self.head = head;
                    self.persist();
                    self.emit(Event::Reset { from, head }).await;
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
            } => {
                if let Some(Waiter::Caller(c)) = self.requests.resolve(req) {
                    let _ = c.reply.send(Ok(ServerFrame::HistoryPage {
                        req,
                        conv,
                        messages,
                        head,
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
            } => match self.requests.resolve(req) {
                Some(Waiter::Caller(c)) => {
                    let _ = c.reply.send(Err(ClientError::Server { code, message }));
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
            } => self.on_send_error(sess, code, message).await,
            ServerFrame::Welcome { .. } => {}
            frame @ (ServerFrame::ConvPage { .. } | ServerFrame::Polled { .. } | ServerFrame::UnreadPage { .. }) => {
                let req = match &frame {
                    ServerFrame::ConvPage { req, .. }
                    | ServerFrame::Polled { req, .. }
                    | ServerFrame::UnreadPage { req, .. } => *req,
                    _ => return,
                };
                if let Some(Waiter::Caller(c)) = self.requests.resolve(req) {
                    let _ = c.reply.send(Ok(frame));
                }
            }
            ServerFrame::Notice { .. } | ServerFrame::Priority { .. } | ServerFrame::ReadMark { .. } => {}
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

    /// An error frame without a request id answers a send; the gateway names
    /// the message in the text (`message <id>: ...`) when it can.
    async fn on_send_error(&mut self, sess: &mut Session, code: ErrorCode, message: String) {
        let slow_down = matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable);
        let id = message_id(&message);
        if slow_down {
            let until = now() + self.resend.backoff.delay(sess.slow_down, &mut self.rng);
            sess.slow_down = sess.slow_down.saturating_add(1);
            tracing::debug!(?code, "the server asked to slow down");
            match id {
                Some(id) if self.outbox.retry_later(&id, until) => {}
                _ => self.outbox.pause(until),
            }
            return;
        }
        match id {
            Some(id) => {
                if let Some(msg) = self.outbox.refuse(&id, false) {
                    let reason = FailReason::Rejected { code, message };
                    self.settle(id, msg.conv, SendState::Failed(reason)).await;
                }
            }
            None => tracing::warn!(?code, %message, "error from the server"),
        }
    }

    /// Emits the entries contiguous with the cursor.
    pub(super) async fn release(&mut self) {
        for (entry, via) in self.inbox.take_ready() {
            if self.vector_clocks {
                self.clocks.observe(&entry.message);
            }
            self.emit(Event::Message { entry, via }).await;
        }
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
