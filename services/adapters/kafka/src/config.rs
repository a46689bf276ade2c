//! [`KafkaOptions`]: where the brokers are, how topics are named and sized,
//! and the client timeouts, with the librdkafka settings derived from them.

use rdkafka::ClientConfig;
use seqline_core::records::Topic;
use seqline_core::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Options of a [`crate::KafkaLog`].
#[derive(Clone)]
pub struct KafkaOptions {
    /// `host:port,host:port` of one or more brokers.
    pub bootstrap: String,
    /// Put before every topic name (`seqline.` gives `seqline.inbound`), so
    /// several deployments or test runs can share a cluster.
    pub topic_prefix: String,
    /// Sent to the brokers as `client.id`.
    pub client_id: String,
    /// Partitions of `inbound`.
    pub inbound: u32,
    /// Partitions of `deliveries`.
    pub deliveries: u32,
    /// Partitions of `user-events`.
    pub user_events: u32,
    /// Partitions of `conv-events`.
    pub conv_events: u32,
    /// Partitions of `priority-events`.
    pub priority_events: u32,
    /// Partitions of each `gw.<id>` and `gw-priority.<id>` topic.
    pub gateway: u32,
    /// Partitions of `dead-letter`.
    pub dead_letter: u32,
    /// Replication factor of the topics this log creates.
    pub replication_factor: u16,
    /// A consumer that sends no heartbeat for this long loses its partitions.
    /// Low values make takeovers and the first assignment fast.
    pub session_timeout: Duration,
    /// How often a consumer heartbeats, which is also how soon it learns of
    /// a rebalance; a third of the session timeout when `None`.
    pub heartbeat: Option<Duration>,
    /// A consumer whose thread has not polled for this long (its worker
    /// is stuck and the record channel full) leaves its group, so another
    /// member takes its partitions over (`max.poll.interval.ms`). At least
    /// the session timeout.
    pub max_poll_interval: Duration,
    /// An append fails if a record is not acknowledged within this time.
    pub message_timeout: Duration,
    /// How long the producer waits to fill a batch (`linger.ms`). Zero by
    /// default: a lone message never waits for company. Under load
    /// librdkafka still batches what accumulates while a request to the
    /// broker is in flight, so throughput needs no linger.
    pub linger: Duration,
    /// Records a consumer fetches ahead of its `poll` calls.
    pub consumer_buffer: usize,
    /// Longest a fetch waits at the broker for new records
    /// (`fetch.wait.max.ms`). Apache Kafka answers a fetch as soon as
    /// data arrives, so this bounds only idle polls; a broker that does not
    /// answer early adds up to this much latency per hop.
    pub fetch_wait: Duration,
    /// How clients authenticate and whether links are encrypted.
    pub security: Security,
    /// Extra librdkafka settings for every client (producer, consumer, admin),
    /// applied last.
    pub extra: Vec<(String, String)>,
}

/// TLS and SASL of every client's links to the brokers (what managed Kafka
/// services ask for). The default is plain text without authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// Encrypt with TLS, checking the brokers' certificates against the
    /// system's roots or `ca`.
    pub tls: bool,
    /// PEM file of the CA that signed the brokers' certificates.
    pub ca: Option<PathBuf>,
    /// Authenticate with SASL.
    pub sasl: Option<Sasl>,
}

/// A SASL login.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// How the password is proven.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// The SASL mechanisms the client speaks (GSSAPI/Kerberos and OAUTHBEARER
/// are not built in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// The password itself, sent over the link: only with TLS in production.
    Plain,
    /// SCRAM with SHA-256: the password never crosses the link.
    ScramSha256,
    /// SCRAM with SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    /// From its Kafka name (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), any case.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(Error::Config(format!(
                "kafka SASL mechanism {name:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            ))),
        }
    }

    /// Its Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Never prints the password.
impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sasl = self
            .sasl
            .as_ref()
            .map(|s| (s.mechanism.name(), s.username.as_str(), "***"));
        f.debug_struct("Security")
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .field("sasl (mechanism, user, password)", &sasl)
            .finish()
    }
}

impl Security {
    /// librdkafka's `security.protocol` for these settings.
    pub fn protocol(&self) -> &'static str {
        match (self.tls || self.ca.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }

    fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol());
        if let Some(ca) = &self.ca {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.name())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
    }

    fn validate(&self) -> Result<()> {
        if let Some(ca) = &self.ca {
            if !ca.is_file() {
                return Err(Error::Config(format!(
                    "kafka TLS CA file {} does not exist",
                    ca.display()
                )));
            }
        }
        if self.sasl.as_ref().is_some_and(|s| s.username.is_empty()) {
            return Err(Error::Config("kafka SASL needs a user name".into()));
        }
        Ok(())
    }
}

