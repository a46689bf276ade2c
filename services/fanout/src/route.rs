//! Packaging: the entries of each user, for each of their live devices,
//! grouped by gateway.

use seqline_core::ids::{GatewayId, UserId};
use seqline_core::ports::DeviceLocation;
use seqline_core::records::{GatewayRecord, LogRecord, Package, UserEvent};
use std::collections::HashMap;

/// Builds the package records of `events` for the devices in `located`,
/// per gateway. Entries of one user keep their order; a device's entries are
/// cut into fragments of at most `max_entries` that share one package id.
pub fn route(
    events: &[UserEvent],
    located: &HashMap<UserId, Vec<DeviceLocation>>,
    next_package: &mut u64,
    max_entries: usize,
) -> HashMap<GatewayId, Vec<LogRecord>> {
    let mut per_user: Vec<(&UserId, Vec<&UserEvent>)> = Vec::new();
    let mut index: HashMap<&UserId, usize> = HashMap::new();
    for e in events {
        if !located.contains_key(&e.user) {
            continue;
        }
        let i = *index.entry(&e.user).or_insert_with(|| {
            per_user.push((&e.user, Vec::new()));
            per_user.len() - 1
        });
        per_user[i].1.push(e);
    }
    let mut out: HashMap<GatewayId, Vec<LogRecord>> = HashMap::new();
    for (user, evs) in per_user {
        let Some(devices) = located.get(user) else {
            continue;
        };
        for loc in devices {
            *next_package = next_package.wrapping_add(1);
            let chunks: Vec<&[&UserEvent]> = evs.chunks(max_entries.max(1)).collect();
            let count = chunks.len() as u32;
            for (i, chunk) in chunks.into_iter().enumerate() {
                out.entry(loc.gateway.clone())
                    .or_default()
                    .push(LogRecord::Gateway(GatewayRecord::Package(Package {
                        user: user.clone(),
                        device: loc.device.clone(),
                        package_id: *next_package,
                        index: i as u32,
                        count,
                        entries: chunk.iter().map(|e| e.entry.clone()).collect(),
                    })));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::*;
    use seqline_core::model::*;

    fn event(user: &str, seq: u64) -> UserEvent {
        let conv = ConversationId::parse("g:x").unwrap();
        UserEvent {
            user: UserId::parse(user).unwrap(),
            entry: TimelineEntry {
                user_seq: UserSeq(seq),
                message: Message {
                    read_diffusion: false,
                    sender_name: String::new(),
                    conv,
                    conv_seq: ConvSeq(seq),
                    client_msg_id: ClientMsgId::random(),
                    sender: UserId::parse("s").unwrap(),
                    sender_device: DeviceId::parse("d").unwrap(),
                    kind: MessageKind::Text,
                    body: "hi".into(),
                    members: vec![],
                    priority: false,
                    server_ts_ms: 0,
                    vclock: Default::default(),
                },
            },
        }
    }

    fn loc(device: &str, gw: &str) -> DeviceLocation {
        DeviceLocation {
            device: DeviceId::parse(device).unwrap(),
            gateway: GatewayId::parse(gw).unwrap(),
        }
    }

    #[test]
    fn packages_per_device_in_order_and_offline_users_skipped() {
        let events = vec![event("a", 1), event("b", 1), event("a", 2), event("a", 3)];
        let mut located = HashMap::new();
        located.insert(UserId::parse("a").unwrap(), vec![loc("p", "gw1"), loc("q", "gw2")]);
        let mut next = 0;
        let out = route(&events, &located, &mut next, 2);
        for gw in ["gw1", "gw2"] {
            let recs = &out[&GatewayId::parse(gw).unwrap()];
            let pkgs: Vec<&Package> = recs
                .iter()
                .map(|r| match r {
                    LogRecord::Gateway(GatewayRecord::Package(p)) => p,
                    _ => panic!("not a package"),
                })
                .collect();
            assert_eq!(pkgs.len(), 2, "3 entries in fragments of 2");
            assert_eq!((pkgs[0].index, pkgs[0].count, pkgs[1].index), (0, 2, 1));
            assert_eq!(pkgs[0].package_id, pkgs[1].package_id);
            let seqs: Vec<u64> = pkgs
                .iter()
                .flat_map(|p| p.entries.iter().map(|e| e.user_seq.0))
                .collect();
            assert_eq!(seqs, vec![1, 2, 3]);
            assert!(pkgs.iter().all(|p| p.user.as_str() == "a"));
        }
        assert_eq!(out.len(), 2, "user b is offline: nothing for it");
    }
}
