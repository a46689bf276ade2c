//! [`Reads`]: pages of a conversation from the hot-tail cache while it has
//! them, else from the store, each distinct read in flight once (a page
//! extending the tail, a cold page, a head); heads learned here wake the
//! followers' long-polls.

use super::flight::SingleFlight;
use super::follows::Follows;
use super::tail::{Lookup, TailCache};
use crate::metrics::Metrics;
use crate::registry::Link;
use seqline_core::model::Message;
use seqline_core::ports::Store;
use seqline_core::{ConvSeq, ConversationId};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The cache stays consistent: every update is one call on it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A store failure shared by every caller of a coalesced read.
pub(crate) type StoreError = Arc<seqline_core::Error>;

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

/// The read-diffusion state of one gateway.
pub(crate) struct Reads {
    cache: Mutex<TailCache>,
    pages: SingleFlight<PageKey, Result<Arc<Vec<Message>>, StoreError>>,
    heads: SingleFlight<ConversationId, Result<Option<u64>, StoreError>>,
    /// Which connection follows which conversation.
    pub follows: Follows,
    per_conv: usize,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Reads {
    pub fn new(
        cache: TailCache,
        per_conv: usize,
        store: Arc<dyn Store>,
        follows: Follows,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache: Mutex::new(cache),
            pages: SingleFlight::new(),
            heads: SingleFlight::new(),
            follows,
            per_conv,
            store,
            metrics,
        }
    }

    /// Records a head learned now; wakes the polls of its followers when it
    /// is news to them.
    pub fn learned(&self, conv: &ConversationId, head: u64) {
        self.follows.learned(conv, head);
    }

    /// The head of `conv` as known on this gateway (0 when unknown).
    pub fn known_head(&self, conv: &ConversationId) -> u64 {
        let followed = self.follows.head(conv);
        followed.max(lock(&self.cache).known_head(conv))
    }

    /// A notice from fanout: records the head (and the message sent in
    /// full, if any) and wakes polls; returns the connections following
    /// `conv`, to push the notice to.
    pub fn noticed(&self, conv: &ConversationId, head: u64, message: Option<&Message>) -> Vec<Arc<Link>> {
        {
            let mut cache = lock(&self.cache);
            cache.set_head(conv, head, Instant::now());
            if let Some(m) = message.filter(|m| &m.conv == conv) {
                cache.offer(m);
            }
        }
        self.update_gauges();
        self.learned(conv, head);
        self.follows.followers(conv)
    }

    fn update_gauges(&self) {
        let cache = lock(&self.cache);
        self.metrics.conv_cache_bytes.set(cache.bytes() as u64);
        self.metrics.conv_cache_evictions.set(cache.evictions());
    }

    /// Reads the committed head of `conv` from the store (coalesced with
    /// concurrent reads of it) and records it.
    pub async fn read_head(self: &Arc<Self>, conv: &ConversationId) -> Result<Option<u64>, StoreError> {
        let s = Arc::clone(self);
        let c = conv.clone();
        let (head, joined) = self
            .heads
            .run(conv.clone(), move || async move {
                s.metrics.conv_head_reads.inc();
                let head = s.store.conversation_head(&c).await.map_err(Arc::new)?;
                if let Some(h) = head {
                    lock(&s.cache).set_head(&c, h.0, Instant::now());
                    s.learned(&c, h.0);
                    s.update_gauges();
                }
                Ok(head.map(|h| h.0))
            })
            .await;
        if joined {
            self.metrics.conv_reads_coalesced.inc();
        }
        head
    }

    /// The head of `conv`: from memory while fresh, else from the store.
    pub async fn head(self: &Arc<Self>, conv: &ConversationId) -> Result<Option<u64>, StoreError> {
        let fresh = lock(&self.cache).fresh_head(conv, Instant::now());
        match fresh {
            Some(h) => Ok(Some(h)),
            None => self.read_head(conv).await,
        }
    }

