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
use seqline_core::records::Topic;
use seqline_core::Result;
use seqline_worker::{consume, Handler, Input, Options};
use tokio_util::sync::CancellationToken;

/// Runs the priority lane until `shutdown`; `ready` is told when it first
/// has its partitions.
pub(crate) async fn run(
    config: FanoutConfig,
    ports: Ports,
    shutdown: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<()> {
    let options = Options::new(&config.priority_group, Topic::PriorityEvents, config.batch_max);
    let log = std::sync::Arc::clone(&ports.log);
    let lane = PriorityLane {
        ports,
        ready: Some(ready),
    };
    consume(log.as_ref(), &options, shutdown, lane).await
}

struct PriorityLane {
    ports: Ports,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Handler for PriorityLane {
    fn assigned(&mut self, _partitions: &[u32]) {
        if let Some(ready) = self.ready.take() {
            // Nobody waits any more once the head start is over.
            let _ = ready.send(());
        }
    }

    async fn handle(&mut self, partition: u32, batch: &[Input]) -> Result<()> {
        let mut priority = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for input in batch {
            match message_of(input, partition, &Topic::PriorityEvents) {
                Ok(m) => priority.push(m),
                Err(d) => dead.push(*d),
            }
        }
        if !dead.is_empty() {
            self.ports.log.append(&Topic::DeadLetter, dead).await?;
        }
        if !priority.is_empty() {
            send(
                &self.ports,
                Round {
                    priority,
                    notices: Vec::new(),
                },
            )
            .await?;
        }
        Ok(())
    }
}
