//! The off-path attacker of `--attack`: the simulator's attack kinds
//! (`teardown::sim::AttackKind`) played over the wire against `teardown serve`.
//!
//! The attacker lives in a client worker, so it knows the 4-tuples of that
//! worker's connections (it owns them). It reads their sequence numbers only
//! where the kind says so: `inwindow-rst` aims inside the server's window (the
//! server's `rcv_nxt` is the client's `snd_nxt`) and `old-duplicate` replays a
//! segment from the connection's past. Its segments go to the server worker that
//! `route()` names, like any client segment, but bypass the client's lossy link.
//!
//! It cannot see the server's table, so it judges by what the clients see (see
//! "Attacks" in docs/service.md): a target is chosen by the client's state, a
//! connection counts as killed when the client sees it end by RST after an attack
//! (but see [`Attacker::closed`]), and replies count when they reach an attacked
//! client within [`WATCH`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use teardown::service::{CloseMode, SERVER_IP, SERVER_PORT};
use teardown::sim::{AttackCounts, AttackKind};
use teardown_engine::{CloseReason, Flags, Host, Segment, State, Time, Tuple};

use crate::model::Serial;

/// Source addresses of the attacker's made-up 4-tuples: 172.16.0.0/16, one IP per
/// (kind, client worker), so a reply names the kind that drew it and the server's
/// reply-routing map grows by at most six entries per worker.
const ATTACK_NET: u32 = 0xac10_0000;
/// Most recent connections remembered as targets.
const RING: usize = 4096;
/// How long after an attack a reply reaching the attacked client is put down to it.
pub const WATCH: Duration = Duration::from_secs(1);
/// Engine time after an RST attack at which a client still in ESTABLISHED closes,
/// so that a connection whose server side was killed (silently, as an acceptable
/// RST ends it) draws the server's RST instead of waiting forever for a FIN.
pub(crate) const PROBE: Duration = Duration::from_secs(5);
/// Attack segments sent per call at most, so a late timer cannot make a burst.
const BATCH: u64 = 256;

/// The attacker of one client worker.
pub struct Attacker {
    kinds: Vec<AttackKind>,
    /// Segments per real second, this worker's share.
    rate: f64,
    worker: u32,
    started: Instant,
    sent: u64,
    counts: Vec<AttackCounts>,
    /// Out-of-window ACKs drawn by `old-duplicate` (RFC 9293 §3.10.7.4) and the
    /// TIME-WAIT ACKs drawn by `syn-timewait` below rcv_nxt, which the engine
    /// counts as `oow_acks`, not as challenge ACKs.
    oow_acks: Vec<u64>,
    /// Replies to made-up tuples other than RSTs (SYN-ACKs to off-target SYNs).
    other_replies: u64,
    /// Recently opened client tuples, overwritten round-robin.
    live: Vec<Tuple>,
    live_next: usize,
    /// Connections whose server side should be in TIME-WAIT: the client saw its
    /// LAST-ACK acknowledged (`--close server`), until half of TIME-WAIT is over.
    time_wait: VecDeque<(Time, Tuple)>,
    time_wait_for: Duration,
    /// Live connections attacked, with every kind that hit them (bit k for
    /// `kinds[k]`).
    attacked: HashMap<Tuple, u8>,
    /// Attacked connections whose client, in TIME-WAIT, took the server's FIN
    /// again: the server had not seen the client's first ACK in time.
    fin_again: HashSet<Tuple>,
    watch: HashMap<Tuple, (u8, Instant)>,
    watch_order: VecDeque<(Instant, Tuple)>,
    /// RST-attacked connections to probe, each with the serial of the
    /// connection the application held on the tuple when it was attacked.
    probes: VecDeque<(Time, Tuple, Serial)>,
    wnd: u32,
    close: CloseMode,
}

