//! Where a device keeps its cursor: the last `user_seq` it has contiguously,
//! and, for read-diffusion conversations (huge groups), the last `conv_seq`
//! it has of each and whether it follows it. The SDK loads them when it
//! starts and stores them now and then (and when it disconnects or closes),
//! so a restart re-delivers at most what arrived since the last store and
//! resumes following where it was.
//!
//! With the cursor goes its [`CursorMark`]: the epoch of the server's data
//! it belongs to and the id of the entry at it, so a device notices a
//! server whose data was wiped, swapped or restored from an older copy.

use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::Epoch;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The device's position in one read-diffusion conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvPosition {
    /// The conversation.
    pub conv: ConversationId,
    /// Everything up to this conv_seq was delivered.
    pub seq: u64,
    /// The device pulls it (it is in read-diffusion mode for the device).
    pub following: bool,
}

/// What tells that a cursor still belongs to the server's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CursorMark {
    /// The epoch of the data the cursor belongs to (none before the first
    /// connection).
    pub epoch: Option<Epoch>,
    /// The `client_msg_id` of the entry at the cursor (none at 0, or after
    /// a reset to the head).
    pub entry: Option<ClientMsgId>,
}

/// Persistence of the device cursor. Calls are rare and small; the SDK makes
/// them from its background task.
pub trait CursorStore: Send + 'static {
    /// The stored cursor (0 when none is stored yet).
    fn load(&mut self) -> io::Result<u64>;
    /// Stores `user_seq`.
    fn store(&mut self, user_seq: u64) -> io::Result<()>;
    /// The stored conversation positions (none by default).
    fn load_convs(&mut self) -> io::Result<Vec<ConvPosition>> {
        Ok(Vec::new())
    }
    /// Stores the timeline cursor with every conversation position. The
    /// default keeps only the cursor: a store that does not override this
    /// forgets followed conversations across restarts (the device follows
    /// them again from its next timeline entry of each).
    fn store_all(&mut self, user_seq: u64, convs: &[ConvPosition]) -> io::Result<()> {
        let _ = convs;
        self.store(user_seq)
    }
    /// The stored mark of the cursor (none by default).
    fn load_mark(&mut self) -> io::Result<CursorMark> {
        Ok(CursorMark::default())
    }
    /// Stores the cursor, its mark and every conversation position. The
    /// default drops the mark: a store that does not override this cannot
    /// tell, after a restart, that the server's data was replaced while the
    /// device was away (it still notices a wiped store whose head is below
    /// its cursor).
    fn store_marked(&mut self, user_seq: u64, mark: CursorMark, convs: &[ConvPosition]) -> io::Result<()> {
        let _ = mark;
        self.store_all(user_seq, convs)
    }
}

/// A cursor in memory; clones share it, so a test or the load generator can
/// read where a device is.
#[derive(Clone, Debug, Default)]
pub struct MemoryCursor(Arc<AtomicU64>, Arc<Mutex<Vec<ConvPosition>>>, Arc<Mutex<CursorMark>>);

impl MemoryCursor {
    /// A cursor starting at `user_seq`.
    pub fn new(user_seq: u64) -> Self {
        Self(Arc::new(AtomicU64::new(user_seq)), Arc::default(), Arc::default())
    }
    /// The stored value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    /// The stored conversation positions.
    pub fn convs(&self) -> Vec<ConvPosition> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The stored mark.
    pub fn mark(&self) -> CursorMark {
        *self.2.lock().unwrap_or_else(|p| p.into_inner())
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
    fn load_convs(&mut self) -> io::Result<Vec<ConvPosition>> {
        Ok(self.convs())
    }
    fn store_all(&mut self, user_seq: u64, convs: &[ConvPosition]) -> io::Result<()> {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = convs.to_vec();
        self.store(user_seq)
    }
    fn load_mark(&mut self) -> io::Result<CursorMark> {
        Ok(self.mark())
    }
    fn store_marked(&mut self, user_seq: u64, mark: CursorMark, convs: &[ConvPosition]) -> io::Result<()> {
        *self.2.lock().unwrap_or_else(|p| p.into_inner()) = mark;
        self.store_all(user_seq, convs)
    }
}

/// A cursor in a small text file, replaced atomically (write a sibling file,
/// fsync, rename) so a crash leaves the old or the new value, never half.
/// The first line is the timeline cursor, then (when known) the epoch and
/// the id of the entry at the cursor (`-` for none): `42 00ab…67 5c1e…11`;
/// each further line is one conversation position,
/// `<conv> <seq> <following 0|1>`, written in the same file so they never
/// disagree after a crash.
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

impl FileCursor {
    fn read(&self) -> io::Result<Option<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first line's words.
    fn head_words(&self) -> io::Result<Vec<String>> {
        Ok(self
            .read()?
            .and_then(|s| {
                s.lines()
                    .next()
                    .map(|l| l.split_whitespace().map(str::to_string).collect())
            })
            .unwrap_or_default())
    }

