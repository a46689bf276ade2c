//! The gateway's error type, grouped by what the caller can do.

/// Why the gateway could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong; fix it and start again.
    #[error("configuration error: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Accepting or serving connections failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A port (log, store, presence) failed in a way the gateway cannot ride out.
    #[error(transparent)]
    Port(#[from] seqline_core::Error),
}

impl Error {
    /// Whether starting again later may succeed (a backend that was down).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) => false,
            Error::Bind { .. } | Error::Io(_) => true,
            Error::Port(e) => e.is_retryable(),
        }
    }
}