impl Attacker {
    pub fn new(
        kinds: &[AttackKind],
        rate: f64,
        worker: usize,
        close: CloseMode,
        server: &teardown_engine::Config,
    ) -> Attacker {
        debug_assert!(kinds.len() <= 8, "`attacked` keeps the kinds in a u8 mask");
        Attacker {
            kinds: kinds.to_vec(),
            rate,
            worker: worker as u32 & 0xff,
            started: Instant::now(),
            sent: 0,
            counts: vec![AttackCounts::default(); kinds.len()],
            oow_acks: vec![0; kinds.len()],
            other_replies: 0,
            live: Vec::with_capacity(RING),
            live_next: 0,
            time_wait: VecDeque::new(),
            time_wait_for: server.time_wait / 2,
            attacked: HashMap::new(),
            fin_again: HashSet::new(),
            watch: HashMap::new(),
            watch_order: VecDeque::new(),
            probes: VecDeque::new(),
            wnd: server.rcv_wnd as u32,
            close,
        }
    }

    /// Starts the rate clock.
    pub fn start(&mut self) {
        self.started = Instant::now();
    }

    pub fn opened(&mut self, t: Tuple) {
        if self.live.len() < RING {
            self.live.push(t);
        } else {
            self.live[self.live_next] = t;
            self.live_next = (self.live_next + 1) % RING;
        }
    }

    /// A client connection reached CLOSED from `from`. An RST that ends the
    /// client's TIME-WAIT after the server's FIN came to it again is no kill:
    /// a slow ACK let the server retransmit its FIN, and the client's second
    /// ACK found the server closed by its first and drew an RST at rcv_nxt,
    /// which Linux's TIME-WAIT takes (`tcp_rfc1337` off). Both FINs were
    /// acknowledged; the teardown was done. Without the FIN again, an RST in
    /// TIME-WAIT can answer the ACK of a FIN whose sender an attack killed in
    /// LAST-ACK, which is a kill (docs/service.md, "Attacks").
    pub fn closed(&mut self, now: Time, t: Tuple, from: State, reason: CloseReason) {
        let fin_again = self.fin_again.remove(&t);
        if let Some(hit) = self.attacked.remove(&t) {
            let done = from == State::TimeWait && fin_again;
            if reason == CloseReason::Reset && !done {
                let k = self.likeliest_killer(hit);
                self.counts[k].killed += 1;
            }
        }
        if reason == CloseReason::LastAckAcked && self.close == CloseMode::Server {
            if self.time_wait.len() == RING {
                self.time_wait.pop_front();
            }
            self.time_wait.push_back((now + self.time_wait_for, t));
        }
    }

    /// Of the kinds in `hit` (a mask over `kinds`), the one whose segments
    /// kill most often: a tuple an in-window RST has killed may draw a blind
    /// RST before the client sees the end, and that kill is not the blind one's.
    fn likeliest_killer(&self, hit: u8) -> usize {
        (0..self.kinds.len())
            .filter(|k| hit & 1 << k != 0)
            .rev()
            .max_by(|&a, &b| {
                let odds = |k: usize| self.kinds[k].kill_odds(self.wnd);
                odds(a).total_cmp(&odds(b))
            })
            .unwrap_or(0)
    }

    /// A client vanished on purpose (`--runaway-client`): no CLOSED will come.
    pub fn vanished(&mut self, t: &Tuple) {
        self.attacked.remove(t);
        self.fin_again.remove(t);
    }

    /// Takes a segment addressed to one of the attacker's made-up tuples (true), so
    /// it never reaches the client host.
    pub fn intercept(&mut self, seg: &Segment) -> bool {
        if seg.dst_ip & 0xffff_0000 != ATTACK_NET {
            return false;
        }
        let k = ((seg.dst_ip >> 8) & 0xff) as usize;
        match self.counts.get_mut(k) {
            Some(c) if seg.flags.rst() => c.rst_replies += 1,
            _ => self.other_replies += 1,
        }
        true
    }

