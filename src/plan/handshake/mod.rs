//! The three-way handshake under loss, by enumerating every pattern of lost
//! segments down to a probability floor (no random source): the races that a
//! per-segment formula misses, and the RTO each end carries into the data phase.
//!
//! The engine's rules followed here:
//! * The client's SYN goes again on the initial RTO for its first
//!   `syn_linear_timeouts` retransmissions, then doubling
//!   (`tcp_retransmit_timer`); the server's SYN-ACK doubles from the first
//!   (`reqsk_timer_handler`). The client gives up by `tcp_write_timeout`'s
//!   rules (`model::retransmit::syn_given_up`), silently.
//! * The server drops its request (Linux's request socket) at the expiry after
//!   `tcp_synack_retries` retransmissions, silently (`reqsk_timer_handler` ->
//!   `inet_csk_reqsk_queue_drop`; `model::retransmit::synack_dropped`): its
//!   SYN-RECEIVED ends there. A SYN arriving later opens a new request, with
//!   its own timer and retries (`tcp_conn_request`); one arriving at the
//!   instant of the drop is answered first, as the simulator's ties go to the
//!   link. A client's ACK or request that finds no request draws the
//!   listener's RST (`tcp_v4_send_reset`; syncookies only answer after a
//!   recent overflow), and so does one acknowledging another request's ISS
//!   (`tcp_check_req`): the connect() fails (`tcp_reset`). So does a client
//!   that gives up in SYN-SENT, or on its request after `tcp_retries2`.
//!   A failed handshake counts with the time it held each state, and goes
//!   no further. A client host with no connection answers a SYN-ACK with an
//!   RST, which ends the request (`tcp_check_req`'s `embryonic_reset`).
//! * SYN-RECEIVED seeing the client's retransmitted SYN re-sends its SYN-ACK at
//!   once (`tcp_check_req`) and restarts its own timer from then
//!   (`mod_timer_pending` to `reqsk_timeout`): a client whose first SYN-ACK
//!   was lost is usually answered at its first retransmission, and while its
//!   SYNs keep coming the request's timer does not fire. A duplicate within
//!   `tcp_invalid_ratelimit` (500 ms) of the last one answered is not
//!   (`tcp_oow_rate_limited`). That copy is a retransmission too
//!   (`inet_rtx_syn_ack`): the SYN-ACK is no longer timed. It counts in
//!   `num_retrans`, not in the `num_timeout` the drop counts.
//! * An established client answers a retransmitted SYN-ACK with a challenge ACK
//!   (RFC 5961 §4, one per 500 ms), which establishes the server even when the
//!   request was lost.
//! * The client's ACK rides on its request (the pure ACK is coalesced).
//! * The client's application closes a connection still ESTABLISHED
//!   `--app-timeout` after its connect (the simulator's read timeout): what
//!   ends a client whose server dropped its request and whose request's RSTs
//!   were lost, long before `tcp_retries2` would. The client is then an
//!   orphan in FIN-WAIT-1: its FIN waits behind the request (the retransmission
//!   holds the window) and goes with its next copy, which draws the
//!   listener's RST, unless the orphan's budget (`tcp_orphan_retries`,
//!   counted from the request's first transmission) ends it first, silently.
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

mod branch;

use teardown_engine::config::Config;

use branch::{run, Branch, Ctx};

/// One way of getting through the handshake.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub weight: f64,
    /// Client in SYN-SENT.
    pub syn_sent: f64,
    /// Server in SYN-RECEIVED: every request it opened for the connection.
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

/// The handshakes that fail, summed over their ways: the client gave up in
/// SYN-SENT or on its request, or an RST met its ACK once the server had
/// dropped its request. No data phase follows; their time in each state
/// counts all the same. Per handshake that completes, as the planner's rate
/// is of closes: failed ones are connects on top of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failed {
    /// Failed handshakes for each that completes.
    pub per_completed: f64,
    /// Their seconds for each that completes (weight x time): the client in
    /// SYN-SENT, the server in SYN-RECEIVED, the client ESTABLISHED until
    /// the end or its application's close, then FIN-WAIT-1.
    pub syn_sent: f64,
    pub syn_received: f64,
    pub client_waiting: f64,
    /// The client in FIN-WAIT-1 once its application closed it.
    pub client_fin_wait_1: f64,
}

impl Failed {
    fn scale(&mut self, k: f64) {
        for x in [
            &mut self.per_completed,
            &mut self.syn_sent,
            &mut self.syn_received,
            &mut self.client_waiting,
            &mut self.client_fin_wait_1,
        ] {
            *x *= k;
        }
    }
}

/// Every way through the handshake: those that complete (weights summing
/// to 1) and those that fail.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub completed: Vec<Outcome>,
    pub failed: Failed,
}

/// Every way through the handshake at loss `p` each way and one-way delay `d`,
/// per handshake that completes; `rto_of(m)` is the RTO after a first
/// sample `m`; timestamps as `cfg.timestamps`; the client's application
/// closes what is still ESTABLISHED `app_timeout` seconds after the connect.
pub fn enumerate(
    cfg: &Config,
    p: f64,
    d: f64,
    rto_of: &dyn Fn(f64) -> f64,
    app_timeout: f64,
) -> Handshake {
    let mut ctx = Ctx::new(cfg, p, d, rto_of, app_timeout);
    let b = Branch::new(&ctx);
    run(&mut ctx, b);
    let completed = ctx.completed.max(f64::MIN_POSITIVE);
    for o in &mut ctx.out {
        o.weight /= completed;
    }
    ctx.failed.scale(1.0 / completed);
    Handshake {
        completed: ctx.out,
        failed: ctx.failed,
    }
}

/// The simulator's application sweeps its connections every quarter of
/// its timeout, so it closes one still ESTABLISHED between 1 and 1.25 times
/// the timeout after its connect.
const SWEEP: f64 = 0.25;

/// When it closes one on average: between two sweeps.
fn app_close(app_timeout: f64) -> f64 {
    app_timeout * (1.0 + SWEEP / 2.0)
}

/// When it closes one at the latest.
pub fn app_close_latest(app_timeout: f64) -> f64 {
    app_timeout * (1.0 + SWEEP)
}

#[cfg(test)]
mod tests;
