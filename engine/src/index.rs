//! The table's index: 4-byte references in cache-line buckets, so a lookup
//! touches one line of index and a prefetch can name it before the lookup.
//!
//! hashbrown keeps its control bytes and its slots apart (two lines per probe)
//! and gives no bucket address to prefetch. This is Folly's F14 layout cut to
//! 64 bytes: 12 one-byte tags, an overflow count and 12 references per bucket.
//! An entry lives in its home bucket (the hash's top bits) or, when that is
//! full, in the next bucket with room, and every bucket it passed counts it in
//! `overflow`. A lookup stops at the first bucket whose count is zero, so no
//! tombstones are needed and removals leave probes exactly as short as they
//! were before the entry came (F14's "outbound overflow count").
//!
//! The references are opaque here: the caller's `eq` and `hasher` closures
//! read the key through them (the table's slab and TIME-WAIT ring).

/// Tag of an empty slot; a present entry's tag is never 0.
const EMPTY: u8 = 0;
/// Slots per bucket: 12 tags + a 4-byte count + 12 references = 64 bytes.
const SLOTS: usize = 12;
/// Most entries per bucket on average before the index doubles (7/8 of 12).
const MAX_LOAD_NUM: usize = 21;
const MAX_LOAD_DEN: usize = 2;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u8; SLOTS],
    /// Entries homed at or before this bucket that live after it.
    overflow: u32,
    refs: [u32; SLOTS],
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [EMPTY; SLOTS],
        overflow: 0,
        refs: [0; SLOTS],
    };

    /// Slots whose tag is `tag`, as a bitmask: one SSE2 compare of the 16
    /// bytes that hold the tags and the count, whose four bits of the result
    /// the final mask drops (zeroing the count's bytes before the compare as
    /// well cost an instruction a bucket).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn matching(&self, tag: u8) -> u16 {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
        let mut lo = [0u8; 8];
        lo.copy_from_slice(&self.tags[..8]);
        let mut hi = [0u8; 8];
        hi[..4].copy_from_slice(&self.tags[8..]);
        hi[4..].copy_from_slice(&self.overflow.to_le_bytes());
        let lo = i64::from_le_bytes(lo);
        let hi = i64::from_le_bytes(hi);
        // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics are
        // always there; they read no memory (tested by `tag_matching_is_exact`).
        let m = unsafe {
            let eq = _mm_cmpeq_epi8(_mm_set_epi64x(hi, lo), _mm_set1_epi8(tag as i8));
            _mm_movemask_epi8(eq)
        };
        m as u16 & ((1 << SLOTS) - 1)
    }

    /// Slots whose tag is `tag`, as a bitmask.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    fn matching(&self, tag: u8) -> u16 {
        let mut m = 0u16;
        for (i, &t) in self.tags.iter().enumerate() {
            m |= ((t == tag) as u16) << i;
        }
        m
    }
}

/// A set of `u32` references found by hash, with the key held elsewhere.
pub(crate) struct Index {
    buckets: Vec<Bucket>,
    /// `63 - log2(buckets.len())`: the hash's top bits pick the home bucket,
    /// shifted right by one and then by this (see [`Index::home`]).
    shift: u32,
    len: usize,
    /// The farthest any entry was placed from its home since the last growth.
    /// Overflow counts alone do not bound a lookup: once every bucket has
    /// sent one entry on (each still present), no count is zero, and a miss
    /// would circle forever (F14 bounds its probes the same way).
    max_probe: usize,
    /// The most entries before an insert doubles the buckets: the load
    /// bound worked out once per growth, not at every insert.
    limit: usize,
}

/// What a lookup looks for: whether reference `r` names it. A trait rather
/// than a closure so that the table's compare, which reads the key through
/// the reference, can be marked always-inline: a closure cannot be, and
/// inlined into a large caller (`Host::handle`) LLVM left it a call that
/// saved and restored registers around every slot it probed.
pub(crate) trait Probe {
    fn is(&mut self, r: u32) -> bool;
}

impl<F: FnMut(u32) -> bool> Probe for F {
    #[inline(always)]
    fn is(&mut self, r: u32) -> bool {
        self(r)
    }
}

/// The one-byte tag of `hash` (from its low bits; the home uses the top ones).
#[inline]
fn tag(hash: u64) -> u8 {
    (hash as u8).max(1)
}

impl Index {
    /// An empty index with room for `n` entries before it grows.
    pub fn with_capacity(n: usize) -> Index {
        let want = (n * MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM).max(1);
        Index::with_buckets(want.next_power_of_two())
    }

