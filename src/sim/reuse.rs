//! What a finished shard hands to the next one its thread runs, with
//! `--sequential-shards`: the link's queues and the per-slot arrays, drained
//! or cleared, so the next shard starts with buffers of the size its waves
//! grow them to, not empty ones it regrows by doubling.
//!
//! Only buffers no host ever holds go on: the hosts' are charged to each
//! shard's allocator scopes, which the report's memory figures read, so
//! every shard builds its hosts afresh (and the events buffer, which the
//! shard swaps with its hosts', is new too). A shard run on handed-on buffers
//! reports exactly what a fresh one does (tested below).

use super::queue::Queue;
use super::shard::Side;
use super::slots::Slot;

/// Buffers handed from one shard to the next; [`Reuse::none`] for shards
/// that are live together (the resident mode), which keep nothing past
/// their end.
#[derive(Default)]
pub struct Reuse {
    /// Whether the shard given this hands its buffers on.
    pub(super) on: bool,
    pub(super) to_server: Option<Queue>,
    pub(super) to_client: Option<Queue>,
    pub(super) slots: Vec<Slot>,
    pub(super) opened_ms: Vec<u32>,
}

impl Reuse {
    /// For a shard that shares its thread with others at once.
    pub fn none() -> Reuse {
        Reuse::default()
    }

    /// For the first of a thread's shards run one after another: nothing
    /// to hand over yet, but the shard keeps its buffers for the next.
    pub fn sequential() -> Reuse {
        Reuse {
            on: true,
            ..Reuse::default()
        }
    }

    /// `slots` zeroed slots, in the last shard's buffer when there is one.
    pub(super) fn slots(&mut self, slots: usize) -> Vec<Slot> {
        let mut v = std::mem::take(&mut self.slots);
        v.clear();
        v.resize(slots, Slot::default());
        v
    }

    /// `slots` open times, in the last shard's buffer when there is one,
    /// with the times it left there: a shard reads a slot's open time only
    /// while the slot has an open end (the sweep), which only a connection
    /// it opened there has, and the open wrote the time first. Zeroed, the
    /// buffer cost a memset of 4 bytes a slot at every shard.
    pub(super) fn opened_ms(&mut self, slots: usize) -> Vec<u32> {
        let mut v = std::mem::take(&mut self.opened_ms);
        v.resize(slots, 0);
        v
    }

    /// The link's queue in one direction: the last shard's, drained, or a
    /// new one.
    pub(super) fn queue(&mut self, to: Side, jitter: bool, live: usize) -> Queue {
        if !self.on {
            return Queue::new(jitter, live);
        }
        let old = match to {
            Side::Server => self.to_server.take(),
            Side::Client => self.to_client.take(),
        };
        Queue::handed_on(old, jitter, live)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;
    use crate::sim::shard::Shard;
    use crate::sim::{SimArgs, SimConfig};

    /// Shard 1 run in the buffers shard 0 handed on reports what it does
    /// run fresh, field for field, with and without jitter (a FIFO and a
    /// heap), through loss, runaways and released queues, also when shard 0
    /// was cut short (`--duration`) with segments in flight.
    #[test]
    fn a_shard_on_handed_on_buffers_reports_what_a_fresh_one_does() {
        let cut = Some(Duration::from_millis(100));
        for (jitter, duration) in [(0, None), (3, None), (0, cut), (3, cut)] {
            let jitter = Duration::from_millis(jitter);
            let args = SimArgs {
                connections: 4_000,
                concurrency: 1_000,
                shards: 4,
                threads: Some(1),
                loss: 0.05,
                runaway_client: 0.05,
                // Runaways' peers are swept: the sweep reads open times.
                app_timeout: Duration::from_secs(1),
                jitter,
                duration,
                ..SimArgs::default()
            };
            let cfg = SimConfig::from_args(&args).expect("a valid config");
            let done = AtomicU64::new(0);
            let base = crate::alloc::reserve_scopes(2 * cfg.shards as u16);
            let run = |k, reuse| Shard::new(&cfg, k, base, &done, reuse).run();
            let (_, handed) = run(0, Reuse::sequential());
            let held = |q: &Option<Queue>| q.as_ref().map_or(0, Queue::capacity);
            assert!(held(&handed.to_server) > 0 && held(&handed.to_client) > 0);
            assert!(handed.slots.capacity() > 0 && handed.opened_ms.capacity() > 0);
            let in_flight = [&handed.to_server, &handed.to_client]
                .iter()
                .any(|q| q.as_ref().is_some_and(|q| q.next_us() != u64::MAX));
            assert_eq!(in_flight, duration.is_some(), "{jitter:?} {duration:?}");
            // Open times left over read as any other value would: a shard
            // that read one before writing it would close connections early
            // (an open time taken for now) or late.
            let mut handed = handed;
            for (i, t) in handed.opened_ms.iter_mut().enumerate() {
                *t = (i as u32).wrapping_mul(7_919) % 20_000;
            }
            let (reused, again) = run(1, handed);
            assert!(again.on && held(&again.to_server) > 0);
            let (fresh, none) = run(1, Reuse::none());
            assert!(!none.on && none.to_server.is_none() && none.slots.is_empty());
            assert!(fresh.opened > 0 && fresh.dropped > 0, "{jitter:?}");
            let case = format!("{jitter:?} {duration:?}");
            assert_eq!(format!("{reused:?}"), format!("{fresh:?}"), "{case}");
        }
    }
}
