//! The sequencer: per conversation, dedup, membership, sender order and
//! contiguous `conv_seq`, stored with a compare-and-set on the head before
//! any receipt or delivery leaves.
//!
//! Crash between the store write and the offset commit: the batch is read
//! again, every command is a dedup hit, and the receipts and deliveries are
//! sent again from what was stored (the timeline writer skips what it has).

mod batch;
mod diffusion;
mod replay;
pub mod state;
mod worker;

pub use state::{apply, Applied, ConvState, Limits};

pub(crate) use diffusion::copy_for;

use crate::worker::{consume, Options};
use crate::{PersisterConfig, Ports};
use seqline_core::records::Topic;
use tokio_util::sync::CancellationToken;

/// Runs the sequencer until `shutdown`.
pub async fn run(config: PersisterConfig, ports: Ports, shutdown: CancellationToken) -> seqline_core::Result<()> {
    let handler = worker::SequencerHandler::new(&config, ports.clone());
    let options = Options::new(&config.sequencer_group, Topic::Inbound, config.batch_max);
    consume(ports.log.as_ref(), &options, shutdown, handler).await
}
