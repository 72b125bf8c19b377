//! A chunked slab: stable `u32` indices, no doubling slack, and memory given back.
//!
//! Items live in fixed-size chunks, so growth never copies and never leaves a
//! half-empty doubled buffer. Each chunk keeps its own free list; a chunk whose
//! last item leaves is freed (one empty chunk is kept as a spare against churn).
//! That matters when a million connections leave for TIME-WAIT at once: their
//! full entries' memory is returned, as Linux returns full sockets to the slab.

const CHUNK_BITS: u32 = 9;
const CHUNK: usize = 1 << CHUNK_BITS;

struct Chunk<T> {
    items: Vec<T>,
    free: Vec<u16>,
    live: u16,
    /// Position in `Slab::avail`, when the chunk has room.
    avail_pos: Option<u32>,
}

impl<T> Chunk<T> {
    /// Room for the whole chunk up front, filled as items come: writing it
    /// all at once would cost a pass over its memory.
    fn new() -> Chunk<T> {
        Chunk {
            items: Vec::with_capacity(CHUNK),
            free: Vec::new(),
            live: 0,
            avail_pos: None,
        }
    }

    fn has_room(&self) -> bool {
        (self.live as usize) < CHUNK
    }
}

pub(crate) struct Slab<T> {
    chunks: Vec<Option<Chunk<T>>>,
    /// Chunks with room, in no particular order.
    avail: Vec<u32>,
    /// Indices of freed chunks, for reuse.
    vacant: Vec<u32>,
    spare: Option<Chunk<T>>,
}

impl<T: Copy> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            avail: Vec::new(),
            vacant: Vec::new(),
            spare: None,
        }
    }
}

impl<T: Copy> Slab<T> {
    #[inline]
    pub fn insert(&mut self, v: T) -> u32 {
        let c = match self.avail.last() {
            Some(&c) => c,
            None => self.new_chunk(),
        };
        let chunk = self.chunks[c as usize]
            .as_mut()
            .expect("chunks in `avail` are allocated");
        let slot = match chunk.free.pop() {
            Some(s) => {
                chunk.items[s as usize] = v;
                s as usize
            }
            None => {
                chunk.items.push(v);
                chunk.items.len() - 1
            }
        };
        chunk.live += 1;
        if !chunk.has_room() {
            self.leave_avail(c);
        }
        (c << CHUNK_BITS) | slot as u32
    }

    /// Out of line: once per `CHUNK` inserts, and it keeps `insert` small
    /// enough to inline.
    #[cold]
    #[inline(never)]
    fn new_chunk(&mut self) -> u32 {
        let chunk = self.spare.take().unwrap_or_else(Chunk::new);
        let c = match self.vacant.pop() {
            Some(c) => {
                self.chunks[c as usize] = Some(chunk);
                c
            }
            None => {
                self.chunks.push(Some(chunk));
                (self.chunks.len() - 1) as u32
            }
        };
        self.join_avail(c);
        c
    }

    fn join_avail(&mut self, c: u32) {
        let pos = self.avail.len() as u32;
        if let Some(chunk) = self.chunks[c as usize].as_mut() {
            chunk.avail_pos = Some(pos);
            self.avail.push(c);
        }
    }

    fn leave_avail(&mut self, c: u32) {
        let Some(pos) = self.chunks[c as usize]
            .as_mut()
            .and_then(|ch| ch.avail_pos.take())
        else {
            return;
        };
        self.avail.swap_remove(pos as usize);
        if let Some(&moved) = self.avail.get(pos as usize) {
            if let Some(ch) = self.chunks[moved as usize].as_mut() {
                ch.avail_pos = Some(pos);
            }
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> &T {
        let chunk = self.chunks[(i >> CHUNK_BITS) as usize]
            .as_ref()
            .expect("live slab index");
        &chunk.items[i as usize & (CHUNK - 1)]
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut T {
        let chunk = self.chunks[(i >> CHUNK_BITS) as usize]
            .as_mut()
            .expect("live slab index");
        &mut chunk.items[i as usize & (CHUNK - 1)]
    }

    /// Brings item `i` into cache ahead of its use: both of its lines when it
    /// straddles two, as a 56-byte record does in 6 of every 8 slots.
    #[inline]
    pub fn prefetch(&self, i: u32) {
        let first = std::ptr::from_ref(self.get(i)).cast::<u8>();
        prefetch(first);
        prefetch(first.wrapping_add(std::mem::size_of::<T>() - 1));
    }

    /// Removes item `i`; its index may be handed out again.
    #[inline]
    pub fn remove(&mut self, i: u32) -> T {
        let c = i >> CHUNK_BITS;
        let slot = (i as usize & (CHUNK - 1)) as u16;
        let chunk = self.chunks[c as usize].as_mut().expect("live slab index");
        let v = chunk.items[slot as usize];
        chunk.live -= 1;
        if chunk.live == 0 {
            self.leave_avail(c);
            if let Some(mut chunk) = self.chunks[c as usize].take() {
                if self.spare.is_none() {
                    chunk.items.clear();
                    chunk.free.clear();
                    self.spare = Some(chunk);
                }
            }
            self.vacant.push(c);
        } else {
            chunk.free.push(slot);
            if chunk.avail_pos.is_none() {
                self.join_avail(c);
            }
        }
        v
    }

    /// Heap bytes owned, from capacities.
    pub fn heap_bytes(&self) -> usize {
        let chunk =
            |c: &Chunk<T>| c.items.capacity() * std::mem::size_of::<T>() + c.free.capacity() * 2;
        self.chunks.iter().flatten().map(chunk).sum::<usize>()
            + self.spare.as_ref().map_or(0, chunk)
            + self.chunks.capacity() * std::mem::size_of::<Option<Chunk<T>>>()
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
            s.remove(*id);
        }
        // At most the spare chunk and the bookkeeping vectors remain.
        assert!(s.heap_bytes() < full / 10, "{} of {full}", s.heap_bytes());
        // And the slab works again afterwards.
        let a = s.insert(5);
        let b = s.insert(6);
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
                let id = s.insert(step);
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
