//! One virtual shard of the simulation: a server host, a client host, the two
//! directions of the link between them, and the workload that drives both.
//!
//! A shard is a discrete-event simulation on its own virtual clock. Its next event
//! is the earliest of: a segment arriving in either direction, either host's next
//! timer, or the next scheduled open. Ties go in that fixed order, so a shard's run
//! depends only on its seed. Shards share nothing and may run on any thread.
//!
//! This module holds the shard and its event loop; the link's two directions
//! are in [`super::deliver`], the applications in [`super::app`], the attacker
//! in [`super::attack`] and what a shard hands back in [`super::result`]; its
//! construction is in `build.rs`.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;

use rand_chacha::ChaCha8Rng;

use crate::alloc;
use crate::link::Loss;
use teardown_engine::host::{CloseReason, Event, Host};
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;
use teardown_engine::Advance;

use super::app_timers::AppTimers;
use super::queue::Queue;
use super::record::{Call, Recorder};
use super::result::ShardResult;
use super::reuse::Reuse;
use super::slots::{Slot, SlotMap};
use super::spare::Spare;
use super::{micros_or_never, SimConfig};

mod build;

/// The simulated server's address (all shards: one host).
pub const SERVER_IP: u32 = u32::from_be_bytes([10, 255, 0, 1]);
pub const SERVER_PORT: u16 = 80;

/// What a step did to the shard's two tables: the change in entries, and the
/// highest that change stood at within the step (after one of its segments),
/// at least zero: the entries before the step are already in the peak.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub net: i64,
    pub high: i64,
}

/// A shard's next event, as [`Shard::next_event`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// A segment arrives at the server, or at a client.
    ToServer,
    ToClient,
    /// A host's timers are due.
    ServerTimers,
    ClientTimers,
    /// The open schedule (`--rate`) opens more connections.
    Open,
    Attack,
    /// The applications' idle sweep.
    Sweep,
    /// `--duration` is over: every application closes.
    CloseAll,
    /// Passive closers' applications close (`--close-delay`).
    Close,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

