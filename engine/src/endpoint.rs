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

use crate::rare::RARE_BIT;
use crate::tuple::Tuple;

/// Which of a connection's ports is the fixed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
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
    /// Whether the table keeps rare fields for the record this names
    /// ([`RARE_BIT`]).
    #[inline]
    pub fn has_rare(&self) -> bool {
        self.ep & RARE_BIT != 0
    }

    #[inline]
    pub fn set_rare(&mut self, on: bool) {
        if on {
            self.ep |= RARE_BIT;
        } else {
            self.ep &= !RARE_BIT;
        }
    }

    /// Whether the tuple is kept outside the record (see [`SPILLED`]).
    #[inline]
    pub fn spilled(&self) -> bool {
        self.ep & INDEX_MASK == SPILLED
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    local_ip: u32,
    port: u16,
    side: Side,
}

impl Endpoint {
    #[inline]
    fn hash(&self) -> usize {
        let x = (self.local_ip as u64) << 17 | (self.port as u64) << 1 | (self.side as u64);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
    }
}

/// One table's interned endpoints. They are few and never dropped (an index
/// stays valid for as long as any record holds it), so a linear probe over a
/// table at most half full finds one in a probe or two, with no tombstones.
#[derive(Default)]
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    /// 1 + an index into `list`, or 0 for none; a power of two long.
    slots: Vec<u16>,
    /// 1 + the index last interned, or 0: a host's entries mostly share one
    /// endpoint (its listener, or the one service it connects to), which
    /// this finds without hashing.
    last: u16,
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
        let key = Endpoint {
            local_ip: tuple.local_ip,
            port,
            side,
        };
        Packed {
            remote_ip: tuple.remote_ip,
            port: other,
            ep: self.intern(key).unwrap_or(SPILLED),
        }
    }

    #[inline]
    fn intern(&mut self, key: Endpoint) -> Option<u16> {
        if let Some(i) = self.last.checked_sub(1) {
            if self.list[i as usize] == key {
                return Some(i);
            }
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = key.hash() & mask;
        let i = loop {
            match self.slots.get(at).and_then(|s| s.checked_sub(1)) {
                None => break self.add(key)?,
                Some(i) if self.list[i as usize] == key => break i,
                Some(_) => at = (at + 1) & mask,
            }
        };
        self.last = i + 1;
        Some(i)
    }

    #[cold]
    fn add(&mut self, key: Endpoint) -> Option<u16> {
        if self.list.len() >= MAX {
            return None;
        }
        self.list.push(key);
        if self.list.len() * 2 > self.slots.len() {
            self.slots = vec![0; (self.slots.len() * 2).max(8)];
            (0..self.list.len()).for_each(|i| self.place(i));
        } else {
            self.place(self.list.len() - 1);
        }
        Some(self.list.len() as u16 - 1)
    }

    /// Puts `list[i]` in the first free slot from its hash's.
    fn place(&mut self, i: usize) {
        let mask = self.slots.len() - 1;
        let mut at = self.list[i].hash() & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = i as u16 + 1;
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
        self.list.capacity() * std::mem::size_of::<Endpoint>() + self.slots.capacity() * 2
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
        // Known again after others: found by its hash, not as the last one.
        let first = Tuple::new([10, 0, 0, 0], 80, [10, 9, 0, 7], 9);
        let p = eps.pack(&first, Side::Server);
        assert_eq!((p.ep, eps.tuple(&p)), (0, Some(first)));
        let new = Tuple::new([11, 0, 0, 1], 80, [10, 9, 0, 2], 1);
        let p = eps.pack(&new, Side::Server);
        assert!(p.spilled());
        assert_eq!(eps.tuple(&p), None);
    }
}
