//! Parsing client frames so each kind of bad input gets its own error code.
//!
//! A frame is first read as a JSON value (rejecting duplicate keys, which
//! different parsers resolve differently), then checked for an object with a
//! string `type`, then decoded into a [`ClientFrame`].

use seqline_core::protocol::{ClientFrame, ErrorCode, CLIENT_FRAME_TYPES};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why a frame was refused, ready to become an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The frame's `req`, when it had a readable one.
    pub req: Option<u64>,
    /// Stable code.
    pub code: ErrorCode,
    /// For humans.
    pub message: String,
}

impl Rejection {
    fn new(req: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            req,
            code,
            message: message.into(),
        }
    }
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Result<ClientFrame, Rejection> {
    let Strict(value) = serde_json::from_str(text)
        .map_err(|e| Rejection::new(None, ErrorCode::BadFrame, format!("the frame is not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
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
        let shown: String = kind.chars().take(32).collect();
        return Err(Rejection::new(
            req,
            ErrorCode::UnknownType,
            format!("unknown frame type `{shown}`"),
        ));
    }
    serde_json::from_value(value).map_err(|e| Rejection::new(req, ErrorCode::InvalidField, e.to_string()))
}

/// A JSON value read with duplicate object keys refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                let shown: String = key.chars().take(32).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
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
    fn good_frames_parse() {
        assert_eq!(
            parse(r#"{"type":"ping","req":3}"#),
            Ok(ClientFrame::Ping { req: Some(3) })
        );
        let f = parse(r#"{"type":"cursor","user_seq":12}"#).unwrap();
        assert_eq!(f, ClientFrame::Cursor { user_seq: 12 });
    }
}
