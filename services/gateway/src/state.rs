//! What every task and handler of one gateway shares.

use crate::admission::Admission;
use crate::config::GatewayConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::peers::PeerCounts;
use crate::publisher::Publisher;
use crate::reads::{Links, Reads};
use crate::refusals::Refusals;
use crate::tail::TailCache;
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::records::Receipt;
use seqline_core::token::TokenKey;
use seqline_core::ClientMsgId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
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
    pub hub: Hub,
    pub publisher: Publisher,
    pub pending: Arc<Pending>,
    /// Read diffusion: the hot-tail cache and the follows.
    pub reads: Reads,
    /// Every authenticated connection, by id.
    pub links: Links,
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
        let hub = Hub::new(config.max_connections_per_user);
        let cache = TailCache::new(config.conv_cache_bytes, config.conv_cache_tail, config.conv_head_ttl);
        let reads = Reads::new(cache, config.conv_cache_tail);
        let peers = PeerCounts::new(config.max_connections_per_ip);
        let metrics = Arc::new(Metrics::default());
        let admission = Admission::new(config.max_delivery_lag, config.max_inflight_sends, Arc::clone(&metrics));
        Self {
            admission,
            reads,
            links: Links::default(),
            refusals: Refusals::default(),
            config,
            ports,
            key,
            metrics,
            hub,
            publisher,
            pending: Arc::new(Pending::new()),
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

struct Waiter {
    id: ClientMsgId,
    tx: oneshot::Sender<Receipt>,
}

/// HTTP requests waiting for their receipt, by gateway-local request id.
pub(crate) struct Pending {
    map: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
}

impl Pending {
    fn new() -> Self {
        // Start from the clock so ids of a restarted gateway do not meet
        // receipts still on its topic from before; receipts are also matched
        // by client id.
        let start = seqline_core::model::now_ms().saturating_mul(1000).max(1);
        Self {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(start),
        }
    }

    /// Registers a wait for the receipt of command `id`.
    pub fn register(self: &Arc<Self>, id: ClientMsgId) -> (PendingTicket, oneshot::Receiver<Receipt>) {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request, Waiter { id, tx });
        (
            PendingTicket {
                pending: Arc::clone(self),
                request,
            },
            rx,
        )
    }

    /// Hands `receipt` to its waiting request; false if none waits for it.
    pub fn complete(&self, receipt: Receipt) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&receipt.origin.request) {
            Some(w) if w.id == receipt.client_msg_id => {}
            _ => return false,
        }
        match map.remove(&receipt.origin.request) {
            Some(w) => w.tx.send(receipt).is_ok(),
            None => false,
        }
    }
}

/// A registered wait; dropping it forgets the request.
pub(crate) struct PendingTicket {
    pending: Arc<Pending>,
    /// The request id to put in `Origin::request`.
    pub request: u64,
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        self.pending
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request);
    }
}
