//! One server host's inputs, recorded from a simulation and replayed into a
//! fresh host: the engine alone on one table of the run's size, without the
//! client host, the link or the applications that made the inputs.
//!
//! A one-table run (`--shards 1`) does both ends of every connection on one
//! core, so its teardowns/s is not what one core does with a table of that
//! size. The replay is: the server's segments, timer instants, application
//! calls and drains, in the order the simulation made them, read from a
//! buffer as a driver reads its receive ring, with the look-ahead the
//! simulator's link gives the host (the bucket of the input four on, the
//! entry of the one two on, where those are segments). The engine is deterministic, so the replayed host ends with the
//! recorded host's counters, which [`replay`] checks. With
//! `--sequential-shards` each shard's server host is recorded and they are
//! replayed one after another ([`replay_all`]): the engine alone on a table
//! `--shards` times smaller, beside the one-table figure.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use teardown_engine::driver::prefetch_segments;
use teardown_engine::host::{Event, Host};
use teardown_engine::segment::Segment;
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;
use teardown_engine::{Advance, Config, Stats};

use crate::alloc;

use super::reuse::Reuse;
use super::shard::{Shard, SERVER_PORT};
use super::SimConfig;

/// What the simulation did to the server host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Call {
    Segment(Segment),
    /// The host's timers were due (`Advance::new(now, now).finish`).
    Timers,
    Send(Tuple, u32),
    SendClose(Tuple, u32),
    Close(Tuple),
    Forget(Tuple),
}

/// After an input, the driver drained the host's events ([`DRAIN_EVENTS`],
/// by `swap_events`), then its transmits ([`DRAIN_TRANSMITS`]). Where the
/// drains fall matters: a pure ACK still queued is replaced by the next
/// segment of its connection, and the queues give their memory back only
/// when drained.
pub const DRAIN_EVENTS: u8 = 1;
pub const DRAIN_TRANSMITS: u8 = 2;

/// One input at its instant, and the drains that followed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Input {
    pub at: Time,
    pub call: Call,
    pub drains: u8,
}

/// A server host's configuration and everything it was given.
#[derive(Debug)]
pub struct Recording {
    pub cfg: Config,
    /// The table size the host was made for (`Host::with_capacity`).
    pub capacity: usize,
    /// Whether the simulator's link looked ahead for the host (a big
    /// shard), and whether it had the host take hints whatever its table's
    /// size (`Host::set_prefetch`).
    pub look_ahead: bool,
    pub prefetch_always: bool,
    pub inputs: Vec<Input>,
    /// The recorded host's counters and population at the end.
    pub stats: Stats,
    pub population: Vec<usize>,
    /// The run's connections opened and not leaked: its teardowns.
    pub completed: u64,
    /// The run's connections left open at its end.
    pub leaked: u64,
}

/// Where a recording is kept while the shard runs. The segments delivered
/// to the server are not here: a recording marks every connection as
/// `--pcap-sample` marks its sample, and `Shard::deliver` keeps them with the
/// captured ones (a test of its own on every delivery cost the default run
/// 7–12 % of its time, recording or not). Each call and drain here says how
/// many segments had been captured before it, and [`Recorder::inputs`] puts
/// the two in their order again.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    marks: Vec<Mark>,
}

/// A call at `at` (None: drains alone), after the first `segments` captured
/// segments, and the drains that followed it.
#[derive(Debug)]
struct Mark {
    segments: usize,
    at: Time,
    call: Option<Call>,
    drains: u8,
}

impl Recorder {
    /// Notes `call`; its growth is the simulator's ([`alloc::outside`]):
    /// calls are noted within a run of the host's calls, in its scope.
    pub(super) fn push(&mut self, at: Time, call: Call, segments: usize) {
        let marks = &mut self.marks;
        alloc::outside(|| {
            marks.push(Mark {
                segments,
                at,
                call: Some(call),
                drains: 0,
            })
        });
    }

