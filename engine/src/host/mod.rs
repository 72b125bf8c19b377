//! The teardown engine: one host's connections, their timers and the RFC 9293
//! state machine, with Linux's rules where the RFC leaves room.
//!
//! Sans-IO, shaped like quinn-proto's `Endpoint`: the driver passes segments in
//! with [`Host::handle`], fires timers with [`Host::handle_timeout`] at
//! [`Host::poll_timeout`], calls the application's side ([`Host::connect`],
//! [`Host::close`], ...), and drains [`Host::transmits`] and [`Host::events`].
//! The engine never reads a clock, a socket or a random source.
//!
//! The files, by concern:
//! - `mod.rs`: the [`Host`] type, its calling contract, set-up, queues and
//!   `poll_timeout`;
//! - `commit.rs`: `commit`, which applies a handler's verdict to the table;
//! - `inspect.rs`: what a driver or test may ask about one tuple;
//! - `events.rs`: what the host reports ([`Event`], [`CloseReason`], [`Stats`], [`Error`]);
//! - `app.rs`: the application's calls (connect, send, close, shutdown, abort);
//! - `ephemeral.rs`: connect() without a port: Linux's port search and `tcp_twsk_unique`;
//! - `walk.rs`: that search's walk over the range, two ports at a time;
//! - `arrive.rs`: SEGMENT ARRIVES, routed by state (RFC 9293 §3.10.7): CLOSED,
//!   LISTEN's SYN, SYN-SENT;
//! - `synchronized.rs`: SEGMENT ARRIVES in the other states, the full path;
//! - `ack.rs`: an acceptable ACK: RTT, retransmission timer, our FIN acked;
//! - `predict.rs`: header prediction, the expected ACK's short path;
//! - `orphan.rs`: the orphaned FIN-WAIT-2: a long one's full socket, then the
//!   mini-socket (`tcp_timewait_state_process`);
//! - `time_wait.rs`: TIME-WAIT's segments, entry and exit;
//! - `timers.rs`: retransmission, FIN-WAIT-2 and TIME-WAIT timeouts;
//! - `ts.rs`: timestamps (RFC 7323): our clock, PAWS, ts_recent;
//! - `output.rs`: everything the host sends;
//! - `prefetch.rs`: hints for an application's calls to come.

mod ack;
mod app;
mod arrive;
mod commit;
mod ephemeral;
mod events;
mod inspect;
mod orphan;
mod output;
mod predict;
mod prefetch;
mod recovery;
mod synchronized;
mod time_wait;
mod timers;
mod ts;
mod walk;

pub use arrive::Prefetch;
pub use events::{CloseReason, Error, Event, Role, Stats};

use crate::config::{Config, Profile};
use crate::conn::TimeoutsUs;
use crate::ports::Ports;
use crate::segment::Segment;
use crate::seq::Seq;
use crate::state::State;
use crate::table::Table;
use crate::time::Time;
use crate::tuple::{HashKey, Tuple};
use crate::wheel::Wheel;
use commit::Next;
use ts::TsKey;

/// What a segment on a TIME-WAIT entry calls for: Linux's `enum tcp_tw_status`,
/// which `tcp_timewait_state_process` returns and `tcp_v4_rcv` acts on
/// ([`Host::act_on_time_wait`] here).
enum TwVerdict {
    /// `TCP_TW_SUCCESS`: nothing to send (the timer may have been restarted).
    Success,
    /// `TCP_TW_ACK`: re-ACK <SEQ=snd_nxt><ACK=rcv_nxt>; the out-of-window rate
    /// limit has already let it through.
    Ack,
    /// An RST at rcv_nxt kills the entry (Linux deschedules it inside
    /// `tcp_timewait_state_process` and returns `TCP_TW_SUCCESS`).
    Assassinated,
    /// `TCP_TW_SYN`: a listener takes the SYN as a new incarnation (RFC 6191)
    /// whose ISS is this.
    Syn(Seq),
}

/// Capacity the transmit and event queues keep once drained: one less than
/// a power of two, so that [`Host::begin`] tests both queues at once (a
/// queue grown by doubling keeps 256, and any buffer a driver swaps in
/// below 512 is kept).
const QUEUE_KEEP: usize = (1 << 9) - 1;
const _: () = assert!((QUEUE_KEEP + 1).is_power_of_two());

/// Most timer-wheel nodes [`Host::with_capacity`] reserves (24 B each): the
/// opening burst then links its timers without regrowing and copying the
/// slab, while a host sized for millions of mostly TIME-WAIT entries (which
/// hold no wheel node) does not reserve memory it will not use.
const WHEEL_RESERVE: usize = 1 << 16;

