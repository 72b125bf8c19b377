//! The analytic model behind `teardown plan`: mean time in each state from the
//! engine's timer rules and the retransmission schedule under loss, then
//! populations by Little's law (population = rate x mean time in state).
//!
//! The workload is the simulator's standard one, so that `--verify` compares like
//! with like: the client connects and sends a request, the server answers with one
//! response segment, the first closer closes as soon as its part is done, and the
//! passive closer's application closes as soon as the peer's FIN arrives (plus
//! `app_delay`). Loss is independent per segment with probability `p` each way.
//!
//! The engine's segments: the server's FIN rides on its response (`send_fin`
//! sets it on the queued data segment) and the passive closer's ACK rides on its
//! FIN (a queued pure ACK is coalesced into the next segment).
//!
//! Retransmission schedule (`tcp_retransmit_timer`): attempt k is sent at
//! t_k = sum_{i<k} min(rto * 2^i, rto_max). Which rto depends on the handshake
//! ([`super::handshake`], enumerated over every loss pattern): after a first
//! sample m, rto = m + max(2m, rto_min) (`tcp_rtt_estimator`); after k
//! retransmitted SYNs or SYN-ACKs there is no sample (Karn) and the backoff stays,
//! rto = 1 s x 2^k, unless timestamps are on: then the answer's TSecr samples
//! the copy the peer recorded and clears the backoff (`tcp_ack_update_rtt`,
//! `tcp_rtt_tsopt_us`), in the handshake and for the response alike. The rest of the model runs once per set of RTOs the ends come
//! out with, weighted. An orphan gives up at the first expiry t_k (k >= 2) with
//! t_k >= `Config::model_timeout` (102.2 s for 8 retries from 200 ms), checked
//! only when the timer fires, as Linux does.

use std::time::Duration;

use serde::Serialize;

use teardown_engine::config::{Config, TwOverflow};
use teardown_engine::state::State;

use super::handshake;

struct LastAckSummary {
    tw_restarts: f64,
}

/// Who sends the first FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closer {
    Server,
    Client,
}

/// Everything the model needs.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Connections closed (and, in steady state, opened) per second.
    pub rate: f64,
    pub rtt: Duration,
    /// Segment loss probability, each direction.
    pub loss: f64,
    /// Fraction of passive closers that vanish right after ACKing the FIN (seed case 5).
    pub runaway: f64,
    pub close: Closer,
    /// Time the passive closer's application takes to close after the peer's FIN.
    pub app_delay: Duration,
    /// The server closes by nginx's lingering close (`shutdown(SHUT_WR)`, then
    /// reads until the client's FIN or this long without data: `lingering_timeout`,
    /// 5 s by default). Its FIN-WAIT-2 keeps the descriptor, so it is a full
    /// socket, never times out and takes no bucket; only when the wait ends
    /// without a FIN does close() leave an orphaned FIN-WAIT-2 for
    /// `tcp_fin_timeout` (linux-rules.md: only orphans time out).
    pub lingering: Option<Duration>,
    pub host: Config,
}

impl Workload {
    /// The RTO after a first RTT sample `m` (`tcp_rtt_estimator`, `__tcp_set_rto`):
    /// m + max(2m, rto_min), within [rto_min, rto_max].
    pub fn rto_of(&self, m: f64) -> f64 {
        let (lo, hi) = (
            self.host.rto_min.as_secs_f64(),
            self.host.rto_max.as_secs_f64(),
        );
        (m + (2.0 * m).max(lo)).clamp(lo, hi)
    }
}

/// Mean seconds a connection spends in each state, on each host.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Times {
    pub syn_sent: f64,
    pub syn_received: f64,
    pub established: f64,
    pub fin_wait_1: f64,
    pub fin_wait_2: f64,
    pub closing: f64,
    pub time_wait: f64,
    pub close_wait: f64,
    pub last_ack: f64,
}

impl Times {
    pub fn get(&self, st: State) -> f64 {
        match st {
            State::SynSent => self.syn_sent,
            State::SynReceived => self.syn_received,
            State::Established => self.established,
            State::FinWait1 => self.fin_wait_1,
            State::FinWait2 => self.fin_wait_2,
            State::Closing => self.closing,
            State::TimeWait => self.time_wait,
            State::CloseWait => self.close_wait,
            State::LastAck => self.last_ack,
            State::Closed => 0.0,
        }
    }

