//! One direction of a shard's link: the segments in flight, in arrival order.
//!
//! A burst (a million SYNs, or FINs, sent in one instant) fills a queue to
//! the burst's size. A shard's bursts are bounded by its live connections,
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
use std::collections::{BinaryHeap, VecDeque};

use teardown_engine::driver::{BUCKET_AHEAD, ENTRY_AHEAD};
use teardown_engine::host::{Host, Prefetch};
use teardown_engine::segment::Segment;
use teardown_engine::time::Time;

use super::micros_or_never as us;
use super::spare::Spare;

/// Capacity (segments) an emptied queue always keeps, so that a queue that
/// empties between two segments of a steady workload does not reallocate.
const SHRINK_AT: usize = 1 << 10;

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
    /// Whether [`Queue::release`] was called: a FIFO then returns its
    /// buffer to the link's [`Spare`], not to the allocator.
    released: bool,
    kind: Kind,
}

enum Kind {
    Fifo(Fifo),
    Heap(BinaryHeap<Reverse<InFlight>>, u64),
}

/// Segments in send order, and their arrival times run-length coded: each
/// run is a time and how many segments in a row (from the front) arrive then.
#[derive(Default)]
struct Fifo {
    segs: VecDeque<Segment>,
    runs: VecDeque<(Time, u32)>,
}

impl Fifo {
    /// Where a full buffer would grow: the segments move into the spare
    /// when it is bigger (as many as growth would copy), and the old buffer
    /// is freed. Out of line: once per doubling.
    #[cold]
    #[inline(never)]
    fn take_spare(&mut self, spare: &mut Spare) {
        if let Some(mut buf) = spare.take_bigger(self.segs.capacity()) {
            buf.extend(self.segs.drain(..));
            self.segs = buf;
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
            released: false,
            kind,
        }
    }

    /// Queues `seg` to arrive `at`. A FIFO about to grow takes the `spare`
    /// buffer instead when it is bigger.
    #[inline(always)]
    pub(super) fn push(&mut self, at: Time, seg: Segment, spare: &mut Spare) {
        // A FIFO's segments all have one delay, so a later push never
        // arrives first; in a heap it may.
        match &mut self.kind {
            Kind::Fifo(q) => {
                match q.runs.back_mut() {
                    Some((last, n)) if *last == at && *n < u32::MAX => *n += 1,
                    Some(_) => q.runs.push_back((at, 1)),
                    None => {
                        self.next_us = at.as_micros();
                        q.runs.push_back((at, 1));
                    }
                }
                if q.segs.len() == q.segs.capacity() {
                    q.take_spare(spare);
                }
                q.segs.push_back(seg);
            }
            Kind::Heap(h, order) => {
                *order += 1;
                h.push(Reverse(InFlight {
                    at,
                    order: *order,
                    seg,
                }));
                self.next_us = self.next_us.min(at.as_micros());
            }
        }
    }

    /// From now on the queue gives back a buffer above [`SHRINK_AT`] once
    /// it drains, as one kept for bursts of the shard's size no longer
    /// pays for itself.
    pub(super) fn release(&mut self, spare: &mut Spare) {
        self.keep = SHRINK_AT;
        self.released = true;
        self.shrink_if_drained(spare);
    }

    /// A drained buffer above `keep` is freed, or once released, a FIFO's
    /// goes to `spare`.
    #[inline(always)]
    fn shrink_if_drained(&mut self, spare: &mut Spare) {
        match &mut self.kind {
            Kind::Fifo(q) if q.segs.capacity() > self.keep && q.segs.is_empty() => {
                let q = std::mem::take(q);
                if self.released {
                    spare.give(q.segs);
                }
            }
            Kind::Heap(h, _) if h.capacity() > self.keep && h.is_empty() => *h = BinaryHeap::new(),
            _ => {}
        }
    }

