//! One virtual shard of the simulation: a server host, a client host, the two
//! directions of the link between them, and the workload that drives both.
//!
//! A shard is a discrete-event simulation on its own virtual clock. Its next event
//! is the earliest of: a segment arriving in either direction, either host's next
//! timer, or the next scheduled open. Ties go in that fixed order, so a shard's run
//! depends only on its seed. Shards share nothing and may run on any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alloc;
use crate::link::{Delay, Loss};
use teardown_engine::driver::prefetch;
use teardown_engine::host::{CloseReason, Event, Host, Role};
use teardown_engine::segment::Segment;
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;
use teardown_engine::{Advance, Stats};

use super::app_timers::AppTimers;
use super::attack::{AttackCounts, AttackKind};
use super::queue::Queue;
use super::series::{Sample, Series};
use super::slots::{
    next_open, open_bit, slot, SlotMap, CLIENT_OPEN, PREFETCH_SLOTS_FROM, SERVER_OPEN,
};
use super::tally::Tally;
use super::{micros_or_never, CloseMode, RunawayAt, SimConfig, Workload};

/// The simulated server's address (all shards: one host).
pub const SERVER_IP: u32 = u32::from_be_bytes([10, 255, 0, 1]);
pub const SERVER_PORT: u16 = 80;

/// How long a closed-model client waits to retry a connect() that found no
/// port (EADDRNOTAVAIL), unless a port frees up first.
const CONNECT_RETRY: Duration = Duration::from_millis(10);

/// Seed-case counters (teardown-cases.md), seen from the link and the hosts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cases {
    /// 1: the active closer's FIN lost.
    pub first_fin_lost: u64,
    /// 2: the passive closer's ACK of that FIN lost.
    pub ack_of_fin_lost: u64,
    /// 3: the passive closer's FIN lost.
    pub passive_fin_lost: u64,
    /// 4: the active closer's final ACK lost.
    pub final_ack_lost: u64,
    /// 4 and 6: LAST-ACK ended by an RST.
    pub last_ack_reset: u64,
    /// 4 and 6: LAST-ACK gave up retransmitting.
    pub last_ack_gave_up: u64,
    /// Runaway ends that vanished.
    pub vanished: u64,
}

impl Cases {
    pub fn add(&mut self, o: &Cases) {
        self.first_fin_lost += o.first_fin_lost;
        self.ack_of_fin_lost += o.ack_of_fin_lost;
        self.passive_fin_lost += o.passive_fin_lost;
        self.final_ack_lost += o.final_ack_lost;
        self.last_ack_reset += o.last_ack_reset;
        self.last_ack_gave_up += o.last_ack_gave_up;
        self.vanished += o.vanished;
    }
}

/// What a shard hands back.
pub struct ShardResult {
    pub opened: u64,
    pub leaked: u64,
    pub series: Series,
    pub end: Time,
    pub server: Stats,
    pub client: Stats,
    pub sent: u64,
    pub dropped: u64,
    pub blackholed: u64,
    pub to_attacker: u64,
    pub cases: Cases,
    pub reasons: Vec<(CloseReason, u64)>,
    /// Close-to-CLOSED latency in µs, by role.
    pub active: Tally,
    pub passive: Tally,
    pub attacks: Vec<(AttackKind, AttackCounts)>,
    /// Segments in and out of the server for the captured connections (--pcap).
    pub capture: Vec<(Time, Segment)>,
    /// Most entries the shard's two tables held at once.
    pub peak_entries: u64,
    /// Ports the client's connect() probed, per successful connect.
    pub probed: Tally,
}

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
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

pub struct Shard<'a> {
    cfg: &'a SimConfig,
    index: u32,
    rng: ChaCha8Rng,
    now: Time,
    server: Host,
    client: Host,
    server_scope: u16,
    client_scope: u16,
    to_server: Queue,
    to_client: Queue,
    loss_to_server: Loss,
    loss_to_client: Loss,
    slots: Vec<u8>,
    slot_map: SlotMap,
    /// Client addresses of this shard (10.<shard>.0.0 upwards), each with the
    /// whole port range, and the next one to connect from.
    client_ips: u32,
    next_ip: u32,
    /// The last events taken from a host (`after`), swapped for its queue.
    events: Vec<Event>,
    /// The one-way delay in µs, as `Time + Duration` adds it.
    delay_us: u64,
    /// `--jitter` is set, and `--pcap-sample`: both read for every transmit.
    jitter: bool,
    capturing: bool,
    /// Each host's `poll_timeout()`, refreshed at the end of every step (and
    /// of `start`) in which the shard called into that host: only
    /// `next_event` reads them, and a step calls a host several times.
    /// In µs, `u64::MAX` for none.
    server_deadline: u64,
    client_deadline: u64,
    /// Which hosts were called since their deadline was last refreshed.
    stale: [bool; 2],
    to_open: u64,
    /// Opens tried: the index into the `--rate` schedule.
    attempts: u64,
    opened: u64,
    live: u64,
    /// The next open, tw-fill's close-all, the next attack and the sweep.
    apps: AppTimers,
    /// When this shard's first open is due (`SimConfig::stagger`).
    opens_from: Time,
    /// When each slot's current connection was opened (ms stamp), for the
    /// applications' idle timeout.
    opened_ms: Vec<u32>,
    /// Which ends of each slot's connection are ESTABLISHED and not yet closed
    /// (CLIENT_OPEN, SERVER_OPEN): the sweep looks only at those.
    open_ends: Vec<u8>,
    /// Runaway passive closers waiting for their delayed ACK of the peer's
    /// FIN to leave before they vanish.
    vanish_after_ack: Vec<(Side, Tuple, usize)>,
    attacks_sent: u64,
    /// Connections still to capture (--pcap-sample, shard 0 only).
    capture_left: u64,
    progress: &'a AtomicU64,
    unreported: u64,
    res: ShardResult,
    reasons: [u64; 9],
    /// Entries at the last [`Shard::note_entries`].
    entries_then: u64,
}

