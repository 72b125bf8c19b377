//! TIME-WAIT entries: a compact record in a FIFO ring.
//!
//! Every TIME-WAIT entry of a host lasts the same time, so insertion order is
//! expiry order and a FIFO replaces a timer per entry (FreeBSD's `twq_2msl` did
//! the same). A restart (a retransmitted FIN) appends a fresh copy at the tail and
//! repoints the table; the old slot goes stale and is skipped when it reaches the
//! head, which the table detects because it no longer points there. The ring is
//! chunked so that it never holds more than one spare chunk of slack, unlike a
//! `VecDeque` that doubles.

use std::collections::VecDeque;
use std::mem::size_of;

use crate::endpoint::Packed;
use crate::seq::Seq;
use crate::tuple::Tuple;

/// What TIME-WAIT knows of a connection, as the host reads and writes it. The
/// ring stores it packed as a [`TwRecord`]; the table converts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TwEntry {
    pub tuple: Tuple,
    /// Our next sequence number: the seq of the ACKs we send.
    pub snd_nxt: Seq,
    /// The peer's FIN + 1: what we acknowledge, and the exact RST sequence.
    pub rcv_nxt: Seq,
    /// When the entry expires (ms stamp).
    pub expires_ms: u32,
    /// When it entered TIME-WAIT (ms stamp; `tw_entry_stamp`), which
    /// `tcp_tw_reuse_delay` counts from and a restart does not move. Its
    /// expiry less the TIME-WAIT length until a restart: only a restarted
    /// entry that a takeover could read it from stores it, beside the ring;
    /// any other restarts it.
    pub entry_ms: u32,
    /// When the application closed (ms stamp), for teardown latency.
    pub close_ms: u32,
    /// Last rate-limited ACK (`tw_last_oow_ack_time`).
    pub last_oow_ms: u32,
    /// `tw_ts_recent`, when the connection negotiated timestamps (RFC 7323).
    /// Its stamp (`tw_ts_recent_stamp`) is not stored: it is taken to be when
    /// the entry last (re)started, which is when the last timestamp was
    /// recorded in all but Linux's out-of-window restarts.
    pub ts_recent: Option<u32>,
}

/// What an expired TIME-WAIT entry leaves for the host's accounting
/// (`TwEnd::closed`, from inside the table's expiry loop): its tuple and
/// close time; and its expiry,
/// which the host does not read but the table's tests check each pass's
/// order by. 20 bytes where a [`TwEntry`] is 40.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TwExpired {
    pub tuple: Tuple,
    /// When the entry expired (ms stamp).
    pub expires_ms: u32,
    /// When the application closed (ms stamp), for teardown latency.
    pub close_ms: u32,
}

/// A [`TwEntry`] packed into 24 bytes, against Linux's 256-byte
/// `tw_sock_TCP` and a live connection's 56 ([`crate::table::TIME_WAIT_BYTES`]).
/// The tuple's fixed end is interned ([`crate::endpoint`]), the expiry is an
/// offset from its run's first expiry, and close() an offset before the
/// entry's (re)start. Rare values live beside the ring ([`crate::rare`]) and
/// the record only flags them ([`crate::rare::RARE_BIT`]): `last_oow_ms`, which only an
/// entry that has rate-limited an out-of-window ACK has, a close() more
/// than 65.5 s before the (re)start ([`FAR`]), and the entry stamp of one
/// whose timer restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TwRecord {
    /// The tuple; [`TS_BIT`] and [`crate::rare::RARE_BIT`] are the top bits
    /// of its `ep`.
    pub name: Packed,
    /// Expiry in ms after the run's base.
    pub expires_off: u16,
    /// close() this many ms before the entry's (re)start: its expiry less the
    /// table's TIME-WAIT length. [`FAR`] if that does not fit.
    pub close_off: u16,
    pub snd_nxt: Seq,
    pub rcv_nxt: Seq,
    pub ts_recent: u32,
}

/// [`Packed::ep`]'s bit saying the peer's timestamp is in `ts_recent`.
pub(crate) const TS_BIT: u16 = 1 << 15;
/// [`TwRecord::close_off`] when the table keeps the close() stamp.
pub(crate) const FAR: u16 = u16::MAX;

const CHUNK_BITS: u32 = 9;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Records per expiry base: a run of `SPAN` slots shares one, so an expiry
/// too late for its run's base wastes at most the rest of the run (3 KiB).
const SPAN_BITS: u32 = 7;
const SPAN: usize = 1 << SPAN_BITS;

/// Positions are absolute and never reused; the table stores them modulo 2^31.
pub(crate) const POS_MASK: u64 = (1 << 31) - 1;

/// Up to 512 records and the expiry bases of their runs: the ring's
/// per-record overhead (a `VecDeque` slot of 40 bytes per chunk) stays under
/// a tenth of a byte.
struct Chunk {
    /// The records pushed so far, in a buffer of `CHUNK` made up front and
    /// filled by push: made as a zeroed array, every new chunk cost a
    /// 12 KiB memset whose zeros nothing read.
    recs: Vec<TwRecord>,
    /// The first expiry (ms stamp) of each run, which its records'
    /// `expires_off` count from.
    bases: [u32; CHUNK / SPAN],
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            recs: Vec::with_capacity(CHUNK),
            bases: [0; CHUNK / SPAN],
        }
    }
}

