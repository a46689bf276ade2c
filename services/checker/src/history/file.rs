//! Writing and reading history files (JSON lines).

use super::Event;
use crate::error::{CheckerError, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Records events from many tasks at once, as JSON lines in a file or in
/// memory. Encoding happens outside the lock; a write error is kept and
/// returned by [`HistoryWriter::finish`], so recording never fails a run.
#[derive(Debug)]
pub struct HistoryWriter {
    in_memory: bool,
    sink: Mutex<Sink>,
}

#[derive(Debug)]
enum Sink {
    File {
        path: PathBuf,
        out: BufWriter<File>,
        error: Option<CheckerError>,
    },
    Memory(Vec<Event>),
}

impl HistoryWriter {
    /// Creates (or truncates) `path` and writes events there.
    pub fn to_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| CheckerError::Io {
            path: path.clone(),
            source,
        })?;
        let out = BufWriter::with_capacity(1 << 20, file);
        Ok(Self {
            in_memory: false,
            sink: Mutex::new(Sink::File { path, out, error: None }),
        })
    }

    /// Keeps events in memory (tests, small runs).
    pub fn in_memory() -> Self {
        Self {
            in_memory: true,
            sink: Mutex::new(Sink::Memory(Vec::new())),
        }
    }

    /// Appends one event.
    pub fn record(&self, event: Event) {
        let line = (!self.in_memory).then(|| serde_json::to_vec(&event));
        let mut sink = self.lock();
        match (&mut *sink, line) {
            (Sink::Memory(events), _) => events.push(event),
            (Sink::File { error, .. }, Some(Err(e))) => {
                error.get_or_insert(CheckerError::Encode(e));
            }
            (Sink::File { path, out, error }, Some(Ok(mut bytes))) => {
                bytes.push(b'\n');
                if let Err(source) = out.write_all(&bytes) {
                    error.get_or_insert(CheckerError::Io {
                        path: path.clone(),
                        source,
                    });
                }
            }
            (Sink::File { .. }, None) => {}
        }
    }

    /// A copy of the events recorded so far (in memory only; empty for a file).
    pub fn events(&self) -> Vec<Event> {
        match &*self.lock() {
            Sink::Memory(events) => events.clone(),
            Sink::File { .. } => Vec::new(),
        }
    }

    /// Flushes the file and reports the first write error, if any. In memory,
    /// hands over the recorded events (the writer is empty afterwards).
    pub fn finish(&self) -> Result<Vec<Event>> {
        match &mut *self.lock() {
            Sink::Memory(events) => Ok(std::mem::take(events)),
            Sink::File { path, out, error } => {
                if let Some(e) = error.take() {
                    return Err(e);
                }
                out.flush().map_err(|source| CheckerError::Io {
                    path: path.clone(),
                    source,
                })?;
                out.get_ref().sync_all().map_err(|source| CheckerError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(Vec::new())
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        // A panic while holding the lock leaves a consistent sink (at worst a
        // partial line, which the reader reports), so keep going.
        self.sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads a whole history file; blank lines are skipped, a bad line is an
/// error naming its line number.
pub fn read_history(path: impl AsRef<Path>) -> Result<Vec<Event>> {
    let path = path.as_ref();
    let io_err = |source| CheckerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|source| CheckerError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}
