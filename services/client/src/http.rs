//! The few HTTP API calls a client needs (create a direct or group
//! conversation, change members), over a minimal HTTP/1.1 client on a plain
//! TCP stream: one request per connection, `Connection: close`, bounded
//! answer size and time. Plain `http://` only (loopback or a trusted proxy).

use crate::error::{ClientError, Result};
use seqline_core::ids::{ClientMsgId, ConversationId, UserId};
use serde::Deserialize;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read, bytes.
const MAX_ANSWER: u64 = 1 << 20;

/// A conversation the server created.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Created {
    /// Its id.
    pub conv: ConversationId,
    /// The conv_seq of its `created` message.
    pub conv_seq: u64,
}

/// The HTTP API of one server, as one device.
#[derive(Clone)]
pub struct HttpApi {
    authority: String,
    prefix: String,
    token: String,
    timeout: Duration,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("authority", &self.authority)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl HttpApi {
    /// The API at `base` (`http://host:port[/prefix]`) with a bearer token.
    pub fn new(base: &str, token: impl Into<String>) -> Result<Self> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Config(format!("`{base}` is not an http:// URL")))?;
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(ClientError::Config(format!("`{base}` names no host")));
        }
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        Ok(Self {
            authority: authority.into(),
            prefix,
            token: token.into(),
            timeout: Duration::from_secs(10),
        })
    }

    /// The HTTP base of a WebSocket URL: `ws://host:port/v1/ws` → `http://host:port`.
    pub fn base_of_ws_url(url: &str) -> Result<String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| ClientError::Config(format!("`{url}` is not a ws:// URL")))?;
        let authority = rest.split('/').next().unwrap_or_default();
        Ok(format!("http://{authority}"))
    }

    /// The same API with another answer timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates the direct conversation with `peer`.
    pub async fn create_direct(&self, peer: &UserId) -> Result<Created> {
        self.create_direct_with(peer, ClientMsgId::random()).await
    }

    /// Creates the direct conversation with `peer`; `request_id` makes a
    /// retry of the same call harmless.
    pub async fn create_direct_with(&self, peer: &UserId, request_id: ClientMsgId) -> Result<Created> {
        let body = serde_json::json!({ "kind": "direct", "members": [peer], "request_id": request_id });
        self.post_as("/v1/conversations", &body).await
    }

    /// Creates a group titled `title` with `members` (the caller joins as admin).
    pub async fn create_group(&self, title: &str, members: &[UserId]) -> Result<Created> {
        self.create_group_with(None, title, members, ClientMsgId::random())
            .await
    }

    /// Creates a group, with a chosen id when `id` is given; `request_id`
    /// makes a retry of the same call harmless.
    pub async fn create_group_with(
        &self,
        id: Option<&ConversationId>,
        title: &str,
        members: &[UserId],
        request_id: ClientMsgId,
    ) -> Result<Created> {
        let mut body = serde_json::json!({
            "kind": "group", "title": title, "members": members, "request_id": request_id
        });
        if let (Some(id), Some(obj)) = (id, body.as_object_mut()) {
            obj.insert("id".into(), serde_json::json!(id));
        }
        self.post_as("/v1/conversations", &body).await
    }

    /// Adds and removes members; returns the server's answer object.
    pub async fn change_members(
        &self,
        conv: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
    ) -> Result<serde_json::Value> {
        self.change_members_with(conv, add, remove, ClientMsgId::random()).await
    }

    /// Adds and removes members; `request_id` makes a retry harmless.
    pub async fn change_members_with(
        &self,
        conv: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
        request_id: ClientMsgId,
    ) -> Result<serde_json::Value> {
        let body = serde_json::json!({ "add": add, "remove": remove, "request_id": request_id });
        self.post_as(&format!("/v1/conversations/{conv}/members"), &body).await
    }

    async fn post_as<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T> {
        let (status, answer) = self.post(path, body).await?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Http {
                status,
                body: String::from_utf8_lossy(&answer).into_owned(),
            });
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(format!("answer to POST {path}: {e}")))
    }

    /// POSTs a JSON body; returns the status and the answer's body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<(u16, Vec<u8>)> {
        let payload = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let head = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.prefix,
            self.authority,
            self.token,
            payload.len()
        );
        let exchange = async {
            let mut stream = TcpStream::connect(&self.authority).await?;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&payload).await?;
            stream.flush().await?;
            let mut raw = Vec::new();
            stream.take(MAX_ANSWER).read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Disconnected(format!("POST {path}: {e}")))?;
        parse_response(&raw)
    }
}

/// Splits an HTTP/1.1 answer into status and body (length-delimited,
/// chunked, or up to the end of the stream). An answer cut short (the server
/// went away mid-answer) is `Disconnected`, so callers may retry it.
pub(crate) fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
    let bad = |why: &str| ClientError::Protocol(format!("bad HTTP answer: {why}"));
    let cut = |why: &str| ClientError::Disconnected(format!("the HTTP answer was cut short: {why}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| cut("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    if chunked {
        return dechunk(body)
            .ok_or_else(|| cut("incomplete chunked body"))
            .map(|b| (status, b));
    }
    let body = match length {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        Some(_) => return Err(cut("body shorter than content-length")),
        None => body.to_vec(),
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_errors() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(raw).unwrap(), (201, b"{}".to_vec()));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, b"abcde".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err_and(|e| e.is_retryable()));
        assert!(parse_response(b"").is_err_and(|e| e.is_retryable()));
        assert!(parse_response(b"garbage\r\n\r\n").is_err_and(|e| !e.is_retryable()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab").is_err());
    }

    #[test]
    fn bases_and_urls() {
        assert_eq!(
            HttpApi::base_of_ws_url("ws://127.0.0.1:7600/v1/ws").unwrap(),
            "http://127.0.0.1:7600"
        );
        assert!(HttpApi::base_of_ws_url("wss://x").is_err());
        let api = HttpApi::new("http://127.0.0.1:7600/api/", "s3cret").unwrap();
        assert_eq!(
            (api.authority.as_str(), api.prefix.as_str()),
            ("127.0.0.1:7600", "/api")
        );
        assert!(HttpApi::new("https://x", "t").is_err());
        assert!(!format!("{api:?}").contains("s3cret"), "the token never shows in Debug");
    }

    #[tokio::test]
    async fn posts_to_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\"direct\"") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            let body = br#"{"conv":"dm:alice:bob","conv_seq":1}"#;
            let head = format!("HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let api = HttpApi::new(&format!("http://{addr}"), "tok").unwrap();
        let created = api.create_direct(&UserId::parse("bob").unwrap()).await.unwrap();
        assert_eq!(created.conv.as_str(), "dm:alice:bob");
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /v1/conversations HTTP/1.1\r\n"));
        assert!(request.contains("Authorization: Bearer tok\r\n"));
    }
}
