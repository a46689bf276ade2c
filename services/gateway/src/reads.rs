//! Read diffusion on one gateway: pages of conversations served from the
//! hot-tail cache with concurrent identical store reads coalesced, the index
//! of which connection follows which conversation (with its registration in
//! Presence), and the handling of notices and read marks from the gateway's
//! topic.

use crate::hub::{DeviceKey, Outbound};
use crate::outbox::{Outbox, PriorityLane};
use crate::state::Shared;
use crate::tail::{Lookup, TailCache};
use futures_util::future::{BoxFuture, FutureExt, Shared as SharedFuture};
use seqline_core::model::{Message, MessageKind};
use seqline_core::protocol::ServerFrame;
use seqline_core::records::{Notice, ReadMark};
use seqline_core::{ConvSeq, ConversationId, UserId};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below leaves the maps consistent at each step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A store failure shared by every caller of a coalesced read.
pub(crate) type StoreError = Arc<seqline_core::Error>;

type Flight<V> = SharedFuture<BoxFuture<'static, V>>;

/// Runs at most one computation per key at a time; callers of a key that is
/// in flight wait for its result instead of starting their own.
pub(crate) struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The result of `work` for `key`, and whether this call joined one
    /// already in flight. The key is released when the work is done (after
    /// whatever the work itself records), even if the caller that started
    /// it went away: any waiter drives it.
    async fn run<F>(&self, key: K, work: impl FnOnce() -> F) -> (V, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, joined) = {
            let mut map = lock(&self.flights);
            match map.get(&key) {
                Some(f) => (f.clone(), true),
                None => {
                    let flights = Arc::clone(&self.flights);
                    let k = key.clone();
                    let work = work();
                    let f = async move {
                        let v = work.await;
                        lock(&flights).remove(&k);
                        v
                    }
                    .boxed()
                    .shared();
                    map.insert(key, f.clone());
                    (f, false)
                }
            }
        };
        (flight.await, joined)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum PageKey {
    /// Extending the hot tail of a conversation from a conv_seq.
    Extend(ConversationId, u64),
    /// A cold page: (conv, after, limit).
    Range(ConversationId, u64, usize),
}

/// Why a page could not be served.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The conversation does not exist.
    Missing,
    /// `after` is beyond the committed head (given).
    Beyond(u64),
    /// The store failed.
    Store(StoreError),
}

/// What a connection shares with the follow index and its long-poll.
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
    pub verified: Mutex<HashMap<ConversationId, u64>>,
    /// Set when the connection is gone: it follows nothing any more.
    closed: AtomicBool,
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
            closed: AtomicBool::new(false),
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

    /// Queues a frame on the ordinary queue; a full queue kicks the
    /// connection (it recovers by pulling), like any other push.
    pub fn answer(&self, shared: &Shared, frame: ServerFrame) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Outbound::Frame(frame)) {
            if !self.kick.is_cancelled() {
                shared.metrics.connections_kicked.inc();
                self.kick.cancel();
            }
        }
    }
}

#[derive(Default)]
struct FollowEntry {
    /// Committed head as learned while followed.
    head: u64,
    /// Registered in Presence.
    registered: bool,
    links: HashMap<u64, Arc<Link>>,
}

#[derive(Default)]
struct Follows {
    convs: HashMap<ConversationId, FollowEntry>,
    by_link: HashMap<u64, HashSet<ConversationId>>,
}

/// The read-diffusion state of one gateway.
pub(crate) struct Reads {
    cache: Mutex<TailCache>,
    pages: SingleFlight<PageKey, Result<Arc<Vec<Message>>, StoreError>>,
    heads: SingleFlight<ConversationId, Result<Option<u64>, StoreError>>,
    follows: Mutex<Follows>,
    /// Orders Presence follow/unfollow calls with the index.
    registry: tokio::sync::Mutex<()>,
    per_conv: usize,
}

impl Reads {
    pub fn new(cache: TailCache, per_conv: usize) -> Self {
        Self {
            cache: Mutex::new(cache),
            pages: SingleFlight::new(),
            heads: SingleFlight::new(),
            follows: Mutex::new(Follows::default()),
            registry: tokio::sync::Mutex::new(()),
            per_conv,
        }
    }

