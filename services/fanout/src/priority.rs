//! The priority lane: high-priority messages of read-diffusion
//! conversations (an admin's announcements, membership events).
//!
//! The sequencer puts them on `priority-events` (key = conversation), apart
//! from the ordinary `conv-events`, and this lane sends each one at once and
//! in full to the gateways following its conversation, on their
//! `gw-priority.<id>` topics: no backlog of ordinary events (notices,
//! timeline pushes, receipts) is ever ahead of it, at any hop.
//!
//! Like notices, these pushes are hints beside the store's truth: a lost
//! one is pulled, and devices deduplicate by `(conv, conv_seq)`.

use crate::notices::{message_of, send, Round};
use crate::{FanoutConfig, Ports};
use seqline_core::ports::Polled;
use seqline_core::records::Topic;
use seqline_core::Result;
use tokio_util::sync::CancellationToken;

/// Runs the priority lane until `shutdown`.
pub(crate) async fn run(config: FanoutConfig, ports: Ports, shutdown: CancellationToken) -> Result<()> {
    let topic = Topic::PriorityEvents;
    let mut consumer = ports.log.subscribe(&config.priority_group, &topic).await?;
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            p = consumer.poll(config.batch_max) => p?,
        };
        let Polled::Records { partition, records } = polled else {
            continue;
        };
        let Some(next) = records.last().map(|r| r.offset + 1) else {
            continue;
        };
        let mut priority = Vec::with_capacity(records.len());
        let mut dead = Vec::new();
        for c in records {
            match message_of(c, partition, &topic) {
                Ok(m) => priority.push(m),
                Err(d) => dead.push(*d),
            }
        }
        if !dead.is_empty() {
            ports.log.append(&Topic::DeadLetter, dead).await?;
        }
        if !priority.is_empty() {
            send(
                &ports,
                Round {
                    priority,
                    notices: Vec::new(),
                },
            )
            .await?;
        }
        match consumer.commit(partition, next).await {
            Ok(()) => {}
            Err(seqline_core::Error::Fenced(reason)) => {
                tracing::warn!(partition, %reason, "priority-events partition lost before commit");
            }
            Err(e) => return Err(e),
        }
    }
}
