//! The teardown after the request reached the server, for one set of RTOs:
//! FIN-WAIT-1 as a chain over the closer's attempts, the passive closer's
//! LAST-ACK and the TIME-WAIT restarts it causes, then every state's mean time.

use teardown_engine::config::{Config, ATO_MIN};

use super::retransmit::{arrival_within, first_arrival_delay, give_up, schedule};
use super::{Closer, Times, Workload};

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

/// How long an orphaned FIN-WAIT-2 waits for the peer's FIN at most:
/// `tcp_fin_time()`, the larger of `tcp_fin_timeout` and 3.5 RTO, or its
/// [`fin_wait2_parts`] together.
pub(crate) fn fin_wait2_lifetime(cfg: &Config, rto: f64) -> f64 {
    match fin_wait2_parts(cfg, rto) {
        Some((full, mini)) => full + mini,
        None => fin_time(cfg, rto),
    }
}

/// On Linux, past TIME-WAIT's length: the excess on the full socket, then
/// the excess again, at least 3.5 RTO, on the mini-socket
/// (`Config::fin_wait2_keepalive`, `tcp_keepalive_timer`); `None` otherwise.
pub(crate) fn fin_wait2_parts(cfg: &Config, rto: f64) -> Option<(f64, f64)> {
    let excess = fin_time(cfg, rto) - cfg.time_wait.as_secs_f64();
    (cfg.fin_wait2_keepalive && excess > 0.0).then(|| (excess, excess.max(3.5 * rto)))
}

/// `tcp_fin_time()`: `tcp_fin_timeout`, at least 3.5 RTO.
fn fin_time(cfg: &Config, rto: f64) -> f64 {
    cfg.fin_timeout.as_secs_f64().max(3.5 * rto)
}

/// The delay of a peer's ACK of our first FIN it receives: the delayed ACK
/// (`ATO_MIN`: `tcp_fin` enters pingpong mode, `tcp_send_delayed_ack`) when
/// the profile delays it, cut short by the peer's FIN after `app_delay` (a
/// runaway peer has none: it waits the delayed ACK out, then vanishes); a
/// duplicate is answered at once.
fn fin_ack_delay(w: &Workload, runaway: bool) -> f64 {
    let ato = ATO_MIN.as_secs_f64();
    match (w.host.delayed_ack, runaway) {
        (false, _) => 0.0,
        (true, true) => ato,
        (true, false) => ato.min(w.app_delay.as_secs_f64()),
    }
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
    let delack = fin_ack_delay(w, runaway);
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
        mean += acked * (tk + rtt + delack) + dup * (tk + rtt);
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

/// Mean seconds in each state after the request reached the server, for one
/// set of RTOs: the server's (`rto_s`, its response and, when it closes first,
/// its FIN), the client's (`rto_c`, its FIN) and the server's for its FIN when
/// the client closes first (`rto_sf`).
pub(super) struct Phase {
    pub(super) server: Times,
    pub(super) client: Times,
    pub(super) tw_share: f64,
    pub(super) tw_extension: f64,
    pub(super) tw_restarts: f64,
    pub(super) fin_wait_2_held: f64,
    pub(super) fin_wait_2_full: f64,
}

pub(super) fn phase(w: &Workload, rto_s: f64, rto_c: f64, rto_sf: f64) -> Phase {
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
    let fin_wait2_timeout = fin_wait2_lifetime(cfg, rto_active);
    // FIN-WAIT-2: a staying peer's FIN comes app_delay after its ACK, and later still
    // if lost; a runaway's never comes (tcp_fin_timeout, seed case 5). An orphan
    // waits for it at most the FIN-WAIT-2 timeout, then goes (`tcp_fin_timeout`:
    // the peer's late FIN meets no socket and draws an RST, no TIME-WAIT).
    let app_delay = w.app_delay.as_secs_f64();
    let lingering = match (w.lingering, w.close) {
        (Some(l), Closer::Server) => Some(l.as_secs_f64()),
        _ => None,
    };
    // The orphan's wait ends `fin_wait2_timeout` after the descriptor goes: at
    // once, or after the lingering close's hold.
    let orphan_until = lingering.unwrap_or(0.0) + fin_wait2_timeout;
    // FIN-WAIT-2 starts when the peer's (delayed) ACK arrives: its FIN comes
    // this long after.
    let peer_fin_after = app_delay - fin_ack_delay(w, false);
    let (stay_fw2, in_time) = match stay.fin_wait_2 {
        Some(fw2) => (fw2, 1.0),
        None => {
            let (wait, in_time) = arrival_within(&passive_sched, p, peer_fin_after, orphan_until);
            (stay.to_fin_wait_2 * wait, in_time)
        }
    };
    // A staying peer's FIN-WAIT-2 seconds within its first `t`: the mean of
    // min(wait, t).
    let stay_within = |t: f64| match stay.fin_wait_2 {
        Some(fw2) => fw2.min(stay.to_fin_wait_2 * t),
        None => stay.to_fin_wait_2 * arrival_within(&passive_sched, p, peer_fin_after, t).0,
    };
    // Past 60 s on Linux the orphan's first part is a full socket: an orphan
    // against tcp_max_orphans that takes no bucket.
    let fin_wait_2_full = match fin_wait2_parts(cfg, rto_active) {
        Some((full, _)) => {
            let from = lingering.unwrap_or(0.0);
            (1.0 - f) * (stay_within(from + full) - stay_within(from))
                + f * away.to_fin_wait_2 * full
        }
        None => 0.0,
    };
    let (fw2, fin_wait_2_held) = match lingering {
        // nginx: the descriptor is held until the client's FIN or the lingering
        // timeout; the connection then orphans for tcp_fin_timeout.
        Some(l) => {
            let held = (1.0 - f) * stay_within(l) + f * away.to_fin_wait_2 * l;
            (
                (1.0 - f) * stay_fw2 + f * away.to_fin_wait_2 * (l + fin_wait2_timeout),
                held,
            )
        }
        None => (
            (1.0 - f) * stay_fw2 + f * away.to_fin_wait_2 * fin_wait2_timeout,
            0.0,
        ),
    };
    let tw_share = (1.0 - f) * (1.0 - stay.gave_up - stay.to_fin_wait_2 * (1.0 - in_time));
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
        fin_wait_2_full,
    }
}
