//! The sends this gateway refused for good before sequencing, per device.
//!
//! The sequencer never sees such a send, so it cannot be the device's last
//! one there. A client that names it as the `prev` of its next send (as a
//! pipelining client must, before the refusal arrives) would get
//! `out_of_order` for ever. So the gateway remembers its final refusals
//! (`too_large`, `invalid_field`) with the `prev` each named, and a send
//! whose `prev` names one is published naming that send's own `prev`
//! instead (transitively): a refused send never blocks the chain. This
//! holds across the device's connections to this gateway, for the
//! [`PER_DEVICE`] latest refusals of a device; `docs/protocol.md` tells
//! clients to name the previous send *not* refused by the gateway, which
//! works on any gateway.
//!
//! Memory is bounded: [`PER_DEVICE`] refusals per device, and devices in
//! two generations per shard of [`DEVICES_PER_SHARD`] each (the older
//! generation is dropped when the newer fills).

use crate::registry::DeviceKey;
use seqline_core::{ClientMsgId, ConversationId};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Refusals remembered per device (the latest ones).
pub(crate) const PER_DEVICE: usize = 32;
/// Devices per shard and generation.
const DEVICES_PER_SHARD: usize = 1024;
const SHARDS: usize = 16;

/// What a refused send named.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refused {
    id: ClientMsgId,
    /// Its conversation, when it named a valid one.
    conv: Option<ConversationId>,
    /// Its `prev` (`None` when absent or unreadable).
    prev: Option<ClientMsgId>,
}

#[derive(Default)]
struct Shard {
    current: HashMap<DeviceKey, VecDeque<Refused>>,
    previous: HashMap<DeviceKey, VecDeque<Refused>>,
}

impl Shard {
    fn get(&self, device: &DeviceKey, id: &ClientMsgId) -> Option<&Refused> {
        [&self.current, &self.previous]
            .into_iter()
            .filter_map(|m| m.get(device))
            .find_map(|list| list.iter().find(|r| r.id == *id))
    }

    fn list_mut(&mut self, device: &DeviceKey) -> &mut VecDeque<Refused> {
        if !self.current.contains_key(device) {
            let moved = self.previous.remove(device).unwrap_or_default();
            if self.current.len() >= DEVICES_PER_SHARD {
                self.previous = std::mem::take(&mut self.current);
            }
            self.current.insert(device.clone(), moved);
        }
        self.current.entry(device.clone()).or_default()
    }
}

/// Final refusals of sends, per device, for chaining later sends.
pub(crate) struct Refusals {
    shards: Vec<Mutex<Shard>>,
    /// Whether anything was ever remembered: until then sends skip the locks.
    any: AtomicBool,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            any: AtomicBool::new(false),
        }
    }
}

