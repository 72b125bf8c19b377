//! A chunked slab: stable `u32` indices, no doubling slack, and memory given back.
//!
//! Items live in fixed-size chunks, so growth never copies and never leaves a
//! half-empty doubled buffer. Each chunk keeps its own free list; a chunk whose
//! last item leaves is freed (one empty chunk is kept as a spare against churn).
//! That matters when a million connections leave for TIME-WAIT at once: their
//! full entries' memory is returned, as Linux returns full sockets to the slab.
//!
//! A chunk is a whole array (`Box<[T; CHUNK]>`), so an index's slot, masked to
//! the chunk, needs no bounds check: a lookup is one bounds-checked load of the
//! chunk pointer and one load of the item.

const CHUNK_BITS: u32 = 9;
const CHUNK: usize = 1 << CHUNK_BITS;

/// A chunk's bookkeeping, beside its items so that a lookup reads only the
/// items' pointer.
#[derive(Default)]
struct Meta {
    free: Vec<u16>,
    /// Slots handed out at least once: the ones past it were never used.
    used: u16,
    live: u16,
    /// Position in `Slab::avail`, when the chunk has room.
    avail_pos: Option<u32>,
}

impl Meta {
    fn has_room(&self) -> bool {
        (self.live as usize) < CHUNK
    }
}

pub(crate) struct Slab<T> {
    /// Each chunk's items, `None` once the chunk is freed.
    chunks: Vec<Option<Box<[T; CHUNK]>>>,
    /// Each chunk's bookkeeping, by the same index as `chunks`.
    meta: Vec<Meta>,
    /// Chunks with room, in no particular order.
    avail: Vec<u32>,
    /// Indices of freed chunks, for reuse.
    vacant: Vec<u32>,
    spare: Option<Box<[T; CHUNK]>>,
}

impl<T: Copy> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            meta: Vec::new(),
            avail: Vec::new(),
            vacant: Vec::new(),
            spare: None,
        }
    }
}

impl<T: Copy> Slab<T> {
    /// [`Slab::reserve`] and [`Slab::set`] in one, for the tests.
    #[cfg(test)]
    pub fn insert(&mut self, v: T) -> u32 {
        let i = self.reserve(|| v);
        self.set(i, v);
        i
    }

    /// Takes a slot and returns its index, for a caller that must name an
    /// item before it has it whole: [`Slab::set`] then writes it, once,
    /// instead of the insert being worked out twice (named ahead, then
    /// made). Until then the slot holds a stale item, which the caller must
    /// not read. `fill` gives the items of a new chunk, if one is needed.
    /// Always inlined: LLVM kept it out of line, a call per SYN and connect.
    #[inline(always)]
    pub fn reserve(&mut self, fill: impl FnOnce() -> T) -> u32 {
        let c = match self.avail.last() {
            Some(&c) => c,
            None => self.new_chunk(fill()),
        };
        let meta = &mut self.meta[c as usize];
        let slot = match meta.free.pop() {
            Some(s) => s,
            None => {
                meta.used += 1;
                meta.used - 1
            }
        };
        meta.live += 1;
        if !meta.has_room() {
            self.leave_avail(c);
        }
        (c << CHUNK_BITS) | slot as u32
    }

    /// Writes item `i`, which [`Slab::reserve`] took.
    #[inline]
    pub fn set(&mut self, i: u32, v: T) {
        *self.get_mut(i) = v;
    }

    /// Out of line: once per `CHUNK` inserts, and it keeps `reserve` small
    /// enough to inline. A new chunk's items start as copies of `v`: a chunk
    /// is whole from the start, which is what spares every lookup its bounds
    /// check.
    #[cold]
    #[inline(never)]
    fn new_chunk(&mut self, v: T) -> u32 {
        let items = match self.spare.take() {
            Some(items) => items,
            // Built in place on the heap: `Box::new([v; CHUNK])` built the
            // array on the stack and copied it over (28 k instructions).
            // Writing every item makes a new chunk resident at once (28 KiB
            // of 56 B records); `heap_bytes` counted its capacity before too.
            None => match vec![v; CHUNK].into_boxed_slice().try_into() {
                Ok(items) => items,
                Err(_) => unreachable!("a vec of CHUNK items"),
            },
        };
        let c = match self.vacant.pop() {
            Some(c) => {
                self.chunks[c as usize] = Some(items);
                self.meta[c as usize] = Meta::default();
                c
            }
            None => {
                self.chunks.push(Some(items));
                self.meta.push(Meta::default());
                (self.chunks.len() - 1) as u32
            }
        };
        self.join_avail(c);
        c
    }

    fn join_avail(&mut self, c: u32) {
        self.meta[c as usize].avail_pos = Some(self.avail.len() as u32);
        self.avail.push(c);
    }