pub struct Shard<'a> {
    pub(super) cfg: &'a SimConfig,
    pub(super) index: u32,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: Time,
    pub(super) server: Host,
    pub(super) client: Host,
    pub(super) server_scope: u16,
    pub(super) client_scope: u16,
    pub(super) to_server: Queue,
    pub(super) to_client: Queue,
    /// A drained buffer either queue may take for its next burst.
    pub(super) spare: Spare,
    pub(super) loss_to_server: Loss,
    pub(super) loss_to_client: Loss,
    pub(super) slots: Vec<Slot>,
    pub(super) slot_map: SlotMap,
    /// Whether a delivered segment's slot may matter to its delivery: a
    /// runaway end may vanish, a slot be captured (`--pcap-sample`, a
    /// recording), or the server answer an attacker's spoofed address. In
    /// other runs a delivery skips the slot's lookup.
    pub(super) marks: bool,
    /// Whether deliveries look ahead in the queues and connects hint the
    /// client host: this shard's slots pass [`PREFETCH_SLOTS_FROM`], or the
    /// thread's shards together outgrow the cache ([`Shard::look_ahead`]).
    ///
    /// [`PREFETCH_SLOTS_FROM`]: super::slots::PREFETCH_SLOTS_FROM
    pub(super) ahead: bool,
    /// Client addresses of this shard (`10.<shard>.0.0` upwards), each with the
    /// whole port range, and the next one to connect from.
    pub(super) client_ips: u32,
    pub(super) next_ip: u32,
    /// The marks every slot opened takes, when no random draw decides them
    /// ([`fixed_flags`](super::open::fixed_flags)).
    pub(super) fixed_flags: Option<u8>,
    /// The last events taken from a host (`after`), swapped for its queue.
    pub(super) events: Vec<Event>,
    /// The one-way delay in µs, as `Time + Duration` adds it.
    pub(super) delay_us: u64,
    /// When a segment sent now arrives without jitter: worked out once a
    /// step (`Time + Duration`, on `delay_us`), not at every transmit.
    pub(super) arrival: Time,
    /// `--jitter` is set, and `--pcap-sample`: both read for every transmit.
    pub(super) jitter: bool,
    pub(super) capturing: bool,
    /// Each host's `poll_timeout()`, refreshed at the end of every step (and
    /// of `start`) in which the shard called into that host: only
    /// `next_event` reads them, and a step calls a host several times.
    /// In µs, `u64::MAX` for none.
    pub(super) server_deadline: u64,
    pub(super) client_deadline: u64,
    /// Which hosts were called since their deadline was last refreshed.
    pub(super) stale: [bool; 2],
    pub(super) to_open: u64,
    /// Most connections the client application holds at once: this shard's
    /// share of `--concurrency` (shared out as the connections are), within
    /// `to_open`.
    pub(super) live_cap: u64,
    /// Opens tried: the index into the `--rate` schedule.
    pub(super) attempts: u64,
    pub(super) opened: u64,
    /// Connections the client application holds now ([`HELD`]).
    ///
    /// [`HELD`]: super::slots::HELD
    pub(super) live: u64,
    /// The next open, tw-fill's close-all, the next attack and the sweep.
    pub(super) apps: AppTimers,
    /// When this shard's first open is due (`SimConfig::stagger`).
    pub(super) opens_from: Time,
    /// When each slot's current connection was opened (ms stamp), for the
    /// applications' idle timeout.
    pub(super) opened_ms: Vec<u32>,
    /// Runaway passive closers waiting for their delayed ACK of the peer's
    /// FIN to leave before they vanish.
    pub(super) vanish_after_ack: Vec<(Side, Tuple, usize)>,
    /// Passive closers' closes due `--close-delay` after the peer's FIN, in
    /// time order (one delay for all).
    pub(super) delayed_closes: VecDeque<(Time, Side, Tuple, u32)>,
    pub(super) attacks_sent: u64,
    /// Connections still to capture (--pcap-sample, shard 0 only).
    pub(super) capture_left: u64,
    pub(super) progress: &'a AtomicU64,
    pub(super) unreported: u64,
    pub(super) res: ShardResult,
    pub(super) reasons: [u64; CloseReason::ALL.len()],
    /// Entries at the last [`Shard::note_entries`].
    pub(super) entries_then: u64,
    /// Whether the shard's buffers go on to the next shard of its thread
    /// ([`Reuse`]) at its end.
    pub(super) hands_on: bool,
    /// The server host's inputs, when they are recorded for a replay.
    pub(super) record: Option<Box<Recorder>>,
}

impl<'a> Shard<'a> {
    /// The most connections this shard holds live at once.
    pub(super) fn live_cap(&self) -> u64 {
        self.live_cap
    }

    /// Prefetches from the start, whatever this shard's size: for a thread
    /// holding shards whose live connections together pass
    /// [`PREFETCH_SLOTS_FROM`], as 64 shards of 15.6 k do, each alone small
    /// enough for the caches.
    ///
    /// [`PREFETCH_SLOTS_FROM`]: super::slots::PREFETCH_SLOTS_FROM
    pub(super) fn look_ahead(&mut self) {
        self.ahead = true;
        self.server.set_prefetch(true);
        self.client.set_prefetch(true);
    }

    /// The client's view of slot `s`'s 4-tuple.
    pub(super) fn tuple(&self, s: u32) -> Tuple {
        self.slot_map.tuple(s as usize)
    }

    /// The slot of a tuple seen from the client (local = client). Bounded
    /// by `slots` itself (as long as the map's count): most callers index
    /// it next, and that index then needs no check of its own.
    #[inline]
    pub(super) fn slot_of(&self, client_view: &Tuple) -> Option<usize> {
        let s = self.slot_map.unbounded(client_view)?;
        (s < self.slots.len()).then_some(s)
    }

