//! Generates random valid histories: a model run with conversations created
//! three ways (members recorded at creation, given as initial members, or
//! left to inference), acked, unknown-outcome and refused sends, joins and
//! leaves, pushes dropped, repeated and reordered, pulls that fill the holes,
//! and each device's final views.

use seqline_checker::{Event, EventBody, FinalEntry, Scope, Via};
use std::collections::BTreeSet;

/// splitmix64: tiny, seedable, good enough to pick cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Created,
    Initial,
    Inferred,
}

struct Conv {
    name: String,
    mode: Mode,
    members: BTreeSet<usize>,
    next_seq: u64,
}

struct Run {
    rng: Rng,
    t: u64,
    events: Vec<Event>,
    devices: Vec<Vec<String>>,
    timeline: Vec<Vec<FinalEntry>>,
    /// Per user, per device: entries pushed but not yet delivered.
    pending: Vec<Vec<Vec<FinalEntry>>>,
    /// Per user, per device: user_seqs received so far.
    received: Vec<Vec<BTreeSet<u64>>>,
    cmids: u64,
}

fn user(u: usize) -> String {
    format!("u{u}")
}

impl Run {
    fn ev(&mut self, u: usize, device: &str, body: EventBody) {
        self.t += 1 + self.rng.next() % 50;
        self.events.push(Event::new(self.t, user(u), device, body));
    }

    fn recv(&mut self, u: usize, d: usize, e: &FinalEntry, via: Via) {
        let body = EventBody::Recv {
            conv: e.conv.clone(),
            conv_seq: e.conv_seq,
            client_msg_id: e.client_msg_id.clone(),
            user_seq: e.user_seq,
            via,
            body_hash: e.body_hash,
            sender: String::new(),
            system: e.system,
            read_diffusion: false,
            vclock: Default::default(),
        };
        let device = self.devices[u][d].clone();
        self.ev(u, &device, body);
        self.received[u][d].extend(e.user_seq);
    }

    /// Sequences one message to `to`: a timeline entry each, pushes pending.
    fn deliver(&mut self, conv: &str, seq: u64, cmid: &str, hash: u64, system: bool, to: &BTreeSet<usize>) {
        for &u in to {
            let entry = FinalEntry {
                conv: conv.into(),
                conv_seq: seq,
                client_msg_id: cmid.into(),
                user_seq: Some(self.timeline[u].len() as u64 + 1),
                body_hash: hash,
                system,
            };
            self.timeline[u].push(entry.clone());
            for d in 0..self.devices[u].len() {
                self.pending[u][d].push(entry.clone());
            }
        }
    }

    /// Pushes what is pending to one device: dropped, repeated, reordered.
    fn flush(&mut self, u: usize, d: usize) {
        let mut batch = std::mem::take(&mut self.pending[u][d]);
        for i in (1..batch.len()).rev() {
            let j = self.rng.below(i + 1);
            batch.swap(i, j);
        }
        for e in batch {
            if self.rng.chance(15) {
                continue;
            }
            self.recv(u, d, &e, Via::Push);
            if self.rng.chance(15) {
                self.recv(u, d, &e, Via::Push);
            }
        }
    }

    /// Pulls the user timeline from the device's contiguous cursor.
    fn pull(&mut self, u: usize, d: usize) {
        let have = &self.received[u][d];
        let from = (1..).take_while(|s| have.contains(s)).count() as u64;
        let entries: Vec<FinalEntry> = self.timeline[u][from as usize..].to_vec();
        let returned = entries.iter().filter_map(|e| e.user_seq).collect();
        let device = self.devices[u][d].clone();
        self.ev(
            u,
            &device,
            EventBody::Pull {
                scope: Scope::User,
                conv: None,
                from,
                returned,
            },
        );
        for e in &entries {
            self.recv(u, d, e, Via::Pull);
        }
    }

    fn cmid(&mut self) -> String {
        self.cmids += 1;
        format!("{:08x}-{}", self.rng.next() as u32, self.cmids)
    }
}

mod steps;

pub use steps::generate;
