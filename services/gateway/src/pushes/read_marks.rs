//! Read marks: a device read a conversation up to a point, and the user's
//! other devices are told. The gateway that took the `read` appends a mark
//! to the topic of every gateway holding another device of the user; each
//! of them pushes it to those devices' connections.

use crate::outbox::Outbound;
use crate::registry::DeviceKey;
use crate::state::Shared;
use seqline_core::protocol::ServerFrame;
use seqline_core::records::{GatewayRecord, LogRecord, ReadMark, Topic};
use seqline_core::{DeviceId, GatewayId, UserId};
use std::collections::BTreeSet;
use tracing::warn;

/// Appends a read mark to the topic of every gateway holding another device
/// of the user.
pub(crate) async fn tell_devices(shared: &Shared, mark: ReadMark) {
    let users: [UserId; 1] = [mark.user.clone()];
    let located = match shared.ports.presence.lookup(&users).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "looking up the user's devices failed; their read marks come on the next sync");
            return;
        }
    };
    let me: &DeviceId = &mark.device;
    let gateways: BTreeSet<GatewayId> = located
        .get(&mark.user)
        .into_iter()
        .flatten()
        .filter(|l| &l.device != me)
        .map(|l| l.gateway.clone())
        .collect();
    for g in gateways {
        let record = LogRecord::Gateway(GatewayRecord::ReadMark(mark.clone()));
        if let Err(e) = shared.ports.log.append(&Topic::Gateway(g), vec![record]).await {
            warn!(error = %e, "appending a read mark failed");
        }
    }
}

/// A read mark for this gateway: tell the user's other devices here.
pub(super) fn deliver(shared: &Shared, r: ReadMark) {
    let frame = ServerFrame::ReadMark {
        conv: r.conv.clone(),
        conv_seq: r.conv_seq.0,
    };
    let mut delivered = 0;
    for device in shared.registry.devices_of(&r.user) {
        if device == r.device {
            continue;
        }
        let key = DeviceKey {
            user: r.user.clone(),
            device,
        };
        delivered += shared.registry.deliver(&key, || Outbound::Frame(frame.clone()));
    }
    shared.metrics.read_marks_pushed.add(delivered as u64);
}
