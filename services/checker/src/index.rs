//! One pass over the history that every check reads from: sends by client id,
//! every observation of a message, the first observation of each position,
//! membership changes and each device's final views. Everything borrows from
//! the events, so a history of millions of lines is indexed without copies.

use crate::fxhash::{Map, Set};
use crate::history::{Event, EventBody, FinalEntry, MemberOp, Scope, Via};
use std::collections::{BTreeMap, BTreeSet};

/// A device: (user, device).
pub(crate) type Dev<'a> = (&'a str, &'a str);

/// Someone saw `cmid` at (`conv`, `seq`), live or in a final view.
pub(crate) struct Obs<'a> {
    pub conv: &'a str,
    pub seq: u64,
    pub cmid: &'a str,
    pub hash: u64,
    pub system: bool,
    pub user_seq: Option<u64>,
    pub dev: Dev<'a>,
    /// `None` for a final view entry.
    pub via: Option<Via>,
    /// The message put its conversation in read-diffusion mode (live only).
    pub read_diffusion: bool,
    /// The message's vector clock (live only, when it has one).
    pub vclock: Option<&'a BTreeMap<String, u64>>,
}

impl Obs<'_> {
    pub fn source(&self) -> &'static str {
        match self.via {
            Some(Via::Push) => "push",
            Some(Via::Pull) => "pull",
            Some(Via::History) => "history",
            None => "final",
        }
    }
}

/// The first `send_invoke` of a client id.
pub(crate) struct Invoke<'a> {
    pub conv: &'a str,
    pub hash: u64,
    pub dev: Dev<'a>,
}

/// Everything recorded about one client id on the sending side.
#[derive(Default)]
pub(crate) struct Send<'a> {
    pub invoke: Option<Invoke<'a>>,
    /// Distinct (conv, conv_seq) the acks named, in order.
    pub acks: Vec<(&'a str, u64)>,
    pub fail: Option<&'a str>,
    pub info: bool,
}

impl Send<'_> {
    /// Outcome unknown: a `send_info` and neither an ack nor a refusal.
    pub fn unknown(&self) -> bool {
        self.info && self.acks.is_empty() && self.fail.is_none()
    }
}

/// A device's final view of one conversation, in the device's order.
#[derive(Default)]
pub(crate) struct View<'a> {
    pub entries: Vec<&'a FinalEntry>,
    pub cmids: Set<&'a str>,
    pub seqs: Set<u64>,
}

pub(crate) struct Index<'a> {
    /// Events in time order (ties keep file order).
    pub sorted: Vec<&'a Event>,
    pub sends: Map<&'a str, Send<'a>>,
    pub send_ok_events: u64,
    pub obs: Vec<Obs<'a>>,
    /// The first observation of each (conv, conv_seq): the reference.
    pub canon: Map<(&'a str, u64), usize>,
    /// Positions seen per conversation (observations and membership events), sorted.
    pub conv_seqs: Map<&'a str, Vec<u64>>,
    /// Positions seen as messages (observations only) per conversation, sorted.
    pub msg_seqs: Map<&'a str, Vec<u64>>,
    /// Membership changes per (conv, member), sorted by conv_seq, deduplicated.
    pub member_ops: Map<(&'a str, &'a str), Vec<(u64, MemberOp)>>,
    /// Each device's final view per conversation (see the crate docs).
    pub views: Map<Dev<'a>, Map<&'a str, View<'a>>>,
    /// Each device's last user-scope final view.
    pub user_finals: Vec<(Dev<'a>, &'a [FinalEntry])>,
    /// Devices that recorded at least one final view.
    pub finalized: Set<Dev<'a>>,
    /// Devices per user (heal-only recorders left out).
    pub devices_of: Map<&'a str, BTreeSet<&'a str>>,
    devices: Set<Dev<'a>>,
}

