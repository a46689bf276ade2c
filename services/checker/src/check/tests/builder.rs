//! Builds small histories: a model of one run that records what each
//! device would record.

use crate::check::{check, CheckOptions};
use crate::history::{body_hash, Event, EventBody, FinalEntry, MemberOp, Scope, Via};
use crate::report::Report;
use std::collections::BTreeMap;

pub(super) const G: &str = "g1";

pub(super) struct H {
    t: u64,
    pub events: Vec<Event>,
    pub users: Vec<(&'static str, Vec<&'static str>)>,
    user_seq: BTreeMap<&'static str, u64>,
    pub finals: BTreeMap<(&'static str, &'static str), Vec<FinalEntry>>,
}

impl H {
    pub fn new() -> Self {
        H {
            t: 0,
            events: Vec::new(),
            users: vec![("alice", vec!["a1"]), ("bob", vec!["b1", "b2"])],
            user_seq: BTreeMap::new(),
            finals: BTreeMap::new(),
        }
    }

    pub fn ev(&mut self, user: &str, device: &str, body: EventBody) {
        self.t += 1000;
        self.events.push(Event::new(self.t, user, device, body));
    }

    pub fn send(&mut self, user: &str, device: &str, cmid: &str, text: &str) {
        let body = EventBody::SendInvoke {
            conv: G.into(),
            client_msg_id: cmid.into(),
            body_hash: body_hash(text),
        };
        self.ev(user, device, body);
    }

    pub fn ok(&mut self, user: &str, device: &str, cmid: &str, seq: u64) {
        self.ev(
            user,
            device,
            EventBody::SendOk {
                conv: G.into(),
                client_msg_id: cmid.into(),
                conv_seq: seq,
            },
        );
    }

    /// The message reaches every member: a push to each device except
    /// `no_push`, a timeline entry, a final entry.
    pub fn deliver_but(&mut self, seq: u64, cmid: &str, text: &str, system: bool, no_push: Option<&str>) {
        for (user, devices) in self.users.clone() {
            let us = {
                let n = self.user_seq.entry(user).or_insert(0);
                *n += 1;
                *n
            };
            for device in devices {
                let entry = FinalEntry {
                    conv: G.into(),
                    conv_seq: seq,
                    client_msg_id: cmid.into(),
                    user_seq: Some(us),
                    body_hash: body_hash(text),
                    system,
                };
                self.finals.entry((user, device)).or_default().push(entry);
                if no_push != Some(device) {
                    self.recv(user, device, seq, cmid, us, text, system, Via::Push);
                }
            }
        }
    }

    pub fn deliver(&mut self, seq: u64, cmid: &str, text: &str) {
        self.deliver_but(seq, cmid, text, false, None);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn recv(
        &mut self,
        user: &str,
        device: &str,
        seq: u64,
        cmid: &str,
        us: u64,
        text: &str,
        system: bool,
        via: Via,
    ) {
        let body = EventBody::Recv {
            conv: G.into(),
            conv_seq: seq,
            client_msg_id: cmid.into(),
            user_seq: Some(us),
            via,
            body_hash: body_hash(text),
            sender: String::new(),
            system,
            read_diffusion: false,
            vclock: BTreeMap::new(),
        };
        self.ev(user, device, body);
    }

    /// A membership message at `seq` about `members`, seen by every device.
    pub fn member(&mut self, seq: u64, members: &[&str], change: MemberOp) {
        for (user, devices) in self.users.clone() {
            for device in devices {
                for m in members {
                    let body = EventBody::Member {
                        conv: G.into(),
                        member: (*m).into(),
                        change,
                        conv_seq: seq,
                    };
                    self.ev(user, device, body);
                }
            }
        }
        self.deliver_but(seq, &format!("member-{seq}"), "", true, None);
    }

    pub fn pull(&mut self, user: &str, device: &str, from: u64, returned: Vec<u64>) {
        self.ev(
            user,
            device,
            EventBody::Pull {
                scope: Scope::User,
                conv: None,
                from,
                returned,
            },
        );
    }

    /// Heal, every device's final view (user scope), every device converged.
    pub fn finish(mut self) -> Vec<Event> {
        self.ev("faults", "injector", EventBody::Heal {});
        for ((user, device), entries) in std::mem::take(&mut self.finals) {
            self.ev(
                user,
                device,
                EventBody::Final {
                    scope: Scope::User,
                    conv: None,
                    entries,
                },
            );
        }
        for (user, devices) in self.users.clone() {
            for device in devices {
                self.ev(user, device, EventBody::Converged {});
            }
        }
        self.events
    }
}

/// A clean run: creation, three acked sends, one unknown-outcome send that
/// got through, one refused send, a device that pulls what it had.
pub(super) fn base() -> H {
    let mut h = H::new();
    h.member(1, &["alice", "bob"], MemberOp::Join);
    h.send("alice", "a1", "m1", "hello");
    h.ok("alice", "a1", "m1", 2);
    h.deliver(2, "m1", "hello");
    h.send("alice", "a1", "m2", "world");
    h.deliver(3, "m2", "world");
    h.ok("alice", "a1", "m2", 3);
    h.send("bob", "b1", "m3", "hi");
    h.ok("bob", "b1", "m3", 4);
    h.deliver(4, "m3", "hi");
    h.send("alice", "a1", "m4", "lost?");
    h.ev(
        "alice",
        "a1",
        EventBody::SendInfo {
            conv: G.into(),
            client_msg_id: "m4".into(),
        },
    );
    h.deliver(5, "m4", "lost?");
    h.send("bob", "b2", "m5", "nope");
    h.ev(
        "bob",
        "b2",
        EventBody::SendFail {
            conv: G.into(),
            client_msg_id: "m5".into(),
            reason: "invalid".into(),
        },
    );
    h.pull("bob", "b2", 0, vec![1, 2, 3, 4, 5]);
    for (seq, cmid, text, system) in [
        (1, "member-1", "", true),
        (2, "m1", "hello", false),
        (3, "m2", "world", false),
        (4, "m3", "hi", false),
        (5, "m4", "lost?", false),
    ] {
        h.recv("bob", "b2", seq, cmid, seq, text, system, Via::Pull);
    }
    h.pull("bob", "b2", 5, vec![]);
    h
}

pub(super) fn run(events: &[Event]) -> Report {
    check(events, &CheckOptions::default())
}
