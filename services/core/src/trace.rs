//! [`TraceParent`]: the W3C trace context a log record carries from the
//! append that wrote it to the consumer that reads it, so one trace runs
//! across every log hop.
//!
//! It is plain data here (the OpenTelemetry glue lives in the telemetry
//! crate): 25 bytes, `Copy`, so carrying it costs no allocation.

use std::fmt;

/// A W3C `traceparent` (version 00): trace id, parent span id, flags.
/// Both ids are non-zero, as the W3C format requires.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Its binary size: trace id, span id, flags.
    pub const LEN: usize = 25;

    /// A trace context, `None` when either id is all zeros (invalid).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of the span the record was written in.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The binary form: trace id, span id, flags.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..24].copy_from_slice(&self.span_id);
        out[24] = self.flags;
        out
    }

    /// Reads the binary form; `None` when it is short or invalid.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.get(..Self::LEN)?.try_into().ok()?;
        let trace_id = bytes[..16].try_into().ok()?;
        let span_id = bytes[16..24].try_into().ok()?;
        Self::new(trace_id, span_id, bytes[24])
    }

    /// Parses the header form `00-<32 hex>-<16 hex>-<2 hex>` (lowercase, as
    /// the W3C format requires); `None` when it is not one.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.as_bytes();
        if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut trace_id = [0; 16];
        let mut span_id = [0; 8];
        let mut flags = [0; 1];
        hex(&v[3..35], &mut trace_id)?;
        hex(&v[36..52], &mut span_id)?;
        hex(&v[53..55], &mut flags)?;
        Self::new(trace_id, span_id, flags[0])
    }
}

/// Decodes lowercase hex into `out` (two digits a byte).
fn hex(digits: &[u8], out: &mut [u8]) -> Option<()> {
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    for (pair, byte) in digits.chunks_exact(2).zip(out.iter_mut()) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

/// The header form, `00-<trace id>-<span id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        self.trace_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.span_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    const HEADER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_header_form_round_trips() {
        let t = TraceParent::parse(HEADER).unwrap();
        assert_eq!(t.to_string(), HEADER);
        assert_eq!(t.flags(), 1);
        assert_eq!(TraceParent::from_bytes(&t.to_bytes()), Some(t));
    }

    #[test]
    fn malformed_or_zero_contexts_are_refused() {
        for bad in [
            "",
            "junk",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c+b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert_eq!(TraceParent::from_bytes(&[1; 24]), None, "short");
    }
}
