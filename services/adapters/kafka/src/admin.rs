//! Topics are created on first use with the configured partition count and
//! replication factor; an existing topic with another partition count is a
//! configuration error (keys would land elsewhere than on the embedded log).

use crate::config::KafkaOptions;
use crate::context::AdminContext;
use crate::error::client_error;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::RDKafkaErrorCode;
use seqline_core::records::Topic;
use seqline_core::{Error, Result};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long creating a topic and seeing it in the metadata may take.
const TOPIC_DEADLINE: Duration = Duration::from_secs(15);

/// Creates and checks topics; remembers those it has checked.
pub(crate) struct Admin {
    client: Arc<AdminClient<AdminContext>>,
    options: KafkaOptions,
    ready: Mutex<HashSet<String>>,
}

impl Admin {
    pub(crate) fn new(options: KafkaOptions) -> Result<Self> {
        let client = AdminClient::from_config_and_context(&options.admin_config(), AdminContext)
            .map_err(|e| client_error("creating the kafka admin client", &e))?;
        Ok(Self {
            client: Arc::new(client),
            options,
            ready: Mutex::new(HashSet::new()),
        })
    }

    /// Fetches the cluster metadata once, proving the brokers answer.
    pub(crate) async fn ping(&self) -> Result<()> {
        let client = Arc::clone(&self.client);
        let timeout = self.options.message_timeout.min(Duration::from_secs(10));
        tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| Error::Unavailable(format!("kafka metadata task: {e}")))?
            .map_err(|e| client_error(&format!("reaching kafka at {}", self.options.bootstrap), &e))
    }

    /// Makes sure `topic` exists with the configured partition count.
    pub(crate) async fn ensure(&self, topic: &Topic) -> Result<()> {
        let name = self.options.topic_name(topic);
        if self
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&name)
        {
            return Ok(());
        }
        let partitions = self.options.partitions(topic);
        let new = NewTopic::new(
            &name,
            partitions as i32,
            TopicReplication::Fixed(i32::from(self.options.replication_factor)),
        );
        let admin_options = AdminOptions::new().operation_timeout(Some(TOPIC_DEADLINE));
        let results = self
            .client
            .create_topics([&new], &admin_options)
            .await
            .map_err(|e| client_error(&format!("creating topic {name}"), &e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((
                    _,
                    code @ (RDKafkaErrorCode::InvalidReplicationFactor
                    | RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::TopicAuthorizationFailed),
                )) => return Err(Error::Config(format!("creating topic {name}: {code}"))),
                Err((_, code)) => return Err(Error::Unavailable(format!("creating topic {name}: {code}"))),
            }
        }
        let found = self.partition_count(&name).await?;
        if found != partitions {
            return Err(Error::Config(format!(
                "topic {name} has {found} partitions but {partitions} are configured"
            )));
        }
        tracing::debug!(topic = %name, partitions, "topic ready");
        self.ready.lock().unwrap_or_else(PoisonError::into_inner).insert(name);
        Ok(())
    }

    /// The partition count of `name` once the metadata shows it.
    async fn partition_count(&self, name: &str) -> Result<u32> {
        let deadline = tokio::time::Instant::now() + TOPIC_DEADLINE;
        let mut wait = Duration::from_millis(20);
        loop {
            let client = Arc::clone(&self.client);
            let topic = name.to_string();
            let found = tokio::task::spawn_blocking(move || {
                let metadata = client.inner().fetch_metadata(Some(&topic), Duration::from_secs(5))?;
                Ok::<_, rdkafka::error::KafkaError>(
                    metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic && t.error().is_none())
                        .map(|t| t.partitions().len() as u32),
                )
            })
            .await
            .map_err(|e| Error::Unavailable(format!("kafka metadata task: {e}")))?
            .map_err(|e| client_error(&format!("metadata of {name}"), &e))?;
            match found {
                Some(n) if n > 0 => return Ok(n),
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::Unavailable(format!(
                        "topic {name} did not appear in the metadata"
                    )))
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}
