//! What a session does with the read-diffusion frames (huge groups, see
//! `docs/huge-groups.md`): `sync_conv` pages a conversation by cursor from
//! the hot-tail cache, `poll` long-polls (in its own task, so the connection
//! keeps serving other frames) and follows, `read` moves a read position and
//! tells the user's other devices, `unread` counts.

use crate::connection::Exit;
use crate::epoch;
use crate::reads::{self, Link, PageError};
use crate::requests::unavailable;
use crate::session::Session;
use crate::state::Shared;
use axum::extract::ws::WebSocket;
use seqline_core::input::quote;
use seqline_core::model::{fit_budget, Message};
use seqline_core::ports::MemberWindow;
use seqline_core::protocol::{
    ConvCursor, ConvHead, ErrorCode, ServerFrame, UnreadCount, MAX_POLL_CONVS, MAX_POLL_WAIT_MS,
};
use seqline_core::records::{GatewayRecord, LogRecord, ReadMark, Topic};
use seqline_core::{ConvSeq, ConversationId, DeviceId, Epoch, GatewayId, UserId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;

fn not_member(req: Option<u64>, conv: &ConversationId) -> ServerFrame {
    let text = format!("not a member of {}, or it does not exist", quote(conv.as_str()));
    ServerFrame::conv_error(req, conv, ErrorCode::NotMember, text)
}

fn invalid(req: Option<u64>, message: String) -> ServerFrame {
    ServerFrame::error(req, ErrorCode::InvalidField, message)
}

fn outside(req: Option<u64>, conv: &ConversationId, after: u64) -> ServerFrame {
    let text = format!(
        "not a member of {} after conv_seq {after}, or it does not exist: \
         pull only within your membership (from your `joined` entry up to your `left`)",
        quote(conv.as_str())
    );
    ServerFrame::conv_error(req, conv, ErrorCode::NotMember, text)
}

/// Whether `link`'s user is a member of `conv` now; asked of the store
/// once per connection (a `left` naming the user makes it ask again).
async fn member(shared: &Shared, link: &Link, conv: &ConversationId) -> Result<bool, seqline_core::Error> {
    if link.open_window(conv).is_some() {
        return Ok(true);
    }
    let windows = shared.ports.store.membership(conv, &link.key.user).await?;
    Ok(remember_open(link, conv, &windows))
}

/// Records the user's open window of `conv`, if any; true when there is one.
fn remember_open(link: &Link, conv: &ConversationId, windows: &[MemberWindow]) -> bool {
    match windows.last().filter(|w| w.left.is_none()) {
        Some(w) => {
            link.verify(conv, w.joined.0);
            true
        }
        None => false,
    }
}

/// How far `link`'s user may pull `conv` from cursor `after`: `Some(None)`
/// within its current membership (up to the head), `Some(Some(end))` within
/// a window its `left` at `end` closed (a former member, or before a
/// re-add), `None` outside every window of its membership (or no such
/// conversation). See [`MemberWindow::readable`].
async fn window(
    shared: &Shared,
    link: &Link,
    conv: &ConversationId,
    after: u64,
) -> Result<Option<Option<u64>>, seqline_core::Error> {
    if link.open_window(conv).is_some_and(|joined| after + 1 >= joined) {
        return Ok(Some(None));
    }
    let windows = shared.ports.store.membership(conv, &link.key.user).await?;
    remember_open(link, conv, &windows);
    Ok(MemberWindow::readable(&windows, ConvSeq(after)).map(|end| end.map(|e| e.0)))
}

/// A page of `conv` after `after` inside a window ending at `end` (`None`:
/// open): cut at the leave point and at a switch back to write mode, with
/// the head (at most the leave point).
async fn window_page(
    shared: &Arc<Shared>,
    conv: &ConversationId,
    after: u64,
    limit: usize,
    end: Option<u64>,
) -> Result<(Vec<Message>, u64), PageError> {
    let (mut messages, mut head, _) = reads::page(shared, conv, after, limit).await?;
    if let Some(end) = end {
        if head < end {
            // The leave point is committed, so the cached head trails it.
            reads::read_head(shared, conv).await.map_err(PageError::Store)?;
            (messages, head, _) = reads::page(shared, conv, after, limit).await?;
        }
        messages.retain(|m| m.conv_seq.0 <= end);
        head = head.min(end);
    }
    reads::stop_at_switch(shared, conv, after, &mut messages).await?;
    Ok((messages, head))
}

impl Session {
    pub(crate) async fn sync_conv(
        &mut self,
        socket: &mut WebSocket,
        req: u64,
        conv: ConversationId,
        after: u64,
        limit: Option<u32>,
        known: Option<Epoch>,
    ) -> Result<(), Exit> {
        let limit = match self.page_limit(req, limit) {
            Ok(l) => l,
            Err(e) => return self.write(socket, &e).await,
        };
        let epoch = match epoch::check(self.shared.ports.store.as_ref(), req, known).await {
            Ok(epoch) => epoch,
            Err(e) => return self.write(socket, &e).await,
        };
        let end = match window(&self.shared, &self.link, &conv, after).await {
            Ok(Some(end)) => end,
            Ok(None) => return self.write(socket, &outside(Some(req), &conv, after)).await,
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        if let Some(end) = end.filter(|end| after >= *end) {
            // The window ends here: nothing past the leave point, ever.
            let page = ServerFrame::ConvPage {
                req,
                conv,
                messages: Vec::new(),
                head: end,
                more: false,
                epoch,
            };
            return self.write(socket, &page).await;
        }
        let page = window_page(&self.shared, &conv, after, limit, end).await;
        let frame = match page {
            Ok((mut messages, head)) => {
                // More follow when the page (cut at a leave point or a
                // switch back to write mode) ends below the head.
                let last = messages.last().map_or(after, |m| m.conv_seq.0);
                let cut = fit_budget(&mut messages, self.shared.config.max_page_bytes, Message::size_hint);
                ServerFrame::ConvPage {
                    req,
                    conv,
                    messages,
                    head,
                    more: last < head || cut,
                    epoch,
                }
            }
            Err(PageError::Missing) => not_member(Some(req), &conv),
            Err(PageError::Beyond(head)) => ServerFrame::conv_error(
                Some(req),
                &conv,
                ErrorCode::InvalidField,
                format!(
                    "after {after} is beyond the head {head} of {}: page from your last conv_seq",
                    quote(conv.as_str())
                ),
            ),
            Err(PageError::Store(e)) => unavailable(Some(req), &e),
        };
        self.write(socket, &frame).await
    }

    pub(crate) async fn poll(
        &mut self,
        socket: &mut WebSocket,
        req: u64,
        convs: Vec<ConvCursor>,
        wait_ms: Option<u64>,
    ) -> Result<(), Exit> {
        if convs.len() > MAX_POLL_CONVS {
            let e = invalid(
                Some(req),
                format!(
                    "a poll names at most {MAX_POLL_CONVS} conversations, not {}",
                    convs.len()
                ),
            );
            return self.write(socket, &e).await;
        }
        if let Some(w) = wait_ms.filter(|w| *w > MAX_POLL_WAIT_MS) {
            let e = invalid(Some(req), format!("wait_ms {w} is over the maximum {MAX_POLL_WAIT_MS}"));
            return self.write(socket, &e).await;
        }
        let mut seen = HashSet::with_capacity(convs.len());
        if let Some(dup) = convs.iter().find(|c| !seen.insert(&c.conv)) {
            let text = format!("conversation {} is named twice", quote(dup.conv.as_str()));
            let e = ServerFrame::conv_error(Some(req), &dup.conv, ErrorCode::InvalidField, text);
            return self.write(socket, &e).await;
        }
        let wait = wait_ms.map_or(self.shared.config.poll_wait, Duration::from_millis);
        // A new poll answers the one before it (now) and replaces its follows.
        let superseded = CancellationToken::new();
        self.poll = Some(superseded.clone().drop_guard());
        let (shared, link) = (Arc::clone(&self.shared), Arc::clone(&self.link));
        self.shared
            .tracker
            .spawn(run_poll(shared, link, req, convs, wait, superseded));
        Ok(())
    }

    pub(crate) async fn read(
        &mut self,
        socket: &mut WebSocket,
        conv: ConversationId,
        conv_seq: u64,
    ) -> Result<(), Exit> {
        match member(&self.shared, &self.link, &conv).await {
            Ok(true) => {}
            Ok(false) => return self.write(socket, &not_member(None, &conv)).await,
            Err(e) => return self.write(socket, &unavailable(None, &e)).await,
        }
        let mut head = match reads::head(&self.shared, &conv).await {
            Ok(h) => h,
            Err(e) => return self.write(socket, &unavailable(None, &e)).await,
        };
        if head.is_some_and(|h| conv_seq > h) {
            // Perhaps only this gateway is behind: ask the store.
            head = match reads::read_head(&self.shared, &conv).await {
                Ok(h) => h,
                Err(e) => return self.write(socket, &unavailable(None, &e)).await,
            };
        }
        let Some(head) = head else {
            return self.write(socket, &not_member(None, &conv)).await;
        };
        if conv_seq > head {
            let e = ServerFrame::conv_error(
                None,
                &conv,
                ErrorCode::InvalidField,
                format!(
                    "read: conv_seq {conv_seq} is beyond the head {head} of {}",
                    quote(conv.as_str())
                ),
            );
            return self.write(socket, &e).await;
        }
        let store = &self.shared.ports.store;
        let stored = match store.set_read_position(&self.key.user, &conv, ConvSeq(conv_seq)).await {
            Ok(s) => s,
            Err(e) => return self.write(socket, &unavailable(None, &e)).await,
        };
        if stored.0 == conv_seq && conv_seq > 0 {
            let mark = ReadMark {
                user: self.key.user.clone(),
                device: self.key.device.clone(),
                conv,
                conv_seq: stored,
            };
            let shared = Arc::clone(&self.shared);
            self.shared
                .tracker
                .spawn(async move { tell_devices(&shared, mark).await });
        }
        Ok(())
    }

    pub(crate) async fn unread(&mut self, socket: &mut WebSocket, req: u64) -> Result<(), Exit> {
        let store = &self.shared.ports.store;
        let convs = match store.conversations_of(&self.key.user).await {
            Ok(c) => c,
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        let read: HashMap<ConversationId, ConvSeq> = match store.read_positions(&self.key.user).await {
            Ok(r) => r.into_iter().collect(),
            Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
        };
        let mut counts = Vec::with_capacity(convs.len());
        for conv in convs {
            let head = match reads::head(&self.shared, &conv).await {
                Ok(h) => h.unwrap_or(0),
                Err(e) => return self.write(socket, &unavailable(Some(req), &e)).await,
            };
            let read = read.get(&conv).map_or(0, |s| s.0);
            counts.push(UnreadCount {
                conv,
                head,
                read,
                unread: head.saturating_sub(read),
            });
        }
        self.write(socket, &ServerFrame::UnreadPage { req, convs: counts })
            .await
    }
}

/// One long-poll: checks membership, follows the conversations, then answers
/// as soon as one is above its cursor, when the wait ends, or when a newer
/// poll replaces it. A conversation whose window closed (its user left) is
/// not followed: its head is the leave point, and it is answered at once,
/// even once the cursor is there (nothing more will come).
async fn run_poll(
    shared: Arc<Shared>,
    link: Arc<Link>,
    req: u64,
    convs: Vec<ConvCursor>,
    wait: Duration,
    superseded: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + wait;
    // Per conversation, the end of the window its cursor is in (`None`: open).
    let mut ends: Vec<Option<u64>> = Vec::with_capacity(convs.len());
    for c in &convs {
        match window(&shared, &link, &c.conv, c.after).await {
            Ok(Some(end)) => ends.push(end),
            Ok(None) => {
                let e = ServerFrame::conv_error(
                    Some(req),
                    &c.conv,
                    ErrorCode::NotMember,
                    format!(
                        "not a member of {} after conv_seq {}, or it does not exist: nothing is followed by this poll",
                        quote(c.conv.as_str()),
                        c.after
                    ),
                );
                return link.answer(&shared, e);
            }
            Err(e) => return link.answer(&shared, unavailable(Some(req), &e)),
        }
    }
    let open: Vec<&ConvCursor> = convs
        .iter()
        .zip(&ends)
        .filter(|(_, e)| e.is_none())
        .map(|(c, _)| c)
        .collect();
    let names: Vec<ConversationId> = open.iter().map(|c| c.conv.clone()).collect();
    // Follow first, then read the heads: whatever commits after the read
    // comes as a notice.
    reads::set_follows(&shared, &link, &names).await;
    for c in &open {
        match reads::head(&shared, &c.conv).await {
            Ok(h) => shared.reads.learned(&c.conv, h.unwrap_or(0)),
            Err(e) => return link.answer(&shared, unavailable(Some(req), &e)),
        }
    }
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    let advanced = loop {
        let advanced: Vec<ConvHead> = convs
            .iter()
            .zip(&ends)
            .filter_map(|(c, end)| {
                let head = end.unwrap_or_else(|| shared.reads.known_head(&c.conv));
                (head > c.after || end.is_some()).then(|| ConvHead {
                    conv: c.conv.clone(),
                    head,
                })
            })
            .collect();
        if !advanced.is_empty() {
            break advanced;
        }
        tokio::select! {
            biased;
            () = superseded.cancelled() => break Vec::new(),
            () = shared.stop.cancelled() => break Vec::new(),
            () = link.wake.notified() => {}
            () = &mut sleep => break Vec::new(),
        }
        // A `left` naming the user makes it verify again: its window may
        // have closed while the poll waited.
        for (c, end) in convs.iter().zip(ends.iter_mut()) {
            if end.is_some() || link.open_window(&c.conv).is_some() {
                continue;
            }
            match window(&shared, &link, &c.conv, c.after).await {
                Ok(Some(e)) => *end = e,
                // Nothing readable any more: the poll ends at its cursor.
                Ok(None) => *end = Some(c.after),
                Err(e) => return link.answer(&shared, unavailable(Some(req), &e)),
            }
        }
    };
    shared.metrics.polls_answered.inc();
    link.answer(&shared, ServerFrame::Polled { req, advanced });
}

/// Appends a read mark to the topic of every gateway holding another device
/// of the user.
async fn tell_devices(shared: &Shared, mark: ReadMark) {
    let users: [UserId; 1] = [mark.user.clone()];
    let located = match shared.ports.presence.lookup(&users).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "looking up the user's devices failed; their read marks come on the next sync");
            return;
        }
    };
    let me: &DeviceId = &mark.device;
    let gateways: BTreeSet<GatewayId> = located
        .get(&mark.user)
        .into_iter()
        .flatten()
        .filter(|l| &l.device != me)
        .map(|l| l.gateway.clone())
        .collect();
    for g in gateways {
        let record = LogRecord::Gateway(GatewayRecord::ReadMark(mark.clone()));
        if let Err(e) = shared.ports.log.append(&Topic::Gateway(g), vec![record]).await {
            warn!(error = %e, "appending a read mark failed");
        }
    }
}
