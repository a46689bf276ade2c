//! One WebSocket connection: the `hello` handshake, registration (registry
//! and presence), the session, and the close.

use super::Session;
use crate::edge::close::{code, socket_error, Exit, CONTROL_FLOOD};
use crate::edge::frames;
use crate::edge::ratelimit::TokenBucket;
use crate::outbox::{self, Bounds, Reader};
use crate::registry::{DeviceKey, Link};
use crate::state::{Shared, Slot};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use seqline_core::protocol::{ClientFrame, ErrorCode, Limits, ServerFrame, PROTOCOL_VERSION};
use seqline_core::records::{MAX_BATCH_BYTES, MAX_BATCH_COMMANDS};
use seqline_core::token::{now_secs, Claims, TokenError};
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, info, info_span, warn, Instrument, Span};

/// Frames before a good `hello` that are answered before the connection is closed.
const MAX_UNAUTHENTICATED: u32 = 3;

/// The connection's whole life; `token` (the task tracker's) is held until
/// it ends. A plain function returning the future, so the span wrapper adds
/// no async frame holding a second copy of the socket (every idle
/// connection pays for its task's size).
pub(crate) fn run(
    shared: Arc<Shared>,
    socket: WebSocket,
    slot: Slot,
    token: TaskTrackerToken,
) -> impl Future<Output = ()> + Send {
    let span = info_span!(
        "run",
        conn = slot.id,
        user_id = tracing::field::Empty,
        device = tracing::field::Empty
    );
    serve(shared, socket, slot, token).instrument(span)
}

async fn serve(shared: Arc<Shared>, mut socket: WebSocket, slot: Slot, token: TaskTrackerToken) {
    let exit = match hello(&shared, &mut socket).await {
        Ok(claims) => {
            Span::current()
                .record("user_id", claims.sub.as_str())
                .record("device", claims.dev.as_str());
            serve_session(&shared, &mut socket, slot.id, claims).await
        }
        Err(exit) => exit,
    };
    debug!(?exit, "connection ends");
    if let Exit::Close(code, reason) = exit {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // The close frame goes behind whatever the client has not read yet
        // (a slow reader's socket may be full), so the whole close is
        // bounded. Reading until the client answers lets it read ours, and
        // leaves nothing unread here that would turn our close into a reset
        // (which could discard data the client has not read yet).
        let closing = async {
            if socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = socket.recv().await {}
            }
        };
        if tokio::time::timeout(shared.config.close_timeout, closing)
            .await
            .is_err()
        {
            debug!("the client did not take the close in time");
        }
    }
    drop(slot);
    drop(token);
}

/// Sends one frame during the handshake.
async fn say(shared: &Shared, socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), Exit> {
    if let ServerFrame::Error { code, .. } = frame {
        shared.metrics.error(*code);
    }
    let text = serde_json::to_string(frame).map_err(|_| Exit::Gone)?;
    match tokio::time::timeout(shared.config.idle_timeout, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => {
            shared.metrics.frames_out.inc();
            Ok(())
        }
        _ => Err(Exit::Gone),
    }
}

/// Waits for a good `hello`; answers anything else and gives up after a few.
async fn hello(shared: &Shared, socket: &mut WebSocket) -> Result<Claims, Exit> {
    let deadline = tokio::time::Instant::now() + shared.config.hello_timeout;
    let mut strikes = 0;
    // Control frames before hello are limited as in the session.
    let rate = shared.config.max_requests_per_sec;
    let mut controls = TokenBucket::new(rate, rate, std::time::Instant::now());
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout_at(deadline, socket.recv()) => m,
            () = shared.stop.cancelled() => return Err(Exit::Close(code::GOING_AWAY, "server shutting down")),
        };
        let msg = match msg {
            Err(_) => {
                let e = ServerFrame::error(None, ErrorCode::Unauthenticated, "no hello in time");
                say(shared, socket, &e).await?;
                return Err(Exit::Close(code::POLICY, "no hello in time"));
            }
            Ok(None) => return Err(Exit::Gone),
            Ok(Some(Err(e))) => return Err(socket_error(&shared.metrics, e)),
            Ok(Some(Ok(m))) => m,
        };
        let reply = match msg {
            Message::Text(text) => {
                shared.metrics.frames_in.inc();
                match frames::parse(&text) {
                    Ok(ClientFrame::Hello { token }) => return check_token(shared, socket, &token).await,
                    Ok(ClientFrame::Send { id, conv, .. }) => ServerFrame::send_error(
                        &id.to_string(),
                        Some(conv),
                        ErrorCode::Unauthenticated,
                        "send hello with a token first",
                    ),
                    Ok(_) => ServerFrame::error(None, ErrorCode::Unauthenticated, "send hello with a token first"),
                    Err(r) => r.into_frame(),
                }
            }
            Message::Binary(_) => {
                shared.metrics.frames_in.inc();
                ServerFrame::error(
                    None,
                    ErrorCode::BadFrame,
                    "binary frames are not accepted; send JSON text",
                )
            }
            Message::Ping(_) | Message::Pong(_) => {
                if controls.try_take(std::time::Instant::now()) {
                    continue;
                }
                let e = ServerFrame::error(None, ErrorCode::RateLimited, CONTROL_FLOOD);
                say(shared, socket, &e).await?;
                return Err(Exit::Close(code::POLICY, CONTROL_FLOOD));
            }
            Message::Close(_) => return Err(Exit::Gone),
        };
        say(shared, socket, &reply).await?;
        strikes += 1;
        if strikes >= MAX_UNAUTHENTICATED {
            return Err(Exit::Close(code::POLICY, "authenticate first"));
        }
    }
}

