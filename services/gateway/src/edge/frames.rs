//! Parsing client frames so each kind of bad input gets its own error code.
//!
//! A frame is first read as a JSON value (rejecting duplicate keys, which
//! different parsers resolve differently), then checked for an object with a
//! string `type`, then decoded into a [`ClientFrame`]. Error texts quote
//! client input only through [`seqline_core::input::quote`].
//!
//! A `send` is decoded field by field, so a refusal names the field, and
//! whatever of the message can be read (its id, conversation and `prev`)
//! travels with the refusal: the error names the message, and the gateway
//! remembers the refusal for the sends chained after it.

use seqline_core::input::{self, quote};
use seqline_core::model::VectorClock;
use seqline_core::protocol::{ClientFrame, ErrorCode, ServerFrame, CLIENT_FRAME_TYPES};
use seqline_core::{ClientMsgId, ConversationId};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The fields of a `send` frame.
const SEND_FIELDS: &[&str] = &["type", "id", "conv", "body", "prev", "priority", "vclock"];

/// Why a frame was refused, ready to become an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The frame's `req`, when it had a readable one.
    pub req: Option<u64>,
    /// Stable code.
    pub code: ErrorCode,
    /// For humans.
    pub message: String,
    /// For a `send`: what of the message could be read.
    pub send: Option<Box<SendRef>>,
}

/// What a refused `send` frame said about its message, as far as it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendRef {
    /// `id` as written, when it reads as a UUID in any spelling.
    pub named: Option<String>,
    /// `id` when it is in canonical form (what chains name).
    pub id: Option<ClientMsgId>,
    /// `conv`, when valid.
    pub conv: Option<ConversationId>,
    /// `prev`, when absent or canonical (`None` when unreadable too).
    pub prev: Option<ClientMsgId>,
}

impl Rejection {
    fn new(req: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            req,
            code,
            message: message.into(),
            send: None,
        }
    }

    /// The `error` frame: a send's names its message (`id`, `conv`, and the
    /// `message <id>: ` prefix) whenever the id could be read.
    pub fn into_frame(self) -> ServerFrame {
        match self.send.map(|s| *s) {
            Some(SendRef {
                named: Some(named),
                conv,
                ..
            }) => ServerFrame::send_error(&named, conv, self.code, self.message),
            Some(SendRef { conv, .. }) => ServerFrame::Error {
                req: self.req,
                code: self.code,
                message: self.message,
                id: None,
                conv,
                retry_after_ms: None,
            },
            None => ServerFrame::error(self.req, self.code, self.message),
        }
    }
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Result<ClientFrame, Rejection> {
    let value = input::parse_json(text.as_bytes())
        .map_err(|e| Rejection::new(None, ErrorCode::BadFrame, format!("the frame is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Rejection::new(
            None,
            ErrorCode::BadFrame,
            "a frame must be a JSON object",
        ));
    };
    let req = obj.get("req").and_then(Value::as_u64);
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Err(Rejection::new(
            req,
            ErrorCode::BadFrame,
            "a frame needs a string `type`",
        ));
    };
    if !CLIENT_FRAME_TYPES.contains(&kind) {
        return Err(Rejection::new(
            req,
            ErrorCode::UnknownType,
            format!("unknown frame type {}", quote(kind)),
        ));
    }
    if kind == "send" {
        return parse_send(obj);
    }
    input::decode(Value::Object(obj)).map_err(|e| Rejection::new(req, ErrorCode::InvalidField, e.to_string()))
}

