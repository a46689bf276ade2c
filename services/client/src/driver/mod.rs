//! The background task that owns the socket: connects, authenticates,
//! syncs, resends, and reconnects with backoff and jitter after any drop.

mod batches;
mod frames;
mod requests;
mod session;

pub(crate) use batches::BatchCall;

pub(crate) use requests::{Ask, Call};

use crate::backoff::Backoff;
use crate::clocks::Clocks;
use crate::config::{ClientConfig, ResendPolicy};
use crate::cursor::{CursorMark, CursorStore};
use crate::error::ClientError;
use crate::event::{Event, Via};
use crate::follow::Follows;
use crate::handle::{FailReason, SendState};
use crate::inbox::Inbox;
use crate::outbox::{Outbox, Pending};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use requests::Requests;
use seqline_core::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use seqline_core::model::TimelineEntry;
use seqline_core::protocol::{ClientFrame, ErrorCode, Limits, ServerFrame};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the client shows of its background task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// Connected and authenticated now.
    pub connected: bool,
    /// The initial sync of this connection finished.
    pub synced: bool,
    /// The device cursor: everything up to here was delivered.
    pub cursor: u64,
    /// Read-diffusion conversations the device follows now.
    pub following: usize,
    /// The latest timeline head the server reported.
    pub head: u64,
    /// Messages waiting for their ack.
    pub pending: usize,
    /// Successful connections so far.
    pub connects: u64,
    /// Sends the task has taken in (into the outbox or failed at once).
    pub sends_taken: u64,
    /// Times the server refused a send for now (`rate_limited`,
    /// `unavailable`) and the task queued it to go again.
    pub refused_for_now: u64,
    /// The user and device the token names (known after the first welcome).
    pub user: Option<UserId>,
    /// The device.
    pub device: Option<DeviceId>,
    /// Limits the server announced.
    pub limits: Option<Limits>,
    /// The task has stopped (closed, or the token was refused).
    pub closed: bool,
    /// Why the server refused the token, when it did.
    pub refused: Option<(ErrorCode, String)>,
}

/// A send handed to the task.
pub(crate) struct SendCmd {
    pub msg: Pending,
    pub stamp: bool,
    pub state: watch::Sender<SendState>,
}

/// Anything else handed to the task.
pub(crate) enum Control {
    Request(Call),
    /// Send a batch (when connected and synced) and wait for its answers.
    Batch(BatchCall),
    /// Move the user's read position (sent when connected).
    Read(ConversationId, u64),
    Close(oneshot::Sender<()>),
}

/// Everything the task owns.
pub(crate) struct Driver {
    url: String,
    token: String,
    resend: ResendPolicy,
    reconnect: Backoff,
    ping_interval: Duration,
    request_timeout: Duration,
    connect_timeout: Duration,
    cursor_interval: Duration,
    vector_clocks: bool,
    sync_page: Option<u32>,
    poll_wait: Duration,
    conv_page: Option<u32>,
    cursor_store: Box<dyn CursorStore>,
    stored_cursor: u64,
    stored_mark: CursorMark,
    /// The id of the entry at `delivered`, when the device has it.
    delivered_id: Option<ClientMsgId>,
    sends: mpsc::Receiver<SendCmd>,
    control: mpsc::Receiver<Control>,
    events: mpsc::Sender<Event>,
    status: watch::Sender<Status>,
    outbox: Outbox,
    handles: HashMap<ClientMsgId, watch::Sender<SendState>>,
    inbox: Inbox,
    /// Timeline entries taken from the inbox but not delivered yet: held
    /// behind an entry that waits for a conversation pull.
    staged: VecDeque<(TimelineEntry, Via)>,
    /// The last user_seq delivered (or skipped as a repeat).
    delivered: u64,
    follows: Follows,
    /// Read positions to send, highest per conversation.
    reads: HashMap<ConversationId, u64>,
    clocks: Clocks,
    /// Sends to stamp once the user is known (made before the first
    /// welcome), in send order.
    unstamped: Vec<(ClientMsgId, ConversationId)>,
    /// The clocks of those sends, stamped at the first welcome.
    late_clocks: HashMap<ClientMsgId, seqline_core::model::VectorClock>,
    requests: Requests,
    batches: batches::Batches,
    rng: SmallRng,
    head: u64,
    closing: Vec<oneshot::Sender<()>>,
    closed: bool,
}

/// What ended an attempt to connect.
enum ConnectError {
    Retry(String),
    Refused(ErrorCode, String),
}