/// How often Linux sums its orphan counts for `tcp_too_many_orphans`
/// (`TCP_ORPHAN_TIMER_PERIOD`, 100 ms).
const ORPHAN_TICK_US: u64 = 100_000;

/// A rate limit over whole seconds, for host-wide budgets.
#[derive(Default)]
struct Budget {
    second: u64,
    used: u32,
}

impl Budget {
    fn take(&mut self, now: Time, limit: u32) -> bool {
        if limit == u32::MAX {
            return true;
        }
        let s = now.as_micros() / 1_000_000;
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        self.used += 1;
        self.used <= limit
    }
}

/// One host (or one shard of it): the engine.
///
/// # Calling contract
///
/// `Host` is sans-IO, like quinn-proto's `Connection`: it never acts on its
/// own. The driver
///
/// 1. sets it up: [`Host::listen`] on each port that accepts SYNs;
/// 2. feeds it, each call with the current time `now`: arriving segments
///    ([`Host::handle`]), the application's calls ([`Host::connect`],
///    [`Host::send`], [`Host::close`], [`Host::shutdown`], [`Host::abort`]),
///    and [`Host::handle_timeout`] once the time [`Host::poll_timeout`] gave
///    has come (earlier or extra calls are harmless: no timer fires before its
///    deadline);
/// 3. after each call drains [`Host::transmits`] (segments for the wire,
///    oldest first) and [`Host::events`] (what the application learns), and
///    asks [`Host::poll_timeout`] again, since any call may arm a timer.
///
/// Undrained queues grow without bound, and a queued segment is not final: a
/// later call may fold a queued pure ACK into the connection's next segment
/// that carries the same ACK, or set FIN on its queued last data segment (as
/// Linux's delayed ACK and `tcp_send_fin` do). Drain after every call to see
/// segments as they would have left at that time. Drained queues that a burst
/// grew past 256 entries give their memory back at the next call.
///
/// # Time
///
/// `now` is the driver's clock, a [`Time`] from an origin of its choosing. It
/// must not go backwards. If a call brings a `now` earlier than one the host has
/// already seen, the host neither panics nor rewinds: the call works at the
/// latest time seen (its timer deadlines, timestamps and RTT samples are taken
/// then). [`Host::forget`] and the accessors take no time.
pub struct Host {
    cfg: Config,
    /// `cfg`'s timeouts in microseconds, for the retransmission timer's
    /// arithmetic (`cfg` does not change after construction).
    timeouts: TimeoutsUs,
    table: Table,
    wheel: Wheel<u32>,
    listening: Vec<u64>,
    out: Vec<Segment>,
    /// `out[..sent_acks]` may not be coalesced into a later segment: ACKs
    /// Linux sends on the spot (`tcp_send_ack`), not merely schedules.
    sent_acks: usize,
    events: Vec<Event>,
    population: [usize; State::COUNT],
    stats: Stats,
    challenge_budget: Budget,
    rst_budget: Budget,
    /// The latest time any call brought: `poll_timeout` never answers earlier.
    now: Time,
    /// Orphaned FIN-WAIT-2 connections as Linux's TIME-WAIT mini-sockets in
    /// substate FIN_WAIT2 (`flag::FW2_COUNTED`), which count against
    /// `tcp_max_tw_buckets`.
    fw2_orphans: usize,
    /// Connections the application closed (`flag::ORPHAN`) that are still
    /// full entries, the FIN-WAIT-2 mini-sockets among them: Linux's orphans
    /// (`tcp_orphan_count`, held against `max_orphans`) are these less
    /// `fw2_orphans`, whose full socket `tcp_time_wait` destroyed.
    orphaned: usize,
    /// The orphans as `tcp_too_many_orphans` sees them: Linux >= 5.16 sums
    /// its per-CPU counts every 100 ms (`tcp_orphan_update`) into
    /// `tcp_orphan_cache`, which close() and the retransmission timer read.
    /// Taken here when a call's time passes `orphan_tick_us`, before the
    /// call changes anything, at each multiple of [`ORPHAN_TICK_US`].
    orphan_cache: usize,
    orphan_tick_us: u64,
    /// Local ports held by active opens (Linux's bind buckets) and the
    /// ephemeral search's perturbation table.
    ports: Ports,
    /// The TSval offset's key, from `cfg.secret`.
    ts_key: TsKey,
    /// The ISN hash's key, from `cfg.secret`, its words derived once.
    isn_key: HashKey,
    /// The ISN clock ticks every 4 µs (RFC 9293's M), not every 64 ns
    /// ([`Host::isn`]).
    isn_4us: bool,
    /// Our TSval clock at `now` (`tcp_time_stamp_ts`), kept with `now`: a
    /// segment's TSval then costs no division by the configured tick (the
    /// compiler made even the 1000 µs default a 64-bit `div`).
    ts_clock: u32,
    /// `now`'s millisecond stamp ([`Time::stamp_ms`]), kept with `now` as
    /// `ts_clock` is: the retransmission stamp of each segment sent from idle
    /// reads it instead of dividing the microsecond clock again.
    now_ms: u32,
    /// Table entries from which hints ([`Host::prefetch`] and the ones in
    /// `prefetch.rs`) are taken: by default when this table alone outgrows
    /// the cache; a driver holding many tables on one thread lowers it with
    /// [`Host::set_prefetch`].
    prefetch_from: usize,
    /// For the test that runs the full path where the predicted one would
    /// go ([`Host::predicted`]).
    #[cfg(test)]
    unpredicted: bool,
}

