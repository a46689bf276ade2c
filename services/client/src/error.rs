//! The one error type of the SDK, grouped by what the caller can do.

use seqline_core::ids::ClientMsgId;
use seqline_core::model::RefusalCode;
use seqline_core::protocol::ErrorCode;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection dropped or could not be made; retrying may succeed.
    #[error("not connected: {0}")]
    Disconnected(String),
    /// No answer within the request timeout; retrying may succeed.
    #[error("the request timed out")]
    Timeout,
    /// The server answered with an error frame.
    #[error("the server refused the request ({code:?}): {message}")]
    Server {
        /// Stable code.
        code: ErrorCode,
        /// For humans.
        message: String,
    },
    /// The token was refused; a new one is needed.
    #[error("the server refused the token ({code:?}): {message}")]
    Auth {
        /// Stable code.
        code: ErrorCode,
        /// For humans.
        message: String,
    },
    /// An HTTP API call failed with a status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The status code.
        status: u16,
        /// The answer's body (the server's error object).
        body: String,
    },
    /// The server said something this SDK cannot read.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A configuration value is wrong (bad URL, ...).
    #[error("configuration error: {0}")]
    Config(String),
    /// The cursor store failed.
    #[error("cursor store: {0}")]
    Cursor(#[from] std::io::Error),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// The sequencer refused a batch: none of its commands was sequenced.
    #[error("the batch was refused at command {index} ({code:?}): {message}")]
    BatchRefused {
        /// The index of the command that failed.
        index: usize,
        /// Its id.
        id: ClientMsgId,
        /// Why, as a code (`out_of_order`: resend the same batch later).
        code: RefusalCode,
        /// Why, for humans.
        message: String,
    },
    /// Earlier messages to the conversation are still waiting for their
    /// acks, or another batch is: a batch goes after them.
    #[error("{0}")]
    Busy(String),
}

impl ClientError {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Disconnected(_) | ClientError::Timeout | ClientError::Busy(_) => true,
            ClientError::BatchRefused { code, .. } => *code == RefusalCode::OutOfOrder,
            ClientError::Server { code, .. } => {
                matches!(code, ErrorCode::Unavailable | ErrorCode::RateLimited)
            }
            ClientError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Result with the SDK error.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
