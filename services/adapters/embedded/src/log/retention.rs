//! Retention: records every group has committed past are deleted, a bounded
//! number per commit, so topics such as `gw.*` do not grow forever.

use super::topic::TopicState;
use super::LogInner;
use crate::engine::blocking;
use seqline_core::Result;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Trims `partition` below the lowest offset any group still needs.
pub(super) async fn trim(inner: &Arc<LogInner>, topic: &Arc<TopicState>, partition: u32) -> Result<()> {
    let Some(part) = topic.partitions.get(partition as usize) else {
        return Ok(());
    };
    let keep_from = topic.retain_from(partition);
    let low = part.low.load(Ordering::Acquire);
    if keep_from <= low {
        return Ok(());
    }
    let until = keep_from.min(low.saturating_add(inner.options.trim_batch.max(1) as u64));
    let inner = Arc::clone(inner);
    let topic = Arc::clone(topic);
    blocking(move || {
        let Some(part) = topic.partitions.get(partition as usize) else {
            return Ok(());
        };
        // One trimmer per partition; a busy one means the work is in hand.
        let Ok(_guard) = part.trimming.try_lock() else {
            return Ok(());
        };
        let low = part.low.load(Ordering::Acquire);
        if until <= low {
            return Ok(());
        }
        let mut batch = inner.engine.batch();
        for offset in low..until {
            batch.remove(&inner.records, topic.record_key(partition, offset));
        }
        // Deletes need no fsync (lazy: none is asked for): after a crash
        // they are simply redone.
        inner.engine.commit_lazy(inner.engine.enter()?, batch)?;
        part.low.store(until, Ordering::Release);
        Ok(())
    })
    .await?;
    Ok(())
}
