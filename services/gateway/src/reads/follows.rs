//! Which connection follows which conversation (the set its last long-poll
//! named), and this gateway's registration as a follower in Presence, so
//! fanout sends the conversation's notices here.

use crate::metrics::Metrics;
use crate::registry::Link;
use seqline_core::ports::Presence;
use seqline_core::{ConversationId, GatewayId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::warn;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below leaves the index consistent at each step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct FollowEntry {
    /// Committed head as learned while followed.
    head: u64,
    /// Registered in Presence.
    registered: bool,
    links: HashMap<u64, Arc<Link>>,
}

/// The follow index: conversations to their followers and back.
#[derive(Default)]
struct Index {
    convs: HashMap<ConversationId, FollowEntry>,
    by_link: HashMap<u64, HashSet<ConversationId>>,
}

impl Index {
    fn learned(&mut self, conv: &ConversationId, head: u64) {
        if let Some(e) = self.convs.get_mut(conv) {
            if head > e.head {
                e.head = head;
                for l in e.links.values() {
                    l.wake.notify_one();
                }
            }
        }
    }

    fn head(&self, conv: &ConversationId) -> u64 {
        self.convs.get(conv).map_or(0, |e| e.head)
    }

    fn followers(&self, conv: &ConversationId) -> Vec<Arc<Link>> {
        self.convs
            .get(conv)
            .map(|e| e.links.values().cloned().collect())
            .unwrap_or_default()
    }

    fn mark_registered(&mut self, conv: &ConversationId) {
        if let Some(e) = self.convs.get_mut(conv) {
            e.registered = true;
        }
    }

    /// Removes link `id` from the conversations in `convs`; returns the ones
    /// nobody follows any more.
    fn leave<'a>(&mut self, id: u64, convs: impl IntoIterator<Item = &'a ConversationId>) -> Vec<ConversationId> {
        let mut withdraw = Vec::new();
        for conv in convs {
            if let Some(e) = self.convs.get_mut(conv) {
                e.links.remove(&id);
                if e.links.is_empty() {
                    self.convs.remove(conv);
                    withdraw.push(conv.clone());
                }
            }
        }
        withdraw
    }
}

/// The follows of one gateway: the index, and its registration in Presence.
pub(crate) struct Follows {
    index: Mutex<Index>,
    /// Orders Presence follow/unfollow calls with the index.
    presence_order: tokio::sync::Mutex<()>,
    presence: Arc<dyn Presence>,
    /// This gateway, as followers are registered in Presence.
    gateway: GatewayId,
    presence_ttl: Duration,
    metrics: Arc<Metrics>,
}

impl Follows {
    pub fn new(presence: Arc<dyn Presence>, gateway: GatewayId, presence_ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            index: Mutex::new(Index::default()),
            presence_order: tokio::sync::Mutex::new(()),
            presence,
            gateway,
            presence_ttl,
            metrics,
        }
    }

    /// Records a head learned now; wakes the polls of its followers when it
    /// is news to them.
    pub fn learned(&self, conv: &ConversationId, head: u64) {
        lock(&self.index).learned(conv, head);
    }

    /// The head learned while `conv` is followed (0 when it is not).
    pub fn head(&self, conv: &ConversationId) -> u64 {
        lock(&self.index).head(conv)
    }

    /// The connections here following `conv`.
    pub fn followers(&self, conv: &ConversationId) -> Vec<Arc<Link>> {
        lock(&self.index).followers(conv)
    }

    /// Conversations followed by some connection here.
    fn followed(&self) -> Vec<ConversationId> {
        lock(&self.index).convs.keys().cloned().collect()
    }

    fn count(&self) {
        self.metrics.follows.set(lock(&self.index).convs.len() as u64);
    }

    /// Makes `link` follow exactly `convs` (a poll names the full set), then
    /// registers in Presence the conversations not registered yet and
    /// withdraws the ones nobody here follows any more.
    pub async fn set(&self, link: &Arc<Link>, convs: &[ConversationId]) {
        let (register, withdraw) = {
            let mut f = lock(&self.index);
            if link.is_gone() {
                return;
            }
            let want: HashSet<ConversationId> = convs.iter().cloned().collect();
            let had = f.by_link.remove(&link.id).unwrap_or_default();
            let withdraw = f.leave(link.id, had.difference(&want));
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
        self.count();
        self.withdraw(withdraw).await;
        self.register(register).await;
    }

    async fn register(&self, convs: Vec<ConversationId>) {
        if convs.is_empty() {
            return;
        }
        let _order = self.presence_order.lock().await;
        for conv in convs {
            if !lock(&self.index).convs.contains_key(&conv) {
                continue;
            }
            match self.presence.follow(&conv, &self.gateway, self.presence_ttl).await {
                Ok(()) => lock(&self.index).mark_registered(&conv),
                Err(e) => warn!(error = %e, %conv, "registering a follow failed; the heartbeat retries"),
            }
        }
    }

    /// Withdraws this gateway's follows of `convs` from Presence, unless
    /// followed again meanwhile.
    pub async fn withdraw(&self, convs: Vec<ConversationId>) {
        if convs.is_empty() {
            return;
        }
        let _order = self.presence_order.lock().await;
        for conv in convs {
            if lock(&self.index).convs.contains_key(&conv) {
                continue; // followed again meanwhile
            }
            if let Err(e) = self.presence.unfollow(&conv, &self.gateway).await {
                warn!(error = %e, %conv, "withdrawing a follow failed; it expires by itself");
            }
        }
    }

    /// The connection is gone: it follows nothing any more.
    pub async fn drop_link(&self, link: &Link) {
        let withdraw = {
            let mut f = lock(&self.index);
            link.mark_gone();
            let had = f.by_link.remove(&link.id).unwrap_or_default();
            f.leave(link.id, &had)
        };
        self.count();
        self.withdraw(withdraw).await;
    }

    /// Refreshes the Presence entries of followed conversations (heartbeat).
    pub async fn refresh(&self) {
        for conv in self.followed() {
            match self.presence.follow(&conv, &self.gateway, self.presence_ttl).await {
                Ok(()) => lock(&self.index).mark_registered(&conv),
                Err(e) => {
                    warn!(error = %e, "refreshing follows failed");
                    break;
                }
            }
        }
    }

    /// Users who left `conv`: their connections here stop following it.
    /// True when nobody here follows it any more (withdraw it).
    pub fn unfollow_users(&self, conv: &ConversationId, users: &[UserId]) -> bool {
        let gone = {
            let mut f = lock(&self.index);
            let Some(e) = f.convs.get_mut(conv) else {
                return false;
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
        self.count();
        gone
    }
}
