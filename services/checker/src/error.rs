//! The one error type of the checker crate.

use std::path::PathBuf;

/// Reading or writing a history failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// The file could not be opened, read or written.
    #[error("history file {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid history event.
    #[error("history file {path}, line {line}: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// An event could not be encoded.
    #[error("cannot encode a history event: {0}")]
    Encode(#[source] serde_json::Error),
}

impl CheckerError {
    /// Whether trying again may succeed (I/O only; bad lines stay bad).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CheckerError::Io { .. })
    }
}

/// Result with the checker error.
pub type Result<T, E = CheckerError> = std::result::Result<T, E>;
