//! The three-way handshake under loss, by enumerating every pattern of lost
//! segments down to a probability floor (no random source): the races that a
//! per-segment formula misses, and the RTO each end carries into the data phase.
//!
//! The engine's rules followed here:
//! * The client's SYN goes again on the initial RTO for its first
//!   `syn_linear_timeouts` retransmissions, then doubling
//!   (`tcp_retransmit_timer`); the server's SYN-ACK doubles from the first
//!   (`reqsk_timer_handler`). Each end gives up by `tcp_write_timeout`'s rules
//!   (`model::retransmit::syn_given_up` for the client).
//! * SYN-RECEIVED seeing the client's retransmitted SYN re-sends its SYN-ACK at
//!   once (`tcp_check_req`), besides its own timer: a client whose first SYN-ACK
//!   was lost is usually answered at its first retransmission. That copy is a
//!   retransmission too (`inet_rtx_syn_ack`): the SYN-ACK is no longer timed.
//! * An established client answers a retransmitted SYN-ACK with a challenge ACK
//!   (RFC 5961 §4, one per 500 ms), which establishes the server even when the
//!   request was lost.
//! * The client's ACK rides on its request (the pure ACK is coalesced).
//! * Karn: a retransmission clears the timing. Without timestamps an end that
//!   retransmitted its SYN (or SYN-ACK) starts the data phase with no RTT sample
//!   and the 3 s RTO of `tcp_init_metrics` (RFC 6298 §5.7), whatever the
//!   handshake's backoff; an end with a sample m has `m + max(2m, rto_min)`.
//! * With timestamps the answer's TSecr gives the sample anyway
//!   (`tcp_rtt_tsopt_us`) and clears the backoff. It times the copy the peer
//!   recorded, not the one that drew the answer: SYN-RECEIVED keeps the TSval of
//!   the SYN that opened it (a retransmitted SYN only draws a SYN-ACK,
//!   `tcp_check_req`), and an established client keeps the first SYN-ACK's (a
//!   later copy draws a challenge ACK before `tcp_replace_ts_recent`). A SYN-ACK
//!   lost once thus gives the client m = 1 s + RTT, an RTO near 3 s.

use teardown_engine::config::{Config, RTO_FALLBACK};

use super::model::retransmit::{syn_given_up, syn_rto};

/// Branches below this probability are dropped (the mass is renormalised).
const FLOOR: f64 = 1e-9;

/// One way of getting through the handshake.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub weight: f64,
    /// Client in SYN-SENT.
    pub syn_sent: f64,
    /// Server in SYN-RECEIVED.
    pub syn_received: f64,
    /// Server ESTABLISHED before the request arrives (a challenge ACK let it in).
    pub server_waiting: f64,
    /// Client ESTABLISHED until its request reaches the server.
    pub client_waiting: f64,
    /// RTO each end starts the data phase with.
    pub client_rto: f64,
    /// The server's RTT sample from the handshake, if it took one: its SYN-ACK
    /// timed (not retransmitted) or, with timestamps, the ACK's TSecr.
    pub server_m: Option<f64>,
    /// The client's, from its SYN timed or the SYN-ACK's TSecr.
    pub client_m: Option<f64>,
    /// Copies of the request the client sent.
    pub client_requests: u32,
    pub server_rto: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    /// The server's SYN-ACK timer (retransmission `n`).
    ServerTimer(u8),
    /// The client's SYN timer (attempt `n`).
    ClientSyn(u8),
    /// The client's request retransmission `n`.
    ClientRequest(u8),
    ServerGetsSyn,
    ClientGetsSynAck,
    /// An ACK (challenge) or the request reaches the server.
    ServerGetsAck {
        request: bool,
    },
}