    /// Captures every slot from its open on, and so marks the run
    /// ([`Shard::marks`]): a delivery looks its slot up to see the mark.
    pub(super) fn capture_all(&mut self) {
        self.capture_left = u64::MAX;
        self.marks = true;
    }

    /// Runs the shard to its end, alone; returns its result and the
    /// buffers it hands on.
    pub fn run(mut self) -> (ShardResult, Reuse) {
        self.run_events();
        self.end_reusing()
    }

    /// Starts the shard and handles its events until it has finished, the
    /// shard left for its owner to read before it ends.
    pub(super) fn run_events(&mut self) {
        self.start();
        while let Some((t, due)) = self.next_event() {
            self.step(t, due);
        }
    }

    /// Opens the first connections (those due at time zero).
    pub fn start(&mut self) {
        self.in_run(Side::Client, Self::open_more);
        self.refresh_deadlines();
        self.note_entries();
    }

    /// When the shard's next event is due and what it is; None once the shard
    /// has finished (or reached `--duration`). Ties go to the link, then the
    /// hosts' timers, then the applications.
    pub fn next_event(&self) -> Option<(Time, Due)> {
        let ts = self.to_server.next_us();
        let tc = self.to_client.next_us();
        let (hs, hc) = (self.server_deadline, self.client_deadline);
        let tw = self.apps.sweep_us();
        let others = ts.min(tc).min(hs).min(hc).min(self.apps.work_us());
        if others == u64::MAX
            && self.attempts == self.to_open
            && self.client.is_empty()
            && self.server.is_empty()
        {
            // Only the idle sweep is left, with nothing to sweep: done.
            return None;
        }
        let next = others.min(tw);
        if next == u64::MAX {
            return None;
        }
        let t = Time::from_micros(next);
        if self.cfg.duration.is_some_and(|d| t > Time::ZERO + d) {
            return None;
        }
        let due = if ts == next {
            Due::ToServer
        } else if tc == next {
            Due::ToClient
        } else if hs == next {
            Due::ServerTimers
        } else if hc == next {
            Due::ClientTimers
        } else if self.apps.open() == Some(t) {
            Due::Open
        } else if self.apps.close() == Some(t) {
            Due::Close
        } else if micros_or_never(self.apps.attack()) == next {
            Due::Attack
        } else if tw == next {
            Due::Sweep
        } else {
            Due::CloseAll
        };
        Some((t, due))
    }