impl Driver {
    /// Builds the task's state; `cursor` (with its mark) and `follows` were
    /// loaded from the store.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mut cfg: ClientConfig,
        (cursor, mark): (u64, CursorMark),
        follows: Follows,
        sends: mpsc::Receiver<SendCmd>,
        control: mpsc::Receiver<Control>,
        events: mpsc::Sender<Event>,
        status: watch::Sender<Status>,
    ) -> Self {
        let (seed, outbox_seed) = uuid::Uuid::new_v4().as_u64_pair();
        let store = std::mem::replace(&mut cfg.cursor, Box::new(crate::cursor::MemoryCursor::default()));
        Self {
            outbox: Outbox::new(cfg.outbox_capacity, cfg.resend.max_attempts, cfg.request_timeout)
                .with_timeout_backoff(cfg.resend.timeout_backoff, outbox_seed),
            url: cfg.url,
            token: cfg.token,
            resend: cfg.resend,
            reconnect: cfg.reconnect,
            ping_interval: cfg.ping_interval.max(Duration::from_millis(10)),
            request_timeout: cfg.request_timeout,
            connect_timeout: cfg.connect_timeout,
            cursor_interval: cfg.cursor_interval,
            vector_clocks: cfg.vector_clocks,
            sync_page: cfg.sync_page,
            poll_wait: cfg.poll_wait,
            conv_page: cfg.conv_page,
            cursor_store: store,
            stored_cursor: cursor,
            stored_mark: mark,
            delivered_id: mark.entry,
            sends,
            control,
            events,
            status,
            handles: HashMap::new(),
            inbox: Inbox::new(cursor),
            staged: VecDeque::new(),
            delivered: cursor,
            follows,
            reads: HashMap::new(),
            clocks: Clocks::default(),
            unstamped: Vec::new(),
            late_clocks: HashMap::new(),
            requests: Requests::with_epoch(mark.epoch),
            batches: batches::Batches::default(),
            rng: SmallRng::seed_from_u64(seed),
            head: 0,
            closing: Vec::new(),
            closed: false,
        }
    }

    /// Runs until the client is closed (or its token is refused).
    #[tracing::instrument(name = "client", skip_all)]
    pub(crate) async fn run(mut self) {
        let mut failures: u32 = 0;
        while !self.closed {
            let attempt = connect(self.url.clone(), self.token.clone(), self.connect_timeout);
            match self.serve_while(attempt).await {
                None => break,
                Some(Ok((ws, welcome))) => {
                    failures = 0;
                    let reason = self.session(ws, welcome).await;
                    self.disconnected(reason).await;
                }
                Some(Err(ConnectError::Refused(code, message))) => {
                    tracing::warn!(?code, "the server refused the token");
                    self.status.send_modify(|s| s.refused = Some((code, message)));
                    break;
                }
                Some(Err(ConnectError::Retry(reason))) => {
                    tracing::debug!(%reason, "connection attempt failed");
                    failures = failures.saturating_add(1);
                }
            }
            if self.closed {
                break;
            }
            let delay = self.reconnect.delay(failures, &mut self.rng);
            if self.serve_while(tokio::time::sleep(delay)).await.is_none() {
                break;
            }
        }
        self.shutdown();
    }

    /// Runs `fut` while taking sends and requests (queued for later); `None`
    /// when the client closed meanwhile.
    async fn serve_while<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            if self.closed {
                return None;
            }
            let deadline = self
                .requests
                .next_deadline()
                .into_iter()
                .chain(self.batches.next_deadline())
                .min()
                .unwrap_or_else(|| now() + Duration::from_secs(3600));
            tokio::select! {
                out = &mut fut => return Some(out),
                c = self.control.recv() => self.on_control(c),
                s = self.sends.recv(), if !self.outbox.is_full() => self.on_send(s),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.requests.expire(now());
                    self.batches.expire(now());
                }
            }
            self.publish();
        }
    }

    fn on_control(&mut self, c: Option<Control>) {
        match c {
            None => self.closed = true,
            Some(Control::Close(done)) => {
                self.closing.push(done);
                self.closed = true;
            }
            Some(Control::Request(call)) => self.requests.add(call),
            Some(Control::Batch(call)) => self.add_batch(call),
            Some(Control::Read(conv, seq)) => {
                let at = self.reads.entry(conv).or_insert(0);
                *at = (*at).max(seq);
            }
        }
    }

    /// A batch goes after every earlier message of its conversation: its
    /// first send names the latest one the sequencer processed.
    fn add_batch(&mut self, call: BatchCall) {
        let conv = call.batch.conv().clone();
        if self.outbox.pending_in(&conv) || self.batches.waits_in(&conv) {
            let why = format!("earlier messages to {conv} wait for their answers; send the batch after them");
            let _ = call.reply.send(Err(ClientError::Busy(why)));
            return;
        }
        // A resent batch that was processed is its own predecessor: the
        // server answers it from its ids and checks no order.
        let prev = self
            .outbox
            .last_settled(&conv)
            .filter(|p| !call.batch.ids().contains(p));
        self.batches.add(call, prev);
    }

    fn on_send(&mut self, s: Option<SendCmd>) {
        let Some(mut cmd) = s else {
            self.closed = true;
            return;
        };
        self.status.send_modify(|st| st.sends_taken += 1);
        let mut late = false;
        if cmd.stamp && self.vector_clocks {
            match self.status.borrow().user.clone() {
                Some(me) => cmd.msg.vclock = self.clocks.stamp(&cmd.msg.conv, &me, cmd.msg.id),
                None => late = true,
            }
        }
        let (id, conv) = (cmd.msg.id, cmd.msg.conv.clone());
        match self.outbox.push(cmd.msg, now()) {
            Ok(()) => {
                self.handles.insert(id, cmd.state);
                if late {
                    self.unstamped.push((id, conv));
                }
            }
            Err(msg) => {
                self.unstamp(&msg);
                let _ = cmd.state.send(SendState::Failed(FailReason::OutboxFull));
            }
        }
    }

    /// `msg` will never be sequenced: its clock count is taken back if it can be.
    fn unstamp(&mut self, msg: &Pending) {
        let late = self.late_clocks.remove(&msg.id);
        if let Some(me) = self.status.borrow().user.as_ref() {
            self.clocks
                .unstamp(&msg.conv, me, &msg.id, late.as_ref().unwrap_or(&msg.vclock));
        }
    }

    /// The user is known: stamp the sends made before, in send order.
    fn stamp_late(&mut self, me: &UserId) {
        for (id, conv) in std::mem::take(&mut self.unstamped) {
            if self.outbox.contains(&id) {
                let clock = self.clocks.stamp(&conv, me, id);
                self.late_clocks.insert(id, clock);
            }
        }
    }

    async fn emit(&mut self, ev: Event) {
        // A dropped stream means nobody listens; delivery goes on regardless.
        let _ = self.events.send(ev).await;
    }

    /// The mark of the cursor now.
    fn mark(&self) -> CursorMark {
        CursorMark {
            epoch: self.requests.epoch,
            entry: self.delivered_id.filter(|_| self.delivered > 0),
        }
    }

    /// Stores the cursor (with its mark) and the conversation positions if
    /// they moved (errors are logged: the next store retries).
    fn persist(&mut self) {
        let cursor = self.delivered;
        let mark = self.mark();
        if cursor != self.stored_cursor || mark != self.stored_mark || self.follows.is_dirty() {
            let stored = self.cursor_store.store_marked(cursor, mark, &self.follows.positions());
            match stored {
                Ok(()) => {
                    self.stored_cursor = cursor;
                    self.stored_mark = mark;
                    self.follows.stored();
                }
                Err(e) => tracing::warn!(error = %e, "cannot store the cursor"),
            }
        }
    }

    fn publish(&mut self) {
        let (cursor, head, pending, closed) = (self.delivered, self.head, self.outbox.len(), self.closed);
        let following = self.follows.following().len();
        self.status.send_if_modified(|s| {
            let changed =
                (s.cursor, s.head, s.pending, s.closed, s.following) != (cursor, head, pending, closed, following);
            s.cursor = cursor;
            s.head = head;
            s.pending = pending;
            s.closed = closed;
            s.following = following;
            changed
        });
    }

    async fn disconnected(&mut self, reason: String) {
        tracing::debug!(%reason, "disconnected");
        self.outbox.disconnected(now());
        self.requests.disconnected();
        self.batches.disconnected();
        self.persist();
        self.status.send_modify(|s| {
            s.connected = false;
            s.synced = false;
        });
        self.emit(Event::Disconnected { reason }).await;
    }

    fn shutdown(&mut self) {
        self.closed = true;
        for msg in self.outbox.drain() {
            if let Some(state) = self.handles.remove(&msg.id) {
                let _ = state.send(SendState::Failed(FailReason::Closed));
            }
            let _ = self.events.try_send(Event::Failed {
                id: msg.id,
                conv: msg.conv,
                reason: FailReason::Closed,
            });
        }
        self.requests.fail_all(|| ClientError::Closed);
        self.batches.fail_all(|| ClientError::Closed);
        self.persist();
        self.publish();
        for done in self.closing.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Now, on tokio's clock (so paused-time tests work).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// One connection attempt: TCP, upgrade, hello, welcome.
async fn connect(url: String, token: String, limit: Duration) -> Result<(Ws, ServerFrame), ConnectError> {
    let attempt = async move {
        // Small frames: no Nagle delay, and no 128 KiB read buffer per socket.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(8 * 1024);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
            .await
            .map_err(|e| ConnectError::Retry(format!("connect: {e}")))?;
        let hello = serde_json::to_string(&ClientFrame::Hello { token })
            .map_err(|e| ConnectError::Retry(format!("encode hello: {e}")))?;
        ws.send(WsMessage::text(hello))
            .await
            .map_err(|e| ConnectError::Retry(format!("hello: {e}")))?;
        while let Some(msg) = ws.next().await {
            let msg = msg.map_err(|e| ConnectError::Retry(format!("read: {e}")))?;
            let WsMessage::Text(text) = msg else { continue };
            match serde_json::from_str::<ServerFrame>(text.as_str()) {
                Ok(welcome @ ServerFrame::Welcome { .. }) => return Ok((ws, welcome)),
                Ok(ServerFrame::Error { code, message, .. }) => {
                    return Err(match code {
                        ErrorCode::BadToken | ErrorCode::TokenExpired | ErrorCode::Unauthenticated => {
                            ConnectError::Refused(code, message)
                        }
                        _ => ConnectError::Retry(format!("{code:?}: {message}")),
                    })
                }
                _ => continue,
            }
        }
        Err(ConnectError::Retry("closed before welcome".into()))
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Retry("connection attempt timed out".into())),
    }
}
