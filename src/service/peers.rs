//! Where a worker's replies go: each simulated client IP mapped to the UDP
//! peer it was last heard from, and one reply encoder per peer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

use crate::wire::Encoder;

/// Distinct UDP peers remembered. A new one past them takes the place of the
/// one heard from longest ago that has no replies waiting (its simulated
/// IPs forgotten with it), so that a long-lived server outlives many loadgen
/// runs; with every place waiting on replies, it is served but its simulated
/// IPs are not learnt (replies to them are dropped and counted).
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
    /// For each peer, when it was last heard from (a count of datagrams).
    heard: Vec<u64>,
    datagrams: u64,
}

impl Peers {
    /// Index of the UDP peer `from`, added if new and there is room (or a
    /// place to take, see [`MAX_PEERS`]).
    pub(super) fn index(&mut self, from: SocketAddr) -> Option<u32> {
        self.datagrams += 1;
        if let Some(i) = self.out.iter().position(|(a, _)| *a == from) {
            self.heard[i] = self.datagrams;
            return Some(i as u32);
        }
        if self.out.len() < MAX_PEERS {
            self.out.push((from, Encoder::default()));
            self.heard.push(self.datagrams);
            return Some(self.out.len() as u32 - 1);
        }
        let i = (0..self.out.len())
            .filter(|&i| self.out[i].1.is_empty())
            .min_by_key(|&i| self.heard[i])?;
        self.by_ip.retain(|_, p| *p != i as u32);
        self.out[i].0 = from;
        self.heard[i] = self.datagrams;
        Some(i as u32)
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

    /// Past `MAX_PEERS` a new peer takes the place of the one heard from
    /// longest ago with no replies waiting, whose addresses are forgotten;
    /// with replies waiting everywhere, none is taken.
    #[test]
    fn a_new_peer_takes_the_place_of_the_longest_silent_one() {
        let addr = |n: usize| SocketAddr::from(([127, 0, 0, 1], 10_000 + n as u16));
        let mut p = Peers::default();
        for n in 0..MAX_PEERS {
            assert_eq!(p.index(addr(n)), Some(n as u32));
            p.learn(n as u32, n as u32);
        }
        // Peer 0 is heard from again; peer 1 has a reply waiting.
        assert_eq!(p.index(addr(0)), Some(0));
        let seg = teardown_engine::Segment::new(
            &teardown_engine::Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000),
            teardown_engine::Flags::ACK,
            1,
            1,
            0,
            1000,
        );
        p.out[1].1.push(&seg);
        // So the new one takes peer 2's place, and 2's address goes.
        assert_eq!(p.index(addr(MAX_PEERS)), Some(2));
        assert_eq!(p.out[2].0, addr(MAX_PEERS));
        assert_eq!(p.by_ip.get(&2), None);
        assert_eq!(p.by_ip.get(&3), Some(&3));
        // Every place waiting on replies: nothing is taken.
        for (_, enc) in &mut p.out {
            if enc.is_empty() {
                enc.push(&seg);
            }
        }
        assert_eq!(p.index(addr(MAX_PEERS + 1)), None);
    }
}
