//! Receipts and packages on the gateway's topic: a receipt becomes the
//! sender's `ack` or `nack` (or the answer to a waiting HTTP request), a
//! package goes to the device's connections, for their rectifiers.

use crate::outbox::Outbound;
use crate::registry::DeviceKey;
use crate::state::Shared;
use seqline_core::model::Outcome;
use seqline_core::protocol::ServerFrame;
use seqline_core::records::{Package, Receipt};
use tracing::{debug, warn};

/// A package for a device: to each of its connections here.
pub(super) fn package(shared: &Shared, p: &Package) {
    let key = DeviceKey {
        user: p.user.clone(),
        device: p.device.clone(),
    };
    if shared.registry.deliver(&key, || Outbound::Package(p.clone())) == 0 {
        shared.metrics.undeliverable.inc();
    }
}

pub(super) fn receipt(shared: &Shared, r: Receipt) {
    if r.origin.gateway != shared.config.id {
        warn!(gateway = %r.origin.gateway, "a receipt for another gateway; skipped");
        return;
    }
    shared.admission.settled(&r.client_msg_id);
    if r.origin.request != 0 {
        if !shared.receipt_waiters.complete(r) {
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
    if shared.registry.deliver(&key, || Outbound::Frame(frame.clone())) == 0 {
        shared.metrics.undeliverable.inc();
    }
}
