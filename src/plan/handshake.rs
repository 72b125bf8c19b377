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

use teardown_engine::config::{Config, RTO_FALLBACK};

use super::model::retransmit::{
    backed_off, request_given_up, syn_given_up, syn_rto, synack_dropped,
};

/// Branches below this probability are dropped (the mass is renormalised).
const FLOOR: f64 = 1e-9;

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
    /// Branch `b`, whose client's connection ended at `gone`.
    fn add(&mut self, b: &Branch, gone: f64) {
        let est = b.client_est.unwrap_or(gone);
        let closed = b.client_closed.unwrap_or(gone);
        self.per_completed += b.weight;
        self.syn_sent += b.weight * est;
        self.syn_received += b.weight * b.syn_received_before;
        self.client_waiting += b.weight * (closed - est);
        self.client_fin_wait_1 += b.weight * (gone - closed);
    }

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

/// A branch's events. At one instant arrivals come before timers, as in
/// the simulator (`Shard::next_event`: ties go to the link): a client's SYN
/// arriving as the server's timer drops the request still draws a SYN-ACK
/// from it, and the request is dropped after.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    ServerGetsSyn,
    /// A SYN-ACK of the server's request number `gen` reaches the client.
    ClientGetsSynAck {
        gen: u32,
    },
    /// An ACK (challenge) or the request reaches the server.
    ServerGetsAck {
        request: bool,
    },
    /// The server's RST reaches the client: its ACK found no request.
    ClientGetsRst,
    /// The client host's RST reaches the server: its SYN-ACK found no connection.
    ServerGetsRst,
    /// The server's SYN-ACK timer (expiry `n` of the current request).
    ServerTimer(u32),
    /// The client's SYN timer (attempt `n`).
    ClientSyn(u8),
    /// The client's request retransmission `n`.
    ClientRequest(u8),
    /// The client's application closes a connection still ESTABLISHED.
    AppClose,
}

/// What an event leaves its branch to do.
enum Step {
    /// Go on with the next event.
    Next,
    /// Send a segment now that arrives, unless lost, as this event: the
    /// branch splits.
    Send(Ev),
    /// Send a segment to an end with no connection (for good): all that can
    /// come of it is that end's RST, which arrives as this event a round
    /// trip later unless either is lost. One split, not two whose losing
    /// halves would go on alike and double the branches at every copy.
    RoundTrip(Ev),
    /// The request reached the server: the handshake is over.
    Done(Outcome),
}

#[derive(Clone)]
struct Branch {
    weight: f64,
    events: Vec<(f64, Ev)>,
    /// When the server's current request opened (its SYN arrived): `None`
    /// before the first and once it is dropped or reset.
    server_at: Option<f64>,
    /// Requests the server opened so far: the current one's number.
    server_gen: u32,
    /// When the current request last answered a duplicate SYN.
    server_last_dup: Option<f64>,
    /// Time in SYN-RECEIVED of the requests that ended before it.
    syn_received_before: f64,
    server_timing: bool,
    server_est: Option<f64>,
    client_est: Option<f64>,
    /// The request whose SYN-ACK established the client.
    client_gen: u32,
    /// When the client's connection ended unsynchronized with the server:
    /// SYN-SENT or the request gave up, or an RST reset it.
    client_gone: Option<f64>,
    /// When the client's application closed it, still ESTABLISHED.
    client_closed: Option<f64>,
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
    /// When the client's application closes a connection still ESTABLISHED,
    /// from its connect.
    app_close: f64,
    rto_of: &'a dyn Fn(f64) -> f64,
    out: Vec<Outcome>,
    /// The weight of `out`.
    completed: f64,
    failed: Failed,
}

impl Ctx<'_> {
    /// The RTO after the handshake: from its sample, or Linux's 3 s
    /// without one (`tcp_init_metrics`).
    fn rto_after(&self, m: Option<f64>) -> f64 {
        match m {
            Some(m) => (self.rto_of)(m),
            None => RTO_FALLBACK.min(self.cfg.rto_max).as_secs_f64(),
        }
    }

    fn initial_rto(&self) -> f64 {
        self.cfg.rto_initial.as_secs_f64()
    }

    /// `tcp_oow_rate_limited`: whether an answer at `t` may go, one per
    /// `tcp_invalid_ratelimit` since `last`, which it then becomes.
    fn oow_allowed(&self, last: &mut Option<f64>, t: f64) -> bool {
        let limit = self.cfg.invalid_ratelimit.as_secs_f64();
        if last.is_some_and(|l| t - l < limit) {
            return false;
        }
        *last = Some(t);
        true
    }
}

