//! One direction of a shard's link: the segments in flight, in arrival order.
//!
//! A burst (a million SYNs, or FINs, sent in one instant) fills a queue to
//! the burst's size. A shard's bursts are bounded by its connections (the
//! pool, and clients that closed first behind it in TIME-WAIT),
//! and they come again and again (every wave of opens, FINs, ACKs): the
//! queue keeps a buffer that size once drained, so the next burst does not
//! regrow it by doubling and copy it each time. A bigger buffer (a retransmit
//! storm, an attack) is given back once it drains: left at its high-water
//! mark it would hold a second copy of that burst for the rest of the run.
//!
//! A FIFO keeps its arrival times apart from its segments, one per run of
//! segments that arrive together: a burst's segments were all sent in one
//! instant and share one. With a million connections in flight the queue is
//! far bigger than the cache, and every line a segment takes is written once
//! and read once from memory; without its 8-byte time beside it a segment
//! takes 40 bytes instead of 48.
//!
//! Once a shard's last connect is made, a drained FIFO no longer keeps its
//! buffer; a big one (a mapping of its own) goes to the link's [`Spare`]
//! for the next burst in either direction, while segments are in flight:
//! freed and mapped again, such a buffer was faulted in afresh (zeroed by
//! the kernel) at every burst of a million connections' wave.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use teardown_engine::driver::{BUCKET_AHEAD, ENTRY_AHEAD};
use teardown_engine::host::{Host, Prefetch};
use teardown_engine::segment::Segment;
use teardown_engine::time::Time;

use super::micros_or_never as us;
use super::spare::Spare;
use line::Line;

mod line;
use crate::alloc::{self, MAPPED_FROM};

/// Capacity (segments) an emptied queue always keeps, so that a queue that
/// empties between two segments of a steady workload does not reallocate.
const SHRINK_AT: usize = 1 << 10;

/// Capacity (segments) a queue that hands its buffers on ([`Queue::handed_on`])
/// keeps, released or not: every buffer of malloc's, below the allocator's
/// own mappings ([`MAPPED_FROM`]).
const HANDED_ON: usize = (MAPPED_FROM - 1) / std::mem::size_of::<Segment>();

/// A segment in flight, ordered by arrival time and then by send order.
pub(super) struct InFlight {
    at: Time,
    order: u64,
    seg: Segment,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// One direction of the link: a FIFO when every segment has the same delay, a
/// heap when jitter can reorder them. The next arrival is kept as plain
/// micros beside them: the shard asks for it after every event, and more
/// often than segments come and go.
pub(super) struct Queue {
    /// The earliest arrival in µs, `u64::MAX` when empty.
    next_us: u64,
    /// Capacity above which an emptied queue returns its buffer.
    keep: usize,
    /// What `keep` falls to once released: [`SHRINK_AT`], or [`HANDED_ON`].
    floor: usize,
    /// Whether [`Queue::release`] was called: a FIFO then returns its
    /// buffer to the link's [`Spare`], not to the allocator.
    released: bool,
    kind: Kind,
}

/// Tagged in a byte of its own: the shard asks which kind at every
/// segment it takes and queues, and a niche in the FIFO's buffer took a
/// 64-bit constant and a compare to test.
#[repr(u8)]
enum Kind {
    Fifo(Fifo),
    Heap(BinaryHeap<Reverse<InFlight>>, u64),
}

/// Segments in send order, and their arrival times run-length coded: each
/// run is a time and how many segments in a row (from the front) arrive then,
/// counted in a `u64` (a run takes 16 bytes either way), which no run fills.
///
/// The last run, the one pushes extend, is kept apart from the others
/// (`last_us`, `last_n`): a push at the last run's instant tests and counts
/// in two fields, where through the runs' line it found that line's back
/// first (0.8 % of a sequential run's instructions). It joins `runs` when a
/// push starts a later run.
struct Fifo {
    segs: Line<Segment>,
    /// The runs before the last one, front first.
    runs: Line<(Time, u64)>,
    /// The last run's arrival in µs, `u64::MAX` with no run (`last_n` 0);
    /// when `runs` is empty, it is the front run.
    last_us: u64,
    last_n: u64,
}

impl Default for Fifo {
    fn default() -> Fifo {
        Fifo {
            segs: Line::default(),
            runs: Line::default(),
            last_us: u64::MAX,
            last_n: 0,
        }
    }
}

impl Fifo {
    /// Empties the FIFO, its buffers kept.
    fn clear(&mut self) {
        self.segs.clear();
        self.runs.clear();
        (self.last_us, self.last_n) = (u64::MAX, 0);
    }

