//! Errors of the embedded engine, mapped to the port error at the boundary.

use seqline_core::Error;

/// What can go wrong inside the embedded adapters.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// fjall reported an error (I/O, poisoned after a failed fsync, ...).
    #[error("storage engine error: {0}")]
    Fjall(#[from] fjall::Error),
    /// A stored value or key could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A value could not be encoded.
    #[error("could not encode a value: {0}")]
    Encode(String),
    /// A background storage task panicked or was cancelled.
    #[error("a storage task failed: {0}")]
    Task(String),
    /// An earlier fsync failed: nothing written since can be made durable.
    #[error("an fsync failed, the engine refuses further writes: {0}")]
    SyncFailed(String),
    /// Stored settings disagree with the configured ones.
    #[error("configuration does not match stored data: {0}")]
    Mismatch(String),
    /// A port-level refusal (fenced, invalid, not found) raised inside a
    /// storage task, passed through unchanged.
    #[error("{0}")]
    Port(Error),
    /// The engine was closed.
    #[error("the storage engine is closed")]
    Closed,
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        let text = e.to_string();
        match e {
            EngineError::Fjall(inner) => match inner {
                fjall::Error::Io(_) | fjall::Error::Poisoned | fjall::Error::Locked | fjall::Error::KeyspaceDeleted => {
                    Error::Unavailable(text)
                }
                fjall::Error::Storage(fjall::LsmError::Io(_)) => Error::Unavailable(text),
                _ => Error::Corrupt(text),
            },
            EngineError::Corrupt(_) => Error::Corrupt(text),
            EngineError::Encode(_) => Error::Invalid(text),
            EngineError::Task(_) | EngineError::SyncFailed(_) => Error::Unavailable(text),
            EngineError::Mismatch(_) => Error::Config(text),
            EngineError::Port(e) => e,
            EngineError::Closed => Error::ShuttingDown,
        }
    }
}

/// Locks a std mutex, ignoring poisoning: the guarded data stays consistent
/// because no critical section here leaves it half-updated on panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