async fn check_token(shared: &Shared, socket: &mut WebSocket, token: &str) -> Result<Claims, Exit> {
    match shared.key.verify(token, now_secs()) {
        Ok(claims) => Ok(claims),
        Err(e @ (TokenError::Expired | TokenError::NotYetValid)) => {
            say(
                shared,
                socket,
                &ServerFrame::error(None, ErrorCode::TokenExpired, e.to_string()),
            )
            .await?;
            Err(Exit::Close(code::POLICY, "token expired"))
        }
        Err(e) => {
            say(
                shared,
                socket,
                &ServerFrame::error(None, ErrorCode::BadToken, e.to_string()),
            )
            .await?;
            Err(Exit::Close(code::POLICY, "bad token"))
        }
    }
}

/// Registers the authenticated connection, welcomes it and runs the session.
async fn serve_session(shared: &Arc<Shared>, socket: &mut WebSocket, id: u64, claims: Claims) -> Exit {
    let exp = claims.exp;
    let name = claims.name.unwrap_or_default();
    let key = DeviceKey {
        user: claims.sub,
        device: claims.dev,
    };
    let bounds = Bounds {
        bytes: shared.config.send_queue_bytes,
        frames: shared.config.send_queue,
        priority: shared.config.priority_queue,
    };
    let (tx, priority_tx, outbox) = outbox::outbox(bounds, Arc::clone(&shared.metrics));
    let kick = CancellationToken::new();
    let link = Arc::new(Link::new(id, key.clone(), tx, priority_tx, kick.clone()));
    if shared.registry.attach(Arc::clone(&link)).is_err() {
        let e = ServerFrame::error(None, ErrorCode::RateLimited, "too many connections for this user");
        return match say(shared, socket, &e).await {
            Ok(()) => Exit::Close(code::TRY_AGAIN_LATER, "too many connections for this user"),
            Err(exit) => exit,
        };
    }
    let joined = Joined {
        outbox: &outbox,
        link: Arc::clone(&link),
        name,
    };
    let exit = welcome_and_run(shared, socket, &key, exp, joined, &kick).await;
    shared.reads.follows.drop_link(&link).await;
    if shared.registry.detach(&key, id) {
        let presence = &shared.ports.presence;
        if let Err(e) = presence.unregister(&key.user, &key.device, &shared.config.id).await {
            warn!(error = %e, "unregistering presence failed; the entry expires by itself");
        }
    }
    exit
}

/// A registered connection, as its session will hold it: the reader of its
/// queue, its link and the display name from its token.
struct Joined<'a> {
    outbox: &'a Reader,
    link: Arc<Link>,
    name: String,
}

async fn welcome_and_run(
    shared: &Arc<Shared>,
    socket: &mut WebSocket,
    key: &DeviceKey,
    exp: u64,
    joined: Joined<'_>,
    kick: &CancellationToken,
) -> Exit {
    let c = &shared.config;
    let store = &shared.ports.store;
    // Presence first, then the head: a package for anything after the head
    // then finds this connection.
    let registered = shared
        .ports
        .presence
        .register(&key.user, &key.device, &c.id, c.presence_ttl)
        .await;
    let state = match registered {
        Ok(()) => match (store.epoch().await, store.timeline_head(&key.user).await) {
            (Ok(epoch), Ok(head)) => store
                .device_cursor(&key.user, &key.device)
                .await
                .map(|cur| (epoch, head, cur)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (epoch, head, cursor) = match state {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot welcome: a backend is unavailable");
            let err = ServerFrame::error(None, ErrorCode::Unavailable, "the service is unavailable; retry later");
            return match say(shared, socket, &err).await {
                Ok(()) => Exit::Close(code::TRY_AGAIN_LATER, "backend unavailable"),
                Err(exit) => exit,
            };
        }
    };
    let welcome = ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        user: key.user.clone(),
        device: key.device.clone(),
        head: head.0,
        cursor: cursor.map(|c| c.0),
        epoch,
        limits: Limits {
            max_frame_bytes: c.max_frame_bytes,
            max_body_bytes: c.max_body_bytes,
            max_page: c.max_page,
            max_sends_per_sec: c.max_sends_per_sec,
            max_batch_commands: MAX_BATCH_COMMANDS,
            max_batch_bytes: MAX_BATCH_BYTES,
        },
    };
    if let Err(exit) = say(shared, socket, &welcome).await {
        return exit;
    }
    info!(head = head.0, "connection authenticated");
    let Joined { outbox, link, name } = joined;
    // Held here and run by reference: moved into `run`, it would be kept
    // twice in the connection's future.
    let mut session = Session::new(Arc::clone(shared), head.0, exp, name, link);
    session.run(socket, outbox, kick).await
}