    /// Starts the last run, at `at_us`, with one segment: the one before
    /// (if any) joins `runs`; returns whether the FIFO was empty. Out of
    /// line: once a burst.
    #[inline(never)]
    fn start_run(&mut self, at_us: u64) -> bool {
        let was_empty = self.last_n == 0;
        if !was_empty {
            if self.runs.is_full() {
                self.make_room_for_run();
            }
            self.runs
                .push((Time::from_micros(self.last_us), self.last_n));
        }
        (self.last_us, self.last_n) = (at_us, 1);
        was_empty
    }

    /// How many segments the front run holds (0: none).
    #[inline(always)]
    fn front_n(&self) -> u64 {
        self.runs.front().map_or(self.last_n, |&(_, n)| n)
    }

    /// Where a full buffer would grow: the segments move to its front when
    /// mostly read, else into the spare when it is bigger (as many as
    /// growth would copy), and the old buffer is freed; else it grows here.
    /// Out of line: once per doubling. What it allocates or frees is the
    /// simulator's ([`alloc::outside`]): a burst runs in its host's scope.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, spare: &mut Spare) {
        if self.segs.compact() {
            return;
        }
        alloc::outside(|| match spare.take_bigger(self.segs.capacity()) {
            Some(mut buf) => {
                buf.extend_from_slice(self.segs.as_slice());
                self.segs = Line::from_vec(buf);
            }
            None => self.segs.grow(),
        });
    }

    /// [`Fifo::make_room`] for the runs: moved to the front, or grown.
    #[cold]
    #[inline(never)]
    fn make_room_for_run(&mut self) {
        if !self.runs.compact() {
            alloc::outside(|| self.runs.grow());
        }
    }
}

impl Queue {
    /// `live`: the most connections the shard holds open at once, which
    /// bounds a burst of one segment per connection; the buffer it grows to
    /// by doubling (under twice that) is kept between bursts.
    pub(super) fn new(jitter: bool, live: usize) -> Queue {
        let kind = if jitter {
            Kind::Heap(BinaryHeap::new(), 0)
        } else {
            Kind::Fifo(Fifo::default())
        };
        Queue {
            next_us: u64::MAX,
            keep: live.saturating_mul(2).max(SHRINK_AT),
            floor: SHRINK_AT,
            released: false,
            kind,
        }
    }

    /// A queue for a shard whose thread runs its shards one after another
    /// ([`super::reuse::Reuse`]): it starts with the buffers of `old`, the
    /// last shard's queue, emptied, and keeps every buffer of malloc's to
    /// the end, for the next shard. Each of a thread's 64 shards otherwise
    /// grew its buffers afresh by doubling, at every wave once released
    /// (1.8 % of a sequential run's instructions, in copies). A buffer the
    /// allocator maps on its own is given back as in [`Queue::new`].
    pub(super) fn handed_on(old: Option<Queue>, jitter: bool, live: usize) -> Queue {
        let mut q = Queue::new(jitter, live);
        q.floor = HANDED_ON;
        q.keep = q.keep.max(HANDED_ON);
        // What a shard cut short (`--duration`) left in flight goes.
        match (old.map(|o| o.kind), &mut q.kind) {
            (Some(Kind::Fifo(mut f)), Kind::Fifo(_)) => {
                f.clear();
                q.kind = Kind::Fifo(f);
            }
            (Some(Kind::Heap(mut h, _)), Kind::Heap(..)) => {
                h.clear();
                q.kind = Kind::Heap(h, 0);
            }
            _ => {}
        }
        q
    }

