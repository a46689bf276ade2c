//! Ids are newtypes so a user id can never be passed where a conversation id
//! is expected. String ids are validated on construction and on decode, and
//! share their text (`Arc<str>`), so cloning one into every delivery is cheap.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

fn valid_chars(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(&c))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $extra:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Validates and wraps `s`.
            pub fn parse(s: impl Into<String>) -> Result<Self, Error> {
                let s = s.into();
                if valid_chars(&s, $max, $extra) {
                    Ok(Self(s.into()))
                } else {
                    Err(Error::Invalid(format!(
                        "{} must be 1-{} characters of A-Z a-z 0-9 _ - {}",
                        $what,
                        $max,
                        $extra.iter().map(|c: &char| c.to_string()).collect::<Vec<_>>().join(" ")
                    )))
                }
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A user of the application (1-64 of `A-Z a-z 0-9 _ -`).
    UserId, 64, &[], "a user id"
);
string_id!(
    /// One device (app install) of a user.
    DeviceId, 64, &[], "a device id"
);
string_id!(
    /// A gateway instance; its pushes and receipts travel on its own topic.
    GatewayId, 64, &[], "a gateway id"
);
string_id!(
    /// A conversation (direct or group), 1-160 of `A-Z a-z 0-9 _ - . :` (room
    /// for `dm:` and two 64-character user ids).
    ConversationId, 160, &['.', ':'], "a conversation id"
);

impl ConversationId {
    /// The one direct conversation between two users, whatever the order.
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        Self(format!("dm:{x}:{y}").into())
    }

    /// Whether this id names a direct conversation.
    pub fn is_direct(&self) -> bool {
        self.0.starts_with("dm:")
    }
}

/// A message id chosen by the client (a UUID); the unit of deduplication.
///
/// On the wire (JSON) it has one spelling, the canonical one: 36 characters,
/// lower-case hex digits hyphenated 8-4-4-4-12. Other spellings of the same
/// UUID (upper case, braces, `urn:uuid:`, no hyphens) are refused, so an
/// answer names an id exactly as the client wrote it and two spellings can
/// never be one message. Binary formats (postcard) carry the 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientMsgId(pub uuid::Uuid);

/// What a refused spelling of a client id is told.
pub const CANONICAL_UUID: &str = "a UUID in canonical form: 36 characters, lower-case hex digits \
     and hyphens 8-4-4-4-12 (e.g. 5c1e0b3a-8f0e-4b0a-9c65-0f3f5d9f2a11), without braces, \
     `urn:uuid:` or upper case";

/// Whether `s` is a UUID in canonical form (see [`ClientMsgId`]).
pub fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

impl ClientMsgId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
    /// Parses a UUID in canonical form; other spellings and the nil UUID
    /// are refused.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match Self::parse_canonical(s) {
            Ok(id) if !id.0.is_nil() => Ok(id),
            Ok(_) => Err(Error::Invalid("a client message id must not be the nil UUID".into())),
            Err(e) => Err(e),
        }
    }
    /// Parses a UUID in canonical form (the nil UUID included).
    pub fn parse_canonical(s: &str) -> Result<Self, Error> {
        if !is_canonical_uuid(s) {
            return Err(Error::Invalid(format!("not {CANONICAL_UUID}")));
        }
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| Error::Invalid(format!("not {CANONICAL_UUID}")))
    }
}

impl<'de> Deserialize<'de> for ClientMsgId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return uuid::Uuid::deserialize(d).map(Self);
        }
        struct Canonical;
        impl serde::de::Visitor<'_> for Canonical {
            type Value = ClientMsgId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(CANONICAL_UUID)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ClientMsgId, E> {
                ClientMsgId::parse_canonical(s)
                    .map_err(|_| E::custom(format_args!("{} is not {CANONICAL_UUID}", crate::input::quote(s))))
            }
        }
        d.deserialize_str(Canonical)
    }
}

impl fmt::Display for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Debug for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientMsgId({})", self.0)
    }
}

macro_rules! seq {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The sequence number before the first one.
            pub const ZERO: Self = Self(0);
            /// The next number.
            pub fn next(self) -> Self {
                Self(self.0 + 1)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

seq!(
    /// Position of a message in its conversation: 1, 2, 3... with no gaps.
    ConvSeq
);
seq!(
    /// Position of an entry in a user's timeline: 1, 2, 3... with no gaps.
    UserSeq
);

/// A stable 64-bit hash (FNV-1a) used to pick partitions; it never changes
/// between versions, so a key always lands on the same partition.
pub fn stable_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The partition of `key` among `partitions` partitions.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    (stable_hash(key) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(UserId::parse("alice_01-x").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a".repeat(65)).is_err());
        assert!(ConversationId::parse("g:team.room").is_ok());
        assert!(ConversationId::parse("g/x").is_err());
        let bad: Result<UserId, _> = serde_json::from_str("\"no way\"");
        assert!(bad.is_err());
    }

    #[test]
    fn direct_ids_are_symmetric() {
        let a = UserId::parse("alice").unwrap();
        let b = UserId::parse("bob").unwrap();
        assert_eq!(ConversationId::direct(&a, &b), ConversationId::direct(&b, &a));
        assert_eq!(ConversationId::direct(&a, &b).as_str(), "dm:alice:bob");
        assert!(ConversationId::direct(&a, &b).is_direct());
        // The longest direct id still parses (decoders validate it).
        let long = ConversationId::direct(
            &UserId::parse("x".repeat(64)).unwrap(),
            &UserId::parse("y".repeat(64)).unwrap(),
        );
        assert!(ConversationId::parse(long.as_str()).is_ok());
    }

    #[test]
    fn client_ids_refuse_nil() {
        assert!(ClientMsgId::parse("00000000-0000-0000-0000-000000000000").is_err());
        assert!(ClientMsgId::parse("not-a-uuid").is_err());
        assert!(ClientMsgId::parse(&uuid::Uuid::new_v4().to_string()).is_ok());
    }

    #[test]
    fn client_ids_have_one_spelling() {
        let id = ClientMsgId::random();
        let canonical = id.to_string();
        assert!(is_canonical_uuid(&canonical));
        assert_eq!(ClientMsgId::parse(&canonical).unwrap(), id);
        // What is written is the canonical form, and it reads back.
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{canonical}\""));
        assert_eq!(serde_json::from_str::<ClientMsgId>(&json).unwrap(), id);
        let u = id.0;
        let others = [
            canonical.to_uppercase(),
            format!("{{{canonical}}}"),
            format!("urn:uuid:{canonical}"),
            u.simple().to_string(),
            format!(" {canonical}"),
            format!("{canonical} "),
        ];
        for other in &others {
            assert!(ClientMsgId::parse(other).is_err(), "{other}");
            let e = serde_json::from_str::<ClientMsgId>(&format!("\"{other}\"")).unwrap_err();
            assert!(e.to_string().contains("canonical form"), "{e}");
        }
        // The nil UUID decodes (the gateway refuses it with its own message).
        let nil = "00000000-0000-0000-0000-000000000000";
        assert!(serde_json::from_str::<ClientMsgId>(&format!("\"{nil}\"")).is_ok());
    }

    #[test]
    fn partitions_are_stable() {
        assert_eq!(stable_hash("alice"), stable_hash("alice"));
        assert!(partition_for("x", 8) < 8);
        assert_eq!(partition_for("x", 0), 0);
    }
}
