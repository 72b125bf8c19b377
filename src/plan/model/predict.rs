//! [`predict`]: the handshake by enumeration, then the teardown once per set
//! of RTOs the ends come out of it with, then populations by Little's law.

use teardown_engine::config::TwOverflow;

use super::retransmit::{backed_off, rto_after, schedule, Rtt};
use super::teardown::phase;
use super::{Closer, Prediction, Times, Workload, MODELLED};
use crate::plan::handshake;

struct LastAckSummary {
    tw_restarts: f64,
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
    let app_timeout = w.app_timeout.as_secs_f64();
    let handshake = handshake::enumerate(cfg, p, rtt / 2.0, &rto_of, app_timeout);
    // Group the ways by their RTO pair: the rest depends on nothing else.
    let mut groups: Vec<(f64, f64, f64, f64)> = Vec::new();
    // A failed handshake holds its states all the same, and goes no further.
    let failed = handshake.failed;
    let mut server_times = Times {
        syn_received: failed.syn_received,
        ..Times::default()
    };
    let mut client_times = Times {
        syn_sent: failed.syn_sent,
        established: failed.client_waiting,
        fin_wait_1: failed.client_fin_wait_1,
        ..Times::default()
    };
    for o in &handshake.completed {
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
                backed_off(o.server_rto, k as u32, rto_max)
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
                    backed_off(o.client_rto, o.client_requests - 1, rto_max)
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
    let (mut tw_share, mut tw_ext, mut tw_restarts) = (0.0, 0.0, 0.0);
    let (mut fin_wait_2_held, mut fin_wait_2_full) = (0.0, 0.0);
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
        fin_wait_2_full += weight * ph.fin_wait_2_full;
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
    // The first part of a FIN-WAIT-2 past 60 s is a full socket, in no bucket.
    let orphans = if cfg.tw_overflow == TwOverflow::Skip {
        holder.fin_wait_2 - w.rate * (fin_wait_2_held + fin_wait_2_full)
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
        handshakes_failed: failed.per_completed,
        tw_share,
        tw_time,
        tw_restarts: la.tw_restarts,
        fin_wait_2_held,
        fin_wait_2_full,
        tw_uncapped,
        tw_overflow_per_sec,
        tw_overflow_rate: if tw_share > 0.0 {
            cap / (tw_share * tw_time)
        } else {
            f64::INFINITY
        },
    }
}
