//! [`KafkaLog`]: the [`Log`] port on a Kafka cluster.

use crate::admin::Admin;
use crate::avro::Codec;
use crate::config::KafkaOptions;
use crate::consumer::{self, Member};
use crate::error::client_error;
use crate::producer::{Outgoing, Producer};
use async_trait::async_trait;
use seqline_core::ids::partition_for;
use seqline_core::ports::{Log, LogConsumer};
use seqline_core::records::{LogRecord, Topic};
use seqline_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;
use tracing::instrument;

/// The members of each (bootstrap, group, topic) subscribed in this
/// process, with the [`KafkaLog`] that subscribed each. A new subscriber
/// takes over (and waits until it has left the group) the member of its own
/// log, and the member of a log that was closed and reopened: otherwise the
/// new member would join while the old one is still leaving, and the group
/// would wait out a session timeout before assigning anything. Members of
/// other live logs stay: each log is a process as far as the group is
/// concerned, and they share the partitions.
static MEMBERS: LazyLock<Mutex<HashMap<MemberKey, Vec<Subscribed>>>> = LazyLock::new(Mutex::default);

type MemberKey = (String, String, String);

struct Subscribed {
    log: Weak<Inner>,
    member: Member,
}

/// One partition's watermarks, and a group's committed offset in it.
struct PartitionOffsets {
    low: i64,
    high: i64,
    committed: Option<i64>,
}

/// The Kafka [`Log`]. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

struct Inner {
    options: KafkaOptions,
    codec: Arc<Codec>,
    producer: Producer,
    admin: Admin,
}

impl KafkaLog {
    /// Checks `options`, connects the producer and admin client, and waits
    /// until the brokers answer a metadata request.
    pub async fn connect(options: KafkaOptions) -> Result<Self> {
        options.validate()?;
        let codec = Arc::new(Codec::new()?);
        let producer = Producer::new(options.clone())?;
        let admin = Admin::new(options.clone())?;
        if let Err(e) = admin.ping().await {
            // A refused login or certificate does not heal by waiting.
            return Err(match producer.refusal() {
                Some(why) => Error::Config(format!(
                    "kafka at {} refused the link (check the URL's user, password, mechanism and CA): {why}",
                    options.bootstrap
                )),
                None => e,
            });
        }
        tracing::info!(bootstrap = %options.bootstrap, prefix = %options.topic_prefix, "connected to kafka");
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                codec,
                producer,
                admin,
            }),
        })
    }

    /// The options this log was connected with.
    pub fn options(&self) -> &KafkaOptions {
        &self.inner.options
    }

    /// How many consumers subscribed through this log are still members of
    /// their group, and how many of those have finished their last
    /// rebalance (hold an assignment, maybe an empty one, of the group's
    /// current generation). A readiness signal: an orchestrator restarting
    /// instances one by one waits until they are equal before it stops the
    /// next, so no member leaves a group in the middle of a rebalance.
    pub fn members_settled(&self) -> (usize, usize) {
        let members = MEMBERS.lock().unwrap_or_else(PoisonError::into_inner);
        members
            .values()
            .flatten()
            .filter(|s| std::ptr::eq(s.log.as_ptr(), Arc::as_ptr(&self.inner)) && !s.member.has_left())
            .fold((0, 0), |(all, settled), s| {
                (all + 1, settled + usize::from(s.member.settled()))
            })
    }

    /// Where `group` stands on each partition of `topic`, indexed by
    /// partition: the offset it would read next (its committed offset, or
    /// the low watermark where it never committed) and the partition's end.
    pub async fn positions(&self, group: &str, topic: &Topic) -> Result<Vec<(u64, u64)>> {
        let offsets = self.offsets(topic, Some(group)).await?;
        let at = |o: i64| u64::try_from(o).unwrap_or(0);
        Ok(offsets
            .iter()
            .map(|o| (at(o.committed.unwrap_or(o.low).max(o.low)), at(o.high)))
            .collect())
    }

    /// How many records of `topic` lie past `group`'s committed offsets,
    /// summed over the partitions (a partition the group never committed
    /// counts from its low watermark, where the group would start). Zero
    /// means the group has processed, and made durable, everything appended
    /// so far: the drained signal a test or an operator waits for before
    /// reading results.
    pub async fn backlog(&self, group: &str, topic: &Topic) -> Result<u64> {
        let offsets = self.offsets(topic, Some(group)).await?;
        Ok(offsets
            .iter()
            .map(|o| {
                let at = o.committed.unwrap_or(o.low).max(o.low);
                u64::try_from(o.high.saturating_sub(at)).unwrap_or(0)
            })
            .sum())
    }

    /// The groups in which a consumer subscribed through this log has not
    /// finished its last rebalance (see [`KafkaLog::members_settled`]).
    pub fn unsettled_groups(&self) -> Vec<String> {
        let members = MEMBERS.lock().unwrap_or_else(PoisonError::into_inner);
        let mut groups: Vec<String> = members
            .iter()
            .filter(|(_, subs)| {
                subs.iter().any(|s| {
                    std::ptr::eq(s.log.as_ptr(), Arc::as_ptr(&self.inner))
                        && !s.member.has_left()
                        && !s.member.settled()
                })
            })
            .map(|((_, group, _), _)| group.clone())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// How many records were ever appended to `topic` (its partitions'
    /// high watermarks, summed):
    /// 0 for a topic nothing was written to.
    pub async fn appended(&self, topic: &Topic) -> Result<u64> {
        let offsets = self.offsets(topic, None).await?;
        Ok(offsets.iter().map(|o| u64::try_from(o.high).unwrap_or(0)).sum())
    }

    /// Every partition's watermarks of `topic` and, with a `group`, the
    /// group's committed offset. Does not join the group.
    async fn offsets(&self, topic: &Topic, group: Option<&str>) -> Result<Vec<PartitionOffsets>> {
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        use rdkafka::{Offset, TopicPartitionList};
        let inner = &self.inner;
        inner.admin.ensure(topic).await?;
        let name = inner.options.topic_name(topic);
        let partitions = inner.options.partitions(topic) as i32;
        let config = match group {
            Some(g) => inner.options.consumer_config(g),
            None => inner.options.admin_config(),
        };
        let timeout = inner.options.message_timeout.min(Duration::from_secs(10));
        let what = match group {
            Some(g) => format!("offsets of {g} on {name}"),
            None => format!("end offsets of {name}"),
        };
        let with_group = group.is_some();
        // Right after a topic is created its partitions may not have a
        // leader yet (the metadata is still propagating): such answers are
        // retried for a while instead of failing the caller.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (name, config) = (name.clone(), config.clone());
            let result = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = config.create()?;
                let committed = if with_group {
                    let mut tpl = TopicPartitionList::new();
                    for p in 0..partitions {
                        tpl.add_partition(&name, p);
                    }
                    Some(consumer.committed_offsets(tpl, timeout)?)
                } else {
                    None
                };
                (0..partitions)
                    .map(|p| {
                        let (low, high) = consumer.fetch_watermarks(&name, p, timeout)?;
                        let committed =
                            committed
                                .as_ref()
                                .and_then(|c| c.find_partition(&name, p))
                                .and_then(|e| match e.offset() {
                                    Offset::Offset(o) => Some(o),
                                    _ => None,
                                });
                        Ok(PartitionOffsets { low, high, committed })
                    })
                    .collect::<std::result::Result<Vec<_>, rdkafka::error::KafkaError>>()
            })
            .await
            .map_err(|e| Error::Unavailable(format!("{what}: task: {e}")))?;
            match result {
                Err(e) if leader_not_known_yet(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other.map_err(|e| client_error(&what, &e)),
            }
        }
    }

    /// Produces `raw` bytes, bypassing the record encoding, to `partition`
    /// of `topic`; returns its offset. For tests of undecodable records only.
    #[doc(hidden)]
    pub async fn inject_raw_for_tests(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Result<u64> {
        self.inner.admin.ensure(topic).await?;
        let name = self.inner.options.topic_name(topic);
        let outgoing = [Outgoing {
            partition,
            key: "raw".into(),
            payload: raw,
        }];
        let offsets = self.inner.producer.send_all(&name, &outgoing, None).await?;
        offsets
            .first()
            .and_then(|o| u64::try_from(*o).ok())
            .ok_or_else(|| Error::Unavailable(format!("no offset reported for a record on {name}")))
    }
}

