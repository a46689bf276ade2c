//! Sessions: an authenticated connection. One task reads frames, writes
//! answers, forwards receipts, and rectifies pushes (with a timer for its
//! gap); [`Session`] is that task, and all of its methods are here.
//!
//! `connect` takes a connection from `hello` through registration to its
//! session and its close. In the session, each request is answered by a
//! handler of its own concern, which returns the frame to write (the
//! session writes it, so no handler holds the socket):
//! - `send`, `batch`: commands published to the inbound topic;
//! - `timeline`: sync, cursor and ping; `history`: conversation history;
//! - `diffusion`: sync_conv, read and unread (read diffusion); `poll`: the
//!   long-poll;
//! - `epoch`: the store's epoch in requests; `answers`: shared answers.

mod answers;
mod batch;
pub(crate) mod connect;
mod diffusion;
mod epoch;
mod history;
mod poll;
mod send;
mod timeline;

use crate::edge::close::{code, socket_error, Exit, CONTROL_FLOOD, TOO_SLOW};
use crate::edge::frames;
use crate::edge::ratelimit::TokenBucket;
use crate::outbox::{Next, Outbound, Reader};
use crate::registry::Link;
use crate::state::Shared;
use axum::extract::ws::{Message, WebSocket};
use history::HistoryRequest;
use send::{SendRequest, Sender};
use seqline_core::algo::rectifier::{Rectifier, Release};
use seqline_core::model::{fitting, now_ms};
use seqline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use seqline_telemetry::emit;
use seqline_telemetry::events::{EntryPushed, RectifierTimedOut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timeline::SyncRequest;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

/// State of one authenticated connection.
pub(crate) struct Session {
    shared: Arc<Shared>,
    rectifier: Rectifier,
    sends: TokenBucket,
    requests: TokenBucket,
    /// Control frames (WebSocket pings and pongs) from the client, limited
    /// like requests but on their own, so keep-alives never eat the
    /// request budget.
    controls: TokenBucket,
    /// The display name from the token, copied into every command.
    name: String,
    /// The connection as the registry, the follow index and the long-poll
    /// reach it (its user and device, its queues).
    link: Arc<Link>,
    /// The outstanding long-poll: dropping it makes the poll answer now.
    poll: Option<DropGuard>,
    kick: CancellationToken,
    /// When the token stops being valid (with the verifier's leeway).
    expires: tokio::time::Instant,
}

/// Clock skew allowed past a token's expiry, as when it is verified.
const TOKEN_LEEWAY_SECS: u64 = 30;

impl Session {
    /// A session for a device whose pushes start after `head`, with a token
    /// that expires at `exp` (seconds since the Unix epoch).
    pub fn new(shared: Arc<Shared>, head: u64, exp: u64, name: String, link: Arc<Link>) -> Self {
        let c = &shared.config;
        let now = Instant::now();
        let rectifier = Rectifier::new(head, c.rectifier_timeout, c.rectifier_max_buffered);
        let sends = TokenBucket::new(c.max_sends_per_sec, c.send_burst, now);
        let requests = TokenBucket::new(c.max_requests_per_sec, c.max_requests_per_sec, now);
        let controls = TokenBucket::new(c.max_requests_per_sec, c.max_requests_per_sec, now);
        let left = exp
            .saturating_add(TOKEN_LEEWAY_SECS)
            .saturating_sub(seqline_core::token::now_secs());
        let expires = tokio::time::Instant::now() + Duration::from_secs(left.min(u64::from(u32::MAX)));
        Self {
            shared,
            rectifier,
            sends,
            requests,
            controls,
            name,
            link,
            poll: None,
            kick: CancellationToken::new(),
            expires,
        }
    }

    /// Runs until the client leaves, the gateway stops or the connection is kicked.
    pub async fn run(&mut self, socket: &mut WebSocket, outbox: &Reader, kick: &CancellationToken) -> Exit {
        self.kick = kick.clone();
        let idle = self.shared.config.idle_timeout;
        let mut ping = tokio::time::interval(idle / 3);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_in = tokio::time::Instant::now();
        let stop = self.shared.stop.clone();
        // Made once: re-arming these on every frame would churn the timer wheel.
        let stopped = stop.cancelled();
        let kicked = kick.cancelled();
        let expired = tokio::time::sleep_until(self.expires);
        tokio::pin!(stopped, kicked, expired);
        loop {
            let deadline = self.rectifier.deadline().map(tokio::time::Instant::from_std);
            // Biased: stopping first, the priority lane before the outgoing
            // queue, and that before new frames, so a client that floods
            // cannot starve its own acks.
            let step = tokio::select! {
                biased;
                () = &mut stopped => Err(Exit::Close(code::GOING_AWAY, "server shutting down")),
                () = &mut kicked => Err(Exit::Close(code::POLICY, TOO_SLOW)),
                () = &mut expired => {
                    let e = ServerFrame::error(None, ErrorCode::TokenExpired, "the token has expired");
                    self.write(socket, &e).await.and(Err(Exit::Close(code::POLICY, "token expired")))
                }
                next = outbox.recv() => match next {
                    Next::Priority(frame) => self.write(socket, &frame).await,
                    Next::Ordinary(out) => Box::pin(self.outbound(socket, out)).await,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    let releases = self.rectifier.poll(Instant::now());
                    for _ in releases.iter().filter(|r| matches!(r, Release::Pull { .. })) {
                        emit(RectifierTimedOut);
                    }
                    Box::pin(self.release(socket, releases)).await
                }
                msg = socket.recv() => match msg {
                    None => Err(Exit::Gone),
                    Some(Err(e)) => Err(socket_error(&self.shared.metrics, e)),
                    Some(Ok(m)) => {
                        last_in = tokio::time::Instant::now();
                        // Boxed, as the two above: a request's state (store
                        // reads, pages) lives only while it is handled, not
                        // in every idle connection's task.
                        Box::pin(self.incoming(socket, m)).await
                    }
                },
                _ = ping.tick() => {
                    if last_in.elapsed() >= idle {
                        Err(Exit::Close(code::NORMAL, "idle"))
                    } else {
                        self.write_raw(socket, Message::Ping(Default::default())).await
                    }
                }
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    async fn outbound(&mut self, socket: &mut WebSocket, out: Outbound) -> Result<(), Exit> {
        match out {
            Outbound::Frame(frame) => self.write(socket, &frame).await,
            Outbound::Package(p) => {
                if p.user != self.link.key.user || p.device != self.link.key.device {
                    return Ok(());
                }
                let releases = self.rectifier.offer(p, Instant::now());
                self.release(socket, releases).await
            }
        }
    }

    /// Writes what the rectifier let go.
    async fn release(&mut self, socket: &mut WebSocket, releases: Vec<Release>) -> Result<(), Exit> {
        let budget = self.shared.config.max_page_bytes;
        for r in releases {
            let (package, mut entries) = match r {
                Release::Push { package, entries } => (package, entries),
                Release::Pull { after } => {
                    self.write(socket, &ServerFrame::Pull { after }).await?;
                    continue;
                }
            };
            // Cut to the byte budget: several frames of one package, in order.
            while !entries.is_empty() {
                let n = fitting(&entries, budget, |e| e.message.size_hint() + 32);
                let rest = entries.split_off(n);
                let part = std::mem::replace(&mut entries, rest);
                let frame = ServerFrame::Push { package, entries: part };
                self.write(socket, &frame).await?;
                if let ServerFrame::Push { entries: sent, .. } = &frame {
                    let now_ms = now_ms();
                    let (mut lag_ms, mut timed) = (0u64, 0u64);
                    for e in sent {
                        if e.message.server_ts_ms > 0 {
                            lag_ms = lag_ms.saturating_add(now_ms.saturating_sub(e.message.server_ts_ms));
                            timed += 1;
                        }
                        emit(EntryPushed {
                            server_ts_ms: e.message.server_ts_ms,
                            now_ms,
                        });
                    }
                    self.shared.admission.pushed(lag_ms, timed);
                }
            }
        }
        Ok(())
    }

    async fn incoming(&mut self, socket: &mut WebSocket, msg: Message) -> Result<(), Exit> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                self.shared.metrics.frames_in.inc();
                let e = ServerFrame::error(
                    None,
                    ErrorCode::BadFrame,
                    "binary frames are not accepted; send JSON text",
                );
                return self.write(socket, &e).await;
            }
            // The protocol layer answers pings (keeping one pong pending at
            // most) and close frames itself. A flood of control frames still
            // costs a wake-up each and would keep the connection from ever
            // being idle: over the request rate, the connection is closed.
            Message::Ping(_) | Message::Pong(_) => {
                if self.controls.try_take(Instant::now()) {
                    return Ok(());
                }
                let e = ServerFrame::error(None, ErrorCode::RateLimited, CONTROL_FLOOD);
                self.write(socket, &e).await?;
                return Err(Exit::Close(code::POLICY, CONTROL_FLOOD));
            }
            Message::Close(_) => return Err(Exit::Gone),
        };
        self.shared.metrics.frames_in.inc();
        let frame = match frames::parse(&text) {
            Ok(f) => f,
            Err(r) => {
                if let Some(frames::SendRef {
                    id: Some(id),
                    conv,
                    prev,
                    ..
                }) = r.send.as_deref()
                {
                    // A send refused for good: it never blocks the chain.
                    self.shared.refusals.remember(&self.link.key, *id, conv.clone(), *prev);
                }
                return self.write(socket, &r.into_frame()).await;
            }
        };
        let is_send = matches!(frame, ClientFrame::Send { .. } | ClientFrame::Batch { .. });
        if !is_send && !self.requests.try_take(Instant::now()) {
            let req = match &frame {
                ClientFrame::Sync { req, .. }
                | ClientFrame::History { req, .. }
                | ClientFrame::SyncConv { req, .. }
                | ClientFrame::Poll { req, .. }
                | ClientFrame::Unread { req } => Some(*req),
                ClientFrame::Ping { req } => *req,
                _ => None,
            };
            let e = ServerFrame::error(req, ErrorCode::RateLimited, "too many requests; slow down");
            return self.write(socket, &e).await;
        }
        let answer = match frame {
            ClientFrame::Hello { .. } => Some(ServerFrame::error(
                None,
                ErrorCode::AlreadyAuthenticated,
                "this connection is authenticated",
            )),
            ClientFrame::Send {
                id,
                conv,
                body,
                prev,
                priority,
                vclock,
            } => {
                let request = SendRequest {
                    id,
                    conv,
                    body,
                    prev,
                    priority,
                    vclock,
                };
                send::send(
                    &self.shared,
                    Sender {
                        link: &self.link,
                        name: &self.name,
                        sends: &mut self.sends,
                    },
                    request,
                )
                .instrument(crate::publisher::send_span())
                .await
            }
            ClientFrame::Batch { conv, prev, commands } => {
                batch::batch(
                    &self.shared,
                    Sender {
                        link: &self.link,
                        name: &self.name,
                        sends: &mut self.sends,
                    },
                    conv,
                    prev,
                    commands,
                )
                .instrument(crate::publisher::send_span())
                .await
            }
            ClientFrame::Sync {
                req,
                after,
                limit,
                epoch,
                after_id,
            } => {
                let request = SyncRequest {
                    req,
                    after,
                    limit,
                    known: epoch,
                    after_id,
                };
                let synced = timeline::sync(&self.shared, &self.link, request).await;
                self.write(socket, &synced.frame).await?;
                if let Some(last) = synced.last {
                    let releases = self.rectifier.synced(last, Instant::now());
                    self.release(socket, releases).await?;
                }
                None
            }
            ClientFrame::History {
                req,
                conv,
                before,
                after,
                limit,
                epoch,
            } => {
                let request = HistoryRequest {
                    req,
                    conv,
                    before,
                    after,
                    limit,
                    known: epoch,
                };
                Some(history::history(&self.shared, &self.link, request).await)
            }
            ClientFrame::Cursor { user_seq } => timeline::cursor(&self.shared, &self.link, user_seq).await,
            ClientFrame::Ping { req } => Some(timeline::ping(&self.shared, &self.link, req).await),
            ClientFrame::SyncConv {
                req,
                conv,
                after,
                limit,
                epoch,
            } => {
                let request = diffusion::SyncConvRequest {
                    req,
                    conv,
                    after,
                    limit,
                    known: epoch,
                };
                Some(diffusion::sync_conv(&self.shared, &self.link, request).await)
            }
            ClientFrame::Poll { req, convs, wait_ms } => {
                poll::poll(&self.shared, &self.link, &mut self.poll, req, convs, wait_ms)
            }
            ClientFrame::Read { conv, conv_seq } => diffusion::read(&self.shared, &self.link, conv, conv_seq).await,
            ClientFrame::Unread { req } => Some(diffusion::unread(&self.shared, &self.link, req).await),
        };
        match answer {
            Some(frame) => self.write(socket, &frame).await,
            None => Ok(()),
        }
    }

    /// Writes one frame, counting it.
    async fn write(&mut self, socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), Exit> {
        let m = &self.shared.metrics;
        match frame {
            ServerFrame::Ack { .. } => m.acks.inc(),
            ServerFrame::Nack { .. } => m.nacks.inc(),
            ServerFrame::Push { .. } => m.pushes.inc(),
            ServerFrame::Pull { .. } => m.pulls.inc(),
            ServerFrame::Error { code, .. } => m.error(*code),
            _ => {}
        }
        let text = serde_json::to_string(frame).map_err(|_| Exit::Close(code::INTERNAL, "internal error"))?;
        self.write_raw(socket, Message::Text(text.into())).await?;
        self.shared.metrics.frames_out.inc();
        Ok(())
    }

    /// Writes a message. A client that does not read it within the idle
    /// timeout, or lets its queue overflow meanwhile, is closed with 1008:
    /// the write is abandoned between frames (the protocol layer keeps
    /// whole frames only), so the close frame can follow what is pending.
    async fn write_raw(&mut self, socket: &mut WebSocket, msg: Message) -> Result<(), Exit> {
        tokio::select! {
            r = tokio::time::timeout(self.shared.config.idle_timeout, socket.send(msg)) => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Exit::Gone),
                Err(_) => Err(Exit::Close(code::POLICY, TOO_SLOW)),
            },
            () = self.kick.cancelled() => Err(Exit::Close(code::POLICY, TOO_SLOW)),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