    pub fn set(&mut self, st: State, v: f64) {
        match st {
            State::SynSent => self.syn_sent = v,
            State::SynReceived => self.syn_received = v,
            State::Established => self.established = v,
            State::FinWait1 => self.fin_wait_1 = v,
            State::FinWait2 => self.fin_wait_2 = v,
            State::Closing => self.closing = v,
            State::TimeWait => self.time_wait = v,
            State::CloseWait => self.close_wait = v,
            State::LastAck => self.last_ack = v,
            State::Closed => {}
        }
    }

    /// Sum over all states: how long the host holds the 4-tuple.
    pub fn total(&self) -> f64 {
        MODELLED.iter().map(|s| self.get(*s)).sum()
    }
}

/// The states the model predicts, in report order.
pub const MODELLED: [State; 9] = [
    State::TimeWait,
    State::FinWait1,
    State::FinWait2,
    State::Closing,
    State::CloseWait,
    State::LastAck,
    State::Established,
    State::SynReceived,
    State::SynSent,
];

/// The model's answer for one workload.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// Mean seconds per connection in each state (TIME-WAIT before the bucket cap).
    pub server_times: Times,
    pub client_times: Times,
    /// Populations: rate x time, TIME-WAIT capped by `max_tw_buckets`.
    pub server: Times,
    pub clients: Times,
    /// RTO both ends use after the handshake sample.
    pub rto: f64,
    /// Share of closes that reach TIME-WAIT (before the cap).
    pub tw_share: f64,
    /// Mean TIME-WAIT lifetime including restarts by retransmitted FINs.
    pub tw_time: f64,
    /// Retransmitted FINs arriving in TIME-WAIT, per TIME-WAIT entry (each leaves a
    /// stale slot in the engine's ring).
    pub tw_restarts: f64,
    /// Mean seconds per connection the active closer spends in FIN-WAIT-2 with its
    /// descriptor still open (lingering close); the rest of its FIN-WAIT-2 is
    /// orphaned, a mini-socket in `tcp_max_tw_buckets`.
    pub fin_wait_2_held: f64,
    /// TIME-WAIT population the closer would hold without the cap.
    pub tw_uncapped: f64,
    /// Entries per second that skip TIME-WAIT because the cap is reached.
    pub tw_overflow_per_sec: f64,
    /// Close rate above which the cap is reached.
    pub tw_overflow_rate: f64,
}

/// Send times of attempts 0..n on a doubling schedule capped at `max` per step.
fn schedule(rto: f64, max: f64, n: usize) -> Vec<f64> {
    let mut t = Vec::with_capacity(n);
    let (mut at, mut step) = (0.0, rto);
    for _ in 0..n {
        t.push(at);
        at += step.min(max);
        step = (step * 2.0).min(max);
    }
    t
}

/// The engine's retry budget: attempts sent and the time the sender gives up
/// (`tcp_write_timeout` checks `elapsed >= model_timeout` only at expiries k >= 2).
fn give_up(cfg: &Config, rto: f64, limit: u8, base: Duration) -> (Vec<f64>, f64) {
    let budget = cfg.model_timeout(limit, base).as_secs_f64();
    let t = schedule(rto, cfg.rto_max.as_secs_f64(), 64);
    let k = (2..t.len())
        .find(|&k| t[k] >= budget)
        .unwrap_or(t.len() - 1);
    (t[..k].to_vec(), t[k])
}

/// Mean wait until the first success of independent attempts at times `t`, success
/// k completing at t_k + `extra`, first attempt with probability `s0`, later `s`;
/// all failing costs `fail_at`.
fn first_success(t: &[f64], s0: f64, s: f64, extra: f64, fail_at: f64) -> f64 {
    let (mut left, mut mean) = (1.0, 0.0);
    for (k, &tk) in t.iter().enumerate() {
        let p = if k == 0 { s0 } else { s };
        mean += left * p * (tk + extra);
        left *= 1.0 - p;
    }
    mean + left * fail_at
}

/// Mean time from a sender's first transmission until its segment first arrives,
/// each copy lost with probability `p`, attempts at `t` (copies of one segment).
fn first_arrival_delay(t: &[f64], p: f64) -> f64 {
    first_success(t, 1.0 - p, 1.0 - p, 0.0, t.last().copied().unwrap_or(0.0))
}

