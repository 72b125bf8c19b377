//! The clients, played by the engine: one [`Host`] per worker thread behind one
//! UDP socket, over the lossy link of `teardown::link`.
//!
//! Client worker `w` owns the simulated IPs `10.128.0.0 + w * ips + k`, so the
//! server can send every reply for an IP back to the one socket that used it.
//! Each outgoing segment goes to the server worker [`route`] names for its
//! 4-tuple, at the server's base port + that index.

use std::collections::{HashSet, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use teardown::link::Loss;
use teardown::service::metrics::{completed, REASONS};
use teardown::service::{route, Clock, CloseMode, SERVER_IP, SERVER_PORT};
use teardown::sim::{AttackCounts, AttackKind};
use teardown::wire::{self, Encoder};
use teardown_engine::driver::{handle_burst, BUCKET_AHEAD};
use teardown_engine::host::Prefetch;
use teardown_engine::time::pop_due;
use teardown_engine::{Config, Event, Flags, Host, Role, Segment, State, Time, Tuple};

use crate::attack::Attacker;

const SOCKET: Token = Token(0);
/// New opens per loop iteration at most, beyond refilling the slots freed since
/// the last, so that a burst of opens cannot starve receiving.
const OPEN_BATCH: u64 = 2048;
/// Datagrams drained between two services of timers and output.
const TICK_EVERY: u32 = 32;
/// The first simulated client IP, 10.128.0.0.
const CLIENT_NET: u32 = 0x0a80_0000;

/// What one client worker needs to know.
#[derive(Clone, Debug)]
pub struct Plan {
    pub index: usize,
    pub server: SocketAddr,
    pub server_workers: usize,
    /// Connections this worker opens, at most `concurrency` live at once.
    pub connections: u64,
    pub concurrency: usize,
    /// Opens per real second for this worker; 0 means as fast as concurrency allows.
    pub rate: f64,
    pub close: CloseMode,
    /// Engine time between ESTABLISHED and close() with `--close client`.
    pub hold: Duration,
    pub loss_to_server: Loss,
    pub loss_to_client: Loss,
    pub runaway: f64,
    pub ips: u32,
    pub ports: (u16, u16),
    pub seed: u64,
    pub clock: Clock,
    /// Attack kinds (`--attack`), empty for none, and this worker's segments per real second.
    pub attacks: Vec<AttackKind>,
    pub attack_rate: f64,
}

/// What one worker publishes for the main thread (absolute figures, written
/// only by that worker).
#[derive(Default)]
pub struct Progress {
    pub opened: AtomicU64,
    /// Connections accounted for: CLOSED on the client, or vanished (runaway).
    pub accounted: AtomicU64,
    /// Connections whose teardown completed (see `metrics::completed`).
    pub completed: AtomicU64,
    pub population: [AtomicU64; State::COUNT],
    /// Every connection of this worker's quota is accounted for.
    pub done: AtomicBool,
}

/// What a worker reports when it stops.
pub struct Outcome {
    pub opened: u64,
    pub accounted: u64,
    pub runaway: u64,
    pub closed: [u64; REASONS],
    pub stats: teardown_engine::Stats,
    pub dropped_to_server: u64,
    pub dropped_to_client: u64,
    /// Segments for a vanished client, swallowed as a dead host would.
    pub to_vanished: u64,
    pub malformed: u64,
    pub send_failures: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub active_us: Histogram<u64>,
    pub passive_us: Histogram<u64>,
    pub first_open: Option<Instant>,
    /// When this worker opened its last connection, and how many had completed by then.
    pub last_open: Option<Instant>,
    pub completed_at_last_open: u64,
    /// When this worker first had its whole `concurrency` open, and how many
    /// had completed by then: the rate between that and the last open is the
    /// rate at that many live, without the ramp up to it.
    pub full_at: Option<Instant>,
    pub completed_at_full: u64,
    pub last_close: Option<Instant>,
    pub peak_live: usize,
    /// Per attack kind: counts, and out-of-window ACKs seen (`old-duplicate`).
    pub attacks: Vec<(AttackKind, AttackCounts, u64)>,
    /// Replies to the attacker's made-up tuples other than RSTs.
    pub attack_other_replies: u64,
}

pub struct Worker {
    plan: Plan,
    poll: Poll,
    socket: UdpSocket,
    host: Host,
    rng: ChaCha8Rng,
    /// Tuples never used yet come from a cursor over (ip, port); released ones
    /// queue here, oldest first, so 4-tuples are reused once the range is spent.
    next_fresh: u64,
    released: VecDeque<Tuple>,
    /// The next tuples to open, taken from the two sources above in their
    /// order [`BUCKET_AHEAD`] opens early, so that the index bucket each
    /// connect looks up is already on its way (see [`Worker::take_tuple`]).
    upcoming: VecDeque<Tuple>,
    /// Runaway clients: segments to them are swallowed until their tuple is
    /// released, once the server must have given up on it.
    vanished: HashSet<Tuple>,
    quarantine: VecDeque<(Time, Tuple)>,
    quarantine_for: Duration,
    held: VecDeque<(Time, Tuple)>,
    /// Runaway clients whose delayed ACK of the server's FIN has yet to leave:
    /// they vanish once it has.
    vanish_after_ack: Vec<Tuple>,
    attacker: Option<Attacker>,
    live: usize,
    /// Connections accounted for since the last `open`: their slots are
    /// refilled whatever `OPEN_BATCH` says, or a tick that drained 32 datagrams
    /// of closes could free more slots than it refills, and fewer than
    /// `concurrency` would stay live.
    freed: u64,
    encoders: Vec<Encoder>,
    rx: Vec<u8>,
    scratch: Vec<Event>,
    /// The segments of one datagram that reach the host, handled as a burst.
    burst: Vec<Segment>,
    started: Instant,
    /// The real time of the datagram or tick being handled: a connection
    /// accounted for is stamped with it rather than read the clock again,
    /// once per connection.
    at: Instant,
    out: Outcome,
}

impl Worker {
    pub fn new(plan: Plan) -> anyhow::Result<Worker> {
        let poll = Poll::new()?;
        let mut socket = UdpSocket::bind("127.0.0.1:0".parse()?)?;
        teardown::service::net::set_buffers(&socket, teardown::service::net::SOCKET_BUFFER)?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let cfg = Config {
            // FIN-WAIT-2 is only visible as a transition; needed for runaway clients
            // that vanish once their FIN is acknowledged.
            trace_states: plan.close == CloseMode::Client && plan.runaway > 0.0,
            secret: plan.seed ^ 0x636c_6965_6e74,
            ..Config::default()
        };
        // A vanished client's tuple is safe to reuse once the server has dropped
        // it: FIN-WAIT-2 timeout, or the orphan retries of its FIN, or TIME-WAIT.
        let quarantine_for = cfg
            .fin_timeout
            .max(cfg.model_timeout(cfg.orphan_retry_limit(), cfg.rto_min))
            .max(cfg.time_wait)
            + Duration::from_secs(10);
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
        Ok(Worker {
            rng: ChaCha8Rng::seed_from_u64(plan.seed ^ plan.index as u64),
            encoders: (0..plan.server_workers)
                .map(|_| Encoder::default())
                .collect(),
            poll,
            socket,
            host: Host::new(cfg),
            next_fresh: 0,
            released: VecDeque::new(),
            upcoming: VecDeque::with_capacity(BUCKET_AHEAD + 1),
            vanished: HashSet::new(),
            quarantine: VecDeque::new(),
            quarantine_for,
            held: VecDeque::new(),
            vanish_after_ack: Vec::new(),
            attacker: (!plan.attacks.is_empty()).then(|| {
                Attacker::new(
                    &plan.attacks,
                    plan.attack_rate,
                    plan.index,
                    plan.close,
                    &Config::default(),
                )
            }),
            live: 0,
            freed: 0,
            rx: vec![0; wire::MAX_DATAGRAM + 1],
            scratch: Vec::new(),
            burst: Vec::with_capacity(wire::MAX_RECORDS),
            started: Instant::now(),
            at: Instant::now(),
            out: Outcome {
                opened: 0,
                accounted: 0,
                runaway: 0,
                closed: [0; REASONS],
                stats: teardown_engine::Stats::default(),
                dropped_to_server: 0,
                dropped_to_client: 0,
                to_vanished: 0,
                malformed: 0,
                send_failures: 0,
                datagrams_sent: 0,
                datagrams_received: 0,
                active_us: hist(),
                passive_us: hist(),
                first_open: None,
                last_open: None,
                completed_at_last_open: 0,
                full_at: None,
                completed_at_full: 0,
                last_close: None,
                peak_live: 0,
                attacks: Vec::new(),
                attack_other_replies: 0,
            },
            plan,
        })
    }

    /// Runs until `stop`; `done` is raised once every connection is accounted for.
    pub fn run(mut self, progress: &Progress, stop: &AtomicBool) -> anyhow::Result<Outcome> {
        let mut events = Events::with_capacity(16);
        self.started = Instant::now();
        if let Some(a) = &mut self.attacker {
            a.start();
        }
        loop {
            let timeout = self.next_wakeup().min(Duration::from_millis(20));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            if !events.is_empty() {
                self.drain(progress)?;
            }
            self.tick();
            self.publish(progress);
            if stop.load(Relaxed) {
                break;
            }
        }
        self.out.stats = *self.host.stats();
        if let Some(a) = &self.attacker {
            self.out.attacks = a.counts().collect();
            self.out.attack_other_replies = a.other_replies();
        }
        Ok(self.out)
    }

    fn publish(&self, p: &Progress) {
        p.opened.store(self.out.opened, Relaxed);
        p.accounted.store(self.out.accounted, Relaxed);
        p.completed.store(completed(&self.out.closed), Relaxed);
        for s in State::ALL {
            p.population[s as usize].store(self.host.population(s) as u64, Relaxed);
        }
        if self.finished() {
            p.done.store(true, Relaxed);
        }
    }

    fn next_wakeup(&self) -> Duration {
        let mut next = [
            self.host.poll_timeout(),
            self.held.front().map(|h| h.0),
            self.quarantine.front().map(|q| q.0),
            self.attacker.as_ref().and_then(Attacker::next_probe),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| self.plan.clock.real_until(t))
        .unwrap_or(Duration::from_secs(1));
        if self.out.opened < self.plan.connections && self.live < self.plan.concurrency {
            next = next.min(Duration::from_millis(1));
        }
        if self.attacker.is_some() && !self.finished() {
            next = next.min(Duration::from_millis(1));
        }
        next
    }

    /// Receives until the socket would block, which under a steady load may be
    /// long: timers, opens and the progress are serviced on the way.
    fn drain(&mut self, progress: &Progress) -> anyhow::Result<()> {
        let mut since_tick = 0;
        loop {
            match self.socket.recv_from(&mut self.rx) {
                Ok((n, _)) => {
                    self.on_datagram(n);
                    since_tick += 1;
                    if since_tick == TICK_EVERY {
                        since_tick = 0;
                        self.tick();
                        self.publish(progress);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn on_datagram(&mut self, n: usize) {
        self.out.datagrams_received += 1;
        self.at = Instant::now();
        let now = self.plan.clock.at(self.at);
        let Ok(records) = wire::decode(&self.rx[..n]) else {
            self.out.malformed += 1;
            return;
        };
        for seg in records {
            if let Some(a) = &mut self.attacker {
                // Replies to the attacker's made-up tuples reach the attacker only.
                if a.intercept(&seg) {
                    continue;
                }
            }
            if self.plan.loss_to_client.drops(&mut self.rng, &seg) {
                self.out.dropped_to_client += 1;
                continue;
            }
            if !self.vanished.is_empty() && self.vanished.contains(&seg.receiver_tuple()) {
                self.out.to_vanished += 1;
                continue;
            }
            if let Some(a) = &mut self.attacker {
                // The attacker sees the state each segment meets.
                a.observe(&seg, self.host.state(&seg.receiver_tuple()));
                self.host.handle(now, &seg);
            } else {
                self.burst.push(seg);
            }
        }
        handle_burst(&mut self.host, now, &self.burst);
        self.burst.clear();
        self.vanish_acked(now);
        self.app(now);
        self.send(false);
    }

    fn tick(&mut self) {
        self.at = Instant::now();
        let now = self.plan.clock.at(self.at);
        self.host.handle_timeout(now);
        self.vanish_acked(now);
        while let Some(tuple) = pop_due(&mut self.quarantine, now) {
            self.vanished.remove(&tuple);
            self.released.push_back(tuple);
        }
        while let Some(tuple) = pop_due(&mut self.held, now) {
            let _ = self.host.close(now, tuple);
        }
        self.open(now);
        self.attack(now);
        self.app(now);
        self.send(true);
        self.out.peak_live = self.out.peak_live.max(self.live);
    }

    /// Opens as many connections as the rate, the concurrency and the quota allow.
    fn open(&mut self, now: Time) {
        let allowed = if self.plan.rate > 0.0 {
            let due = crate::due_at_rate(self.started, self.plan.rate);
            due.min(self.plan.connections)
        } else {
            self.plan.connections
        };
        let mut budget = OPEN_BATCH + std::mem::take(&mut self.freed);
        while self.out.opened < allowed && self.live < self.plan.concurrency && budget > 0 {
            let Some(tuple) = self.take_tuple() else {
                return;
            };
            budget -= 1;
            if self.host.connect(now, tuple).is_err() {
                // Still in the table (cannot happen for released tuples); try later.
                self.released.push_back(tuple);
                return;
            }
            self.out.first_open.get_or_insert_with(Instant::now);
            self.out.opened += 1;
            self.live += 1;
            if self.live == self.plan.concurrency && self.out.full_at.is_none() {
                self.out.full_at = Some(Instant::now());
                self.out.completed_at_full = completed(&self.out.closed);
            }
            if let Some(a) = &mut self.attacker {
                a.opened(tuple);
            }
            if self.out.opened == self.plan.connections {
                self.out.last_open = Some(Instant::now());
                self.out.completed_at_last_open = completed(&self.out.closed);
            }
        }
    }

    /// The next tuple to open. With a million connections resident the
    /// connect's lookup of a tuple not in the table misses the cache on its
    /// index bucket, and that miss was most of the connect; the tuples are
    /// known in advance, so each one's bucket is asked for a few opens before
    /// its connect, as `handle_burst` does for arriving segments. The order
    /// of the tuples is unchanged.
    fn take_tuple(&mut self) -> Option<Tuple> {
        while self.upcoming.len() <= BUCKET_AHEAD {
            let Some(tuple) = self.next_tuple() else {
                break;
            };
            // A segment from the server names the tuple as the table keys it.
            let from_server = Segment::new(&tuple.reversed(), Flags::SYN, 0, 0, 0, 0);
            self.host.prefetch(&from_server, Prefetch::Bucket);
            self.upcoming.push_back(tuple);
        }
        self.upcoming.pop_front()
    }

    fn next_tuple(&mut self) -> Option<Tuple> {
        let (lo, hi) = self.plan.ports;
        let span = (hi - lo) as u64 + 1;
        if self.next_fresh < span * self.plan.ips as u64 {
            let k = self.next_fresh;
            self.next_fresh += 1;
            // Port-major order: consecutive opens use different IPs and ports.
            let ip = CLIENT_NET
                + self.plan.index as u32 * self.plan.ips
                + (k % self.plan.ips as u64) as u32;
            let port = lo + (k / self.plan.ips as u64) as u16;
            return Some(Tuple {
                local_ip: ip,
                remote_ip: u32::from_be_bytes(SERVER_IP),
                local_port: port,
                remote_port: SERVER_PORT,
            });
        }
        self.released.pop_front()
    }

    /// The client application.
    fn app(&mut self, now: Time) {
        loop {
            self.scratch.extend(self.host.events());
            if self.scratch.is_empty() {
                return;
            }
            for i in 0..self.scratch.len() {
                let ev = self.scratch[i];
                match ev {
                    Event::Established { tuple } if self.plan.close == CloseMode::Client => {
                        if self.plan.hold.is_zero() {
                            let _ = self.host.close(now, tuple);
                        } else {
                            self.held.push_back((now + self.plan.hold, tuple));
                        }
                    }
                    Event::PeerClosed { tuple } => {
                        // Vanish right after ACKing the server's FIN: at once if
                        // the ACK is queued, else once the delayed ACK leaves.
                        if self.plan.close == CloseMode::Server && self.runs_away() {
                            if self.host.ack_pending(&tuple) {
                                self.vanish_after_ack.push(tuple);
                            } else {
                                self.vanish(now, tuple);
                            }
                        } else {
                            let _ = self.host.close(now, tuple);
                        }
                    }
                    Event::StateChanged {
                        tuple,
                        to: State::FinWait2,
                        ..
                    } if self.plan.close == CloseMode::Client && self.runs_away() => {
                        // Vanish right after our FIN was acknowledged.
                        self.vanish(now, tuple);
                    }
                    Event::Closed {
                        tuple,
                        reason,
                        role,
                        since_close,
                        ..
                    } => {
                        self.out.closed[reason.index()] += 1;
                        if let Some(a) = &mut self.attacker {
                            a.closed(now, tuple, reason);
                        }
                        self.account();
                        self.released.push_back(tuple);
                        if let Some(d) = since_close {
                            let us = (self.plan.clock.to_real(d).as_micros() as u64).max(1);
                            match role {
                                Role::Active => self.out.active_us.saturating_record(us),
                                Role::Passive => self.out.passive_us.saturating_record(us),
                                Role::None => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            self.scratch.clear();
        }
    }

    /// Sends the attack segments due, while this worker still has connections
    /// to open or to see closed, and closes the probed connections still ESTABLISHED.
    fn attack(&mut self, now: Time) {
        let Some(a) = &mut self.attacker else {
            return;
        };
        while let Some(t) = a.due_probe(now) {
            if self.host.state(&t) == State::Established {
                let _ = self.host.close(now, t);
            }
        }
        if self.out.opened == self.plan.connections && self.live == 0 {
            return;
        }
        let n = self.plan.server_workers;
        let (encoders, socket, server, out) = (
            &mut self.encoders,
            &self.socket,
            self.plan.server,
            &mut self.out,
        );
        a.fire(now, &self.host, &mut self.rng, &mut |seg: &Segment| {
            pack(seg, n, encoders, socket, server, out);
        });
    }

    /// Every connection of the quota is accounted for.
    fn finished(&self) -> bool {
        self.out.opened == self.plan.connections && self.live == 0
    }

    fn runs_away(&mut self) -> bool {
        self.plan.runaway > 0.0 && self.rng.gen::<f64>() < self.plan.runaway
    }

    /// The runaways whose delayed ACK has gone out (queued) vanish now; one
    /// closed meanwhile was accounted for by its Closed event.
    fn vanish_acked(&mut self, now: Time) {
        let mut i = 0;
        while i < self.vanish_after_ack.len() {
            let tuple = self.vanish_after_ack[i];
            if self.host.ack_pending(&tuple) {
                i += 1;
                continue;
            }
            self.vanish_after_ack.swap_remove(i);
            if self.host.state(&tuple) != State::Closed {
                self.vanish(now, tuple);
            }
        }
    }

    fn vanish(&mut self, now: Time, tuple: Tuple) {
        self.host.forget(&tuple);
        if let Some(a) = &mut self.attacker {
            a.vanished(&tuple);
        }
        self.vanished.insert(tuple);
        self.quarantine
            .push_back((now + self.quarantine_for, tuple));
        self.out.runaway += 1;
        self.account();
    }

    fn account(&mut self) {
        self.live -= 1;
        self.freed += 1;
        self.out.accounted += 1;
        self.out.last_close = Some(self.at);
    }

    /// Applies the link's loss toward the server, then packs each segment for the
    /// server worker that owns its tuple.
    fn send(&mut self, all: bool) {
        let n = self.plan.server_workers;
        for seg in self.host.transmits() {
            if self.plan.loss_to_server.drops(&mut self.rng, &seg) {
                self.out.dropped_to_server += 1;
                continue;
            }
            pack(
                &seg,
                n,
                &mut self.encoders,
                &self.socket,
                self.plan.server,
                &mut self.out,
            );
        }
        if all {
            for (w, enc) in self.encoders.iter_mut().enumerate() {
                if !enc.is_empty() {
                    send_datagram(&self.socket, self.plan.server, w, enc, &mut self.out);
                }
            }
        }
    }
}

/// Packs one segment for the server worker that owns its tuple; sends the
/// datagram once full.
fn pack(
    seg: &Segment,
    workers: usize,
    encoders: &mut [Encoder],
    socket: &UdpSocket,
    server: SocketAddr,
    out: &mut Outcome,
) {
    let w = if workers == 1 {
        0
    } else {
        route(&seg.receiver_tuple(), workers)
    };
    let enc = &mut encoders[w];
    enc.push(seg);
    if enc.is_full() {
        send_datagram(socket, server, w, enc, out);
    }
}

fn send_datagram(
    socket: &UdpSocket,
    base: SocketAddr,
    worker: usize,
    enc: &mut Encoder,
    out: &mut Outcome,
) {
    let mut to = base;
    to.set_port(base.port() + worker as u16);
    match socket.send_to(enc.datagram(), to) {
        Ok(_) => out.datagrams_sent += 1,
        Err(_) => out.send_failures += enc.len() as u64,
    }
    enc.clear();
}
