//! `redis` errors become port errors here, their text kept.

use redis::{ErrorKind, RedisError};
use seqline_core::Error;

/// Maps a driver error: a reply of the wrong shape is corruption, a bad URL
/// or configuration is a configuration error, everything else (refused or
/// dropped connections, timeouts, a server that is loading, read-only or out
/// of memory) is unavailability the caller may retry.
pub(crate) fn port_error(what: &str, e: RedisError) -> Error {
    let text = format!("redis {what}: {e}");
    match e.kind() {
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => Error::Corrupt(text),
        // A wrong password or user does not heal by retrying: say so once.
        ErrorKind::InvalidClientConfig | ErrorKind::AuthenticationFailed => Error::Config(text),
        _ => Error::Unavailable(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kinds() {
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(port_error("lookup", io), Error::Unavailable(t) if t.contains("refused")));
        let shape = RedisError::from((ErrorKind::UnexpectedReturnType, "not a map"));
        assert!(matches!(port_error("lookup", shape), Error::Corrupt(_)));
        let config = RedisError::from((ErrorKind::InvalidClientConfig, "bad url"));
        assert!(matches!(port_error("connect", config), Error::Config(_)));
    }
}