/// What happens to the active closer's FIN (FIN-WAIT-1).
#[derive(Clone)]
struct FinWait1 {
    mean: f64,
    /// Probability the FIN's ACK arrived on its own (FIN-WAIT-2 is entered), rather
    /// than with the peer's FIN (seed case 2: straight to TIME-WAIT).
    to_fin_wait_2: f64,
    /// Probability the closer gave up (runaway peer, every ACK lost).
    gave_up: f64,
    /// Mean FIN-WAIT-2 seconds per connection when the peer's ACK rides on its
    /// FIN (it closes at once): then FIN-WAIT-2 is entered only by a duplicate's
    /// ACK and lasts until the peer's retransmitted FIN.
    fin_wait_2: Option<f64>,
}

/// FIN-WAIT-1 as a two-state chain over the closer's attempts: the peer has not
/// seen the FIN yet, or has seen it (and then answers duplicates with an ACK, unless
/// it ran away). `data` segments precede the FIN on the first attempt and must
/// arrive too (the server's response); retransmissions carry them with the FIN.
fn fin_wait_1(w: &Workload, rto: f64, data: u32, runaway: bool, peer: &[f64]) -> FinWait1 {
    let (t, end) = give_up(&w.host, rto, w.host.orphan_retry_limit(), w.host.rto_min);
    fin_wait_1_on(w, &t, end, data, runaway, peer)
}

/// FIN-WAIT-1's chain over attempts at times `t` (giving up at `end`), the
/// first carrying `data` segments before the FIN.
fn fin_wait_1_on(
    w: &Workload,
    t: &[f64],
    end: f64,
    data: u32,
    runaway: bool,
    peer: &[f64],
) -> FinWait1 {
    let p = w.loss;
    let rtt = w.rtt.as_secs_f64();
    if !runaway && w.app_delay.is_zero() {
        return fin_wait_1_coalesced(w, t, end, data, peer);
    }
    let (mut unseen, mut seen) = (1.0, 0.0);
    let (mut mean, mut to_fw2) = (0.0, 0.0);
    for (k, &tk) in t.iter().enumerate() {
        let delivered = if k == 0 {
            (1.0 - p).powi(1 + data as i32)
        } else {
            1.0 - p
        };
        let ack = 1.0 - p;
        // Unseen -> the peer gets it now and ACKs it on its own.
        let got = unseen * delivered;
        let acked = got * ack;
        // Seen -> a duplicate draws one ACK, unless the peer is gone.
        let dup = if runaway { 0.0 } else { seen * delivered * ack };
        mean += (acked + dup) * (tk + rtt);
        to_fw2 += acked + dup;
        seen = seen - dup + got - acked;
        unseen -= got;
    }
    let left = unseen + seen;
    FinWait1 {
        mean: mean + left * end,
        to_fin_wait_2: to_fw2,
        gave_up: left,
        fin_wait_2: None,
    }
}

/// FIN-WAIT-1 when the peer's application closes at once: its ACK rides on its
/// FIN (the engine coalesces a queued pure ACK into the next segment), so the
/// in-order FIN is answered by one FIN+ACK, straight to TIME-WAIT. If that is
/// lost the peer sits in LAST-ACK, retransmitting its FIN on its own RTO (`peer`
/// offsets) and answering our duplicate FINs with a bare ACK, which puts us in
/// FIN-WAIT-2 until its next FIN copy arrives: a race between the two timers.
fn fin_wait_1_coalesced(w: &Workload, t: &[f64], end: f64, data: u32, peer: &[f64]) -> FinWait1 {
    let p = w.loss;
    let q = 1.0 - p;
    let rtt = w.rtt.as_secs_f64();
    let (mut unseen, mut mean, mut to_fw2, mut fw2, mut left) = (1.0, 0.0, 0.0, 0.0, 0.0);
    for (k0, &t0) in t.iter().enumerate() {
        let delivered = if k0 == 0 { q.powi(1 + data as i32) } else { q };
        let got = unseen * delivered;
        unseen -= got;
        mean += got * q * (t0 + rtt);
        // Its FIN+ACK was lost: the two timers race from here.
        let mut in_fw1 = got * p;
        let mut cohorts: Vec<(f64, f64)> = Vec::new();
        let mut events: Vec<(f64, bool)> = t[k0 + 1..].iter().map(|&tk| (tk + rtt, true)).collect();
        events.extend(peer.iter().skip(1).map(|&u| (t0 + rtt + u, false)));
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, ours) in events {
            if ours {
                // Our duplicate reaches the peer, its ACK comes back: FIN-WAIT-2.
                let moved = in_fw1 * q * q;
                in_fw1 -= moved;
                mean += moved * at;
                to_fw2 += moved;
                cohorts.push((moved, at));
            } else {
                // The peer's FIN copy arrives: TIME-WAIT from either state.
                mean += in_fw1 * q * at;
                in_fw1 *= p;
                for (mass, since) in &mut cohorts {
                    fw2 += *mass * q * (at - *since);
                    *mass *= p;
                }
            }
        }
        left += in_fw1;
    }
    left += unseen;
    FinWait1 {
        mean: mean + left * end,
        to_fin_wait_2: to_fw2,
        gave_up: left,
        fin_wait_2: Some(fw2),
    }
}

