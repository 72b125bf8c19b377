//! The clients, played by the engine: one [`Host`] per worker thread behind one
//! UDP socket, over the lossy link of `teardown::link`.
//!
//! Client worker `w` owns the simulated IPs `10.128.0.0 + w * ips + k`, so the
//! server can send every reply for an IP back to the one socket that used it.
//! Each outgoing segment goes to the server worker
//! [`route`](teardown::service::route) names for its 4-tuple, at the server's
//! base port + that index.
//!
//! Here the worker and its loop (receive, tick, publish); `open` opens
//! connections, `app` plays the application on the host's events, `slots`
//! are its share of `--concurrency`, `timeout` is its `--app-timeout`, `udp`
//! moves datagrams, `outcome` is what the worker reports when it stops.

mod app;
mod open;
mod outcome;
mod slots;
mod timeout;
mod udp;

use std::collections::{HashSet, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use teardown::link::Loss;
use teardown::service::metrics::completed;
use teardown::service::{Clock, CloseMode};
use teardown::sim::AttackKind;
use teardown::wire::{self, Encoder};
use teardown_engine::driver::BUCKET_AHEAD;
use teardown_engine::time::pop_due;
use teardown_engine::{Config, Event, Host, Segment, State, Time, Tuple};

use crate::attack::Attacker;
pub use outcome::Outcome;
pub(crate) use slots::Serial;
use slots::Slots;
use timeout::AppTimeout;

const SOCKET: Token = Token(0);
/// Datagrams drained between two services of timers and output.
const TICK_EVERY: u32 = 32;

/// What one client worker needs to know.
#[derive(Clone, Debug)]
pub struct Plan {
    pub index: usize,
    pub server: SocketAddr,
    pub server_workers: usize,
    /// Connections this worker opens, at most `concurrency` held open by
    /// the application at once (from connect() to its close()).
    pub connections: u64,
    pub concurrency: usize,
    /// Opens per real second for this worker; 0 means as fast as concurrency allows.
    pub rate: f64,
    pub close: CloseMode,
    /// Engine time between ESTABLISHED and close() with `--close client`.
    pub hold: Duration,
    /// `--app-timeout`: engine time after which a connection still
    /// ESTABLISHED is closed by the application.
    pub app_timeout: Option<Duration>,
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
    /// Those accounted for and those in TIME-WAIT on the client: a TIME-WAIT
    /// entry's teardown is over and its 2*MSL ends by itself, so nothing is
    /// left to wait for (as on the server's side, `server_unsettled`).
    pub settled: AtomicU64,
    /// Connections whose teardown completed (see `metrics::completed`), and
    /// those in TIME-WAIT.
    pub completed: AtomicU64,
    pub population: [AtomicU64; State::COUNT],
    /// [`Outcome::fin_abandoned`]: as many server entries may stay
    /// ESTABLISHED for good (`server::split_unsettled`).
    pub fin_abandoned: AtomicU64,
    /// Every connection of this worker's quota is settled.
    pub done: AtomicBool,
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
    /// By tuple place ([`Plan::place`]): whether a FIN of the connection
    /// there got through the link toward the server, kept only while it
    /// loses segments. One that gives up in FIN-WAIT-1 with none through
    /// leaves the server half-open ([`Outcome::fin_abandoned`]), and is
    /// marked so until its tuple opens again (`app::fin`). A flag by place,
    /// not a set of tuples, for the lossy service runs: a hashed insert and
    /// remove a teardown seemed to cost loadgen's CPU time, though within
    /// the noise of those runs.
    fins_through: Vec<u8>,
    quarantine: VecDeque<(Time, Tuple)>,
    quarantine_for: Duration,
    /// `--hold`: when each connection's close is due, and which connection
    /// on its tuple it was for.
    held: VecDeque<(Time, (Tuple, Serial))>,
    /// Runaway clients whose delayed ACK of the server's FIN has yet to leave:
    /// they vanish once it has.
    vanish_after_ack: Vec<Tuple>,
    app_timeout: Option<AppTimeout>,
    attacker: Option<Attacker>,
    /// Connections opened and not yet accounted for: in the host's table.
    live: usize,
    slots: Slots,
    /// Slots given back since the last `open`: they are refilled whatever
    /// `OPEN_BATCH` says, or a tick that drained 32 datagrams of closes could
    /// free more slots than it refills, and fewer than `concurrency` would
    /// stay open.
    freed: u64,
    /// Since when an open has waited for a 4-tuple: every one of the range
    /// is in the table (most in TIME-WAIT when the clients close first).
    waiting_since: Option<Instant>,
    /// [`Worker::completed`] at the last tick.
    completed_seen: u64,
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
            fins_through: Vec::new(),
            quarantine: VecDeque::new(),
            quarantine_for,
            held: VecDeque::new(),
            vanish_after_ack: Vec::new(),
            app_timeout: plan.app_timeout.map(AppTimeout::new),
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
            slots: Slots::default(),
            freed: 0,
            waiting_since: None,
            completed_seen: 0,
            rx: vec![0; wire::MAX_DATAGRAM + 1],
            scratch: Vec::new(),
            burst: Vec::with_capacity(wire::MAX_RECORDS),
            started: Instant::now(),
            at: Instant::now(),
            out: Outcome::new(),
            plan,
        })
    }

    /// Runs until `stop`; `done` is raised once every connection is settled.
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
        Ok(self.finish())
    }

    /// What the worker reports once stopped.
    fn finish(mut self) -> Outcome {
        self.out.stats = *self.host.stats();
        self.out.time_wait_at_end = self.time_wait() as u64;
        self.stop_waiting();
        if let Some(a) = &self.attacker {
            self.out.attacks = a.counts().collect();
            self.out.attack_other_replies = a.other_replies();
        }
        self.out
    }

    fn publish(&self, p: &Progress) {
        p.opened.store(self.out.opened, Relaxed);
        p.accounted.store(self.out.accounted, Relaxed);
        p.settled
            .store(self.out.accounted + self.time_wait() as u64, Relaxed);
        p.completed.store(self.completed(), Relaxed);
        p.fin_abandoned.store(self.out.fin_abandoned, Relaxed);
        for s in State::ALL {
            p.population[s as usize].store(self.host.population(s) as u64, Relaxed);
        }
        if self.settled() {
            p.done.store(true, Relaxed);
        }
    }

    fn next_wakeup(&self) -> Duration {
        let mut next = [
            self.host.poll_timeout(),
            self.held.front().map(|h| h.0),
            self.quarantine.front().map(|q| q.0),
            self.attacker.as_ref().and_then(Attacker::next_probe),
            self.app_timeout.as_ref().and_then(|t| t.next_sweep),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| self.plan.clock.real_until(t))
        .unwrap_or(Duration::from_secs(1));
        // Also while opens wait for a tuple: TIME-WAIT's expiries free
        // tuples, not slots, and nothing else would wake the loop for them.
        if self.out.opened < self.plan.connections && self.slots.count() < self.plan.concurrency {
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

    fn tick(&mut self) {
        self.at = Instant::now();
        let now = self.plan.clock.at(self.at);
        self.host.handle_timeout(now);
        self.vanish_acked(now);
        while let Some(tuple) = pop_due(&mut self.quarantine, now) {
            self.vanished.remove(&tuple);
            self.released.push_back(tuple);
        }
        self.close_held(now);
        self.open(now);
        self.attack(now);
        self.sweep(now);
        self.app(now);
        self.send(true);
        self.out.peak_live = self.out.peak_live.max(self.live);
        self.note_completions();
    }

    /// Sends the attack segments due, while this worker still has connections
    /// to open or to see closed, and closes the probed connections still ESTABLISHED.
    fn attack(&mut self, now: Time) {
        while let Some((t, serial)) = self.attacker.as_mut().and_then(|a| a.due_probe(now)) {
            if self.holder(&t) == Some(serial) && self.host.state(&t) == State::Established {
                self.close(now, t);
            }
        }
        let Some(a) = &mut self.attacker else {
            return;
        };
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
        // Not `Worker::holder`: `a` borrows the attacker out of `self`.
        let (slots, plan) = (&self.slots, &self.plan);
        let holder = |t: &Tuple| slots.holder(plan.place(t));
        a.fire(
            now,
            &self.host,
            &mut self.rng,
            &holder,
            &mut |seg: &Segment| {
                udp::pack(seg, n, encoders, socket, server, out);
            },
        );
    }

    /// Every connection of the quota is accounted for.
    fn finished(&self) -> bool {
        self.out.opened == self.plan.connections && self.live == 0
    }

    /// Every connection of the quota is accounted for or in TIME-WAIT.
    fn settled(&self) -> bool {
        self.out.opened == self.plan.connections && self.live == self.time_wait()
    }

    /// A client that closed first is done on entering TIME-WAIT, which no
    /// event announces: the last teardown's end is stamped when the count
    /// of those done grows (it falls when an RST kills a TIME-WAIT entry).
    fn note_completions(&mut self) {
        let done = self.completed();
        if done > self.completed_seen {
            self.out.last_close = Some(self.at);
        }
        self.completed_seen = done;
    }

    /// Connections whose teardown is over: completed to CLOSED, or in
    /// TIME-WAIT (its exchange done, 2*MSL running out by itself), as the
    /// server counts its own (`metrics::completed`).
    fn completed(&self) -> u64 {
        completed(&self.out.closed) + self.time_wait() as u64
    }

    /// Live connections in TIME-WAIT: the host holds this worker's live
    /// connections only (a vanished one is forgotten, attacks reach the server).
    fn time_wait(&self) -> usize {
        self.host.population(State::TimeWait)
    }
}

#[cfg(test)]
mod tests;
