//! The error type every port returns, grouped by what the caller can do.

/// An error from a port (log, store, presence) or from validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend is unreachable or overloaded; retrying later may succeed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A conditional write lost: another writer owns this head now.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The input is invalid; retrying the same input will fail again.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Stored data could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The configuration is wrong.
    #[error("configuration error: {0}")]
    Config(String),
    /// The service is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

impl Error {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// Result with the port error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
