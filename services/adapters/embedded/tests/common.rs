//! Harnesses opening the embedded adapters in a private directory.

#![allow(dead_code, clippy::unwrap_used, clippy::new_without_default)]

use async_trait::async_trait;
use seqline_core::ports::{Log, Presence, Store};
use seqline_core::records::Topic;
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions, MemoryPresence};
use seqline_testkit::{Harness, LogHarness};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A directory of its own, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("seqline-embedded-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Log options of the suites: several partitions per gateway topic, so
/// per-key order is checked across partitions.
pub fn test_options() -> LogOptions {
    LogOptions {
        gateway: 4,
        // The suites use gateway topics for isolation: test them durable.
        unsynced_recoverable_topics: false,
        ..LogOptions::default()
    }
}

pub struct LogFixture {
    last: Mutex<Option<EmbeddedLog>>,
    dir: TempDir,
}

impl LogFixture {
    pub fn new() -> Self {
        Self {
            last: Mutex::new(None),
            dir: TempDir::new(),
        }
    }
}

impl Drop for LogFixture {
    fn drop(&mut self) {
        self.last.lock().unwrap().take();
    }
}

#[async_trait]
impl Harness<dyn Log> for LogFixture {
    async fn open(&self) -> Arc<dyn Log> {
        // Our own handle goes first, so a reopen really closes the engine.
        self.last.lock().unwrap().take();
        let engine = EmbeddedEngine::open(&self.dir.0).unwrap();
        let log = EmbeddedLog::open(engine, test_options()).unwrap();
        *self.last.lock().unwrap() = Some(log.clone());
        Arc::new(log)
    }
}

#[async_trait]
impl LogHarness for LogFixture {
    async fn inject_raw(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Option<u64> {
        let log = self.last.lock().unwrap().clone()?;
        Some(log.inject_raw_for_tests(topic, partition, raw).await.unwrap())
    }
}

pub struct StoreFixture {
    store: Mutex<Option<Arc<dyn Store>>>,
    dir: TempDir,
    /// Directories of `open_other`, removed with the fixture.
    others: Mutex<Vec<TempDir>>,
}

impl StoreFixture {
    pub fn new() -> Self {
        Self {
            store: Mutex::new(None),
            dir: TempDir::new(),
            others: Mutex::new(Vec::new()),
        }
    }
}

impl Drop for StoreFixture {
    fn drop(&mut self) {
        self.store.lock().unwrap().take();
    }
}

#[async_trait]
impl Harness<dyn Store> for StoreFixture {
    async fn open(&self) -> Arc<dyn Store> {
        self.store.lock().unwrap().take();
        let engine = EmbeddedEngine::open(&self.dir.0).unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(engine).unwrap());
        *self.store.lock().unwrap() = Some(Arc::clone(&store));
        store
    }
    async fn open_other(&self) -> Option<Arc<dyn Store>> {
        let dir = TempDir::new();
        let engine = EmbeddedEngine::open(&dir.0).unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(engine).unwrap());
        self.others.lock().unwrap().push(dir);
        Some(store)
    }
}

pub struct PresenceFixture;

#[async_trait]
impl Harness<dyn Presence> for PresenceFixture {
    async fn open(&self) -> Arc<dyn Presence> {
        Arc::new(MemoryPresence::new())
    }
}