/// The passive closer's FIN: mean LAST-ACK time, and the TIME-WAIT it causes at
/// the active closer: restarts (each retransmitted copy that arrives restarts the
/// 60 s timer, seed cases 3 and 4) and the extension of the lifetime they cause.
struct LastAck {
    mean: f64,
    tw_extension: f64,
    tw_restarts: f64,
}

fn last_ack(w: &Workload, rto: f64) -> LastAck {
    let p = w.loss;
    let (t, end) = give_up(&w.host, rto, w.host.orphan_retry_limit(), w.host.rto_min);
    let rtt = w.rtt.as_secs_f64();
    let q = 1.0 - p;
    // none: no copy arrived yet; last[l]: copies arrived, the latest at attempt l,
    // and its ACK was lost, so the passive closer keeps retransmitting.
    let mut none = 1.0;
    let mut last = vec![0.0; t.len()];
    let (mut mean, mut ext, mut restarts) = (0.0, 0.0, 0.0);
    for j in 0..t.len() {
        let mut arrive_lost_ack = 0.0;
        // First arrival.
        let a = none * q;
        mean += a * q * (t[j] + rtt);
        arrive_lost_ack += a * p;
        none -= a;
        // Later arrivals restart TIME-WAIT: the lifetime grows by t_j - t_l.
        for l in 0..j {
            let a = last[l] * q;
            if a == 0.0 {
                continue;
            }
            ext += a * (t[j] - t[l]);
            restarts += a;
            mean += a * q * (t[j] + rtt);
            arrive_lost_ack += a * p;
            last[l] -= a;
        }
        last[j] = arrive_lost_ack;
    }
    let left = none + last.iter().sum::<f64>();
    LastAck {
        mean: mean + left * end,
        tw_extension: ext,
        tw_restarts: restarts,
    }
}

/// The engine's RTT estimator (`Conn::rtt_sample`, Linux `tcp_rtt_estimator`)
/// in seconds.
#[derive(Default)]
struct Rtt {
    srtt: f64,
    mdev: f64,
    rttvar: f64,
}

impl Rtt {
    fn sample(&mut self, m: f64, rto_min: f64) {
        if self.srtt == 0.0 {
            self.srtt = m;
            self.mdev = 2.0 * m;
            self.rttvar = (2.0 * m).max(rto_min);
            return;
        }
        let err = m - self.srtt;
        self.srtt += err / 8.0;
        let step = if err < 0.0 {
            let d = -err - self.mdev / 4.0;
            if d > 0.0 {
                d / 8.0
            } else {
                d
            }
        } else {
            err - self.mdev / 4.0
        };
        self.mdev = (self.mdev + step).max(0.0);
        let top = self.mdev.max(rto_min);
        self.rttvar = if top > self.rttvar {
            top
        } else {
            self.rttvar - (self.rttvar - top) / 4.0
        };
    }

    fn rto(&self) -> f64 {
        self.srtt + self.rttvar
    }
}

/// The RTO after a handshake sample `first` (if any) and a sample `m`.
fn rto_after(first: Option<f64>, m: f64, rto_min: f64, rto_max: f64) -> f64 {
    let mut est = Rtt::default();
    if let Some(f) = first {
        est.sample(f, rto_min);
    }
    est.sample(m, rto_min);
    est.rto().clamp(rto_min, rto_max)
}

