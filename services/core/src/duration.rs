//! Durations in configuration files are strings like `"250ms"`, `"5s"`,
//! `"2m"`, `"1h"`. Use `#[serde(with = "seqline_core::duration")]`.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"` (a bare number means seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like \"250ms\" or \"5s\""))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => return Err(format!("unknown duration unit `{other}` (use ms, s, m or h)")),
    };
    Ok(d)
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: &Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Serde serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(d))
}

/// Serde deserializer.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("7").unwrap(), Duration::from_secs(7));
        assert!(parse("fast").is_err());
        assert!(parse("5 parsecs").is_err());
        assert_eq!(format(&Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(&Duration::from_secs(3)), "3s");
    }
}