/// When shard `index`'s `n`-th event of a schedule at `rate` per second
/// (host-wide) is due. The shards take turns, event `n * shards + index` of
/// the whole schedule falling to this one, so the host sees one even schedule
/// and not every shard's first event at once.
fn nth_at_rate(n: u64, rate: f64, shards: u32, index: u32) -> Time {
    Time::from_secs_f64((n as f64 * shards as f64 + index as f64) / rate)
}

/// A segment's arrival time with `--jitter`. Kept out of line: inlined,
/// the compiler sets up the jitter's random range on every transmit, also
/// in runs without jitter.
#[inline(never)]
fn jittered(now: Time, delay: &Delay, rng: &mut ChaCha8Rng) -> Time {
    now + delay.sample(rng)
}

/// Counts a segment lost on the link under its seed case, from its
/// sender's state.
fn classify_drop(c: &mut Cases, sender: &Host, seg: &Segment) {
    let state = sender.state(&seg.sender_tuple());
    let pure_ack = seg.flags.ack() && seg.seq_len() == 0 && !seg.flags.rst();
    match state {
        State::FinWait1 | State::Closing if seg.flags.fin() => c.first_fin_lost += 1,
        State::LastAck if seg.flags.fin() => c.passive_fin_lost += 1,
        State::CloseWait | State::LastAck if pure_ack => c.ack_of_fin_lost += 1,
        State::TimeWait if pure_ack => c.final_ack_lost += 1,
        _ => {}
    }
}