    /// Whether no segment is in flight.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        match &self.kind {
            Kind::Fifo(q) => q.segs.is_empty(),
            Kind::Heap(h, _) => h.is_empty(),
        }
    }

    /// When the next segment arrives, in µs; `u64::MAX` when none is in flight.
    #[inline(always)]
    pub(super) fn next_us(&self) -> u64 {
        self.next_us
    }

    /// The next segment to arrive; a FIFO that drains may give its buffer
    /// to `spare` ([`Queue::release`]).
    #[inline(always)]
    pub(super) fn pop(&mut self, spare: &mut Spare) -> Option<Segment> {
        match &mut self.kind {
            Kind::Fifo(q) => {
                let seg = q.segs.pop_front()?;
                if let Some((_, n)) = q.runs.front_mut() {
                    *n -= 1;
                    if *n == 0 {
                        q.runs.pop_front();
                        self.next_us = us(q.runs.front().map(|x| x.0));
                    }
                }
                if q.segs.is_empty() {
                    self.shrink_if_drained(spare);
                }
                Some(seg)
            }
            Kind::Heap(h, _) => {
                let seg = h.pop().map(|x| x.0.seg);
                self.next_us = us(h.peek().map(|x| x.0.at));
                if h.is_empty() {
                    self.shrink_if_drained(spare);
                }
                seg
            }
        }
    }

    /// Tells `to` what the FIFO will deliver next (a heap does not know
    /// cheaply): the index bucket of the segment `BUCKET_AHEAD` places back,
    /// the entry of the one `ENTRY_AHEAD` back, whose bucket was asked for
    /// earlier. Once the tables outgrow the cache, these misses are most of a
    /// segment's cost; asked for early, they overlap this segment's work.
    /// `mine` is given the segment `BUCKET_AHEAD` back too, for the shard to
    /// prefetch its own per-connection state, which it reads on delivery.
    #[inline]
    pub(super) fn prefetch_ahead(&self, to: &Host, mine: impl FnOnce(&Segment)) {
        if let Kind::Fifo(q) = &self.kind {
            if let Some(seg) = q.segs.get(BUCKET_AHEAD) {
                to.prefetch(seg, Prefetch::Bucket);
                mine(seg);
            }
            if let Some(seg) = q.segs.get(ENTRY_AHEAD) {
                to.prefetch(seg, Prefetch::Entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teardown_engine::segment::Flags;
    use teardown_engine::tuple::Tuple;

    fn seg(n: u32) -> Segment {
        let t = Tuple::new([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
        Segment::new(&t, Flags::ACK, n, 0, 0, 1000)
    }

    fn capacity(q: &Queue) -> usize {
        match &q.kind {
            Kind::Fifo(q) => q.segs.capacity(),
            Kind::Heap(h, _) => h.capacity(),
        }
    }

    /// A burst bigger than the shard's connections allow drains in arrival
    /// order (ties in send order) and leaves no buffer behind, in both kinds
    /// of queue.
    #[test]
    fn a_drained_burst_returns_its_buffer() {
        for jitter in [false, true] {
            let mut q = Queue::new(jitter, 0);
            let mut spare = Spare::default();
            let n = SHRINK_AT as u32 * 2;
            for i in 0..n {
                // With jitter, every other segment arrives a microsecond early.
                let at = Time::from_micros(10 - (jitter && i % 2 == 1) as u64);
                q.push(at, seg(i), &mut spare);
            }
            assert!(capacity(&q) >= n as usize);
            let got: Vec<u32> = std::iter::from_fn(|| q.pop(&mut spare))
                .map(|s| s.seq)
                .collect();
            let want: Vec<u32> = if jitter {
                (0..n)
                    .filter(|i| i % 2 == 1)
                    .chain((0..n).step_by(2))
                    .collect()
            } else {
                (0..n).collect()
            };
            assert_eq!(got, want, "jitter {jitter}");
            assert_eq!(capacity(&q), 0, "jitter {jitter}");
        }
    }

    /// The kept next arrival is the one `pop` then returns, through pushes
    /// that arrive before the earliest (jitter) and pops down to empty.
    #[test]
    fn next_us_is_the_next_arrival() {
        for jitter in [false, true] {
            let mut q = Queue::new(jitter, 0);
            let mut spare = Spare::default();
            assert_eq!(q.next_us(), u64::MAX);
            let ats: &[u64] = if jitter {
                &[30, 10, 20, 5]
            } else {
                &[5, 5, 7, 9]
            };
            for (i, &at) in ats.iter().enumerate() {
                q.push(Time::from_micros(at), seg(at as u32), &mut spare);
                assert_eq!(q.next_us(), *ats[..=i].iter().min().unwrap_or(&0));
            }
            let mut sorted = ats.to_vec();
            sorted.sort();
            for &at in &sorted {
                assert_eq!(q.next_us(), at, "jitter {jitter}");
                assert_eq!(q.pop(&mut spare).map(|s| u64::from(s.seq)), Some(at));
            }
            assert_eq!(q.next_us(), u64::MAX);
            assert!(q.pop(&mut spare).is_none());
        }
    }

    /// The shard is shown the segment `BUCKET_AHEAD` back in a FIFO (the
    /// one whose bucket the host is asked for), none when the FIFO is that
    /// short, and none from a heap, whose order is not known cheaply.
    #[test]
    fn prefetch_ahead_shows_the_shard_the_segment_bucket_ahead_back() {
        let host = Host::new(teardown_engine::Config::default());
        for jitter in [false, true] {
            let mut q = Queue::new(jitter, 0);
            let mut spare = Spare::default();
            for i in 0..10 {
                q.push(Time::from_micros(5), seg(i), &mut spare);
            }
            q.pop(&mut spare);
            let mut seen = Vec::new();
            q.prefetch_ahead(&host, |s| seen.push(s.seq));
            let want = if jitter {
                vec![]
            } else {
                vec![1 + BUCKET_AHEAD as u32]
            };
            assert_eq!(seen, want, "jitter {jitter}");
        }
        let mut q = Queue::new(false, 0);
        let mut spare = Spare::default();
        for i in 0..BUCKET_AHEAD as u32 {
            q.push(Time::from_micros(5), seg(i), &mut spare);
        }
        let mut seen = Vec::new();
        q.prefetch_ahead(&host, |s| seen.push(s.seq));
        assert_eq!(seen, Vec::<u32>::new());
    }

    /// A FIFO keeps one time per run of segments arriving together, and
    /// pops in send order with the next arrival right through runs that
    /// are extended after part of them was popped.
    #[test]
    fn a_fifo_keeps_a_time_per_run() {
        let mut q = Queue::new(false, 0);
        let mut spare = Spare::default();
        let runs = |q: &Queue| match &q.kind {
            Kind::Fifo(f) => f.runs.iter().map(|r| (r.0.as_micros(), r.1)).collect(),
            Kind::Heap(..) => vec![],
        };
        for (i, at) in [5, 5, 5, 8].into_iter().enumerate() {
            q.push(Time::from_micros(at), seg(i as u32), &mut spare);
        }
        assert_eq!(runs(&q), [(5, 3), (8, 1)]);
        assert_eq!(
            (q.pop(&mut spare).map(|s| s.seq), q.next_us()),
            (Some(0), 5)
        );
        q.push(Time::from_micros(8), seg(4), &mut spare);
        q.push(Time::from_micros(9), seg(5), &mut spare);
        assert_eq!(runs(&q), [(5, 2), (8, 2), (9, 1)]);
        let mut got = Vec::new();
        while q.next_us() != u64::MAX {
            let at = q.next_us();
            got.push((q.pop(&mut spare).map(|s| s.seq), at));
        }
        let want = [(1, 5), (2, 5), (3, 8), (4, 8), (5, 9)].map(|(s, at)| (Some(s), at));
        assert_eq!(got, want);
        assert!(q.pop(&mut spare).is_none() && runs(&q).is_empty());
    }

    /// A small queue keeps its buffer when it empties (no churn in a steady run).
    #[test]
    fn a_small_queue_keeps_its_buffer() {
        let mut q = Queue::new(false, 0);
        let mut spare = Spare::default();
        for i in 0..100 {
            q.push(Time::from_micros(5), seg(i), &mut spare);
        }
        while q.pop(&mut spare).is_some() {}
        assert!(capacity(&q) >= 100);
    }

    /// A burst of one segment per live connection leaves its buffer behind
    /// (the next burst does not regrow it), in both kinds of queue; twice as
    /// many live connections' worth does not.
    #[test]
    fn a_burst_the_shard_can_make_keeps_its_buffer() {
        let live = SHRINK_AT * 4;
        for jitter in [false, true] {
            let mut q = Queue::new(jitter, live);
            let mut spare = Spare::default();
            for i in 0..live as u32 {
                q.push(Time::from_micros(5), seg(i), &mut spare);
            }
            let grown = capacity(&q);
            while q.pop(&mut spare).is_some() {}
            assert_eq!(capacity(&q), grown, "jitter {jitter}");
            for i in 0..live as u32 * 4 {
                q.push(Time::from_micros(6), seg(i), &mut spare);
            }
            while q.pop(&mut spare).is_some() {}
            assert_eq!(capacity(&q), 0, "jitter {jitter}");
        }
    }

    /// Once released (the shard's last connect), a kept buffer leaves the
    /// queue, at once when drained, else when it drains, for the link's
    /// spare: the next burst into either queue takes it whole (no growth),
    /// and it is freed once the link is idle.
    #[test]
    fn a_released_queue_hands_a_big_buffer_to_the_next_burst() {
        let live = crate::alloc::MAPPED_FROM / std::mem::size_of::<Segment>() + 1;
        let burst = |q: &mut Queue, n: usize, at: u64, spare: &mut Spare| {
            for i in 0..n as u32 {
                q.push(Time::from_micros(at), seg(i), spare);
            }
        };
        for pending in [0, 1] {
            let (mut q, mut other) = (Queue::new(false, live), Queue::new(false, live));
            let mut spare = Spare::default();
            burst(&mut q, live, 5, &mut spare);
            while q.pop(&mut spare).is_some() {}
            let grown = capacity(&q);
            burst(&mut q, pending, 6, &mut spare);
            q.release(&mut spare);
            assert_eq!(capacity(&q) > 0, pending > 0, "pending {pending}");
            while q.pop(&mut spare).is_some() {}
            assert_eq!(capacity(&q), 0, "pending {pending}");
            assert_eq!(spare.capacity(), Some(grown));
            // The other direction's burst takes it when it outgrows its
            // own, with what it held, and grows no further.
            other.release(&mut spare);
            burst(&mut other, 3, 7, &mut spare);
            burst(&mut other, live - 3, 8, &mut spare);
            assert_eq!(spare.capacity(), None);
            assert_eq!(capacity(&other), grown, "pending {pending}");
            let firsts: Vec<u32> = (0..4)
                .filter_map(|_| other.pop(&mut spare))
                .map(|s| s.seq)
                .collect();
            assert_eq!(firsts, [0, 1, 2, 0]);
            // Drained again, it is the spare while a segment is in flight.
            burst(&mut q, 1, 9, &mut spare);
            while other.pop(&mut spare).is_some() {}
            assert_eq!(spare.capacity(), Some(grown));
            spare.idle(q.is_empty() && other.is_empty());
            assert_eq!(spare.capacity(), Some(grown));
            q.pop(&mut spare);
            spare.idle(q.is_empty() && other.is_empty());
            assert_eq!(spare.capacity(), None);
        }
    }
}
