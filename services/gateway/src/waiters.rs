//! HTTP requests waiting for the receipt of the command they published:
//! the receipt consumer hands each receipt to its waiter.

use seqline_core::records::Receipt;
use seqline_core::ClientMsgId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

struct Waiter {
    id: ClientMsgId,
    tx: oneshot::Sender<Receipt>,
}

/// HTTP requests waiting for their receipt, by gateway-local request id.
pub(crate) struct ReceiptWaiters {
    map: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
}

impl ReceiptWaiters {
    pub fn new() -> Self {
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
    pub fn register(self: &Arc<Self>, id: ClientMsgId) -> (ReceiptTicket, oneshot::Receiver<Receipt>) {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request, Waiter { id, tx });
        (
            ReceiptTicket {
                waiters: Arc::clone(self),
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
pub(crate) struct ReceiptTicket {
    waiters: Arc<ReceiptWaiters>,
    /// The request id to put in `Origin::request`.
    pub request: u64,
}

impl Drop for ReceiptTicket {
    fn drop(&mut self) {
        self.waiters
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request);
    }
}
