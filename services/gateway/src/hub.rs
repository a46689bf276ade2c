//! Which connections this gateway holds, by device, so receipts and packages
//! find their way to a socket. Each connection has a queue bounded in bytes
//! (`outbox`); a full queue means the client cannot keep up, and it is
//! disconnected with 1008 (it recovers by sync) rather than silently losing
//! frames.

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use seqline_core::protocol::ServerFrame;
use seqline_core::records::Package;
use seqline_core::{DeviceId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

/// Something for a connection to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A ready frame (ack, nack, error).
    Frame(ServerFrame),
    /// A package fragment for the connection's rectifier.
    Package(Package),
}

/// A user's device: the unit receipts and packages are addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DeviceKey {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
}

/// How the hub reaches one connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle {
    /// Gateway-local connection id.
    pub id: u64,
    /// The connection's outgoing queue.
    pub tx: Outbox,
    /// Cancelled to disconnect a connection that cannot keep up.
    pub kick: CancellationToken,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<DeviceKey, Vec<ConnHandle>>,
    per_user: HashMap<UserId, usize>,
    /// The devices of each user with a connection here.
    users: HashMap<UserId, HashSet<DeviceId>>,
}

/// The registry of authenticated connections.
pub(crate) struct Hub {
    inner: Mutex<Inner>,
    max_per_user: usize,
}

/// The user already has as many connections as allowed.
#[derive(Debug)]
pub(crate) struct TooManyConnections;

impl Hub {
    pub fn new(max_per_user: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_per_user,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every update is
        // a single insert or remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection of `key`, within the per-user limit.
    pub fn attach(&self, key: &DeviceKey, handle: ConnHandle) -> Result<(), TooManyConnections> {
        let mut inner = self.lock();
        let count = inner.per_user.entry(key.user.clone()).or_default();
        if *count >= self.max_per_user {
            return Err(TooManyConnections);
        }
        *count += 1;
        inner.devices.entry(key.clone()).or_default().push(handle);
        inner
            .users
            .entry(key.user.clone())
            .or_default()
            .insert(key.device.clone());
        Ok(())
    }

    /// Removes connection `id` of `key`; true if the device has no other
    /// connection here (so its presence entry should go).
    pub fn detach(&self, key: &DeviceKey, id: u64) -> bool {
        let mut inner = self.lock();
        let mut removed = false;
        let mut last = true;
        if let Some(list) = inner.devices.get_mut(key) {
            let before = list.len();
            list.retain(|h| h.id != id);
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

    /// Queues `make()` on every connection of `key`; returns how many got it.
    /// A connection whose queue is full is kicked.
    pub fn deliver(&self, key: &DeviceKey, metrics: &Metrics, make: impl Fn() -> Outbound) -> usize {
        let inner = self.lock();
        let Some(list) = inner.devices.get(key) else {
            return 0;
        };
        let mut delivered = 0;
        for h in list {
            match h.tx.try_send(make()) {
                Ok(()) => delivered += 1,
                Err(TrySendError::Full(_)) => {
                    if !h.kick.is_cancelled() {
                        metrics.connections_kicked.inc();
                        h.kick.cancel();
                    }
                }
                Err(TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// The devices of `user` with a connection here.
    pub fn devices_of(&self, user: &UserId) -> Vec<DeviceId> {
        self.lock()
            .users
            .get(user)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every device with a connection here (for presence heartbeats).
    pub fn devices(&self) -> Vec<DeviceKey> {
        self.lock().devices.keys().cloned().collect()
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

    fn handle(id: u64, cap: usize) -> (ConnHandle, crate::outbox::Reader) {
        let bounds = crate::outbox::Bounds {
            bytes: 1 << 20,
            frames: cap,
            priority: 1,
        };
        let (tx, _, rx) = crate::outbox::outbox(bounds, std::sync::Arc::new(Metrics::default()));
        (
            ConnHandle {
                id,
                tx,
                kick: CancellationToken::new(),
            },
            rx,
        )
    }

    #[test]
    fn per_user_limit_and_detach() {
        let hub = Hub::new(2);
        let (a, _ra) = handle(1, 4);
        let (b, _rb) = handle(2, 4);
        let (c, _rc) = handle(3, 4);
        assert!(hub.attach(&key("al", "p"), a).is_ok());
        assert!(hub.attach(&key("al", "q"), b).is_ok());
        assert!(hub.attach(&key("al", "r"), c.clone()).is_err());
        assert!(hub.detach(&key("al", "p"), 1));
        assert!(hub.attach(&key("al", "r"), c).is_ok());
        assert_eq!(hub.devices().len(), 2);
        let mut of_al = hub.devices_of(&UserId::parse("al").unwrap());
        of_al.sort();
        assert_eq!(
            of_al,
            vec![DeviceId::parse("q").unwrap(), DeviceId::parse("r").unwrap()]
        );
    }

    #[test]
    fn a_full_queue_kicks_the_connection() {
        let hub = Hub::new(4);
        let metrics = Metrics::default();
        let (a, _ra) = handle(1, 1);
        let kick = a.kick.clone();
        hub.attach(&key("al", "p"), a).unwrap();
        let frame = || Outbound::Frame(ServerFrame::Pull { after: 1 });
        assert_eq!(hub.deliver(&key("al", "p"), &metrics, frame), 1);
        assert_eq!(hub.deliver(&key("al", "p"), &metrics, frame), 0);
        assert!(kick.is_cancelled());
        assert_eq!(metrics.connections_kicked.get(), 1);
        assert_eq!(hub.deliver(&key("bo", "p"), &metrics, frame), 0);
    }
}
