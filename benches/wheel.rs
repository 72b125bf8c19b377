//! Timer wheel vs `BinaryHeap` vs `tokio_util::time::DelayQueue`.
//!
//! One tick = 1 ms. Deadlines are uniform in `1..=SPREAD` ticks (like
//! TIME-WAIT / RTO timers), payload is a `u32` id. Every timed region starts
//! with an empty, pre-sized structure (allocation and drop are not timed).
//!
//! * `schedule_expire`: insert all timers, then a driver advances time one
//!   tick at a time up to `SPREAD` and pops every due timer at each tick.
//!   - wheel: `insert`, then `poll(now)` until `None` for each tick.
//!   - binary_heap: `push(Reverse((deadline, id)))`, then `pop` while
//!     `peek` is due, for each tick.
//!   - delay_queue: `insert_at(id, start + deadline ms)` inside a
//!     current-thread runtime with a paused clock; each tick is
//!     `tokio::time::advance(1 ms).await` followed by `poll_expired` (via
//!     `next().now_or_never()`) until it is pending. Includes the tokio time
//!     driver work that `advance` triggers.
//! * `schedule_cancel`: insert all timers, then cancel all of them in a
//!   random order.
//!   - wheel: `insert`, then `remove(key)`.
//!   - delay_queue: `insert_at`, then `remove(&key)`.
//!   - binary_heap_lazy_drain: lazy deletion: `push`, cancel sets a
//!     tombstone `cancelled[id] = true`, then the heap is drained with `pop`
//!     (skipping tombstones), since that work is only deferred and the
//!     memory stays held until it is done.
//!   - binary_heap_lazy_no_drain: the same without the drain: cancel is
//!     only the tombstone write, and the heap still holds every entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
use futures::{FutureExt, StreamExt};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use teardown_engine::wheel::Wheel;
use tokio_util::time::DelayQueue;

const SPREAD: u64 = 60_000;
const SIZES: [usize; 2] = [100_000, 1_000_000];

struct Input {
    deadlines: Vec<u64>,
    /// Random permutation of `0..n`: the cancel order.
    order: Vec<u32>,
}

fn input(n: usize) -> Input {
    let mut rng = ChaCha8Rng::seed_from_u64(0x7ea4d0);
    let deadlines = (0..n).map(|_| rng.gen_range(1..=SPREAD)).collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut rng);
    Input { deadlines, order }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn wheel_expire(inp: &Input) -> Duration {
    let mut w = Wheel::with_capacity(inp.deadlines.len());
    let t = Instant::now();
    for (id, &d) in inp.deadlines.iter().enumerate() {
        w.insert(d, id as u32);
    }
    let mut fired = 0usize;
    for now in 1..=SPREAD {
        while let Some(e) = w.poll(now) {
            black_box(e);
            fired += 1;
        }
    }
    let el = t.elapsed();
    assert_eq!(fired, inp.deadlines.len());
    el
}

fn heap_expire(inp: &Input) -> Duration {
    let mut h = BinaryHeap::with_capacity(inp.deadlines.len());
    let t = Instant::now();
    for (id, &d) in inp.deadlines.iter().enumerate() {
        h.push(Reverse((d, id as u32)));
    }
    let mut fired = 0usize;
    for now in 1..=SPREAD {
        while h.peek().is_some_and(|Reverse((d, _))| *d <= now) {
            black_box(h.pop());
            fired += 1;
        }
    }
    let el = t.elapsed();
    assert_eq!(fired, inp.deadlines.len());
    el
}

fn delay_queue_expire(rt: &tokio::runtime::Runtime, inp: &Input) -> Duration {
    rt.block_on(async {
        let mut q = DelayQueue::with_capacity(inp.deadlines.len());
        let start = tokio::time::Instant::now();
        let t = Instant::now();
        for (id, &d) in inp.deadlines.iter().enumerate() {
            q.insert_at(id as u32, start + Duration::from_millis(d));
        }
        let mut fired = 0usize;
        for _ in 1..=SPREAD {
            tokio::time::advance(Duration::from_millis(1)).await;
            while let Some(Some(e)) = q.next().now_or_never() {
                black_box(e);
                fired += 1;
            }
        }
        let el = t.elapsed();
        assert_eq!(fired, inp.deadlines.len());
        el
    })
}