    /// A server segment about to reach the client host, whose state for the
    /// tuple is `state`: a reply to an attack if the tuple is watched.
    pub fn observe(&mut self, seg: &Segment, state: State) {
        if state == State::TimeWait && seg.flags.fin() {
            let t = seg.receiver_tuple();
            if self.attacked.contains_key(&t) {
                self.fin_again.insert(t);
            }
        }
        let Some(&(k, until)) = self.watch.get(&seg.receiver_tuple()) else {
            return;
        };
        if Instant::now() > until {
            return;
        }
        let kind = self.kinds[k as usize];
        let c = &mut self.counts[k as usize];
        let f = seg.flags;
        if f.rst() {
            c.rst_replies += 1;
        } else if f.syn() && f.ack() {
            // The server's SYN-ACK to a client that has closed: the attack SYN
            // reopened its TIME-WAIT entry (RFC 6191).
            // Counted once: the retransmissions of that SYN-ACK are not new kills.
            if kind == AttackKind::SynTimewait && state == State::Closed {
                c.killed += 1;
                self.watch.remove(&seg.receiver_tuple());
            }
        } else if f == Flags::ACK && seg.len == 0 && quiet(state) {
            if matches!(kind, AttackKind::OldDuplicate | AttackKind::SynTimewait) {
                self.oow_acks[k as usize] += 1;
            } else {
                c.challenge_acks += 1;
            }
        }
    }

    /// Engine time of the next probe.
    pub fn next_probe(&self) -> Option<Time> {
        self.probes.front().map(|p| p.0)
    }

    /// Attacked connections due a probe, with their serials: the caller
    /// closes those still ESTABLISHED, if the application still holds them
    /// (not a newer connection on the tuple, reused within the 5 s of `PROBE`).
    pub fn due_probe(&mut self, now: Time) -> Option<(Tuple, Serial)> {
        match self.probes.front() {
            Some(&(t, tuple, serial)) if t <= now => {
                self.probes.pop_front();
                Some((tuple, serial))
            }
            _ => None,
        }
    }

    /// Sends the attack segments due by now through `out`; `holder` names
    /// the connection the application holds on a tuple (its serial), which
    /// an RST attack's probe is kept for.
    pub fn fire(
        &mut self,
        now: Time,
        host: &Host,
        rng: &mut ChaCha8Rng,
        holder: &impl Fn(&Tuple) -> Option<Serial>,
        out: &mut impl FnMut(&Segment),
    ) {
        let wall = Instant::now();
        while let Some(&(until, t)) = self.watch_order.front() {
            if until > wall {
                break;
            }
            self.watch_order.pop_front();
            if self.watch.get(&t).is_some_and(|w| w.1 <= wall) {
                self.watch.remove(&t);
            }
        }
        while self.time_wait.front().is_some_and(|w| w.0 <= now) {
            self.time_wait.pop_front();
        }
        let due = crate::due_at_rate(self.started, self.rate);
        let mut budget = BATCH;
        while self.sent < due && budget > 0 {
            budget -= 1;
            let k = (self.sent % self.kinds.len() as u64) as usize;
            self.sent += 1;
            let seg = self.one(k, now, host, rng, holder, wall);
            out(&seg);
        }
    }

