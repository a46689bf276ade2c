//! The device's own timeline: `sync` pages it after a cursor, `cursor`
//! moves the stored cursor, `ping` tells the head.

use super::answers::{page_limit, unavailable};
use super::epoch;
use crate::registry::Link;
use crate::state::Shared;
use seqline_core::model::fit_budget;
use seqline_core::protocol::{ErrorCode, ResetCode, ServerFrame};
use seqline_core::{ClientMsgId, Epoch, UserSeq};

/// A `sync` frame, as the session hands it over.
pub(crate) struct SyncRequest {
    pub req: u64,
    pub after: u64,
    pub limit: Option<u32>,
    /// The epoch the device's cursor belongs to.
    pub known: Option<Epoch>,
    /// The id of the entry at the cursor, as the device has it.
    pub after_id: Option<ClientMsgId>,
}

/// A sync's answer, and the last user_seq it delivered (for the rectifier:
/// pushes up to it are not needed any more).
pub(crate) struct Synced {
    pub frame: ServerFrame,
    pub last: Option<u64>,
}

impl Synced {
    fn answer(frame: ServerFrame) -> Self {
        Self { frame, last: None }
    }
}

/// Answers `sync`: a page of the device's timeline after its cursor, or a
/// `reset` when the cursor cannot be continued.
pub(crate) async fn sync(shared: &Shared, link: &Link, request: SyncRequest) -> Synced {
    let SyncRequest {
        req,
        after,
        limit,
        known,
        after_id,
    } = request;
    let limit = match page_limit(&shared.config, req, limit) {
        Ok(l) => l,
        Err(e) => return Synced::answer(e),
    };
    let store = &shared.ports.store;
    let (epoch, head) = match (store.epoch().await, store.timeline_head(&link.key.user).await) {
        (Ok(epoch), Ok(h)) => (epoch, h.0),
        (Err(e), _) | (_, Err(e)) => return Synced::answer(unavailable(Some(req), &e)),
    };
    let reset = |code: ResetCode, reason: String| ServerFrame::Reset {
        req,
        head,
        reason,
        code,
        epoch,
    };
    if let Some(reason) = epoch::stale_reason(known, epoch) {
        return Synced::answer(reset(ResetCode::StaleEpoch, reason));
    }
    if after > head {
        let reason = format!("the cursor {after} is beyond the timeline head {head}: start over from the head");
        return Synced::answer(reset(ResetCode::BeyondHead, reason));
    }
    // With a mark, read the entry at the cursor too and check it is the
    // one the device has: a store restored from an older copy reuses
    // the numbers after its tail for other entries.
    let marked = after_id.filter(|_| after > 0);
    let from = if marked.is_some() { after - 1 } else { after };
    let read = store
        .timeline_after(&link.key.user, UserSeq(from), limit + usize::from(marked.is_some()))
        .await;
    let mut entries = match read {
        Ok(e) => e,
        Err(e) => return Synced::answer(unavailable(Some(req), &e)),
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
                return Synced::answer(reset(ResetCode::OtherEntry, reason));
            }
            _ => {
                let reason = format!("the entry at {after} is no longer stored: start over from the head");
                return Synced::answer(reset(ResetCode::Trimmed, reason));
            }
        }
    }
    // `more` follows from the last entry and the head.
    fit_budget(&mut entries, shared.config.max_page_bytes, |e| {
        e.message.size_hint() + 32
    });
    // Never a silent gap: the page must continue the cursor exactly.
    let contiguous = entries
        .iter()
        .enumerate()
        .all(|(i, e)| e.user_seq.0 == after + 1 + i as u64);
    if !contiguous || (entries.is_empty() && after < head) {
        let reason = format!("entries after {after} can no longer be served: start over from the head");
        return Synced::answer(reset(ResetCode::Trimmed, reason));
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
    Synced {
        frame: page,
        last: Some(last),
    }
}

/// Moves the device's cursor; answers only a refusal or a failure.
pub(crate) async fn cursor(shared: &Shared, link: &Link, user_seq: u64) -> Option<ServerFrame> {
    let store = &shared.ports.store;
    let head = match store.timeline_head(&link.key.user).await {
        Ok(h) => h.0,
        Err(e) => return Some(unavailable(None, &e)),
    };
    if user_seq > head {
        let msg = format!("cursor {user_seq} is beyond the timeline head {head}");
        return Some(ServerFrame::error(None, ErrorCode::InvalidField, msg));
    }
    match store
        .set_device_cursor(&link.key.user, &link.key.device, UserSeq(user_seq))
        .await
    {
        Ok(()) => None,
        Err(e) => Some(unavailable(None, &e)),
    }
}

/// Answers `ping` with the timeline head.
pub(crate) async fn ping(shared: &Shared, link: &Link, req: Option<u64>) -> ServerFrame {
    match shared.ports.store.timeline_head(&link.key.user).await {
        Ok(head) => ServerFrame::Pong { req, head: head.0 },
        Err(e) => unavailable(req, &e),
    }
}
