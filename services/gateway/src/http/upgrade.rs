//! `GET /v1/ws`: the checks made before a connection becomes a WebSocket.

use crate::http::ApiError;
use crate::session::connect;
use crate::state::{NoSlot, Shared};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use seqline_core::protocol::ErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes read from a connection's socket at once, and the read buffer each
/// connection holds while idle.
const READ_BUFFER_BYTES: usize = 1024;

/// `GET /v1/ws`: refuses disallowed origins (403), a full gateway and an
/// address over its cap (503) before upgrading.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status();
            return ApiError::new(status, ErrorCode::BadFrame, rejection.body_text()).into_response();
        }
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = &shared.config.allowed_origins;
        let ok = allowed.is_empty() || origin.to_str().is_ok_and(|o| allowed.iter().any(|a| a == o));
        if !ok {
            shared.metrics.error(ErrorCode::Forbidden);
            return ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this origin is not allowed",
            )
            .into_response();
        }
    }
    if shared.stop.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the gateway is stopping",
        )
        .into_response();
    }
    let slot = match shared.take_slot(peer.ip()) {
        Ok(slot) => slot,
        Err(full) => {
            shared.metrics.error(ErrorCode::Unavailable);
            let why = match full {
                NoSlot::Gateway => "too many connections",
                NoSlot::Address => "too many connections from this address",
            };
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, why).into_response();
        }
    };
    let token = shared.tracker.token();
    let max = shared.config.max_frame_bytes;
    // Small buffers: chat frames are small, and the read buffer is
    // allocated (and zeroed) up front for every connection, idle or not:
    // tungstenite's 128 KiB default would cost 128 KiB per connection. A
    // larger frame still arrives whole (the buffer grows for it, in reads
    // of this size). The write buffer grows only as frames are written.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(8 * 1024)
        // One outgoing frame must fit: a page of `max_page_bytes` plus its
        // last entry (one message is bounded by the body and member limits).
        .max_write_buffer_size(
            max.saturating_mul(4)
                .max(shared.config.max_page_bytes.saturating_mul(4)),
        )
        // The connection's future is the task's, with nothing around it:
        // each wrapping async block would keep its own copy of the socket.
        .on_upgrade(move |socket| connect::run(shared, socket, slot, token))
}
