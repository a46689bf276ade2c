//! `/v1/conversations`: create, change members, show and list. Commands go
//! through the sequencer like messages; the handler waits for the receipt.

use crate::http::{json_body, ApiError, Auth, TimedBody};
use crate::publisher::{Job, Requester};
use crate::state::Shared;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use seqline_core::model::{ConversationKind, Outcome, Role};
use seqline_core::protocol::ErrorCode;
use seqline_core::records::{Command, CreateCommand, MembersCommand, Origin};
use seqline_core::{ClientMsgId, ConversationId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most users one call may add or remove.
pub const MAX_MEMBERS_PER_CALL: usize = 1000;
/// Longest group title, bytes.
pub const MAX_TITLE_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum CreateBody {
    Direct {
        members: Vec<UserId>,
        #[serde(default)]
        request_id: Option<ClientMsgId>,
    },
    Group {
        #[serde(default)]
        id: Option<ConversationId>,
        #[serde(default)]
        title: String,
        members: Vec<UserId>,
        #[serde(default)]
        request_id: Option<ClientMsgId>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    #[serde(default)]
    add: Vec<UserId>,
    #[serde(default)]
    remove: Vec<UserId>,
    #[serde(default)]
    request_id: Option<ClientMsgId>,
}

#[derive(Serialize)]
struct Committed {
    conv: ConversationId,
    conv_seq: u64,
}

fn request_id(id: Option<ClientMsgId>) -> Result<ClientMsgId, ApiError> {
    match id {
        Some(id) if id.0.is_nil() => Err(ApiError::invalid("request_id must be a non-nil UUID")),
        Some(id) => Ok(id),
        None => Ok(ClientMsgId::random()),
    }
}

fn conv_param(path: Result<Path<String>, PathRejection>) -> Result<ConversationId, ApiError> {
    let Path(raw) = path.map_err(|r| ApiError::invalid(r.body_text()))?;
    ConversationId::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

fn members_ok(count: usize) -> Result<(), ApiError> {
    if count > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::TooLarge,
            format!("at most {MAX_MEMBERS_PER_CALL} members per call"),
        ));
    }
    Ok(())
}

/// `POST /v1/conversations`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Auth,
    body: TimedBody,
) -> Result<Json<Value>, ApiError> {
    let me = auth.user().clone();
    let (conv, kind, title, members, id) = match json_body::<CreateBody>(body)? {
        CreateBody::Direct {
            members,
            request_id: rid,
        } => {
            let others: BTreeSet<UserId> = members.into_iter().filter(|m| *m != me).collect();
            let mut others = others.into_iter();
            let (Some(other), None) = (others.next(), others.next()) else {
                return Err(ApiError::invalid("a direct conversation has exactly one other member"));
            };
            let conv = ConversationId::direct(&me, &other);
            (
                conv,
                ConversationKind::Direct,
                String::new(),
                vec![me.clone(), other],
                request_id(rid)?,
            )
        }
        CreateBody::Group {
            id,
            title,
            members,
            request_id: rid,
        } => {
            members_ok(members.len())?;
            if title.len() > MAX_TITLE_BYTES {
                return Err(ApiError::invalid(format!("the title is over {MAX_TITLE_BYTES} bytes")));
            }
            let conv = match id {
                Some(c) if c.is_direct() => return Err(ApiError::invalid("group ids may not start with dm:")),
                Some(c) => c,
                None => ConversationId::parse(format!("g:{}", uuid::Uuid::new_v4().simple()))
                    .map_err(|e| ApiError::invalid(e.to_string()))?,
            };
            (conv, ConversationKind::Group, title, members, request_id(rid)?)
        }
    };
    let result = submit(&shared, &auth, id, |origin| {
        Command::Create(CreateCommand {
            origin,
            conv,
            kind,
            title,
            members,
            client_msg_id: id,
        })
    })
    .await?;
    Ok(Json(json!(result)))
}