    /// Records a head learned now; wakes the polls of its followers when it
    /// is news to them.
    pub fn learned(&self, conv: &ConversationId, head: u64) {
        let mut follows = lock(&self.follows);
        if let Some(e) = follows.convs.get_mut(conv) {
            if head > e.head {
                e.head = head;
                for l in e.links.values() {
                    l.wake.notify_one();
                }
            }
        }
    }

    /// The head of `conv` as known on this gateway (0 when unknown).
    pub fn known_head(&self, conv: &ConversationId) -> u64 {
        let followed = lock(&self.follows).convs.get(conv).map_or(0, |e| e.head);
        followed.max(lock(&self.cache).known_head(conv))
    }

    /// Conversations followed by some connection here.
    pub fn followed(&self) -> Vec<ConversationId> {
        lock(&self.follows).convs.keys().cloned().collect()
    }

    fn update_gauges(&self, shared: &Shared) {
        let cache = lock(&self.cache);
        shared.metrics.conv_cache_bytes.set(cache.bytes() as u64);
        shared.metrics.conv_cache_evictions.set(cache.evictions());
    }
}

/// Reads the committed head of `conv` from the store (coalesced with
/// concurrent reads of it) and records it.
pub(crate) async fn read_head(shared: &Arc<Shared>, conv: &ConversationId) -> Result<Option<u64>, StoreError> {
    let s = Arc::clone(shared);
    let c = conv.clone();
    let (head, joined) = shared
        .reads
        .heads
        .run(conv.clone(), move || async move {
            s.metrics.conv_head_reads.inc();
            let head = s.ports.store.conversation_head(&c).await.map_err(Arc::new)?;
            if let Some(h) = head {
                lock(&s.reads.cache).set_head(&c, h.0, Instant::now());
                s.reads.learned(&c, h.0);
                s.reads.update_gauges(&s);
            }
            Ok(head.map(|h| h.0))
        })
        .await;
    if joined {
        shared.metrics.conv_reads_coalesced.inc();
    }
    head
}

/// The head of `conv`: from memory while fresh, else from the store.
pub(crate) async fn head(shared: &Arc<Shared>, conv: &ConversationId) -> Result<Option<u64>, StoreError> {
    let fresh = lock(&shared.reads.cache).fresh_head(conv, Instant::now());
    match fresh {
        Some(h) => Ok(Some(h)),
        None => read_head(shared, conv).await,
    }
}

/// Reads `limit` messages after `after` (coalesced under `key`) and keeps
/// them in the cache.
async fn fetch(
    shared: &Arc<Shared>,
    key: PageKey,
    conv: &ConversationId,
    after: u64,
    limit: usize,
) -> Result<Arc<Vec<Message>>, StoreError> {
    let s = Arc::clone(shared);
    let c = conv.clone();
    let (page, joined) = shared
        .reads
        .pages
        .run(key, move || async move {
            s.metrics.conv_store_reads.inc();
            let messages = s
                .ports
                .store
                .messages_after(&c, ConvSeq(after), limit)
                .await
                .map_err(Arc::new)?;
            let advanced = lock(&s.reads.cache).merge(&c, &messages);
            if advanced {
                let head = s.reads.known_head(&c);
                s.reads.learned(&c, head);
            }
            s.reads.update_gauges(&s);
            Ok(Arc::new(messages))
        })
        .await;
    if joined {
        shared.metrics.conv_reads_coalesced.inc();
    }
    page
}

