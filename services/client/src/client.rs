//! The application's handle on a connected device.

use crate::batch::Batch;
use crate::config::ClientConfig;
use crate::driver::{now, Ask, BatchCall, Call, Control, Driver, SendCmd, Status};
use crate::error::{ClientError, Result};
use crate::event::EventStream;
use crate::follow::Follows;
use crate::handle::{SendHandle, SendState};
use crate::outbox::Pending;
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::{Message, TimelineEntry, VectorClock};
use seqline_core::protocol::{ServerFrame, UnreadCount};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// One send, with every option.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// The conversation.
    pub conv: ConversationId,
    /// The text.
    pub body: String,
    /// High priority (group admins only).
    pub priority: bool,
    /// The client id to use (a fresh one when `None`); lets a caller record
    /// the id before the message leaves.
    pub id: Option<ClientMsgId>,
    /// A clock to attach; when `None` and `ClientConfig::vector_clocks` is
    /// on, the SDK stamps its own.
    pub vclock: Option<VectorClock>,
}

impl SendOptions {
    /// A plain message.
    pub fn new(conv: ConversationId, body: impl Into<String>) -> Self {
        Self {
            conv,
            body: body.into(),
            priority: false,
            id: None,
            vclock: None,
        }
    }
}

/// A page of the user's timeline, read without touching the SDK's cursor.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncAnswer {
    /// Entries after the cursor asked for.
    Page {
        /// Ascending user_seq.
        entries: Vec<TimelineEntry>,
        /// The committed head.
        head: u64,
        /// More entries follow.
        more: bool,
    },
    /// The cursor cannot be served: start over at `head`.
    Reset {
        /// The committed head.
        head: u64,
    },
}

/// A page of a read-diffusion conversation after a cursor.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvPage {
    /// Ascending conv_seq, contiguous from the cursor.
    pub messages: Vec<Message>,
    /// The conversation's committed head.
    pub head: u64,
    /// More messages follow.
    pub more: bool,
}

/// A page of a conversation's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPage {
    /// Ascending conv_seq.
    pub messages: Vec<Message>,
    /// The conversation's committed head.
    pub head: u64,
}

/// A device connected to seqline. Cheap to clone; the background task stops
/// when the last clone is dropped or [`Client::close`] is called.
#[derive(Clone, Debug)]
pub struct Client {
    sends: mpsc::Sender<SendCmd>,
    control: mpsc::Sender<Control>,
    status: watch::Receiver<Status>,
    request_timeout: Duration,
    /// Sends handed to the task by every clone.
    sends_given: Arc<AtomicU64>,
}

