//! [`RedisPresence`]: the `Presence` port on Redis.
//!
//! # Why one hash per user
//! Fanout asks "where are the devices of these 1,000 users?" far more often
//! than gateways register, so the layout serves the lookup: one `HGETALL` per
//! user, all of them and a `TIME` sent as one pipeline, which is one round
//! trip. Register and unregister touch one key each, in a Lua script, so
//! they are atomic and stay single-key (fine for Redis Cluster too). The
//! alternative, a `SET … PX` key per device plus a per-user set, expires
//! each device natively but needs two round trips (or a script reading keys
//! it was not given) to look up, and leaves set members pointing at expired
//! keys.
//!
//! # How entries of one user expire individually
//! Every value carries its own expiry (`gateway|expiry_ms`, server clock):
//! lookups drop entries past it at once, register prunes them, and the
//! hash's own TTL follows its latest entry, so when the gateways of all of a
//! user's devices stop heartbeating the key itself disappears. Redis 7.4's
//! per-field `HPEXPIRE` would do the same natively; 7.0 (Debian 12) has none.

use crate::entry::{self, decode, decode_follow, follow_key, time_ms, user_key};
use crate::error::port_error;
use crate::options::RedisOptions;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use seqline_core::ids::{ConversationId, DeviceId, GatewayId, UserId};
use seqline_core::ports::{DeviceLocation, Presence};
use seqline_core::{Error, Result};
use std::collections::HashMap;
use std::time::Duration;
use tracing::{instrument, warn};

/// Users looked up per pipeline: bounds one reply's size; below it a lookup
/// is one round trip.
pub const LOOKUP_CHUNK: usize = 2048;

/// The Redis [`Presence`]. Cheap to clone: clones share one multiplexed
/// connection, re-established in the background after the server comes back.
#[derive(Clone)]
pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    register: Script,
    unregister: Script,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence").field("prefix", &self.prefix).finish()
    }
}

impl RedisPresence {
    /// Connects to `options.url`; fails as unavailable if the server does not
    /// answer within the connect timeout.
    pub async fn connect(options: RedisOptions) -> Result<Self> {
        options.validate()?;
        let client = options.client()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| port_error("connect", e))?;
        Ok(Self {
            conn,
            prefix: options.key_prefix,
            register: Script::new(entry::REGISTER),
            unregister: Script::new(entry::UNREGISTER),
        })
    }
}

#[async_trait]
impl Presence for RedisPresence {
    #[instrument(skip_all, fields(user_id = %user, device_id = %device, gateway_id = %gateway))]
    async fn register(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId, ttl: Duration) -> Result<()> {
        // A TTL under 1 ms stores an entry that is already expired (and pruned).
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .register
            .key(user_key(&self.prefix, user))
            .arg(device.as_str())
            .arg(gateway.as_str())
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| port_error("register", e))?;
        Ok(())
    }

    #[instrument(skip_all, fields(user_id = %user, device_id = %device, gateway_id = %gateway))]
    async fn unregister(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .unregister
            .key(user_key(&self.prefix, user))
            .arg(device.as_str())
            .arg(gateway.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| port_error("unregister", e))?;
        Ok(())
    }

    #[instrument(skip_all, fields(users = users.len()))]
    async fn lookup(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<DeviceLocation>>> {
        let mut out = HashMap::new();
        for chunk in users.chunks(LOOKUP_CHUNK) {
            let keys = chunk.iter().map(|u| user_key(&self.prefix, u));
            let (now, hashes) = self.hgetall(keys, "lookup").await?;
            for (user, fields) in chunk.iter().zip(hashes) {
                live_devices(user, now, &fields, &mut out);
            }
        }
        Ok(out)
    }

    #[instrument(skip_all, fields(conversation_id = %conv, gateway_id = %gateway))]
    async fn follow(&self, conv: &ConversationId, gateway: &GatewayId, ttl: Duration) -> Result<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .register
            .key(follow_key(&self.prefix, conv))
            .arg(gateway.as_str())
            .arg(gateway.as_str())
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| port_error("follow", e))?;
        Ok(())
    }

    #[instrument(skip_all, fields(conversation_id = %conv, gateway_id = %gateway))]
    async fn unfollow(&self, conv: &ConversationId, gateway: &GatewayId) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .unregister
            .key(follow_key(&self.prefix, conv))
            .arg(gateway.as_str())
            .arg(gateway.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| port_error("unfollow", e))?;
        Ok(())
    }

    #[instrument(skip_all, fields(conversations = convs.len()))]
    async fn followers(&self, convs: &[ConversationId]) -> Result<HashMap<ConversationId, Vec<GatewayId>>> {
        let mut out = HashMap::new();
        for chunk in convs.chunks(LOOKUP_CHUNK) {
            let keys = chunk.iter().map(|c| follow_key(&self.prefix, c));
            let (now, hashes) = self.hgetall(keys, "followers").await?;
            for (conv, fields) in chunk.iter().zip(hashes) {
                let live: Vec<GatewayId> = fields
                    .iter()
                    .filter_map(|(field, value)| match decode_follow(field, value) {
                        Ok((gateway, expiry_ms)) => (expiry_ms > now).then_some(gateway),
                        Err(why) => {
                            warn!(conversation_id = %conv, %why, "skipping an undecodable follow entry");
                            None
                        }
                    })
                    .collect();
                if !live.is_empty() {
                    out.insert(conv.clone(), live);
                }
            }
        }
        Ok(out)
    }
}

impl RedisPresence {
    /// One pipeline, one round trip: `TIME`, then `HGETALL` of each key.
    async fn hgetall(
        &self,
        keys: impl Iterator<Item = String>,
        what: &str,
    ) -> Result<(u64, Vec<Vec<(String, String)>>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        let mut n = 0;
        for key in keys {
            pipe.cmd("HGETALL").arg(key);
            n += 1;
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(|e| port_error(what, e))?;
        let mut replies = replies.into_iter();
        let time: Vec<String> = parse(replies.next(), "TIME")?;
        let now = time_ms(&time).map_err(Error::Corrupt)?;
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(parse(replies.next(), "HGETALL")?);
        }
        Ok((now, hashes))
    }
}

/// The live devices of one user's hash.
fn live_devices(user: &UserId, now: u64, fields: &[(String, String)], out: &mut HashMap<UserId, Vec<DeviceLocation>>) {
    {
        {
            let live: Vec<DeviceLocation> = fields
                .iter()
                .filter_map(|(device, value)| match decode(device, value) {
                    Ok(e) => (e.expiry_ms > now).then_some(e.location),
                    Err(why) => {
                        // Presence only routes pushes; one bad entry must not
                        // stop the fanout of everyone else.
                        warn!(user_id = %user, %why, "skipping an undecodable presence entry");
                        None
                    }
                })
                .collect();
            if !live.is_empty() {
                out.insert(user.clone(), live);
            }
        }
    }
}

/// Converts one reply of the pipeline.
fn parse<T: redis::FromRedisValue>(reply: Option<Value>, what: &str) -> Result<T> {
    let reply = reply.ok_or_else(|| Error::Corrupt(format!("redis lookup: missing {what} reply")))?;
    redis::from_redis_value(reply).map_err(|e| Error::Corrupt(format!("redis lookup: {what} reply: {e}")))
}