#[derive(Clone)]
struct Branch {
    weight: f64,
    events: Vec<(f64, Ev)>,
    server_at: Option<f64>,
    server_timing: bool,
    server_est: Option<f64>,
    client_est: Option<f64>,
    /// Send time of the SYN copy that opened the server (its ts_recent).
    syn_sent_at: f64,
    /// Send time of the SYN-ACK copy the client took (its ts_recent).
    synack_sent_at: f64,
    client_m: Option<f64>,
    client_retrans: u32,
    client_rto: f64,
    client_requests: u32,
    last_challenge: Option<f64>,
}

struct Ctx<'a> {
    cfg: &'a Config,
    p: f64,
    d: f64,
    /// RFC 7323 timestamps on both ends.
    ts: bool,
    rto_of: &'a dyn Fn(f64) -> f64,
    out: Vec<Outcome>,
    kept: f64,
}

impl Branch {
    fn push(&mut self, at: f64, ev: Ev) {
        self.events.push((at, ev));
    }

    fn pop(&mut self) -> Option<(f64, Ev)> {
        let i = (0..self.events.len()).min_by(|&a, &b| {
            let (x, y) = (self.events[a], self.events[b]);
            x.0.total_cmp(&y.0).then(x.1.cmp(&y.1))
        })?;
        Some(self.events.swap_remove(i))
    }
}

/// Sends a segment arriving `d` later as `ev`: two branches.
fn send(ctx: &mut Ctx, b: Branch, at: f64, ev: Ev) {
    let mut got = b.clone();
    got.weight *= 1.0 - ctx.p;
    got.push(at + ctx.d, ev);
    run(ctx, got);
    let mut lost = b;
    lost.weight *= ctx.p;
    run(ctx, lost);
}

fn run(ctx: &mut Ctx, mut b: Branch) {
    if b.weight < FLOOR {
        return;
    }
    let cfg = ctx.cfg;
    let init = cfg.rto_initial.as_secs_f64();
    let max = cfg.rto_max.as_secs_f64();
    let fallback = RTO_FALLBACK.as_secs_f64().min(max);
    while let Some((t, ev)) = b.pop() {
        match ev {
            Ev::ClientSyn(n) => {
                if b.client_est.is_some() || syn_given_up(cfg, u32::from(n), t) {
                    continue;
                }
                if n > 0 {
                    b.client_retrans += 1;
                }
                b.push(t + syn_rto(cfg, u32::from(n)), Ev::ClientSyn(n + 1));
                return send(ctx, b, t, Ev::ServerGetsSyn);
            }
            Ev::ServerGetsSyn => match (b.server_at, b.server_est) {
                (None, _) => {
                    b.server_at = Some(t);
                    b.syn_sent_at = t - ctx.d;
                    b.server_timing = true;
                    b.push(t + init, Ev::ServerTimer(1));
                    return send(ctx, b, t, Ev::ClientGetsSynAck);
                }
                (Some(_), None) => {
                    b.server_timing = false;
                    return send(ctx, b, t, Ev::ClientGetsSynAck);
                }
                _ => {}
            },
            Ev::ServerTimer(n) => {
                if b.server_est.is_some() || n > cfg.synack_retries {
                    continue;
                }
                b.server_timing = false;
                b.push(
                    t + (init * f64::from(1u32 << n.min(20))).min(max),
                    Ev::ServerTimer(n + 1),
                );
                return send(ctx, b, t, Ev::ClientGetsSynAck);
            }
            Ev::ClientGetsSynAck => {
                if b.client_est.is_none() {
                    b.client_est = Some(t);
                    b.synack_sent_at = t - ctx.d;
                    b.client_m = if b.client_retrans == 0 {
                        Some(t)
                    } else if ctx.ts {
                        Some(t - b.syn_sent_at)
                    } else {
                        None
                    };
                    b.client_rto = match b.client_m {
                        Some(m) => (ctx.rto_of)(m),
                        None => fallback,
                    };
                    b.push(t + b.client_rto, Ev::ClientRequest(1));
                    b.client_requests = 1;
                    return send(ctx, b, t, Ev::ServerGetsAck { request: true });
                }
                // A SYN in a synchronized state: challenge ACK, one per 500 ms.
                if b.last_challenge.is_some_and(|l| t - l < 0.5) {
                    continue;
                }
                b.last_challenge = Some(t);
                return send(ctx, b, t, Ev::ServerGetsAck { request: false });
            }
            Ev::ClientRequest(n) => {
                let rto = (b.client_rto * f64::from(1u32 << n.min(20))).min(max);
                b.push(t + rto, Ev::ClientRequest(n + 1));
                b.client_requests += 1;
                return send(ctx, b, t, Ev::ServerGetsAck { request: true });
            }
            Ev::ServerGetsAck { request } => {
                let Some(s0) = b.server_at else { continue };
                if b.server_est.is_none() {
                    b.server_est = Some(t);
                }
                if request {
                    let (c, e) = (b.client_est.unwrap_or(t), b.server_est.unwrap_or(t));
                    let server_m = if b.server_timing {
                        Some(e - s0)
                    } else if ctx.ts {
                        Some(e - b.synack_sent_at)
                    } else {
                        None
                    };
                    let server_rto = match server_m {
                        Some(m) => (ctx.rto_of)(m),
                        None => fallback,
                    };
                    ctx.kept += b.weight;
                    ctx.out.push(Outcome {
                        weight: b.weight,
                        syn_sent: c,
                        syn_received: e - s0,
                        server_waiting: t - e,
                        client_waiting: t - c,
                        client_rto: b.client_rto,
                        client_requests: b.client_requests,
                        client_m: b.client_m,
                        server_m,
                        server_rto,
                    });
                    return;
                }
            }
        }
    }
}

