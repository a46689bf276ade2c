//! Client input, handled so that an error text never carries more of it than
//! a short, escaped prefix.
//!
//! - [`quote`] is the one way an error text quotes client input: at most
//!   [`MAX_QUOTED_CHARS`] characters, control and bidi/invisible characters
//!   escaped, `…` when cut.
//! - [`parse_json`] reads a JSON document refusing duplicate object keys
//!   (parsers resolve them differently) and deep nesting.
//! - [`decode`] turns a parsed value into a typed one with errors whose
//!   every piece of input goes through [`quote`] (serde's own texts, such as
//!   `invalid type: string "…"` or ``unknown field `…` ``, would repeat a
//!   string or a key at full length).

use serde::de::{
    self, value::MapAccessDeserializer, value::MapDeserializer, value::SeqDeserializer, DeserializeOwned, Deserializer,
    Expected, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt::{self, Write};

/// Most characters of client input an error text quotes.
pub const MAX_QUOTED_CHARS: usize = 40;

/// Longest error text built from a library's message (which may be long).
const MAX_TEXT_CHARS: usize = 300;

/// Whether `c` is shown as an escape rather than itself: control characters,
/// and format characters that reorder or hide text (bidi embeddings,
/// overrides and isolates, marks, zero-width characters, the BOM, line and
/// paragraph separators, tag characters).
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if must_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Quotes client input for an error text: `"` + at most
/// [`MAX_QUOTED_CHARS`] characters of `s`, escaped (`\"`, `\\`, `\n`,
/// `\u{202e}`, …), + `…` when `s` was longer + `"`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(MAX_QUOTED_CHARS + 8);
    out.push('"');
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_QUOTED_CHARS) {
        push_escaped(&mut out, c);
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// Makes a text from a library safe to show: control and bidi characters
/// escaped, at most a few hundred characters. For texts that should not
/// hold client input at all (defence in depth).
fn tame(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_CHARS + 4));
    let mut chars = text.chars();
    for c in chars.by_ref().take(MAX_TEXT_CHARS) {
        if must_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Why client input was refused; the text quotes input only through [`quote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl InputError {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

fn unexpected(u: Unexpected<'_>) -> String {
    match u {
        Unexpected::Str(s) => format!("string {}", quote(s)),
        Unexpected::Char(c) => format!("character {}", quote(c.encode_utf8(&mut [0; 4]))),
        Unexpected::Bytes(_) => "byte array".into(),
        Unexpected::Other(s) => tame(s),
        other => other.to_string(),
    }
}

fn one_of(names: &'static [&'static str]) -> String {
    match names {
        [] => "nothing".into(),
        [one] => format!("`{one}`"),
        _ => {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

impl de::Error for InputError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        InputError(tame(&msg.to_string()))
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        InputError(format!(
            "invalid type: {}, expected {}",
            unexpected(unexp),
            tame(&exp.to_string())
        ))
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        InputError(format!(
            "invalid value: {}, expected {}",
            unexpected(unexp),
            tame(&exp.to_string())
        ))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        InputError(format!(
            "unknown variant {}, expected {}",
            quote(variant),
            one_of(expected)
        ))
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        InputError(format!("unknown field {}, expected {}", quote(field), one_of(expected)))
    }
}

/// Reads one JSON document into a value, refusing duplicate object keys
/// and nesting deeper than serde_json's limit (128). The error is
/// serde_json's syntax error (which names a position, not the input) or
/// names the duplicate key through [`quote`].
pub fn parse_json(bytes: &[u8]) -> Result<Value, InputError> {
    let Strict(value) = serde_json::from_slice(bytes).map_err(|e| InputError(tame(&e.to_string())))?;
    Ok(value)
}

/// Decodes `value` into `T`; errors quote input only through [`quote`].
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, InputError> {
    T::deserialize(Input(value))
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
                return Err(de::Error::custom(format_args!("duplicate key {}", quote(&key))));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// A parsed value as a deserializer whose errors are [`InputError`]s.
struct Input(Value);

impl<'de> IntoDeserializer<'de, InputError> for Input {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn unexpected_of(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Input {
    type Error = InputError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, InputError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Input));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(obj) => {
                let mut map = MapDeserializer::new(obj.into_iter().map(|(k, v)| (k, Input(v))));
                let out = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, InputError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Input(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, InputError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, InputError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(obj) if obj.len() == 1 => visitor.visit_enum(MapAccessDeserializer::new(
                MapDeserializer::new(obj.into_iter().map(|(k, v)| (k, Input(v)))),
            )),
            other => Err(de::Error::invalid_type(
                unexpected_of(&other),
                &"a string or an object with one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ClientFrame;

    #[test]
    fn quotes_a_short_escaped_prefix() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "x".repeat(60_000);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}…\"", "x".repeat(MAX_QUOTED_CHARS)));
        assert_eq!(quote(&"x".repeat(MAX_QUOTED_CHARS)), format!("\"{}\"", "x".repeat(40)));
        assert_eq!(quote("a\u{0}b\nc\u{1b}[2J"), "\"a\\u{0}b\\nc\\u{1b}[2J\"");
        assert_eq!(quote("evil\u{202e}txt.exe"), "\"evil\\u{202e}txt.exe\"");
        assert_eq!(
            quote("\u{2066}\u{200f}\u{feff}\u{2028}"),
            "\"\\u{2066}\\u{200f}\\u{feff}\\u{2028}\""
        );
        assert_eq!(quote("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
        // Characters, not bytes, are counted; nothing is cut inside one.
        assert_eq!(quote(&"é".repeat(41)), format!("\"{}…\"", "é".repeat(40)));
    }

    fn assert_tame(text: &str) {
        assert!(text.chars().count() < 400, "too long: {} chars", text.chars().count());
        assert!(!text.chars().any(must_escape), "unescaped: {text:?}");
    }

    #[test]
    fn serde_texts_quote_only_a_prefix() {
        let long = "y".repeat(60_000);
        let hostile = format!("\u{202e}\u{0}\n{long}");
        let cases = [
            serde_json::json!({"type": "sync", "req": 1, "after": hostile}),
            serde_json::json!({"type": "ping", hostile.clone(): 1}),
            serde_json::json!({"type": "history", "req": 1, "conv": hostile}),
            serde_json::json!({"type": "hello", "token": 5, "x": hostile}),
            serde_json::json!({"type": "poll", "req": 1, "convs": [{"conv": "g:a", "after": hostile}]}),
        ];
        for v in cases {
            let e = decode::<ClientFrame>(v).unwrap_err();
            assert_tame(e.as_str());
        }
        let e = decode::<u64>(Value::String(hostile.clone())).unwrap_err();
        assert_eq!(
            e.as_str(),
            format!(
                "invalid type: string \"\\u{{202e}}\\u{{0}}\\n{}…\", expected u64",
                "y".repeat(37)
            )
        );
        let e = decode::<ClientFrame>(serde_json::json!({"type": "ping", "sender": "bob"})).unwrap_err();
        assert!(e.as_str().starts_with("unknown field \"sender\""), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_and_quoted() {
        let e = parse_json(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(e.as_str().contains("duplicate key \"a\""), "{e}");
        let long = "k".repeat(60_000);
        let e = parse_json(format!(r#"{{"{long}":1,"{long}":2}}"#).as_bytes()).unwrap_err();
        assert_tame(e.as_str());
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(parse_json(deep.as_bytes()).is_err());
        assert!(parse_json(b"{\"a\":[1,{\"b\":null}],\"c\":-1.5}").is_ok());
    }

    #[test]
    fn decoding_matches_serde_json_on_good_input() {
        let text = r#"{"type":"poll","req":4,"convs":[{"conv":"g:a","after":3}],"wait_ms":null}"#;
        let ours: ClientFrame = decode(parse_json(text.as_bytes()).unwrap()).unwrap();
        let theirs: ClientFrame = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        let text = r#"{"type":"send","id":"5c1e0b3a-8f0e-4b0a-9c65-0f3f5d9f2a11","conv":"g:a","body":"hi","vclock":{"bob":2},"prev":null}"#;
        let ours: ClientFrame = decode(parse_json(text.as_bytes()).unwrap()).unwrap();
        let theirs: ClientFrame = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert!(decode::<ClientFrame>(serde_json::json!({"type": "sync", "req": 1, "after": -1})).is_err());
    }
}