/// Mean seconds in each state after the request reached the server, for one
/// set of RTOs: the server's (`rto_s`, its response and, when it closes first,
/// its FIN), the client's (`rto_c`, its FIN) and the server's for its FIN when
/// the client closes first (`rto_sf`).
struct Phase {
    server: Times,
    client: Times,
    tw_share: f64,
    tw_extension: f64,
    tw_restarts: f64,
    fin_wait_2_held: f64,
}

fn phase(w: &Workload, rto_s: f64, rto_c: f64, rto_sf: f64) -> Phase {
    let p = w.loss;
    let cfg = &w.host;
    let rtt = w.rtt.as_secs_f64();
    let rto_max = cfg.rto_max.as_secs_f64();
    let f = w.runaway;
    let (rto_active, rto_passive) = match w.close {
        Closer::Server => (rto_s, rto_c),
        Closer::Client => (rto_c, rto_sf),
    };
    let active_sched = schedule(rto_active, rto_max, 16);
    let passive_sched = schedule(rto_passive, rto_max, 16);
    // One response segment, retransmitted on the server's RTO.
    let resp_delay = first_arrival_delay(&schedule(rto_s, rto_max, 16), p);
    let mut server = Times::default();
    let mut client = Times::default();
    let (active, passive, data_before_fin) = match w.close {
        // The FIN rides on the response (`send_fin` sets it on the queued data
        // segment): one segment, lost or delivered together.
        Closer::Server => (&mut server, &mut client, 0),
        Closer::Client => (&mut client, &mut server, 0),
    };
    // FIN-WAIT-1 and its outcome, for peers that stay and peers that run away.
    let stay = fin_wait_1(w, rto_active, data_before_fin, false, &passive_sched);
    let away = if f > 0.0 {
        fin_wait_1(w, rto_active, data_before_fin, true, &passive_sched)
    } else {
        stay.clone()
    };
    // The active closer's FIN first reaching the peer.
    let fin_delay = first_arrival_delay(&active_sched, p);
    // The passive closer's FIN (when it stays): LAST-ACK and what TIME-WAIT sees.
    let la = last_ack(w, rto_passive);
    let fin_wait2_timeout = cfg.fin_timeout.as_secs_f64().max(3.5 * rto_active);
    // FIN-WAIT-2: a staying peer's FIN comes app_delay after its ACK, and later still
    // if lost; a runaway's never comes (tcp_fin_timeout, seed case 5).
    let peer_fin_wait = w.app_delay.as_secs_f64() + first_arrival_delay(&passive_sched, p);
    let stay_fw2 = stay
        .fin_wait_2
        .unwrap_or(stay.to_fin_wait_2 * peer_fin_wait);
    let (fw2, fin_wait_2_held) = match (w.lingering, w.close) {
        // nginx: the descriptor is held until the client's FIN or the lingering
        // timeout; a runaway client's connection then orphans for tcp_fin_timeout.
        (Some(l), Closer::Server) => {
            let l = l.as_secs_f64();
            let held =
                (1.0 - f) * stay_fw2.min(stay.to_fin_wait_2 * l) + f * away.to_fin_wait_2 * l;
            (held + f * away.to_fin_wait_2 * fin_wait2_timeout, held)
        }
        _ => (
            (1.0 - f) * stay_fw2 + f * away.to_fin_wait_2 * fin_wait2_timeout,
            0.0,
        ),
    };
    let tw_share = (1.0 - f) * (1.0 - stay.gave_up);
    active.fin_wait_1 = (1.0 - f) * stay.mean + f * away.mean;
    active.fin_wait_2 = fw2;
    passive.close_wait = (1.0 - f) * w.app_delay.as_secs_f64();
    passive.last_ack = (1.0 - f) * la.mean;
    match w.close {
        Closer::Server => {
            // Client: until the response, with the FIN on it, arrives.
            client.established = rtt / 2.0 + resp_delay;
        }
        Closer::Client => {
            // Client: until the response arrives (it closes on it). Server: until
            // the client's FIN arrives.
            client.established = rtt / 2.0 + resp_delay;
            server.established = rtt + resp_delay + fin_delay;
        }
    }
    Phase {
        server,
        client,
        tw_share,
        tw_extension: la.tw_extension,
        tw_restarts: la.tw_restarts,
        fin_wait_2_held,
    }
}