#[async_trait]
impl Log for KafkaLog {
    #[instrument(skip_all, fields(topic = %topic.name(), records = records.len()))]
    async fn append(&self, topic: &Topic, records: Vec<LogRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        inner.admin.ensure(topic).await?;
        let partitions = inner.options.partitions(topic);
        let outgoing = records
            .iter()
            .map(|r| {
                Ok(Outgoing {
                    partition: partition_for(r.key(), partitions),
                    key: r.key().to_string(),
                    payload: inner.codec.encode(r)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Every record of the append carries the appending span's context.
        let trace = seqline_telemetry::current_traceparent();
        inner
            .producer
            .send_all(&inner.options.topic_name(topic), &outgoing, trace)
            .await?;
        if *topic == Topic::DeadLetter {
            seqline_telemetry::emit(seqline_telemetry::events::DeadLettered {
                count: outgoing.len() as u64,
            });
        }
        Ok(())
    }

    #[instrument(skip_all, fields(topic = %topic.name(), group))]
    async fn subscribe(&self, group: &str, topic: &Topic) -> Result<Box<dyn LogConsumer>> {
        let inner = &self.inner;
        inner.admin.ensure(topic).await?;
        let name = inner.options.topic_name(topic);
        let key = (inner.options.bootstrap.clone(), group.to_string(), name.clone());
        let previous: Vec<Member> = {
            let mut members = MEMBERS.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = members.entry(key.clone()).or_default();
            let (replaced, others): (Vec<Subscribed>, Vec<Subscribed>) = std::mem::take(entry)
                .into_iter()
                .partition(|s| s.log.strong_count() == 0 || std::ptr::eq(s.log.as_ptr(), Arc::as_ptr(inner)));
            *entry = others.into_iter().filter(|s| !s.member.has_left()).collect();
            replaced.into_iter().map(|s| s.member).collect()
        };
        for previous in previous {
            // The newest subscriber of a log wins; the old one leaves the
            // group first, so this one is not kept waiting for a rebalance
            // with it.
            previous
                .take_over(inner.options.session_timeout + Duration::from_secs(5))
                .await;
        }
        let partitions = inner.options.partitions(topic);
        let (consumer, member) = consumer::join(&inner.options, Arc::clone(&inner.codec), group, &name, partitions)?;
        MEMBERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push(Subscribed {
                log: Arc::downgrade(inner),
                member,
            });
        Ok(Box::new(consumer))
    }

    fn partitions(&self, topic: &Topic) -> u32 {
        self.inner.options.partitions(topic)
    }
}

/// Whether `e` says a partition has no known leader yet (a topic created
/// moments ago, a leader election in progress): worth asking again.
fn leader_not_known_yet(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(Code::NotLeaderForPartition | Code::LeaderNotAvailable | Code::UnknownTopicOrPartition)
    )
}
