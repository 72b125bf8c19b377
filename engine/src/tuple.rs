//! The 4-tuple that names a connection, and the keyed hash that places it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A connection's name, seen from the host that holds it. 12 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Tuple {
    pub local_ip: u32,
    pub remote_ip: u32,
    pub local_port: u16,
    pub remote_port: u16,
}

impl Tuple {
    pub const fn new(
        local_ip: [u8; 4],
        local_port: u16,
        remote_ip: [u8; 4],
        remote_port: u16,
    ) -> Tuple {
        Tuple {
            local_ip: u32::from_be_bytes(local_ip),
            remote_ip: u32::from_be_bytes(remote_ip),
            local_port,
            remote_port,
        }
    }

    /// From the socket addresses, the inverse of [`Tuple::local`] and [`Tuple::remote`]:
    ///
    /// ```
    /// # use teardown_engine::Tuple;
    /// let t = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000);
    /// assert_eq!(Tuple::from_addrs(t.local(), t.remote()), t);
    /// assert_eq!(t.remote().to_string(), "10.0.0.2:40000");
    /// ```
    pub fn from_addrs(local: SocketAddrV4, remote: SocketAddrV4) -> Tuple {
        Tuple {
            local_ip: u32::from(*local.ip()),
            remote_ip: u32::from(*remote.ip()),
            local_port: local.port(),
            remote_port: remote.port(),
        }
    }

    /// The same connection seen from the other end.
    #[inline]
    pub fn reversed(&self) -> Tuple {
        Tuple {
            local_ip: self.remote_ip,
            remote_ip: self.local_ip,
            local_port: self.remote_port,
            remote_port: self.local_port,
        }
    }

    pub fn local(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.local_ip), self.local_port)
    }

    pub fn remote(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.remote_ip), self.remote_port)
    }

    /// A keyed hash of the tuple. The key comes from the driver (the engine owns no
    /// random source), so a peer that cannot guess it cannot aim collisions at one
    /// bucket. One 128-bit folded multiply, as in foldhash/wyhash.
    /// A table keeps its key as a [`HashKey`], whose derived words are
    /// taken once rather than on every lookup.
    #[inline]
    pub fn hash(&self, key: impl Into<HashKey>) -> u64 {
        let k = key.into();
        let a = (self.local_ip as u64) << 32 | self.remote_ip as u64;
        let b = (self.local_port as u64) << 16 | self.remote_port as u64;
        let x = fold_mul(a ^ k.addrs, b ^ k.ports);
        fold_mul(x ^ 0x2d35_8dcc_aa6c_78a5, k.fold)
    }
}

/// A [`Tuple::hash`] key with the words derived from it, so that a holder
/// of many lookups (a table) derives them once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKey {
    addrs: u64,
    ports: u64,
    fold: u64,
}

impl From<u64> for HashKey {
    #[inline]
    fn from(key: u64) -> HashKey {
        HashKey {
            addrs: key,
            ports: key.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
            fold: 0x8bb8_4b93_962e_acc9 ^ key,
        }
    }
}

/// A 128-bit product folded to 64 bits: the mixing step of [`Tuple::hash`]
/// (and, keyed, of the TSval offset).
#[inline]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let full = (a as u128) * (b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The shard that owns `tuple` among `shards`. Uses a hash with a different key
/// from the table's, so the entries of one shard still spread over all of its
/// buckets and control-byte tags.
#[inline]
pub fn shard_of(tuple: &Tuple, shards: usize, key: u64) -> usize {
    let h = tuple.hash(key ^ 0x5bd1_e995_5bd1_e995);
    (((h >> 32) * shards as u64) >> 32) as usize
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<->{}", self.local(), self.remote())
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Tuple>(), 12);
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0u32; 4];
        for port in 0..40_000u16 {
            let t = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port);
            counts[shard_of(&t, 4, 7)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn hash_depends_on_key_and_every_field() {
        let t = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 5000);
        assert_ne!(t.hash(1), t.hash(2));
        // A key's derived words taken once hash as the key itself does, and as
        // the formula did when it derived them on every call.
        for key in [0, 1, 0x5bd1_e995_5bd1_e995, u64::MAX] {
            let a = (t.local_ip as u64) << 32 | t.remote_ip as u64;
            let b = (t.local_port as u64) << 16 | t.remote_port as u64;
            let x = fold_mul(a ^ key, b ^ key.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15);
            let want = fold_mul(x ^ 0x2d35_8dcc_aa6c_78a5, 0x8bb8_4b93_962e_acc9 ^ key);
            assert_eq!(t.hash(key), want);
            assert_eq!(t.hash(HashKey::from(key)), want);
        }
        assert_ne!(t.hash(1), t.reversed().hash(1));
        let mut u = t;
        u.remote_port += 1;
        assert_ne!(t.hash(1), u.hash(1));
    }
}