/// Every way through the handshake at loss `p` each way and one-way delay `d`,
/// weights summing to 1; `rto_of(m)` is the RTO after a first sample `m`;
/// timestamps as `cfg.timestamps`.
pub fn enumerate(cfg: &Config, p: f64, d: f64, rto_of: &dyn Fn(f64) -> f64) -> Vec<Outcome> {
    let mut ctx = Ctx {
        cfg,
        p,
        d,
        ts: cfg.timestamps,
        rto_of,
        out: Vec::new(),
        kept: 0.0,
    };
    let b = Branch {
        weight: 1.0,
        events: vec![(0.0, Ev::ClientSyn(0))],
        server_at: None,
        server_timing: false,
        server_est: None,
        client_est: None,
        syn_sent_at: 0.0,
        synack_sent_at: 0.0,
        client_m: None,
        client_retrans: 0,
        client_rto: 0.0,
        client_requests: 0,
        last_challenge: None,
    };
    run(&mut ctx, b);
    let kept = ctx.kept.max(f64::MIN_POSITIVE);
    for o in &mut ctx.out {
        o.weight /= kept;
    }
    ctx.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rto(m: f64) -> f64 {
        m + (2.0 * m).max(0.2)
    }

    #[test]
    fn no_loss_is_one_round_trip() {
        let cfg = Config::default();
        let o = enumerate(&cfg, 0.0, 0.005, &rto);
        assert_eq!(o.len(), 1);
        let o = o[0];
        assert!((o.syn_sent - 0.010).abs() < 1e-12);
        assert!((o.syn_received - 0.010).abs() < 1e-12);
        assert_eq!(o.server_waiting, 0.0);
        assert!((o.client_rto - 0.21).abs() < 1e-12);
    }

    /// At 10 % loss the first attempt fails with 1 - 0.9² = 0.19, but when only the
    /// SYN-ACK was lost the retransmitted SYN draws an immediate SYN-ACK next to
    /// the server's own: the second round fails far less often than 0.19.
    #[test]
    fn the_retransmitted_syn_races_the_server_timer() {
        let cfg = Config {
            timestamps: false,
            ..Config::default()
        };
        let o = enumerate(&cfg, 0.1, 0.005, &rto);
        let w: f64 = o.iter().map(|o| o.weight).sum();
        assert!((w - 1.0).abs() < 1e-9);
        let late = |after: f64| -> f64 {
            o.iter()
                .filter(|o| o.syn_sent > after)
                .map(|o| o.weight)
                .sum()
        };
        assert!((late(0.5) - 0.19).abs() < 1e-6, "{}", late(0.5));
        // Second round lost: SYN lost twice (0.1 x 0.19) or SYN-ACK lost then
        // every copy lost (0.09 x (0.1 + 0.9 x 0.19... )): about 0.021, not 0.036.
        let second = late(1.5);
        assert!(second > 0.018 && second < 0.024, "{second}");
        // A client that retransmitted its SYN starts with the 3 s fallback,
        // not 1 s doubled.
        assert!(o
            .iter()
            .filter(|o| o.syn_sent > 0.5 && o.syn_sent < 1.5)
            .all(|o| (o.client_rto - 3.0).abs() < 1e-12));
    }

    /// The client's SYNs go at 0, 1, 2, 3, 4 and 5 s (`syn_linear_timeouts`
    /// 4), not at 0, 1 and 3 s: at 10 % loss the third SYN, at 2 s, adds to
    /// the handshakes that end just after 2 s (where the server's SYN-ACK
    /// timer ends some anyway, 1 s after the second SYN opened it) at least
    /// those whose first two SYNs were lost and whose third was answered,
    /// 0.1² × 0.9².
    #[test]
    fn syns_keep_the_initial_rto_for_four_retransmissions() {
        let share_near_2_s = |cfg: &Config| -> f64 {
            enumerate(cfg, 0.1, 0.005, &rto)
                .iter()
                .filter(|o| o.syn_sent > 1.5 && o.syn_sent < 2.5)
                .map(|o| o.weight)
                .sum()
        };
        let linux = Config::default();
        let doubling = Config {
            syn_linear_timeouts: 0,
            ..linux.clone()
        };
        let (near, without) = (share_near_2_s(&linux), share_near_2_s(&doubling));
        assert!(near - without > 0.0081, "{near} against {without}");
    }

    /// Without timestamps a SYN-ACK resent for the client's retransmitted SYN
    /// is not timed either: when only the first SYN-ACK was lost and the SYN
    /// at 1 s drew the answer, neither end has a sample, and both go on with
    /// 3 s (`tcp_init_metrics`).
    #[test]
    fn a_syn_ack_resent_for_a_duplicate_syn_leaves_no_sample() {
        let cfg = Config {
            timestamps: false,
            ..Config::default()
        };
        let o = enumerate(&cfg, 0.1, 0.005, &rto);
        let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
        let answered: Vec<_> = o
            .iter()
            .filter(|o| near(o.syn_sent, 1.01) && near(o.syn_received, 1.01))
            .collect();
        assert!(!answered.is_empty());
        for o in answered {
            assert_eq!((o.server_m, o.client_m), (None, None));
            assert_eq!((o.server_rto, o.client_rto), (3.0, 3.0));
        }
    }

    /// With timestamps the SYN-ACK's TSecr samples the client after a
    /// retransmitted SYN: m = 10 ms when the first SYN was lost (its second copy
    /// opened the server), 1.01 s when only the SYN-ACK was (the server echoes
    /// the first SYN's TSval).
    #[test]
    fn timestamps_sample_the_copy_the_server_recorded() {
        let o = enumerate(&Config::default(), 0.1, 0.005, &rto);
        let second: Vec<_> = o
            .iter()
            .filter(|o| o.syn_sent > 0.5 && o.syn_sent < 1.5)
            .collect();
        assert!(!second.is_empty());
        for o in &second {
            let m = o.client_m.expect("a TSecr sample");
            let near = |x: f64| (m - x).abs() < 1e-9;
            assert!(near(0.01) || near(1.01), "{m}");
            assert!((o.client_rto - rto(m)).abs() < 1e-12);
        }
        assert!(second
            .iter()
            .any(|o| (o.client_rto - rto(1.01)).abs() < 1e-9));
        assert!(second
            .iter()
            .any(|o| (o.client_rto - rto(0.01)).abs() < 1e-9));
    }
}
