//! The authenticated connections this gateway holds, by device, so receipts,
//! packages, read marks and poll answers find their way to a socket. Each
//! connection has a queue bounded in bytes (`outbox`); a full queue means
//! the client cannot keep up, and [`Registry::offer`] disconnects it with
//! 1008 (it recovers by sync) rather than silently losing frames.

use crate::metrics::Metrics;
use crate::outbox::{Outbound, Outbox, PriorityLane};
use seqline_core::protocol::ServerFrame;
use seqline_core::{ConversationId, DeviceId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the maps consistent at each step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A user's device: the unit receipts and packages are addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DeviceKey {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
}

/// One authenticated connection as everything outside its session reaches
/// it: the registry, the follow index and its long-poll.
pub(crate) struct Link {
    /// Gateway-local connection id.
    pub id: u64,
    /// Its user and device.
    pub key: DeviceKey,
    /// Its ordinary outgoing queue.
    pub tx: Outbox,
    /// Its priority lane, written ahead of the ordinary queue.
    pub priority: PriorityLane,
    /// Cancelled to disconnect it (a full queue).
    pub kick: CancellationToken,
    /// Woken when a conversation it follows advances.
    pub wake: Notify,
    /// Conversations whose membership this connection has verified: the
    /// conv_seq where the user's current window opened (its `joined`).
    verified: Mutex<HashMap<ConversationId, u64>>,
    /// Set when the connection is gone: it follows nothing any more.
    gone: AtomicBool,
}

impl Link {
    pub fn new(id: u64, key: DeviceKey, tx: Outbox, priority: PriorityLane, kick: CancellationToken) -> Self {
        Self {
            id,
            key,
            tx,
            priority,
            kick,
            wake: Notify::new(),
            verified: Mutex::new(HashMap::new()),
            gone: AtomicBool::new(false),
        }
    }

    /// Where the user's current membership window of `conv` opened, when
    /// this connection verified it.
    pub fn open_window(&self, conv: &ConversationId) -> Option<u64> {
        lock(&self.verified).get(conv).copied()
    }

    pub fn verify(&self, conv: &ConversationId, joined: u64) {
        lock(&self.verified).insert(conv.clone(), joined);
    }

    /// Forgets that the user's window of `conv` is open (a `left` named
    /// the user), and wakes the long-poll to look again.
    pub fn forget(&self, conv: &ConversationId) {
        lock(&self.verified).remove(conv);
        self.wake.notify_one();
    }

    /// Marks the connection gone; the follow index calls it under its lock.
    pub fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct Inner {
    devices: HashMap<DeviceKey, Vec<Arc<Link>>>,
    per_user: HashMap<UserId, usize>,
    /// The devices of each user with a connection here.
    users: HashMap<UserId, HashSet<DeviceId>>,
}

/// The registry of authenticated connections.
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    max_per_user: usize,
    metrics: Arc<Metrics>,
}

/// The user already has as many connections as allowed.
#[derive(Debug)]
pub(crate) struct TooManyConnections;

