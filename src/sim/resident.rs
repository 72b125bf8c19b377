//! A thread's shards all live at once, advanced together in simulated-time order.
//!
//! Every shard's tables stay in memory for the whole run, so `--concurrency
//! 1000000` means a million entries resident across the thread's tables, as on
//! a host with a million connections, and the engine's throughput is measured
//! against tables of that size, not against one shard's cache-sized share.
//! One event loop over the shards (a min-heap of their next events), as the
//! service's worker is one loop over its connections. Shards are independent
//! simulations, so the order in which shards' events interleave changes nothing
//! in any shard: the report is the same as one shard at a time, but for the
//! wall clock and the memory figures.

use std::cmp::Reverse;
use std::collections::binary_heap::{BinaryHeap, PeekMut};

use super::result::ShardResult;
use super::shard::{Due, Shard};
use super::slots::PREFETCH_SLOTS_FROM;
use crossbeam::channel::Sender;
use teardown_engine::time::Time;

/// Runs `shards` together to their ends, sending each result as its shard
/// finishes; returns the most entries the shards' tables held at once.
pub fn run(shards: Vec<Shard<'_>>, results: &Sender<(u32, ShardResult)>) -> u64 {
    let mut next = BinaryHeap::new();
    let mut live = Vec::with_capacity(shards.len());
    let mut entries = 0u64;
    for (i, mut s) in shards.into_iter().enumerate() {
        s.start();
        entries += s.entries();
        live.push(Some(s));
        match live[i].as_ref().and_then(Shard::next_event) {
            Some((t, due)) => next.push(Reverse((t, i, due))),
            None => entries -= finish(&mut live[i], results),
        }
    }
    let mut peak = entries;
    // The earliest shard steps on, without the heap, while its next event
    // still comes before every other shard's (a burst of events at one
    // instant is one shard's run); then its entry is replaced in place (one
    // sift), not popped and pushed.
    loop {
        let rival = runner_up(&next);
        let Some(mut top) = next.peek_mut() else {
            break;
        };
        let Reverse((mut t, i, mut due)) = *top;
        let Some(s) = live[i].as_mut() else {
            PeekMut::pop(top);
            continue;
        };
        let ahead = loop {
            // `entries` is the sum of the shards' counts, each step adding
            // its shard's change: never below zero, so a plain add (the
            // saturating one cost ten instructions an event).
            let change = s.step(t, due);
            peak = peak.max(entries.wrapping_add_signed(change.high));
            entries = entries.wrapping_add_signed(change.net);
            match s.next_event() {
                // Shard indices differ, so (time, index) decides the order.
                Some(n) if rival.is_none_or(|(rt, ri)| (n.0, i) < (rt, ri)) => (t, due) = n,
                other => break other,
            }
        };
        match ahead {
            Some((t, due)) => *top = Reverse((t, i, due)),
            None => {
                PeekMut::pop(top);
                entries -= finish(&mut live[i], results);
            }
        }
    }
    peak
}

/// Turns on every shard's prefetching when the thread's working set is all
/// its shards' tables at once and they hold as many live connections as the
/// one table a host hints for by itself (1 << 15), or more: together they
/// outgrow the caches, even when each shard alone is far smaller. For
/// `threads.rs` to call before [`run`].
pub fn look_ahead_if_big(shards: &mut [Shard<'_>]) {
    let held: u64 = shards.iter().map(Shard::live_cap).sum();
    if held >= PREFETCH_SLOTS_FROM as u64 {
        shards.iter_mut().for_each(Shard::look_ahead);
    }
}

/// The (time, shard) of the heap's second-earliest entry: one of the top's
/// two children.
fn runner_up(heap: &BinaryHeap<Reverse<(Time, usize, Due)>>) -> Option<(Time, usize)> {
    let kids = heap.as_slice().get(1..).unwrap_or_default();
    // Reversed entries: the greatest is the earliest.
    kids.iter().take(2).max().map(|Reverse((t, i, _))| (*t, *i))
}

/// Ends the shard in `slot`, sends its result, and returns the entries it held.
fn finish(slot: &mut Option<Shard<'_>>, results: &Sender<(u32, ShardResult)>) -> u64 {
    let Some(s) = slot.take() else {
        return 0;
    };
    let (index, held) = (s.index(), s.entries());
    // A closed receiver means the run is being torn down: nothing to report to.
    let _ = results.send((index, s.end()));
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::reuse::Reuse;
    use crate::sim::{SimArgs, SimConfig};
    use std::sync::atomic::AtomicU64;

    /// 64 shards of 313 live connections each are too small to prefetch
    /// alone, and so are 64 of 10 k each; held on one thread, only the
    /// second (640 k in all, not 20 k) outgrow the caches together: their
    /// deliveries look ahead and both hosts of each take every hint.
    #[test]
    fn the_threads_shards_together_decide_the_look_ahead() {
        for (concurrency, want) in [(20_000, false), (640_000, true)] {
            let args = SimArgs {
                connections: concurrency,
                concurrency,
                threads: Some(1),
                ..SimArgs::default()
            };
            let cfg = SimConfig::from_args(&args).expect("a valid config");
            let done = AtomicU64::new(0);
            let base = crate::alloc::reserve_scopes(2 * cfg.shards as u16);
            let mut shards: Vec<_> = (0..cfg.shards)
                .map(|k| Shard::new(&cfg, k, base, &done, Reuse::none()))
                .collect();
            assert!(
                shards.iter().all(|s| !s.ahead),
                "none alone at {concurrency}"
            );
            look_ahead_if_big(&mut shards);
            assert!(shards.iter().all(|s| s.ahead == want), "{concurrency}");
            let hinted = |s: &Shard| [&s.server, &s.client].map(|h| h.prefetches_always());
            assert!(
                shards.iter().all(|s| hinted(s) == [want; 2]),
                "hosts at {concurrency}"
            );
        }
    }
}
