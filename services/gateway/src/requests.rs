//! What a session does with each authenticated frame: publish sends, answer
//! sync, history, cursor and ping from the store.

use crate::admission;
use crate::connection::Exit;
use crate::epoch;
use crate::publisher::{Job, Notify};
use crate::session::Session;
use axum::extract::ws::WebSocket;
use seqline_core::model::{fit_budget, now_ms, Message, VectorClock};
use seqline_core::protocol::{ErrorCode, ResetCode, ServerFrame};
use seqline_core::records::{Command, Origin, SendCommand};
use seqline_core::{ClientMsgId, ConvSeq, ConversationId, Epoch, UserSeq};
use std::time::Instant;
use tracing::warn;

/// Most participants a vector clock may name.
pub(crate) const MAX_VCLOCK: usize = 1024;

pub(crate) fn unavailable(req: Option<u64>, e: &seqline_core::Error) -> ServerFrame {
    warn!(error = %e, "a store read failed");
    ServerFrame::error(req, ErrorCode::Unavailable, "the store is unavailable; retry later")
}

impl Session {
    #[allow(clippy::result_large_err)]
    pub(crate) fn page_limit(&self, req: u64, limit: Option<u32>) -> Result<usize, ServerFrame> {
        match limit {
            Some(0) => Err(ServerFrame::error(
                Some(req),
                ErrorCode::InvalidField,
                "limit must be at least 1",
            )),
            Some(n) => Ok(n.min(self.shared.config.max_page) as usize),
            None => Ok(self.shared.config.max_page as usize),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &mut self,
        socket: &mut WebSocket,
        id: ClientMsgId,
        conv: ConversationId,
        body: String,
        prev: Option<ClientMsgId>,
        priority: bool,
        vclock: VectorClock,
    ) -> Result<(), Exit> {
        let max = self.shared.config.max_body_bytes;
        let refusal = if id.0.is_nil() {
            Some((ErrorCode::InvalidField, "the id must be a non-nil UUID".to_owned()))
        } else if body.len() > max {
            Some((
                ErrorCode::TooLarge,
                format!("the body is {} bytes, over {max}", body.len()),
            ))
        } else if body.is_empty() {
            Some((ErrorCode::InvalidField, "the body is empty".to_owned()))
        } else if prev.is_some_and(|p| p.0.is_nil()) {
            Some((ErrorCode::InvalidField, "prev must be a non-nil UUID".to_owned()))
        } else if prev == Some(id) {
            Some((ErrorCode::InvalidField, "prev names the message itself".to_owned()))
        } else if vclock.len() > MAX_VCLOCK {
            Some((
                ErrorCode::InvalidField,
                format!("the vector clock names over {MAX_VCLOCK} users"),
            ))
        } else if !self.sends.try_take(Instant::now()) {
            let rate = self.shared.config.max_sends_per_sec;
            Some((
                ErrorCode::RateLimited,
                format!("over {rate} sends per second; resend it later"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            if code != ErrorCode::RateLimited {
                // Final: the sends chained after it skip it (see `refusals`).
                self.shared.refusals.remember(&self.key, id, Some(conv.clone()), prev);
            }
            let e = ServerFrame::send_error(&id.to_string(), Some(conv), code, message);
            return self.write(socket, &e).await;
        }
        // Checked last: a send the gateway would refuse for good is refused
        // for good even while admission slows down.
        if let Err((slow, retry)) = self.shared.admission.check(1) {
            let e = admission::refusal(&id.to_string(), Some(conv), slow, retry);
            return self.write(socket, &e).await;
        }
        let prev = self.shared.refusals.passed(&self.key, id, &conv, prev);
        // The sender is the token's user and device, whatever the frame says:
        // a frame cannot even name another sender (unknown fields are refused).
        let origin = Origin {
            name: self.name.clone(),
            gateway: self.shared.config.id.clone(),
            user: self.key.user.clone(),
            device: self.key.device.clone(),
            request: 0,
        };
        let conv_named = conv.clone();
        let command = Command::Send(SendCommand {
            origin,
            conv,
            client_msg_id: id,
            prev,
            body,
            priority,
            vclock,
            sent_ms: now_ms(),
        });
        let job = Job {
            command,
            notify: Notify::Connection {
                tx: self.tx.clone(),
                id,
                conv: conv_named.clone(),
            },
            trace: seqline_telemetry::current_traceparent(),
        };
        self.shared.admission.sent([id]);
        let published = tokio::select! {
            r = self.shared.publisher.publish(job) => r.is_ok(),
            () = self.shared.stop.cancelled() => false,
        };
        if published {
            Ok(())
        } else {
            self.shared.admission.settled(&id);
            let e = ServerFrame::send_error(
                &id.to_string(),
                Some(conv_named),
                ErrorCode::Unavailable,
                "the gateway is stopping; resend it",
            );
            self.write(socket, &e).await
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sync(
        &mut self,
        socket: &mut WebSocket,
        req: u64,
        after: u64,
        limit: Option<u32>,
        known: Option<Epoch>,
        after_id: Option<ClientMsgId>,
    ) -> Result<(), Exit> {
        let limit = match self.page_limit(req, limit) {
            Ok(l) => l,
            Err(e) => return self.write(socket, &e).await,
        };
        let store = &self.shared.ports.store;
        let (epoch, head) = match (store.epoch().await, store.timeline_head(&self.key.user).await) {
            (Ok(epoch), Ok(h)) => (epoch, h.0),
            (Err(e), _) | (_, Err(e)) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        let reset = |code: ResetCode, reason: String| ServerFrame::Reset {
            req,
            head,
            reason,
            code,
            epoch,
        };
        if let Some(reason) = epoch::stale_reason(known, epoch) {
            return self.write(socket, &reset(ResetCode::StaleEpoch, reason)).await;
        }
        if after > head {
            let reason = format!("the cursor {after} is beyond the timeline head {head}: start over from the head");
            return self.write(socket, &reset(ResetCode::BeyondHead, reason)).await;
        }
        // With a mark, read the entry at the cursor too and check it is the
        // one the device has: a store restored from an older copy reuses
        // the numbers after its tail for other entries.
        let marked = after_id.filter(|_| after > 0);
        let from = if marked.is_some() { after - 1 } else { after };
        let read = store
            .timeline_after(&self.key.user, UserSeq(from), limit + usize::from(marked.is_some()))
            .await;
        let mut entries = match read {
            Ok(e) => e,
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        if let Some(id) = marked {
            match entries.first() {
                Some(e) if e.user_seq.0 == after && e.message.client_msg_id == id => {
                    entries.remove(0);
                }
                Some(e) if e.user_seq.0 == after => {
                    let reason = format!(
                        "the entry at {after} is not message {id} the device has (the data was restored or replaced): start over"
                    );
                    return self.write(socket, &reset(ResetCode::OtherEntry, reason)).await;
                }
                _ => {
                    let reason = format!("the entry at {after} is no longer stored: start over from the head");
                    return self.write(socket, &reset(ResetCode::Trimmed, reason)).await;
                }
            }
        }
        // `more` follows from the last entry and the head.
        fit_budget(&mut entries, self.shared.config.max_page_bytes, |e| {
            e.message.size_hint() + 32
        });
        // Never a silent gap: the page must continue the cursor exactly.
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.user_seq.0 == after + 1 + i as u64);
        if !contiguous || (entries.is_empty() && after < head) {
            let reason = format!("entries after {after} can no longer be served: start over from the head");
            return self.write(socket, &reset(ResetCode::Trimmed, reason)).await;
        }
        let last = entries.last().map_or(after, |e| e.user_seq.0);
        let head = head.max(last);
        let page = ServerFrame::SyncPage {
            req,
            entries,
            head,
            more: last < head,
            epoch,
        };
        self.write(socket, &page).await?;
        let releases = self.rectifier.synced(last, Instant::now());
        self.release(socket, releases).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn history(
        &mut self,
        socket: &mut WebSocket,
        req: u64,
        conv: ConversationId,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
        known: Option<Epoch>,
    ) -> Result<(), Exit> {
        if before.is_some() && after.is_some() {
            let e = ServerFrame::error(Some(req), ErrorCode::InvalidField, "give before or after, not both");
            return self.write(socket, &e).await;
        }
        let limit = match self.page_limit(req, limit) {
            Ok(l) => l,
            Err(e) => return self.write(socket, &e).await,
        };
        let store = &self.shared.ports.store;
        let epoch = match epoch::check(store.as_ref(), req, known).await {
            Ok(epoch) => epoch,
            Err(e) => return self.write(socket, &e).await,
        };
        let not_member = || {
            ServerFrame::error(
                Some(req),
                ErrorCode::NotMember,
                "not a member of this conversation, or it does not exist",
            )
        };
        // A missing conversation and one the user is not in get one answer.
        match store.member_role(&conv, &self.key.user).await {
            Ok(Some(_)) => {}
            Ok(None) => return self.write(socket, &not_member()).await,
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        }
        let head = match store.conversation_head(&conv).await {
            Ok(Some(h)) => h,
            Ok(None) => return self.write(socket, &not_member()).await,
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        let page = match (before, after) {
            (_, Some(a)) => store.messages_after(&conv, ConvSeq(a), limit).await,
            (Some(b), None) => store.messages_before(&conv, ConvSeq(b), limit).await,
            (None, None) => {
                store
                    .messages_before(&conv, ConvSeq(head.0.saturating_add(1)), limit)
                    .await
            }
        };
        let frame = match page {
            Ok(mut messages) => {
                let budget = self.shared.config.max_page_bytes;
                if before.is_some() || after.is_none() {
                    // Newest-first paging: keep the messages nearest the cursor.
                    messages.reverse();
                    fit_budget(&mut messages, budget, Message::size_hint);
                    messages.reverse();
                } else {
                    fit_budget(&mut messages, budget, Message::size_hint);
                }
                ServerFrame::HistoryPage {
                    req,
                    conv,
                    messages,
                    head: head.0,
                    epoch,
                }
            }
            Err(e) => unavailable(Some(req), &e),
        };
        self.write(socket, &frame).await
    }

    pub(crate) async fn cursor(&mut self, socket: &mut WebSocket, user_seq: u64) -> Result<(), Exit> {
        let store = &self.shared.ports.store;
        let head = match store.timeline_head(&self.key.user).await {
            Ok(h) => h.0,
            Err(e) => return self.write(socket, &unavailable(None, &e)).await,
        };
        if user_seq > head {
            let msg = format!("cursor {user_seq} is beyond the timeline head {head}");
            return self
                .write(socket, &ServerFrame::error(None, ErrorCode::InvalidField, msg))
                .await;
        }
        match store
            .set_device_cursor(&self.key.user, &self.key.device, UserSeq(user_seq))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => self.write(socket, &unavailable(None, &e)).await,
        }
    }

    pub(crate) async fn ping(&mut self, socket: &mut WebSocket, req: Option<u64>) -> Result<(), Exit> {
        let frame = match self.shared.ports.store.timeline_head(&self.key.user).await {
            Ok(head) => ServerFrame::Pong { req, head: head.0 },
            Err(e) => unavailable(req, &e),
        };
        self.write(socket, &frame).await
    }
}
