//! The HTTP side: errors as `{"error":{"code","message"}}`, bearer-token
//! authentication, bounded JSON bodies, health, readiness and metrics. The
//! conversation API is in `conversations`; `upgrade` admits WebSockets.

pub(crate) mod conversations;
pub(crate) mod upgrade;

use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seqline_core::input;
use seqline_core::model::RefusalCode;
use seqline_core::protocol::ErrorCode;
use seqline_core::token::{now_secs, Claims, TokenError};
use seqline_core::UserId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The stable code of an HTTP error: a protocol error code or, for a command
/// the sequencer refused, its refusal code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum ApiCode {
    Error(ErrorCode),
    Refusal(RefusalCode),
}

/// An HTTP error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ApiCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code: ApiCode::Error(code),
            message: message.into(),
        }
    }

    /// The answer to a command the sequencer refused.
    pub fn refused(code: RefusalCode, message: String) -> Self {
        let status = match code {
            RefusalCode::NotMember | RefusalCode::Forbidden => StatusCode::FORBIDDEN,
            RefusalCode::Conflict | RefusalCode::OutOfOrder => StatusCode::CONFLICT,
            RefusalCode::Invalid | RefusalCode::TooLarge => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: ApiCode::Refusal(code),
            message,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message)
    }

    pub fn not_member() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NotMember,
            "not a member of this conversation, or it does not exist",
        )
    }

    pub fn store(e: &seqline_core::Error) -> Self {
        tracing::warn!(error = %e, "a store call failed");
        Self::unavailable("the store is unavailable; retry later")
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: ApiCode,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The caller, from `Authorization: Bearer <token>`.
pub(crate) struct Auth(pub Claims);

impl Auth {
    pub fn user(&self) -> &UserId {
        &self.0.sub
    }
}

impl FromRequestParts<Arc<Shared>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let unauthorized = |code, msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, msg);
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            shared.metrics.error(ErrorCode::Unauthenticated);
            return Err(unauthorized(
                ErrorCode::Unauthenticated,
                "send Authorization: Bearer <token>",
            ));
        };
        match shared.key.verify(token.trim(), now_secs()) {
            Ok(claims) => Ok(Auth(claims)),
            Err(e @ (TokenError::Expired | TokenError::NotYetValid)) => {
                shared.metrics.error(ErrorCode::TokenExpired);
                Err(unauthorized(ErrorCode::TokenExpired, &e.to_string()))
            }
            Err(e) => {
                shared.metrics.error(ErrorCode::BadToken);
                Err(unauthorized(ErrorCode::BadToken, &e.to_string()))
            }
        }
    }
}

/// A request body read within `http_body_timeout` (and, as for [`Bytes`],
/// within `max_http_body_bytes`). A body still arriving at the deadline
/// gets 408, and the connection is closed (its unread rest cannot be
/// skipped); so does a body that trickles in a byte at a time.
pub(crate) struct TimedBody(Result<Bytes, BytesRejection>);

impl FromRequest<Arc<Shared>> for TimedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        match tokio::time::timeout(shared.config.http_body_timeout, Bytes::from_request(req, shared)).await {
            Ok(body) => Ok(Self(body)),
            Err(_) => {
                shared.metrics.error(ErrorCode::BadFrame);
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::BadFrame,
                    "the request body did not arrive in time",
                ))
            }
        }
    }
}

/// Reads a JSON body within the size limit: 413 when over it, 400 when it
/// is not JSON or has duplicate keys (`bad_frame`, as over WebSocket) or
/// does not fit the shape (`invalid_field`). Error texts quote the body
/// only through [`seqline_core::input::quote`].
pub(crate) fn json_body<T: DeserializeOwned>(TimedBody(body): TimedBody) -> Result<T, ApiError> {
    let bytes = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                "the body is too large",
            ));
        }
        Err(r) => return Err(ApiError::new(r.status(), ErrorCode::BadFrame, r.body_text())),
    };
    let value = input::parse_json(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadFrame,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    input::decode(value).map_err(|e| ApiError::invalid(e.to_string()))
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the receipt consumer is subscribed and the store answers.
pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let subscribed = shared.ready.load(Ordering::Acquire);
    let probe = UserId::parse("readyz-probe").map_err(|e| e.to_string());
    let store_ok = match probe {
        Ok(user) => shared.ports.store.timeline_head(&user).await.is_ok(),
        Err(_) => false,
    };
    if subscribed && store_ok && !shared.stop.is_cancelled() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        let why = if subscribed {
            "the store does not answer"
        } else {
            "the receipt consumer is not subscribed"
        };
        ApiError::unavailable(why).into_response()
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

/// Anything else: 404 in the usual error shape.
pub(crate) async fn fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint")
}

/// A known path with another method: 405 in the usual error shape (the
/// router adds `Allow`).
pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!(
            "{} is not allowed on this path; the Allow header lists the methods that are",
            input::quote(method.as_str())
        ),
    )
}