impl Host {
    pub fn new(cfg: Config) -> Host {
        Host::with_capacity(cfg, 0)
    }

    /// A host whose table has room for `connections` entries before it grows,
    /// and its timer wheel for as many timers (a connection has at most one),
    /// up to 65,536 timers (1.5 MiB: past that the wheel grows as it needs).
    pub fn with_capacity(cfg: Config, connections: usize) -> Host {
        Host {
            table: Table::with_capacity(cfg.secret, connections).with_time_wait(cfg.time_wait),
            wheel: Wheel::with_capacity(connections.min(WHEEL_RESERVE)),
            listening: Vec::new(),
            out: Vec::new(),
            sent_acks: 0,
            events: Vec::new(),
            population: [0; State::COUNT],
            stats: Stats::default(),
            challenge_budget: Budget::default(),
            rst_budget: Budget::default(),
            now: Time::ZERO,
            fw2_orphans: 0,
            orphaned: 0,
            orphan_cache: 0,
            orphan_tick_us: ORPHAN_TICK_US,
            ports: Ports::new(cfg.ip_local_port_range, cfg.secret),
            ts_key: TsKey::new(cfg.secret),
            isn_key: HashKey::from(!cfg.secret),
            // RFC 9293 §3.4.1's M: a 4 µs timer (a wrap every 4.77 hours,
            // past its 240 s TIME-WAIT).
            isn_4us: cfg.profile == Profile::Rfc9293,
            ts_clock: 0,
            now_ms: 0,
            prefetch_from: prefetch::FROM,
            timeouts: TimeoutsUs::new(&cfg),
            #[cfg(test)]
            unpredicted: false,
            cfg,
        }
    }

    #[must_use]
    #[inline]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    #[must_use]
    #[inline]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in `state` now.
    #[must_use]
    #[inline]
    pub fn population(&self, state: State) -> usize {
        self.population[state as usize]
    }

    /// Orphans now: connections the application closed that still hold a
    /// full socket (FIN-WAIT-1, CLOSING, LAST-ACK, and the first part of a
    /// FIN-WAIT-2 whose lifetime passes TIME-WAIT's), as Linux counts them
    /// against `tcp_max_orphans` (sockstat's `orphan`).
    #[must_use]
    #[inline]
    pub fn orphans(&self) -> usize {
        self.orphaned - self.fw2_orphans
    }

