//! The record schemas: `schemas/*.avsc` (current) and `schemas/v1/*.avsc`
//! (what changed in the previous version), composed into one self-contained
//! schema per top-level record type, so each writer schema has a fingerprint
//! over its whole Parsing Canonical Form.

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};

macro_rules! schema_files {
    ($dir:literal; $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../../../schemas/", $dir, $name, ".avsc")))),*]
    };
}

/// Every named type of the current version, one file each.
const CURRENT: &[(&str, &str)] = schema_files!("";
    "Origin", "VectorClock", "Message", "TimelineEntry", "Outcome", "SendCommand", "CreateCommand",
    "MembersCommand", "Command", "Delivery", "UserEvent", "Receipt", "Package", "DeadLetter");

/// The files that differed in version 1 (`Message` had no `priority`).
const V1: &[(&str, &str)] = schema_files!("v1/"; "Message");

/// A top-level record type: each has its own writer schema and fingerprint,
/// so the fingerprint alone says what a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `Command` (topic `inbound`).
    Command,
    /// `Delivery` (topic `deliveries`).
    Delivery,
    /// `UserEvent` (topic `user-events`).
    UserEvent,
    /// `Receipt` (topics `gw.*`).
    Receipt,
    /// `Package` (topics `gw.*`).
    Package,
    /// `DeadLetter` (topic `dead-letter`).
    DeadLetter,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Command,
        Kind::Delivery,
        Kind::UserEvent,
        Kind::Receipt,
        Kind::Package,
        Kind::DeadLetter,
    ];

    /// The schema's name (and file name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Command => "Command",
            Kind::Delivery => "Delivery",
            Kind::UserEvent => "UserEvent",
            Kind::Receipt => "Receipt",
            Kind::Package => "Package",
            Kind::DeadLetter => "DeadLetter",
        }
    }
}

/// A version of the schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// What this code writes and reads into.
    Current,
    /// The previous version, still readable.
    V1,
}

impl Version {
    /// Every version a reader accepts, newest first.
    pub const ALL: [Version; 2] = [Version::Current, Version::V1];

    fn overrides(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Version::Current => &[],
            Version::V1 => V1,
        }
    }
}

/// A parsed, self-contained schema and its CRC-64-AVRO fingerprint.
#[derive(Clone, Debug)]
pub struct Composed {
    /// The schema.
    pub schema: Schema,
    /// Rabin fingerprint of its canonical form, little-endian.
    pub fingerprint: [u8; 8],
}

/// Builds the schema of `kind` as of `version`.
pub fn composed(kind: Kind, version: Version) -> Result<Composed, String> {
    let mut defs: BTreeMap<&str, Json> = BTreeMap::new();
    for (name, text) in CURRENT.iter().chain(version.overrides()) {
        let json: Json = serde_json::from_str(text).map_err(|e| format!("schema file {name}.avsc: {e}"))?;
        defs.insert(name, json);
    }
    let root = defs
        .get(kind.name())
        .ok_or_else(|| format!("no schema file for {}", kind.name()))?;
    let mut defined = HashSet::from([kind.name().to_string()]);
    let json = inline(root, &defs, &mut defined);
    let schema = Schema::parse(&json).map_err(|e| format!("schema {} ({version:?}): {e}", kind.name()))?;
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let fingerprint =
        <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| format!("fingerprint of {} is not 8 bytes", kind.name()))?;
    Ok(Composed { schema, fingerprint })
}

/// Replaces the first reference to each named type of `defs` by its
/// definition (Avro allows a name to be defined once per schema; later
/// references stay names).
fn inline(value: &Json, defs: &BTreeMap<&str, Json>, defined: &mut HashSet<String>) -> Json {
    match value {
        Json::String(name) => match defs.get(name.as_str()) {
            Some(def) if defined.insert(name.clone()) => inline(def, defs, defined),
            _ => value.clone(),
        },
        Json::Array(items) => Json::Array(items.iter().map(|v| inline(v, defs, defined)).collect()),
        Json::Object(map) => {
            let is_named = matches!(
                map.get("type").and_then(Json::as_str),
                Some("record" | "enum" | "fixed")
            );
            if let (true, Some(Json::String(name))) = (is_named, map.get("name")) {
                defined.insert(name.clone());
            }
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let v = match k.as_str() {
                    "type" | "items" | "values" | "fields" => inline(v, defs, defined),
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Json::Object(out)
        }
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;

    #[test]
    fn every_kind_composes_in_every_version() {
        for kind in Kind::ALL {
            for version in Version::ALL {
                let c = composed(kind, version).unwrap();
                // Self-contained: its canonical form parses with no other schema.
                Schema::parse_str(&c.schema.canonical_form()).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            }
        }
    }

    #[test]
    fn fingerprints_tell_kinds_and_versions_apart() {
        let mut seen = HashSet::new();
        for kind in Kind::ALL {
            seen.insert(composed(kind, Version::Current).unwrap().fingerprint);
        }
        assert_eq!(seen.len(), Kind::ALL.len());
        // Message changed between v1 and now, so everything that holds one did.
        for kind in [Kind::Delivery, Kind::UserEvent, Kind::Package] {
            let (now, v1) = (
                composed(kind, Version::Current).unwrap(),
                composed(kind, Version::V1).unwrap(),
            );
            assert_ne!(now.fingerprint, v1.fingerprint, "{kind:?}");
        }
        let (now, v1) = (
            composed(Kind::Receipt, Version::Current),
            composed(Kind::Receipt, Version::V1),
        );
        assert_eq!(now.unwrap().fingerprint, v1.unwrap().fingerprint);
    }

    #[test]
    fn current_readers_read_previous_writers() {
        for kind in Kind::ALL {
            let reader = composed(kind, Version::Current).unwrap().schema;
            let writer = composed(kind, Version::V1).unwrap().schema;
            SchemaCompatibility::can_read(&writer, &reader)
                .unwrap_or_else(|e| panic!("{kind:?}: the current reader cannot read v1: {e}"));
        }
    }
}
