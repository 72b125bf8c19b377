use super::*;
use teardown_engine::segment::Flags;
use teardown_engine::tuple::Tuple;

fn seg(n: u32) -> Segment {
    let t = Tuple::new([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    Segment::new(&t, Flags::ACK, n, 0, 0, 1000)
}

fn capacity(q: &Queue) -> usize {
    q.capacity()
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
            q.push(at, &seg(i), &mut spare);
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
            q.push(Time::from_micros(at), &seg(at as u32), &mut spare);
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

/// While the front segment is delivered, the shard is shown the one
/// `BUCKET_AHEAD` back from the next in a FIFO (the one whose bucket the
/// host is asked for), none when the FIFO is that short, and none from a
/// heap, whose order is not known cheaply.
#[test]
fn prefetch_ahead_shows_the_shard_the_segment_bucket_ahead_back() {
    let host = Host::new(teardown_engine::Config::default());
    for jitter in [false, true] {
        let mut q = Queue::new(jitter, 0);
        let mut spare = Spare::default();
        for i in 0..10 {
            q.push(Time::from_micros(5), &seg(i), &mut spare);
        }
        let mut seen = Vec::new();
        q.prefetch_ahead(0, &host, |s| seen.push(s.seq));
        let want = if jitter {
            vec![]
        } else {
            vec![1 + BUCKET_AHEAD as u32]
        };
        assert_eq!(seen, want, "jitter {jitter}");
    }
    let mut q = Queue::new(false, 0);
    let mut spare = Spare::default();
    // The front is being delivered: a FIFO of 1 + BUCKET_AHEAD segments
    // has none BUCKET_AHEAD places behind it.
    for i in 0..1 + BUCKET_AHEAD as u32 {
        q.push(Time::from_micros(5), &seg(i), &mut spare);
    }
    let mut seen = Vec::new();
    q.prefetch_ahead(0, &host, |s| seen.push(s.seq));
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
        Kind::Fifo(f) => {
            let last = (f.last_n > 0).then_some((f.last_us, f.last_n));
            let runs = f.runs.as_slice().iter().map(|r| (r.0.as_micros(), r.1));
            runs.chain(last).collect()
        }
        Kind::Heap(..) => vec![],
    };
    for (i, at) in [5, 5, 5, 8].into_iter().enumerate() {
        q.push(Time::from_micros(at), &seg(i as u32), &mut spare);
    }
    assert_eq!(runs(&q), [(5, 3), (8, 1)]);
    assert_eq!(
        (q.pop(&mut spare).map(|s| s.seq), q.next_us()),
        (Some(0), 5)
    );
    q.push(Time::from_micros(8), &seg(4), &mut spare);
    q.push(Time::from_micros(9), &seg(5), &mut spare);
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
        q.push(Time::from_micros(5), &seg(i), &mut spare);
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
            q.push(Time::from_micros(5), &seg(i), &mut spare);
        }
        let grown = capacity(&q);
        while q.pop(&mut spare).is_some() {}
        assert_eq!(capacity(&q), grown, "jitter {jitter}");
        for i in 0..live as u32 * 4 {
            q.push(Time::from_micros(6), &seg(i), &mut spare);
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
            q.push(Time::from_micros(at), &seg(i), spare);
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
        spare.idle(q.next_us().min(other.next_us()) == u64::MAX);
        assert_eq!(spare.capacity(), Some(grown));
        q.pop(&mut spare);
        spare.idle(q.next_us().min(other.next_us()) == u64::MAX);
        assert_eq!(spare.capacity(), None);
    }
}

/// A burst's segments are taken as their run: `front_run_segments` holds
/// the segments that arrive together, and `ran` settles what was taken of it,
/// part (the run goes on at the same time) or all (the next run is next),
/// also when the FIFO drained and gave its buffer away meanwhile.
#[test]
fn a_run_is_taken_in_part_or_whole() {
    let mut q = Queue::new(false, 0);
    let mut spare = Spare::default();
    for (i, at) in [5, 5, 5, 7, 7].into_iter().enumerate() {
        q.push(Time::from_micros(at), &seg(i as u32), &mut spare);
    }
    // The first `k` of the front run, read in place, then dropped one by
    // one and settled once.
    fn take(q: &mut Queue, k: usize, spare: &mut Spare) -> Vec<u32> {
        let got = q.front_run_segments()[..k].iter().map(|s| s.seq).collect();
        for _ in 0..k {
            q.advance_in_run(spare);
        }
        q.ran(k);
        got
    }
    assert_eq!(q.front_run_segments().len(), 3);
    assert_eq!(take(&mut q, 2, &mut spare), [0, 1]);
    assert_eq!((q.front_run_segments().len(), q.next_us()), (1, 5));
    assert_eq!(take(&mut q, 1, &mut spare), [2]);
    assert_eq!((q.front_run_segments().len(), q.next_us()), (2, 7));
    assert_eq!(take(&mut q, 2, &mut spare), [3, 4]);
    assert_eq!((q.front_run_segments().len(), q.next_us()), (0, u64::MAX));
    // A released queue past its floor hands its drained buffer (runs and
    // all) away before its run is settled.
    let mut q = Queue::new(false, 0);
    let n = SHRINK_AT + 1;
    for i in 0..n {
        q.push(Time::from_micros(9), &seg(i as u32), &mut spare);
    }
    q.release(&mut spare);
    assert_eq!(q.front_run_segments().len(), n);
    assert_eq!(take(&mut q, n, &mut spare).len(), n);
    assert_eq!(
        (capacity(&q), q.front_run_segments().len(), q.next_us()),
        (0, 0, u64::MAX)
    );
}

/// A run read in place while the queue is out ([`Queue::take_out`]) is
/// what taking it segment by segment reads, and putting it back settles
/// what was taken as `advance_in_run` and `ran` do, in part or whole; a
/// release of the empty queue left meanwhile holds for the one put back,
/// which then hands its drained buffer away. A heap's run is its front.
#[test]
fn a_run_read_in_place_is_settled_as_it_is_put_back() {
    let mut spare = Spare::default();
    let mut q = Queue::new(false, 0);
    for (i, at) in [5, 5, 5, 7].into_iter().enumerate() {
        q.push(Time::from_micros(at), &seg(i as u32), &mut spare);
    }
    let out = q.take_out();
    let seqs: Vec<u32> = out.front_run_segments().iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    q.put_back(out, 2, &mut spare);
    assert_eq!(
        (
            q.front_run_segments().len(),
            q.next_us(),
            q.front_run_segments().first().map(|s| s.seq)
        ),
        (1, 5, Some(2))
    );
    let out = q.take_out();
    q.put_back(out, 1, &mut spare);
    assert_eq!(
        (
            q.front_run_segments().len(),
            q.next_us(),
            q.front_run_segments().first().map(|s| s.seq)
        ),
        (1, 7, Some(3))
    );
    // Released while out, past its floor: drained as it is put back, it
    // gives its buffer away.
    let mut q = Queue::new(false, 0);
    let n = SHRINK_AT + 1;
    for i in 0..n {
        q.push(Time::from_micros(9), &seg(i as u32), &mut spare);
    }
    let out = q.take_out();
    assert_eq!(out.front_run_segments().len(), n);
    q.release(&mut spare);
    q.put_back(out, n, &mut spare);
    assert_eq!(
        (capacity(&q), q.front_run_segments().len(), q.next_us()),
        (0, 0, u64::MAX)
    );
    // Not released, within what it keeps: it keeps its buffer.
    let mut q = Queue::new(false, 0);
    let m = SHRINK_AT / 2;
    for i in 0..m {
        q.push(Time::from_micros(9), &seg(i as u32), &mut spare);
    }
    let out = q.take_out();
    q.put_back(out, m, &mut spare);
    assert!(capacity(&q) >= m && q.next_us() == u64::MAX);
    let mut h = Queue::new(true, 0);
    for (i, at) in [8, 6].into_iter().enumerate() {
        h.push(Time::from_micros(at), &seg(i as u32), &mut spare);
    }
    let out = h.take_out();
    let seqs: Vec<u32> = out.front_run_segments().iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1]);
    h.put_back(out, 1, &mut spare);
    assert_eq!(
        (h.next_us(), h.front_run_segments().first().map(|s| s.seq)),
        (8, Some(0))
    );
}
