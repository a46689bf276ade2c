//! The consumers of this gateway's own topics: receipts become `ack`/`nack`
//! frames (or answers to waiting HTTP requests), packages go to the
//! connections' rectifiers. High-priority notices come on their own topic
//! (`gw-priority.<id>`), consumed by a second loop, so they never wait
//! behind the ordinary topic's backlog. Offsets are committed after
//! dispatch: pushes are best-effort (the store is the truth) and a receipt
//! for a connection that is gone is simply dropped (its client resends and
//! gets the same answer).

use crate::error::Error;
use crate::hub::{DeviceKey, Outbound};
use crate::state::Shared;
use seqline_core::model::Outcome;
use seqline_core::ports::{LogConsumer, Polled};
use seqline_core::protocol::ServerFrame;
use seqline_core::records::{GatewayRecord, LogRecord, Receipt, Topic};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, instrument, warn};

const MAX_POLL: usize = 1024;

/// Consumes `gw.<id>` until the gateway stops. A failure to join the group,
/// or a poll or commit failure that retrying cannot fix, is returned.
#[instrument(skip_all, fields(topic = %Topic::Gateway(shared.config.id.clone()).name()))]
pub(crate) async fn run(shared: Arc<Shared>) -> Result<(), Error> {
    let topic = Topic::Gateway(shared.config.id.clone());
    let group = format!("gateway.{}", shared.config.id);
    let mut consumer = tokio::select! {
        c = shared.ports.log.subscribe(&group, &topic) => c?,
        () = shared.stop.cancelled() => return Ok(()),
    };
    shared.ready.store(true, Ordering::Release);
    info!(group, "receipt consumer subscribed");
    let result = consume(&shared, consumer.as_mut()).await;
    shared.ready.store(false, Ordering::Release);
    result
}

/// Consumes `gw-priority.<id>` (high-priority notices, sent in full)
/// until the gateway stops, beside the ordinary topic's consumer.
#[instrument(skip_all, fields(topic = %Topic::GatewayPriority(shared.config.id.clone()).name()))]
pub(crate) async fn run_priority(shared: Arc<Shared>) -> Result<(), Error> {
    let topic = Topic::GatewayPriority(shared.config.id.clone());
    let group = format!("gateway-priority.{}", shared.config.id);
    let mut consumer = tokio::select! {
        c = shared.ports.log.subscribe(&group, &topic) => c?,
        () = shared.stop.cancelled() => return Ok(()),
    };
    info!(group, "priority consumer subscribed");
    consume(&shared, consumer.as_mut()).await
}

async fn consume(shared: &Arc<Shared>, consumer: &mut dyn LogConsumer) -> Result<(), Error> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let polled = tokio::select! {
            p = consumer.poll(MAX_POLL) => p,
            () = shared.stop.cancelled() => return Ok(()),
        };
        let polled = match polled {
            Ok(p) => p,
            Err(e) if e.is_retryable() => {
                warn!(error = %e, "polling the gateway topic failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.stop.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        backoff = Duration::from_millis(50);
        let Polled::Records { partition, records } = polled else {
            continue;
        };
        let Some(next) = records.last().map(|r| r.offset + 1) else {
            continue;
        };
        for consumed in records {
            match consumed.record {
                Ok(LogRecord::Gateway(GatewayRecord::Receipt(r))) => receipt(shared, r),
                Ok(LogRecord::Gateway(GatewayRecord::Package(p))) => {
                    let key = DeviceKey {
                        user: p.user.clone(),
                        device: p.device.clone(),
                    };
                    if shared
                        .hub
                        .deliver(&key, &shared.metrics, || Outbound::Package(p.clone()))
                        == 0
                    {
                        shared.metrics.undeliverable.inc();
                    }
                }
                Ok(LogRecord::Gateway(GatewayRecord::Notice(n))) => crate::reads::notice(shared, n),
                Ok(LogRecord::Gateway(GatewayRecord::ReadMark(r))) => crate::reads::read_mark(shared, r),
                Ok(_) => warn!(
                    partition,
                    offset = consumed.offset,
                    "a record that is not for a gateway; skipped"
                ),
                Err(reason) => warn!(
                    partition,
                    offset = consumed.offset,
                    reason,
                    "an undecodable record; skipped"
                ),
            }
        }
        if let Err(e) = consumer.commit(partition, next).await {
            // Not fatal: the records are read again after a restart, and
            // both acks and pushes may repeat.
            warn!(error = %e, partition, "committing the gateway topic offset failed");
        }
    }
}

fn receipt(shared: &Shared, r: Receipt) {
    if r.origin.gateway != shared.config.id {
        warn!(gateway = %r.origin.gateway, "a receipt for another gateway; skipped");
        return;
    }
    shared.admission.settled(&r.client_msg_id);
    if r.origin.request != 0 {
        if !shared.pending.complete(r) {
            debug!("a receipt for an HTTP request that no longer waits");
            shared.metrics.undeliverable.inc();
        }
        return;
    }
    let key = DeviceKey {
        user: r.origin.user.clone(),
        device: r.origin.device.clone(),
    };
    let frame = match &r.outcome {
        Outcome::Sequenced { conv_seq } => ServerFrame::Ack {
            id: r.client_msg_id,
            conv: r.conv.clone(),
            conv_seq: conv_seq.0,
        },
        Outcome::Refused { code, reason } => ServerFrame::Nack {
            id: r.client_msg_id,
            conv: r.conv.clone(),
            code: *code,
            message: reason.clone(),
        },
    };
    if shared
        .hub
        .deliver(&key, &shared.metrics, || Outbound::Frame(frame.clone()))
        == 0
    {
        shared.metrics.undeliverable.inc();
    }
}