impl<'a> Index<'a> {
    pub fn build(events: &'a [Event]) -> Self {
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|e| e.t);
        let mut ix = Index {
            sorted: Vec::new(),
            sends: Map::default(),
            send_ok_events: 0,
            obs: Vec::new(),
            canon: Map::default(),
            conv_seqs: Map::default(),
            msg_seqs: Map::default(),
            member_ops: Map::default(),
            views: Map::default(),
            user_finals: Vec::new(),
            finalized: Set::default(),
            devices_of: Map::default(),
            devices: Set::default(),
        };
        let mut last_final: Map<(Dev, Scope, Option<&str>), &Event> = Map::default();
        for &e in &sorted {
            ix.scan(e, &mut last_final);
        }
        ix.sorted = sorted;
        ix.build_views(last_final);
        for (i, o) in ix.obs.iter().enumerate() {
            ix.canon.entry((o.conv, o.seq)).or_insert(i);
        }
        for &(conv, seq) in ix.canon.keys() {
            ix.msg_seqs.entry(conv).or_default().push(seq);
        }
        for seqs in ix.msg_seqs.values_mut() {
            seqs.sort_unstable();
        }
        ix.conv_seqs = ix.msg_seqs.clone();
        for ((conv, _), ops) in &mut ix.member_ops {
            ops.sort_unstable();
            ops.dedup();
            ix.conv_seqs
                .entry(conv)
                .or_default()
                .extend(ops.iter().map(|(s, _)| *s));
        }
        for seqs in ix.conv_seqs.values_mut() {
            seqs.sort_unstable();
            seqs.dedup();
        }
        ix
    }

    fn scan(&mut self, e: &'a Event, last_final: &mut Map<(Dev<'a>, Scope, Option<&'a str>), &'a Event>) {
        let dev = (e.user.as_str(), e.device.as_str());
        if !matches!(e.body, EventBody::Heal {}) && self.devices.insert(dev) {
            self.devices_of.entry(dev.0).or_default().insert(dev.1);
        }
        match &e.body {
            EventBody::SendInvoke {
                conv,
                client_msg_id,
                body_hash,
            } => {
                let send = self.sends.entry(client_msg_id).or_default();
                send.invoke.get_or_insert(Invoke {
                    conv,
                    hash: *body_hash,
                    dev,
                });
            }
            EventBody::SendOk {
                conv,
                client_msg_id,
                conv_seq,
            } => {
                self.send_ok_events += 1;
                let acks = &mut self.sends.entry(client_msg_id).or_default().acks;
                if !acks.contains(&(conv.as_str(), *conv_seq)) {
                    acks.push((conv, *conv_seq));
                }
            }
            EventBody::SendFail {
                client_msg_id, reason, ..
            } => {
                self.sends.entry(client_msg_id).or_default().fail.get_or_insert(reason);
            }
            EventBody::SendInfo { client_msg_id, .. } => {
                self.sends.entry(client_msg_id).or_default().info = true;
            }
            EventBody::Recv {
                conv,
                conv_seq,
                client_msg_id,
                user_seq,
                via,
                body_hash,
                system,
                read_diffusion,
                vclock,
                ..
            } => {
                self.obs.push(Obs {
                    conv,
                    seq: *conv_seq,
                    cmid: client_msg_id,
                    hash: *body_hash,
                    system: *system,
                    user_seq: *user_seq,
                    dev,
                    via: Some(*via),
                    read_diffusion: *read_diffusion,
                    vclock: (!vclock.is_empty()).then_some(vclock),
                });
            }
            EventBody::Member {
                conv,
                member,
                change,
                conv_seq,
            } => {
                self.member_ops
                    .entry((conv, member))
                    .or_default()
                    .push((*conv_seq, *change));
            }
            EventBody::Final { scope, conv, entries } => {
                self.finalized.insert(dev);
                last_final.insert((dev, *scope, conv.as_deref()), e);
                self.obs.extend(entries.iter().map(|f| Obs {
                    conv: &f.conv,
                    seq: f.conv_seq,
                    cmid: &f.client_msg_id,
                    hash: f.body_hash,
                    system: f.system,
                    user_seq: f.user_seq,
                    dev,
                    via: None,
                    read_diffusion: false,
                    vclock: None,
                }));
            }
            EventBody::Pull { .. } | EventBody::Reset { .. } | EventBody::Heal {} | EventBody::Converged {} => {}
        }
    }

    /// A device's view of a conversation is its last conv-scope final of that
    /// conversation if it has one, else the entries of that conversation in
    /// its last user-scope final.
    fn build_views(&mut self, last_final: Map<(Dev<'a>, Scope, Option<&'a str>), &'a Event>) {
        let mut chosen: Map<(Dev, &str), (Scope, &Event)> = Map::default();
        for ((dev, scope, _), e) in last_final {
            let EventBody::Final { entries, .. } = &e.body else {
                continue;
            };
            if scope == Scope::User {
                self.user_finals.push((dev, entries));
            }
            let convs: BTreeSet<&str> = entries.iter().map(|f| f.conv.as_str()).collect();
            for conv in convs {
                let slot = chosen.entry((dev, conv)).or_insert((scope, e));
                if scope == Scope::Conv {
                    *slot = (scope, e);
                }
            }
        }
        for ((dev, conv), (_, e)) in chosen {
            let EventBody::Final { entries, .. } = &e.body else {
                continue;
            };
            let view = self.views.entry(dev).or_default().entry(conv).or_default();
            for f in entries.iter().filter(|f| f.conv == conv) {
                view.entries.push(f);
                view.cmids.insert(&f.client_msg_id);
                view.seqs.insert(f.conv_seq);
            }
        }
    }

    /// The device's view of `conv` (`None` when it has no entry of it).
    pub fn view(&self, dev: Dev<'a>, conv: &str) -> Option<&View<'a>> {
        self.views.get(&dev).and_then(|v| v.get(conv))
    }

    /// Positions where someone saw a message of `cmid`, deduplicated.
    pub fn positions_of(&self) -> Map<&'a str, Vec<(&'a str, u64)>> {
        let mut out: Map<&str, Vec<(&str, u64)>> = Map::default();
        for o in &self.obs {
            let at = out.entry(o.cmid).or_default();
            if !at.contains(&(o.conv, o.seq)) {
                at.push((o.conv, o.seq));
            }
        }
        out
    }
}
