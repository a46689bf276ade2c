//! C5 and C11: what was seen against what was sent, and sender order.

use super::positions::list;
use crate::fxhash::{Map, Set};
use crate::history::EventBody;
use crate::index::{Dev, Index};
use crate::report::{CheckId, Findings};

/// C5: everything seen was sent, not refused, to that conversation, with
/// that body; nothing is both acked and refused.
pub(super) fn nothing_unsent(ix: &Index<'_>, f: &mut Findings) {
    let mut bad: Set<&str> = Set::default();
    for o in ix.obs.iter().filter(|o| !o.system) {
        let send = ix.sends.get(o.cmid);
        let inv = send.and_then(|s| s.invoke.as_ref());
        let problem = match (send.and_then(|s| s.fail), inv) {
            (Some(reason), _) => format!("refused ({reason})"),
            (None, None) => "never sent".to_string(),
            (_, Some(i)) if i.conv != o.conv => format!("sent to {}", i.conv),
            (_, Some(i)) if i.hash != o.hash => format!("sent with hash {:x}", i.hash),
            _ => continue,
        };
        if bad.insert(o.cmid) {
            f.hit(CheckId::C5, || {
                format!(
                    "{} at {} seq {} (hash {:x}, seen by {}/{} via {}): {problem}",
                    o.cmid,
                    o.conv,
                    o.seq,
                    o.hash,
                    o.dev.0,
                    o.dev.1,
                    o.source()
                )
            });
        }
    }
    for (cmid, s) in &ix.sends {
        if let (Some(reason), false) = (s.fail, s.acks.is_empty()) {
            if bad.insert(cmid) {
                f.hit(CheckId::C5, || {
                    format!("{cmid} acked at {} and refused ({reason})", list(&s.acks))
                });
            }
        }
    }
}

/// C11: a device's acked sends to a conversation get increasing conv_seqs in
/// the order it invoked them; an ack names where readers saw the message.
pub(super) fn sender_order(ix: &Index<'_>, positions: &Map<&str, Vec<(&str, u64)>>, f: &mut Findings) {
    let mut invoked: Set<&str> = Set::default();
    let mut last: Map<(Dev<'_>, &str), (&str, u64)> = Map::default();
    for e in &ix.sorted {
        let EventBody::SendInvoke {
            conv, client_msg_id, ..
        } = &e.body
        else {
            continue;
        };
        if !invoked.insert(client_msg_id) {
            continue;
        }
        let Some(send) = ix.sends.get(client_msg_id.as_str()) else {
            continue;
        };
        let Some(&(_, seq)) = send.acks.iter().find(|(c, _)| c == conv) else {
            continue;
        };
        let dev = (e.user.as_str(), e.device.as_str());
        if let Some((prev, prev_seq)) = last.insert((dev, conv), (client_msg_id, seq)) {
            if seq <= prev_seq {
                f.hit(CheckId::C11, || {
                    format!(
                        "{}/{} in {conv}: {client_msg_id} sent after {prev} but got seq {seq} <= {prev_seq}",
                        dev.0, dev.1
                    )
                });
            }
        }
    }
    for (cmid, send) in &ix.sends {
        let Some(seen) = positions.get(cmid) else {
            continue;
        };
        if let Some(ack) = send.acks.iter().find(|a| !seen.contains(a)) {
            f.hit(CheckId::C11, || {
                format!("{cmid} acked at {}#{} but seen at {}", ack.0, ack.1, list(seen))
            });
        }
    }
}
