//! [`ScyllaOptions`]: where the store lives and how it is laid out.

use seqline_core::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Consistency of reads and writes (LWTs use the matching serial level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConsistencyLevel {
    /// A quorum of the local datacenter's replicas (serial: `LOCAL_SERIAL`).
    #[default]
    LocalQuorum,
    /// A quorum of all replicas (serial: `SERIAL`).
    Quorum,
    /// Every replica (serial: `SERIAL`); for tests on one node.
    All,
}

/// How [`crate::ScyllaStore`] connects and lays out its data.
#[derive(Clone, PartialEq, Eq)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// User name for password authentication (`PasswordAuthenticator`);
    /// none: the server must allow anyone.
    pub user: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// Talk TLS to every node, checking its certificate chain against the
    /// system's roots or `tls_ca`.
    pub tls: bool,
    /// PEM file of the CA that signed the nodes' certificates (implies TLS).
    pub tls_ca: Option<PathBuf>,
    /// Keyspace, created if missing (a CQL identifier: 1-48 of `a-z 0-9 _`).
    pub keyspace: String,
    /// Replication factor per datacenter when the keyspace is created.
    pub replication_factor: u32,
    /// Consistency of every statement.
    pub consistency: ConsistencyLevel,
    /// Sequence numbers per partition of `messages` and `timelines`. Fixed
    /// when the keyspace is created; a store configured otherwise refuses to
    /// start.
    pub bucket_size: u64,
    /// Create the keyspace with `tablets = {'enabled': false}` where the
    /// server knows tablets (ScyllaDB versions without LWT on tablets need
    /// it). `connect` asks the server: Cassandra and ScyllaDB before tablets
    /// reject the option, so they never get it.
    pub disable_tablets: bool,
    /// Most statements in flight for one batch.
    pub max_in_flight: usize,
    /// Client-side timeout of one request.
    pub request_timeout: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            user: None,
            password: None,
            tls: false,
            tls_ca: None,
            keyspace: "seqline".into(),
            replication_factor: 3,
            consistency: ConsistencyLevel::LocalQuorum,
            bucket_size: 1000,
            disable_tablets: true,
            max_in_flight: 32,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ScyllaOptions {
    /// Options from `scylla://[user:password@]host:port[,host:port…][/keyspace]`,
    /// the rest default. The user and password are percent-decoded.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix("scylla://")
            .ok_or_else(|| Error::Config("the store URI must start with scylla://".into()))?;
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (hosts, keyspace) = rest.split_once('/').unwrap_or((rest, ""));
        let nodes: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_string).collect();
        if nodes.is_empty() {
            return Err(Error::Config(format!("the store URI names no node ({hosts:?})")));
        }
        let mut options = Self {
            nodes,
            ..Self::default()
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            options.user = Some(decode(user)?);
            options.password = Some(decode(password)?);
        }
        if !keyspace.is_empty() {
            options.keyspace = keyspace.to_string();
        }
        options.validate()?;
        Ok(options)
    }

    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Config(format!("scylla options: {why}")));
        let k = &self.keyspace;
        let ident = !k.is_empty()
            && k.len() <= 48
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ident {
            return bad(format!(
                "keyspace {k:?} must be 1-48 of a-z 0-9 _, starting with a letter"
            ));
        }
        if self.nodes.is_empty() {
            return bad("no contact point".into());
        }
        if self.replication_factor == 0 {
            return bad("replication factor must be at least 1".into());
        }
        if self.bucket_size == 0 || self.bucket_size > i64::MAX as u64 {
            return bad(format!("bucket size {} is out of range", self.bucket_size));
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1".into());
        }
        if self.password.is_some() && self.user.as_deref().is_none_or(str::is_empty) {
            return bad("a password needs a user name".into());
        }
        Ok(())
    }

    /// Whether the links are TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls || self.tls_ca.is_some()
    }
}

/// `%XX` escapes of a URI's user or password, decoded.
fn decode(text: &str) -> Result<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|t| t.into_owned())
        .map_err(|_| Error::Config("the store URI's user or password is not UTF-8 once decoded".into()))
}

/// Never prints the password.
impl std::fmt::Debug for ScyllaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaOptions")
            .field("nodes", &self.nodes)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .field("keyspace", &self.keyspace)
            .field("replication_factor", &self.replication_factor)
            .field("consistency", &self.consistency)
            .field("bucket_size", &self.bucket_size)
            .field("disable_tablets", &self.disable_tablets)
            .field("max_in_flight", &self.max_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        let o = ScyllaOptions::from_uri("scylla://a:9042,b:9042/chat_1").unwrap();
        assert_eq!(o.nodes, vec!["a:9042", "b:9042"]);
        assert_eq!(o.keyspace, "chat_1");
        assert_eq!(o.consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(ScyllaOptions::from_uri("scylla://a:9042").unwrap().keyspace, "seqline");
        assert!(ScyllaOptions::from_uri("cql://a").is_err());
        assert!(ScyllaOptions::from_uri("scylla:///ks").is_err());
        assert!(ScyllaOptions::from_uri("scylla://a/Bad-Name").is_err());
    }

    #[test]
    fn credentials_come_from_the_uri_decoded_and_never_print() {
        let o = ScyllaOptions::from_uri("scylla://app:p%40ss%2Fw0rd@a:9042,b:9042/chat").unwrap();
        assert_eq!(
            (o.user.as_deref(), o.password.as_deref()),
            (Some("app"), Some("p@ss/w0rd"))
        );
        assert_eq!((o.nodes.len(), o.keyspace.as_str()), (2, "chat"));
        let text = format!("{o:?}");
        assert!(!text.contains("p@ss") && text.contains("***"), "{text}");
        assert!(
            ScyllaOptions::from_uri("scylla://:pw@a").is_err(),
            "a password without a user"
        );
        let o = ScyllaOptions {
            tls_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(o.uses_tls(), "a CA file means TLS");
    }

    #[test]
    fn validates() {
        assert!(ScyllaOptions::default().validate().is_ok());
        for broken in [
            ScyllaOptions {
                bucket_size: 0,
                ..Default::default()
            },
            ScyllaOptions {
                replication_factor: 0,
                ..Default::default()
            },
            ScyllaOptions {
                keyspace: "x; DROP".into(),
                ..Default::default()
            },
        ] {
            assert!(matches!(broken.validate(), Err(Error::Config(_))));
        }
    }
}