    fn one(
        &mut self,
        k: usize,
        now: Time,
        host: &Host,
        rng: &mut ChaCha8Rng,
        holder: &impl Fn(&Tuple) -> Option<Serial>,
        wall: Instant,
    ) -> Segment {
        let kind = self.kinds[k];
        let target = self.target(kind, host, rng);
        let on_target = target.is_some();
        let client = target.unwrap_or_else(|| Tuple {
            local_ip: ATTACK_NET | (k as u32) << 8 | self.worker,
            remote_ip: u32::from_be_bytes(SERVER_IP),
            local_port: rng.gen_range(1024..65535),
            remote_port: SERVER_PORT,
        });
        // The client's view: its snd_nxt is the server's rcv_nxt, and the other way round.
        let (snd_nxt, rcv_nxt) = host.sequence(&client).unwrap_or((0, 0));
        let r: u32 = rng.gen();
        let seg = kind.segment(&client, rcv_nxt, snd_nxt, self.wnd, r);
        let c = &mut self.counts[k];
        c.sent += 1;
        c.on_target += on_target as u64;
        if on_target {
            c.expected_killed += kind.kill_odds(self.wnd);
        }
        if on_target && kind != AttackKind::FinUnknown {
            let until = wall + WATCH;
            self.watch.insert(client, (k as u8, until));
            self.watch_order.push_back((until, client));
            if host.state(&client) != State::Closed {
                *self.attacked.entry(client).or_default() |= 1 << k;
            }
            if matches!(kind, AttackKind::BlindRst | AttackKind::InwindowRst) {
                // Only a connection the application holds can be ESTABLISHED
                // at the probe; one it has closed needs none.
                if let Some(serial) = holder(&client) {
                    self.probes.push_back((now + PROBE, client, serial));
                }
            }
        }
        seg
    }

    /// A client tuple whose server side is, as far as the client can tell, in the
    /// state the kind aims at; `fin-unknown` always uses a made-up tuple.
    fn target(&self, kind: AttackKind, host: &Host, rng: &mut ChaCha8Rng) -> Option<Tuple> {
        if kind == AttackKind::FinUnknown {
            return None;
        }
        if kind == AttackKind::SynTimewait {
            if self.time_wait.is_empty() {
                return None;
            }
            let i = rng.gen_range(0..self.time_wait.len());
            return self.time_wait.get(i).map(|w| w.1);
        }
        if self.live.is_empty() {
            return None;
        }
        (0..16).find_map(|_| {
            let t = self.live[rng.gen_range(0..self.live.len())];
            let st = host.state(&t);
            let wanted = match kind {
                // The server has acknowledged our FIN and closed: LAST-ACK.
                AttackKind::SynLastack => st == State::FinWait2,
                _ => st.is_synchronized() && st != State::TimeWait,
            };
            wanted.then_some(t)
        })
    }

    /// Per kind; `fin-unknown` and off-target segments are always on the made-up
    /// tuples, whose every reply the attacker sees.
    pub fn counts(&self) -> impl Iterator<Item = (AttackKind, AttackCounts, u64)> + '_ {
        self.kinds
            .iter()
            .zip(&self.counts)
            .zip(&self.oow_acks)
            .map(|((k, c), o)| (*k, *c, *o))
    }

    pub fn other_replies(&self) -> u64 {
        self.other_replies
    }
}

/// States in which the server has nothing of the client's left to acknowledge,
/// so a pure ACK from it answers the attack: ESTABLISHED (the handshake is done and
/// the client sent no data), CLOSE-WAIT (the client ACKed the server's FIN),
/// FIN-WAIT-2 (our FIN is ACKed already), TIME-WAIT, and CLOSED (a TIME-WAIT target).
fn quiet(s: State) -> bool {
    matches!(
        s,
        State::Established | State::CloseWait | State::FinWait2 | State::TimeWait | State::Closed
    )
}

/// The `attacks` section of the report, summed over the workers, in the
/// simulator's field names.
pub fn report(per_worker: &[Vec<(AttackKind, AttackCounts, u64)>]) -> Value {
    let mut sum: Vec<(AttackKind, AttackCounts, u64)> = Vec::new();
    for w in per_worker {
        for (k, c, o) in w {
            match sum.iter_mut().find(|s| s.0 == *k) {
                Some(s) => {
                    s.1.add(c);
                    s.2 += o;
                }
                None => sum.push((*k, *c, *o)),
            }
        }
    }
    let mut out = Map::new();
    for (k, c, o) in sum {
        out.insert(
            k.key().into(),
            json!({
                "sent": c.sent,
                "on_target": c.on_target,
                "killed": c.killed,
                "challenge_acks": c.challenge_acks,
                "oow_acks": o,
                "rst_replies": c.rst_replies,
                "expected_killed": c.expected_killed,
            }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