    fn with_buckets(buckets: usize) -> Index {
        debug_assert!(buckets.is_power_of_two());
        Index {
            buckets: vec![Bucket::EMPTY; buckets],
            shift: 63 - buckets.trailing_zeros(),
            len: 0,
            max_probe: 0,
            // (len + 1) * DEN > buckets * NUM exactly when len >= this.
            limit: buckets * MAX_LOAD_NUM / MAX_LOAD_DEN,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the bucket array.
    pub fn allocation_size(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // Two shifts, as the top log2(buckets) bits need a shift by 64 for
        // one bucket, which u64 does not define: `checked_shr(..).unwrap_or(0)`
        // cost a compare and a select besides, on every lookup.
        ((hash >> 1) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// Asks the CPU to bring `hash`'s home bucket into cache: what a lookup
    /// of that hash will touch first, named before it is needed so that a
    /// batch of lookups overlaps its misses (DPDK's `rte_hash_lookup_bulk`).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch_line(&self.buckets[self.home(hash)]);
    }

    /// The references in `hash`'s home bucket whose tag matches: the likely
    /// entries, for prefetching what they point to once the bucket is in cache.
    #[inline]
    pub fn home_candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let b = &self.buckets[self.home(hash)];
        BitIter(b.matching(tag(hash))).map(move |i| b.refs[i])
    }

    /// The slot holding the entry of `hash` that `eq` accepts, and its
    /// reference. Always inlined, as [`Index::find`] is: a call saved and
    /// restored most registers around a probe of one bucket (a sixth of a
    /// lookup's cost).
    #[inline(always)]
    fn locate(&self, hash: u64, mut eq: impl Probe) -> Option<(usize, usize, u32)> {
        let (t, mask) = (tag(hash), self.mask());
        let (mut b, mut left) = (self.home(hash), self.max_probe);
        loop {
            let bucket = &self.buckets[b];
            for i in BitIter(bucket.matching(t)) {
                let r = bucket.refs[i];
                if eq.is(r) {
                    return Some((b, i, r));
                }
            }
            if bucket.overflow == 0 || left == 0 {
                return None;
            }
            left -= 1;
            b = (b + 1) & mask;
        }
    }

    #[inline(always)]
    pub fn find(&self, hash: u64, eq: impl Probe) -> Option<u32> {
        self.locate(hash, eq).map(|(_, _, r)| r)
    }

    #[inline]
    pub fn find_mut(&mut self, hash: u64, eq: impl Probe) -> Option<&mut u32> {
        let (b, i, _) = self.locate(hash, eq)?;
        Some(&mut self.buckets[b].refs[i])
    }

    /// Removes and returns the entry of `hash` that `eq` accepts, and takes it
    /// off the overflow counts of the buckets between its home and its slot.
    #[inline]
    pub fn remove(&mut self, hash: u64, eq: impl Probe) -> Option<u32> {
        let (b, i, r) = self.locate(hash, eq)?;
        let mask = self.mask();
        let mut h = self.home(hash);
        while h != b {
            debug_assert!(self.buckets[h].overflow > 0);
            self.buckets[h].overflow -= 1;
            h = (h + 1) & mask;
        }
        self.buckets[b].tags[i] = EMPTY;
        self.len -= 1;
        Some(r)
    }

    /// Adds `r`, whose key is not in the index; `hasher` gives the hash of
    /// any reference already in it, for growing.
    #[inline(always)]
    pub fn insert_unique(&mut self, hash: u64, r: u32, hasher: impl Fn(u32) -> u64) {
        if self.len >= self.limit {
            return self.insert_growing(hash, r, &hasher);
        }
        self.len += 1;
        self.place(hash, r);
    }

    /// [`Index::insert_unique`] into a full index. Out of line, and the
    /// insert's last step, as [`Index::place_past`] is: an insert keeps
    /// nothing live across either call.
    #[cold]
    #[inline(never)]
    fn insert_growing(&mut self, hash: u64, r: u32, hasher: &impl Fn(u32) -> u64) {
        self.grow(hasher);
        self.len += 1;
        self.place(hash, r);
    }

    /// Puts `r` in the first bucket with room from `hash`'s home. In line
    /// for the home bucket, which nearly always has room; the probe past it
    /// (and [`Index::grow`]) out of line, so that an insert saves and
    /// restores no registers for them.
    #[inline(always)]
    fn place(&mut self, hash: u64, r: u32) {
        let b = self.home(hash);
        let bucket = &mut self.buckets[b];
        let free = bucket.matching(EMPTY);
        if free == 0 {
            return self.place_past(hash, r, b);
        }
        let i = free.trailing_zeros() as usize;
        bucket.tags[i] = tag(hash);
        bucket.refs[i] = r;
    }

    /// [`Index::place`] past the full home bucket `home`.
    #[cold]
    #[inline(never)]
    fn place_past(&mut self, hash: u64, r: u32, home: usize) {
        let mask = self.mask();
        let mut b = home;
        for probe in 0.. {
            let bucket = &mut self.buckets[b];
            let free = bucket.matching(EMPTY);
            if free != 0 {
                let i = free.trailing_zeros() as usize;
                bucket.tags[i] = tag(hash);
                bucket.refs[i] = r;
                self.max_probe = self.max_probe.max(probe);
                return;
            }
            bucket.overflow += 1;
            b = (b + 1) & mask;
        }
    }

    /// Doubles the buckets and places every entry again.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, hasher: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(self, Index::with_buckets(self.buckets.len() * 2));
        for r in old.iter() {
            self.place(hasher(r), r);
        }
        self.len = old.len;
    }

    /// Every reference, in bucket order: a bucket's occupied slots from one
    /// tag compare (growth visits every entry), lowest slot first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| {
            let full = !b.matching(EMPTY) & ((1 << SLOTS) - 1);
            BitIter(full).map(move |i| b.refs[i])
        })
    }
}

/// The set bits of a mask, lowest first.
struct BitIter(u16);

impl Iterator for BitIter {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// A hint to load `p`'s cache line; never faults and changes nothing visible.
#[inline]
pub(crate) fn prefetch_line<T>(p: &T) {
    prefetch_addr(p as *const T);
}

/// [`prefetch_line`] of any address, in bounds or not: a caller whose
/// candidate may lie past its slice asks without testing it first (a miss
/// costs nothing, the test an instruction or two each time).
#[inline]
pub(crate) fn prefetch_addr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault, at
    // any address, mapped or not (tested by `prefetch_changes_nothing` and,
    // past a slice's end, by the wheel's `insert_prefetches_past_the_slab`).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests;
