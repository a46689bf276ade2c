//! The one place where backends are chosen, by URL scheme:
//!
//! | port | URL |
//! |---|---|
//! | log | `embedded://DIR`, `kafka://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT…][?prefix=seqline.&replication=3&partitions=8&gateway_partitions=1&session_timeout=10s&heartbeat=3s&max_poll_interval=300s&message_timeout=30s&linger=0ms&fetch_wait=20ms&mechanism=SCRAM-SHA-512&tls=true&ca=CA.pem&password_file=PATH]` |
//! | store | `embedded://DIR`, `scylla://[USER:PASSWORD@]HOST:PORT[,…][/KEYSPACE][?rf=3&tls=true&ca=CA.pem&password_file=PATH]` |
//! | presence | `memory://`, `redis[s]://[[USER]:PASSWORD@]HOST:PORT[/DB][?prefix=seqline&ca=CA.pem&password_file=PATH]` |
//!
//! Log and store URLs naming the same `embedded://` directory share one
//! engine (one process only).

use crate::config::PortsConfig;
use anyhow::{bail, Context};
use seqline_core::ports::{Log, Presence, Store};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, MemoryPresence};
use std::path::PathBuf;
use std::sync::Arc;

/// The opened ports, and what must be closed at the end.
pub struct Opened {
    pub log: Arc<dyn Log>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    engines: Vec<Arc<EmbeddedEngine>>,
}

impl Opened {
    /// Flushes and closes what was opened.
    pub async fn close(self) {
        drop(self.log);
        drop(self.store);
        for engine in self.engines {
            if let Err(e) = engine.sync().await {
                tracing::warn!(error = %e, "final sync failed");
            }
        }
    }
}

/// The contents of a secret file (a mounted Kubernetes or Docker secret),
/// without the final newline editors add.
fn read_secret(path: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the secret file {path}"))?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string())
}

/// `scheme://rest?k=v&k=v` → (rest, [(k, v)]).
fn split_url<'a>(url: &'a str, scheme: &str) -> Option<(&'a str, Vec<(&'a str, &'a str)>)> {
    let rest = url.strip_prefix(scheme)?.strip_prefix("://")?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    Some((main, params))
}

fn scylla_params(options: &mut seqline_scylla::ScyllaOptions, params: &[(&str, &str)]) -> anyhow::Result<()> {
    for (k, v) in params {
        match *k {
            "rf" => options.replication_factor = v.parse().context("rf must be a number")?,
            "tls" => options.tls = v.parse().context("tls must be true or false")?,
            "ca" => options.tls_ca = Some(PathBuf::from(v)),
            "password_file" => options.password = Some(read_secret(v)?),
            other => bail!("unknown scylla parameter {other:?} (rf, tls, ca, password_file)"),
        }
    }
    options.validate()?;
    Ok(())
}

fn redis_options(base: &str, params: &[(&str, &str)]) -> anyhow::Result<seqline_redis::RedisOptions> {
    let mut options = seqline_redis::RedisOptions::new(base);
    for (k, v) in params {
        match *k {
            "prefix" => options.key_prefix = v.to_string(),
            "ca" => options.tls_ca = Some(PathBuf::from(v)),
            "password_file" => options.password = Some(read_secret(v)?),
            other => bail!("unknown redis parameter {other:?} (prefix, ca, password_file)"),
        }
    }
    Ok(options)
}

/// `user:password@rest` → (Some((user, password)), rest), percent-decoded.
fn userinfo(main: &str) -> anyhow::Result<(Option<(String, String)>, &str)> {
    let Some((info, rest)) = main.rsplit_once('@') else {
        return Ok((None, main));
    };
    let decode = |t: &str| {
        percent_encoding::percent_decode_str(t)
            .decode_utf8()
            .map(|t| t.into_owned())
            .context("the URL's user or password is not UTF-8 once decoded")
    };
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    Ok((Some((decode(user)?, decode(password)?)), rest))
}

