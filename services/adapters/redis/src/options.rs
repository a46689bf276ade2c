//! [`RedisOptions`]: where the presence lives and how long to wait for it.

use std::time::Duration;

/// How [`crate::RedisPresence`] connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://host:port[/db]` (no TLS).
    pub url: String,
    /// Namespace of the keys (`presence:<prefix>:<user>`), so deployments or
    /// tests can share one server. 1-64 of `A-Z a-z 0-9 _ - .`.
    pub key_prefix: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command (or pipeline) may wait for its reply before it
    /// fails as unavailable.
    pub response_timeout: Duration,
}

impl RedisOptions {
    /// Defaults for `url`: prefix `seqline`, 1 s to connect, 2 s per reply.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "seqline".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }

    /// The same options with another key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Checks the fields that can be checked before connecting.
    pub(crate) fn validate(&self) -> seqline_core::Result<()> {
        let p = &self.key_prefix;
        let valid = !p.is_empty()
            && p.len() <= 64
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(seqline_core::Error::Config(format!(
                "redis key prefix {p:?} must be 1-64 characters of A-Z a-z 0-9 _ - ."
            )));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(seqline_core::Error::Config("redis timeouts must be above zero".into()));
        }
        if !(self.url.starts_with("redis://") || self.url.starts_with("redis+unix://")) {
            return Err(seqline_core::Error::Config(format!(
                "redis URL {:?} must start with redis:// (TLS is not supported)",
                self.url
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_prefix_timeouts_and_scheme() {
        assert!(RedisOptions::new("redis://127.0.0.1:6379").validate().is_ok());
        assert!(RedisOptions::new("redis://h:1").with_prefix("").validate().is_err());
        assert!(RedisOptions::new("redis://h:1").with_prefix("a:b").validate().is_err());
        assert!(RedisOptions::new("rediss://h:1").validate().is_err());
        let mut o = RedisOptions::new("redis://h:1");
        o.response_timeout = Duration::ZERO;
        assert!(o.validate().is_err());
    }
}