    /// A drain after the last input: the last call, or a segment captured
    /// since (a drain before any input finds nothing to drain).
    pub(super) fn drained(&mut self, what: u8, segments: usize) {
        match self.marks.last_mut() {
            Some(m) if m.segments == segments => m.drains |= what,
            _ => {
                let marks = &mut self.marks;
                alloc::outside(|| {
                    marks.push(Mark {
                        segments,
                        at: Time::ZERO,
                        call: None,
                        drains: what,
                    })
                });
            }
        }
    }

    /// The inputs in the order the host had them: the captured segments
    /// (at their instants) merged with the calls and drains.
    fn inputs(self, captured: &[(Time, Segment)]) -> Vec<Input> {
        let segment = |&(at, seg): &(Time, Segment)| Input {
            at,
            call: Call::Segment(seg),
            drains: 0,
        };
        let mut out: Vec<Input> = Vec::with_capacity(captured.len() + self.marks.len());
        let mut next = 0;
        for m in self.marks {
            let upto = m.segments.min(captured.len());
            out.extend(captured[next.min(upto)..upto].iter().map(segment));
            next = next.max(upto);
            match m.call {
                Some(call) => out.push(Input {
                    at: m.at,
                    call,
                    drains: m.drains,
                }),
                None => {
                    if let Some(last) = out.last_mut() {
                        last.drains |= m.drains;
                    }
                }
            }
        }
        out.extend(captured[next..].iter().map(segment));
        out
    }
}

/// Runs `cfg` and records its server hosts, in the order the run has
/// them: the one host of a one-table run (`--shards 1`), or each shard's
/// with `--sequential-shards`, where every shard is a run of its own whose
/// table holds its share of the connections.
pub fn record_servers(cfg: &SimConfig) -> anyhow::Result<Vec<Recording>> {
    ensure!(
        cfg.shards == 1 || !cfg.resident,
        "recording the server hosts needs one host at a time: --shards 1 or --sequential-shards"
    );
    ensure!(
        cfg.pcap_sample == 0,
        "a recording marks every connection as --pcap-sample marks its sample: not both"
    );
    let done = AtomicU64::new(0);
    let scope_base = crate::alloc::reserve_scopes(2 * cfg.shards as u16);
    // As `threads::one_at_a_time` runs them: each shard in the buffers the
    // last one handed on.
    let mut reuse = if cfg.resident {
        Reuse::none()
    } else {
        Reuse::sequential()
    };
    let mut recs = Vec::with_capacity(cfg.shards as usize);
    for k in 0..cfg.shards {
        let rec;
        (rec, reuse) = record_shard(cfg, k, scope_base, &done, reuse)?;
        recs.push(rec);
    }
    Ok(recs)
}

/// Runs shard `k` of `cfg` to its end and records its server host.
fn record_shard(
    cfg: &SimConfig,
    k: u32,
    scope_base: u16,
    done: &AtomicU64,
    reuse: Reuse,
) -> anyhow::Result<(Recording, Reuse)> {
    let mut shard = Shard::new(cfg, k, scope_base, done, reuse);
    shard.record = Some(Box::default());
    // Every slot's segments to the server are noted where the captured
    // ones are (`Shard::deliver`).
    shard.capture_all();
    if cfg.resident {
        // The one shard is all its thread holds; one at a time, the
        // simulator asks no shard to look ahead.
        super::resident::look_ahead_if_big(std::slice::from_mut(&mut shard));
    }
    let server_cfg = shard.server.config().clone();
    // The size `Shard::new` made the server's table for.
    let capacity = shard.live_cap() as usize;
    let (look_ahead, prefetch_always) = (shard.ahead, shard.server.prefetches_always());
    shard.run_events();
    let recorder = shard.record.take().context("the recorder")?;
    let inputs = recorder.inputs(&std::mem::take(&mut shard.res.capture));
    let stats = *shard.server.stats();
    let population = State::ALL
        .iter()
        .map(|s| shard.server.population(*s))
        .collect();
    let (result, reuse) = shard.end_reusing();
    let rec = Recording {
        cfg: server_cfg,
        capacity,
        look_ahead,
        prefetch_always,
        inputs,
        stats,
        population,
        completed: result.opened - result.leaked,
        leaked: result.leaked,
    };
    Ok((rec, reuse))
}

