//! Answers the request handlers share: the store being away, and a page's
//! size.

use crate::config::GatewayConfig;
use seqline_core::protocol::{ErrorCode, ServerFrame};
use tracing::warn;

pub(crate) fn unavailable(req: Option<u64>, e: &seqline_core::Error) -> ServerFrame {
    warn!(error = %e, "a store read failed");
    ServerFrame::error(req, ErrorCode::Unavailable, "the store is unavailable; retry later")
}

/// The page size a request asks for, within `max_page`, or the frame that
/// refuses it.
#[allow(clippy::result_large_err)]
pub(crate) fn page_limit(config: &GatewayConfig, req: u64, limit: Option<u32>) -> Result<usize, ServerFrame> {
    match limit {
        Some(0) => Err(ServerFrame::error(
            Some(req),
            ErrorCode::InvalidField,
            "limit must be at least 1",
        )),
        Some(n) => Ok(n.min(config.max_page) as usize),
        None => Ok(config.max_page as usize),
    }
}
