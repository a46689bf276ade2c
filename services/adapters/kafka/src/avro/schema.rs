//! The record schemas: `schemas/*.avsc` (current, v3), `schemas/v2/*.avsc`
//! and `schemas/v1/*.avsc` (the files that differed in the previous
//! versions), composed into one self-contained schema per top-level record
//! type, so each writer schema has a fingerprint over its whole Parsing
//! Canonical Form.

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};

macro_rules! schema_file {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!("../../../../../schemas/", $dir, $name, ".avsc")),
        )
    };
}

macro_rules! schema_files {
    ($dir:literal; $($name:literal),* $(,)?) => {
        &[$(schema_file!($dir, $name)),*]
    };
}

/// Every named type of the current version, one file each.
const CURRENT: &[(&str, &str)] = schema_files!("";
    "Origin", "VectorClock", "Message", "TimelineEntry", "Outcome", "SendCommand", "CreateCommand",
    "MembersCommand", "Command", "Delivery", "UserEvent", "Receipt", "Package", "DeadLetter", "ConvEvent",
    "Notice", "ReadMark", "CommandBatch");

/// The files that differed in version 2 (`Message` had no `sender_name` nor
/// `read_diffusion`, `Origin` no `name`).
const V2: &[(&str, &str)] = schema_files!("v2/"; "Message", "Origin");

/// The files that differed in version 1: `Message` had no `priority` either;
/// `Origin` was as in version 2.
const V1: &[(&str, &str)] = &[schema_file!("v1/", "Message"), schema_file!("v2/", "Origin")];

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
    /// `ConvEvent` (topic `conv-events`), since v3.
    ConvEvent,
    /// `Notice` (topics `gw.*`), since v3.
    Notice,
    /// `ReadMark` (topics `gw.*`), since v3.
    ReadMark,
    /// `CommandBatch` (topic `inbound`): a [`Command::Batch`], added to v3.
    ///
    /// [`Command::Batch`]: seqline_core::records::Command::Batch
    Batch,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::Command,
        Kind::Delivery,
        Kind::UserEvent,
        Kind::Receipt,
        Kind::Package,
        Kind::DeadLetter,
        Kind::ConvEvent,
        Kind::Notice,
        Kind::ReadMark,
        Kind::Batch,
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
            Kind::ConvEvent => "ConvEvent",
            Kind::Notice => "Notice",
            Kind::ReadMark => "ReadMark",
            Kind::Batch => "CommandBatch",
        }
    }

    /// Whether writers of `version` had this kind (records of a kind added
    /// later never carry an older writer schema, so readers do not accept one).
    pub fn exists_in(self, version: Version) -> bool {
        match self {
            Kind::ConvEvent | Kind::Notice | Kind::ReadMark | Kind::Batch => version == Version::Current,
            _ => true,
        }
    }
}

/// A version of the schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// What this code writes and reads into (v3: sender names, the
    /// read-diffusion flag, conversation events, notices and read marks).
    Current,
    /// The previous version (no `sender_name`, `read_diffusion`,
    /// `Origin.name`), still readable.
    V2,
    /// The version before (no `priority` either), still readable.
    V1,
}

impl Version {
    /// Every version a reader accepts, newest first.
    pub const ALL: [Version; 3] = [Version::Current, Version::V2, Version::V1];

    fn overrides(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Version::Current => &[],
            Version::V2 => V2,
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

    fn fingerprint(kind: Kind, version: Version) -> [u8; 8] {
        composed(kind, version).unwrap().fingerprint
    }

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
        let seen: HashSet<_> = Kind::ALL.iter().map(|k| fingerprint(*k, Version::Current)).collect();
        assert_eq!(seen.len(), Kind::ALL.len());
        // Message changed in every version, so everything that holds one did.
        for kind in [Kind::Delivery, Kind::UserEvent, Kind::Package] {
            let [now, v2, v1] = Version::ALL.map(|v| fingerprint(kind, v));
            assert!(now != v2 && v2 != v1 && now != v1, "{kind:?}");
        }
        // Origin changed in v3 only: what holds one but no Message changed once.
        for kind in [Kind::Receipt, Kind::Command] {
            let [now, v2, v1] = Version::ALL.map(|v| fingerprint(kind, v));
            assert_ne!(now, v2, "{kind:?}");
            assert_eq!(v2, v1, "{kind:?}");
        }
        let [now, v2, v1] = Version::ALL.map(|v| fingerprint(Kind::DeadLetter, v));
        assert!(now == v2 && v2 == v1);
    }

    #[test]
    fn new_kinds_exist_only_in_the_current_version() {
        for kind in [Kind::ConvEvent, Kind::Notice, Kind::ReadMark, Kind::Batch] {
            assert!(kind.exists_in(Version::Current));
            assert!(!kind.exists_in(Version::V2) && !kind.exists_in(Version::V1), "{kind:?}");
        }
        assert!(Kind::Delivery.exists_in(Version::V1));
    }

    #[test]
    fn current_readers_read_previous_writers() {
        for kind in Kind::ALL {
            let reader = composed(kind, Version::Current).unwrap().schema;
            for version in [Version::V2, Version::V1] {
                let writer = composed(kind, version).unwrap().schema;
                SchemaCompatibility::can_read(&writer, &reader)
                    .unwrap_or_else(|e| panic!("{kind:?}: the current reader cannot read {version:?}: {e}"));
            }
        }
    }

    #[test]
    fn previous_versions_lack_the_new_fields() {
        let canonical = |kind, version| composed(kind, version).unwrap().schema.canonical_form();
        for version in [Version::V2, Version::V1] {
            let delivery = canonical(Kind::Delivery, version);
            assert!(
                !delivery.contains("sender_name") && !delivery.contains("read_diffusion"),
                "{delivery}"
            );
            let receipt = canonical(Kind::Receipt, version);
            assert!(!receipt.contains("\"name\":\"name\""), "{receipt}");
        }
        assert!(canonical(Kind::Delivery, Version::V2).contains("priority"));
        assert!(!canonical(Kind::Delivery, Version::V1).contains("priority"));
        let delivery = canonical(Kind::Delivery, Version::Current);
        assert!(delivery.contains("sender_name") && delivery.contains("read_diffusion"));
        assert!(canonical(Kind::Receipt, Version::Current).contains("\"name\":\"name\""));
    }
}