/// A page of `conv` after `after`: up to `limit` messages (contiguous from
/// `after + 1`), the committed head, and whether more follow.
pub(crate) async fn page(
    shared: &Arc<Shared>,
    conv: &ConversationId,
    after: u64,
    limit: usize,
) -> Result<(Vec<Message>, u64, bool), PageError> {
    let mut read_anything = false;
    let mut head_checked = false;
    for _ in 0..4 {
        let look = lock(&shared.reads.cache).lookup(conv, after, limit, Instant::now());
        match look {
            Lookup::Page { messages, head, more } => {
                if !read_anything {
                    shared.metrics.conv_cache_hits.inc();
                }
                return Ok((messages, head, more));
            }
            Lookup::NeedHead => {
                read_anything = true;
                head_checked = true;
                if read_head(shared, conv).await.map_err(PageError::Store)?.is_none() {
                    return Err(PageError::Missing);
                }
            }
            Lookup::Beyond { head } => {
                if head_checked {
                    return Err(PageError::Beyond(head));
                }
                read_anything = true;
                head_checked = true;
                if read_head(shared, conv).await.map_err(PageError::Store)?.is_none() {
                    return Err(PageError::Missing);
                }
            }
            Lookup::Extend { from } => {
                read_anything = true;
                let key = PageKey::Extend(conv.clone(), from);
                let per_conv = shared.reads.per_conv;
                let got = fetch(shared, key, conv, from, per_conv)
                    .await
                    .map_err(PageError::Store)?;
                if got.is_empty() {
                    // The store has nothing past `from` yet: answer with what it has.
                    return Ok(cold_page(shared, conv, after, limit, &[]));
                }
            }
            Lookup::Cold => {
                let key = PageKey::Range(conv.clone(), after, limit);
                let got = fetch(shared, key, conv, after, limit).await.map_err(PageError::Store)?;
                return Ok(cold_page(shared, conv, after, limit, &got));
            }
        }
    }
    // The cache kept moving under us: read this page directly.
    let key = PageKey::Range(conv.clone(), after, limit);
    let got = fetch(shared, key, conv, after, limit).await.map_err(PageError::Store)?;
    Ok(cold_page(shared, conv, after, limit, &got))
}

/// Cuts a page of `conv` after `after` right after a switch back to write
/// mode: a message with `read_diffusion: false` whose predecessor was in
/// read mode is the boundary, and every later message reaches the members'
/// timelines, so only the boundary may arrive both ways.
pub(crate) async fn stop_at_switch(
    shared: &Arc<Shared>,
    conv: &ConversationId,
    after: u64,
    messages: &mut Vec<Message>,
) -> Result<(), PageError> {
    let mut read_before = match messages.first() {
        // Only a page starting in write mode needs the mode before it.
        Some(m) if !m.read_diffusion && after > 0 => {
            let (before, _, _) = page(shared, conv, after - 1, 1).await?;
            before
                .first()
                .is_some_and(|m| m.conv_seq.0 == after && m.read_diffusion)
        }
        _ => false,
    };
    let boundary = messages.iter().position(|m| {
        let switched = read_before && !m.read_diffusion;
        read_before = m.read_diffusion;
        switched
    });
    if let Some(i) = boundary {
        messages.truncate(i + 1);
    }
    Ok(())
}

fn cold_page(
    shared: &Shared,
    conv: &ConversationId,
    after: u64,
    limit: usize,
    got: &[Message],
) -> (Vec<Message>, u64, bool) {
    let messages: Vec<Message> = got
        .iter()
        .take(limit)
        .enumerate()
        .take_while(|(i, m)| m.conv_seq.0 == after + 1 + *i as u64)
        .map(|(_, m)| m.clone())
        .collect();
    let last = messages.last().map_or(after, |m| m.conv_seq.0);
    let head = shared.reads.known_head(conv).max(last);
    (messages, head, last < head)
}

