//! The one place where backends are chosen, by URL scheme.

use crate::config::PortsConfig;
use anyhow::{bail, Context};
use seqline_core::ports::{Log, Presence, Store};
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, MemoryPresence};
use std::path::PathBuf;
use std::sync::Arc;

/// The opened ports, and what must be closed at the end.
pub struct Opened {
    pub log: Arc<dyn Log>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    engines: Vec<Arc<EmbeddedEngine>>,
}

impl Opened {
    /// Flushes and closes what was opened.
    pub async fn close(self) {
        drop(self.log);
        drop(self.store);
        for engine in self.engines {
            if let Err(e) = engine.sync().await {
                tracing::warn!(error = %e, "final sync failed");
            }
        }
    }
}

fn embedded_dir(url: &str) -> Option<PathBuf> {
    url.strip_prefix("embedded://").map(PathBuf::from)
}

/// Opens the backends named in `cfg`.
pub async fn open(cfg: &PortsConfig) -> anyhow::Result<Opened> {
    let mut engines: Vec<(PathBuf, Arc<EmbeddedEngine>)> = Vec::new();
    let mut engine_for = |dir: PathBuf| -> anyhow::Result<Arc<EmbeddedEngine>> {
        if let Some((_, e)) = engines.iter().find(|(d, _)| *d == dir) {
            return Ok(Arc::clone(e));
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating data directory {}", dir.display()))?;
        let e =
            EmbeddedEngine::open(&dir).with_context(|| format!("opening the embedded engine in {}", dir.display()))?;
        engines.push((dir, Arc::clone(&e)));
        Ok(e)
    };
    let log: Arc<dyn Log> = match embedded_dir(&cfg.log) {
        Some(dir) => Arc::new(EmbeddedLog::open(engine_for(dir)?, Default::default())?),
        None => bail!(
            "[ports] log = {:?}: unsupported scheme (this build knows embedded://DIR)",
            cfg.log
        ),
    };
    let store: Arc<dyn Store> = match embedded_dir(&cfg.store) {
        Some(dir) => Arc::new(EmbeddedStore::open(engine_for(dir)?)?),
        None => bail!(
            "[ports] store = {:?}: unsupported scheme (this build knows embedded://DIR)",
            cfg.store
        ),
    };
    let presence: Arc<dyn Presence> = match cfg.presence.as_str() {
        "memory://" => Arc::new(MemoryPresence::new()),
        other => bail!("[ports] presence = {other:?}: unsupported scheme (this build knows memory://)"),
    };
    Ok(Opened {
        log,
        store,
        presence,
        engines: engines.into_iter().map(|(_, e)| e).collect(),
    })
}
