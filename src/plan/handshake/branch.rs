//! The walk under [`enumerate`](super::enumerate): a branch for each
//! pattern of lost segments, each stepping both ends' events until its
//! handshake completes or fails.

use teardown_engine::config::{Config, RTO_FALLBACK};

use super::{app_close, Failed, Outcome};
use crate::plan::model::retransmit::{
    backed_off, request_given_up, syn_given_up, syn_rto, synack_dropped,
};

/// Branches below this probability are dropped (the mass is renormalised).
const FLOOR: f64 = 1e-9;

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
pub(super) struct Branch {
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

pub(super) struct Ctx<'a> {
    cfg: &'a Config,
    p: f64,
    d: f64,
    /// RFC 7323 timestamps on both ends.
    ts: bool,
    /// When the client's application closes a connection still ESTABLISHED,
    /// from its connect.
    app_close: f64,
    rto_of: &'a dyn Fn(f64) -> f64,
    pub(super) out: Vec<Outcome>,
    /// The weight of `out`.
    pub(super) completed: f64,
    pub(super) failed: Failed,
}

impl<'a> Ctx<'a> {
    /// The walk's context: nothing completed or failed yet.
    pub(super) fn new(
        cfg: &'a Config,
        p: f64,
        d: f64,
        rto_of: &'a dyn Fn(f64) -> f64,
        app_timeout: f64,
    ) -> Self {
        Ctx {
            cfg,
            p,
            d,
            ts: cfg.timestamps,
            app_close: app_close(app_timeout),
            rto_of,
            out: Vec::new(),
            completed: 0.0,
            failed: Failed::default(),
        }
    }

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
    /// The branch every handshake starts as: the client's first SYN now,
    /// its application's close pending.
    pub(super) fn new(ctx: &Ctx) -> Self {
        Branch {
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
        }
    }

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

pub(super) fn run(ctx: &mut Ctx, mut b: Branch) {
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