/// Makes `link` follow exactly `convs` (a poll names the full set), then
/// registers in Presence the conversations not registered yet and withdraws
/// the ones nobody here follows any more.
pub(crate) async fn set_follows(shared: &Arc<Shared>, link: &Arc<Link>, convs: &[ConversationId]) {
    let (register, withdraw) = {
        let mut f = lock(&shared.reads.follows);
        if link.closed.load(Ordering::Acquire) {
            return;
        }
        let want: HashSet<ConversationId> = convs.iter().cloned().collect();
        let had = f.by_link.remove(&link.id).unwrap_or_default();
        let mut withdraw = Vec::new();
        for conv in had.difference(&want) {
            if let Some(e) = f.convs.get_mut(conv) {
                e.links.remove(&link.id);
                if e.links.is_empty() {
                    f.convs.remove(conv);
                    withdraw.push(conv.clone());
                }
            }
        }
        let mut register = Vec::new();
        for conv in &want {
            let e = f.convs.entry(conv.clone()).or_default();
            e.links.insert(link.id, Arc::clone(link));
            if !e.registered {
                register.push(conv.clone());
            }
        }
        if !want.is_empty() {
            f.by_link.insert(link.id, want);
        }
        (register, withdraw)
    };
    shared
        .metrics
        .follows
        .set(lock(&shared.reads.follows).convs.len() as u64);
    withdraw_follows(shared, withdraw).await;
    register_follows(shared, register).await;
}

async fn register_follows(shared: &Shared, convs: Vec<ConversationId>) {
    if convs.is_empty() {
        return;
    }
    let _order = shared.reads.registry.lock().await;
    let c = &shared.config;
    for conv in convs {
        if !lock(&shared.reads.follows).convs.contains_key(&conv) {
            continue;
        }
        match shared.ports.presence.follow(&conv, &c.id, c.presence_ttl).await {
            Ok(()) => {
                if let Some(e) = lock(&shared.reads.follows).convs.get_mut(&conv) {
                    e.registered = true;
                }
            }
            Err(e) => warn!(error = %e, %conv, "registering a follow failed; the heartbeat retries"),
        }
    }
}

async fn withdraw_follows(shared: &Shared, convs: Vec<ConversationId>) {
    if convs.is_empty() {
        return;
    }
    let _order = shared.reads.registry.lock().await;
    for conv in convs {
        if lock(&shared.reads.follows).convs.contains_key(&conv) {
            continue; // followed again meanwhile
        }
        if let Err(e) = shared.ports.presence.unfollow(&conv, &shared.config.id).await {
            warn!(error = %e, %conv, "withdrawing a follow failed; it expires by itself");
        }
    }
}

/// The connection is gone: it follows nothing any more.
pub(crate) async fn drop_link(shared: &Arc<Shared>, link: &Link) {
    let withdraw = {
        let mut f = lock(&shared.reads.follows);
        link.closed.store(true, Ordering::Release);
        let had = f.by_link.remove(&link.id).unwrap_or_default();
        let mut withdraw = Vec::new();
        for conv in had {
            if let Some(e) = f.convs.get_mut(&conv) {
                e.links.remove(&link.id);
                if e.links.is_empty() {
                    f.convs.remove(&conv);
                    withdraw.push(conv);
                }
            }
        }
        withdraw
    };
    shared
        .metrics
        .follows
        .set(lock(&shared.reads.follows).convs.len() as u64);
    withdraw_follows(shared, withdraw).await;
}

/// Refreshes the Presence entries of followed conversations (heartbeat).
pub(crate) async fn refresh_follows(shared: &Shared) {
    let c = &shared.config;
    for conv in shared.reads.followed() {
        match shared.ports.presence.follow(&conv, &c.id, c.presence_ttl).await {
            Ok(()) => {
                if let Some(e) = lock(&shared.reads.follows).convs.get_mut(&conv) {
                    e.registered = true;
                }
            }
            Err(e) => {
                warn!(error = %e, "refreshing follows failed");
                break;
            }
        }
    }
}

