//! What every task and handler of one gateway shares.

use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::edge::peers::PeerCounts;
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::reads::tail::TailCache;
use crate::reads::{Follows, Reads};
use crate::refusals::Refusals;
use crate::registry::Registry;
use crate::waiters::ReceiptWaiters;
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::token::TokenKey;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The ports the gateway uses.
#[derive(Clone)]
pub struct Ports {
    /// Commands go out on `inbound`; receipts and packages come in on `gw.<id>`.
    pub log: Arc<dyn Log>,
    /// The read path: timelines, history, membership, cursors.
    pub store: Arc<dyn Store>,
    /// Where each connected device is.
    pub presence: Arc<dyn Presence>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports { .. }")
    }
}

pub(crate) struct Shared {
    pub config: GatewayConfig,
    /// Admission control (bounded work in flight).
    pub admission: Admission,
    pub ports: Ports,
    pub key: TokenKey,
    pub metrics: Arc<Metrics>,
    /// Every authenticated connection, by device.
    pub registry: Registry,
    pub publisher: Publisher,
    /// HTTP requests waiting for their receipt.
    pub receipt_waiters: Arc<ReceiptWaiters>,
    /// Read diffusion: the hot-tail cache, the coalesced reads, the follows.
    pub reads: Arc<Reads>,
    /// Sends refused for good before sequencing, per device.
    pub refusals: Refusals,
    /// Set once the receipt consumer has joined its group.
    pub ready: AtomicBool,
    /// Cancelled when the gateway stops (asked to, or a task failed).
    pub stop: CancellationToken,
    /// Connections and background tasks, awaited on shutdown.
    pub tracker: TaskTracker,
    open: AtomicUsize,
    /// Open connections per client address (`max_connections_per_ip`).
    peers: PeerCounts,
    next_conn: AtomicU64,
}

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The gateway holds `max_connections`.
    Gateway,
    /// The client's address holds `max_connections_per_ip`.
    Address,
}

impl Shared {
    pub fn new(config: GatewayConfig, ports: Ports, publisher: Publisher, stop: CancellationToken) -> Self {
        let key = TokenKey::new(config.token_secret.as_bytes());
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(config.max_connections_per_user, Arc::clone(&metrics));
        let cache = TailCache::new(config.conv_cache_bytes, config.conv_cache_tail, config.conv_head_ttl);
        let follows = Follows::new(
            Arc::clone(&ports.presence),
            config.id.clone(),
            config.presence_ttl,
            Arc::clone(&metrics),
        );
        let reads = Reads::new(
            cache,
            config.conv_cache_tail,
            Arc::clone(&ports.store),
            follows,
            Arc::clone(&metrics),
        );
        let reads = Arc::new(reads);
        let peers = PeerCounts::new(config.max_connections_per_ip);
        let admission = Admission::new(config.max_delivery_lag, config.max_inflight_sends, Arc::clone(&metrics));
        Self {
            admission,
            reads,
            refusals: Refusals::default(),
            config,
            ports,
            key,
            metrics,
            registry,
            publisher,
            receipt_waiters: Arc::new(ReceiptWaiters::new()),
            ready: AtomicBool::new(false),
            stop,
            tracker: TaskTracker::new(),
            open: AtomicUsize::new(0),
            peers,
            next_conn: AtomicU64::new(1),
        }
    }

    /// Takes one of the `max_connections` slots for a client at `ip`, if
    /// one is free and the address is under `max_connections_per_ip`.
    pub fn take_slot(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, NoSlot> {
        let peer = self.peers.try_take(ip).map_err(|()| NoSlot::Address)?;
        let max = self.config.max_connections;
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            if let Some(key) = peer {
                self.peers.release(key);
            }
            return Err(NoSlot::Gateway);
        }
        self.metrics.connections_open.inc();
        self.metrics.connections_total.inc();
        Ok(Slot {
            shared: Arc::clone(self),
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            peer,
        })
    }
}

/// A connection slot; released on drop.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    /// Gateway-local connection id.
    pub id: u64,
    /// The address the connection is counted under, when addresses are capped.
    peer: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.peer {
            self.shared.peers.release(key);
        }
        self.shared.metrics.connections_open.dec();
    }
}