fn wheel_cancel(inp: &Input) -> Duration {
    let mut w = Wheel::with_capacity(inp.deadlines.len());
    let mut keys = Vec::with_capacity(inp.deadlines.len());
    let t = Instant::now();
    for (id, &d) in inp.deadlines.iter().enumerate() {
        keys.push(w.insert(d, id as u32));
    }
    for &i in &inp.order {
        black_box(w.remove(keys[i as usize]));
    }
    let el = t.elapsed();
    assert!(w.is_empty());
    el
}

fn heap_cancel(inp: &Input, drain: bool) -> Duration {
    let n = inp.deadlines.len();
    let mut h = BinaryHeap::with_capacity(n);
    let mut cancelled = vec![false; n];
    let t = Instant::now();
    for (id, &d) in inp.deadlines.iter().enumerate() {
        h.push(Reverse((d, id as u32)));
    }
    for &i in &inp.order {
        cancelled[i as usize] = true;
    }
    if drain {
        while let Some(Reverse((_, id))) = h.pop() {
            // Every entry is a tombstone here; a live one would fire.
            black_box(cancelled[id as usize]);
        }
    }
    let el = t.elapsed();
    black_box((&h, &cancelled));
    el
}

fn delay_queue_cancel(rt: &tokio::runtime::Runtime, inp: &Input) -> Duration {
    rt.block_on(async {
        let mut q = DelayQueue::with_capacity(inp.deadlines.len());
        let mut keys = Vec::with_capacity(inp.deadlines.len());
        let start = tokio::time::Instant::now();
        let t = Instant::now();
        for (id, &d) in inp.deadlines.iter().enumerate() {
            keys.push(q.insert_at(id as u32, start + Duration::from_millis(d)));
        }
        for &i in &inp.order {
            black_box(q.remove(&keys[i as usize]));
        }
        let el = t.elapsed();
        assert!(q.is_empty());
        el
    })
}

/// Runs `f` once per iteration and sums the timed regions it reports.
fn custom(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

/// A group of whole-run timings: few, flat samples of a second or two each.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn schedule_expire(c: &mut Criterion) {
    let rt = paused_runtime();
    let mut g = group(c, "schedule_expire");
    for n in SIZES {
        let inp = input(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("wheel", n), |b| {
            b.iter_custom(|it| custom(it, || wheel_expire(&inp)))
        });
        g.bench_function(BenchmarkId::new("binary_heap", n), |b| {
            b.iter_custom(|it| custom(it, || heap_expire(&inp)))
        });
        g.bench_function(BenchmarkId::new("delay_queue", n), |b| {
            b.iter_custom(|it| custom(it, || delay_queue_expire(&rt, &inp)))
        });
    }
    g.finish();
}

fn schedule_cancel(c: &mut Criterion) {
    let rt = paused_runtime();
    let mut g = group(c, "schedule_cancel");
    for n in SIZES {
        let inp = input(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("wheel", n), |b| {
            b.iter_custom(|it| custom(it, || wheel_cancel(&inp)))
        });
        g.bench_function(BenchmarkId::new("binary_heap_lazy_drain", n), |b| {
            b.iter_custom(|it| custom(it, || heap_cancel(&inp, true)))
        });
        g.bench_function(BenchmarkId::new("binary_heap_lazy_no_drain", n), |b| {
            b.iter_custom(|it| custom(it, || heap_cancel(&inp, false)))
        });
        g.bench_function(BenchmarkId::new("delay_queue", n), |b| {
            b.iter_custom(|it| custom(it, || delay_queue_cancel(&rt, &inp)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = schedule_expire, schedule_cancel
}
criterion_main!(benches);