    /// Connections of every state.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap bytes of the table and the timers (capacity-based; the counting
    /// allocator checks it in the tests).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.wheel.heap_bytes()
            + self.listening.capacity() * 8
            + self.ports.heap_bytes()
    }

    /// Accept SYNs to `port` (a listening socket). The port bitmap grows only
    /// up to the word of the highest port listened on (at most 8 KiB): a host
    /// that only connects pays nothing, one that listens on port 80 a few
    /// words, where zeroing all 8 KiB for each of a sim's 64 hosts cost 0.5 MB.
    pub fn listen(&mut self, port: u16) {
        let word = port as usize / 64;
        if self.listening.len() <= word {
            self.listening.resize(word + 1, 0);
        }
        self.listening[word] |= 1 << (port % 64);
    }

    fn is_listening(&self, port: u16) -> bool {
        listening_on(&self.listening, port)
    }

    /// Segments to send, oldest first.
    #[must_use]
    #[inline]
    pub fn transmits(&mut self) -> std::vec::Drain<'_, Segment> {
        self.sent_acks = 0;
        self.out.drain(..)
    }

    /// Pending segments, without draining them.
    #[must_use]
    #[inline]
    pub fn pending_transmits(&self) -> &[Segment] {
        &self.out
    }

    /// Events, oldest first.
    #[must_use]
    #[inline]
    pub fn events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Takes the pending events, oldest first, by swapping the host's queue
    /// with `buf` (cleared first): a driver that handles events after it has
    /// let go of the host gets them without a copy, and the two buffers keep
    /// their capacity between calls.
    #[inline]
    pub fn swap_events(&mut self, buf: &mut Vec<Event>) {
        buf.clear();
        std::mem::swap(&mut self.events, buf);
    }

    /// Whether any event waits to be drained: a driver that moves events
    /// into its own queue skips that work when there is none.
    #[must_use]
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The earliest time at which [`Host::handle_timeout`] has work. Never later
    /// than the earliest deadline; it may be earlier (a wheel slot boundary, or
    /// the latest time the host was given, when a timer was armed since the wheel
    /// last advanced), in which case the call only advances the wheel and the
    /// next answer is later.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let wheel = self
            .wheel
            .next_deadline()
            .map(|t| Time::from_millis(t).max(self.now));
        let tw = self
            .table
            .time_wait_front_expiry()
            .map(|ms| Time::from_millis(self.widen_ms(ms)));
        match (wheel, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every call starts here and works at the time this returns: the latest
    /// `now` any call brought, so that a clock that steps back arms, stamps and
    /// fires nothing in the past (see "Time" on [`Host`]). Queues the driver has
    /// drained give back memory a burst left them (a million FINs from one
    /// close-all), since they belong to the engine's measured heap: at the
    /// first call that moves the clock on, not at every call (a simulated
    /// tick holds hundreds of calls, whose tests were 0.6 % of the
    /// simulator's instructions).
    #[inline]
    #[must_use]
    fn begin(&mut self, now: Time) -> Time {
        if now > self.now {
            self.now = now;
            self.now_ms = now.stamp_ms();
            self.ts_clock = ts::clock(self.cfg.ts_tick_us, now);
            if now.as_micros() >= self.orphan_tick_us {
                self.orphan_cache = self.orphans();
                self.orphan_tick_us = (now.as_micros() / ORPHAN_TICK_US + 1) * ORPHAN_TICK_US;
            }
            // One test for both queues, seldom above QUEUE_KEEP: a capacity
            // passes it exactly when it sets a bit above QUEUE_KEEP's.
            if (self.out.capacity() | self.events.capacity()) > QUEUE_KEEP {
                self.trim_queues();
            }
        }
        self.now
    }

    /// [`Host::begin`]'s trim of a drained queue above QUEUE_KEEP. Out of
    /// line: a burst's queue is seldom there to trim.
    #[cold]
    #[inline(never)]
    fn trim_queues(&mut self) {
        if self.out.capacity() > QUEUE_KEEP && self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.events.capacity() > QUEUE_KEEP && self.events.is_empty() {
            self.events = Vec::new();
        }
    }

    /// A 32-bit millisecond stamp as an absolute millisecond count, taking the
    /// stamp to lie within 2^31 ms of the wheel's current time.
    fn widen_ms(&self, stamp: u32) -> u64 {
        let now = self.wheel.elapsed();
        let delta = stamp.wrapping_sub(now as u32) as i32 as i64;
        (now as i64 + delta).max(0) as u64
    }

    /// RFC 6528 initial sequence number, as Linux's `secure_tcp_seq`: a keyed
    /// hash of the tuple plus a clock of 64 ns ticks (`seq_scale`:
    /// `ktime_get_real_ns() >> 6`, 15.625 a microsecond, a wrap every 274 s),
    /// not RFC 793's 4 µs clock. So a reconnect on the same 4-tuple starts
    /// beyond what its predecessor sent unless that sent more than 15.6 MB a
    /// second, and a TIME-WAIT without timestamps takes its SYN
    /// (`tcp_timewait_state_process`), within half the wrap (137 s) of the
    /// first SYN. The rfc9293 profile, whose TIME-WAIT is 240 s, keeps the
    /// RFC's 4 µs clock.
    fn isn(&self, now: Time, tuple: &Tuple) -> Seq {
        let us = now.as_micros();
        let ticks = if self.isn_4us {
            us >> 2
        } else {
            // µs × 1000 / 64 = µs × 125 / 8; the product wraps only after some
            // 4,680 years, and the ISN reads bits that the wrap leaves alone.
            us.wrapping_mul(125) >> 3
        };
        Seq(ticks as u32) + tuple.hash(self.isn_key) as u32
    }
}

/// Whether the `listening` bitmap ([`Host::listen`]) has `port`.
#[inline]
fn listening_on(listening: &[u64], port: u16) -> bool {
    listening
        .get(port as usize / 64)
        .is_some_and(|w| w & (1 << (port % 64)) != 0)
}

#[cfg(test)]
mod tests;
