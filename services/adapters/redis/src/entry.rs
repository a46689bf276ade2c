//! Keys, values and scripts of the presence.
//!
//! One hash per user, `presence:<prefix>:<user>`; field = device, value =
//! `<gateway>|<expiry_ms>` on the Redis server's clock. Gateway ids never
//! contain `|`, so the last `|` splits a value.

use seqline_core::ids::{ConversationId, DeviceId, GatewayId, UserId};
use seqline_core::ports::DeviceLocation;

/// The hash holding the devices of `user`.
pub(crate) fn user_key(prefix: &str, user: &UserId) -> String {
    format!("presence:{prefix}:{user}")
}

/// The hash of gateways following a conversation: field = gateway, value
/// `gateway|expiry_ms`, kept by the same scripts as device entries.
pub(crate) fn follow_key(prefix: &str, conv: &ConversationId) -> String {
    format!("follows:{prefix}:{conv}")
}

/// A follow entry: the gateway if it is well formed.
pub(crate) fn decode_follow(field: &str, value: &str) -> Result<(GatewayId, u64), String> {
    let (gateway, expiry) = value
        .rsplit_once('|')
        .ok_or_else(|| format!("value {value:?} is not gateway|expiry_ms"))?;
    if gateway != field {
        return Err(format!("field {field:?} holds another gateway {gateway:?}"));
    }
    let gateway = GatewayId::parse(gateway).map_err(|e| format!("value {value:?}: {e}"))?;
    let expiry_ms = expiry
        .parse::<u64>()
        .map_err(|e| format!("value {value:?}: bad expiry: {e}"))?;
    Ok((gateway, expiry_ms))
}

/// Records a device and refreshes the hash's own TTL.
///
/// Atomic (one script): stamps the entry with the server's clock, drops the
/// user's entries that have expired, and sets the key to expire with its
/// latest entry, so a user whose gateways all died leaves nothing behind.
/// `KEYS[1]` = user hash; `ARGV` = device, gateway, ttl in ms (0 stores an
/// entry that is expired at once).
pub(crate) const REGISTER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. string.format('%.0f', expiry))
local latest = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local v = fields[i + 1]
  local sep = string.find(v, '|[^|]*$')
  local e = sep and tonumber(string.sub(v, sep + 1)) or 0
  if e <= now then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif e > latest then
    latest = e
  end
end
if latest > 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', latest))
end
return 1
";

/// Removes a device only if it still points at the given gateway (it may
/// have moved to another one meanwhile). Returns 1 when removed.
/// `KEYS[1]` = user hash; `ARGV` = device, gateway.
pub(crate) const UNREGISTER: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  local sep = string.find(v, '|[^|]*$')
  if sep and string.sub(v, 1, sep - 1) == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return 0
";

/// A stored entry, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) location: DeviceLocation,
    pub(crate) expiry_ms: u64,
}

/// Decodes one hash field and value; the error says what is wrong.
pub(crate) fn decode(device: &str, value: &str) -> Result<Entry, String> {
    let device = DeviceId::parse(device).map_err(|e| format!("device field {device:?}: {e}"))?;
    let (gateway, expiry) = value
        .rsplit_once('|')
        .ok_or_else(|| format!("value {value:?} is not gateway|expiry_ms"))?;
    let gateway = GatewayId::parse(gateway).map_err(|e| format!("value {value:?}: {e}"))?;
    let expiry_ms = expiry
        .parse::<u64>()
        .map_err(|e| format!("value {value:?}: bad expiry: {e}"))?;
    Ok(Entry {
        location: DeviceLocation { device, gateway },
        expiry_ms,
    })
}

/// The server's clock in ms from a `TIME` reply (seconds, microseconds).
pub(crate) fn time_ms(reply: &[String]) -> Result<u64, String> {
    let [secs, micros] = reply else {
        return Err(format!("TIME replied {} values, not 2", reply.len()));
    };
    let secs: u64 = secs.parse().map_err(|e| format!("TIME seconds {secs:?}: {e}"))?;
    let micros: u64 = micros.parse().map_err(|e| format!("TIME micros {micros:?}: {e}"))?;
    Ok(secs * 1000 + micros / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values() {
        let e = decode("phone", "gw-1|1700000000123").unwrap();
        assert_eq!(e.location.device.as_str(), "phone");
        assert_eq!(e.location.gateway.as_str(), "gw-1");
        assert_eq!(e.expiry_ms, 1_700_000_000_123);
        assert!(decode("phone", "gw-1").is_err());
        assert!(decode("phone", "gw-1|soon").is_err());
        assert!(decode("phone", "|17").is_err());
        assert!(decode("bad device", "gw|17").is_err());
    }

    #[test]
    fn reads_server_time() {
        assert_eq!(time_ms(&["1700000000".into(), "123999".into()]), Ok(1_700_000_000_123));
        assert!(time_ms(&["1".into()]).is_err());
        assert!(time_ms(&["x".into(), "1".into()]).is_err());
    }

    #[test]
    fn keys_are_namespaced() {
        let user = UserId::parse("alice").unwrap();
        assert_eq!(user_key("t1", &user), "presence:t1:alice");
    }
}
