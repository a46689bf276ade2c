//! How a connection ends: the WebSocket close codes the gateway uses, the
//! reasons several places close with, and the mapping of socket errors.

use crate::metrics::Metrics;
use seqline_core::protocol::ErrorCode;
use tokio_tungstenite::tungstenite;

/// WebSocket close codes the gateway uses.
pub(crate) mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Why a connection that floods control frames is closed, before `hello`
/// as in the session.
pub(crate) const CONTROL_FLOOD: &str = "too many WebSocket pings";

/// Why a connection that does not read fast enough is closed (1008).
pub(crate) const TOO_SLOW: &str = "too slow: reconnect and sync";

/// How a connection ends.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Send a close frame with this code and reason.
    Close(u16, &'static str),
    /// The socket is gone or unusable: just drop it.
    Gone,
}

/// Maps a socket error to how the connection ends: the protocol layer's own
/// refusals get their close code.
pub(crate) fn socket_error(metrics: &Metrics, e: axum::Error) -> Exit {
    match e.into_inner().downcast::<tungstenite::Error>().map(|b| *b) {
        Ok(tungstenite::Error::Utf8(_)) => {
            metrics.error(ErrorCode::InvalidUtf8);
            Exit::Close(code::INVALID_DATA, "text frames must be UTF-8")
        }
        Ok(tungstenite::Error::Capacity(_)) => {
            metrics.error(ErrorCode::TooLarge);
            Exit::Close(code::TOO_BIG, "frame too large")
        }
        Ok(tungstenite::Error::Protocol(_)) => Exit::Close(code::PROTOCOL, "protocol error"),
        _ => Exit::Gone,
    }
}
