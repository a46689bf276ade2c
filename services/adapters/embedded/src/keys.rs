//! Key encoding: big-endian integers so keys sort numerically, strings
//! length-prefixed so a prefix scan never matches a longer id.

use crate::error::EngineError;

/// Builds one composite key.
#[derive(Default)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new() -> Self {
        Self(Vec::with_capacity(48))
    }
    /// A length-prefixed string (ids are at most a few hundred bytes).
    pub(crate) fn str(mut self, s: &str) -> Self {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub(crate) fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Reads the parts of a key back, in order.
pub(crate) struct KeyReader<'a>(&'a [u8]);

impl<'a> KeyReader<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Self {
        Self(key)
    }
    pub(crate) fn skip(mut self, n: usize) -> Result<Self, EngineError> {
        self.0 = self.0.get(n..).ok_or_else(|| short("prefix"))?;
        Ok(self)
    }
    pub(crate) fn str(&mut self) -> Result<&'a str, EngineError> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let s = self.take(len)?;
        std::str::from_utf8(s).map_err(|e| EngineError::Corrupt(format!("key is not UTF-8: {e}")))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, EngineError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, EngineError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], EngineError> {
        if self.0.len() < n {
            return Err(short("component"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
}

fn short(what: &str) -> EngineError {
    EngineError::Corrupt(format!("key too short for its {what}"))
}

/// A big-endian u64 stored as a value.
pub(crate) fn u64_value(v: &[u8]) -> Result<u64, EngineError> {
    let a: [u8; 8] = v
        .try_into()
        .map_err(|_| EngineError::Corrupt(format!("expected 8 bytes, got {}", v.len())))?;
    Ok(u64::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_exact_and_ints_sort() {
        let a = Key::new().str("ab").u64(2).build();
        let b = Key::new().str("a").build();
        assert!(!a.starts_with(&b));
        let k1 = Key::new().str("x").u64(255).build();
        let k2 = Key::new().str("x").u64(256).build();
        assert!(k1 < k2);
        let mut r = KeyReader::new(&k2);
        assert_eq!(r.str().unwrap(), "x");
        assert_eq!(r.u64().unwrap(), 256);
        assert!(r.u64().is_err());
    }
}
