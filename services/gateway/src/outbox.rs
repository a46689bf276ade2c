//! A connection's outgoing queue, bounded in bytes: what the registry, the
//! publisher and the read path hand to one connection, waiting to be
//! written. Two lanes share one budget: priority frames (dropped when
//! theirs is full) go out before ordinary ones (a full queue means the
//! client cannot keep up; the caller kicks it).
//!
//! Cheap when idle: one small allocation per connection, no slots
//! preallocated (a queue grows when frames wait and gives its memory back
//! once drained), one wake-up primitive for both lanes.

use crate::metrics::Metrics;
use seqline_core::model::Message;
use seqline_core::protocol::ServerFrame;
use seqline_core::records::Package;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

/// Something for a connection to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A ready frame (ack, nack, error).
    Frame(ServerFrame),
    /// A package fragment for the connection's rectifier.
    Package(Package),
}

/// Queue capacity kept after draining; more is given back.
const KEEP_SLOTS: usize = 4;

/// The bounds of one connection's queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Bytes (estimated, of memory held) queued over both lanes. A frame is
    /// always accepted into an empty queue, so one larger than the budget
    /// still goes out alone.
    pub bytes: usize,
    /// Ordinary frames queued.
    pub frames: usize,
    /// Priority frames queued.
    pub priority: usize,
}

#[derive(Default)]
struct Lanes {
    ordinary: VecDeque<(Outbound, usize)>,
    priority: VecDeque<(ServerFrame, usize)>,
    bytes: usize,
    /// The connection is gone: nothing more is queued.
    closed: bool,
}

struct Inner {
    lanes: Mutex<Lanes>,
    ready: Notify,
    bounds: Bounds,
    metrics: Arc<Metrics>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // Every update leaves the lanes consistent.
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `size` more bytes fit (anything fits an empty queue).
    fn fits(&self, lanes: &Lanes, size: usize) -> bool {
        lanes.bytes == 0 || lanes.bytes.saturating_add(size) <= self.bounds.bytes
    }
}

/// Queues ordinary frames on one connection.
#[derive(Clone)]
pub(crate) struct Outbox(Arc<Inner>);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lanes = self.0.lock();
        f.debug_struct("Outbox")
            .field("ordinary", &lanes.ordinary.len())
            .field("priority", &lanes.priority.len())
            .field("bytes", &lanes.bytes)
            .finish()
    }
}

/// Queues priority frames on one connection, ahead of the ordinary ones.
#[derive(Clone)]
pub(crate) struct PriorityLane(Arc<Inner>);

/// The connection's end: takes frames out, priority first. Dropping it
/// closes the queue and frees what was still waiting.
pub(crate) struct Reader(Arc<Inner>);

/// What the connection writes next.
pub(crate) enum Next {
    Priority(ServerFrame),
    Ordinary(Outbound),
}

/// A new, empty queue.
pub(crate) fn outbox(bounds: Bounds, metrics: Arc<Metrics>) -> (Outbox, PriorityLane, Reader) {
    let inner = Arc::new(Inner {
        lanes: Mutex::new(Lanes::default()),
        ready: Notify::new(),
        bounds,
        metrics,
    });
    (
        Outbox(Arc::clone(&inner)),
        PriorityLane(Arc::clone(&inner)),
        Reader(inner),
    )
}

impl Outbox {
    /// Queues `out`; `Full` when the queue is over its bounds. The refused
    /// frame comes back, as from a Tokio channel (the callers' contract).
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, out: Outbound) -> Result<(), TrySendError<Outbound>> {
        let inner = &self.0;
        let size = weight_of(&out);
        let mut lanes = inner.lock();
        if lanes.closed {
            return Err(TrySendError::Closed(out));
        }
        if lanes.ordinary.len() >= inner.bounds.frames || !inner.fits(&lanes, size) {
            return Err(TrySendError::Full(out));
        }
        lanes.bytes += size;
        lanes.ordinary.push_back((out, size));
        drop(lanes);
        inner.metrics.queued_bytes.add(size as u64);
        inner.ready.notify_one();
        Ok(())
    }
}

impl PriorityLane {
    /// Queues a priority frame; `Full` when its lane or the byte budget is.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, frame: ServerFrame) -> Result<(), TrySendError<ServerFrame>> {
        let inner = &self.0;
        let size = weight(&frame);
        let mut lanes = inner.lock();
        if lanes.closed {
            return Err(TrySendError::Closed(frame));
        }
        if lanes.priority.len() >= inner.bounds.priority || !inner.fits(&lanes, size) {
            return Err(TrySendError::Full(frame));
        }
        lanes.bytes += size;
        lanes.priority.push_back((frame, size));
        drop(lanes);
        inner.metrics.queued_bytes.add(size as u64);
        inner.ready.notify_one();
        Ok(())
    }
}

impl Reader {
    /// The next frame, priority first; waits for one.
    pub async fn recv(&self) -> Next {
        let inner = &self.0;
        loop {
            if let Some((next, size)) = self.take() {
                inner.metrics.queued_bytes.sub(size as u64);
                return next;
            }
            // A wake-up given while nobody waited is kept, so none is lost
            // between the look above and this wait.
            inner.ready.notified().await;
        }
    }