impl Default for KafkaOptions {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            topic_prefix: "seqline.".into(),
            client_id: "seqline".into(),
            inbound: 8,
            deliveries: 8,
            user_events: 8,
            conv_events: 8,
            priority_events: 8,
            gateway: 1,
            dead_letter: 1,
            replication_factor: 3,
            session_timeout: Duration::from_secs(10),
            heartbeat: None,
            max_poll_interval: Duration::from_secs(300),
            message_timeout: Duration::from_secs(30),
            linger: Duration::ZERO,
            consumer_buffer: 4096,
            fetch_wait: Duration::from_millis(20),
            security: Security::default(),
            extra: Vec::new(),
        }
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `extra` may hold credentials (sasl.password, ssl.key.password...).
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| match k.contains("password") || k.contains("secret") {
                true => (k.as_str(), "***"),
                false => (k.as_str(), v.as_str()),
            })
            .collect();
        f.debug_struct("KafkaOptions")
            .field("bootstrap", &self.bootstrap)
            .field("topic_prefix", &self.topic_prefix)
            .field("client_id", &self.client_id)
            .field("inbound", &self.inbound)
            .field("deliveries", &self.deliveries)
            .field("user_events", &self.user_events)
            .field("conv_events", &self.conv_events)
            .field("priority_events", &self.priority_events)
            .field("gateway", &self.gateway)
            .field("dead_letter", &self.dead_letter)
            .field("replication_factor", &self.replication_factor)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("message_timeout", &self.message_timeout)
            .field("linger", &self.linger)
            .field("consumer_buffer", &self.consumer_buffer)
            .field("security", &self.security)
            .field("extra", &extra)
            .finish()
    }
}

impl KafkaOptions {
    /// Partitions of `topic` (at least 1).
    pub fn partitions(&self, topic: &Topic) -> u32 {
        let n = match topic {
            Topic::Inbound => self.inbound,
            Topic::Deliveries => self.deliveries,
            Topic::UserEvents => self.user_events,
            Topic::ConvEvents => self.conv_events,
            Topic::PriorityEvents => self.priority_events,
            Topic::Gateway(_) | Topic::GatewayPriority(_) => self.gateway,
            Topic::DeadLetter => self.dead_letter,
        };
        n.max(1)
    }

    /// The name of `topic` on the cluster.
    pub fn topic_name(&self, topic: &Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }

