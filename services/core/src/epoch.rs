//! The epoch of a store: an id of its incarnation, made once when the store
//! is first initialised and kept for its whole life (restarts included).
//! A wiped store, a fresh keyspace or another data directory has another
//! epoch, so a device can tell that its cursor belongs to other data.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The epoch of a store, 64 random bits, written as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Epoch(u64);

impl Epoch {
    /// A fresh random epoch, for a store being initialised.
    pub fn random() -> Self {
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        Self(high ^ low)
    }

    /// The epoch with these 64 bits (as a store keeps it).
    pub const fn from_u64(bits: u64) -> Self {
        Self(bits)
    }

    /// Its 64 bits.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses 1-16 hex digits.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > 16 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid("an epoch is 1-16 hex digits".into()));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| Error::Invalid("an epoch is 1-16 hex digits".into()))
    }
}

impl TryFrom<String> for Epoch {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<Epoch> for String {
    fn from(e: Epoch) -> String {
        e.to_string()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_hex() {
        let e = Epoch::from_u64(0x00ab_cdef_0123_4567);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<Epoch>(&json).unwrap(), e);
        assert_eq!(Epoch::parse("ABCDEF01234567").unwrap(), e);
    }

    #[test]
    fn refuses_what_is_not_hex() {
        for bad in ["", "xyz", "0123456789abcdef0", "-1", "12 4"] {
            assert!(Epoch::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Epoch>("12").is_err());
    }

    #[test]
    fn random_epochs_differ() {
        assert_ne!(Epoch::random(), Epoch::random());
    }
}