impl Registry {
    pub fn new(max_per_user: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_per_user,
            metrics,
        }
    }

    /// Registers a connection, within the per-user limit.
    pub fn attach(&self, link: Arc<Link>) -> Result<(), TooManyConnections> {
        let mut inner = lock(&self.inner);
        let key = link.key.clone();
        let count = inner.per_user.entry(key.user.clone()).or_default();
        if *count >= self.max_per_user {
            return Err(TooManyConnections);
        }
        *count += 1;
        inner.devices.entry(key.clone()).or_default().push(link);
        inner.users.entry(key.user).or_default().insert(key.device);
        Ok(())
    }

    /// Removes connection `id` of `key`; true if the device has no other
    /// connection here (so its presence entry should go).
    pub fn detach(&self, key: &DeviceKey, id: u64) -> bool {
        let mut inner = lock(&self.inner);
        let mut removed = false;
        let mut last = true;
        if let Some(list) = inner.devices.get_mut(key) {
            let before = list.len();
            list.retain(|l| l.id != id);
            removed = list.len() < before;
            last = list.is_empty();
            if last {
                inner.devices.remove(key);
                if let Some(set) = inner.users.get_mut(&key.user) {
                    set.remove(&key.device);
                    if set.is_empty() {
                        inner.users.remove(&key.user);
                    }
                }
            }
        }
        if removed {
            if let Some(n) = inner.per_user.get_mut(&key.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_user.remove(&key.user);
                }
            }
        }
        last
    }

    /// Queues `out` on `link`'s ordinary queue; true if it was queued. A
    /// connection whose queue is full is kicked (once): it recovers by
    /// pulling. The one place a full queue disconnects a client.
    pub fn offer(&self, link: &Link, out: Outbound) -> bool {
        match link.tx.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if !link.kick.is_cancelled() {
                    self.metrics.connections_kicked.inc();
                    link.kick.cancel();
                }
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Offers a frame to one connection (an answer made outside its
    /// session, such as a long-poll's).
    pub fn answer(&self, link: &Link, frame: ServerFrame) {
        self.offer(link, Outbound::Frame(frame));
    }

    /// Offers `make()` to every connection of `key`; returns how many got it.
    pub fn deliver(&self, key: &DeviceKey, make: impl Fn() -> Outbound) -> usize {
        let inner = lock(&self.inner);
        let Some(list) = inner.devices.get(key) else {
            return 0;
        };
        list.iter().filter(|l| self.offer(l, make())).count()
    }

    /// The devices of `user` with a connection here.
    pub fn devices_of(&self, user: &UserId) -> Vec<DeviceId> {
        lock(&self.inner)
            .users
            .get(user)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every device with a connection here (for presence heartbeats).
    pub fn devices(&self) -> Vec<DeviceKey> {
        lock(&self.inner).devices.keys().cloned().collect()
    }

    /// Every connection here of `users`.
    pub fn of_users(&self, users: &[UserId]) -> Vec<Arc<Link>> {
        let inner = lock(&self.inner);
        inner
            .devices
            .iter()
            .filter(|(key, _)| users.contains(&key.user))
            .flat_map(|(_, list)| list.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(u: &str, d: &str) -> DeviceKey {
        DeviceKey {
            user: UserId::parse(u).unwrap(),
            device: DeviceId::parse(d).unwrap(),
        }
    }

    fn link(id: u64, key: DeviceKey, cap: usize) -> (Arc<Link>, crate::outbox::Reader) {
        let bounds = crate::outbox::Bounds {
            bytes: 1 << 20,
            frames: cap,
            priority: 1,
        };
        let (tx, priority, rx) = crate::outbox::outbox(bounds, Arc::new(Metrics::default()));
        let link = Link::new(id, key, tx, priority, CancellationToken::new());
        (Arc::new(link), rx)
    }

    #[test]
    fn per_user_limit_and_detach() {
        let registry = Registry::new(2, Arc::new(Metrics::default()));
        let (a, _ra) = link(1, key("al", "p"), 4);
        let (b, _rb) = link(2, key("al", "q"), 4);
        let (c, _rc) = link(3, key("al", "r"), 4);
        assert!(registry.attach(a).is_ok());
        assert!(registry.attach(b).is_ok());
        assert!(registry.attach(Arc::clone(&c)).is_err());
        assert!(registry.detach(&key("al", "p"), 1));
        assert!(registry.attach(c).is_ok());
        assert_eq!(registry.devices().len(), 2);
        let mut of_al = registry.devices_of(&UserId::parse("al").unwrap());
        of_al.sort();
        assert_eq!(
            of_al,
            vec![DeviceId::parse("q").unwrap(), DeviceId::parse("r").unwrap()]
        );
    }

    #[test]
    fn a_full_queue_kicks_the_connection() {
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(4, Arc::clone(&metrics));
        let (a, _ra) = link(1, key("al", "p"), 1);
        let kick = a.kick.clone();
        registry.attach(a).unwrap();
        let frame = || Outbound::Frame(ServerFrame::Pull { after: 1 });
        assert_eq!(registry.deliver(&key("al", "p"), frame), 1);
        assert_eq!(registry.deliver(&key("al", "p"), frame), 0);
        assert!(kick.is_cancelled());
        assert_eq!(metrics.connections_kicked.get(), 1);
        assert_eq!(registry.deliver(&key("bo", "p"), frame), 0);
    }
}