    /// Reads `limit` messages after `after` (coalesced under `key`) and keeps
    /// them in the cache.
    async fn fetch(
        self: &Arc<Self>,
        key: PageKey,
        conv: &ConversationId,
        after: u64,
        limit: usize,
    ) -> Result<Arc<Vec<Message>>, StoreError> {
        let s = Arc::clone(self);
        let c = conv.clone();
        let (page, joined) = self
            .pages
            .run(key, move || async move {
                s.metrics.conv_store_reads.inc();
                let messages = s
                    .store
                    .messages_after(&c, ConvSeq(after), limit)
                    .await
                    .map_err(Arc::new)?;
                let advanced = lock(&s.cache).merge(&c, &messages);
                if advanced {
                    let head = s.known_head(&c);
                    s.learned(&c, head);
                }
                s.update_gauges();
                Ok(Arc::new(messages))
            })
            .await;
        if joined {
            self.metrics.conv_reads_coalesced.inc();
        }
        page
    }

    /// A page of `conv` after `after`: up to `limit` messages (contiguous
    /// from `after + 1`), the committed head, and whether more follow.
    pub async fn page(
        self: &Arc<Self>,
        conv: &ConversationId,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Message>, u64, bool), PageError> {
        let mut read_anything = false;
        let mut head_checked = false;
        for _ in 0..4 {
            let look = lock(&self.cache).lookup(conv, after, limit, Instant::now());
            match look {
                Lookup::Page { messages, head, more } => {
                    if !read_anything {
                        self.metrics.conv_cache_hits.inc();
                    }
                    return Ok((messages, head, more));
                }
                Lookup::NeedHead => {
                    read_anything = true;
                    head_checked = true;
                    if self.read_head(conv).await.map_err(PageError::Store)?.is_none() {
                        return Err(PageError::Missing);
                    }
                }
                Lookup::Beyond { head } => {
                    if head_checked {
                        return Err(PageError::Beyond(head));
                    }
                    read_anything = true;
                    head_checked = true;
                    if self.read_head(conv).await.map_err(PageError::Store)?.is_none() {
                        return Err(PageError::Missing);
                    }
                }
                Lookup::Extend { from } => {
                    read_anything = true;
                    let key = PageKey::Extend(conv.clone(), from);
                    let got = self
                        .fetch(key, conv, from, self.per_conv)
                        .await
                        .map_err(PageError::Store)?;
                    if got.is_empty() {
                        // The store has nothing past `from` yet: answer with what it has.
                        return Ok(self.cold_page(conv, after, limit, &[]));
                    }
                }
                Lookup::Cold => {
                    let key = PageKey::Range(conv.clone(), after, limit);
                    let got = self.fetch(key, conv, after, limit).await.map_err(PageError::Store)?;
                    return Ok(self.cold_page(conv, after, limit, &got));
                }
            }
        }
        // The cache kept moving under us: read this page directly.
        let key = PageKey::Range(conv.clone(), after, limit);
        let got = self.fetch(key, conv, after, limit).await.map_err(PageError::Store)?;
        Ok(self.cold_page(conv, after, limit, &got))
    }

    /// Cuts a page of `conv` after `after` right after a switch back to
    /// write mode: a message with `read_diffusion: false` whose predecessor
    /// was in read mode is the boundary, and every later message reaches the
    /// members' timelines, so only the boundary may arrive both ways.
    pub async fn stop_at_switch(
        self: &Arc<Self>,
        conv: &ConversationId,
        after: u64,
        messages: &mut Vec<Message>,
    ) -> Result<(), PageError> {
        let mut read_before = match messages.first() {
            // Only a page starting in write mode needs the mode before it.
            Some(m) if !m.read_diffusion && after > 0 => {
                let (before, _, _) = self.page(conv, after - 1, 1).await?;
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

    fn cold_page(&self, conv: &ConversationId, after: u64, limit: usize, got: &[Message]) -> (Vec<Message>, u64, bool) {
        let messages: Vec<Message> = got
            .iter()
            .take(limit)
            .enumerate()
            .take_while(|(i, m)| m.conv_seq.0 == after + 1 + *i as u64)
            .map(|(_, m)| m.clone())
            .collect();
        let last = messages.last().map_or(after, |m| m.conv_seq.0);
        let head = self.known_head(conv).max(last);
        (messages, head, last < head)
    }
}