/// `POST /v1/conversations/{conv}/members`.
pub(crate) async fn change_members(
    State(shared): State<Arc<Shared>>,
    auth: Auth,
    path: Result<Path<String>, PathRejection>,
    body: TimedBody,
) -> Result<Json<Value>, ApiError> {
    let conv = conv_param(path)?;
    let MembersBody {
        add,
        remove,
        request_id: rid,
    } = json_body(body)?;
    if add.is_empty() && remove.is_empty() {
        return Err(ApiError::invalid("nothing to add or remove"));
    }
    members_ok(add.len() + remove.len())?;
    let id = request_id(rid)?;
    let result = submit(&shared, &auth, id, |origin| {
        Command::ChangeMembers(MembersCommand {
            origin,
            conv,
            client_msg_id: id,
            add,
            remove,
        })
    })
    .await?;
    Ok(Json(json!(result)))
}

/// Publishes a command and waits for its receipt.
async fn submit(
    shared: &Shared,
    auth: &Auth,
    id: ClientMsgId,
    make: impl FnOnce(Origin) -> Command,
) -> Result<Committed, ApiError> {
    let (ticket, receipt) = shared.receipt_waiters.register(id);
    let origin = Origin {
        name: auth.0.name.clone().unwrap_or_default(),
        gateway: shared.config.id.clone(),
        user: auth.0.sub.clone(),
        device: auth.0.dev.clone(),
        request: ticket.request,
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let job = Job {
        command: make(origin),
        requester: Requester::Request(done_tx),
        trace: seqline_telemetry::current_traceparent(),
    };
    if shared.publisher.publish(job).await.is_err() {
        return Err(ApiError::unavailable("the gateway is stopping"));
    }
    match done_rx.await {
        Ok(Ok(())) => {}
        _ => {
            return Err(ApiError::unavailable(
                "the log is unavailable; retry with the same request_id",
            ))
        }
    }
    let waited = tokio::select! {
        r = tokio::time::timeout(shared.config.http_receipt_timeout, receipt) => r,
        () = shared.stop.cancelled() => return Err(ApiError::unavailable("the gateway is stopping")),
    };
    let receipt = match waited {
        Ok(Ok(r)) => r,
        _ => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Unavailable,
                "no answer from the sequencer in time; retry with the same request_id",
            ))
        }
    };
    drop(ticket);
    match receipt.outcome {
        Outcome::Sequenced { conv_seq } => Ok(Committed {
            conv: receipt.conv,
            conv_seq: conv_seq.0,
        }),
        Outcome::Refused { code, reason } => Err(ApiError::refused(code, reason)),
    }
}

/// `GET /v1/conversations/{conv}`: members only.
pub(crate) async fn show(
    State(shared): State<Arc<Shared>>,
    auth: Auth,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let conv = conv_param(path)?;
    let store = &shared.ports.store;
    if store
        .member_role(&conv, auth.user())
        .await
        .map_err(|e| ApiError::store(&e))?
        .is_none()
    {
        return Err(ApiError::not_member());
    }
    let meta = store.conversation_meta(&conv).await.map_err(|e| ApiError::store(&e))?;
    let Some(meta) = meta else {
        return Err(ApiError::not_member());
    };
    let members = store.members(&conv).await.map_err(|e| ApiError::store(&e))?;
    let head = store.conversation_head(&conv).await.map_err(|e| ApiError::store(&e))?;
    let members: Vec<Value> = members
        .into_iter()
        .map(|(user, role): (UserId, Role)| json!({ "user": user, "role": role }))
        .collect();
    Ok(Json(json!({
        "conv": meta.conv,
        "kind": meta.kind,
        "title": meta.title,
        "created_by": meta.created_by,
        "created_ms": meta.created_ms,
        "head": head.map_or(0, |h| h.0),
        "members": members,
    })))
}

/// `GET /v1/conversations`: the caller's conversations.
pub(crate) async fn list(State(shared): State<Arc<Shared>>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let convs = shared
        .ports
        .store
        .conversations_of(auth.user())
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(json!({ "conversations": convs })))
}