/// A `send`, field by field.
fn parse_send(mut obj: Map<String, Value>) -> Result<ClientFrame, Rejection> {
    let id_text = obj.get("id").and_then(Value::as_str);
    let send = SendRef {
        named: id_text.filter(|s| uuid::Uuid::try_parse(s).is_ok()).map(str::to_owned),
        id: id_text.and_then(|s| ClientMsgId::parse_canonical(s).ok()),
        conv: obj
            .get("conv")
            .and_then(Value::as_str)
            .and_then(|s| ConversationId::parse(s).ok()),
        prev: obj
            .get("prev")
            .and_then(Value::as_str)
            .and_then(|s| ClientMsgId::parse_canonical(s).ok()),
    };
    let refuse = |message: String| Rejection {
        req: None,
        code: ErrorCode::InvalidField,
        message,
        send: Some(Box::new(send.clone())),
    };
    if let Some(unknown) = obj.keys().find(|k| !SEND_FIELDS.contains(&k.as_str())) {
        return Err(refuse(format!(
            "unknown field {}, expected one of `id`, `conv`, `body`, `prev`, `priority`, `vclock`",
            quote(unknown)
        )));
    }
    let missing = |name: &str| refuse(format!("missing field `{name}`"));
    let id: ClientMsgId = field(&mut obj, "id").map_err(refuse)?.ok_or_else(|| missing("id"))?;
    let conv: ConversationId = field(&mut obj, "conv")
        .map_err(refuse)?
        .ok_or_else(|| missing("conv"))?;
    let body: String = field(&mut obj, "body")
        .map_err(refuse)?
        .ok_or_else(|| missing("body"))?;
    let prev: Option<ClientMsgId> = field::<Option<ClientMsgId>>(&mut obj, "prev")
        .map_err(refuse)?
        .flatten();
    let priority: bool = field(&mut obj, "priority").map_err(refuse)?.unwrap_or_default();
    let vclock: VectorClock = field(&mut obj, "vclock").map_err(refuse)?.unwrap_or_default();
    return Ok(ClientFrame::Send {
        id,
        conv,
        body,
        prev,
        priority,
        vclock,
    });

    /// Decodes and removes one field; the error names it.
    fn field<T: DeserializeOwned>(obj: &mut Map<String, Value>, name: &str) -> Result<Option<T>, String> {
        match obj.remove(name) {
            None => Ok(None),
            Some(v) => input::decode(v).map(Some).map_err(|e| format!("`{name}`: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse(text).unwrap_err().code
    }

    #[test]
    fn each_kind_of_bad_input_has_its_code() {
        assert_eq!(code("not json"), ErrorCode::BadFrame);
        assert_eq!(code("[1,2]"), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"req":1}"#), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"type":"launch"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"sync","req":1,"after":"x"}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"sync","req":1,"after":-1}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"ping","sender":"bob"}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"history","req":1,"conv":"a b"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":"ping","type":"ping"}"#), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"type":"send","body":"\ud800"}"#), ErrorCode::BadFrame);
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(code(&deep), ErrorCode::BadFrame);
    }

    #[test]
    fn req_is_echoed_when_readable() {
        assert_eq!(
            parse(r#"{"type":"sync","req":9,"after":"x"}"#).unwrap_err().req,
            Some(9)
        );
        assert_eq!(parse(r#"{"type":"nope","req":4}"#).unwrap_err().req, Some(4));
    }

    #[test]
    fn a_refused_send_carries_what_of_it_reads() {
        let id = "5c1e0b3a-8f0e-4b0a-9c65-0f3f5d9f2a11";
        let prev = "0b6e0f7e-1d2c-4c43-8a55-b8b1f63e8a7d";
        let r = parse(&format!(
            r#"{{"type":"send","id":"{id}","conv":"g:x","body":7,"prev":"{prev}"}}"#
        ))
        .unwrap_err();
        let send = r.send.clone().unwrap();
        assert_eq!(send.named.as_deref(), Some(id));
        assert_eq!(send.id, ClientMsgId::parse(id).ok());
        assert_eq!(send.conv, ConversationId::parse("g:x").ok());
        assert_eq!(send.prev, ClientMsgId::parse(prev).ok());
        match r.into_frame() {
            ServerFrame::Error {
                req: None,
                code: ErrorCode::InvalidField,
                message,
                id: Some(named),
                conv: Some(conv),
                ..
            } => {
                assert_eq!((named.as_str(), conv.as_str()), (id, "g:x"));
                assert!(message.starts_with(&format!("message {id}: `body`: ")), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Another spelling is named as written, but is no id a chain can use.
        let upper = id.to_uppercase();
        let r = parse(&format!(r#"{{"type":"send","id":"{upper}","conv":"g:x","body":"x"}}"#)).unwrap_err();
        let send = r.send.unwrap();
        assert_eq!((send.named.as_deref(), send.id), (Some(upper.as_str()), None));
        // Other frames carry nothing of the kind.
        assert_eq!(parse(r#"{"type":"ping","x":1}"#).unwrap_err().send, None);
    }

    #[test]
    fn good_frames_parse() {
        assert_eq!(
            parse(r#"{"type":"ping","req":3}"#),
            Ok(ClientFrame::Ping { req: Some(3) })
        );
        let f = parse(r#"{"type":"cursor","user_seq":12}"#).unwrap();
        assert_eq!(f, ClientFrame::Cursor { user_seq: 12 });
    }
}