#[derive(Default)]
pub(crate) struct TwRing {
    chunks: VecDeque<Chunk>,
    /// Absolute position of `chunks[0].recs[0]`.
    base: u64,
    /// Absolute position of the oldest slot not yet popped.
    head: u64,
    /// Absolute position one past the newest slot.
    tail: u64,
    spare: Option<Chunk>,
}

/// [`TwRing::front_slots`]: `(position, record, expiry)` of each slot.
pub(crate) struct FrontSlots<'a> {
    chunk: &'a Chunk,
    /// Position of the slot at `off`.
    pos: u64,
    off: usize,
    /// One past the last offset in the chunk to give.
    end: usize,
}

impl FrontSlots<'_> {
    /// The same slots less the first `k` (all of them if fewer), without
    /// reading those.
    #[inline]
    pub fn skipping(mut self, k: usize) -> Self {
        let k = k.min(self.end.saturating_sub(self.off));
        self.off += k;
        self.pos += k as u64;
        self
    }
}

impl<'a> Iterator for FrontSlots<'a> {
    type Item = (u64, &'a TwRecord, u32);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.end {
            return None;
        }
        let off = self.off & (CHUNK - 1);
        let rec = &self.chunk.recs[off];
        let expires_ms = self.chunk.bases[off >> SPAN_BITS].wrapping_add(rec.expires_off as u32);
        let pos = self.pos;
        self.off += 1;
        self.pos += 1;
        Some((pos, rec, expires_ms))
    }
}

impl TwRing {
    /// An empty ring whose first position is `start` (positions never go back,
    /// so a compacted ring continues where the old one ended).
    pub fn starting_at(start: u64) -> TwRing {
        TwRing {
            base: start,
            head: start,
            tail: start,
            ..TwRing::default()
        }
    }

    /// One past the newest position.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Appends `rec` expiring at `expires_ms`, returning its absolute position.
    /// Expiries come in order. Nearly every push lands in the current run
    /// with room in its chunk; the rest ([`TwRing::push_run`]) are out of
    /// line, so that this path saves and restores no registers (with them
    /// in line it saved six, and in line in the commit that calls it, short
    /// of registers, it cost 19 instructions more a TIME-WAIT entry).
    #[inline(never)]
    pub fn push(&mut self, mut rec: TwRecord, expires_ms: u32) -> u64 {
        let off = (self.tail - self.base) as usize;
        if !off.is_multiple_of(SPAN) {
            let (chunk, run) = self.locate_mut(off);
            let since_base = expires_ms.wrapping_sub(chunk.bases[run]);
            // A chunk is made with room for all its records: the test
            // leaves `Vec::push` no growth to prepare for.
            if since_base <= u16::MAX as u32 && chunk.recs.len() < chunk.recs.capacity() {
                rec.expires_off = since_base as u16;
                debug_assert_eq!(chunk.recs.len(), off & (CHUNK - 1));
                chunk.recs.push(rec);
                return self.advance_tail(1);
            }
        }
        self.push_run(rec, expires_ms)
    }

    /// [`TwRing::push`] in full: a record that starts a run, and maybe a
    /// chunk. One more than 65.5 s after its run's first starts a new run,
    /// the rest of the old one filled with dead slots (stale, like
    /// restarted ones: nothing in the table points at them).
    #[cold]
    #[inline(never)]
    fn push_run(&mut self, mut rec: TwRecord, expires_ms: u32) -> u64 {
        let mut off = (self.tail - self.base) as usize;
        if !off.is_multiple_of(SPAN) {
            let (chunk, run) = self.locate_mut(off);
            let since_base = expires_ms.wrapping_sub(chunk.bases[run]);
            if since_base <= u16::MAX as u32 {
                // Within the current run: most pushes, one chunk lookup.
                rec.expires_off = since_base as u16;
                debug_assert_eq!(chunk.recs.len(), off & (CHUNK - 1));
                chunk.recs.push(rec);
                return self.advance_tail(1);
            }
            // Dead slots expire no later than anything after them.
            let pad = TwRecord {
                expires_off: u16::MAX,
                ..TwRecord::default()
            };
            let end = (off | (SPAN - 1)) + 1;
            chunk.recs.resize(((end - 1) & (CHUNK - 1)) + 1, pad);
            self.advance_tail(end - off);
            off = end;
        }
        // The first slot of a run, and maybe of a chunk.
        if off == self.chunks.len() * CHUNK {
            let chunk = self.spare.take().unwrap_or_else(Chunk::new);
            self.chunks.push_back(chunk);
        }
        let (chunk, run) = self.locate_mut(off);
        chunk.bases[run] = expires_ms;
        rec.expires_off = 0;
        debug_assert_eq!(chunk.recs.len(), off & (CHUNK - 1));
        chunk.recs.push(rec);
        self.advance_tail(1)
    }