impl<'a> Shard<'a> {
    /// Shard `index` of a run whose allocator scopes start at `scope_base`.
    pub fn new(
        cfg: &'a SimConfig,
        index: u32,
        scope_base: u16,
        progress: &'a AtomicU64,
    ) -> Shard<'a> {
        let shards = cfg.shards as u64;
        let share = |total: u64| total / shards + ((index as u64) < total % shards) as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(index as u64 + 1);
        let secret = rng.gen::<u64>();
        let mut server_cfg = cfg.host.clone();
        server_cfg.secret = secret;
        let mut client_cfg = cfg.host.clone();
        client_cfg.secret = secret.rotate_left(17) ^ 0x5555;
        // The shard's client holds its share of the client addresses' ports:
        // whole addresses, or the first `slots_per_shard` ports of one (the
        // 4-tuple space the slots gave before Linux's port choice).
        let (lo, hi) = cfg.port_range;
        let range = u32::from(hi - lo) + 1;
        let (client_ips, slots) = if cfg.slots_per_shard < range {
            let last = lo + (cfg.slots_per_shard.max(1) - 1) as u16;
            client_cfg.ip_local_port_range = (lo, last);
            (1, cfg.slots_per_shard.max(1))
        } else {
            let ips = cfg.slots_per_shard.div_ceil(range);
            (ips, ips * range)
        };
        let server_scope = scope_base + 2 * index as u16;
        let client_scope = server_scope + 1;
        let prev = alloc::enter_scope(server_scope);
        // Tables sized for the shard's share of the live connections up front, so
        // the opening burst does not rehash them step by step.
        let live = cfg.concurrency_per_shard.min(share(cfg.connections)) as usize;
        let mut server = Host::with_capacity(server_cfg, live);
        server.listen(SERVER_PORT);
        alloc::enter_scope(client_scope);
        let client = Host::with_capacity(client_cfg, live);
        alloc::enter_scope(prev);
        let to_open = share(cfg.connections);
        let rate = cfg.rate.map(|r| r / shards as f64);
        Shard {
            cfg,
            index,
            rng,
            now: Time::ZERO,
            server,
            client,
            server_scope,
            client_scope,
            to_server: Queue::new(!cfg.jitter.is_zero(), live),
            to_client: Queue::new(!cfg.jitter.is_zero(), live),
            loss_to_server: cfg.loss_to_server.clone(),
            loss_to_client: cfg.loss_to_client.clone(),
            slots: vec![0; slots as usize],
            slot_map: SlotMap::new(index, (lo, hi), slots as usize),
            client_ips,
            next_ip: 0,
            events: Vec::new(),
            delay_us: cfg.delay.base.as_micros().min(u64::MAX as u128) as u64,
            jitter: !cfg.delay.jitter.is_zero(),
            capturing: cfg.pcap_sample > 0,
            server_deadline: u64::MAX,
            client_deadline: u64::MAX,
            stale: [false; 2],
            to_open,
            attempts: 0,
            opened: 0,
            live: 0,
            apps: AppTimers::new(
                rate.map(|_| Time::ZERO),
                // Event 0 of this shard's turn in the attack schedule (nth_at_rate).
                (!cfg.attacks.is_empty())
                    .then(|| nth_at_rate(0, cfg.attack_rate, cfg.shards, index)),
                Some(Time::ZERO + cfg.app_timeout / 4),
            ),
            opens_from: Time::ZERO + cfg.stagger * index,
            opened_ms: vec![0; slots as usize],
            open_ends: vec![0; slots as usize],
            vanish_after_ack: Vec::new(),
            attacks_sent: 0,
            capture_left: if index == 0 { cfg.pcap_sample } else { 0 },
            progress,
            unreported: 0,
            res: ShardResult {
                opened: 0,
                leaked: 0,
                series: Series::new(cfg.sample_interval),
                end: Time::ZERO,
                server: Stats::default(),
                client: Stats::default(),
                sent: 0,
                dropped: 0,
                blackholed: 0,
                to_attacker: 0,
                cases: Cases::default(),
                reasons: Vec::new(),
                active: Tally::default(),
                passive: Tally::default(),
                attacks: cfg
                    .attacks
                    .iter()
                    .map(|k| (*k, AttackCounts::default()))
                    .collect(),
                capture: Vec::new(),
                peak_entries: 0,
                probed: Tally::default(),
            },
            entries_then: 0,
            reasons: [0; 9],
        }
    }

    /// The client's view of slot `s`'s 4-tuple.
    fn tuple(&self, s: u32) -> Tuple {
        self.slot_map.tuple(s as usize)
    }

    /// The slot of a tuple seen from the client (local = client).
    #[inline]
    fn slot_of(&self, client_view: &Tuple) -> Option<usize> {
        self.slot_map.get(client_view)
    }

    /// Asks for the slot's flags and open ends, which `deliver` and
    /// `on_event` read, while its segment is still a few back in the queue:
    /// with a million slots these are cold lines, as the host's entries are.
    #[inline]
    fn prefetch_slot(&self, client_view: &Tuple) {
        if self.slots.len() < PREFETCH_SLOTS_FROM {
            return;
        }
        if let Some(s) = self.slot_of(client_view) {
            prefetch(&self.slots[s]);
            prefetch(&self.open_ends[s]);
        }
    }

    /// Runs the shard to its end, alone.
    pub fn run(mut self) -> ShardResult {
        self.start();
        while let Some((t, due)) = self.next_event() {
            self.step(t, due);
        }
        self.end()
    }

    /// Opens the first connections (those due at time zero).
    pub fn start(&mut self) {
        self.open_more();
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
        match due {
            Due::ToServer => return self.deliver_all(Side::Server),
            Due::ToClient => return self.deliver_all(Side::Client),
            Due::ServerTimers => self.fire(Side::Server),
            Due::ClientTimers => self.fire(Side::Client),
            Due::Open => {
                self.apps.set_open(None);
                self.open_more();
            }
            Due::Attack => self.attack(),
            Due::Sweep => self.sweep(),
            Due::CloseAll => {
                self.apps.set_close_all(None);
                self.close_all();
            }
        }
        self.refresh_deadlines();
        let net = self.note_entries();
        Change {
            net,
            high: net.max(0),
        }
    }

    /// Delivers the segments arriving at `to` now, one after another, as
    /// long as each would be [`Shard::next_event`]'s next: a burst of an
    /// instant is one step, not one round of the event loop per segment.
    /// Nothing a delivery sets off comes earlier than now (its host's timers
    /// are not due before now, its replies and the opens it makes arrive
    /// after the link's delay), and the link wins ties, the server's
    /// direction first: so the next event is the same queue's next segment
    /// while that arrives now, unless a client's delivery put a segment
    /// towards the server at this instant (a zero delay).
    fn deliver_all(&mut self, to: Side) -> Change {
        let now = self.now.as_micros();
        // The host-wide peak is taken after every segment, as when each was
        // a step of its own: the most entries seen, and the change at the end.
        let before = self.entries_then;
        let mut high = before;
        loop {
            let queue = match to {
                Side::Server => &mut self.to_server,
                Side::Client => &mut self.to_client,
            };
            let Some(seg) = queue.pop() else {
                break;
            };
            match to {
                Side::Server => {
                    let slot = |s: &Segment| self.prefetch_slot(&s.sender_tuple());
                    self.to_server.prefetch_ahead(&self.server, slot);
                }
                Side::Client => {
                    let slot = |s: &Segment| self.prefetch_slot(&s.receiver_tuple());
                    self.to_client.prefetch_ahead(&self.client, slot);
                }
            }
            self.deliver(to, &seg);
            high = high.max(self.entries());
            let next = match to {
                Side::Server => self.to_server.next_us(),
                Side::Client if self.to_server.next_us() == now => break,
                Side::Client => self.to_client.next_us(),
            };
            if next != now {
                break;
            }
        }
        self.refresh_deadlines();
        self.res.peak_entries = self.res.peak_entries.max(high);
        Change {
            net: self.note_entries(),
            high: (high - before) as i64,
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
    fn note_entries(&mut self) -> i64 {
        let now = self.entries();
        let delta = now as i64 - self.entries_then as i64;
        self.entries_then = now;
        self.res.peak_entries = self.res.peak_entries.max(now);
        delta
    }

    /// The last sample, and the shard's result.
    pub fn end(mut self) -> ShardResult {
        let s = self.sample();
        self.res.series.push(s);
        self.finish()
    }

    /// Runs `f` on one host with allocations charged to that host's scope;
    /// that host's deadline is refreshed at the end of the step.
    #[inline]
    fn with<R>(&mut self, side: Side, f: impl FnOnce(&mut Host, Time) -> R) -> R {
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

    /// Asks each host called since the last refresh for its next deadline.
    fn refresh_deadlines(&mut self) {
        if std::mem::take(&mut self.stale[Side::Server as usize]) {
            self.server_deadline = micros_or_never(self.server.poll_timeout());
        }
        if std::mem::take(&mut self.stale[Side::Client as usize]) {
            self.client_deadline = micros_or_never(self.client.poll_timeout());
        }
    }

    /// A host's timers are the next event: it fires what is due now, then its
    /// events and segments are handled before any other event of this instant.
    fn fire(&mut self, side: Side) {
        self.with(side, |h, now| Advance::new(now, now).finish(&mut [h]));
        self.after(side);
    }

    /// Inlined into its one caller, `deliver_all`'s loop (it was, by the
    /// compiler's choice; pinned, the loop also takes in `Loss::drops`).
    #[inline(always)]
    fn deliver(&mut self, to: Side, seg: &Segment) {
        let slot = match to {
            Side::Server => self.slot_of(&seg.sender_tuple()),
            Side::Client => self.slot_of(&seg.receiver_tuple()),
        };
        let Some(slot) = slot else {
            // A reply to an attacker's spoofed address: it leaves the simulation.
            self.res.to_attacker += 1;
            return;
        };
        let flags = self.slots[slot];
        let gone = match to {
            Side::Server => slot::SERVER_GONE,
            Side::Client => slot::CLIENT_GONE,
        };
        if flags & gone != 0 {
            self.res.blackholed += 1;
            return;
        }
        if to == Side::Server && flags & slot::CAPTURED != 0 {
            self.res.capture.push((self.now, *seg));
        }
        let runaway = match to {
            Side::Server => slot::RUNAWAY_SERVER,
            Side::Client => slot::RUNAWAY_CLIENT,
        };
        let watch = flags & runaway != 0 && flags & slot::AT_FIN_SENT == 0;
        let tuple = seg.receiver_tuple();
        let state = |s: &Self| match to {
            Side::Server => s.server.state(&tuple),
            Side::Client => s.client.state(&tuple),
        };
        let before = if watch { state(self) } else { State::Closed };
        self.with(to, |h, now| h.handle(now, seg));
        // A runaway active closer vanishes on the segment that acknowledges its
        // FIN, answering nothing (when the peer's FIN rides on that ACK, the
        // peer is left in LAST-ACK: seed case 6).
        if watch
            && before == State::FinWait1
            && matches!(state(self), State::FinWait2 | State::TimeWait)
        {
            match to {
                Side::Server => self.server.transmits().for_each(drop),
                Side::Client => self.client.transmits().for_each(drop),
            }
            self.vanish(to, tuple, slot);
        }
        self.after(to);
    }

    /// Handles a host's events, then puts what it sent on the link. Inlined:
    /// a call of its own saved and restored six registers per segment.
    #[inline(always)]
    fn after(&mut self, side: Side) {
        let host = match side {
            Side::Server => &mut self.server,
            Side::Client => &mut self.client,
        };
        if host.has_events() {
            // Read where they lie (no handler takes events from a host), and
            // left there until the next swap clears them.
            host.swap_events(&mut self.events);
            for i in 0..self.events.len() {
                let ev = self.events[i];
                self.on_event(side, ev);
            }
        }
        self.transmit(side);
        if !self.vanish_after_ack.is_empty() {
            self.vanish_acked(side);
        }
    }

    /// The runaways on `side` whose delayed ACK has gone out vanish now.
    fn vanish_acked(&mut self, side: Side) {
        let mut i = 0;
        while i < self.vanish_after_ack.len() {
            let (s, tuple, slot) = self.vanish_after_ack[i];
            let host = match s {
                Side::Server => &self.server,
                Side::Client => &self.client,
            };
            if s != side || host.ack_pending(&tuple) {
                i += 1;
            } else if host.state(&tuple) == State::Closed {
                // Closed meanwhile (a reset): its Closed event did the accounting.
                self.vanish_after_ack.swap_remove(i);
            } else {
                self.vanish_after_ack.swap_remove(i);
                self.vanish(side, tuple, slot);
            }
        }
    }

    /// Puts what `from` sent on the link, through its loss and delay.
    /// Inlined: it runs after every host call, mostly for one segment, and
    /// as a call of its own it cost some 15 % more (110 instructions a
    /// teardown).
    #[inline(always)]
    fn transmit(&mut self, from: Side) {
        let (host, queue, loss) = match from {
            Side::Server => (&self.server, &mut self.to_client, &mut self.loss_to_client),
            Side::Client => (&self.client, &mut self.to_server, &mut self.loss_to_server),
        };
        // Nothing queued: its drain would only reset the ACKs-sent count,
        // which is 0 then.
        let out = host.pending_transmits();
        if out.is_empty() {
            return;
        }
        let (now, rng) = (self.now, &mut self.rng);
        // Without jitter every segment of the step arrives at once: one sum
        // (`Time + Duration`, on the delay's micros worked out in `new`).
        let fixed = Time::from_micros(now.as_micros().saturating_add(self.delay_us));
        let jitter = self.jitter;
        let capturing = from == Side::Server && self.capturing;
        self.res.sent += out.len() as u64;
        // Read in place and cleared after (`transmits`), not moved out one by
        // one; a lost one is classified at once, from its sender's state.
        for seg in out {
            if capturing {
                let slot = self.slot_map.get(&seg.receiver_tuple());
                if slot.is_some_and(|s| self.slots[s] & slot::CAPTURED != 0) {
                    self.res.capture.push((now, *seg));
                }
            }
            if loss.drops(rng, seg) {
                self.res.dropped += 1;
                classify_drop(&mut self.res.cases, host, seg);
            } else {
                let at = if jitter {
                    jittered(now, &self.cfg.delay, rng)
                } else {
                    fixed
                };
                queue.push(at, *seg);
            }
        }
        match from {
            Side::Server => drop(self.server.transmits()),
            Side::Client => drop(self.client.transmits()),
        }
    }

    /// Inlined into `after`: seven events a teardown, and a call of its own
    /// each cost some 20 instructions (146 a teardown).
    #[inline(always)]
    fn on_event(&mut self, side: Side, ev: Event) {
        let end = open_bit(side);
        // Each arm looks its connection's slot up itself: the tuple lies at
        // a place of its own in each kind of event.
        match ev {
            Event::Established { tuple } => {
                let (slot, flags) = self.slot_flags(side, &tuple);
                if let Some(s) = slot {
                    self.open_ends[s] |= end;
                }
                // HTTP/1.0 style: the client sends its request; the server answers
                // (and, as the first closer, closes) when the request arrives. With
                // no request, the first closer closes at once.
                if self.cfg.request_bytes > 0 {
                    if side == Side::Client {
                        let n = self.cfg.request_bytes;
                        self.with(side, |h, now| h.send(now, tuple, n)).ok();
                    }
                } else if self.closes_first(side, flags) {
                    if side == Side::Server && self.cfg.response_bytes > 0 {
                        let n = self.cfg.response_bytes;
                        self.with(side, |h, now| h.send(now, tuple, n)).ok();
                    }
                    self.app_close(side, tuple, flags, slot);
                }
            }
            Event::Received { tuple, .. } => {
                let (slot, flags) = self.slot_flags(side, &tuple);
                if side == Side::Server {
                    if self.cfg.response_bytes > 0 {
                        let n = self.cfg.response_bytes;
                        self.with(side, |h, now| h.send(now, tuple, n)).ok();
                    }
                    if flags & slot::CLOSER_SERVER != 0 {
                        self.app_close(side, tuple, flags, slot);
                    }
                } else if flags & slot::CLOSER_CLIENT != 0 && flags & slot::CLOSER_SERVER == 0 {
                    self.app_close(side, tuple, flags, slot);
                }
            }
            Event::PeerClosed { tuple } => {
                let (slot, flags) = self.slot_flags(side, &tuple);
                // The passive closer's application closes at once, unless its end
                // runs away right after ACKing the FIN: once that ACK, delayed
                // as Linux delays it, has gone out.
                let runaway = match side {
                    Side::Server => slot::RUNAWAY_SERVER,
                    Side::Client => slot::RUNAWAY_CLIENT,
                };
                match slot {
                    Some(s) if flags & runaway != 0 && flags & slot::AT_FIN_SENT == 0 => {
                        let pending = match side {
                            Side::Server => self.server.ack_pending(&tuple),
                            Side::Client => self.client.ack_pending(&tuple),
                        };
                        if pending {
                            self.vanish_after_ack.push((side, tuple, s));
                        } else {
                            self.vanish(side, tuple, s);
                        }
                    }
                    _ => self.app_close(side, tuple, flags, slot),
                }
            }
            Event::Closed {
                tuple,
                from,
                reason,
                role,
                since_close,
            } => {
                let slot = self.slot_for(side, &tuple);
                self.reasons[reason.index()] += 1;
                if let Some(s) = slot {
                    self.open_ends[s] &= !end;
                }
                if from == State::LastAck {
                    match reason {
                        CloseReason::Reset => self.res.cases.last_ack_reset += 1,
                        CloseReason::RetriesExhausted => self.res.cases.last_ack_gave_up += 1,
                        _ => {}
                    }
                }
                if let Some(d) = since_close {
                    let us = d.as_micros() as u64;
                    let h = match role {
                        Role::Passive => &mut self.res.passive,
                        _ => &mut self.res.active,
                    };
                    h.record(us);
                }
                if let (Side::Client, Some(_)) = (side, slot) {
                    self.release();
                }
            }
            Event::StateChanged { .. } => {}
        }
    }

    /// The slot of a connection (in `side`'s view) and its flags. Connections
    /// an attacker opened have no slot, and no flags: nobody's application
    /// acts on them beyond closing when the peer does.
    #[inline(always)]
    fn slot_flags(&self, side: Side, tuple: &Tuple) -> (Option<usize>, u8) {
        let slot = self.slot_for(side, tuple);
        (slot, slot.map_or(0, |s| self.slots[s]))
    }

    fn slot_for(&self, side: Side, tuple: &Tuple) -> Option<usize> {
        match side {
            Side::Server => self.slot_of(&tuple.reversed()),
            Side::Client => self.slot_of(tuple),
        }
    }

    fn closes_first(&self, side: Side, flags: u8) -> bool {
        match side {
            Side::Server => flags & slot::CLOSER_SERVER != 0,
            Side::Client => flags & slot::CLOSER_CLIENT != 0,
        }
    }

    /// The application on `side` closes the connection in `slot` (None: one
    /// an attacker opened). Inlined: twice a teardown, from the event handlers.
    #[inline(always)]
    fn app_close(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>) {
        if self.with(side, |h, now| h.close(now, tuple)).is_err() {
            return;
        }
        let Some(slot) = slot else {
            return;
        };
        // Closed, so never ESTABLISHED again: nothing for the sweep, which
        // visited every server end through its TIME-WAIT until Closed.
        self.open_ends[slot] &= !open_bit(side);
        let runaway = match side {
            Side::Server => slot::RUNAWAY_SERVER,
            Side::Client => slot::RUNAWAY_CLIENT,
        };
        if flags & runaway != 0 && flags & slot::AT_FIN_SENT != 0 {
            // Let the FIN go out, then vanish.
            self.vanish(side, tuple, slot);
        }
    }

    /// The end on `side` of this connection vanishes: it forgets the connection and
    /// its host answers nothing more on the 4-tuple (seed cases 5 and 6). What it
    /// queued before vanishing still goes out.
    fn vanish(&mut self, side: Side, tuple: Tuple, slot: usize) {
        self.transmit(side);
        self.res.cases.vanished += 1;
        self.open_ends[slot] &= !open_bit(side);
        match side {
            Side::Server => {
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot] |= slot::SERVER_GONE;
            }
            Side::Client => {
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot] |= slot::CLIENT_GONE;
                self.release();
            }
        }
    }

    /// The client end of a connection is gone (the engine frees its port).
    fn release(&mut self) {
        self.live -= 1;
        self.unreported += 1;
        if self.unreported == 1024 {
            self.progress.fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
        self.open_more();
    }

    /// Counts a connect attempt. After the last one only the closes of the
    /// last wave are left: the queues need not keep their buffers for
    /// further bursts, and give them back as they drain, before the run's
    /// TIME-WAIT entries pile up to the peak heap.
    fn attempted(&mut self) {
        self.attempts += 1;
        if self.attempts == self.to_open {
            self.to_server.release();
            self.to_client.release();
        }
    }

    /// Opens connections while the workload allows. A connect() that finds
    /// no port (EADDRNOTAVAIL) is counted; with `--rate` (an open model) that
    /// attempt is lost and the schedule goes on; without (a closed model, a
    /// client that must open its next connection) it is retried after
    /// [`CONNECT_RETRY`], or sooner when a port frees up, never in a busy loop.
    fn open_more(&mut self) {
        loop {
            if self.attempts == self.to_open || self.live >= self.cfg.concurrency_per_shard {
                return;
            }
            if self.now < self.opens_from {
                self.apps.set_open(Some(self.opens_from));
                return;
            }
            if let Some(rate) = self.cfg.rate {
                let due = nth_at_rate(self.attempts, rate, self.cfg.shards, self.index);
                if due > self.now {
                    self.apps.set_open(Some(due));
                    return;
                }
            }
            if !self.open() && self.cfg.rate.is_none() {
                self.apps.set_open(Some(self.now + CONNECT_RETRY));
                return;
            }
        }
    }

    /// One connect() from the shard's next client address (round robin);
    /// false when it found no port.
    fn open(&mut self) -> bool {
        let mut flags = match self.cfg.close {
            CloseMode::Server => slot::CLOSER_SERVER,
            CloseMode::Client => slot::CLOSER_CLIENT,
            CloseMode::Both => slot::CLOSER_SERVER | slot::CLOSER_CLIENT,
            CloseMode::Mixed(f) => {
                if self.rng.gen::<f64>() < f {
                    slot::CLOSER_SERVER
                } else {
                    slot::CLOSER_CLIENT
                }
            }
        };
        if self.cfg.workload == Workload::TwFill {
            // Nobody closes on establishment; close_all() closes every server end.
            flags = 0;
        }
        if self.cfg.runaway_client > 0.0 && self.rng.gen::<f64>() < self.cfg.runaway_client {
            flags |= slot::RUNAWAY_CLIENT;
        }
        if self.cfg.runaway_server > 0.0 && self.rng.gen::<f64>() < self.cfg.runaway_server {
            flags |= slot::RUNAWAY_SERVER;
        }
        if flags & (slot::RUNAWAY_CLIENT | slot::RUNAWAY_SERVER) != 0 {
            let at_fin_sent = match self.cfg.runaway_at {
                RunawayAt::FinAcked => false,
                RunawayAt::FinSent => true,
                RunawayAt::Any => self.rng.gen::<bool>(),
            };
            if at_fin_sent {
                flags |= slot::AT_FIN_SENT;
            }
        }
        if self.capture_left > 0 {
            self.capture_left -= 1;
            flags |= slot::CAPTURED;
        }
        let ip = self.next_ip;
        self.next_ip = (ip + 1) % self.client_ips;
        let local_ip = self.slot_map.client_ip(ip);
        let mode = self.cfg.bind;
        let r = self.with(Side::Client, |h, now| {
            h.connect_ephemeral(now, local_ip, SERVER_IP, SERVER_PORT, mode)
        });
        // The cold lines of the connect after next (the next one's were
        // asked for by the last connect), while this one's SYN and the
        // teardowns before them go on.
        let after_next = self
            .slot_map
            .client_ip((self.next_ip + 1) % self.client_ips);
        (self.client).prefetch_connect(after_next, SERVER_IP, SERVER_PORT, mode);
        let slot = r.as_ref().ok().and_then(|c| self.slot_of(&c.tuple));
        let (Ok(c), Some(s)) = (r, slot) else {
            // EADDRNOTAVAIL (counted by the client host), or the table is full.
            if self.cfg.rate.is_some() {
                self.attempted();
            }
            self.transmit(Side::Client);
            return false;
        };
        self.res.probed.record(u64::from(c.probed));
        self.slots[s] = flags;
        self.opened_ms[s] = self.now.stamp_ms();
        self.attempted();
        self.opened += 1;
        self.live += 1;
        let (now, quarter) = (self.now, self.cfg.app_timeout / 4);
        self.apps.arm_sweep(|| now + quarter);
        self.transmit(Side::Client);
        if self.cfg.workload == Workload::TwFill && self.opened == self.to_open {
            // All opened: close them all once every shard's handshakes have
            // surely finished, one shard after another (`SimConfig::stagger`).
            let all_open = self.cfg.stagger * self.cfg.shards;
            self.apps.set_close_all(Some(
                self.now + all_open + self.cfg.delay.base * 4 + Duration::from_millis(500),
            ));
        }
        true
    }

    /// The applications' idle timeout (`--app-timeout`): a connection still
    /// ESTABLISHED that long after it opened is closed by whichever end holds it.
    /// TCP has no timer for an idle connection whose peer silently gave up (a
    /// server whose response and FIN were all lost), so without this such a
    /// half-open connection would stay forever, as it would on a real host with
    /// an application that never times out. Runs every quarter of the timeout
    /// while connections are live.
    fn sweep(&mut self) {
        let timeout = self.cfg.app_timeout.as_millis() as u32;
        let now_ms = self.now.stamp_ms();
        let mut from = 0;
        // The next open slot from `from` on, read afresh after each close
        // (which may open new connections in other slots).
        while let Some(s) = next_open(&self.open_ends, from) {
            from = s + 1;
            if now_ms.wrapping_sub(self.opened_ms[s]) < timeout {
                continue;
            }
            let open = self.open_ends[s];
            let client = self.tuple(s as u32);
            let server = client.reversed();
            let flags = self.slots[s];
            if open & CLIENT_OPEN != 0 && self.client.state(&client) == State::Established {
                self.app_close(Side::Client, client, flags, Some(s));
                self.transmit(Side::Client);
            }
            if open & SERVER_OPEN != 0 && self.server.state(&server) == State::Established {
                self.app_close(Side::Server, server, flags, Some(s));
                self.transmit(Side::Server);
            }
        }
        // Every open end has an entry in its host. With none, nothing is
        // swept until open() arms the sweep again: a low --rate leaves long idle
        // stretches that need no visits.
        let busy = !(self.client.is_empty() && self.server.is_empty());
        self.apps
            .set_sweep(busy.then(|| self.now + self.cfg.app_timeout / 4));
    }

    /// `--workload tw-fill`: the server closes every connection at once.
    fn close_all(&mut self) {
        for s in 0..self.slots.len() as u32 {
            let tuple = self.tuple(s).reversed();
            if self.server.state(&tuple) == State::Established {
                self.slots[s as usize] |= slot::CLOSER_SERVER;
                self.with(Side::Server, |h, now| h.close(now, tuple)).ok();
                // Each FIN onto the link at once: left in the host's output
                // buffer, a shard's FINs would all be held twice, and the
                // buffer would keep that size for the rest of the run.
                self.transmit(Side::Server);
            }
        }
    }

    /// Injects one attack segment at the server and books what it did. Attacks
    /// go on while the workload runs: they stop once every connection is opened
    /// and every client end is done.
    fn attack(&mut self) {
        let kinds = &self.cfg.attacks;
        let k = (self.attacks_sent % kinds.len() as u64) as usize;
        let kind = kinds[k];
        self.attacks_sent += 1;
        let next = nth_at_rate(
            self.attacks_sent,
            self.cfg.attack_rate,
            self.cfg.shards,
            self.index,
        );
        self.apps.set_attack(
            (self.attempts < self.to_open || self.live > 0).then_some(next.max(self.now)),
        );

        // Find a target: a connection in the state this attack aims at.
        let wanted = |st: State| match kind {
            AttackKind::BlindRst | AttackKind::InwindowRst | AttackKind::OldDuplicate => {
                st.is_synchronized() && st != State::TimeWait
            }
            AttackKind::SynTimewait => st == State::TimeWait,
            AttackKind::SynLastack => st == State::LastAck,
            AttackKind::FinUnknown => st == State::Closed,
        };
        let mut target = None;
        for _ in 0..16 {
            let slot = self.rng.gen_range(0..self.slots.len() as u32);
            let client = self.tuple(slot);
            if wanted(self.server.state(&client.reversed())) {
                target = Some(client);
                break;
            }
        }
        let on_target = target.is_some();
        let client = match target {
            Some(t) => t,
            // No target found (and fin-unknown's by design): a 4-tuple from an
            // address no client uses.
            None => Tuple {
                local_ip: u32::from_be_bytes([172, 16, 0, 0]) | self.rng.gen_range(0..0xffff),
                remote_ip: SERVER_IP,
                local_port: self.rng.gen_range(1024..65535),
                remote_port: SERVER_PORT,
            },
        };
        let server_view = client.reversed();
        let (snd_nxt, rcv_nxt) = self.server.sequence(&server_view).unwrap_or((0, 0));
        let wnd = self.cfg.host.rcv_wnd as u32;
        let r: u32 = self.rng.gen();
        let seg = kind.segment(&client, snd_nxt, rcv_nxt, wnd, r);
        let before = self.server.state(&server_view);
        let stats0 = *self.server.stats();
        self.with(Side::Server, |h, now| h.handle(now, &seg));
        let stats1 = *self.server.stats();
        let after = self.server.state(&server_view);
        self.after(Side::Server);
        let c = &mut self.res.attacks[k].1;
        c.sent += 1;
        c.on_target += on_target as u64;
        let killed = on_target
            && before != State::Closed
            && (after == State::Closed
                || (before == State::TimeWait && after == State::SynReceived));
        c.killed += killed as u64;
        c.disturbed += (on_target && !killed && after != before) as u64;
        c.challenge_acks += stats1.challenge_acks - stats0.challenge_acks;
        c.rst_replies += stats1.rst_sent - stats0.rst_sent;
        if on_target {
            c.expected_killed += kind.kill_odds(wnd);
        }
    }

    fn sample(&self) -> Sample {
        let mut s = Sample {
            server_bytes: alloc::scope_bytes(self.server_scope) as i64,
            client_bytes: alloc::scope_bytes(self.client_scope) as i64,
            connects: self.client.stats().opened_active + self.client.stats().connect_eaddrnotavail,
            connects_failed: self.client.stats().connect_eaddrnotavail,
            ..Sample::default()
        };
        for st in State::ALL {
            s.server[st as usize] = self.server.population(st) as u32;
            s.client[st as usize] = self.client.population(st) as u32;
        }
        s
    }

    fn finish(mut self) -> ShardResult {
        self.progress.fetch_add(self.unreported, Ordering::Relaxed);
        // Connections not CLOSED on both ends: count each slot whose 4-tuple either
        // host still holds.
        if !(self.server.is_empty() && self.client.is_empty()) {
            for s in 0..self.slots.len() as u32 {
                let t = self.tuple(s);
                if self.client.state(&t) != State::Closed
                    || self.server.state(&t.reversed()) != State::Closed
                {
                    self.res.leaked += 1;
                }
            }
        }
        self.res.opened = self.opened;
        self.res.end = self.now;
        self.res.server = *self.server.stats();
        self.res.client = *self.client.stats();
        self.res.reasons = CloseReason::ALL
            .iter()
            .zip(self.reasons)
            .map(|(r, n)| (*r, n))
            .collect();
        // Drop the hosts inside their scopes so the counters return to zero.
        let (server, client) = (self.server, self.client);
        let prev = alloc::enter_scope(self.server_scope);
        drop(server);
        alloc::enter_scope(self.client_scope);
        drop(client);
        alloc::enter_scope(prev);
        self.res
    }
}
