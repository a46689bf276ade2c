//! The write path: encode, lock the touched partitions, one batch, group
//! commit, then advance the durable marks and wake consumers.

use super::topic::TopicState;
use super::LogInner;
use crate::engine::blocking;
use crate::error::{lock, EngineError};
use crate::sync::Ticket;
use crate::wire::encode_record;
use seqline_core::ids::partition_for;
use seqline_core::records::LogRecord;
use seqline_core::Result;
use std::sync::Arc;
use tracing::instrument;

/// Appends `records` durably; returns once they are fsynced and visible.
#[instrument(skip_all, fields(topic = %state.name, records = records.len()))]
pub(super) async fn append(inner: &Arc<LogInner>, state: Arc<TopicState>, records: Vec<LogRecord>) -> Result<()> {
    let count = state.partitions.len() as u32;
    // Every record of the append carries the appending span's context.
    let trace = seqline_telemetry::current_traceparent();
    // Encoding is a few microseconds per record: done here, it saves a
    // thread hop per append.
    let encoded = records
        .into_iter()
        .map(|r| {
            let partition = partition_for(r.key(), count);
            encode_record(r, trace).map(|bytes| (partition, bytes))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    append_encoded(inner, &state, encoded).await?;
    Ok(())
}

/// Writes already encoded records (partition, bytes), in order per
/// partition; returns each touched partition's new end offset.
pub(super) async fn append_encoded(
    inner: &Arc<LogInner>,
    state: &Arc<TopicState>,
    encoded: Vec<(u32, Vec<u8>)>,
) -> Result<Vec<(u32, u64)>> {
    if let Some((p, _)) = encoded.iter().find(|(p, _)| *p as usize >= state.partitions.len()) {
        return Err(seqline_core::Error::Invalid(format!(
            "topic {} has no partition {p}",
            state.name
        )));
    }
    let writer = Arc::clone(inner);
    let topic = Arc::clone(state);
    let (ends, ticket) = blocking(move || {
        let (ends, ticket) = write(&writer, &topic, encoded)?;
        // Once written, the durable marks must advance even if the caller
        // goes away (or its runtime does), or the partitions would stall
        // behind invisible records: the sync thread moves them.
        let marks = ends.clone();
        let volatile = topic.volatile;
        let advance = move |durable: bool| {
            if durable {
                for &(partition, end) in &marks {
                    topic.advance_durable(partition, end);
                }
                topic.bump();
            }
        };
        if volatile {
            advance(true);
        } else {
            writer.engine.on_durable(ticket, Box::new(advance));
        }
        Ok((ends, ticket))
    })
    .await?;
    if !state.volatile {
        inner.engine.durable(ticket).await?;
    }
    Ok(ends)
}

/// Assigns offsets and writes one batch (blocking).
pub(super) fn write(
    inner: &LogInner,
    state: &TopicState,
    encoded: Vec<(u32, Vec<u8>)>,
) -> Result<(Vec<(u32, u64)>, Ticket), EngineError> {
    let writing = inner.engine.enter()?;
    let mut touched: Vec<u32> = encoded.iter().map(|(p, _)| *p).collect();
    touched.sort_unstable();
    touched.dedup();
    // Ascending lock order: two appends never wait on each other in a cycle.
    let mut guards = Vec::with_capacity(touched.len());
    for &p in &touched {
        if let Some(part) = state.partitions.get(p as usize) {
            guards.push((p, lock(&part.next)));
        }
    }
    let mut next: Vec<(u32, u64)> = guards.iter().map(|(p, g)| (*p, **g)).collect();
    let mut batch = inner.engine.batch();
    for (partition, bytes) in encoded {
        if let Ok(i) = next.binary_search_by_key(&partition, |(p, _)| *p) {
            let offset = next[i].1;
            batch.insert(&inner.records, state.record_key(partition, offset), bytes);
            next[i].1 = offset + 1;
        }
    }
    let ticket = if state.volatile {
        inner.engine.commit_lazy(writing, batch)?
    } else {
        inner.engine.commit(writing, batch)?
    };
    for ((_, guard), (_, end)) in guards.iter_mut().zip(&next) {
        **guard = *end;
    }
    Ok((next, ticket))
}
