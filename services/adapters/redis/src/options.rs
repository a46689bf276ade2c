//! [`RedisOptions`]: where the presence lives and how long to wait for it.

use std::path::PathBuf;
use std::time::Duration;

/// How [`crate::RedisPresence`] connects.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://…` for TLS
    /// (the server's certificate checked against the system's roots, or
    /// `tls_ca`).
    pub url: String,
    /// PEM file of the CA that signed the server's certificate, for a
    /// `rediss://` server whose CA is not among the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// The password, taken instead of the URL's (e.g. read from a secret
    /// file, so it appears in no URL).
    pub password: Option<String>,
    /// Namespace of the keys (`presence:<prefix>:<user>`), so deployments or
    /// tests can share one server. 1-64 of `A-Z a-z 0-9 _ - .`.
    pub key_prefix: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command (or pipeline) may wait for its reply before it
    /// fails as unavailable.
    pub response_timeout: Duration,
}

/// Never prints a password (the URL's is masked too).
impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match self.url.split_once('@') {
            Some((userinfo, rest)) => match userinfo.rsplit_once(':') {
                Some((user, _)) => format!("{user}:***@{rest}"),
                None => self.url.clone(),
            },
            None => self.url.clone(),
        };
        f.debug_struct("RedisOptions")
            .field("url", &url)
            .field("tls_ca", &self.tls_ca)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Defaults for `url`: prefix `seqline`, 1 s to connect, 2 s per reply.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_ca: None,
            password: None,
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
        if !(self.url.starts_with("redis://")
            || self.url.starts_with("rediss://")
            || self.url.starts_with("redis+unix://"))
        {
            return Err(seqline_core::Error::Config(
                "a redis URL must start with redis:// or rediss:// (TLS)".into(),
            ));
        }
        if self.tls_ca.is_some() && !self.tls() {
            return Err(seqline_core::Error::Config(
                "a redis TLS CA file needs a rediss:// URL".into(),
            ));
        }
        Ok(())
    }

    /// The client for these options: TLS with `tls_ca` as the only root
    /// when it is set.
    pub(crate) fn client(&self) -> seqline_core::Result<redis::Client> {
        use redis::IntoConnectionInfo;
        let mut info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| crate::error::port_error("URL", e))?;
        if let Some(password) = &self.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let Some(ca) = &self.tls_ca else {
            return redis::Client::open(info).map_err(|e| crate::error::port_error("URL", e));
        };
        let root = std::fs::read(ca)
            .map_err(|e| seqline_core::Error::Config(format!("reading the redis TLS CA file {}: {e}", ca.display())))?;
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root),
        };
        redis::Client::build_with_tls(info, certs).map_err(|e| crate::error::port_error("TLS setup", e))
    }

    /// Whether the link is TLS.
    pub fn tls(&self) -> bool {
        self.url.starts_with("rediss://")
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
        assert!(RedisOptions::new("rediss://h:1").validate().is_ok());
        assert!(RedisOptions::new("http://h:1").validate().is_err());
        let mut plain_with_ca = RedisOptions::new("redis://h:1");
        plain_with_ca.tls_ca = Some("ca.pem".into());
        assert!(plain_with_ca.validate().is_err());
        let mut o = RedisOptions::new("redis://h:1");
        o.response_timeout = Duration::ZERO;
        assert!(o.validate().is_err());
    }

    #[test]
    fn debug_output_hides_passwords() {
        let mut o = RedisOptions::new("rediss://app:hunter2@h:6380/0");
        o.password = Some("hunter3".into());
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
        assert!(text.contains("rediss://app:***@h:6380/0"), "{text}");
    }
}