    fn take(&self) -> Option<(Next, usize)> {
        let mut lanes = self.0.lock();
        let (next, size) = if let Some((f, size)) = lanes.priority.pop_front() {
            (Next::Priority(f), size)
        } else {
            let (o, size) = lanes.ordinary.pop_front()?;
            (Next::Ordinary(o), size)
        };
        lanes.bytes -= size;
        // A burst made the queues grow; an idle connection gives it back.
        if lanes.ordinary.is_empty() && lanes.ordinary.capacity() > KEEP_SLOTS {
            lanes.ordinary = VecDeque::new();
        }
        if lanes.priority.is_empty() && lanes.priority.capacity() > KEEP_SLOTS {
            lanes.priority = VecDeque::new();
        }
        Some((next, size))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let dropped = {
            let mut lanes = self.0.lock();
            lanes.closed = true;
            let bytes = std::mem::take(&mut lanes.bytes);
            lanes.ordinary = VecDeque::new();
            lanes.priority = VecDeque::new();
            bytes
        };
        self.0.metrics.queued_bytes.sub(dropped as u64);
    }
}

/// An estimate of the memory `out` holds while queued, bytes.
fn weight_of(out: &Outbound) -> usize {
    match out {
        Outbound::Frame(f) => weight(f),
        Outbound::Package(p) => 96 + p.entries.iter().map(|e| held(&e.message) + 32).sum::<usize>(),
    }
}

/// What a message holds in memory: its frame-size hint counts the text
/// twice over (for escaping), memory holds it once.
fn held(m: &Message) -> usize {
    m.size_hint().saturating_sub(m.body.len() + m.sender_name.len())
}

/// An estimate of the memory `frame` holds while queued, bytes: messages
/// by their size, small frames at a flat rate.
pub(crate) fn weight(frame: &ServerFrame) -> usize {
    const SMALL: usize = 160;
    match frame {
        ServerFrame::Push { entries, .. } | ServerFrame::SyncPage { entries, .. } => {
            SMALL + entries.iter().map(|e| held(&e.message) + 32).sum::<usize>()
        }
        ServerFrame::HistoryPage { messages, .. } | ServerFrame::ConvPage { messages, .. } => {
            SMALL + messages.iter().map(held).sum::<usize>()
        }
        ServerFrame::Priority { message } => SMALL + held(message),
        ServerFrame::Polled { advanced, .. } => SMALL + 96 * advanced.len(),
        ServerFrame::UnreadPage { convs, .. } => SMALL + 96 * convs.len(),
        ServerFrame::Nack { message, .. } | ServerFrame::Error { message, .. } => SMALL + message.len(),
        ServerFrame::Reset { reason, .. } => SMALL + reason.len(),
        _ => SMALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(bytes: usize) -> Bounds {
        Bounds {
            bytes,
            frames: 100,
            priority: 2,
        }
    }

    fn small() -> Outbound {
        Outbound::Frame(ServerFrame::Pull { after: 1 })
    }

    #[tokio::test]
    async fn bounded_in_bytes_priority_first_and_freed_on_drop() {
        let metrics = Arc::new(Metrics::default());
        let (tx, prio, rx) = outbox(bounds(400), Arc::clone(&metrics));
        assert!(tx.try_send(small()).is_ok());
        assert!(tx.try_send(small()).is_ok());
        assert!(
            matches!(tx.try_send(small()), Err(TrySendError::Full(_))),
            "over 400 bytes"
        );
        assert_eq!(metrics.queued_bytes.get(), 320);
        assert!(matches!(
            prio.try_send(ServerFrame::Pull { after: 2 }),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(rx.recv().await, Next::Ordinary(_)));
        assert!(prio.try_send(ServerFrame::Pull { after: 2 }).is_ok());
        assert!(matches!(rx.recv().await, Next::Priority(_)), "priority goes first");
        assert!(matches!(rx.recv().await, Next::Ordinary(_)));
        assert_eq!(metrics.queued_bytes.get(), 0);
        assert!(tx.try_send(small()).is_ok());
        drop(rx);
        assert_eq!(metrics.queued_bytes.get(), 0, "dropping the reader frees the queue");
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Closed(_))));
    }

    #[tokio::test]
    async fn an_oversized_frame_goes_alone_and_the_frame_count_bounds_too() {
        let metrics = Arc::new(Metrics::default());
        let (tx, _prio, rx) = outbox(bounds(10), Arc::clone(&metrics));
        assert!(tx.try_send(small()).is_ok(), "an empty queue takes anything");
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
        let _ = rx.recv().await;
        let (tx, _prio, _rx) = outbox(
            Bounds {
                bytes: 1 << 20,
                frames: 2,
                priority: 1,
            },
            metrics,
        );
        assert!(tx.try_send(small()).is_ok());
        assert!(tx.try_send(small()).is_ok());
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let (tx, _prio, rx) = outbox(bounds(1000), Arc::new(Metrics::default()));
        let waiting = tokio::spawn(async move { matches!(rx.recv().await, Next::Ordinary(_)) });
        tokio::task::yield_now().await;
        tx.try_send(small()).unwrap();
        assert!(waiting.await.unwrap());
    }
}