    /// Queues `seg` to arrive `at`: copied once, from where the host left
    /// it into the buffer (taken by value, it went through the stack). A
    /// FIFO about to grow takes the `spare` buffer instead when it is bigger.
    #[inline(always)]
    pub(super) fn push(&mut self, at: Time, seg: &Segment, spare: &mut Spare) {
        // A FIFO's segments all have one delay, so a later push never
        // arrives first; in a heap it may.
        match &mut self.kind {
            Kind::Fifo(q) => {
                let at_us = at.as_micros();
                if q.last_us == at_us {
                    q.last_n += 1;
                } else if q.start_run(at_us) {
                    self.next_us = at_us;
                }
                if q.segs.is_full() {
                    q.make_room(spare);
                }
                q.segs.push(*seg);
            }
            Kind::Heap(h, order) => {
                *order += 1;
                if h.len() == h.capacity() {
                    alloc::outside(|| h.reserve(1));
                }
                h.push(Reverse(InFlight {
                    at,
                    order: *order,
                    seg: *seg,
                }));
                self.next_us = self.next_us.min(at.as_micros());
            }
        }
    }

    /// From now on the queue gives back a buffer above [`SHRINK_AT`] (or
    /// [`HANDED_ON`]) once it drains, as one kept for bursts of the shard's size no longer
    /// pays for itself.
    pub(super) fn release(&mut self, spare: &mut Spare) {
        self.keep = self.floor;
        self.released = true;
        self.shrink_if_drained(spare);
    }

    /// A drained buffer above `keep` is freed, or once released, a FIFO's
    /// goes to `spare` (which may free the one it held): by the simulator
    /// ([`alloc::outside`]), in a burst that runs in its host's scope.
    #[inline(always)]
    fn shrink_if_drained(&mut self, spare: &mut Spare) {
        match &mut self.kind {
            Kind::Fifo(q) if q.segs.capacity() > self.keep && q.segs.is_empty() => {
                let released = self.released;
                alloc::outside(|| {
                    let q = std::mem::take(q);
                    if released {
                        spare.give(q.segs.into_vec());
                    }
                });
            }
            Kind::Heap(h, _) if h.capacity() > self.keep && h.is_empty() => {
                alloc::outside(|| *h = BinaryHeap::new());
            }
            _ => {}
        }
    }