    /// Moves `tail` past `n` written slots; the position of the first.
    #[inline]
    fn advance_tail(&mut self, n: usize) -> u64 {
        let pos = self.tail;
        self.tail += n as u64;
        pos
    }

    /// The chunk holding offset `off` from `base`, and the run within it.
    #[inline]
    fn locate_mut(&mut self, off: usize) -> (&mut Chunk, usize) {
        let run = (off & (CHUNK - 1)) >> SPAN_BITS;
        (&mut self.chunks[off >> CHUNK_BITS], run)
    }

    /// The oldest slot (live or stale), its position and its expiry (ms
    /// stamp), in one lookup: compaction and eviction read both.
    #[inline]
    pub fn front(&self) -> Option<(u64, &TwRecord, u32)> {
        self.front_slots()?.next()
    }

    /// The slots from the head to the end of its chunk or of the ring,
    /// oldest first, as [`TwRing::front`] gives them one at a time: the
    /// chunk found once for a run of expiries, which
    /// [`TwRing::pop_front_n`] then drops. The head is always in the first
    /// chunk ([`TwRing::pop_front_n`] drops a chunk as the head leaves it).
    #[inline]
    pub fn front_slots(&self) -> Option<FrontSlots<'_>> {
        if self.head >= self.tail {
            return None;
        }
        let off = (self.head - self.base) as usize;
        debug_assert!(off < CHUNK);
        let end = ((self.tail - self.base) as usize).min(CHUNK);
        let chunk = self.chunks.front()?;
        Some(FrontSlots {
            chunk,
            pos: self.head,
            off,
            end,
        })
    }

    /// Drops the oldest slot, recycling a chunk once all of it has been popped.
    #[inline]
    pub fn pop_front(&mut self) {
        self.pop_front_n(1);
    }

    /// Drops the `n` oldest slots, no more than [`TwRing::front_slots`]
    /// gave. In line: one TIME-WAIT expiry in `CHUNK` ends a chunk, and the
    /// call and the chunk handling's registers cost more than the rest.
    #[inline]
    pub fn pop_front_n(&mut self, n: usize) {
        self.head += n as u64;
        debug_assert!(self.head <= self.tail && self.head - self.base <= CHUNK as u64);
        if self.head == self.tail || self.head - self.base == CHUNK as u64 {
            self.popped_chunk_end();
        }
    }

    /// [`TwRing::pop_front`] at the end of the ring or of a chunk.
    #[cold]
    #[inline(never)]
    fn popped_chunk_end(&mut self) {
        if self.head == self.tail {
            // Empty: start the next push on a fresh chunk at `tail`.
            while let Some(chunk) = self.chunks.pop_front() {
                self.recycle(chunk);
            }
            self.base = self.tail;
        } else if self.head - self.base == CHUNK as u64 {
            if let Some(chunk) = self.chunks.pop_front() {
                self.recycle(chunk);
            }
            self.base += CHUNK as u64;
        }
    }

    /// Keeps `chunk`, emptied, for the next one pushed, if none is kept.
    fn recycle(&mut self, mut chunk: Chunk) {
        if self.spare.is_none() {
            chunk.recs.clear();
            self.spare = Some(chunk);
        }
    }

    /// The absolute position for a 31-bit position stored in the table.
    #[inline]
    pub fn resolve(&self, short: u32) -> u64 {
        self.head + ((short as u64).wrapping_sub(self.head) & POS_MASK)
    }

    #[inline]
    pub fn at(&self, pos: u64) -> &TwRecord {
        let off = (pos - self.base) as usize;
        &self.chunks[off >> CHUNK_BITS].recs[off & (CHUNK - 1)]
    }

    #[inline]
    pub fn at_mut(&mut self, pos: u64) -> &mut TwRecord {
        let off = (pos - self.base) as usize;
        &mut self.chunks[off >> CHUNK_BITS].recs[off & (CHUNK - 1)]
    }

    /// The expiry (ms stamp) of the slot at `pos`.
    #[cfg(test)]
    pub fn expires_ms(&self, pos: u64) -> u32 {
        self.get(pos).1
    }

    /// The slot at `pos` and its expiry (ms stamp), in one lookup.
    #[inline]
    pub fn get(&self, pos: u64) -> (&TwRecord, u32) {
        let off = (pos - self.base) as usize;
        let chunk = &self.chunks[off >> CHUNK_BITS];
        let base = chunk.bases[(off & (CHUNK - 1)) >> SPAN_BITS];
        let rec = &chunk.recs[off & (CHUNK - 1)];
        (rec, base.wrapping_add(rec.expires_off as u32))
    }

    pub fn heap_bytes(&self) -> usize {
        (self.chunks.len() + self.spare.is_some() as usize) * CHUNK * size_of::<TwRecord>()
            + self.chunks.capacity() * size_of::<Chunk>()
    }
}

#[cfg(test)]
mod tests;
