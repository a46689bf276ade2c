//! Requests that wait for an answer (sync, history, ping), matched by `req`.
//! Callers' requests are reads, so after a disconnect they are sent again on
//! the next connection, until their deadline.

use crate::error::{ClientError, Result};
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::protocol::{ClientFrame, ConvCursor, ServerFrame};
use seqline_core::Epoch;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::oneshot;

/// What a caller asks.
#[derive(Clone, Debug)]
pub(crate) enum Ask {
    Sync {
        after: u64,
        limit: Option<u32>,
    },
    History {
        conv: ConversationId,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
    },
    Ping,
    SyncConv {
        conv: ConversationId,
        after: u64,
        limit: Option<u32>,
    },
    Unread,
}

/// A caller's request and where its answer goes.
#[derive(Debug)]
pub(crate) struct Call {
    pub ask: Ask,
    pub reply: oneshot::Sender<Result<ServerFrame>>,
    pub deadline: Instant,
}

/// Who waits for an answer.
#[derive(Debug)]
pub(crate) enum Waiter {
    Caller(Call),
    /// The SDK's own sync from this cursor.
    Sync {
        after: u64,
    },
    /// The SDK's own keep-alive.
    Ping,
    /// The SDK's own pull of a followed conversation from this cursor.
    SyncConv {
        conv: ConversationId,
        after: u64,
    },
    /// The SDK's own long-poll.
    Poll,
}

#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// The epoch of the data the device's copy belongs to, named in every
    /// sync, history and conversation pull (the server refuses another).
    pub epoch: Option<Epoch>,
    next_req: u64,
    unsent: Vec<Call>,
    sent: HashMap<u64, Waiter>,
}

fn frame(req: u64, ask: &Ask, epoch: Option<Epoch>) -> ClientFrame {
    match ask.clone() {
        Ask::Sync { after, limit } => ClientFrame::Sync {
            req,
            after,
            limit,
            epoch,
            after_id: None,
        },
        Ask::History {
            conv,
            before,
            after,
            limit,
        } => ClientFrame::History {
            req,
            conv,
            before,
            after,
            limit,
            epoch,
        },
        Ask::Ping => ClientFrame::Ping { req: Some(req) },
        Ask::SyncConv { conv, after, limit } => ClientFrame::SyncConv {
            req,
            conv,
            after,
            limit,
            epoch,
        },
        Ask::Unread => ClientFrame::Unread { req },
    }
}

impl Requests {
    /// No request yet, for a device whose copy belongs to `epoch`.
    pub fn with_epoch(epoch: Option<Epoch>) -> Self {
        Self {
            epoch,
            ..Self::default()
        }
    }

    fn next(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Queues a caller's request for the next connected moment.
    pub fn add(&mut self, call: Call) {
        self.unsent.push(call);
    }

    /// Frames for every queued request, now waiting for their answers.
    pub fn take_unsent(&mut self) -> Vec<ClientFrame> {
        let calls = std::mem::take(&mut self.unsent);
        calls
            .into_iter()
            .map(|call| {
                let req = self.next();
                let f = frame(req, &call.ask, self.epoch);
                self.sent.insert(req, Waiter::Caller(call));
                f
            })
            .collect()
    }

    /// The SDK's own sync from `after`; returns its req and frame.
    /// `after_id` is the id of the entry at `after`, when the device has it.
    pub fn sync(&mut self, after: u64, limit: Option<u32>, after_id: Option<ClientMsgId>) -> (u64, ClientFrame) {
        let req = self.next();
        self.sent.insert(req, Waiter::Sync { after });
        let f = ClientFrame::Sync {
            req,
            after,
            limit,
            epoch: self.epoch,
            after_id: after_id.filter(|_| after > 0),
        };
        (req, f)
    }

    /// The SDK's own ping.
    pub fn ping(&mut self) -> ClientFrame {
        let req = self.next();
        self.sent.insert(req, Waiter::Ping);
        frame(req, &Ask::Ping, self.epoch)
    }

    /// The SDK's own pull of `conv` after `after`.
    pub fn sync_conv(&mut self, conv: ConversationId, after: u64, limit: Option<u32>) -> ClientFrame {
        let req = self.next();
        self.sent.insert(
            req,
            Waiter::SyncConv {
                conv: conv.clone(),
                after,
            },
        );
        frame(req, &Ask::SyncConv { conv, after, limit }, self.epoch)
    }

    /// The SDK's own long-poll; returns its req and frame.
    pub fn poll(&mut self, convs: Vec<ConvCursor>, wait_ms: u64) -> (u64, ClientFrame) {
        let req = self.next();
        self.sent.insert(req, Waiter::Poll);
        let f = ClientFrame::Poll {
            req,
            convs,
            wait_ms: Some(wait_ms),
        };
        (req, f)
    }

    /// Who waits for the answer to `req`.
    pub fn resolve(&mut self, req: u64) -> Option<Waiter> {
        self.sent.remove(&req)
    }

    /// The connection dropped: callers' requests go again on the next one,
    /// the SDK's own are forgotten (it starts over on connect).
    pub fn disconnected(&mut self) {
        let mut again: Vec<(u64, Call)> = Vec::new();
        for (req, w) in self.sent.drain() {
            if let Waiter::Caller(call) = w {
                again.push((req, call));
            }
        }
        again.sort_by_key(|(req, _)| *req);
        let older = std::mem::take(&mut self.unsent);
        self.unsent = again.into_iter().map(|(_, c)| c).chain(older).collect();
    }

    /// Fails callers whose deadline passed.
    pub fn expire(&mut self, now: Instant) {
        let (late, keep): (Vec<Call>, Vec<Call>) = std::mem::take(&mut self.unsent)
            .into_iter()
            .partition(|c| c.deadline <= now);
        self.unsent = keep;
        for c in late {
            let _ = c.reply.send(Err(ClientError::Timeout));
        }
        let late: Vec<u64> = self
            .sent
            .iter()
            .filter(|(_, w)| matches!(w, Waiter::Caller(c) if c.deadline <= now))
            .map(|(r, _)| *r)
            .collect();
        for req in late {
            if let Some(Waiter::Caller(c)) = self.sent.remove(&req) {
                let _ = c.reply.send(Err(ClientError::Timeout));
            }
        }
    }

    /// The earliest caller deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sent = self.sent.values().filter_map(|w| match w {
            Waiter::Caller(c) => Some(c.deadline),
            _ => None,
        });
        self.unsent.iter().map(|c| c.deadline).chain(sent).min()
    }

    /// Fails every caller (the client is closing).
    pub fn fail_all(&mut self, err: impl Fn() -> ClientError) {
        for c in std::mem::take(&mut self.unsent) {
            let _ = c.reply.send(Err(err()));
        }
        for (_, w) in self.sent.drain() {
            if let Waiter::Caller(c) = w {
                let _ = c.reply.send(Err(err()));
            }
        }
    }
}