/// A notice from fanout: record the head, wake polls, push `notice` (or
/// `priority` for a message sent in full) to the following connections.
pub(crate) fn notice(shared: &Arc<Shared>, n: Notice) {
    let reads = &shared.reads;
    {
        let mut cache = lock(&reads.cache);
        cache.set_head(&n.conv, n.head.0, Instant::now());
        if let Some(m) = n.message.as_ref().filter(|m| m.conv == n.conv) {
            cache.offer(m);
        }
    }
    reads.update_gauges(shared);
    reads.learned(&n.conv, n.head.0);
    let links: Vec<Arc<Link>> = lock(&reads.follows)
        .convs
        .get(&n.conv)
        .map(|e| e.links.values().cloned().collect())
        .unwrap_or_default();
    let m = &shared.metrics;
    match n.message {
        Some(message) => {
            let left: Vec<UserId> = if message.kind == MessageKind::Left {
                message.members.clone()
            } else {
                Vec::new()
            };
            for l in &links {
                match l.priority.try_send(ServerFrame::Priority {
                    message: message.clone(),
                }) {
                    Ok(()) => m.priority_pushed.inc(),
                    Err(TrySendError::Full(_)) => m.priority_dropped.inc(),
                    Err(TrySendError::Closed(_)) => {}
                }
            }
            if !left.is_empty() {
                drop_users(shared, &n.conv, &left);
            }
        }
        None => {
            for l in &links {
                let frame = ServerFrame::Notice {
                    conv: n.conv.clone(),
                    head: n.head.0,
                };
                match l.tx.try_send(Outbound::Frame(frame)) {
                    Ok(()) => m.notices_pushed.inc(),
                    Err(TrySendError::Full(_)) => m.notices_dropped.inc(),
                    Err(TrySendError::Closed(_)) => {}
                }
            }
        }
    }
}

/// Users who left `conv`: their connections here stop following it and
/// must prove membership again.
fn drop_users(shared: &Arc<Shared>, conv: &ConversationId, users: &[UserId]) {
    let gone = {
        let mut f = lock(&shared.reads.follows);
        let Some(e) = f.convs.get_mut(conv) else {
            drop(f);
            forget_verified(shared, conv, users);
            return;
        };
        let dropped: Vec<u64> = e
            .links
            .iter()
            .filter(|(_, l)| users.contains(&l.key.user))
            .map(|(id, _)| *id)
            .collect();
        for id in &dropped {
            e.links.remove(id);
        }
        let empty = e.links.is_empty();
        if empty {
            f.convs.remove(conv);
        }
        for id in &dropped {
            if let Some(set) = f.by_link.get_mut(id) {
                set.remove(conv);
                if set.is_empty() {
                    f.by_link.remove(id);
                }
            }
        }
        empty
    };
    forget_verified(shared, conv, users);
    shared
        .metrics
        .follows
        .set(lock(&shared.reads.follows).convs.len() as u64);
    if gone {
        let s = Arc::clone(shared);
        let conv = conv.clone();
        shared
            .tracker
            .spawn(async move { withdraw_follows(&s, vec![conv]).await });
    }
}

/// Every connection here of `users` forgets that it verified `conv`, and
/// its long-poll looks again: the window it waits in may have closed.
fn forget_verified(shared: &Shared, conv: &ConversationId, users: &[UserId]) {
    for l in shared.links.of_users(users) {
        lock(&l.verified).remove(conv);
        l.wake.notify_one();
    }
}

/// A read mark for this gateway: tell the user's other devices here.
pub(crate) fn read_mark(shared: &Shared, r: ReadMark) {
    let frame = ServerFrame::ReadMark {
        conv: r.conv.clone(),
        conv_seq: r.conv_seq.0,
    };
    let mut delivered = 0;
    for device in shared.hub.devices_of(&r.user) {
        if device == r.device {
            continue;
        }
        let key = DeviceKey {
            user: r.user.clone(),
            device,
        };
        delivered += shared
            .hub
            .deliver(&key, &shared.metrics, || Outbound::Frame(frame.clone()));
    }
    shared.metrics.read_marks_pushed.add(delivered as u64);
}

/// Connections by id, for what must reach every connection of a user.
#[derive(Default)]
pub(crate) struct Links {
    map: Mutex<HashMap<u64, Arc<Link>>>,
}

impl Links {
    pub fn insert(&self, link: Arc<Link>) {
        lock(&self.map).insert(link.id, link);
    }

    pub fn remove(&self, id: u64) {
        lock(&self.map).remove(&id);
    }

    fn of_users(&self, users: &[UserId]) -> Vec<Arc<Link>> {
        lock(&self.map)
            .values()
            .filter(|l| users.contains(&l.key.user))
            .cloned()
            .collect()
    }
}