    fn write(&self, user_seq: u64, mark: CursorMark, convs: &[ConvPosition]) -> io::Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            match (mark.epoch, mark.entry) {
                (None, None) => writeln!(f, "{user_seq}")?,
                (epoch, entry) => {
                    let epoch = epoch.map_or_else(|| "-".to_string(), |e| e.to_string());
                    let entry = entry.map_or_else(|| "-".to_string(), |e| e.to_string());
                    writeln!(f, "{user_seq} {epoch} {entry}")?;
                }
            }
            for c in convs {
                writeln!(f, "{} {} {}", c.conv, c.seq, u8::from(c.following))?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }

    fn invalid(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no {what}", self.path.display()),
        )
    }
}

impl CursorStore for FileCursor {
    fn load(&mut self) -> io::Result<u64> {
        match self.read()? {
            Some(s) => s
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|_| self.invalid("cursor")),
            None => Ok(0),
        }
    }

    fn store(&mut self, user_seq: u64) -> io::Result<()> {
        let convs = self.load_convs().unwrap_or_default();
        self.store_all(user_seq, &convs)
    }

    fn load_convs(&mut self) -> io::Result<Vec<ConvPosition>> {
        let Some(s) = self.read()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for line in s.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            let (Some(conv), Some(seq), Some(following), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(self.invalid("conversation position"));
            };
            out.push(ConvPosition {
                conv: ConversationId::parse(conv).map_err(|_| self.invalid("conversation id"))?,
                seq: seq.parse().map_err(|_| self.invalid("conversation cursor"))?,
                following: following == "1",
            });
        }
        Ok(out)
    }

    fn store_all(&mut self, user_seq: u64, convs: &[ConvPosition]) -> io::Result<()> {
        let mark = self.load_mark().unwrap_or_default();
        self.write(user_seq, mark, convs)
    }

    fn load_mark(&mut self) -> io::Result<CursorMark> {
        let words = self.head_words()?;
        let word = |i: usize| words.get(i).map(String::as_str).filter(|w| *w != "-");
        let epoch = match word(1) {
            Some(w) => Some(Epoch::parse(w).map_err(|_| self.invalid("epoch"))?),
            None => None,
        };
        let entry = match word(2) {
            Some(w) => Some(ClientMsgId::parse(w).map_err(|_| self.invalid("entry id"))?),
            None => None,
        };
        Ok(CursorMark { epoch, entry })
    }

    fn store_marked(&mut self, user_seq: u64, mark: CursorMark, convs: &[ConvPosition]) -> io::Result<()> {
        self.write(user_seq, mark, convs)
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

    #[test]
    fn conversation_positions_are_stored_with_the_cursor() {
        let dir = std::env::temp_dir().join(format!("seqline-client-convs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cursor");
        let mut c = FileCursor::new(&path);
        assert!(c.load_convs().unwrap().is_empty());
        let convs = vec![
            ConvPosition {
                conv: ConversationId::parse("g:huge").unwrap(),
                seq: 812,
                following: true,
            },
            ConvPosition {
                conv: ConversationId::parse("g:was-huge").unwrap(),
                seq: 9,
                following: false,
            },
        ];
        c.store_all(17, &convs).unwrap();
        let mut again = FileCursor::new(&path);
        assert_eq!(again.load().unwrap(), 17);
        assert_eq!(again.load_convs().unwrap(), convs);
        again.store(18).unwrap();
        assert_eq!(
            again.load_convs().unwrap(),
            convs,
            "storing the cursor alone keeps the positions"
        );
        let mut m = MemoryCursor::new(0);
        m.store_all(3, &convs[..1]).unwrap();
        assert_eq!((m.get(), m.convs()), (3, convs[..1].to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_mark_is_stored_with_the_cursor() {
        let dir = std::env::temp_dir().join(format!("seqline-client-mark-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cursor");
        let mut c = FileCursor::new(&path);
        assert_eq!(c.load_mark().unwrap(), CursorMark::default());
        let convs = vec![ConvPosition {
            conv: ConversationId::parse("g:huge").unwrap(),
            seq: 4,
            following: true,
        }];
        let mark = CursorMark {
            epoch: Some(Epoch::from_u64(0xabc)),
            entry: Some(ClientMsgId::random()),
        };
        c.store_marked(30, mark, &convs).unwrap();
        let mut again = FileCursor::new(&path);
        assert_eq!(again.load().unwrap(), 30);
        assert_eq!(again.load_mark().unwrap(), mark);
        assert_eq!(again.load_convs().unwrap(), convs);
        again.store(31).unwrap();
        assert_eq!(
            again.load_mark().unwrap(),
            mark,
            "storing the cursor alone keeps the mark"
        );
        let epoch_only = CursorMark {
            epoch: mark.epoch,
            entry: None,
        };
        again.store_marked(0, epoch_only, &[]).unwrap();
        assert_eq!((again.load().unwrap(), again.load_mark().unwrap()), (0, epoch_only));
        let mut m = MemoryCursor::new(0);
        m.store_marked(5, mark, &[]).unwrap();
        assert_eq!((m.get(), m.mark()), (5, mark));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
