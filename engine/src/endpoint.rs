//! The fixed end of a connection, interned per table, so an entry stores
//! 8 bytes of its 4-tuple instead of 12.
//!
//! Of a connection's two ports one is fixed by the application and shared by
//! many connections: the listening port on the side that accepted, the
//! destination service's port on the side that connected. The other is
//! someone's ephemeral port. A host has few local addresses and few such fixed
//! ports, so (local address, fixed port, which side) goes into a small table
//! and an entry keeps the peer's address, the other port and a 14-bit index.
//! A table that has interned [`MAX`] endpoints hands out no more: its caller
//! keeps such an entry's tuple elsewhere ([`SPILLED`]).

use hashbrown::HashTable;

use crate::tuple::Tuple;

/// Which of a connection's ports is the fixed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// We accepted: the local port is the listener's.
    Server,
    /// We connected: the remote port is the service's.
    Client,
}

/// Bits of [`Packed::ep`] that hold the endpoint's index; the two above them
/// are the record's own flags.
pub(crate) const INDEX_MASK: u16 = (1 << 14) - 1;
/// The index of an entry whose tuple is not interned (the table was full).
pub(crate) const SPILLED: u16 = INDEX_MASK;
/// Most endpoints one table interns: indices below [`SPILLED`].
pub(crate) const MAX: usize = SPILLED as usize;

/// A 4-tuple with its fixed end interned: 8 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    pub remote_ip: u32,
    /// The port that is not the endpoint's: the peer's on the server side,
    /// ours on the client side.
    pub port: u16,
    /// The endpoint's index (low 14 bits) and two flag bits the record that
    /// holds this owns.
    pub ep: u16,
}

impl Packed {
    /// Whether the tuple is kept outside the record (see [`SPILLED`]).
    #[inline]
    pub fn spilled(&self) -> bool {
        self.ep & INDEX_MASK == SPILLED
    }
}

#[derive(Clone, Copy, Debug)]
struct Endpoint {
    local_ip: u32,
    port: u16,
    side: Side,
}

/// Slots of [`Endpoints::recent`].
const RECENT_BITS: u32 = 5;

/// One table's interned endpoints. Entries are never dropped: they are few,
/// and an index stays valid for as long as any record holds it.
#[derive(Default)]
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    index: HashTable<u16>,
    /// The index last packed in each slot (by the top bits of the hash): a
    /// host's connections name a handful of endpoints, so most packs end
    /// here instead of in `index`.
    recent: [u16; 1 << RECENT_BITS],
}

#[inline]
fn hash(local_ip: u32, port: u16, side: Side) -> u64 {
    let x = (local_ip as u64) << 17 | (port as u64) << 1 | (side == Side::Client) as u64;
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Endpoints {
    /// `tuple` packed with its fixed end on `side` interned (added if new), or
    /// marked [`SPILLED`] once [`MAX`] endpoints are taken.
    #[inline]
    pub fn pack(&mut self, tuple: &Tuple, side: Side) -> Packed {
        let (port, other) = match side {
            Side::Server => (tuple.local_port, tuple.remote_port),
            Side::Client => (tuple.remote_port, tuple.local_port),
        };
        Packed {
            remote_ip: tuple.remote_ip,
            port: other,
            ep: self.intern(tuple.local_ip, port, side).unwrap_or(SPILLED),
        }
    }

    #[inline]
    fn intern(&mut self, local_ip: u32, port: u16, side: Side) -> Option<u16> {
        let h = hash(local_ip, port, side);
        let slot = (h >> (64 - RECENT_BITS)) as usize;
        let i = self.recent[slot];
        match self.list.get(i as usize) {
            Some(e) if (e.local_ip, e.port, e.side) == (local_ip, port, side) => Some(i),
            _ => {
                let i = self.find_or_add(h, local_ip, port, side)?;
                self.recent[slot] = i;
                Some(i)
            }
        }
    }

    fn find_or_add(&mut self, h: u64, local_ip: u32, port: u16, side: Side) -> Option<u16> {
        let list = &self.list;
        let same = |&i: &u16| {
            let e = list[i as usize];
            (e.local_ip, e.port, e.side) == (local_ip, port, side)
        };
        if let Some(&i) = self.index.find(h, same) {
            return Some(i);
        }
        if self.list.len() >= MAX {
            return None;
        }
        let i = self.list.len() as u16;
        self.list.push(Endpoint {
            local_ip,
            port,
            side,
        });
        let list = &self.list;
        self.index.insert_unique(h, i, |&j| {
            let e = list[j as usize];
            hash(e.local_ip, e.port, e.side)
        });
        Some(i)
    }

    /// The whole tuple of `p`, or `None` if it was spilled.
    #[inline]
    pub fn tuple(&self, p: &Packed) -> Option<Tuple> {
        let e = self.list.get((p.ep & INDEX_MASK) as usize)?;
        let (local_port, remote_port) = match e.side {
            Side::Server => (e.port, p.port),
            Side::Client => (p.port, e.port),
        };
        Some(Tuple {
            local_ip: e.local_ip,
            remote_ip: p.remote_ip,
            local_port,
            remote_port,
        })
    }

    pub fn heap_bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<Endpoint>() + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_to_eight_bytes_and_back_on_either_side() {
        assert_eq!(std::mem::size_of::<Packed>(), 8);
        let mut eps = Endpoints::default();
        let server = Tuple::new([10, 0, 0, 1], 80, [10, 9, 0, 2], 40_000);
        let client = server.reversed();
        let (a, b) = (
            eps.pack(&server, Side::Server),
            eps.pack(&client, Side::Client),
        );
        assert_eq!((a.port, b.port), (40_000, 40_000));
        assert_ne!(a.ep, b.ep);
        assert_eq!(eps.tuple(&a), Some(server));
        assert_eq!(eps.tuple(&b), Some(client));
        // Another peer of the same listener shares its endpoint.
        let other = Tuple::new([10, 0, 0, 1], 80, [10, 9, 0, 3], 40_001);
        let c = eps.pack(&other, Side::Server);
        assert_eq!(c.ep, a.ep);
        assert_eq!(eps.tuple(&c), Some(other));
        // The record's flag bits do not disturb the index.
        let flagged = Packed {
            ep: c.ep | !INDEX_MASK,
            ..c
        };
        assert_eq!(eps.tuple(&flagged), Some(other));
    }

    #[test]
    fn a_full_table_spills_instead_of_failing() {
        let mut eps = Endpoints::default();
        for i in 0..MAX as u32 {
            let t = Tuple::new((0x0a00_0000 + i).to_be_bytes(), 80, [10, 9, 0, 2], 1);
            let p = eps.pack(&t, Side::Server);
            assert!(!p.spilled());
            assert_eq!(eps.tuple(&p), Some(t));
        }
        let known = Tuple::new([10, 0, 0, 5], 80, [10, 9, 0, 7], 9);
        assert!(!eps.pack(&known, Side::Server).spilled());
        let new = Tuple::new([11, 0, 0, 1], 80, [10, 9, 0, 2], 1);
        let p = eps.pack(&new, Side::Server);
        assert!(p.spilled());
        assert_eq!(eps.tuple(&p), None);
    }
}