/// What a replay did.
#[derive(Debug)]
pub struct Replayed {
    /// The replay's own wall time: the inputs handed to the host and its
    /// output drained, not the host's construction or drop.
    pub elapsed: Duration,
    /// The most entries the host held, at a drain.
    pub peak_entries: usize,
    pub segments: u64,
    /// The recorded run's teardowns ([`Recording::completed`]).
    pub teardowns: u64,
}

impl Replayed {
    /// Teardowns per second of `secs` (a replay's time, or a median of them).
    pub fn rate(&self, secs: f64) -> f64 {
        self.teardowns as f64 / secs.max(f64::MIN_POSITIVE)
    }
}

/// Replays `rec` into a fresh host and checks that it ends as the recorded
/// one did. Never inlined, so that a profiler can count it alone
/// (`valgrind --tool=callgrind --toggle-collect='teardown::sim::record::replay'`).
#[inline(never)]
pub fn replay(rec: &Recording) -> anyhow::Result<Replayed> {
    let mut host = Host::with_capacity(rec.cfg.clone(), rec.capacity);
    host.listen(SERVER_PORT);
    host.set_prefetch(rec.prefetch_always);
    let mut events: Vec<Event> = Vec::new();
    let mut peak_entries = 0;
    let mut segments = 0;
    let inputs = &rec.inputs;
    let start = Instant::now();
    for (i, input) in inputs.iter().enumerate() {
        if rec.look_ahead {
            // The link's look-ahead, over the recorded segments.
            prefetch_segments(&host, |k| match inputs.get(i + k) {
                Some(Input {
                    call: Call::Segment(seg),
                    ..
                }) => Some(seg),
                _ => None,
            });
        }
        let now = input.at;
        match &input.call {
            Call::Segment(seg) => {
                segments += 1;
                host.handle(now, seg);
            }
            Call::Timers => drop(Advance::new(now, now).finish(&mut [&mut host])),
            Call::Send(t, n) => drop(host.send(now, *t, *n)),
            Call::SendClose(t, n) => drop(host.send_close(now, *t, *n)),
            Call::Close(t) => drop(host.close(now, *t)),
            Call::Forget(t) => drop(host.forget(t)),
        }
        if input.drains & DRAIN_EVENTS != 0 && host.has_events() {
            host.swap_events(&mut events);
        }
        if input.drains & DRAIN_TRANSMITS != 0 {
            drop(host.transmits());
            peak_entries = peak_entries.max(host.len());
        }
    }
    let elapsed = start.elapsed();
    ensure!(
        *host.stats() == rec.stats,
        "the replayed host's counters differ from the recorded host's:\n{:?}\n{:?}",
        host.stats(),
        rec.stats
    );
    let population: Vec<usize> = State::ALL.iter().map(|s| host.population(*s)).collect();
    ensure!(
        population == rec.population,
        "the replayed host's population differs: {population:?} against {:?}",
        rec.population
    );
    Ok(Replayed {
        elapsed,
        peak_entries,
        segments,
        teardowns: rec.completed,
    })
}

/// Replays each of `recs` in turn, each into a fresh host, as
/// `--sequential-shards` runs its shards: their times, segments and
/// teardowns summed, the largest table any held.
pub fn replay_all(recs: &[Recording]) -> anyhow::Result<Replayed> {
    let mut all = Replayed {
        elapsed: Duration::ZERO,
        peak_entries: 0,
        segments: 0,
        teardowns: 0,
    };
    for (k, rec) in recs.iter().enumerate() {
        let r = replay(rec).with_context(|| format!("shard {k}"))?;
        all.elapsed += r.elapsed;
        all.peak_entries = all.peak_entries.max(r.peak_entries);
        all.segments += r.segments;
        all.teardowns += r.teardowns;
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