    /// The buffer's room, in segments.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        match &self.kind {
            Kind::Fifo(q) => q.segs.capacity(),
            Kind::Heap(h, _) => h.capacity(),
        }
    }

    /// When the next segment arrives, in µs; `u64::MAX` when none is in flight.
    #[inline(always)]
    pub(super) fn next_us(&self) -> u64 {
        self.next_us
    }

    /// Takes the queue out, for a burst to read its front run in place
    /// ([`Queue::front_run_segments`]) while the shard's deliveries borrow
    /// the rest of it, and leaves an empty one meanwhile: nothing queues in
    /// this direction then, and a [`Queue::release`] of the empty one is
    /// passed on by [`Queue::put_back`].
    #[inline(always)]
    pub(super) fn take_out(&mut self) -> Queue {
        std::mem::replace(self, Queue::new(false, 0))
    }

    /// The segments that arrive together at [`Queue::next_us`], in order: a
    /// FIFO's front run where it lies, a heap's front one (it keeps no runs).
    #[inline(always)]
    pub(super) fn front_run_segments(&self) -> &[Segment] {
        match &self.kind {
            Kind::Fifo(q) => &q.segs.as_slice()[..q.front_n() as usize],
            Kind::Heap(h, _) => h.peek().map_or(&[], |x| std::slice::from_ref(&x.0.seg)),
        }
    }

    /// Puts back `q`, taken out ([`Queue::take_out`]), once the first `k`
    /// of its front run are delivered: it drops them
    /// ([`Queue::advance_in_run`] each) and settles the run
    /// ([`Queue::ran`]), released first if the empty queue left in its
    /// place was meanwhile (a release then found `q` with segments left,
    /// so it only set what its drain reads).
    #[inline(always)]
    pub(super) fn put_back(&mut self, mut q: Queue, k: usize, spare: &mut Spare) {
        debug_assert_eq!(self.next_us(), u64::MAX, "a segment queued meanwhile");
        if self.released {
            q.keep = q.floor;
            q.released = true;
        }
        if k > 0 {
            match &mut q.kind {
                Kind::Fifo(f) => {
                    if f.segs.advance_by(k) {
                        q.shrink_if_drained(spare);
                    }
                }
                Kind::Heap(..) => q.advance_in_run(spare),
            }
        }
        q.ran(k);
        *self = q;
    }

    /// Drops the next segment (a nonempty queue's first), one of
    /// the front run: a FIFO's run is settled by [`Queue::ran`], a heap's at
    /// once. A FIFO that drains may give its buffer to `spare`
    /// ([`Queue::release`]).
    #[inline(always)]
    pub(super) fn advance_in_run(&mut self, spare: &mut Spare) {
        match &mut self.kind {
            Kind::Fifo(q) => {
                if q.segs.advance() {
                    self.shrink_if_drained(spare);
                }
            }
            Kind::Heap(h, _) => {
                h.pop();
                self.next_us = us(h.peek().map(|x| x.0.at));
                if h.is_empty() {
                    self.shrink_if_drained(spare);
                }
            }
        }
    }

    /// Settles the front run after `k` of its segments were taken
    /// ([`Queue::advance_in_run`]): once all are, the next run's time is next.
    /// A FIFO that drained meanwhile (its runs with it, when it gave its
    /// buffer away) has nothing next.
    #[inline(always)]
    pub(super) fn ran(&mut self, k: usize) {
        if let Kind::Fifo(q) = &mut self.kind {
            match q.runs.front_mut() {
                Some((_, n)) => {
                    *n -= k as u64;
                    if *n == 0 {
                        q.runs.advance();
                        self.next_us = q.runs.front().map_or(q.last_us, |x| x.0.as_micros());
                    }
                }
                None if q.last_n > k as u64 => q.last_n -= k as u64,
                None => {
                    (q.last_us, q.last_n) = (u64::MAX, 0);
                    self.next_us = u64::MAX;
                }
            }
        }
    }

    /// The next segment to arrive, taken off the queue.
    #[cfg(test)]
    pub(super) fn pop(&mut self, spare: &mut Spare) -> Option<Segment> {
        let seg = *self.front_run_segments().first()?;
        self.advance_in_run(spare);
        self.ran(1);
        Some(seg)
    }

    /// Tells `to` what the FIFO will deliver next (a heap does not know
    /// cheaply), while the segment `at` places from the front is delivered
    /// (its run read in place): the index bucket of the segment
    /// `BUCKET_AHEAD` places back from the one after that, the
    /// entry of the one `ENTRY_AHEAD` back, whose bucket was asked for
    /// earlier. Once the tables outgrow the cache, these misses are most of a
    /// segment's cost; asked for early, they overlap this segment's work.
    /// `mine` is given the segment `BUCKET_AHEAD` back too, for the shard to
    /// prefetch its own per-connection state, which it reads on delivery.
    #[inline]
    pub(super) fn prefetch_ahead(&self, at: usize, to: &Host, mine: impl FnOnce(&Segment)) {
        if let Kind::Fifo(q) = &self.kind {
            if let Some(seg) = q.segs.get(at + 1 + BUCKET_AHEAD) {
                to.prefetch(seg, Prefetch::Bucket);
                mine(seg);
            }
            if let Some(seg) = q.segs.get(at + 1 + ENTRY_AHEAD) {
                to.prefetch(seg, Prefetch::Entry);
            }
        }
    }
}

#[cfg(test)]
mod tests;
