//! C4, C7, C9, C12: what each device ends with and what it saw live.

use crate::fxhash::{Map, Set};
use crate::history::Via;
use crate::index::{Dev, Index, View};
use crate::membership::{Coverage, Membership, Place};
use crate::report::{CheckId, Findings};

fn devices<'s, 'a>(ix: &'s Index<'a>, user: &'a str) -> impl Iterator<Item = Dev<'a>> + use<'s, 'a> {
    ix.devices_of.get(user).into_iter().flatten().map(move |&d| (user, d))
}

/// C4: every acked message is in the final view of every device of every
/// member that owes it.
pub(super) fn no_loss(ix: &Index<'_>, members: &Membership<'_>, f: &mut Findings) {
    let mut unfinished: Set<Dev<'_>> = Set::default();
    for (cmid, send) in &ix.sends {
        for &(conv, seq) in &send.acks {
            for &user in members.of(conv) {
                if !members.coverage(conv, user).is_some_and(|c| c.covers(seq)) {
                    continue;
                }
                for dev in devices(ix, user) {
                    if !ix.finalized.contains(&dev) {
                        if unfinished.insert(dev) {
                            f.hit(CheckId::C4, || {
                                format!(
                                    "{}/{} recorded no final view (owes {cmid} at {conv}#{seq})",
                                    dev.0, dev.1
                                )
                            });
                        }
                    } else if !ix.view(dev, conv).is_some_and(|v| v.cmids.contains(cmid)) {
                        f.hit(CheckId::C4, || {
                            format!(
                                "acked {cmid} at {conv}#{seq} missing from {}/{}'s final view",
                                dev.0, dev.1
                            )
                        });
                    }
                }
            }
        }
    }
}

/// What is wrong with one final view, if anything.
fn diverges(view: Option<&View<'_>>, cov: Option<&Coverage>, reference: &[u64]) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(view) = view {
        let mut prev: Option<u64> = None;
        for e in &view.entries {
            let s = e.conv_seq;
            if prev.is_some_and(|p| s <= p) && problems.is_empty() {
                problems.push(format!("seq {s} after {}", prev.unwrap_or_default()));
            }
            prev = Some(s);
        }
        if let Some(s) = view
            .entries
            .iter()
            .find(|e| cov.is_some_and(|c| c.place(e.conv_seq) == Place::AfterLeave))
        {
            problems.push(format!("holds seq {} after leaving", s.conv_seq));
        }
    }
    let owed = |s: &&u64| cov.is_some_and(|c| c.covers(**s));
    let mut missing = reference
        .iter()
        .filter(owed)
        .filter(|s| !view.is_some_and(|v| v.seqs.contains(s)));
    if let Some(first) = missing.next() {
        problems.push(format!("missing {} owed seq(s), first {first}", 1 + missing.count()));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// C7: every final view is the reference sequence cut by membership.
pub(super) fn same_sequence(ix: &Index<'_>, members: &Membership<'_>, f: &mut Findings) {
    let empty = Vec::new();
    for (&dev, views) in &ix.views {
        for (&conv, view) in views {
            let reference = ix.msg_seqs.get(conv).unwrap_or(&empty);
            if let Some(why) = diverges(Some(view), members.coverage(conv, dev.0), reference) {
                f.hit(CheckId::C7, || {
                    format!("{}/{} final view of {conv}: {why}", dev.0, dev.1)
                });
            }
        }
    }
    for (&conv, reference) in &ix.msg_seqs {
        for &user in members.of(conv) {
            for dev in devices(ix, user).filter(|d| ix.finalized.contains(d) && ix.view(*d, conv).is_none()) {
                if let Some(why) = diverges(None, members.coverage(conv, user), reference) {
                    f.hit(CheckId::C7, || {
                        format!("{}/{} final view of {conv} is empty: {why}", dev.0, dev.1)
                    });
                }
            }
        }
    }
}

/// C9: after dedup and insert-by-seq, what a device received live has no
/// hole below the largest seq it received.
pub(super) fn live_prefix(ix: &Index<'_>, members: &Membership<'_>, f: &mut Findings) {
    let mut live: Map<(Dev<'_>, &str), Vec<u64>> = Map::default();
    for o in ix.obs.iter().filter(|o| o.via.is_some()) {
        live.entry((o.dev, o.conv)).or_default().push(o.seq);
    }
    for ((dev, conv), mut seqs) in live {
        let Some(cov) = members.coverage(conv, dev.0) else {
            continue;
        };
        seqs.sort_unstable();
        seqs.dedup();
        let Some(&max) = seqs.last() else { continue };
        let reference = ix.msg_seqs.get(conv).map(Vec::as_slice).unwrap_or(&[]);
        let mut holes = reference
            .iter()
            .take_while(|&&s| s < max)
            .filter(|&&s| cov.covers(s) && seqs.binary_search(&s).is_err());
        if let Some(first) = holes.next() {
            let n = 1 + holes.count();
            f.hit(CheckId::C9, || {
                format!(
                    "{}/{} live view of {conv}: {n} hole(s) below seq {max}, first {first}",
                    dev.0, dev.1
                )
            });
        }
    }
}

/// C12: in a read-diffusion conversation every device of every member gets
/// each covered message once, in conv_seq order, by timeline or by pull.
pub(super) fn conv_streams(ix: &Index<'_>, members: &Membership<'_>, f: &mut Findings) {
    let mut rd: Set<&str> = Set::default();
    for o in ix.obs.iter().filter(|o| o.via.is_some()) {
        if o.read_diffusion || (o.via == Some(Via::Pull) && o.user_seq.is_none()) {
            rd.insert(o.conv);
        }
    }
    let mut streams: Map<(Dev<'_>, &str), Vec<u64>> = Map::default();
    for o in ix.obs.iter().filter(|o| rd.contains(o.conv)) {
        if matches!(o.via, Some(Via::Push | Via::Pull)) {
            streams.entry((o.dev, o.conv)).or_default().push(o.seq);
        }
    }
    let empty = Vec::new();
    let mut convs: Vec<&str> = rd.into_iter().collect();
    convs.sort_unstable();
    for conv in convs {
        let reference = ix.msg_seqs.get(conv).unwrap_or(&empty);
        for &user in members.of(conv) {
            let Some(cov) = members.coverage(conv, user) else {
                continue;
            };
            for dev in devices(ix, user) {
                let stream = streams.get(&(dev, conv)).unwrap_or(&empty);
                if let Some(why) = stream_problems(stream, cov, reference) {
                    f.hit(CheckId::C12, || format!("{}/{} stream of {conv}: {why}", dev.0, dev.1));
                }
            }
        }
    }
}

/// What is wrong with one device's stream of one conversation, if anything.
fn stream_problems(stream: &[u64], cov: &Coverage, reference: &[u64]) -> Option<String> {
    let mut problems = Vec::new();
    let mut seen: Set<u64> = Set::default();
    let mut prev: Option<u64> = None;
    let (mut repeats, mut inversions) = (Vec::new(), Vec::new());
    for &s in stream {
        if !seen.insert(s) {
            repeats.push(s);
        } else if let Some(p) = prev.filter(|p| s < *p) {
            inversions.push((p, s));
        }
        prev = Some(prev.map_or(s, |p| p.max(s)));
    }
    if let Some(first) = repeats.first() {
        problems.push(format!("{} repeat(s), first seq {first}", repeats.len()));
    }
    if let Some((p, s)) = inversions.first() {
        problems.push(format!("{} out of order, first seq {s} after {p}", inversions.len()));
    }
    let mut missing = reference.iter().filter(|s| cov.covers(**s) && !seen.contains(*s));
    if let Some(first) = missing.next() {
        problems.push(format!("missing {} owed seq(s), first {first}", 1 + missing.count()));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