fn kafka_options(main: &str, params: &[(&str, &str)]) -> anyhow::Result<seqline_kafka::KafkaOptions> {
    let (login, hosts) = userinfo(main)?;
    let mut o = seqline_kafka::KafkaOptions {
        bootstrap: hosts.to_string(),
        ..Default::default()
    };
    let (mut tls, mut mechanism, mut password) = (None, None, login.as_ref().map(|(_, p)| p.clone()));
    for (k, v) in params {
        match *k {
            "tls" => tls = Some(v.parse::<bool>().context("tls must be true or false")?),
            "ca" => o.security.ca = Some(PathBuf::from(v)),
            "mechanism" => mechanism = Some(seqline_kafka::SaslMechanism::parse(v)?),
            "password_file" => password = Some(read_secret(v)?),
            "prefix" => o.topic_prefix = v.to_string(),
            "replication" => o.replication_factor = v.parse().context("replication must be a number")?,
            "partitions" => {
                let n: u32 = v.parse().context("partitions must be a number")?;
                (o.inbound, o.deliveries, o.user_events, o.conv_events, o.priority_events) = (n, n, n, n, n);
            }
            "session_timeout" => o.session_timeout = seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?,
            "client_id" => o.client_id = v.to_string(),
            "fetch_wait" => o.fetch_wait = seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?,
            "max_poll_interval" => {
                o.max_poll_interval = seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?;
            }
            "heartbeat" => o.heartbeat = Some(seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?),
            "message_timeout" => {
                o.message_timeout = seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?;
            }
            "linger" => o.linger = seqline_core::duration::parse(v).map_err(anyhow::Error::msg)?,
            "gateway_partitions" => o.gateway = v.parse().context("gateway_partitions must be a number")?,
            other => bail!(
                "unknown kafka:// parameter {other:?} (prefix, replication, partitions, gateway_partitions, \
                 session_timeout, heartbeat, max_poll_interval, message_timeout, linger, fetch_wait, client_id, \
                 tls, ca, mechanism, password_file)"
            ),
        }
    }
    match (login, mechanism) {
        (Some((username, _)), Some(mechanism)) => {
            o.security.sasl = Some(seqline_kafka::Sasl {
                mechanism,
                username,
                password: password.unwrap_or_default(),
            });
        }
        (Some(_), None) => bail!("a kafka URL with a user needs mechanism=PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        (None, Some(_)) => bail!("a kafka SASL mechanism needs a user: kafka://USER[:PASSWORD]@HOSTS"),
        (None, None) if password.is_some() => bail!("a kafka password_file needs a user: kafka://USER@HOSTS"),
        (None, None) => {}
    }
    // A login goes over TLS unless the URL says tls=false.
    o.security.tls = tls.unwrap_or(o.security.sasl.is_some() || o.security.ca.is_some());
    Ok(o)
}

/// Opens the backends named in `cfg`.
pub async fn open(cfg: &PortsConfig) -> anyhow::Result<Opened> {
    let mut engines: Vec<(PathBuf, Arc<EmbeddedEngine>)> = Vec::new();
    let mut engine_for = |dir: &str| -> anyhow::Result<Arc<EmbeddedEngine>> {
        let dir = PathBuf::from(dir);
        if let Some((_, e)) = engines.iter().find(|(d, _)| *d == dir) {
            return Ok(Arc::clone(e));
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating data directory {}", dir.display()))?;
        let e =
            EmbeddedEngine::open(&dir).with_context(|| format!("opening the embedded engine in {}", dir.display()))?;
        engines.push((dir, Arc::clone(&e)));
        Ok(e)
    };
    let log: Arc<dyn Log> = if let Some((dir, _)) = split_url(&cfg.log, "embedded") {
        Arc::new(EmbeddedLog::open(engine_for(dir)?, Default::default())?)
    } else if let Some((hosts, params)) = split_url(&cfg.log, "kafka") {
        let options = kafka_options(hosts, &params).context("[ports] log")?;
        Arc::new(
            seqline_kafka::KafkaLog::connect(options)
                .await
                .context("connecting to Kafka")?,
        )
    } else {
        bail!(
            "[ports] log = {:?}: unsupported scheme (embedded://DIR or kafka://HOSTS)",
            cfg.log
        )
    };
    let store: Arc<dyn Store> = if let Some((dir, _)) = split_url(&cfg.store, "embedded") {
        Arc::new(EmbeddedStore::open(engine_for(dir)?)?)
    } else if let Some((_, params)) = split_url(&cfg.store, "scylla") {
        let base = cfg.store.split('?').next().unwrap_or(&cfg.store);
        let mut options = seqline_scylla::ScyllaOptions::from_uri(base).context("[ports] store")?;
        scylla_params(&mut options, &params).context("[ports] store")?;
        Arc::new(
            seqline_scylla::ScyllaStore::connect(options)
                .await
                .context("connecting to ScyllaDB")?,
        )
    } else {
        bail!(
            "[ports] store = {:?}: unsupported scheme (embedded://DIR or scylla://HOSTS/KEYSPACE)",
            cfg.store
        )
    };
    let presence: Arc<dyn Presence> = if cfg.presence == "memory://" {
        Arc::new(MemoryPresence::new())
    } else if let Some((_, params)) = split_url(&cfg.presence, "redis").or_else(|| split_url(&cfg.presence, "rediss")) {
        let base = cfg.presence.split('?').next().unwrap_or(&cfg.presence);
        let options = redis_options(base, &params).context("[ports] presence")?;
        Arc::new(
            seqline_redis::RedisPresence::connect(options)
                .await
                .context("connecting to Redis")?,
        )
    } else {
        bail!(
            "[ports] presence = {:?}: unsupported scheme (memory://, redis://HOST:PORT or rediss://HOST:PORT)",
            cfg.presence
        )
    };
    Ok(Opened {
        log,
        store,
        presence,
        engines: engines.into_iter().map(|(_, e)| e).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_parts_and_parameters() {
        let (hosts, params) = split_url("kafka://a:1,b:2?prefix=x.&partitions=4", "kafka").unwrap();
        assert_eq!(hosts, "a:1,b:2");
        assert_eq!(params, vec![("prefix", "x."), ("partitions", "4")]);
        let o = kafka_options(hosts, &params).unwrap();
        assert_eq!((o.topic_prefix.as_str(), o.inbound, o.user_events), ("x.", 4, 4));
        assert!(kafka_options("a:1", &[("bogus", "1")]).is_err());
        let o = kafka_options("a:1", &[("session_timeout", "30s"), ("max_poll_interval", "60s")]).unwrap();
        assert_eq!(o.max_poll_interval, std::time::Duration::from_secs(60));
        let o = kafka_options(
            "a:1",
            &[
                ("heartbeat", "2s"),
                ("message_timeout", "10s"),
                ("linger", "1ms"),
                ("gateway_partitions", "2"),
            ],
        )
        .unwrap();
        assert_eq!(o.heartbeat, Some(std::time::Duration::from_secs(2)));
        assert_eq!(
            (o.message_timeout.as_secs(), o.linger.as_millis(), o.gateway),
            (10, 1, 2)
        );
        assert!(o.validate().is_ok());
        assert!(split_url("embedded://./data", "kafka").is_none());

        let o = kafka_options("app:p%40ss@k1:9093,k2:9093", &[("mechanism", "scram-sha-512")]).unwrap();
        let sasl = o.security.sasl.as_ref().unwrap();
        assert_eq!((sasl.username.as_str(), sasl.password.as_str()), ("app", "p@ss"));
        assert_eq!(
            (o.bootstrap.as_str(), o.security.protocol()),
            ("k1:9093,k2:9093", "sasl_ssl")
        );
        let o = kafka_options("app:pw@k1:9092", &[("mechanism", "PLAIN"), ("tls", "false")]).unwrap();
        assert_eq!(o.security.protocol(), "sasl_plaintext");
        assert_eq!(kafka_options("k1:9092", &[]).unwrap().security.protocol(), "plaintext");
        assert!(
            kafka_options("app:pw@k1:9092", &[]).is_err(),
            "a user without a mechanism"
        );
        assert!(
            kafka_options("k1:9092", &[("mechanism", "PLAIN")]).is_err(),
            "a mechanism without a user"
        );
        assert!(kafka_options("app@k1:9092", &[("mechanism", "GSSAPI")]).is_err());

        let dir = std::env::temp_dir().join(format!("seqline-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("redis-password");
        std::fs::write(&secret, "pw with spaces\n").unwrap();
        let path = secret.display().to_string();
        let (_, params) = split_url("rediss://r:6380?ca=/etc/ca.pem&password_file=PATH", "rediss").unwrap();
        let params: Vec<_> = params
            .into_iter()
            .map(|(k, v)| (k, if v == "PATH" { path.as_str() } else { v }))
            .collect();
        let o = redis_options("rediss://r:6380", &params).unwrap();
        assert_eq!(
            o.password.as_deref(),
            Some("pw with spaces"),
            "the file's final newline is not the password's"
        );
        assert_eq!(o.tls_ca.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        let e = redis_options("redis://r", &[("password_file", "/nonexistent/pw")]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/pw"), "{e:#}");
        assert!(redis_options("redis://r", &[("tls", "1")]).is_err());

        let mut o = seqline_scylla::ScyllaOptions::from_uri("scylla://app@s1:9042/chat").unwrap();
        scylla_params(&mut o, &[("rf", "1"), ("tls", "true"), ("password_file", &path)]).unwrap();
        assert_eq!(
            (o.user.as_deref(), o.password.as_deref()),
            (Some("app"), Some("pw with spaces"))
        );
        assert!(o.tls && o.replication_factor == 1);
        let mut o = seqline_scylla::ScyllaOptions::from_uri("scylla://s1/chat").unwrap();
        assert!(
            scylla_params(&mut o, &[("password_file", &path)]).is_err(),
            "a password without a user"
        );
        assert!(scylla_params(&mut o, &[("tls", "yes please")]).is_err());
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(split_url("embedded://./data", "embedded").unwrap().0, "./data");
    }
}
