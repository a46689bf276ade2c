//! The gateway's rectifier: per device, it releases pushed entries only when
//! their package is complete and they continue the sequence the device
//! already has. A gap that lasts past a timeout turns into "pull from here".

use crate::model::TimelineEntry;
use crate::records::Package;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What the rectifier tells the gateway to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Push these entries (complete package, continuing the sequence).
    Push {
        /// The package id.
        package: u64,
        /// Entries in order.
        entries: Vec<TimelineEntry>,
    },
    /// A gap outlived the timeout: the device should pull after `after`.
    Pull {
        /// The last user_seq released in order.
        after: u64,
    },
}

#[derive(Debug)]
struct Partial {
    fragments: Vec<Option<Vec<TimelineEntry>>>,
    received: u32,
}

/// Rectifier state for one device connection.
#[derive(Debug)]
pub struct Rectifier {
    /// The device has everything up to here (pushed or synced).
    delivered: u64,
    timeout: Duration,
    /// Incomplete packages by id.
    partial: HashMap<u64, Partial>,
    /// Complete entries waiting for the gap before them, by user_seq.
    waiting: BTreeMap<u64, (u64, TimelineEntry)>,
    /// When the current gap was first seen.
    gap_since: Option<Instant>,
    max_buffered: usize,
}

impl Rectifier {
    /// A rectifier for a device that has everything up to `delivered`.
    pub fn new(delivered: u64, timeout: Duration, max_buffered: usize) -> Self {
        Self {
            delivered,
            timeout,
            partial: HashMap::new(),
            waiting: BTreeMap::new(),
            gap_since: None,
            max_buffered: max_buffered.max(1),
        }
    }

    /// The last user_seq the device is known to have.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The device synced up to `upto`: drop what it now has and release what
    /// continues after it.
    pub fn synced(&mut self, upto: u64, now: Instant) -> Vec<Release> {
        if upto > self.delivered {
            self.delivered = upto;
        }
        self.drain(now)
    }

    /// Offers a package fragment; returns what may be pushed now.
    pub fn offer(&mut self, pkg: Package, now: Instant) -> Vec<Release> {
        let count = pkg.count.max(1);
        let entries = if count == 1 {
            Some(pkg.entries)
        } else if pkg.index >= count {
            None
        } else {
            let p = self.partial.entry(pkg.package_id).or_insert_with(|| Partial {
                fragments: (0..count).map(|_| None).collect(),
                received: 0,
            });
            let slot = &mut p.fragments[pkg.index as usize];
            if slot.is_none() {
                *slot = Some(pkg.entries);
                p.received += 1;
            }
            if p.received == count {
                self.partial
                    .remove(&pkg.package_id)
                    .map(|p| p.fragments.into_iter().flatten().flatten().collect())
            } else {
                if self.gap_since.is_none() {
                    self.gap_since = Some(now);
                }
                None
            }
        };
        if let Some(entries) = entries {
            for e in entries {
                if e.user_seq.0 > self.delivered {
                    self.waiting.insert(e.user_seq.0, (pkg.package_id, e));
                }
            }
        }
        if self.waiting.len() > self.max_buffered {
            // Too much is held back: give it up and let the device pull.
            return self.give_up();
        }
        self.drain(now)
    }

    /// When `poll` should be called next, if a gap is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.gap_since.map(|t| t + self.timeout)
    }

    /// Call at or after `deadline`: turns an outlived gap into a pull.
    pub fn poll(&mut self, now: Instant) -> Vec<Release> {
        match self.deadline() {
            Some(d) if now >= d => self.give_up(),
            _ => Vec::new(),
        }
    }

    fn give_up(&mut self) -> Vec<Release> {
        self.partial.clear();
        self.waiting.clear();
        self.gap_since = None;
        vec![Release::Pull { after: self.delivered }]
    }

    fn drain(&mut self, now: Instant) -> Vec<Release> {
        // Forget what the device already has.
        while let Some((&s, _)) = self.waiting.first_key_value() {
            if s <= self.delivered {
                self.waiting.pop_first();
            } else {
                break;
            }
        }
        let mut out: Vec<Release> = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            let (package, e) = entry.remove();
            self.delivered = e.user_seq.0;
            match out.last_mut() {
                Some(Release::Push { package: p, entries }) if *p == package => entries.push(e),
                _ => out.push(Release::Push {
                    package,
                    entries: vec![e],
                }),
            }
        }
        if self.waiting.is_empty() && self.partial.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() || !out.is_empty() {
            // A new gap, or progress on the old one: the clock starts now.
            self.gap_since = Some(now);
        }
        out
    }
}
