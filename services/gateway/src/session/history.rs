//! `history`: pages of a conversation's messages for one of its members,
//! straight from the store.

use super::answers::{page_limit, unavailable};
use super::epoch;
use crate::registry::Link;
use crate::state::Shared;
use seqline_core::model::{fit_budget, Message};
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::{ConvSeq, ConversationId, Epoch};

/// A `history` frame, as the session hands it over.
pub(crate) struct HistoryRequest {
    pub req: u64,
    pub conv: ConversationId,
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub limit: Option<u32>,
    /// The epoch the device's copy belongs to.
    pub known: Option<Epoch>,
}

/// Answers `history`: a page of a conversation the user is a member of,
/// before or after a conv_seq (newest first without either).
pub(crate) async fn history(shared: &Shared, link: &Link, request: HistoryRequest) -> ServerFrame {
    let HistoryRequest {
        req,
        conv,
        before,
        after,
        limit,
        known,
    } = request;
    if before.is_some() && after.is_some() {
        return ServerFrame::error(Some(req), ErrorCode::InvalidField, "give before or after, not both");
    }
    let limit = match page_limit(&shared.config, req, limit) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let store = &shared.ports.store;
    let epoch = match epoch::check(store.as_ref(), req, known).await {
        Ok(epoch) => epoch,
        Err(e) => return e,
    };
    let not_member = || {
        ServerFrame::error(
            Some(req),
            ErrorCode::NotMember,
            "not a member of this conversation, or it does not exist",
        )
    };
    // A missing conversation and one the user is not in get one answer.
    match store.member_role(&conv, &link.key.user).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_member(),
        Err(e) => return unavailable(Some(req), &e),
    }
    let head = match store.conversation_head(&conv).await {
        Ok(Some(h)) => h,
        Ok(None) => return not_member(),
        Err(e) => return unavailable(Some(req), &e),
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
    match page {
        Ok(mut messages) => {
            let budget = shared.config.max_page_bytes;
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
    }
}
