//! Where a worker's replies go: each simulated client IP mapped to the UDP
//! peer it was last heard from, and one reply encoder per peer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

use crate::wire::Encoder;

/// Distinct UDP peers remembered; datagrams from more are still served but
/// their simulated IPs are not learnt (replies to them are dropped and counted).
const MAX_PEERS: usize = 1024;

/// Distinct simulated client addresses remembered, as many as `loadgen
/// --client-ips` may name: past them a peer that sends from ever new
/// addresses is served, and its replies dropped and counted, but it cannot
/// grow the map without bound.
const MAX_IPS: usize = 1 << 16;

/// Hashes a simulated IPv4 address: one multiply, enough for a map keyed by a few
/// thousand client addresses chosen by our own load generator.
#[derive(Default)]
pub(super) struct IpHasher(u64);

impl Hasher for IpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64 ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Where replies go: simulated destination IP → the UDP peer it was last heard from.
#[derive(Default)]
pub(super) struct Peers {
    pub(super) by_ip: HashMap<u32, u32, BuildHasherDefault<IpHasher>>,
    pub(super) out: Vec<(SocketAddr, Encoder)>,
}

impl Peers {
    /// Index of the UDP peer `from`, added if new and there is room.
    pub(super) fn index(&mut self, from: SocketAddr) -> Option<u32> {
        if let Some(i) = self.out.iter().position(|(a, _)| *a == from) {
            return Some(i as u32);
        }
        if self.out.len() >= MAX_PEERS {
            return None;
        }
        self.out.push((from, Encoder::default()));
        Some(self.out.len() as u32 - 1)
    }

    #[inline]
    pub(super) fn learn(&mut self, ip: u32, peer: u32) {
        let len = self.by_ip.len();
        match self.by_ip.entry(ip) {
            Entry::Occupied(mut e) => {
                if *e.get() != peer {
                    e.insert(peer);
                }
            }
            Entry::Vacant(e) => {
                if len < MAX_IPS {
                    e.insert(peer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_learnt_up_to_the_bound_and_moved_between_peers() {
        let mut p = Peers::default();
        let a = p.index("127.0.0.1:5000".parse().unwrap()).unwrap();
        let b = p.index("127.0.0.1:5001".parse().unwrap()).unwrap();
        for ip in 0..MAX_IPS as u32 + 100 {
            p.learn(ip, a);
        }
        assert_eq!(p.by_ip.len(), MAX_IPS);
        assert_eq!(p.by_ip.get(&(MAX_IPS as u32)), None);
        // A known address still follows the peer it was last heard from.
        p.learn(7, b);
        assert_eq!(p.by_ip.get(&7), Some(&b));
    }
}