    /// Handles the event [`Shard::next_event`] returned, and with a segment
    /// every later one its queue delivers at the same instant; returns what
    /// that did to the shard's entries.
    pub fn step(&mut self, t: Time, due: Due) -> Change {
        if self.res.series.due_by(t) {
            let s = self.sample();
            self.res.series.fill_to(t, s);
        }
        self.now = self.now.max(t);
        self.arrival = Time::from_micros(self.now.as_micros().saturating_add(self.delay_us));
        match due {
            Due::ToServer => return self.deliver_all(Side::Server),
            Due::ToClient => return self.deliver_all(Side::Client),
            Due::ServerTimers => self.fire(Side::Server),
            Due::ClientTimers => self.fire(Side::Client),
            Due::Open => {
                self.apps.set_open(None);
                self.in_run(Side::Client, Self::open_more);
            }
            Due::Attack => self.attack(),
            Due::Sweep => self.sweep(),
            Due::CloseAll => {
                self.apps.set_close_all(None);
                self.close_all();
            }
            Due::Close => self.close_delayed(),
        }
        self.refresh_deadlines();
        let net = self.note_entries();
        Change {
            net,
            high: net.max(0),
        }
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// Entries in both hosts' tables now (connections and TIME-WAIT).
    pub fn entries(&self) -> u64 {
        (self.server.len() + self.client.len()) as u64
    }

    /// Updates the shard's peak of entries; returns the change since last time.
    pub(super) fn note_entries(&mut self) -> i64 {
        let now = self.entries();
        let delta = now as i64 - self.entries_then as i64;
        self.entries_then = now;
        self.res.peak_entries = self.res.peak_entries.max(now);
        delta
    }

    /// The host on `side`.
    #[inline]
    pub(super) fn host(&self, side: Side) -> &Host {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }

    /// Runs `f` on one host with allocations charged to that host's scope;
    /// that host's deadline is refreshed at the end of the step. Inside a
    /// run of that host's calls ([`Shard::in_run`]) it is [`Shard::call`].
    #[inline]
    pub(super) fn with<R>(&mut self, side: Side, f: impl FnOnce(&mut Host, Time) -> R) -> R {
        let (host, scope) = match side {
            Side::Server => (&mut self.server, self.server_scope),
            Side::Client => (&mut self.client, self.client_scope),
        };
        let prev = alloc::enter_scope(scope);
        let r = f(host, self.now);
        alloc::enter_scope(prev);
        self.stale[side as usize] = true;
        r
    }

    /// Runs `f` as one run of calls into the host on `side`
    /// ([`alloc::enter_engine_scope`]), as a burst of deliveries is: the
    /// applications' calls into the host while they handle its events go
    /// straight in ([`Shard::call`]), where each entered and left the scope
    /// (seven instructions a call, three calls a teardown). What the
    /// simulator allocates meanwhile it charges to its own scope
    /// ([`alloc::outside`]), as in a burst. Not nested.
    #[inline(always)]
    pub(super) fn in_run<R>(&mut self, side: Side, f: impl FnOnce(&mut Self) -> R) -> R {
        let scope = match side {
            Side::Server => self.server_scope,
            Side::Client => self.client_scope,
        };
        let outer = alloc::enter_engine_scope(scope);
        self.stale[side as usize] = true;
        let r = f(self);
        alloc::enter_scope(outer);
        r
    }

    /// Runs `f` on the host on `side` from within a run of its calls (a
    /// burst, or [`Shard::in_run`]): in its scope already, its deadline
    /// marked for the refresh.
    #[inline(always)]
    pub(super) fn call<R>(&mut self, side: Side, f: impl FnOnce(&mut Host, Time) -> R) -> R {
        match side {
            Side::Server => f(&mut self.server, self.now),
            Side::Client => f(&mut self.client, self.now),
        }
    }

    /// Notes `call` on the server for the replay, when one is recorded.
    #[inline(always)]
    pub(super) fn note(&mut self, side: Side, call: impl FnOnce() -> Call) {
        if let (Side::Server, Some(r)) = (side, &mut self.record) {
            r.push(self.now, call(), self.res.capture.len());
        }
    }

    /// Notes that the server's queues `what` were drained, when recorded.
    #[inline(always)]
    pub(super) fn note_drained(&mut self, side: Side, what: u8) {
        if let (Side::Server, Some(r)) = (side, &mut self.record) {
            r.drained(what, self.res.capture.len());
        }
    }

    /// Asks each host called since the last refresh for its next deadline.
    pub(super) fn refresh_deadlines(&mut self) {
        if std::mem::take(&mut self.stale[Side::Server as usize]) {
            self.server_deadline = micros_or_never(self.server.poll_timeout());
        }
        if std::mem::take(&mut self.stale[Side::Client as usize]) {
            self.client_deadline = micros_or_never(self.client.poll_timeout());
        }
    }

    /// A host's timers are the next event: it fires what is due now, then its
    /// events and segments are handled before any other event of this instant.
    pub(super) fn fire(&mut self, side: Side) {
        self.note(side, || Call::Timers);
        self.in_run(side, |s| {
            s.call(side, |h, now| Advance::new(now, now).finish(&mut [h]));
            s.after_with(side, s.sending());
        });
    }
}
