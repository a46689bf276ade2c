//! C1, C2, C3, C6: what sits at each position, and where each id sits.

use crate::fxhash::{Map, Set};
use crate::index::{Index, Obs};
use crate::report::{CheckId, Findings};

fn describe(o: &Obs<'_>) -> String {
    format!(
        "{} (hash {:x}) seen by {}/{} via {}",
        o.cmid,
        o.hash,
        o.dev.0,
        o.dev.1,
        o.source()
    )
}

pub(crate) fn list(at: &[(&str, u64)]) -> String {
    at.iter()
        .map(|(c, s)| format!("{c}#{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// C1: every observation of a position matches the first one.
pub(super) fn one_message_per_position(ix: &Index<'_>, f: &mut Findings) {
    let mut bad: Set<(&str, u64)> = Set::default();
    for o in &ix.obs {
        let Some(first) = ix.canon.get(&(o.conv, o.seq)).map(|&i| &ix.obs[i]) else {
            continue;
        };
        if (first.cmid, first.hash) != (o.cmid, o.hash) && bad.insert((o.conv, o.seq)) {
            f.hit(CheckId::C1, || {
                format!("{} seq {}: {} but {}", o.conv, o.seq, describe(first), describe(o))
            });
        }
    }
}

/// C2 and C6: one position per client id. Returns the unknown-outcome ids
/// recovered (seen somewhere).
pub(super) fn one_position_per_id(ix: &Index<'_>, positions: &Map<&str, Vec<(&str, u64)>>, f: &mut Findings) -> u64 {
    let mut recovered = 0;
    for (cmid, at) in positions {
        let send = ix.sends.get(cmid);
        let unknown = send.is_some_and(|s| s.unknown());
        recovered += u64::from(unknown);
        let acks = send.map(|s| s.acks.as_slice()).unwrap_or(&[]);
        if at.len() > 1 {
            let id = if unknown { CheckId::C6 } else { CheckId::C2 };
            let what = if unknown { "unknown-outcome send" } else { "client id" };
            f.hit(id, || {
                format!("{what} {cmid} seen at {} (acked at [{}])", list(at), list(acks))
            });
        } else if acks.len() > 1 {
            f.hit(CheckId::C2, || format!("client id {cmid} acked at {}", list(acks)));
        }
    }
    for (cmid, send) in &ix.sends {
        if send.acks.len() > 1 && !positions.contains_key(cmid) {
            f.hit(CheckId::C2, || {
                format!("client id {cmid} acked at {} (never seen)", list(&send.acks))
            });
        }
    }
    recovered
}

/// C3: each conversation's positions are exactly 1..max.
pub(super) fn contiguous(ix: &Index<'_>, f: &mut Findings) {
    let mut convs: Vec<(&&str, &Vec<u64>)> = ix.conv_seqs.iter().collect();
    convs.sort_unstable();
    for (conv, seqs) in convs {
        let max = seqs.last().copied().unwrap_or(0);
        let mut expect = 1;
        for &s in seqs {
            if s == 0 {
                f.hit(CheckId::C3, || format!("{conv}: seq 0 seen"));
                continue;
            }
            if s > expect {
                let (lo, hi) = (expect, s - 1);
                f.hit_n(CheckId::C3, s - expect, || {
                    let range = if lo == hi {
                        format!("{lo}")
                    } else {
                        format!("{lo}..={hi}")
                    };
                    format!("{conv}: seq {range} never seen (max {max})")
                });
            }
            expect = s + 1;
        }
    }
}