impl Client {
    /// Starts the background task and waits for the first welcome (at most
    /// `connect_timeout`); fails if the server refuses the token or cannot
    /// be reached in time.
    pub async fn connect(config: ClientConfig) -> Result<(Client, EventStream)> {
        let limit = config.connect_timeout;
        let (client, events) = Client::start(config)?;
        let mut status = client.status.clone();
        // Clone the state at once: a held guard would block the task's writes.
        let waited = tokio::time::timeout(limit, status.wait_for(|s| s.connected || s.closed))
            .await
            .map(|r| r.map(|s| s.clone()));
        match waited {
            Ok(Ok(s)) if s.connected => Ok((client, events)),
            Ok(Ok(s)) => Err(match s.refused {
                Some((code, message)) => ClientError::Auth { code, message },
                None => ClientError::Closed,
            }),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Disconnected(
                "no welcome within the connect timeout".into(),
            )),
        }
    }

    /// Starts the background task without waiting: it connects (and
    /// reconnects) by itself; sends and requests wait for it.
    pub fn start(mut config: ClientConfig) -> Result<(Client, EventStream)> {
        let cursor = config.cursor.load()?;
        let mark = config.cursor.load_mark()?;
        let follows = Follows::new(config.cursor.load_convs()?);
        let (send_tx, send_rx) = mpsc::channel(64);
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let (st_tx, st_rx) = watch::channel(Status {
            cursor,
            ..Status::default()
        });
        let request_timeout = config.request_timeout;
        let driver = Driver::new(config, (cursor, mark), follows, send_rx, ctl_rx, ev_tx, st_tx);
        tokio::spawn(driver.run());
        let client = Client {
            sends: send_tx,
            control: ctl_tx,
            status: st_rx,
            request_timeout,
            sends_given: Arc::new(AtomicU64::new(0)),
        };
        Ok((client, EventStream::new(ev_rx)))
    }

    /// Sends `body` to `conv`; waits only while the outbox is full.
    pub async fn send(&self, conv: ConversationId, body: impl Into<String>) -> Result<SendHandle> {
        self.send_with(SendOptions::new(conv, body)).await
    }

    /// Sends with every option.
    pub async fn send_with(&self, opts: SendOptions) -> Result<SendHandle> {
        let id = opts.id.unwrap_or_else(ClientMsgId::random);
        let (tx, rx) = watch::channel(SendState::Sending { attempts: 0 });
        // The SDK stamps its own clock only when the caller brought none.
        let stamp = opts.vclock.is_none();
        let msg = Pending {
            id,
            conv: opts.conv.clone(),
            body: opts.body,
            priority: opts.priority,
            vclock: opts.vclock.unwrap_or_default(),
        };
        let cmd = SendCmd { msg, stamp, state: tx };
        self.sends.send(cmd).await.map_err(|_| ClientError::Closed)?;
        self.sends_given.fetch_add(1, Ordering::AcqRel);
        Ok(SendHandle::new(id, opts.conv, rx))
    }

    /// Sends `batch` as one ordered action: its commands are sequenced
    /// consecutively, with nothing in between, or none is. Returns each
    /// command's `conv_seq`; a refusal is [`ClientError::BatchRefused`],
    /// naming the command that failed. Waits for the answers (resending
    /// after a reconnect) up to the request timeout; after a timeout the
    /// outcome is unknown: send the same `batch` again to learn it (its
    /// ids make it idempotent). A batch goes after the conversation's
    /// earlier messages: while some wait for their acks it is refused with
    /// [`ClientError::Busy`] (flush first). Sends after it name its last
    /// send as their predecessor.
    pub async fn send_batch(&self, batch: &Batch) -> Result<Vec<u64>> {
        if batch.commands().is_empty() {
            return Err(ClientError::Config("a batch needs at least one command".into()));
        }
        let (reply, rx) = oneshot::channel();
        let call = BatchCall {
            batch: batch.clone(),
            reply,
            deadline: now() + self.request_timeout,
        };
        self.control
            .send(Control::Batch(call))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    async fn ask(&self, ask: Ask) -> Result<ServerFrame> {
        let (reply, rx) = oneshot::channel();
        let call = Call {
            ask,
            reply,
            deadline: now() + self.request_timeout,
        };
        self.control
            .send(Control::Request(call))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Pings the server; returns the committed head of the user's timeline.
    pub async fn ping(&self) -> Result<u64> {
        match self.ask(Ask::Ping).await? {
            ServerFrame::Pong { head, .. } => Ok(head),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads one page of the timeline after `after`, apart from the SDK's own
    /// delivery (the cursor does not move; nothing is emitted).
    pub async fn sync_page(&self, after: u64, limit: Option<u32>) -> Result<SyncAnswer> {
        match self.ask(Ask::Sync { after, limit }).await? {
            ServerFrame::SyncPage {
                entries, head, more, ..
            } => Ok(SyncAnswer::Page { entries, head, more }),
            ServerFrame::Reset { head, .. } => Ok(SyncAnswer::Reset { head }),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of `conv` after `after` by conversation cursor (`sync_conv`),
    /// apart from the SDK's own following (nothing is emitted).
    pub async fn conv_page(&self, conv: ConversationId, after: u64, limit: Option<u32>) -> Result<ConvPage> {
        match self.ask(Ask::SyncConv { conv, after, limit }).await? {
            ServerFrame::ConvPage {
                messages, head, more, ..
            } => Ok(ConvPage { messages, head, more }),
            other => Err(unexpected(&other)),
        }
    }

    /// Marks `conv` read up to `conv_seq` for the user (positions only move
    /// forward; the user's other devices get [`crate::Event::ReadMark`]).
    /// Sent as soon as the device is connected; nothing is answered.
    pub async fn mark_read(&self, conv: ConversationId, conv_seq: u64) -> Result<()> {
        self.control
            .send(Control::Read(conv, conv_seq))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Unread counts of every conversation of the user.
    pub async fn unread(&self) -> Result<Vec<UnreadCount>> {
        match self.ask(Ask::Unread).await? {
            ServerFrame::UnreadPage { convs, .. } => Ok(convs),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of `conv`'s history: before `before` (newest first when
    /// both are `None`) or after `after`, ascending.
    pub async fn history_page(
        &self,
        conv: ConversationId,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        match self
            .ask(Ask::History {
                conv,
                before,
                after,
                limit,
            })
            .await?
        {
            ServerFrame::HistoryPage { messages, head, .. } => Ok(HistoryPage { messages, head }),
            other => Err(unexpected(&other)),
        }
    }

    /// Up to `limit` messages of `conv` before `before` (the newest when
    /// `None`), ascending conv_seq, paging back as far as conv_seq 1.
    pub async fn history(&self, conv: &ConversationId, before: Option<u64>, limit: usize) -> Result<Vec<Message>> {
        let mut out: Vec<Message> = Vec::new();
        let mut before = before;
        while out.len() < limit {
            let want = u32::try_from(limit - out.len()).unwrap_or(u32::MAX);
            let page = self.history_page(conv.clone(), before, None, Some(want)).await?;
            let mut msgs = page.messages;
            msgs.retain(|m| before.is_none_or(|b| m.conv_seq.0 < b));
            let Some(first) = msgs.first().map(|m| m.conv_seq.0) else {
                break;
            };
            let room = limit - out.len();
            if msgs.len() > room {
                msgs.drain(..msgs.len() - room);
            }
            msgs.append(&mut out);
            out = msgs;
            if first <= 1 {
                break;
            }
            before = Some(first);
        }
        Ok(out)
    }

    /// Like [`Client::history`], ordered causally by the messages' vector
    /// clocks (concurrent ones keep conv_seq order). Only history is
    /// reordered; the live stream never is.
    pub async fn causal_history(
        &self,
        conv: &ConversationId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let page = self.history(conv, before, limit).await?;
        Ok(crate::clocks::causal_order(page))
    }

    /// The background task's state now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A watch on the background task's state.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits (at most `limit`) until no send waits for its ack; true if none does.
    pub async fn flush(&self, limit: Duration) -> bool {
        let given = self.sends_given.load(Ordering::Acquire);
        let idle = move |s: &Status| s.sends_taken >= given && s.pending == 0;
        let mut status = self.status.clone();
        tokio::time::timeout(limit, status.wait_for(|s| idle(s) || s.closed))
            .await
            .is_ok_and(|r| r.is_ok_and(|s| idle(&s)))
    }

    /// Stops the task: pending sends fail with an unknown outcome, the cursor
    /// is stored, the event stream ends. Waits until that is done.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.control.send(Control::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn unexpected(frame: &ServerFrame) -> ClientError {
    ClientError::Protocol(format!("unexpected answer: {frame:?}"))
}
