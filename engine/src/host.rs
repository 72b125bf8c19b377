//! The teardown engine: one host's connections, their timers and the RFC 9293
//! state machine, with Linux's rules where the RFC leaves room.
//!
//! Sans-IO, shaped like quinn-proto's `Endpoint`: the driver passes segments in
//! with [`Host::handle`], fires timers with [`Host::handle_timeout`] at
//! [`Host::poll_timeout`], calls the application's side ([`Host::connect`],
//! [`Host::close`], ...), and drains [`Host::transmits`] and [`Host::events`].
//! The engine never reads a clock, a socket or a random source.

use std::time::Duration;

use crate::config::{Config, TwOverflow};
use crate::conn::{flag, Conn};
use crate::segment::{seq, Flags, Segment};
use crate::state::State;
use crate::table::{Found, Removed, Table};
use crate::time::Time;
use crate::timewait::TwEntry;
use crate::tuple::Tuple;
use crate::wheel::Wheel;

/// Why a connection reached CLOSED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// TIME-WAIT ran its full course.
    TimeWaitExpired,
    /// LAST-ACK received the ACK of its FIN (passive close done).
    LastAckAcked,
    /// An orphaned FIN-WAIT-2 timed out (`tcp_fin_timeout`; seed case 5).
    FinWait2Timeout,
    /// Retransmissions ran out (`tcp_orphan_retries`, `tcp_syn_retries`, ...), silently.
    RetriesExhausted,
    /// An acceptable RST arrived.
    Reset,
    /// The application aborted (SO_LINGER {1,0}), closed before the handshake
    /// completed, or data arrived after close() (Linux answers RST).
    Aborted,
    /// TIME-WAIT was skipped because `max_tw_buckets` was reached.
    TimeWaitOverflow,
    /// A TIME-WAIT entry was evicted to make room (FreeBSD policy).
    TimeWaitEvicted,
    /// A new SYN reopened the 4-tuple from TIME-WAIT (RFC 6191).
    Reused,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 9] = [
        CloseReason::TimeWaitExpired,
        CloseReason::LastAckAcked,
        CloseReason::FinWait2Timeout,
        CloseReason::RetriesExhausted,
        CloseReason::Reset,
        CloseReason::Aborted,
        CloseReason::TimeWaitOverflow,
        CloseReason::TimeWaitEvicted,
        CloseReason::Reused,
    ];

    /// A dense index, for per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// snake_case name for reports and metrics.
    pub fn key(self) -> &'static str {
        match self {
            CloseReason::TimeWaitExpired => "time_wait_expired",
            CloseReason::LastAckAcked => "last_ack_acked",
            CloseReason::FinWait2Timeout => "fin_wait_2_timeout",
            CloseReason::RetriesExhausted => "retries_exhausted",
            CloseReason::Reset => "reset",
            CloseReason::Aborted => "aborted",
            CloseReason::TimeWaitOverflow => "time_wait_overflow",
            CloseReason::TimeWaitEvicted => "time_wait_evicted",
            CloseReason::Reused => "reused",
        }
    }
}

/// Which side of the teardown the application was on when it called close().
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the first FIN.
    Active,
    /// Closed after the peer's FIN (from CLOSE-WAIT).
    Passive,
    /// Never called close().
    None,
}

/// What the engine tells its driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed (either side).
    Established { tuple: Tuple },
    /// In-order data arrived (rcv_nxt moved by `len`): the application read it.
    Received { tuple: Tuple, len: u32 },
    /// The peer's FIN arrived: the connection is in CLOSE-WAIT and the application
    /// should close it.
    PeerClosed { tuple: Tuple },
    /// A state transition (only with `Config::trace_states`).
    StateChanged {
        tuple: Tuple,
        from: State,
        to: State,
    },
    /// The connection reached CLOSED and its entry is gone.
    Closed {
        tuple: Tuple,
        from: State,
        reason: CloseReason,
        role: Role,
        /// Time from the application's close() to CLOSED.
        since_close: Option<Duration>,
    },
}

/// Counters, named after Linux's MIB where one exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub segments_received: u64,
    pub segments_sent: u64,
    pub retransmits: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub oow_acks: u64,
    pub oow_acks_suppressed: u64,
    pub rst_suppressed: u64,
    pub timeouts_fin_wait_2: u64,
    pub timeouts_retries: u64,
    pub timeouts_time_wait: u64,
    /// `TCPTimeWaitOverflow`.
    pub time_wait_overflow: u64,
    pub time_wait_evicted: u64,
    /// TIME-WAIT entries reopened by a new SYN (`TWRecycled`).
    pub time_wait_reused: u64,
    /// Retransmitted FINs (or other segments) that restarted a TIME-WAIT timer.
    pub time_wait_restarts: u64,
    /// TIME-WAIT entries killed by an RST (assassination).
    pub time_wait_assassinated: u64,
    /// SYNs dropped because `max_connections` was reached.
    pub syn_dropped: u64,
    /// `TCPAbortOnData`: data after close() answered with RST.
    pub abort_on_data: u64,
    /// Pure ACKs that rode on the application's next segment instead.
    pub acks_coalesced: u64,
    /// FINs set on the application's last queued data segment.
    pub fins_on_data: u64,
    pub opened_active: u64,
    pub opened_passive: u64,
}

/// Errors of the application-side calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no connection {0}")]
    NotFound(Tuple),
    #[error("connection {0} already exists")]
    Exists(Tuple),
    #[error("connection {0} is in {1}, where this call is not allowed")]
    InvalidState(Tuple, State),
    #[error("connection table full ({0} entries)")]
    TableFull(usize),
}

/// What segment processing decided for the entry.
enum Next {
    Keep,
    TimeWait,
    Close(CloseReason),
}

/// Capacity the transmit and event queues keep once drained.
const QUEUE_KEEP: usize = 256;

/// A rate limit over whole seconds, for host-wide budgets.
#[derive(Default)]
struct Budget {
    second: u64,
    used: u32,
}

impl Budget {
    fn take(&mut self, now: Time, limit: u32) -> bool {
        if limit == u32::MAX {
            return true;
        }
        let s = now.as_micros() / 1_000_000;
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        self.used += 1;
        self.used <= limit
    }
}

