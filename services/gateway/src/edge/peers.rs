//! Open WebSocket connections per client address, for
//! `max_connections_per_ip`: one address cannot take every slot of the
//! gateway. Off by default, since many chat clients share an address behind
//! a carrier NAT or a load balancer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

/// Connections counted per address (IPv6 per /64: one host usually holds a
/// whole /64, so counting single addresses would not cap it).
#[derive(Debug)]
pub(crate) struct PeerCounts {
    /// Most connections per address; 0 counts nothing and refuses nothing.
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCounts {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more connection from `ip`. Returns the address it is
    /// counted under (to give back with [`PeerCounts::release`]), `Ok(None)`
    /// when there is no cap, and `Err(())` when the address is at the cap.
    pub fn try_take(&self, ip: IpAddr) -> Result<Option<IpAddr>, ()> {
        if self.max == 0 {
            return Ok(None);
        }
        let key = group(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return Err(());
        }
        *n += 1;
        Ok(Some(key))
    }

    /// Gives back a connection taken under `key`.
    pub fn release(&self, key: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }

    /// Connections counted for `ip` now.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&group(ip)).copied().unwrap_or(0)
    }
}

/// The address a connection is counted under: IPv4 as is (also when mapped
/// into IPv6), IPv6 by its /64 prefix.
fn group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_each_address_and_spares_the_others() {
        let peers = PeerCounts::new(2);
        let a = ip("203.0.113.7");
        let b = ip("198.51.100.1");
        let first = peers.try_take(a).unwrap().unwrap();
        peers.try_take(a).unwrap();
        assert_eq!(peers.try_take(a), Err(()), "a third from one address is refused");
        assert_eq!(peers.open(a), 2, "a refusal takes nothing");
        // Another address is unaffected.
        assert!(peers.try_take(b).unwrap().is_some());
        assert!(peers.try_take(b).unwrap().is_some());
        assert_eq!(peers.try_take(b), Err(()));
        // A closed connection frees its place.
        peers.release(first);
        assert_eq!(peers.open(a), 1);
        assert!(peers.try_take(a).unwrap().is_some());
        assert_eq!(peers.try_take(a), Err(()));
    }

    #[test]
    fn addresses_are_grouped_and_no_cap_counts_nothing() {
        let peers = PeerCounts::new(1);
        peers.try_take(ip("2001:db8:1:2::1")).unwrap();
        // The same /64: the same host.
        assert_eq!(peers.try_take(ip("2001:db8:1:2:ffff::9")), Err(()));
        // Another /64 is another host.
        assert!(peers.try_take(ip("2001:db8:1:3::1")).is_ok());
        // An IPv4 address mapped into IPv6 counts as itself.
        peers.try_take(ip("192.0.2.1")).unwrap();
        assert_eq!(peers.try_take(ip("::ffff:192.0.2.1")), Err(()));

        let uncapped = PeerCounts::new(0);
        for _ in 0..10_000 {
            assert_eq!(uncapped.try_take(ip("192.0.2.1")), Ok(None));
        }
        assert_eq!(uncapped.open(ip("192.0.2.1")), 0);
    }
}