    /// Checks the options before anything connects.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap.trim().is_empty() {
            return Err(Error::Config("kafka bootstrap servers are empty".into()));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !self.topic_prefix.chars().all(legal) {
            return Err(Error::Config(format!(
                "topic prefix {:?} may only use A-Z a-z 0-9 . _ -",
                self.topic_prefix
            )));
        }
        if self.replication_factor == 0 {
            return Err(Error::Config("replication factor must be at least 1".into()));
        }
        if self.linger >= self.message_timeout {
            return Err(Error::Config("linger must be shorter than the message timeout".into()));
        }
        if self.session_timeout < Duration::from_secs(1) {
            return Err(Error::Config("session timeout must be at least 1s".into()));
        }
        if self.heartbeat.is_some_and(|h| h >= self.session_timeout) {
            return Err(Error::Config(
                "heartbeat must be shorter than the session timeout".into(),
            ));
        }
        if self.max_poll_interval < self.session_timeout {
            return Err(Error::Config(
                "max poll interval must be at least the session timeout".into(),
            ));
        }
        self.security.validate()
    }

    /// Settings of every client. A broker that went away is tried again at
    /// least every second (`reconnect.backoff.max.ms`; librdkafka's default
    /// backs off to 10 s, so after a broker restart appends and consumers
    /// would stall up to 10 s more than the outage).
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.client_id)
            .set("reconnect.backoff.max.ms", "1000");
        self.security.apply(&mut config);
        config
    }

    fn finish(&self, mut config: ClientConfig) -> ClientConfig {
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        config
    }

    /// Settings of the producer: idempotent and gapless, `acks=all`, bounded
    /// delivery time.
    ///
    /// Gapless: the timeline writer skips a delivery at or below what it has
    /// applied for a conversation, so a later record of a partition must never
    /// land while an earlier one failed (it would be resent after it and
    /// skipped). With `enable.gapless.guarantee` such a failure is fatal for
    /// the producer instance: nothing after it is delivered, the append fails,
    /// the producer is rebuilt and the caller redoes the whole append in order.
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("enable.gapless.guarantee", "true")
            .set("acks", "all")
            .set("message.timeout.ms", millis(self.message_timeout))
            .set("linger.ms", millis(self.linger));
        self.finish(config)
    }

    /// Settings of a consumer of `group`: manual offsets, earliest start,
    /// eager rebalancing (every revocation revokes the whole assignment).
    pub(crate) fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.base();
        let heartbeat = self
            .heartbeat
            .unwrap_or(self.session_timeout / 3)
            .max(Duration::from_millis(100));
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("heartbeat.interval.ms", millis(heartbeat))
            .set("max.poll.interval.ms", millis(self.max_poll_interval))
            .set("fetch.wait.max.ms", millis(self.fetch_wait))
            // The consumer lag of /metrics (a JSON document per interval).
            .set("statistics.interval.ms", "5000");
        self.finish(config)
    }

    /// Settings of the admin client.
    pub(crate) fn admin_config(&self) -> ClientConfig {
        let config = self.base();
        self.finish(config)
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_partitions() {
        let options = KafkaOptions::default();
        assert_eq!(options.topic_name(&Topic::Inbound), "seqline.inbound");
        assert_eq!(options.topic_name(&Topic::UserEvents), "seqline.user-events");
        assert_eq!(options.partitions(&Topic::Inbound), 8);
        assert_eq!(options.partitions(&Topic::DeadLetter), 1);
        assert_eq!(options.topic_name(&Topic::ConvEvents), "seqline.conv-events");
        assert_eq!(options.partitions(&Topic::ConvEvents), 8);
        let conv = KafkaOptions {
            conv_events: 3,
            user_events: 5,
            ..options.clone()
        };
        assert_eq!(conv.partitions(&Topic::ConvEvents), 3);
        assert_eq!(conv.partitions(&Topic::UserEvents), 5);
        assert_eq!(
            KafkaOptions {
                conv_events: 0,
                ..options.clone()
            }
            .partitions(&Topic::ConvEvents),
            1
        );
        assert!(format!("{conv:?}").contains("conv_events: 3"));
        let zero = KafkaOptions { gateway: 0, ..options };
        let gw = Topic::Gateway(seqline_core::ids::GatewayId::parse("g1").unwrap());
        assert_eq!(zero.partitions(&gw), 1);
        assert_eq!(zero.topic_name(&gw), "seqline.gw.g1");
    }

    #[test]
    fn the_priority_lane_has_its_own_topics() {
        let options = KafkaOptions {
            priority_events: 2,
            gateway: 3,
            ..KafkaOptions::default()
        };
        assert_eq!(options.topic_name(&Topic::PriorityEvents), "seqline.priority-events");
        assert_eq!(options.partitions(&Topic::PriorityEvents), 2);
        let lane = Topic::GatewayPriority(seqline_core::ids::GatewayId::parse("g1").unwrap());
        assert_eq!(options.topic_name(&lane), "seqline.gw-priority.g1");
        assert_eq!(options.partitions(&lane), 3, "sized like the gateway's ordinary topic");
        assert!(format!("{options:?}").contains("priority_events: 2"));
    }

    #[test]
    fn the_producer_is_idempotent_and_gapless() {
        let config = KafkaOptions::default().producer_config();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("enable.gapless.guarantee"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn every_client_reconnects_within_a_second() {
        let options = KafkaOptions::default();
        for config in [
            options.producer_config(),
            options.consumer_config("g"),
            options.admin_config(),
        ] {
            assert_eq!(config.get("reconnect.backoff.max.ms"), Some("1000"));
        }
        let patient = KafkaOptions {
            extra: vec![("reconnect.backoff.max.ms".into(), "10000".into())],
            ..options
        };
        assert_eq!(patient.admin_config().get("reconnect.backoff.max.ms"), Some("10000"));
    }

    #[test]
    fn debug_masks_secrets() {
        let options = KafkaOptions {
            extra: vec![
                ("sasl.password".into(), "hunter2".into()),
                ("acks".into(), "all".into()),
            ],
            ..Default::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***") && shown.contains("all"),
            "{shown}"
        );
    }

    #[test]
    fn validation() {
        assert!(KafkaOptions::default().validate().is_ok());
        let bad = |o: KafkaOptions| o.validate().is_err();
        assert!(bad(KafkaOptions {
            bootstrap: " ".into(),
            ..Default::default()
        }));
        assert!(bad(KafkaOptions {
            topic_prefix: "a/b".into(),
            ..Default::default()
        }));
        assert!(bad(KafkaOptions {
            replication_factor: 0,
            ..Default::default()
        }));
        assert!(bad(KafkaOptions {
            linger: Duration::from_secs(60),
            ..Default::default()
        }));
        assert!(bad(KafkaOptions {
            session_timeout: Duration::from_secs(30),
            max_poll_interval: Duration::from_secs(20),
            ..Default::default()
        }));
    }

    #[test]
    fn a_consumer_that_stops_polling_leaves_after_the_max_poll_interval() {
        let options = KafkaOptions {
            max_poll_interval: Duration::from_secs(45),
            ..Default::default()
        };
        let config = options.consumer_config("g");
        assert_eq!(config.get("max.poll.interval.ms"), Some("45000"));
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("3333"));
        let fast = KafkaOptions {
            heartbeat: Some(Duration::from_secs(1)),
            ..options
        };
        assert_eq!(fast.consumer_config("g").get("heartbeat.interval.ms"), Some("1000"));
        assert!(KafkaOptions {
            heartbeat: Some(Duration::from_secs(10)),
            ..fast
        }
        .validate()
        .is_err());
    }
}
