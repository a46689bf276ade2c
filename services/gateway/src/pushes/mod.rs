//! Pushes: the consumers of this gateway's own topics and what they hand to
//! the connections. Receipts become `ack`/`nack` frames (or answers to
//! waiting HTTP requests) and packages go to the connections' rectifiers
//! (`receipts`); notices go to the followers of a conversation (`notices`);
//! read marks go to the user's other devices (`read_marks`). High-priority
//! notices come on their own topic (`gw-priority.<id>`), consumed by a
//! second worker, so they never wait behind the ordinary topic's backlog. Both are workers of the shared
//! runtime (`seqline-worker`), which sets undecodable records aside on the
//! dead-letter topic. Offsets are committed after dispatch: pushes are
//! best-effort (the store is the truth) and a receipt for a connection that
//! is gone is simply dropped (its client resends and gets the same answer).
//! Log failures do not stop the gateway: a transient poll failure is
//! retried after a pause, a failed commit is logged.

mod notices;
pub(crate) mod read_marks;
mod receipts;

use crate::error::Error;
use crate::state::Shared;
use seqline_core::records::{GatewayRecord, LogRecord, Topic};
use seqline_worker::{consume, Handler, Input, OnLogFailure, Options};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

const MAX_POLL: usize = 1024;

/// The gateway must keep serving its connections while the log is away:
/// a transient poll failure is retried after a pause doubling up to this,
/// and a failed commit only means records are dispatched twice.
const MAX_POLL_PAUSE: Duration = Duration::from_secs(5);

/// Consumes `gw.<id>` until the gateway stops. A failure to join the group,
/// or a poll failure that retrying cannot fix, is returned.
pub(crate) async fn run(shared: Arc<Shared>) -> Result<(), Error> {
    let topic = Topic::Gateway(shared.config.id.clone());
    let group = format!("gateway.{}", shared.config.id);
    let result = dispatch(&shared, group, topic, "receipt consumer subscribed", true).await;
    shared.ready.store(false, Ordering::Release);
    result
}

/// Consumes `gw-priority.<id>` (high-priority notices, sent in full)
/// until the gateway stops, beside the ordinary topic's consumer.
pub(crate) async fn run_priority(shared: Arc<Shared>) -> Result<(), Error> {
    let topic = Topic::GatewayPriority(shared.config.id.clone());
    let group = format!("gateway-priority.{}", shared.config.id);
    dispatch(&shared, group, topic, "priority consumer subscribed", false).await
}

async fn dispatch(
    shared: &Arc<Shared>,
    group: String,
    topic: Topic,
    subscribed: &'static str,
    marks_ready: bool,
) -> Result<(), Error> {
    let options = Options::new(group, topic, MAX_POLL).on_log_failure(OnLogFailure::Retry {
        max_pause: MAX_POLL_PAUSE,
    });
    let handler = Dispatch {
        shared: Arc::clone(shared),
        group: options.group.clone(),
        subscribed,
        marks_ready,
    };
    consume(shared.ports.log.as_ref(), &options, shared.stop.clone(), handler).await?;
    Ok(())
}

/// Hands each record of the gateway's topics to its connections.
struct Dispatch {
    shared: Arc<Shared>,
    group: String,
    subscribed: &'static str,
    /// Whether joining the group makes the gateway ready.
    marks_ready: bool,
}

impl Handler for Dispatch {
    fn subscribed(&mut self) {
        if self.marks_ready {
            self.shared.ready.store(true, Ordering::Release);
        }
        info!(group = self.group, "{}", self.subscribed);
    }

    async fn handle(&mut self, partition: u32, batch: &[Input]) -> seqline_core::Result<()> {
        let shared = &self.shared;
        for input in batch {
            // A span per traced record: a gateway batch mixes many users'
            // pushes and acks, each continuing its own message's trace.
            let span = match (input.trace, &input.record) {
                (None, _) => tracing::Span::none(),
                (Some(_), LogRecord::Gateway(GatewayRecord::Receipt(_))) => tracing::info_span!("ack"),
                (Some(_), _) => tracing::info_span!("push"),
            };
            if let Some(t) = input.trace {
                seqline_telemetry::set_parent(&span, t);
            }
            let _in_trace = span.enter();
            match &input.record {
                LogRecord::Gateway(GatewayRecord::Receipt(r)) => receipts::receipt(shared, r.clone()),
                LogRecord::Gateway(GatewayRecord::Package(p)) => receipts::package(shared, p),
                LogRecord::Gateway(GatewayRecord::Notice(n)) => notices::notice(shared, n.clone()),
                LogRecord::Gateway(GatewayRecord::ReadMark(r)) => read_marks::deliver(shared, r.clone()),
                _ => warn!(
                    partition,
                    offset = input.offset,
                    "a record that is not for a gateway; skipped"
                ),
            }
        }
        Ok(())
    }
}