    fn leave_avail(&mut self, c: u32) {
        let Some(pos) = self.meta[c as usize].avail_pos.take() else {
            return;
        };
        self.avail.swap_remove(pos as usize);
        if let Some(&moved) = self.avail.get(pos as usize) {
            self.meta[moved as usize].avail_pos = Some(pos);
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> &T {
        let items = self.chunks[(i >> CHUNK_BITS) as usize]
            .as_ref()
            .expect("live slab index");
        &items[i as usize & (CHUNK - 1)]
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut T {
        let items = self.chunks[(i >> CHUNK_BITS) as usize]
            .as_mut()
            .expect("live slab index");
        &mut items[i as usize & (CHUNK - 1)]
    }

    /// Brings item `i` into cache ahead of its use: both of its lines when it
    /// straddles two, as a 56-byte record does in 6 of every 8 slots.
    #[inline]
    pub fn prefetch(&self, i: u32) {
        let first = std::ptr::from_ref(self.get(i)).cast::<u8>();
        prefetch(first);
        prefetch(first.wrapping_add(std::mem::size_of::<T>() - 1));
    }

    /// Removes item `i` and returns it; its index may be handed out again.
    #[inline]
    pub fn remove(&mut self, i: u32) -> T {
        let v = *self.get(i);
        self.free(i);
        v
    }

    /// Removes item `i` without copying it out, for a caller that has read
    /// what it needs through [`Slab::get`]: the copy of a 56-byte record,
    /// returned through memory, was a third of a connection's removal.
    #[inline]
    pub fn free(&mut self, i: u32) {
        let c = i >> CHUNK_BITS;
        let slot = (i as usize & (CHUNK - 1)) as u16;
        let meta = &mut self.meta[c as usize];
        meta.live -= 1;
        if meta.live == 0 {
            self.release_chunk(c);
        } else {
            meta.free.push(slot);
            if meta.avail_pos.is_none() {
                self.join_avail(c);
            }
        }
    }

    /// Out of line: once per `CHUNK` removals at most, and it keeps `free`
    /// small enough to inline. Keeps the items as the spare if there is none.
    #[cold]
    #[inline(never)]
    fn release_chunk(&mut self, c: u32) {
        self.leave_avail(c);
        if let Some(items) = self.chunks[c as usize].take() {
            if self.spare.is_none() {
                self.spare = Some(items);
            }
        }
        self.meta[c as usize] = Meta::default();
        self.vacant.push(c);
    }

    /// Heap bytes owned, from capacities.
    pub fn heap_bytes(&self) -> usize {
        let items = CHUNK * std::mem::size_of::<T>();
        let live = self.chunks.iter().flatten().count() + usize::from(self.spare.is_some());
        live * items
            + self
                .meta
                .iter()
                .map(|m| m.free.capacity() * 2)
                .sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Option<Box<[T; CHUNK]>>>()
            + self.meta.capacity() * std::mem::size_of::<Meta>()
            + (self.avail.capacity() + self.vacant.capacity()) * 4
    }
}

/// A hint to bring the line holding `p` into cache.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault, and
    // `p` points into an item of the slab anyway (tested by
    // `prefetch_changes_nothing`).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_stable_and_reused() {
        let mut s = Slab::default();
        let ids: Vec<u32> = (0..3000u64).map(|i| s.insert(i)).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(*s.get(*id), i as u64);
        }
        assert_eq!(s.remove(ids[7]), 7);
        let again = s.insert(99);
        assert_eq!(*s.get(again), 99);
        assert_eq!(*s.get(ids[8]), 8);
    }

    #[test]
    fn empty_chunks_are_released() {
        let mut s = Slab::default();
        let ids: Vec<u32> = (0..100_000u64).map(|i| s.insert(i)).collect();
        let full = s.heap_bytes();
        assert!(full >= 100_000 * 8);
        for id in &ids {
            s.free(*id);
        }
        // At most the spare chunk and the bookkeeping vectors remain.
        assert!(s.heap_bytes() < full / 10, "{} of {full}", s.heap_bytes());
        // And the slab works again afterwards, from a chunk taken afresh,
        // whose first slot may be taken ahead and written after.
        let a = s.reserve(|| 0);
        let b = s.insert(6);
        assert_ne!(a, b);
        s.set(a, 5);
        assert_eq!((*s.get(a), *s.get(b)), (5, 6));
    }

    #[test]
    fn prefetch_changes_nothing() {
        let mut s = Slab::default();
        let ids: Vec<u32> = (0..1_000u64).map(|i| s.insert([i; 7])).collect();
        for id in &ids {
            s.prefetch(*id);
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(*s.get(*id), [i as u64; 7]);
        }
    }

    #[test]
    fn random_churn_matches_a_map() {
        use std::collections::HashMap;
        let mut s = Slab::default();
        let mut model = HashMap::new();
        let mut keys: Vec<u32> = Vec::new();
        let mut x = 12345u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) || model.is_empty() {
                // Every other one taken ahead and written after.
                let id = if step % 2 == 0 {
                    s.insert(step)
                } else {
                    let id = s.reserve(|| 0);
                    s.set(id, step);
                    id
                };
                assert!(model.insert(id, step).is_none(), "index handed out twice");
                keys.push(id);
            } else {
                let key = keys.swap_remove((x as usize / 3) % keys.len());
                let v = model.remove(&key).expect("present");
                assert_eq!(s.remove(key), v);
            }
        }
        for (id, v) in &model {
            assert_eq!(s.get(*id), v);
        }
    }
}
