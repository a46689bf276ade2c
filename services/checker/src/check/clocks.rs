//! C13 and C14: vector clocks against the order the server gave.
//!
//! A clock counts, per user, the text messages of that user in the
//! conversation its author had seen (its own earlier sends and the message
//! itself included). The server sequences a message after every message
//! its author could have seen (a message is delivered only once committed,
//! and a device's sends keep their order), so a clock may count, of each
//! user, at most the messages sequenced below it, plus the message itself
//! for its sender, plus that user's sends that were never sequenced (an
//! author counts its own sends before they are answered, and a receiver
//! merges what it counted). Read the other way: when a clock says its author
//! had seen a user's `k`-th message, that message has a lower conv_seq.

use crate::fxhash::{Map, Set};
use crate::history::EventBody;
use crate::index::{Dev, Index};
use crate::report::{CheckId, Findings};
use std::collections::BTreeMap;

type Clock = BTreeMap<String, u64>;

/// Whether `a` happened before `b`: no entry larger, one smaller.
fn before(a: &Clock, b: &Clock) -> bool {
    let get = |c: &Clock, k: &String| c.get(k).copied().unwrap_or(0);
    let no_larger = a.iter().all(|(k, v)| *v <= get(b, k));
    let one_smaller = b.iter().any(|(k, v)| get(a, k) < *v);
    no_larger && one_smaller
}

fn show(c: &Clock) -> String {
    let parts: Vec<String> = c.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// The clock of each client id, as first seen; C14 counts ids seen with two.
fn clocks_by_id<'a>(ix: &Index<'a>, f: &mut Findings) -> Map<&'a str, &'a Clock> {
    let mut by_id: Map<&str, &Clock> = Map::default();
    let mut differ: Set<&str> = Set::default();
    for o in &ix.obs {
        let Some(c) = o.vclock else { continue };
        let first = *by_id.entry(o.cmid).or_insert(c);
        if first != c && differ.insert(o.cmid) {
            f.hit(CheckId::C14, || {
                format!(
                    "{} at {} seq {}: {}/{} saw clock {} where another reader saw {}",
                    o.cmid,
                    o.conv,
                    o.seq,
                    o.dev.0,
                    o.dev.1,
                    show(c),
                    show(first)
                )
            });
        }
    }
    by_id
}

/// C13 and C14 (see the module docs).
pub(super) fn causality(ix: &Index<'_>, positions: &Map<&str, Vec<(&str, u64)>>, f: &mut Findings) {
    let clocks = clocks_by_id(ix, f);
    if clocks.is_empty() {
        return;
    }
    never_ahead(ix, positions, &clocks, f);
    growing_per_device(ix, &clocks, f);
}

/// C13: no clock counts more of a user's messages than were sequenced below
/// it (plus itself, plus that user's sends never sequenced).
fn never_ahead(ix: &Index<'_>, positions: &Map<&str, Vec<(&str, u64)>>, clocks: &Map<&str, &Clock>, f: &mut Findings) {
    let mut unsequenced: Map<(&str, &str), u64> = Map::default();
    for (cmid, s) in &ix.sends {
        if let Some(inv) = &s.invoke {
            if s.acks.is_empty() && !positions.contains_key(cmid) {
                *unsequenced.entry((inv.conv, inv.dev.0)).or_default() += 1;
            }
        }
    }
    for (&conv, seqs) in &ix.msg_seqs {
        // Text messages of each user sequenced below the current seq.
        let mut below: Map<&str, u64> = Map::default();
        for &seq in seqs {
            let Some(o) = ix.canon.get(&(conv, seq)).map(|&i| &ix.obs[i]) else {
                continue;
            };
            if o.system {
                continue;
            }
            let sender = ix.sends.get(o.cmid).and_then(|s| s.invoke.as_ref()).map(|i| i.dev.0);
            if let Some(clock) = clocks.get(o.cmid) {
                for (user, &n) in clock.iter() {
                    let user = user.as_str();
                    let own = u64::from(sender == Some(user));
                    let lost = unsequenced.get(&(conv, user)).copied().unwrap_or(0);
                    let held = below.get(user).copied().unwrap_or(0);
                    if n > held + own + lost {
                        f.hit(CheckId::C13, || {
                            format!(
                                "{} at {conv} seq {seq} (by {}): clock {} counts {n} of {user}'s messages, \
                                 but {held} were sequenced below it (+{own} itself, +{lost} never sequenced)",
                                o.cmid,
                                sender.unwrap_or("?"),
                                show(clock)
                            )
                        });
                    }
                }
            }
            if let Some(sender) = sender {
                *below.entry(sender).or_default() += 1;
            }
        }
    }
}

/// C14: a device's sends to a conversation that readers saw, in the order
/// it sent them, carry clocks each after the one before.
fn growing_per_device(ix: &Index<'_>, clocks: &Map<&str, &Clock>, f: &mut Findings) {
    let mut invoked: Set<&str> = Set::default();
    let mut last: Map<(Dev<'_>, &str), (&str, &Clock)> = Map::default();
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
        let Some(&clock) = clocks.get(client_msg_id.as_str()) else {
            continue;
        };
        let dev = (e.user.as_str(), e.device.as_str());
        if let Some((prev, prev_clock)) = last.insert((dev, conv), (client_msg_id, clock)) {
            if !before(prev_clock, clock) {
                f.hit(CheckId::C14, || {
                    format!(
                        "{}/{} in {conv}: {client_msg_id} sent after {prev} with clock {}, not after {}",
                        dev.0,
                        dev.1,
                        show(clock),
                        show(prev_clock)
                    )
                });
            }
        }
    }
}
