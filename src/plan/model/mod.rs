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

mod predict;
pub(super) mod retransmit;
mod teardown;

use std::time::Duration;

use serde::Serialize;

use teardown_engine::config::Config;
use teardown_engine::state::State;

pub use predict::predict;
pub(crate) use teardown::{fin_wait2_lifetime, fin_wait2_parts};

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
    /// The clients' application closes a connection still ESTABLISHED this
    /// long after its connect (an HTTP client's read timeout; the
    /// simulator's `--app-timeout`): it ends a client whose server dropped
    /// its request ([`crate::plan::handshake`]).
    pub app_timeout: Duration,
    /// The server closes by nginx's lingering close (`shutdown(SHUT_WR)`, then
    /// reads until the client's FIN or this long without data: `lingering_timeout`,
    /// 5 s by default). Its FIN-WAIT-2 keeps the descriptor, so it is a full
    /// socket, never times out and takes no bucket; only when the wait ends
    /// without a FIN does close() leave an orphaned FIN-WAIT-2 for
    /// `tcp_fin_timeout` (linux-rules.md: only orphans time out).
    pub lingering: Option<Duration>,
    pub host: Config,
}

/// The clients' read timeout a plan assumes unless told: the simulator's.
pub const APP_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// Handshakes that fail for each connection that closes: connects on top
    /// of the close rate, whose states count but which never close (the
    /// server dropped its request after `tcp_synack_retries` and the
    /// client's ACK met an RST, or the client gave up).
    pub handshakes_failed: f64,
    /// Share of closes that reach TIME-WAIT (before the cap).
    pub tw_share: f64,
    /// Mean TIME-WAIT lifetime including restarts by retransmitted FINs.
    pub tw_time: f64,
    /// Retransmitted FINs arriving in TIME-WAIT, per TIME-WAIT entry (each leaves a
    /// stale slot in the engine's ring).
    pub tw_restarts: f64,
    /// Mean seconds per connection the active closer spends in FIN-WAIT-2 with its
    /// descriptor still open (lingering close); the rest of its FIN-WAIT-2 is
    /// orphaned: a mini-socket in `tcp_max_tw_buckets`, but for `fin_wait_2_full`.
    pub fin_wait_2_held: f64,
    /// Mean seconds per connection the active closer's orphaned FIN-WAIT-2 is
    /// still a full socket, its first part past 60 s on Linux
    /// (`Config::fin_wait2_keepalive`): an orphan against `tcp_max_orphans`,
    /// in no bucket.
    pub fin_wait_2_full: f64,
    /// TIME-WAIT population the closer would hold without the cap.
    pub tw_uncapped: f64,
    /// Entries per second that skip TIME-WAIT because the cap is reached.
    pub tw_overflow_per_sec: f64,
    /// Close rate above which the cap is reached.
    pub tw_overflow_rate: f64,
}