/// One host (one shard of it): the engine.
pub struct Host {
    cfg: Config,
    table: Table,
    wheel: Wheel<u32>,
    listening: Vec<u64>,
    out: Vec<Segment>,
    /// `out[..sent_acks]` may not be coalesced into a later segment: ACKs
    /// Linux sends on the spot (`tcp_send_ack`), not merely schedules.
    sent_acks: usize,
    events: Vec<Event>,
    population: [usize; State::COUNT],
    stats: Stats,
    challenge_budget: Budget,
    rst_budget: Budget,
    /// The latest time any call brought: `poll_timeout` never answers earlier.
    now: Time,
    /// Orphaned FIN-WAIT-2 connections: Linux's TIME-WAIT mini-sockets in
    /// substate FIN_WAIT2, which count against `tcp_max_tw_buckets`.
    fw2_orphans: usize,
}

impl Host {
    pub fn new(cfg: Config) -> Host {
        Host::with_capacity(cfg, 0)
    }

    /// A host whose table has room for `connections` entries before it grows.
    pub fn with_capacity(cfg: Config, connections: usize) -> Host {
        Host {
            table: Table::with_capacity(cfg.secret, connections),
            wheel: Wheel::new(),
            listening: Vec::new(),
            out: Vec::new(),
            sent_acks: 0,
            events: Vec::new(),
            population: [0; State::COUNT],
            stats: Stats::default(),
            challenge_budget: Budget::default(),
            rst_budget: Budget::default(),
            now: Time::ZERO,
            fw2_orphans: 0,
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in `state` now.
    pub fn population(&self, state: State) -> usize {
        self.population[state as usize]
    }

    /// Connections of every state.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap bytes of the table and the timers (capacity-based; the counting
    /// allocator checks it in the tests).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.wheel.heap_bytes() + self.listening.capacity() * 8
    }

    /// Accept SYNs to `port` (a listening socket). The port bitmap (8 KiB) is
    /// allocated by the first call, so a host that only connects never pays it.
    pub fn listen(&mut self, port: u16) {
        if self.listening.is_empty() {
            self.listening = vec![0; 1024];
        }
        self.listening[port as usize / 64] |= 1 << (port % 64);
    }

    fn is_listening(&self, port: u16) -> bool {
        self.listening
            .get(port as usize / 64)
            .is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    /// The state of `tuple`; CLOSED when there is no entry.
    pub fn state(&self, tuple: &Tuple) -> State {
        match self.table.find(tuple) {
            Some(Found::Conn(i)) => self.table.conn(i).state,
            Some(Found::TimeWait(_)) => State::TimeWait,
            None => State::Closed,
        }
    }

    /// (snd_nxt, rcv_nxt) of `tuple`, for tests and scripts.
    pub fn sequence(&self, tuple: &Tuple) -> Option<(u32, u32)> {
        match self.table.find(tuple)? {
            Found::Conn(i) => {
                let c = self.table.conn(i);
                Some((c.snd_nxt, c.rcv_nxt))
            }
            Found::TimeWait(p) => {
                let e = self.table.time_wait(p);
                Some((e.snd_nxt, e.rcv_nxt))
            }
        }
    }

    /// The current RTO of `tuple` after backoff.
    pub fn rto(&self, tuple: &Tuple) -> Option<Duration> {
        match self.table.find(tuple)? {
            Found::Conn(i) => Some(self.table.conn(i).backed_off_rto(&self.cfg)),
            Found::TimeWait(_) => None,
        }
    }

    /// Segments to send, oldest first.
    pub fn transmits(&mut self) -> std::vec::Drain<'_, Segment> {
        self.sent_acks = 0;
        self.out.drain(..)
    }

    /// Pending segments, without draining them.
    pub fn pending_transmits(&self) -> &[Segment] {
        &self.out
    }

    /// Events, oldest first.
    pub fn events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// The earliest time at which [`Host::handle_timeout`] has work. Never later
    /// than the earliest deadline; it may be earlier (a wheel slot boundary, or
    /// the latest time the host was given, when a timer was armed since the wheel
    /// last advanced), in which case the call only advances the wheel and the
    /// next answer is later.
    pub fn poll_timeout(&self) -> Option<Time> {
        let wheel = self
            .wheel
            .next_deadline()
            .map(|t| Time::from_millis(t).max(self.now));
        let tw = self
            .table
            .time_wait_front()
            .map(|e| Time::from_millis(self.widen_ms(e.expires_ms)));
        match (wheel, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every call starts here: time only moves forward, and queues the driver has
    /// drained give back memory a burst left them (a million FINs from one
    /// close-all), since they belong to the engine's measured heap.
    #[inline]
    fn begin(&mut self, now: Time) {
        self.now = self.now.max(now);
        if self.out.is_empty() && self.out.capacity() > QUEUE_KEEP {
            self.out = Vec::new();
        }
        if self.events.is_empty() && self.events.capacity() > QUEUE_KEEP {
            self.events = Vec::new();
        }
    }

    /// A 32-bit millisecond stamp as an absolute millisecond count, taking the
    /// stamp to lie within 2^31 ms of the wheel's current time.
    fn widen_ms(&self, stamp: u32) -> u64 {
        let now = self.wheel.elapsed();
        let delta = stamp.wrapping_sub(now as u32) as i32 as i64;
        (now as i64 + delta).max(0) as u64
    }

    /// RFC 6528 initial sequence number: a 4 µs clock plus a keyed hash of the tuple.
    fn isn(&self, now: Time, tuple: &Tuple) -> u32 {
        ((now.as_micros() / 4) as u32).wrapping_add(tuple.hash(!self.cfg.secret) as u32)
    }

    // ---- application calls -------------------------------------------------

    /// Active open: send a SYN and enter SYN-SENT.
    pub fn connect(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.begin(now);
        if self.table.find(&tuple).is_some() {
            return Err(Error::Exists(tuple));
        }
        if self.table.len() >= self.cfg.max_connections {
            return Err(Error::TableFull(self.table.len()));
        }
        let iss = self.isn(now, &tuple);
        let c = Conn::new(tuple, State::SynSent, iss);
        let idx = self.table.insert_conn(c);
        let mut c = *self.table.conn(idx);
        self.send_new(now, idx, &mut c, Flags::SYN, 0);
        *self.table.conn_mut(idx) = c;
        self.stats.opened_active += 1;
        self.enter(tuple, State::Closed, State::SynSent);
        Ok(())
    }

    /// The application sends `len` bytes (modelled by length only).
    pub fn send(&mut self, now: Time, tuple: Tuple, len: u32) -> Result<(), Error> {
        self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = *self.table.conn(idx);
        if !matches!(c.state, State::Established | State::CloseWait) {
            return Err(Error::InvalidState(tuple, c.state));
        }
        if len > 0 {
            if c.must_hold() {
                c.hold(len);
            } else {
                self.send_new(now, idx, &mut c, Flags::ACK | Flags::PSH, len);
            }
        }
        *self.table.conn_mut(idx) = c;
        Ok(())
    }

    /// `close()`: the application is done with the socket (it becomes an orphan).
    /// RFC 9293 §3.10.4: in ESTABLISHED or SYN-RECEIVED send FIN and enter
    /// FIN-WAIT-1; in CLOSE-WAIT send FIN and enter LAST-ACK; in SYN-SENT delete
    /// the TCB.
    pub fn close(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.app_close(now, tuple, true)
    }

    /// `shutdown(SHUT_WR)`: send FIN but keep the socket (not an orphan, so no
    /// FIN-WAIT-2 timeout applies).
    pub fn shutdown(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.app_close(now, tuple, false)
    }

    fn app_close(&mut self, now: Time, tuple: Tuple, orphan: bool) -> Result<(), Error> {
        self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = *self.table.conn(idx);
        let before = c.state;
        c.stamp_close(now);
        if orphan {
            c.flags |= flag::ORPHAN;
        }
        let next = match c.state {
            State::SynSent => Next::Close(CloseReason::Aborted),
            State::SynReceived | State::Established => {
                self.send_fin(now, idx, &mut c);
                c.state = State::FinWait1;
                Next::Keep
            }
            State::CloseWait => {
                c.flags |= flag::PASSIVE_CLOSE;
                self.send_fin(now, idx, &mut c);
                c.state = State::LastAck;
                Next::Keep
            }
            State::FinWait2 if orphan && c.timer.is_none() => {
                // shutdown() then close(): tcp_close makes the FIN_WAIT2 mini-socket
                // now, subject to tcp_max_tw_buckets, and its timeout starts.
                if self.tw_buckets_full() {
                    self.stats.time_wait_overflow += 1;
                    Next::Close(CloseReason::TimeWaitOverflow)
                } else {
                    self.become_fin_wait_2_mini_socket(now, idx, &mut c);
                    Next::Keep
                }
            }
            _ if orphan => Next::Keep,
            s => return Err(Error::InvalidState(tuple, s)),
        };
        self.commit(now, idx, c, before, next);
        Ok(())
    }

    /// Abort (SO_LINGER {1,0}): send RST and drop the connection at once.
    pub fn abort(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = *self.table.conn(idx);
        let before = c.state;
        c.stamp_close(now);
        // tcp_disconnect: RST where tcp_need_reset() (ESTABLISHED, CLOSE-WAIT,
        // FIN-WAIT-1/2, SYN-RECEIVED), and in CLOSING or LAST-ACK only while
        // something is unsent; otherwise the socket goes silently.
        let reset = match c.state {
            State::SynSent => false,
            State::Closing | State::LastAck => c.holds_back(),
            _ => true,
        };
        if reset {
            self.emit(&c.tuple, Flags::RST | Flags::ACK, c.snd_nxt, c.rcv_nxt, 0);
            self.stats.rst_sent += 1;
        }
        self.commit(now, idx, c, before, Next::Close(CloseReason::Aborted));
        Ok(())
    }

    /// A crashed or vanished host: drop the entry silently, sending nothing. For
    /// drivers modelling peers that run away (seed cases 5 and 6).
    pub fn forget(&mut self, tuple: &Tuple) -> bool {
        match self.table.remove(tuple) {
            Some(Removed::Conn(mut c)) => {
                self.disarm(&mut c);
                self.population[c.state as usize] -= 1;
                if c.has(flag::FW2_COUNTED) {
                    self.fw2_orphans -= 1;
                }
                true
            }
            Some(Removed::TimeWait) => {
                self.population[State::TimeWait as usize] -= 1;
                true
            }
            None => false,
        }
    }

    fn conn_index(&self, tuple: &Tuple) -> Result<u32, Error> {
        match self.table.find(tuple) {
            Some(Found::Conn(i)) => Ok(i),
            Some(Found::TimeWait(_)) => Err(Error::InvalidState(*tuple, State::TimeWait)),
            None => Err(Error::NotFound(*tuple)),
        }
    }

    // ---- timers ------------------------------------------------------------

    /// Fires every timer due at `now`: retransmissions, FIN-WAIT-2 timeouts and
    /// TIME-WAIT expiries. Timers never fire before their deadline.
    pub fn handle_timeout(&mut self, now: Time) {
        self.begin(now);
        while let Some((_, idx)) = self.wheel.poll(now.as_millis()) {
            self.on_timer(now, idx);
        }
        let now_ms = now.stamp_ms();
        while let Some(e) = self.table.pop_expired_time_wait(now_ms) {
            self.stats.timeouts_time_wait += 1;
            self.closed_time_wait(now, &e, CloseReason::TimeWaitExpired);
        }
        self.table.compact_time_wait();
    }

    fn on_timer(&mut self, now: Time, idx: u32) {
        let mut c = *self.table.conn(idx);
        c.timer = None;
        let before = c.state;
        if c.state == State::FinWait2 {
            // Seed case 5: straight to CLOSED, not TIME-WAIT (tcp_fin_timeout).
            self.stats.timeouts_fin_wait_2 += 1;
            self.commit(
                now,
                idx,
                c,
                before,
                Next::Close(CloseReason::FinWait2Timeout),
            );
            return;
        }
        // tcp_write_timeout: the retry limit is judged by the time the given number
        // of doublings would take (tcp_model_timeout), from the first transmission.
        let (limit, base) = match c.state {
            State::SynSent => (self.cfg.syn_retries, self.cfg.rto_initial),
            State::SynReceived => (self.cfg.synack_retries, self.cfg.rto_initial),
            _ if c.has(flag::ORPHAN) => (self.cfg.orphan_retry_limit(), self.cfg.rto_min),
            _ => (self.cfg.retries2, self.cfg.rto_min),
        };
        let elapsed = Duration::from_millis(now.stamp_ms().wrapping_sub(c.retrans_stamp_ms) as u64);
        if c.retransmits > 0 && elapsed >= self.cfg.model_timeout(limit, base) {
            // No RST on this path (tcp_write_err -> tcp_done).
            self.stats.timeouts_retries += 1;
            self.commit(
                now,
                idx,
                c,
                before,
                Next::Close(CloseReason::RetriesExhausted),
            );
            return;
        }
        self.retransmit(now, idx, &mut c);
        *self.table.conn_mut(idx) = c;
    }

    /// Resends everything from snd_una, doubles the RTO (tcp_retransmit_timer).
    fn retransmit(&mut self, now: Time, idx: u32, c: &mut Conn) {
        let outstanding = c.snd_nxt.wrapping_sub(c.snd_una);
        let (flags, len) = match c.state {
            State::SynSent => (Flags::SYN, 0),
            State::SynReceived => (Flags::SYN | Flags::ACK, 0),
            _ if c.fin_out() => {
                let len = outstanding.saturating_sub(1);
                if len > 0 {
                    c.flags |= flag::FIN_WITH_DATA;
                }
                let psh = if c.has(flag::FIN_WITH_DATA) {
                    Flags::PSH
                } else {
                    Flags::NONE
                };
                (Flags::FIN | Flags::ACK | psh, len)
            }
            _ => (Flags::ACK | Flags::PSH, outstanding),
        };
        let ack = if flags.ack() { c.rcv_nxt } else { 0 };
        self.emit(&c.tuple, flags, c.snd_una, ack, len);
        self.stats.retransmits += 1;
        c.retransmits = c.retransmits.saturating_add(1);
        c.backoff = c.backoff.saturating_add(1).min(30);
        c.take_timing(0); // Karn: no RTT sample from a retransmission.
        let rto = c.backed_off_rto(&self.cfg);
        self.arm(now, idx, c, rto);
    }

    fn arm(&mut self, now: Time, idx: u32, c: &mut Conn, after: Duration) {
        if let Some(k) = c.timer.take() {
            self.wheel.remove(k);
        }
        c.timer = Some(self.wheel.insert((now + after).ceil_millis(), idx));
    }

    fn disarm(&mut self, c: &mut Conn) {
        if let Some(k) = c.timer.take() {
            self.wheel.remove(k);
        }
    }

    // ---- sending -----------------------------------------------------------

    fn emit(&mut self, tuple: &Tuple, flags: Flags, seq: u32, ack: u32, len: u32) {
        // A pure ACK still queued for this connection is implied by any later
        // segment that carries ACK: when the application answers within the same
        // step (a response, or the passive closer's FIN), the ACK rides on it, as
        // Linux's delayed ACK makes it do.
        if flags.ack() && !flags.rst() && self.out.len() > self.sent_acks {
            if let Some(last) = self.out.last() {
                if last.flags == Flags::ACK && last.len == 0 && last.sender_tuple() == *tuple {
                    self.out.pop();
                    self.stats.segments_sent -= 1;
                    self.stats.acks_coalesced += 1;
                }
            }
        }
        self.stats.segments_sent += 1;
        // Linux's RSTs advertise no window (tcp_v4_send_reset).
        let wnd = if flags.rst() { 0 } else { self.cfg.rcv_wnd };
        self.out
            .push(Segment::new(tuple, flags, seq, ack, len, wnd));
    }

    /// Sends new sequence space (SYN, data or FIN) and keeps the retransmission
    /// timer running for the oldest outstanding byte.
    fn send_new(&mut self, now: Time, idx: u32, c: &mut Conn, flags: Flags, len: u32) {
        let ack = if flags.ack() { c.rcv_nxt } else { 0 };
        self.emit(&c.tuple, flags, c.snd_nxt, ack, len);
        let idle = c.snd_una == c.snd_nxt;
        c.snd_nxt = c
            .snd_nxt
            .wrapping_add(len + flags.syn() as u32 + flags.fin() as u32);
        if idle {
            c.start_timing(now.as_micros() as u32);
            c.retrans_stamp_ms = now.stamp_ms();
            let rto = c.backed_off_rto(&self.cfg);
            self.arm(now, idx, c, rto);
        }
    }

    /// Sends our FIN. When the application's last data is still queued unsent,
    /// the FIN rides on it, as Linux's `tcp_send_fin` sets FIN on the tail of the
    /// write queue.
    fn send_fin(&mut self, now: Time, idx: u32, c: &mut Conn) {
        if c.must_hold() {
            c.flags |= flag::FIN_HELD;
            return;
        }
        if let Some(last) = self.out.last_mut() {
            if last.len > 0
                && last.flags.ack()
                && !last.flags.fin()
                && !last.flags.syn()
                && last.seq.wrapping_add(last.len) == c.snd_nxt
                && last.sender_tuple() == c.tuple
            {
                last.flags = last.flags | Flags::FIN;
                c.flags |= flag::FIN_WITH_DATA;
                c.snd_nxt = c.snd_nxt.wrapping_add(1);
                self.stats.fins_on_data += 1;
                return;
            }
        }
        self.send_new(now, idx, c, Flags::FIN | Flags::ACK, 0);
    }

    fn send_ack(&mut self, c: &Conn) {
        self.emit(&c.tuple, Flags::ACK, c.snd_nxt, c.rcv_nxt, 0);
    }

    /// `tcp_oow_rate_limited`: one ACK per entry per `invalid_ratelimit` for
    /// segments that occupy no sequence space (or carry SYN); segments with data
    /// or FIN are always answered, since they cannot be part of an ACK loop.
    fn oow_allowed(&self, seg: &Segment, last_ms: &mut u32, now: Time) -> bool {
        if seg.seq_len() > 0 && !seg.flags.syn() {
            return true;
        }
        let now_ms = now.stamp_ms().max(1);
        if *last_ms != 0
            && (now_ms.wrapping_sub(*last_ms) as u64)
                < self.cfg.invalid_ratelimit.as_millis() as u64
        {
            return false;
        }
        *last_ms = now_ms;
        true
    }

    fn dup_ack(&mut self, now: Time, c: &mut Conn, seg: &Segment) {
        let mut last = c.last_oow_ms;
        if self.oow_allowed(seg, &mut last, now) {
            c.last_oow_ms = last;
            self.stats.oow_acks += 1;
            self.send_ack(c);
        } else {
            self.stats.oow_acks_suppressed += 1;
        }
    }

    /// RFC 5961 challenge ACK, rate-limited per entry and host-wide.
    fn challenge_ack(&mut self, now: Time, c: &mut Conn) {
        let probe = Segment::new(&c.tuple, Flags::ACK, 0, 0, 0, 0);
        let mut last = c.last_oow_ms;
        if self.oow_allowed(&probe, &mut last, now)
            && self
                .challenge_budget
                .take(now, self.cfg.challenge_ack_limit)
        {
            c.last_oow_ms = last;
            self.stats.challenge_acks += 1;
            self.send_ack(c);
        } else {
            self.stats.challenge_acks_suppressed += 1;
        }
    }

    /// RFC 9293 §3.10.7.1 / Linux `tcp_v4_send_reset`: the reply to a segment that
    /// matches no connection. Never an RST in reply to an RST.
    fn reset_for(&mut self, now: Time, seg: &Segment) {
        if seg.flags.rst() {
            return;
        }
        if !self.rst_budget.take(now, self.cfg.rst_limit) {
            self.stats.rst_suppressed += 1;
            return;
        }
        let t = seg.receiver_tuple();
        if seg.flags.ack() {
            self.emit(&t, Flags::RST, seg.ack, 0, 0);
        } else {
            let ack = seg.seq.wrapping_add(seg.seq_len());
            self.emit(&t, Flags::RST | Flags::ACK, 0, ack, 0);
        }
        self.stats.rst_sent += 1;
    }

    // ---- receiving ---------------------------------------------------------

    /// Processes one arriving segment.
    pub fn handle(&mut self, now: Time, seg: &Segment) {
        self.begin(now);
        self.stats.segments_received += 1;
        let tuple = seg.receiver_tuple();
        match self.table.find(&tuple) {
            Some(Found::Conn(idx)) => {
                let mut c = *self.table.conn(idx);
                let before = c.state;
                let next = if c.state == State::SynSent {
                    self.on_syn_sent(now, idx, &mut c, seg)
                } else {
                    self.on_segment(now, idx, &mut c, seg)
                };
                self.commit(now, idx, c, before, next);
            }
            Some(Found::TimeWait(pos)) => self.on_time_wait(now, pos, seg),
            None => self.on_closed(now, tuple, seg),
        }
    }

    /// CLOSED (no entry): a SYN to a listening port opens a connection
    /// (RFC 9293 §3.10.7.2); anything else draws a reset.
    fn on_closed(&mut self, now: Time, tuple: Tuple, seg: &Segment) {
        let f = seg.flags;
        if f.syn() && !f.ack() && !f.rst() && !f.fin() && self.is_listening(tuple.local_port) {
            let iss = self.isn(now, &tuple);
            self.accept_syn(now, tuple, seg, iss);
        } else {
            self.reset_for(now, seg);
        }
    }

    fn accept_syn(&mut self, now: Time, tuple: Tuple, seg: &Segment, iss: u32) {
        if self.table.len() >= self.cfg.max_connections {
            self.stats.syn_dropped += 1;
            return;
        }
        let mut c = Conn::new(tuple, State::SynReceived, iss);
        c.rcv_nxt = seg.seq.wrapping_add(1);
        let idx = self.table.insert_conn(c);
        self.send_new(now, idx, &mut c, Flags::SYN | Flags::ACK, 0);
        *self.table.conn_mut(idx) = c;
        self.stats.opened_passive += 1;
        self.enter(tuple, State::Closed, State::SynReceived);
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    fn on_syn_sent(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit
        // is set) <SEQ=SEG.ACK><CTL=RST>". This is how a new client answers the
        // challenge ACK of an old LAST-ACK incarnation (seed case 6).
        if f.ack() && (seq::le(seg.ack, c.snd_una) || seq::gt(seg.ack, c.snd_nxt)) {
            if !f.rst() {
                self.emit(&c.tuple, Flags::RST, seg.ack, 0, 0);
                self.stats.rst_sent += 1;
            }
            return Next::Keep;
        }
        if f.rst() {
            if f.ack() {
                self.stats.rst_received += 1;
                return Next::Close(CloseReason::Reset);
            }
            return Next::Keep;
        }
        if !f.syn() {
            return Next::Keep;
        }
        c.rcv_nxt = seg.seq.wrapping_add(1);
        if f.ack() {
            self.on_new_ack(now, idx, c, seg.ack);
            c.state = State::Established;
            self.send_ack(c);
            self.events.push(Event::Established { tuple: c.tuple });
        } else {
            // Simultaneous open: SYN-RECEIVED, resend our SYN with an ACK.
            c.state = State::SynReceived;
            self.emit(&c.tuple, Flags::SYN | Flags::ACK, c.snd_una, c.rcv_nxt, 0);
        }
        Next::Keep
    }

    /// Linux's `tcp_sequence`: acceptable unless it ends before rcv_nxt or starts
    /// beyond the window. (RFC 9293 §3.10.7.4's four cases reject a segment that ends
    /// exactly at rcv_nxt; Linux accepts it and acknowledges it as a duplicate.)
    fn acceptable(&self, c: &Conn, seg: &Segment) -> bool {
        let end = seg.seq.wrapping_add(seg.seq_len());
        !seq::lt(end, c.rcv_nxt)
            && !seq::gt(seg.seq, c.rcv_nxt.wrapping_add(self.cfg.rcv_wnd as u32))
    }

    /// Every synchronized state and SYN-RECEIVED (RFC 9293 §3.10.7.4, with
    /// RFC 5961 and Linux's `tcp_validate_incoming` / `tcp_rcv_state_process`).
    fn on_segment(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;

        // SYN-RECEIVED seeing the SYN again: our SYN-ACK was lost (tcp_check_req).
        if c.state == State::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && seg.seq == c.rcv_nxt.wrapping_sub(1)
        {
            self.emit(&c.tuple, Flags::SYN | Flags::ACK, c.snd_una, c.rcv_nxt, 0);
            return Next::Keep;
        }

        if c.state == State::FinWait2 && c.has(flag::ORPHAN) {
            return self.on_orphan_fin_wait_2(now, c, seg);
        }

        // First, check the sequence number.
        if !self.acceptable(c, seg) {
            if f.rst() {
                // tcp_reset_check: in CLOSE-WAIT, LAST-ACK and CLOSING the peer's RST
                // may carry its FIN's sequence number, rcv_nxt - 1.
                let fin_seen =
                    matches!(c.state, State::CloseWait | State::LastAck | State::Closing);
                if fin_seen && seg.seq == c.rcv_nxt.wrapping_sub(1) {
                    self.stats.rst_received += 1;
                    return Next::Close(CloseReason::Reset);
                }
                return Next::Keep;
            }
            if f.syn() && c.state.is_synchronized() {
                self.challenge_ack(now, c);
            } else {
                self.dup_ack(now, c, seg);
            }
            return Next::Keep;
        }

        // Second, the RST bit (RFC 5961 §3.2): exactly rcv_nxt resets, anything
        // else in the window draws a challenge ACK.
        if f.rst() {
            if seg.seq == c.rcv_nxt {
                self.stats.rst_received += 1;
                return Next::Close(CloseReason::Reset);
            }
            self.challenge_ack(now, c);
            return Next::Keep;
        }

        // Fourth, the SYN bit (RFC 5961 §4): a SYN in a synchronized state, whatever
        // its sequence number, gets a challenge ACK and the connection stays. A new
        // client reusing the 4-tuple answers that ACK with the RST that ends us
        // (seed case 6).
        if f.syn() {
            self.challenge_ack(now, c);
            return Next::Keep;
        }

        // Fifth, the ACK field.
        if !f.ack() {
            return Next::Keep;
        }
        if c.state == State::SynReceived {
            if !(seq::lt(c.snd_una, seg.ack) && seq::le(seg.ack, c.snd_nxt)) {
                // <SEQ=SEG.ACK><CTL=RST>
                self.emit(&c.tuple, Flags::RST, seg.ack, 0, 0);
                self.stats.rst_sent += 1;
                return Next::Keep;
            }
            c.state = State::Established;
            self.events.push(Event::Established { tuple: c.tuple });
        }
        if seq::gt(seg.ack, c.snd_nxt) {
            // It acknowledges something not yet sent: ACK and drop (RFC 5961
            // §5.2). Linux answers with a challenge ACK, rate-limited per entry
            // even when the segment carries a FIN or data.
            self.challenge_ack(now, c);
            return Next::Keep;
        }
        if seq::lt(c.snd_una, seg.ack) {
            self.on_new_ack(now, idx, c, seg.ack);
        }
        // A held FIN is not sent, so not acknowledged either.
        let all_acked = c.snd_una == c.snd_nxt && !c.has(flag::FIN_HELD);
        match c.state {
            // "In addition to the processing for the ESTABLISHED state, if the FIN
            // segment is now acknowledged, then enter FIN-WAIT-2."
            State::FinWait1 if all_acked => {
                c.state = State::FinWait2;
                if c.has(flag::ORPHAN) {
                    // tcp_rcv_state_process: an orphan becomes a FIN_WAIT2 mini-socket
                    // (tcp_time_wait), unless the peer's FIN rides on this segment;
                    // past tcp_max_tw_buckets that fails and the socket is done.
                    if !f.fin() && self.tw_buckets_full() {
                        self.stats.time_wait_overflow += 1;
                        return Next::Close(CloseReason::TimeWaitOverflow);
                    }
                    self.become_fin_wait_2_mini_socket(now, idx, c);
                }
            }
            // "If the ACK acknowledges our FIN, then enter the TIME-WAIT state."
            State::Closing if all_acked => return Next::TimeWait,
            // "The only thing that can arrive in this state is an acknowledgment of
            // our FIN. If our FIN is now acknowledged, delete the TCB."
            State::LastAck if all_acked => return Next::Close(CloseReason::LastAckAcked),
            _ => {}
        }

        // Seventh, the segment text.
        let mut ack_now = false;
        if seg.len > 0 {
            let end = seg.seq.wrapping_add(seg.len);
            match c.state {
                State::FinWait1 | State::FinWait2
                    if c.has(flag::ORPHAN) && seq::gt(end, c.rcv_nxt) =>
                {
                    // Data after close(): Linux resets (TCPAbortOnData), RST <SEQ=SEG.ACK>.
                    self.emit(&c.tuple, Flags::RST, seg.ack, 0, 0);
                    self.stats.rst_sent += 1;
                    self.stats.abort_on_data += 1;
                    return Next::Close(CloseReason::Aborted);
                }
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if seq::le(seg.seq, c.rcv_nxt) && seq::gt(end, c.rcv_nxt) {
                        let len = end.wrapping_sub(c.rcv_nxt);
                        c.rcv_nxt = end;
                        self.events.push(Event::Received {
                            tuple: c.tuple,
                            len,
                        });
                    }
                    // No delayed ACK and no out-of-order queue: every data segment is
                    // acknowledged at once, duplicates and gaps with a duplicate ACK.
                    ack_now = true;
                }
                _ => ack_now = true,
            }
        }

        // Eighth, the FIN bit.
        let mut next = Next::Keep;
        let mut ack_on_the_spot = false;
        if f.fin() {
            let fin_seq = seg.seq.wrapping_add(seg.len);
            if fin_seq == c.rcv_nxt && !c.state.fin_received() {
                c.rcv_nxt = c.rcv_nxt.wrapping_add(1);
                match c.state {
                    State::Established => {
                        c.state = State::CloseWait;
                        self.events.push(Event::PeerClosed { tuple: c.tuple });
                    }
                    // Our FIN is not acknowledged yet: simultaneous close.
                    // Linux ACKs on the spot here (tcp_fin: tcp_send_ack).
                    State::FinWait1 => {
                        c.state = State::Closing;
                        ack_on_the_spot = true;
                    }
                    // Seed case 2: when the peer's FIN also acknowledged ours, FIN-WAIT-1
                    // moved to FIN-WAIT-2 above and goes on to TIME-WAIT here, within
                    // this one segment.
                    State::FinWait2 => next = Next::TimeWait,
                    _ => {}
                }
            }
            // In order, a duplicate or beyond a gap: acknowledge at once.
            ack_now = true;
        }
        if ack_now {
            self.send_ack(c);
            if ack_on_the_spot {
                self.sent_acks = self.out.len();
            }
        }
        if matches!(next, Next::Keep) {
            self.release_held(now, idx, c);
        }
        next
    }

    /// An orphan whose FIN is acknowledged becomes Linux's FIN_WAIT2 mini-socket
    /// (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`): it lives `tcp_fin_time()`, and
    /// its out-of-window ACK rate limit starts afresh (tw_last_oow_ack_time = 0).
    fn become_fin_wait_2_mini_socket(&mut self, now: Time, idx: u32, c: &mut Conn) {
        let tmo = c.fin_wait2_timeout(&self.cfg);
        self.arm(now, idx, c, tmo);
        c.last_oow_ms = 0;
    }

    /// Out of recovery, what waited behind the retransmission goes, the FIN
    /// riding on the data: after the segment's own processing, as Linux's
    /// `tcp_data_snd_check` at the end of `tcp_rcv_state_process`.
    fn release_held(&mut self, now: Time, idx: u32, c: &mut Conn) {
        if !c.holds_back() || c.in_recovery() {
            return;
        }
        let len = c.take_held();
        if len > 0 {
            self.send_new(now, idx, c, Flags::ACK | Flags::PSH, len);
        }
        if c.has(flag::FIN_HELD) {
            c.flags &= !flag::FIN_HELD;
            self.send_fin(now, idx, c);
        }
    }

    /// An orphaned FIN-WAIT-2. Once close() was called and the FIN acknowledged,
    /// Linux replaces the socket by a TIME-WAIT mini-socket in substate FIN_WAIT2
    /// (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`), and segments follow
    /// `tcp_timewait_state_process`, not RFC 5961: any RST in the window kills it, a
    /// SYN at or beyond rcv_nxt or new data draws an RST, out-of-window segments a
    /// rate-limited ACK. (A FIN-WAIT-2 after shutdown() stays a full socket.)
    fn on_orphan_fin_wait_2(&mut self, now: Time, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;
        let end = seg.seq.wrapping_add(seg.seq_len());
        let right = c.rcv_nxt.wrapping_add(self.cfg.rcv_wnd as u32);
        // tcp_in_window(seq, end_seq, rcv_nxt, rcv_nxt + rcv_wnd)
        let in_window = seg.seq == c.rcv_nxt
            || (seq::gt(end, c.rcv_nxt) && seq::lt(seg.seq, right))
            || (seg.seq == right && seg.seq == end);
        if !in_window {
            self.dup_ack(now, c, seg);
            return Next::Keep;
        }
        if f.rst() {
            self.stats.rst_received += 1;
            return Next::Close(CloseReason::Reset);
        }
        if f.syn() && !seq::lt(seg.seq, c.rcv_nxt) {
            self.reset_for(now, seg);
            return Next::Close(CloseReason::Aborted);
        }
        // A duplicate or pure ACK, or no ACK at all: dropped silently.
        if !f.ack() || !seq::gt(end, c.rcv_nxt) || seg.seq_len() == 0 {
            return Next::Keep;
        }
        // New data after the half-duplex close, or a FIN not exactly at rcv_nxt.
        if !f.fin() || end != c.rcv_nxt.wrapping_add(1) {
            if seg.len > 0 {
                self.stats.abort_on_data += 1;
            }
            self.reset_for(now, seg);
            return Next::Close(CloseReason::Aborted);
        }
        // The FIN: true TIME-WAIT, and its ACK.
        c.rcv_nxt = end;
        self.send_ack(c);
        Next::TimeWait
    }

    /// New data acknowledged: sample the RTT (Karn), re-arm or stop the
    /// retransmission timer. The backoff is cleared only with a valid RTT
    /// sample (Linux `tcp_ack_update_rtt`: "RFC6298: only reset backoff on
    /// valid RTT measurement"): an ACK of retransmitted data keeps the
    /// backed-off RTO.
    fn on_new_ack(&mut self, now: Time, idx: u32, c: &mut Conn, ack: u32) {
        if let Some(m) = c.take_timing(now.as_micros() as u32) {
            c.rtt_sample(m, &self.cfg);
            c.backoff = 0;
        }
        c.snd_una = ack;
        c.retransmits = 0;
        if c.snd_una == c.snd_nxt {
            self.disarm(c);
        } else {
            c.retrans_stamp_ms = now.stamp_ms();
            let rto = c.backed_off_rto(&self.cfg);
            self.arm(now, idx, c, rto);
        }
    }

    /// TIME-WAIT (Linux `tcp_timewait_state_process`, substate TIME_WAIT).
    fn on_time_wait(&mut self, now: Time, pos: u64, seg: &Segment) {
        let e = *self.table.time_wait(pos);
        let f = seg.flags;
        if f.rst() {
            // An RST exactly at rcv_nxt kills the entry unless RFC 1337 protection
            // is on; any other RST is ignored.
            if seg.seq == e.rcv_nxt && !self.cfg.rfc1337 {
                self.stats.rst_received += 1;
                self.stats.time_wait_assassinated += 1;
                self.table.remove_time_wait(pos);
                self.closed_time_wait(now, &e, CloseReason::Reset);
            }
            return;
        }
        // An in-window segment at rcv_nxt that occupies no sequence space restarts
        // the timer, with no reply.
        if seg.seq == e.rcv_nxt && seg.seq_len() == 0 {
            self.restart_time_wait(now, pos);
            return;
        }
        // A SYN beyond rcv_nxt may open a new incarnation (RFC 6191), with
        // ISN = old snd_nxt + 65535 + 2, if a listener takes it.
        let tuple = e.tuple;
        if f.syn() && !f.ack() && seq::gt(seg.seq, e.rcv_nxt) && self.is_listening(tuple.local_port)
        {
            self.stats.time_wait_reused += 1;
            self.table.remove_time_wait(pos);
            self.closed_time_wait(now, &e, CloseReason::Reused);
            let iss = match e.snd_nxt.wrapping_add(65_537) {
                0 => 1,
                n => n,
            };
            self.accept_syn(now, tuple, seg, iss);
            return;
        }
        // Anything else (a retransmitted FIN, an old SYN, data): restart the timer
        // if it carried ACK, and re-ACK, rate-limited unless it occupies sequence
        // space without SYN. A retransmitted FIN is therefore always re-ACKed.
        let pos = if f.ack() {
            self.restart_time_wait(now, pos)
        } else {
            pos
        };
        let mut last = e.last_oow_ms;
        if self.oow_allowed(seg, &mut last, now) {
            self.table.time_wait_mut(pos).last_oow_ms = last;
            self.stats.oow_acks += 1;
            self.emit(&tuple, Flags::ACK, e.snd_nxt, e.rcv_nxt, 0);
        } else {
            self.stats.oow_acks_suppressed += 1;
        }
    }

    fn restart_time_wait(&mut self, now: Time, pos: u64) -> u64 {
        self.stats.time_wait_restarts += 1;
        let expires = (now + self.cfg.time_wait).ceil_millis() as u32;
        self.table.restart_time_wait(pos, expires)
    }

    // ---- bookkeeping -------------------------------------------------------

    /// Whether another TIME-WAIT mini-socket (a TIME-WAIT entry or an orphaned
    /// FIN-WAIT-2) would pass `tcp_max_tw_buckets` (`inet_twsk_alloc` refusing).
    fn tw_buckets_full(&self) -> bool {
        self.table.time_wait_len() + self.fw2_orphans >= self.cfg.max_tw_buckets
    }

    /// Applies a processing decision to entry `idx`, whose working copy is `c`.
    fn commit(&mut self, now: Time, idx: u32, mut c: Conn, before: State, next: Next) {
        let orphan_fw2 =
            matches!(next, Next::Keep) && c.state == State::FinWait2 && c.has(flag::ORPHAN);
        if orphan_fw2 != c.has(flag::FW2_COUNTED) {
            if orphan_fw2 {
                self.fw2_orphans += 1;
                c.flags |= flag::FW2_COUNTED;
            } else {
                self.fw2_orphans -= 1;
                c.flags &= !flag::FW2_COUNTED;
            }
        }
        match next {
            Next::Keep => {
                if c.state != before {
                    self.enter(c.tuple, before, c.state);
                }
                *self.table.conn_mut(idx) = c;
            }
            Next::TimeWait => {
                self.disarm(&mut c);
                self.enter_time_wait(now, idx, &c, before);
            }
            Next::Close(reason) => {
                self.disarm(&mut c);
                self.table.remove_conn(idx);
                self.population[before as usize] -= 1;
                self.trace(c.tuple, before, State::Closed);
                let role = if !c.has(flag::CLOSE_STAMPED) {
                    Role::None
                } else if c.has(flag::PASSIVE_CLOSE) {
                    Role::Passive
                } else {
                    Role::Active
                };
                let since_close = c
                    .has(flag::CLOSE_STAMPED)
                    .then(|| Duration::from_millis(now.stamp_ms().wrapping_sub(c.close_ms) as u64));
                self.events.push(Event::Closed {
                    tuple: c.tuple,
                    from: before,
                    reason,
                    role,
                    since_close,
                });
            }
        }
    }

    /// Enters TIME-WAIT: the full entry becomes a compact one, unless the
    /// `max_tw_buckets` limit says otherwise.
    fn enter_time_wait(&mut self, now: Time, idx: u32, c: &Conn, before: State) {
        if self.tw_buckets_full() {
            match self.cfg.tw_overflow {
                TwOverflow::Skip => {
                    self.stats.time_wait_overflow += 1;
                    self.commit(
                        now,
                        idx,
                        *c,
                        before,
                        Next::Close(CloseReason::TimeWaitOverflow),
                    );
                    return;
                }
                TwOverflow::EvictOldest => {
                    if let Some((pos, old)) = self.table.oldest_time_wait() {
                        self.stats.time_wait_evicted += 1;
                        self.table.remove_time_wait(pos);
                        self.closed_time_wait(now, &old, CloseReason::TimeWaitEvicted);
                    }
                }
            }
        }
        let e = TwEntry {
            tuple: c.tuple,
            snd_nxt: c.snd_nxt,
            rcv_nxt: c.rcv_nxt,
            expires_ms: (now + self.cfg.time_wait).ceil_millis() as u32,
            close_ms: c.close_ms,
            // An orphan's FIN-WAIT-2 mini-socket turns into TIME-WAIT in place
            // and keeps its out-of-window rate limit; a full socket's
            // tcp_time_wait() makes a new mini-socket with none.
            last_oow_ms: if before == State::FinWait2 && c.has(flag::ORPHAN) {
                c.last_oow_ms
            } else {
                0
            },
        };
        self.table.conn_to_time_wait(idx, e);
        self.enter(c.tuple, before, State::TimeWait);
    }

    /// Accounts for a TIME-WAIT entry that has already left the table.
    fn closed_time_wait(&mut self, now: Time, e: &TwEntry, reason: CloseReason) {
        self.population[State::TimeWait as usize] -= 1;
        self.trace(e.tuple, State::TimeWait, State::Closed);
        self.events.push(Event::Closed {
            tuple: e.tuple,
            from: State::TimeWait,
            reason,
            role: Role::Active,
            since_close: Some(Duration::from_millis(
                now.stamp_ms().wrapping_sub(e.close_ms) as u64,
            )),
        });
    }

    fn enter(&mut self, tuple: Tuple, from: State, to: State) {
        if from != State::Closed {
            self.population[from as usize] -= 1;
        }
        self.population[to as usize] += 1;
        self.trace(tuple, from, to);
    }

    fn trace(&mut self, tuple: Tuple, from: State, to: State) {
        if self.cfg.trace_states {
            self.events.push(Event::StateChanged { tuple, from, to });
        }
    }
}