/// `t` on the simulator's microsecond grid: an instant reached by two sums
/// (the server's timer, a client SYN's arrival) ties there exactly, and
/// so it does here.
fn on_grid(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

impl Branch {
    fn push(&mut self, at: f64, ev: Ev) {
        self.events.push((on_grid(at), ev));
    }

    fn pop(&mut self) -> Option<(f64, Ev)> {
        let i = (0..self.events.len()).min_by(|&a, &b| {
            let (x, y) = (self.events[a], self.events[b]);
            x.0.total_cmp(&y.0).then(x.1.cmp(&y.1))
        })?;
        Some(self.events.swap_remove(i))
    }

    fn step(&mut self, ctx: &Ctx, t: f64, ev: Ev) -> Step {
        match ev {
            Ev::ClientSyn(n) => self.client_syn(ctx.cfg, t, n),
            Ev::ServerGetsSyn => self.server_gets_syn(ctx, t),
            Ev::ServerTimer(n) => self.server_timer(ctx, t, n),
            Ev::ClientGetsSynAck { gen } => self.client_gets_synack(ctx, t, gen),
            Ev::ClientRequest(n) => self.client_request(ctx, t, n),
            Ev::ServerGetsAck { request } => self.server_gets_ack(ctx, t, request),
            Ev::ClientGetsRst => {
                // `tcp_reset`: the connect() fails (ECONNRESET).
                self.client_gone.get_or_insert(t);
                Step::Next
            }
            Ev::ServerGetsRst => self.server_gets_rst(t),
            Ev::AppClose => self.app_close(t),
        }
    }

    /// The client's application gives up on a connection still ESTABLISHED
    /// whose request never reached a request of the server's (the simulator's
    /// `--app-timeout` sweep). One whose request is still open on the server
    /// goes on, as if its application waited: its FIN would reach it, or its
    /// orphan give up and leave the server ESTABLISHED until the server's
    /// own timeout, neither of which the plan follows (a timeout shorter
    /// than the request's life leaves more ESTABLISHED, not fewer).
    fn app_close(&mut self, t: f64) -> Step {
        if self.client_est.is_some() && self.server_at.is_none() && self.client_gone.is_none() {
            self.client_closed = Some(t);
        }
        Step::Next
    }

    /// SYN-SENT's timer: the next SYN, or the end, silently (`tcp_write_err`);
    /// the server's request, if any, lives on.
    fn client_syn(&mut self, cfg: &Config, t: f64, n: u8) -> Step {
        if self.client_est.is_some() {
            return Step::Next;
        }
        if syn_given_up(cfg, u32::from(n), t) {
            self.client_gone = Some(t);
            return Step::Next;
        }
        if n > 0 {
            self.client_retrans += 1;
        }
        self.push(t + syn_rto(cfg, u32::from(n)), Ev::ClientSyn(n + 1));
        Step::Send(Ev::ServerGetsSyn)
    }

    /// A SYN with no request opens one (`tcp_conn_request`), whether none was
    /// ever opened or the last was dropped: a new SYN-ACK, timed, its timer
    /// and retries afresh. A duplicate draws the SYN-ACK again at once
    /// (`tcp_check_req`), untimed, and the timer's next expiry comes a full
    /// timeout from now; within `tcp_invalid_ratelimit` of the last it
    /// answered, nothing.
    fn server_gets_syn(&mut self, ctx: &Ctx, t: f64) -> Step {
        match (self.server_at, self.server_est) {
            (None, _) => {
                self.server_gen += 1;
                self.server_at = Some(t);
                self.server_last_dup = None;
                self.syn_sent_at = t - ctx.d;
                self.server_timing = true;
                self.push(t + ctx.initial_rto(), Ev::ServerTimer(1));
            }
            (Some(_), None) => {
                if !ctx.oow_allowed(&mut self.server_last_dup, t) {
                    return Step::Next;
                }
                self.server_timing = false;
                self.restart_server_timer(ctx, t);
            }
            _ => return Step::Next,
        }
        Step::Send(Ev::ClientGetsSynAck {
            gen: self.server_gen,
        })
    }

    /// SYN-RECEIVED's timer: the SYN-ACK again, doubling from the first
    /// (`reqsk_timer_handler`), or the request dropped once its retries
    /// are spent ([`synack_dropped`]), silently. To a client that is gone
    /// the SYN-ACK only draws its host's RST.
    fn server_timer(&mut self, ctx: &Ctx, t: f64, n: u32) -> Step {
        if self.server_est.is_some() {
            return Step::Next;
        }
        if synack_dropped(ctx.cfg, n) {
            self.end_request(t);
            return Step::Next;
        }
        self.server_timing = false;
        self.push(t + Self::synack_timeout(ctx, n), Ev::ServerTimer(n + 1));
        if self.client_gone.is_some() {
            return Step::RoundTrip(Ev::ServerGetsRst);
        }
        Step::Send(Ev::ClientGetsSynAck {
            gen: self.server_gen,
        })
    }

    /// The request's timeout after `expired` expiries (`reqsk_timeout`:
    /// `req->timeout << num_timeout`, at most rto_max).
    fn synack_timeout(ctx: &Ctx, expired: u32) -> f64 {
        backed_off(ctx.initial_rto(), expired, ctx.cfg.rto_max.as_secs_f64())
    }

    /// A duplicate SYN's `mod_timer_pending`: the pending expiry `n` comes
    /// a full timeout from `t`, not doubled by it.
    fn restart_server_timer(&mut self, ctx: &Ctx, t: f64) {
        for (at, ev) in &mut self.events {
            if let Ev::ServerTimer(n) = *ev {
                *at = on_grid(t + Self::synack_timeout(ctx, n - 1));
            }
        }
    }

    /// The server's request ends, dropped or reset: its time in SYN-RECEIVED
    /// is over, and a SYN arriving later opens another.
    fn end_request(&mut self, t: f64) {
        if let Some(s0) = self.server_at.take() {
            self.syn_received_before += t - s0;
        }
        self.events.retain(|e| !matches!(e.1, Ev::ServerTimer(_)));
    }

    /// A SYN-ACK reaches the client: SYN-SENT takes the first and sends its
    /// request; an established client answers a later one with a challenge
    /// ACK; a client host whose connection is gone answers with an RST
    /// <SEQ=SEG.ACK> (`tcp_v4_send_reset`), in the request's window.
    fn client_gets_synack(&mut self, ctx: &Ctx, t: f64, gen: u32) -> Step {
        if self.client_gone.is_some() {
            return Step::Send(Ev::ServerGetsRst);
        }
        if self.client_est.is_none() {
            self.establish_client(ctx, t, gen);
            return Step::Send(Ev::ServerGetsAck { request: true });
        }
        // A SYN in a synchronized state: challenge ACK, one per 500 ms.
        if !ctx.oow_allowed(&mut self.last_challenge, t) {
            return Step::Next;
        }
        Step::Send(Ev::ServerGetsAck { request: false })
    }

    fn establish_client(&mut self, ctx: &Ctx, t: f64, gen: u32) {
        self.client_est = Some(t);
        self.client_gen = gen;
        self.synack_sent_at = t - ctx.d;
        self.client_m = if self.client_retrans == 0 {
            Some(t)
        } else if ctx.ts {
            Some(t - self.syn_sent_at)
        } else {
            None
        };
        self.client_rto = ctx.rto_after(self.client_m);
        self.push(t + self.client_rto, Ev::ClientRequest(1));
        self.client_requests = 1;
    }

    /// The request's timer: the request again, doubling, until an RST ends
    /// the connection or its retries are spent (`tcp_write_timeout`,
    /// [`request_given_up`]), silently. With no request on the server, and
    /// no SYN on its way that could open one, the copy only draws an RST.
    fn client_request(&mut self, ctx: &Ctx, t: f64, n: u8) -> Step {
        if self.client_gone.is_some() {
            return Step::Next;
        }
        let est = self.client_est.unwrap_or(t);
        let orphan = self.client_closed.is_some();
        if request_given_up(ctx.cfg, u32::from(n), t - est, orphan) {
            self.client_gone = Some(t);
            return Step::Next;
        }
        let rto = backed_off(self.client_rto, u32::from(n), ctx.cfg.rto_max.as_secs_f64());
        self.push(t + rto, Ev::ClientRequest(n + 1));
        self.client_requests += 1;
        let syn_on_its_way = self.events.iter().any(|e| e.1 == Ev::ServerGetsSyn);
        if self.server_at.is_none() && !syn_on_its_way {
            return Step::RoundTrip(Ev::ClientGetsRst);
        }
        Step::Send(Ev::ServerGetsAck { request: true })
    }

    /// The client's ACK (challenge or with its request) reaches the server.
    /// With no request it acknowledges, it draws an RST <SEQ=SEG.ACK>: from
    /// the listener once the request was dropped (`tcp_v4_rcv` finds no
    /// request, `tcp_v4_send_reset`; no syncookie without a recent
    /// overflow), or from a later request whose ISS it does not acknowledge
    /// (`tcp_check_req`), which stays.
    fn server_gets_ack(&mut self, ctx: &Ctx, t: f64, request: bool) -> Step {
        let current = self.server_gen == self.client_gen;
        let Some(s0) = self.server_at.filter(|_| current) else {
            return Step::Send(Ev::ClientGetsRst);
        };
        let e = *self.server_est.get_or_insert(t);
        if !request {
            return Step::Next;
        }
        let c = self.client_est.unwrap_or(t);
        let server_m = if self.server_timing {
            Some(e - s0)
        } else if ctx.ts {
            Some(e - self.synack_sent_at)
        } else {
            None
        };
        Step::Done(Outcome {
            weight: self.weight,
            syn_sent: c,
            syn_received: self.syn_received_before + (e - s0),
            server_waiting: t - e,
            client_waiting: t - c,
            client_rto: self.client_rto,
            client_requests: self.client_requests,
            client_m: self.client_m,
            server_m,
            server_rto: ctx.rto_after(server_m),
        })
    }

    /// The client host's RST ends a request still in SYN-RECEIVED
    /// (`tcp_check_req`: `embryonic_reset`).
    fn server_gets_rst(&mut self, t: f64) -> Step {
        if self.server_est.is_none() {
            self.end_request(t);
        }
        Step::Next
    }
}

/// Two branches: `ev` happens `after` seconds from `at` with probability
/// `q`, or never.
fn split(ctx: &mut Ctx, b: Branch, at: f64, ev: Ev, q: f64, after: f64) {
    let mut got = b.clone();
    got.weight *= q;
    got.push(at + after, ev);
    run(ctx, got);
    let mut lost = b;
    lost.weight *= 1.0 - q;
    run(ctx, lost);
}

fn run(ctx: &mut Ctx, mut b: Branch) {
    if b.weight < FLOOR {
        return;
    }
    while let Some((t, ev)) = b.pop() {
        match b.step(ctx, t, ev) {
            Step::Next => {}
            Step::Send(ev) => return split(ctx, b, t, ev, 1.0 - ctx.p, ctx.d),
            Step::RoundTrip(ev) => {
                let q = (1.0 - ctx.p).powi(2);
                return split(ctx, b, t, ev, q, 2.0 * ctx.d);
            }
            Step::Done(o) => {
                ctx.completed += o.weight;
                ctx.out.push(o);
                return;
            }
        }
    }
    // Events run out once the client's connection is gone and every
    // request the server opened for it has ended.
    if let Some(gone) = b.client_gone {
        ctx.failed.add(&b, gone);
    }
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
    let mut ctx = Ctx {
        cfg,
        p,
        d,
        ts: cfg.timestamps,
        app_close: app_close(app_timeout),
        rto_of,
        out: Vec::new(),
        completed: 0.0,
        failed: Failed::default(),
    };
    let b = Branch {
        weight: 1.0,
        events: vec![(0.0, Ev::ClientSyn(0)), (ctx.app_close, Ev::AppClose)],
        server_at: None,
        server_gen: 0,
        server_last_dup: None,
        syn_received_before: 0.0,
        server_timing: false,
        server_est: None,
        client_est: None,
        client_gen: 0,
        client_gone: None,
        client_closed: None,
        syn_sent_at: 0.0,
        synack_sent_at: 0.0,
        client_m: None,
        client_retrans: 0,
        client_rto: 0.0,
        client_requests: 0,
        last_challenge: None,
    };
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
mod tests {
    use super::*;

    const APP_TIMEOUT: f64 = 120.0;

    fn rto(m: f64) -> f64 {
        m + (2.0 * m).max(0.2)
    }

    #[test]
    fn no_loss_is_one_round_trip() {
        let cfg = Config::default();
        let o = enumerate(&cfg, 0.0, 0.005, &rto, APP_TIMEOUT).completed;
        assert_eq!(o.len(), 1);
        let o = o[0];
        assert!((o.syn_sent - 0.010).abs() < 1e-12);
        assert!((o.syn_received - 0.010).abs() < 1e-12);
        assert_eq!(o.server_waiting, 0.0);
        assert!((o.client_rto - 0.21).abs() < 1e-12);
    }

    /// At 10 % loss the first attempt fails with 1 - 0.9² = 0.19, but when only the
    /// SYN-ACK was lost the retransmitted SYN draws an immediate SYN-ACK: the
    /// second round fails less often than 0.19. It reaches the server as its
    /// timer would fire, and restarts it (`tcp_check_req`), so one SYN-ACK goes
    /// then, not two: 0.028 fail twice, where two copies gave 0.021.
    #[test]
    fn the_retransmitted_syn_races_the_server_timer() {
        let cfg = Config {
            timestamps: false,
            ..Config::default()
        };
        let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
        let w: f64 = o.iter().map(|o| o.weight).sum();
        assert!((w - 1.0).abs() < 1e-9);
        let late = |after: f64| -> f64 {
            o.iter()
                .filter(|o| o.syn_sent > after)
                .map(|o| o.weight)
                .sum()
        };
        assert!((late(0.5) - 0.19).abs() < 1e-6, "{}", late(0.5));
        let second = late(1.5);
        assert!(second > 0.025 && second < 0.031, "{second}");
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
            enumerate(cfg, 0.1, 0.005, &rto, APP_TIMEOUT)
                .completed
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
        let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
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
        let o = enumerate(&Config::default(), 0.1, 0.005, &rto, APP_TIMEOUT).completed;
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

    /// With `tcp_synack_retries` 1 a request opened at 5 ms sees the client's
    /// SYNs at 1, 2, 3, 4 and 5 s restart its timer: its first expiry is at
    /// 6 s (a SYN-ACK), and the SYN at 7 s restarts the next, 2 s, to 9 s,
    /// where it is dropped. A client whose SYN-ACKs were all lost until then
    /// is answered at 11 s by a new request: 9 s of SYN-RECEIVED, then 10 ms
    /// when the request gets through at once. None of those spends 11.01 s
    /// in one request, as before the drop was modelled.
    #[test]
    fn a_syn_after_the_drop_opens_a_new_request() {
        let cfg = Config {
            synack_retries: 1,
            ..Config::default()
        };
        let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
        let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
        let at_11_s: Vec<f64> = o
            .iter()
            .filter(|o| near(o.syn_sent, 11.01) && near(o.client_waiting, 0.005))
            .map(|o| o.syn_received)
            .collect();
        assert!(at_11_s.iter().any(|&s| near(s, 9.01)), "{at_11_s:?}");
        assert!(!at_11_s.iter().any(|&s| near(s, 11.01)), "{at_11_s:?}");
    }

    /// A failed handshake held SYN-RECEIVED until its request was dropped: at
    /// least 1 s with 0 retries (none resent), 3 s with 1 and 7 s with 2, and
    /// longer where the client's SYNs restarted the timer (or a second request
    /// opened). At 30 % loss fewer retries fail far more handshakes: a client
    /// whose request copies are all lost until the drop meets an RST.
    #[test]
    fn a_dropped_request_fails_the_handshake() {
        let failed = |retries: u8| {
            let cfg = Config {
                synack_retries: retries,
                ..Config::default()
            };
            enumerate(&cfg, 0.3, 0.005, &rto, APP_TIMEOUT).failed
        };
        let (zero, one, two, five) = (failed(0), failed(1), failed(2), failed(5));
        assert!(zero.per_completed > one.per_completed, "{zero:?} {one:?}");
        let held = |f: Failed| f.syn_received / f.per_completed;
        assert!((1.0..held(one)).contains(&held(zero)), "{zero:?}");
        assert!((3.0..held(two)).contains(&held(one)), "{one:?}");
        assert!(held(two) >= 7.0, "{two:?}");
        assert!(
            one.per_completed > 0.05 && two.per_completed > 0.01,
            "{one:?} {two:?}"
        );
        assert!(five.per_completed < 0.001, "{five:?}");
    }
}
