//! Configuration of the persister role.

use serde::{Deserialize, Serialize};

/// Settings of the sequencer and the timeline writer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersisterConfig {
    /// Most records taken from the log in one batch (one store write and one
    /// fsync per conversation or user per batch).
    pub batch_max: usize,
    /// Client ids remembered in memory per conversation; older ones are
    /// looked up in the store.
    pub dedup_window: usize,
    /// Most members a group may have.
    pub max_group_members: usize,
    /// Groups with more members than this are in read-diffusion mode: a
    /// message is stored once and pulled by members' devices instead of
    /// being written to every member's timeline.
    pub read_diffusion_threshold: usize,
    /// Largest message body accepted, bytes (the gateway checks first).
    pub max_body_bytes: usize,
    /// Consumer group of the sequencer.
    pub sequencer_group: String,
    /// Consumer group of the timeline writer.
    pub timeline_group: String,
    /// Conversations whose state is kept in memory.
    pub conversation_cache: usize,
    /// Users whose timeline state is kept in memory.
    pub timeline_cache: usize,
}

impl Default for PersisterConfig {
    fn default() -> Self {
        Self {
            batch_max: 1024,
            dedup_window: 1024,
            max_group_members: 100_000,
            read_diffusion_threshold: 500,
            max_body_bytes: 65_536,
            sequencer_group: "sequencer".into(),
            timeline_group: "timeline".into(),
            conversation_cache: 100_000,
            timeline_cache: 100_000,
        }
    }
}

impl PersisterConfig {
    /// Checks values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max == 0 {
            return Err("persister.batch_max must be at least 1".into());
        }
        if self.max_group_members < 2 {
            return Err("persister.max_group_members must be at least 2".into());
        }
        if self.read_diffusion_threshold < 2 {
            return Err("persister.read_diffusion_threshold must be at least 2".into());
        }
        Ok(())
    }
}
