//! C8, C10, L1: pulls and cursors, user timelines, convergence.

use crate::fxhash::{Map, Set};
use crate::history::{EventBody, FinalEntry, Scope};
use crate::index::{Dev, Index};
use crate::report::{CheckId, Findings};
use std::cmp::Ordering;
use std::collections::BTreeMap;

fn short(seqs: &[u64]) -> String {
    let head: Vec<String> = seqs.iter().take(8).map(u64::to_string).collect();
    let more = if seqs.len() > 8 { ", ..." } else { "" };
    format!("[{}{more}]", head.join(", "))
}

/// C8: a pull from `from` returns from+1, from+2, ...; the cursor of a
/// stream never moves back except to 0 or after a reset.
pub(super) fn pulls(ix: &Index<'_>, f: &mut Findings) {
    let mut resets: Map<Dev<'_>, u64> = Map::default();
    let mut cursors: Map<(Dev<'_>, Scope, Option<&str>), (u64, u64)> = Map::default();
    for e in &ix.sorted {
        let dev = (e.user.as_str(), e.device.as_str());
        let (scope, conv, from, returned) = match &e.body {
            EventBody::Reset { .. } => {
                *resets.entry(dev).or_default() += 1;
                continue;
            }
            EventBody::Pull {
                scope,
                conv,
                from,
                returned,
            } => (*scope, conv.as_deref(), *from, returned),
            _ => continue,
        };
        let stream = || {
            format!(
                "{}/{} pull {scope:?}{}",
                dev.0,
                dev.1,
                conv.map(|c| format!(" {c}")).unwrap_or_default()
            )
        };
        if let Some(i) = returned.iter().zip(from + 1..).position(|(&got, want)| got != want) {
            f.hit(CheckId::C8, || {
                format!(
                    "{} from {from} returned {}: expected {} at index {i}",
                    stream(),
                    short(returned),
                    from + 1 + i as u64
                )
            });
        }
        let generation = resets.get(&dev).copied().unwrap_or(0);
        let before = cursors.insert((dev, scope, conv), (from, generation));
        if let Some((prev, prev_gen)) = before {
            if from != 0 && prev_gen == generation && from < prev {
                f.hit(CheckId::C8, || {
                    format!("{} cursor moved back from {prev} to {from} without a reset", stream())
                });
            }
        }
    }
}

/// C10: each user's timeline is 1..N, one entry per position, ordered by
/// conv_seq within each conversation.
pub(super) fn user_seqs(ix: &Index<'_>, f: &mut Findings) {
    let mut at: Map<(&str, u64), (&str, u64)> = Map::default();
    let mut of: Map<(&str, &str, u64), u64> = Map::default();
    let mut bad_us: Set<(&str, u64)> = Set::default();
    let mut bad_pos: Set<(&str, &str, u64)> = Set::default();
    for o in &ix.obs {
        let Some(us) = o.user_seq else { continue };
        let user = o.dev.0;
        if us == 0 {
            if bad_us.insert((user, 0)) {
                f.hit(CheckId::C10, || format!("{user}: user_seq 0 for {}#{}", o.conv, o.seq));
            }
            continue;
        }
        let first = *at.entry((user, us)).or_insert((o.conv, o.seq));
        if first != (o.conv, o.seq) && bad_us.insert((user, us)) {
            f.hit(CheckId::C10, || {
                format!(
                    "{user}: user_seq {us} is both {}#{} and {}#{}",
                    first.0, first.1, o.conv, o.seq
                )
            });
        }
        let first_us = *of.entry((user, o.conv, o.seq)).or_insert(us);
        if first_us != us && bad_pos.insert((user, o.conv, o.seq)) {
            f.hit(CheckId::C10, || {
                format!("{user}: {}#{} has user_seq {first_us} and {us}", o.conv, o.seq)
            });
        }
    }
    let mut maxima: Map<&str, u64> = Map::default();
    let mut per_user: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for &(user, us) in at.keys() {
        per_user.entry(user).or_default().push(us);
    }
    for (user, mut seqs) in per_user {
        seqs.sort_unstable();
        let max = seqs.last().copied().unwrap_or(0);
        maxima.insert(user, max);
        let missing = max - seqs.len() as u64;
        if missing > 0 {
            let first = seqs
                .iter()
                .zip(1..)
                .find(|(&s, want)| s != *want)
                .map_or(max, |(_, want)| want);
            f.hit_n(CheckId::C10, missing, || {
                format!("{user}: {missing} user_seq(s) missing from 1..{max}, first {first}")
            });
        }
    }
    for &(dev, entries) in &ix.user_finals {
        let max = maxima.get(dev.0).copied().unwrap_or(0);
        if let Some(why) = not_the_timeline(entries, max) {
            f.hit(CheckId::C10, || {
                format!("{}/{} user-scope final view: {why}", dev.0, dev.1)
            });
        }
    }
    let mut per_conv: Map<(&str, &str), Vec<(u64, u64)>> = Map::default();
    for (&(user, conv, seq), &us) in &of {
        per_conv.entry((user, conv)).or_default().push((seq, us));
    }
    for ((user, conv), mut pairs) in per_conv {
        pairs.sort_unstable();
        for w in pairs.windows(2) {
            if let [(s1, u1), (s2, u2)] = *w {
                if u2 <= u1 {
                    f.hit(CheckId::C10, || {
                        format!("{user} in {conv}: seq {s1} has user_seq {u1} but later seq {s2} has {u2}")
                    });
                }
            }
        }
    }
}

/// Why a user-scope final view is not exactly user_seq 1..=max in order
/// (entries without a user_seq, from read-diffusion conversations, aside).
fn not_the_timeline(entries: &[FinalEntry], max: u64) -> Option<String> {
    let mut want = 1;
    for us in entries.iter().filter_map(|e| e.user_seq) {
        match us.cmp(&want) {
            Ordering::Equal => want += 1,
            Ordering::Greater => return Some(format!("user_seq {want} missing (next is {us})")),
            Ordering::Less => return Some(format!("user_seq {us} after {}", want - 1)),
        }
    }
    (want <= max).then(|| format!("ends at user_seq {} of {max}", want - 1))
}

/// L1: after the last heal every device records `converged` within `bound`.
/// Returns whether a heal was recorded at all.
pub(super) fn convergence(ix: &Index<'_>, bound: u64, f: &mut Findings) -> bool {
    let Some(healed) = ix
        .sorted
        .iter()
        .rev()
        .find(|e| matches!(e.body, EventBody::Heal {}))
        .map(|e| e.t)
    else {
        return false;
    };
    let mut converged: Map<Dev<'_>, u64> = Map::default();
    for e in ix
        .sorted
        .iter()
        .filter(|e| e.t >= healed && matches!(e.body, EventBody::Converged {}))
    {
        converged.entry((e.user.as_str(), e.device.as_str())).or_insert(e.t);
    }
    for (&user, devices) in &ix.devices_of {
        for &device in devices {
            match converged.get(&(user, device)) {
                None => f.hit(CheckId::L1, || {
                    format!("{user}/{device} never converged after the heal at t={healed}")
                }),
                Some(&t) if t - healed > bound => f.hit(CheckId::L1, || {
                    format!(
                        "{user}/{device} converged {}ms after the heal (bound {}ms)",
                        (t - healed) / 1000,
                        bound / 1000
                    )
                }),
                Some(_) => {}
            }
        }
    }
    true
}
