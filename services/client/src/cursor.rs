//! Where a device keeps its cursor: the last `user_seq` it has contiguously.
//! The SDK loads it when it starts and stores it now and then (and when it
//! disconnects or closes), so a restart re-delivers at most the entries that
//! arrived since the last store.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Persistence of the device cursor. Calls are rare and small; the SDK makes
/// them from its background task.
pub trait CursorStore: Send + 'static {
    /// The stored cursor (0 when none is stored yet).
    fn load(&mut self) -> io::Result<u64>;
    /// Stores `user_seq`.
    fn store(&mut self, user_seq: u64) -> io::Result<()>;
}

/// A cursor in memory; clones share it, so a test or the load generator can
/// read where a device is.
#[derive(Clone, Debug, Default)]
pub struct MemoryCursor(Arc<AtomicU64>);

impl MemoryCursor {
    /// A cursor starting at `user_seq`.
    pub fn new(user_seq: u64) -> Self {
        Self(Arc::new(AtomicU64::new(user_seq)))
    }
    /// The stored value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl CursorStore for MemoryCursor {
    fn load(&mut self) -> io::Result<u64> {
        Ok(self.get())
    }
    fn store(&mut self, user_seq: u64) -> io::Result<()> {
        self.0.store(user_seq, Ordering::Release);
        Ok(())
    }
}

/// A cursor in a small text file, replaced atomically (write a sibling file,
/// fsync, rename) so a crash leaves the old or the new value, never half.
#[derive(Clone, Debug)]
pub struct FileCursor {
    path: PathBuf,
}

impl FileCursor {
    /// A cursor kept at `path` (created on the first store).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl CursorStore for FileCursor {
    fn load(&mut self) -> io::Result<u64> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => s.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} holds no cursor", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn store(&mut self, user_seq: u64) -> io::Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{user_seq}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cursor_is_shared_by_clones() {
        let mut a = MemoryCursor::new(3);
        let b = a.clone();
        assert_eq!(a.load().unwrap(), 3);
        a.store(9).unwrap();
        assert_eq!(b.get(), 9);
    }

    #[test]
    fn file_cursor_round_trips_and_starts_at_zero() {
        let dir = std::env::temp_dir().join(format!("seqline-client-cursor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cursor");
        let mut c = FileCursor::new(&path);
        assert_eq!(c.load().unwrap(), 0);
        c.store(41).unwrap();
        c.store(42).unwrap();
        assert_eq!(FileCursor::new(&path).load().unwrap(), 42);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(c.load().unwrap_err().kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
