//! Fields few entries need, kept beside the table instead of in every record.
//!
//! An entry that has rate-limited an out-of-window ACK, a TIME-WAIT entry
//! whose close() came long before it, a connection whose endpoint could not
//! be interned: each is rare, so a hash map keyed by slab index or ring
//! position holds these fields, and the record keeps one bit saying it has an
//! entry here. A few bytes per rare entry spare four or more in every record.

use hashbrown::HashTable;

/// The bit of a record's [`crate::endpoint::Packed::ep`] that says this map
/// holds fields for it.
pub(crate) const RARE_BIT: u16 = 1 << 14;

/// A map from an entry's key (slab index or ring position) to its rare fields.
pub(crate) struct Rare<V> {
    map: HashTable<(u64, V)>,
}

impl<V> Default for Rare<V> {
    fn default() -> Self {
        Rare {
            map: HashTable::new(),
        }
    }
}

#[inline]
fn spread(k: u64) -> u64 {
    k.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<V: Copy> Rare<V> {
    pub fn with_capacity(n: usize) -> Rare<V> {
        Rare {
            map: HashTable::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cold]
    pub fn get(&self, k: u64) -> Option<V> {
        self.map.find(spread(k), |&(x, _)| x == k).map(|&(_, v)| v)
    }

    /// Sets `k`'s fields, replacing any it had.
    #[cold]
    pub fn put(&mut self, k: u64, v: V) {
        match self.map.find_mut(spread(k), |&(x, _)| x == k) {
            Some(e) => e.1 = v,
            None => {
                self.map
                    .insert_unique(spread(k), (k, v), |&(x, _)| spread(x));
            }
        }
    }

    #[cold]
    pub fn take(&mut self, k: u64) -> Option<V> {
        match self.map.find_entry(spread(k), |&(x, _)| x == k) {
            Ok(e) => Some(e.remove().0 .1),
            Err(_) => None,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.map.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_take() {
        let mut r = Rare::default();
        for k in 0..1_000u64 {
            r.put(k * 3, k as u32);
        }
        r.put(9, 7);
        assert_eq!((r.get(9), r.get(10), r.len()), (Some(7), None, 1_000));
        assert_eq!(r.take(9), Some(7));
        assert_eq!((r.get(9), r.take(9), r.len()), (None, None, 999));
    }
}