/// Runs the model: the handshake by enumeration ([`handshake`]), then the rest
/// for each pair of RTOs the ends come out of it with.
pub fn predict(w: &Workload) -> Prediction {
    let p = w.loss;
    let cfg = &w.host;
    let rtt = w.rtt.as_secs_f64();
    let rto_min = cfg.rto_min.as_secs_f64();
    let rto_max = cfg.rto_max.as_secs_f64();
    let rto_of = |m: f64| (m + (2.0 * m).max(rto_min)).clamp(rto_min, rto_max);
    let rto = rto_of(rtt);
    let ways = handshake::enumerate(cfg, p, rtt / 2.0, &rto_of);
    // Group the ways by their RTO pair: the rest depends on nothing else.
    let mut groups: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut server_times = Times::default();
    let mut client_times = Times::default();
    for o in &ways {
        server_times.syn_received += o.weight * o.syn_received;
        server_times.established += o.weight * o.server_waiting;
        client_times.syn_sent += o.weight * o.syn_sent;
        client_times.established += o.weight * o.client_waiting;
        // The client's FIN goes on the RTO it has once the response arrived. A
        // request sent once is sampled when the response ACKs it, m = rtt plus the
        // response's own delay (copy k goes at t_k of the server's schedule); a
        // retransmitted one gives no sample and keeps its backoff (Karn), unless
        // timestamps time it: the response echoes the request copy that arrived,
        // the same m (`tcp_rtt_tsopt_us`), and the backoff is cleared.
        let ts = cfg.timestamps;
        let resp = schedule(o.server_rto, rto_max, 4);
        let share = |k: usize| {
            if k + 1 < resp.len() {
                p.powi(k as i32) * (1.0 - p)
            } else {
                p.powi(k as i32)
            }
        };
        // The server's FIN when the client closes first: the client's FIN+ACK
        // samples the response if it went once (m = rtt); a retransmitted
        // response gives no sample and keeps the backoff, unless the FIN+ACK's
        // TSecr (the copy that arrived) gives m = rtt.
        let server_fin_rto = |k: usize| {
            if k == 0 || ts {
                let mut est = Rtt::default();
                if let Some(m) = o.server_m {
                    est.sample(m, rto_min);
                }
                est.sample(rtt, rto_min);
                est.rto().clamp(rto_min, rto_max)
            } else {
                (o.server_rto * f64::from(1u32 << k.min(20))).min(rto_max)
            }
        };
        let copies: Vec<(f64, f64, f64)> = (0..resp.len())
            .map(|k| {
                // A response lost past the client's request timer (armed
                // `client_rto` after the request) draws a retransmitted request,
                // whose duplicate the server ACKs at once: that ACK frees the
                // request with no sample and backoff 1 (Karn), or with
                // timestamps samples the duplicate, m = rtt.
                let arrives = rtt + resp[k];
                let timer_first = o.client_requests == 1 && o.client_rto < arrives;
                let rto_c = if timer_first && !ts {
                    (o.client_rto * 2.0).min(rto_max)
                } else if o.client_requests == 1 || ts {
                    let mut est = Rtt::default();
                    if let Some(m) = o.client_m {
                        est.sample(m, rto_min);
                    }
                    est.sample(if timer_first { rtt } else { arrives }, rto_min);
                    est.rto().clamp(rto_min, rto_max)
                } else {
                    let backoff = f64::from(1u32 << (o.client_requests - 1).min(20));
                    (o.client_rto * backoff).min(rto_max)
                };
                (k, share(k), rto_c, server_fin_rto(k))
            })
            .flat_map(|(k, share, rto_c, rto_sf)| {
                // The client's FIN+ACK samples a response sent once. When it is
                // lost, either the server's timer fires first and the response
                // goes again (backoff + 1, no sample; with timestamps the ACK of
                // that copy samples rtt), or the client's FIN comes again
                // rtt + rto_c after the response and samples that.
                let lost_fin = (w.close == Closer::Client && k == 0).then(|| {
                    let rto_sf = if o.server_rto >= rtt + rto_c {
                        rto_after(o.server_m, rtt + rto_c, rto_min, rto_max)
                    } else if ts {
                        rto_sf
                    } else {
                        (o.server_rto * 2.0).min(rto_max)
                    };
                    (share * p, rto_c, rto_sf)
                });
                let kept = if lost_fin.is_some() {
                    share * (1.0 - p)
                } else {
                    share
                };
                std::iter::once((kept, rto_c, rto_sf)).chain(lost_fin)
            })
            .collect();
        for (share, rto_c, rto_sf) in copies {
            let weight = o.weight * share;
            let same = |a: f64, b: f64| (a - b).abs() < 1e-6;
            match groups
                .iter_mut()
                .find(|g| same(g.0, o.server_rto) && same(g.1, rto_c) && same(g.2, rto_sf))
            {
                Some(g) => g.3 += weight,
                None => groups.push((o.server_rto, rto_c, rto_sf, weight)),
            }
        }
    }
    let (mut tw_share, mut tw_ext, mut tw_restarts, mut fin_wait_2_held) = (0.0, 0.0, 0.0, 0.0);
    for (rto_s, rto_c, rto_sf, weight) in groups {
        let ph = phase(w, rto_s, rto_c, rto_sf);
        for st in MODELLED {
            server_times.set(st, server_times.get(st) + weight * ph.server.get(st));
            client_times.set(st, client_times.get(st) + weight * ph.client.get(st));
        }
        tw_share += weight * ph.tw_share;
        tw_ext += weight * ph.tw_share * ph.tw_extension;
        tw_restarts += weight * ph.tw_share * ph.tw_restarts;
        fin_wait_2_held += weight * ph.fin_wait_2_held;
    }
    let tw_time = cfg.time_wait.as_secs_f64()
        + if tw_share > 0.0 {
            tw_ext / tw_share
        } else {
            0.0
        };
    let tw_restarts = if tw_share > 0.0 {
        tw_restarts / tw_share
    } else {
        0.0
    };
    match w.close {
        Closer::Server => server_times.time_wait = tw_share * tw_time,
        Closer::Client => client_times.time_wait = tw_share * tw_time,
    }
    let la = LastAckSummary { tw_restarts };

    // Little's law; TIME-WAIT capped by tcp_max_tw_buckets.
    let scale = |t: &Times| {
        let mut out = Times::default();
        for st in MODELLED {
            out.set(st, w.rate * t.get(st));
        }
        out
    };
    let mut server = scale(&server_times);
    let mut clients = scale(&client_times);
    let holder = match w.close {
        Closer::Server => &mut server,
        Closer::Client => &mut clients,
    };
    let tw_uncapped = holder.time_wait;
    let cap = cfg.max_tw_buckets as f64;
    // The cap is per host: it binds the server; each client host has its own.
    // Linux: an orphan's FIN-WAIT-2 is a mini-socket too and is refused when the
    // buckets are full (`tcp_time_wait` -> TCPTimeWaitOverflow, the socket is
    // done), so TIME-WAIT and orphaned FIN-WAIT-2 share the cap: each keeps
    // cap / demand of its population (bounds::buckets). FreeBSD evicts the oldest
    // TIME-WAIT and has no such mini-socket.
    let orphans = if cfg.tw_overflow == TwOverflow::Skip {
        holder.fin_wait_2 - w.rate * fin_wait_2_held
    } else {
        0.0
    };
    let demand = tw_uncapped + orphans;
    let (tw_overflow_per_sec, capped) = if w.close == Closer::Server && demand > cap {
        let kept = cap / demand;
        holder.fin_wait_2 -= orphans * (1.0 - kept);
        // The table holds its share of `cap`; the rest of the closes skip it.
        (
            w.rate * tw_share - tw_uncapped * kept / tw_time,
            tw_uncapped * kept,
        )
    } else {
        (0.0, tw_uncapped)
    };
    holder.time_wait = capped;
    Prediction {
        server_times,
        client_times,
        server,
        clients,
        rto,
        tw_share,
        tw_time,
        tw_restarts: la.tw_restarts,
        fin_wait_2_held,
        tw_uncapped,
        tw_overflow_per_sec,
        tw_overflow_rate: if tw_share > 0.0 {
            cap / (tw_share * tw_time)
        } else {
            f64::INFINITY
        },
    }
}
