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

use crate::seq::Seq;
use crate::tuple::Tuple;

/// What TIME-WAIT keeps of a connection: 32 bytes, against Linux's 256-byte
/// `tw_sock_TCP` and a live [`crate::conn::Conn`]'s 64 ([`crate::table::TIME_WAIT_BYTES`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TwEntry {
    pub tuple: Tuple,
    /// Our next sequence number: the seq of the ACKs we send.
    pub snd_nxt: Seq,
    /// The peer's FIN + 1: what we acknowledge, and the exact RST sequence.
    pub rcv_nxt: Seq,
    /// When the entry expires (ms stamp).
    pub expires_ms: u32,
    /// When the application closed (ms stamp), for teardown latency.
    pub close_ms: u32,
    /// Last rate-limited ACK (`tw_last_oow_ack_time`).
    pub last_oow_ms: u32,
}

const CHUNK_BITS: u32 = 9;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Positions are absolute and never reused; the table stores them modulo 2^31.
pub(crate) const POS_MASK: u64 = (1 << 31) - 1;

#[derive(Default)]
pub(crate) struct TwRing {
    chunks: VecDeque<Vec<TwEntry>>,
    /// Absolute position of `chunks[0][0]`.
    base: u64,
    /// Absolute position of the oldest slot not yet popped.
    head: u64,
    /// Absolute position one past the newest slot.
    tail: u64,
    spare: Option<Vec<TwEntry>>,
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

    /// Appends `e`, returning its absolute position.
    pub fn push(&mut self, e: TwEntry) -> u64 {
        let off = (self.tail - self.base) as usize;
        if off == self.chunks.len() * CHUNK {
            let chunk = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            self.chunks.push_back(chunk);
        }
        self.chunks[off >> CHUNK_BITS].push(e);
        let pos = self.tail;
        self.tail += 1;
        pos
    }

    /// The oldest slot (live or stale) and its position.
    pub fn front(&self) -> Option<(u64, &TwEntry)> {
        (self.head < self.tail).then(|| (self.head, self.at(self.head)))
    }

    /// Drops the oldest slot, recycling a chunk once all of it has been popped.
    pub fn pop_front(&mut self) {
        debug_assert!(self.head < self.tail);
        self.head += 1;
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

    fn recycle(&mut self, mut chunk: Vec<TwEntry>) {
        if self.spare.is_none() {
            chunk.clear();
            self.spare = Some(chunk);
        }
    }

    /// The absolute position for a 31-bit position stored in the table.
    #[inline]
    pub fn resolve(&self, short: u32) -> u64 {
        self.head + ((short as u64).wrapping_sub(self.head) & POS_MASK)
    }

    #[inline]
    pub fn at(&self, pos: u64) -> &TwEntry {
        let off = (pos - self.base) as usize;
        &self.chunks[off >> CHUNK_BITS][off & (CHUNK - 1)]
    }

    #[inline]
    pub fn at_mut(&mut self, pos: u64) -> &mut TwEntry {
        let off = (pos - self.base) as usize;
        &mut self.chunks[off >> CHUNK_BITS][off & (CHUNK - 1)]
    }

    pub fn heap_bytes(&self) -> usize {
        let chunk = CHUNK * std::mem::size_of::<TwEntry>();
        (self.chunks.len() + self.spare.is_some() as usize) * chunk
            + self.chunks.capacity() * std::mem::size_of::<Vec<TwEntry>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> TwEntry {
        TwEntry {
            snd_nxt: Seq(i),
            ..TwEntry::default()
        }
    }

    #[test]
    fn fifo_across_chunks_and_recycles() {
        let mut r = TwRing::default();
        let n = CHUNK as u32 * 3 + 17;
        for i in 0..n {
            assert_eq!(r.push(entry(i)), i as u64);
        }
        for i in 0..n {
            let (pos, e) = r.front().expect("entry");
            assert_eq!((pos, e.snd_nxt), (i as u64, Seq(i)));
            r.pop_front();
        }
        assert!(r.front().is_none());
        // Refill after emptying: positions keep growing, storage is reused.
        assert_eq!(r.push(entry(1)), n as u64);
        assert_eq!(r.at(n as u64).snd_nxt, Seq(1));
        assert!(r.heap_bytes() <= 2 * CHUNK * 32 + 1024);
    }

    #[test]
    fn short_positions_resolve_near_head() {
        let mut r = TwRing::default();
        for i in 0..10 {
            r.push(entry(i));
        }
        r.pop_front();
        assert_eq!(r.resolve(5), 5);
        assert_eq!(r.resolve((5 & POS_MASK) as u32), 5);
    }
}
