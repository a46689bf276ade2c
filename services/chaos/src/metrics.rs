//! Reads the gateway's `/metrics` (Prometheus text) over a plain HTTP/1.1
//! request: acks so far, failure points reached.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `/metrics` text of the gateway at `addr`, if it answers within 2 s.
pub async fn scrape(addr: &str) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: seqline\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8(buf).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), fetch).await.ok().flatten()
}

/// The value of the series `name` (exact, labels included) in `text`.
pub fn value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// `seqline_gateway_acks_total` of the gateway at `addr`.
pub async fn acks(addr: &str) -> Option<u64> {
    value(&scrape(addr).await?, "seqline_gateway_acks_total")
}

/// Every `seqline_failpoint_hits_total{point="…"}` of the process at `addr`.
pub async fn failpoint_hits(addr: &str) -> Vec<(String, u64)> {
    let Some(text) = scrape(addr).await else {
        return Vec::new();
    };
    parse_failpoints(&text)
}

pub fn parse_failpoints(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("seqline_failpoint_hits_total{point=\"")?;
            let (point, value) = rest.split_once("\"} ")?;
            Some((point.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_labelled_series() {
        let text = "# TYPE seqline_gateway_acks_total counter\nseqline_gateway_acks_total 42\n\
                    seqline_failpoint_hits_total{point=\"gateway.after_append\"} 7\n\
                    seqline_failpoint_hits_total{point=\"timeline.after_store\"} 3\n";
        assert_eq!(value(text, "seqline_gateway_acks_total"), Some(42));
        assert_eq!(value(text, "seqline_gateway_acks"), None);
        assert_eq!(
            parse_failpoints(text),
            vec![
                ("gateway.after_append".to_string(), 7),
                ("timeline.after_store".to_string(), 3)
            ]
        );
    }
}
