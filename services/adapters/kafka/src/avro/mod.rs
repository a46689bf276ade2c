//! Records on the wire: Avro single-object encoding.
//!
//! Each record is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin)
//! fingerprint of its writer schema, then the Avro binary datum. There is one
//! top-level schema per record type ([`Kind`]), so the fingerprint also says
//! what the record is. The reader knows the writer schemas of the current and
//! the previous version ([`Version`]), resolves a record written with an older
//! one to the current reader schema (defaults fill new fields), and converts
//! the value to the core types by hand (`From`/`TryFrom` on [`AvroValue`]).
//! Bytes it cannot read come back as a reason, never a panic.

mod decode;
mod encode;
pub mod schema;

#[cfg(test)]
mod tests;

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use schema::{composed, Composed};
pub use schema::{Kind, Version};
use seqline_core::records::{Command, GatewayRecord, LogRecord};
use seqline_core::{Error, Result};
use std::collections::HashMap;

/// The two bytes that open every single-object encoded record.
pub const MARKER: [u8; 2] = [0xC3, 0x01];
const HEADER: usize = 10;
/// The most a decode may allocate for one string, bytes or array.
const MAX_ALLOCATION: usize = 64 << 20;

/// An Avro value standing for one core type; the conversions are the
/// `From<&T>` and `TryFrom<AvroValue>` impls.
#[derive(Clone, Debug, PartialEq)]
pub struct AvroValue(pub Value);

struct Writer {
    kind: Kind,
    schema: Schema,
    /// Whether this is the current schema (no resolution needed).
    current: bool,
}

/// Encodes and decodes [`LogRecord`]s. Build once, share.
pub struct Codec {
    current: HashMap<Kind, Composed>,
    writers: HashMap<[u8; 8], Writer>,
}

impl Codec {
    /// Parses the embedded schemas of every version.
    pub fn new() -> Result<Self> {
        // A corrupt length prefix must not make a reader allocate much more
        // than any record can hold (process-wide, first caller wins).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let mut current = HashMap::new();
        let mut writers = HashMap::new();
        for kind in Kind::ALL {
            for version in Version::ALL.into_iter().filter(|v| kind.exists_in(*v)) {
                let c = composed(kind, version).map_err(Error::Config)?;
                let is_current = version == Version::Current;
                // A version that did not change this kind has the same
                // fingerprint: keep the current entry.
                writers.entry(c.fingerprint).or_insert_with(|| Writer {
                    kind,
                    schema: c.schema.clone(),
                    current: is_current,
                });
                if is_current {
                    current.insert(kind, c);
                }
            }
        }
        Ok(Self { current, writers })
    }

    /// The kind of `record`.
    pub fn kind_of(record: &LogRecord) -> Kind {
        match record {
            LogRecord::Command(Command::Batch(_)) => Kind::Batch,
            LogRecord::Command(_) => Kind::Command,
            LogRecord::Delivery(_) => Kind::Delivery,
            LogRecord::UserEvent(_) => Kind::UserEvent,
            LogRecord::ConvEvent(_) => Kind::ConvEvent,
            LogRecord::Gateway(GatewayRecord::Receipt(_)) => Kind::Receipt,
            LogRecord::Gateway(GatewayRecord::Package(_)) => Kind::Package,
            LogRecord::Gateway(GatewayRecord::Notice(_)) => Kind::Notice,
            LogRecord::Gateway(GatewayRecord::ReadMark(_)) => Kind::ReadMark,
            LogRecord::DeadLetter(_) => Kind::DeadLetter,
        }
    }

    /// Encodes `record` with the current writer schema.
    pub fn encode(&self, record: &LogRecord) -> Result<Vec<u8>> {
        let value = match record {
            LogRecord::Command(Command::Batch(b)) => AvroValue::from(b),
            LogRecord::Command(c) => AvroValue::from(c),
            LogRecord::Delivery(d) => AvroValue::from(d),
            LogRecord::UserEvent(e) => AvroValue::from(e),
            LogRecord::ConvEvent(e) => AvroValue::from(e),
            LogRecord::Gateway(GatewayRecord::Receipt(r)) => AvroValue::from(r),
            LogRecord::Gateway(GatewayRecord::Package(p)) => AvroValue::from(p),
            LogRecord::Gateway(GatewayRecord::Notice(n)) => AvroValue::from(n),
            LogRecord::Gateway(GatewayRecord::ReadMark(r)) => AvroValue::from(r),
            LogRecord::DeadLetter(d) => AvroValue::from(d),
        };
        let kind = Self::kind_of(record);
        let current = self
            .current
            .get(&kind)
            .ok_or_else(|| Error::Config(format!("no schema for {kind:?}")))?;
        single_object(current, value.0)
    }

    /// Encodes a value of `kind` with the writer schema of `version`; for
    /// tests of schema evolution.
    #[doc(hidden)]
    pub fn encode_value(kind: Kind, version: Version, value: Value) -> Result<Vec<u8>> {
        let writer = composed(kind, version).map_err(Error::Config)?;
        single_object(&writer, value)
    }

    /// Decodes one record, or says why it cannot.
    pub fn decode(&self, bytes: &[u8]) -> std::result::Result<LogRecord, String> {
        if bytes.len() < HEADER || bytes[..2] != MARKER {
            return Err(format!(
                "not an Avro single-object record ({} bytes, no C3 01 marker)",
                bytes.len()
            ));
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[2..HEADER]);
        let writer = self
            .writers
            .get(&fingerprint)
            .ok_or_else(|| format!("unknown writer schema fingerprint {}", hex(&fingerprint)))?;
        let reader = match writer.current {
            true => None,
            false => self.current.get(&writer.kind).map(|c| &c.schema),
        };
        let mut body = &bytes[HEADER..];
        let value = from_avro_datum(&writer.schema, &mut body, reader)
            .map_err(|e| format!("undecodable {} record: {e}", writer.kind.name()))?;
        if !body.is_empty() {
            return Err(format!(
                "{} record has {} trailing bytes",
                writer.kind.name(),
                body.len()
            ));
        }
        let value = AvroValue(value);
        let record = match writer.kind {
            Kind::Command => LogRecord::Command(value.try_into()?),
            Kind::Batch => LogRecord::Command(Command::Batch(value.try_into()?)),
            Kind::Delivery => LogRecord::Delivery(value.try_into()?),
            Kind::UserEvent => LogRecord::UserEvent(value.try_into()?),
            Kind::Receipt => LogRecord::Gateway(GatewayRecord::Receipt(value.try_into()?)),
            Kind::Package => LogRecord::Gateway(GatewayRecord::Package(value.try_into()?)),
            Kind::ConvEvent => LogRecord::ConvEvent(value.try_into()?),
            Kind::Notice => LogRecord::Gateway(GatewayRecord::Notice(value.try_into()?)),
            Kind::ReadMark => LogRecord::Gateway(GatewayRecord::ReadMark(value.try_into()?)),
            Kind::DeadLetter => LogRecord::DeadLetter(value.try_into()?),
        };
        Ok(record)
    }
}

fn single_object(writer: &Composed, value: Value) -> Result<Vec<u8>> {
    let datum = to_avro_datum(&writer.schema, value)
        .map_err(|e| Error::Invalid(format!("record does not fit its Avro schema: {e}")))?;
    let mut out = Vec::with_capacity(HEADER + datum.len());
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&writer.fingerprint);
    out.extend_from_slice(&datum);
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
