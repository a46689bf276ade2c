//! The read-diffusion frames (huge groups, see `docs/huge-groups.md`):
//! `sync_conv` pages a conversation by cursor from the hot-tail cache,
//! `read` moves a read position and tells the user's other devices,
//! `unread` counts; `poll` is in `poll`. Membership is checked against the
//! user's windows (from `joined` to `left`), remembered per connection.

use super::answers::{page_limit, unavailable};
use super::epoch;
use crate::pushes::read_marks;
use crate::reads::{PageError, Reads};
use crate::registry::Link;
use crate::state::Shared;
use seqline_core::input::quote;
use seqline_core::model::{fit_budget, Message};
use seqline_core::ports::MemberWindow;
use seqline_core::protocol::{ErrorCode, ServerFrame, UnreadCount};
use seqline_core::records::ReadMark;
use seqline_core::{ConvSeq, ConversationId, Epoch};
use std::collections::HashMap;
use std::sync::Arc;

/// A `sync_conv` frame, as the session hands it over.
pub(crate) struct SyncConvRequest {
    pub req: u64,
    pub conv: ConversationId,
    pub after: u64,
    pub limit: Option<u32>,
    /// The epoch the device's copy belongs to.
    pub known: Option<Epoch>,
}

pub(super) fn not_member(req: Option<u64>, conv: &ConversationId) -> ServerFrame {
    let text = format!("not a member of {}, or it does not exist", quote(conv.as_str()));
    ServerFrame::conv_error(req, conv, ErrorCode::NotMember, text)
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
pub(super) async fn window(
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
    reads: &Arc<Reads>,
    conv: &ConversationId,
    after: u64,
    limit: usize,
    end: Option<u64>,
) -> Result<(Vec<Message>, u64), PageError> {
    let (mut messages, mut head, _) = reads.page(conv, after, limit).await?;
    if let Some(end) = end {
        if head < end {
            // The leave point is committed, so the cached head trails it.
            reads.read_head(conv).await.map_err(PageError::Store)?;
            (messages, head, _) = reads.page(conv, after, limit).await?;
        }
        messages.retain(|m| m.conv_seq.0 <= end);
        head = head.min(end);
    }
    reads.stop_at_switch(conv, after, &mut messages).await?;
    Ok((messages, head))
}

/// Answers `sync_conv`: a page of `conv` after a cursor, within the
/// user's membership window.
pub(crate) async fn sync_conv(shared: &Shared, link: &Link, request: SyncConvRequest) -> ServerFrame {
    let SyncConvRequest {
        req,
        conv,
        after,
        limit,
        known,
    } = request;
    let limit = match page_limit(&shared.config, req, limit) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let epoch = match epoch::check(shared.ports.store.as_ref(), req, known).await {
        Ok(epoch) => epoch,
        Err(e) => return e,
    };
    let end = match window(shared, link, &conv, after).await {
        Ok(Some(end)) => end,
        Ok(None) => return outside(Some(req), &conv, after),
        Err(e) => return unavailable(Some(req), &e),
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
        return page;
    }
    let page = window_page(&shared.reads, &conv, after, limit, end).await;
    match page {
        Ok((mut messages, head)) => {
            // More follow when the page (cut at a leave point or a
            // switch back to write mode) ends below the head.
            let last = messages.last().map_or(after, |m| m.conv_seq.0);
            let cut = fit_budget(&mut messages, shared.config.max_page_bytes, Message::size_hint);
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
    }
}

/// Moves the user's read position in `conv`; answers only a refusal or a
/// failure. A position that moved is told to the user's other devices.
pub(crate) async fn read(
    shared: &Arc<Shared>,
    link: &Link,
    conv: ConversationId,
    conv_seq: u64,
) -> Option<ServerFrame> {
    match member(shared, link, &conv).await {
        Ok(true) => {}
        Ok(false) => return Some(not_member(None, &conv)),
        Err(e) => return Some(unavailable(None, &e)),
    }
    let mut head = match shared.reads.head(&conv).await {
        Ok(h) => h,
        Err(e) => return Some(unavailable(None, &e)),
    };
    if head.is_some_and(|h| conv_seq > h) {
        // Perhaps only this gateway is behind: ask the store.
        head = match shared.reads.read_head(&conv).await {
            Ok(h) => h,
            Err(e) => return Some(unavailable(None, &e)),
        };
    }
    let Some(head) = head else {
        return Some(not_member(None, &conv));
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
        return Some(e);
    }
    let store = &shared.ports.store;
    let stored = match store.set_read_position(&link.key.user, &conv, ConvSeq(conv_seq)).await {
        Ok(s) => s,
        Err(e) => return Some(unavailable(None, &e)),
    };
    if stored.0 == conv_seq && conv_seq > 0 {
        let mark = ReadMark {
            user: link.key.user.clone(),
            device: link.key.device.clone(),
            conv,
            conv_seq: stored,
        };
        let s = Arc::clone(shared);
        shared
            .tracker
            .spawn(async move { read_marks::tell_devices(&s, mark).await });
    }
    None
}

/// Answers `unread`: per conversation of the user, its head, the read
/// position and how many are unread.
pub(crate) async fn unread(shared: &Shared, link: &Link, req: u64) -> ServerFrame {
    let store = &shared.ports.store;
    let convs = match store.conversations_of(&link.key.user).await {
        Ok(c) => c,
        Err(e) => return unavailable(Some(req), &e),
    };
    let read: HashMap<ConversationId, ConvSeq> = match store.read_positions(&link.key.user).await {
        Ok(r) => r.into_iter().collect(),
        Err(e) => return unavailable(Some(req), &e),
    };
    let mut counts = Vec::with_capacity(convs.len());
    for conv in convs {
        let head = match shared.reads.head(&conv).await {
            Ok(h) => h.unwrap_or(0),
            Err(e) => return unavailable(Some(req), &e),
        };
        let read = read.get(&conv).map_or(0, |s| s.0);
        counts.push(UnreadCount {
            conv,
            head,
            read,
            unread: head.saturating_sub(read),
        });
    }
    ServerFrame::UnreadPage { req, convs: counts }
}