impl Refusals {
    fn shard(&self, device: &DeviceKey) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        device.hash(&mut h);
        let i = (h.finish() % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway refused `id` for good: remember what it named.
    pub fn remember(&self, key: &DeviceKey, id: ClientMsgId, conv: Option<ConversationId>, prev: Option<ClientMsgId>) {
        if id.0.is_nil() {
            return;
        }
        let prev = prev.filter(|p| *p != id && !p.0.is_nil());
        let mut shard = self.shard(key);
        let list = shard.list_mut(key);
        list.retain(|r| r.id != id);
        if list.len() >= PER_DEVICE {
            list.pop_front();
        }
        list.push_back(Refused { id, conv, prev });
        self.any.store(true, Ordering::Release);
    }

    /// A send of `id` to `conv` naming `prev` passed the gateway's checks:
    /// `id` is no longer a refused send, and the `prev` to publish is
    /// `prev` with every refused send it names replaced by that send's own
    /// `prev`.
    pub fn passed(
        &self,
        key: &DeviceKey,
        id: ClientMsgId,
        conv: &ConversationId,
        prev: Option<ClientMsgId>,
    ) -> Option<ClientMsgId> {
        if !self.any.load(Ordering::Acquire) {
            return prev;
        }
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        for generation in [&mut shard.current, &mut shard.previous] {
            if let Some(list) = generation.get_mut(key) {
                list.retain(|r| r.id != id);
            }
        }
        let mut named = prev;
        // Each step follows a remembered refusal: at most all of them.
        for _ in 0..=PER_DEVICE {
            let Some(p) = named else { break };
            match shard.get(key, &p) {
                Some(r) if r.conv.as_ref().is_none_or(|c| c == conv) => named = r.prev,
                _ => break,
            }
        }
        named.filter(|p| *p != id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::{DeviceId, UserId};

    fn key(user: &str, device: &str) -> DeviceKey {
        DeviceKey {
            user: UserId::parse(user).unwrap(),
            device: DeviceId::parse(device).unwrap(),
        }
    }

    fn ids(n: usize) -> Vec<ClientMsgId> {
        (0..n).map(|_| ClientMsgId::random()).collect()
    }

    #[test]
    fn a_refused_send_is_skipped_in_the_chain() {
        let r = Refusals::default();
        let k = key("alice", "phone");
        let conv = ConversationId::parse("g:a").unwrap();
        let [z, a, b, c, x] = ids(5).try_into().unwrap();
        // Nothing refused: prev as named.
        assert_eq!(r.passed(&k, b, &conv, Some(a)), Some(a));
        // a (prev z) and then b (prev a) refused: c naming b names z.
        r.remember(&k, a, Some(conv.clone()), Some(z));
        r.remember(&k, b, Some(conv.clone()), Some(a));
        assert_eq!(r.passed(&k, c, &conv, Some(b)), Some(z));
        assert_eq!(r.passed(&k, c, &conv, Some(z)), Some(z));
        // A refused first send (no prev): its successor names nothing.
        r.remember(&k, x, Some(conv.clone()), None);
        assert_eq!(r.passed(&k, c, &conv, Some(x)), None);
        // Another device, another conversation: not affected.
        assert_eq!(r.passed(&key("alice", "laptop"), c, &conv, Some(b)), Some(b));
        let conv2 = ConversationId::parse("g:b").unwrap();
        assert_eq!(r.passed(&k, c, &conv2, Some(b)), Some(b));
        // A refused id that later passes (resent in a valid form) is a real
        // predecessor again.
        assert_eq!(r.passed(&k, a, &conv, Some(z)), Some(z));
        assert_eq!(r.passed(&k, c, &conv, Some(b)), Some(a));
    }

    #[test]
    fn cycles_and_self_references_end() {
        let r = Refusals::default();
        let k = key("alice", "phone");
        let conv = ConversationId::parse("g:a").unwrap();
        let [a, b, c] = ids(3).try_into().unwrap();
        r.remember(&k, a, Some(conv.clone()), Some(b));
        r.remember(&k, b, Some(conv.clone()), Some(a));
        let _ = r.passed(&k, c, &conv, Some(a));
        // c names a refused send whose prev is c itself: no prev at all.
        r.remember(&k, a, Some(conv.clone()), Some(c));
        assert_eq!(r.passed(&k, c, &conv, Some(a)), None);
    }

    #[test]
    fn memory_is_bounded() {
        let r = Refusals::default();
        let k = key("alice", "phone");
        let conv = ConversationId::parse("g:a").unwrap();
        let first = ClientMsgId::random();
        r.remember(&k, first, Some(conv.clone()), None);
        for _ in 0..PER_DEVICE {
            r.remember(&k, ClientMsgId::random(), Some(conv.clone()), None);
        }
        let next = ClientMsgId::random();
        assert_eq!(r.passed(&k, next, &conv, Some(first)), Some(first), "forgotten");
        for i in 0..(SHARDS * DEVICES_PER_SHARD * 3) {
            r.remember(&key("alice", &format!("d{i}")), ClientMsgId::random(), None, None);
        }
        let held: usize = r
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.current.len() + s.previous.len()
            })
            .sum();
        assert!(held <= 2 * SHARDS * DEVICES_PER_SHARD, "{held}");
    }
}
