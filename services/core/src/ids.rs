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
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientMsgId(pub uuid::Uuid);

impl ClientMsgId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
    /// Parses a UUID in any standard text form; the nil UUID is refused.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match uuid::Uuid::parse_str(s) {
            Ok(u) if !u.is_nil() => Ok(Self(u)),
            _ => Err(Error::Invalid("a client message id must be a non-nil UUID".into())),
        }
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
    fn partitions_are_stable() {
        assert_eq!(stable_hash("alice"), stable_hash("alice"));
        assert!(partition_for("x", 8) < 8);
        assert_eq!(partition_for("x", 0), 0);
    }
}
