//! `poll`: a long-poll over several conversations, answered as soon as one
//! of them is above its cursor. It runs in its own task and follows the
//! conversations it names, so their notices reach this gateway.

use super::answers::unavailable;
use super::diffusion::window;
use crate::registry::Link;
use crate::state::Shared;
use seqline_core::input::quote;
use seqline_core::protocol::{ConvCursor, ConvHead, ErrorCode, ServerFrame, MAX_POLL_CONVS, MAX_POLL_WAIT_MS};
use seqline_core::ConversationId;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

fn invalid(req: Option<u64>, message: String) -> ServerFrame {
    ServerFrame::error(req, ErrorCode::InvalidField, message)
}

/// Starts a long-poll in its own task, so the connection keeps serving
/// other frames. `outstanding` is the session's poll: dropping its guard
/// answers it now, and the new one takes its place. Returns the frame
/// refusing the poll, if it is refused.
pub(crate) fn poll(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    outstanding: &mut Option<DropGuard>,
    req: u64,
    convs: Vec<ConvCursor>,
    wait_ms: Option<u64>,
) -> Option<ServerFrame> {
    if convs.len() > MAX_POLL_CONVS {
        let e = invalid(
            Some(req),
            format!(
                "a poll names at most {MAX_POLL_CONVS} conversations, not {}",
                convs.len()
            ),
        );
        return Some(e);
    }
    if let Some(w) = wait_ms.filter(|w| *w > MAX_POLL_WAIT_MS) {
        let e = invalid(Some(req), format!("wait_ms {w} is over the maximum {MAX_POLL_WAIT_MS}"));
        return Some(e);
    }
    let mut seen = HashSet::with_capacity(convs.len());
    if let Some(dup) = convs.iter().find(|c| !seen.insert(&c.conv)) {
        let text = format!("conversation {} is named twice", quote(dup.conv.as_str()));
        let e = ServerFrame::conv_error(Some(req), &dup.conv, ErrorCode::InvalidField, text);
        return Some(e);
    }
    let wait = wait_ms.map_or(shared.config.poll_wait, Duration::from_millis);
    // A new poll answers the one before it (now) and replaces its follows.
    let superseded = CancellationToken::new();
    *outstanding = Some(superseded.clone().drop_guard());
    let (s, l) = (Arc::clone(shared), Arc::clone(link));
    shared.tracker.spawn(run_poll(s, l, req, convs, wait, superseded));
    None
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
                return shared.registry.answer(&link, e);
            }
            Err(e) => return shared.registry.answer(&link, unavailable(Some(req), &e)),
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
    shared.reads.follows.set(&link, &names).await;
    for c in &open {
        match shared.reads.head(&c.conv).await {
            Ok(h) => shared.reads.learned(&c.conv, h.unwrap_or(0)),
            Err(e) => return shared.registry.answer(&link, unavailable(Some(req), &e)),
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
                Err(e) => return shared.registry.answer(&link, unavailable(Some(req), &e)),
            }
        }
    };
    shared.metrics.polls_answered.inc();
    shared.registry.answer(&link, ServerFrame::Polled { req, advanced });
}
