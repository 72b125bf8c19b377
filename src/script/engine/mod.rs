//! The engine as the stack under test: one [`Host`] on a virtual clock. The
//! clock jumps from event to event and fires the host's timers at their
//! deadlines on the way, so a 60 s TIME-WAIT takes no wall time.
//!
//! This module holds the host, its clock and what it sent; `calls` holds the
//! script's descriptors and the system calls made on them.

mod calls;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::parse::{Syscall, TcpOptions};
use super::stack::{fail, CallResult, Failure, Setup, Stack};
use super::sysctl::Sysctl;
use calls::Fd;
use teardown_engine::host::{CloseReason, Event as HostEvent, Host};
use teardown_engine::segment::Segment;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;
use teardown_engine::{Advance, Config};

/// Linux's MSS when the peer's SYN carries no MSS option (RFC 9293 §3.7.1).
const DEFAULT_MSS: u32 = 536;

/// How far past an outbound packet's window the runner looks: the clock is
/// virtual, so an hour costs nothing and finds any timer the engine has.
const LATE_SEARCH: Duration = Duration::from_secs(3_600);

pub struct EngineStack {
    host: Host,
    now: Time,
    fds: BTreeMap<i64, Fd>,
    /// `--bind_port=0`: bind() binds port 0.
    bind_port_zero: bool,
    /// listen() was called: the host listens on the script's port from then
    /// on (close() of the listener does not stop it).
    listening: bool,
    /// Passive connections through the handshake, not yet accepted.
    accept_queue: VecDeque<Tuple>,
    listener_linger_abort: bool,
    peer_mss: u32,
    /// In-order payload bytes received, and read by the application.
    bytes_in: u64,
    bytes_read: u64,
    /// The peer's FIN was taken in order (Linux `SOCK_DONE`): reads return 0
    /// from then on, even after a reset.
    eof: bool,
    /// When the last timer fired that sent something, and its interval.
    fired: Option<(Time, Duration)>,
    /// The error a reset left for the next read or write (Linux `sk_err`:
    /// ECONNRESET, or EPIPE when the reset came in CLOSE-WAIT), reported once.
    sk_err: Option<&'static str>,
    notices: Vec<String>,
}

impl Default for EngineStack {
    fn default() -> Self {
        EngineStack::new()
    }
}

impl EngineStack {
    /// A host with the Linux profile, listening on nothing yet.
    pub fn new() -> EngineStack {
        EngineStack {
            host: Host::new(Config::default()),
            now: Time::ZERO,
            fds: BTreeMap::new(),
            bind_port_zero: false,
            listening: false,
            accept_queue: VecDeque::new(),
            listener_linger_abort: false,
            peer_mss: DEFAULT_MSS,
            bytes_in: 0,
            bytes_read: 0,
            eof: false,
            fired: None,
            sk_err: None,
            notices: Vec::new(),
        }
    }

    /// Takes what the host sent and told since the last call.
    fn collect(&mut self, sent: &mut Vec<(Time, Segment)>) {
        let now = self.now;
        sent.extend(self.host.transmits().map(|seg| (now, seg)));
        let events: Vec<HostEvent> = self.host.events().collect();
        for e in events {
            match e {
                HostEvent::Established { tuple } if !self.is_connected(&tuple) => {
                    self.accept_queue.push_back(tuple);
                }
                HostEvent::Closed { tuple, reason, .. } => {
                    self.accept_queue.retain(|t| *t != tuple);
                    if reason == CloseReason::Reset && self.is_connected(&tuple) {
                        self.sk_err = Some(if self.eof { "EPIPE" } else { "ECONNRESET" });
                    }
                }
                _ => {}
            }
        }
    }

    /// Notes the interval of the retransmission timer that just sent `new`:
    /// half the RTO it left behind, which it doubled (all of it at rto_max).
    /// Not for a SYN, whose timer need not have doubled
    /// (`tcp_syn_linear_timeouts`): the gap from the SYN before it, which the
    /// recording falls back on, is its interval.
    fn note_timer(&mut self, new: &[(Time, Segment)]) {
        let Some((t, seg)) = new.last() else { return };
        if seg.flags.syn() && !seg.flags.ack() {
            return;
        }
        if let Some(rto) = self.host.rto(&seg.sender_tuple()) {
            let interval = if rto >= self.host.config().rto_max {
                rto
            } else {
                rto / 2
            };
            self.fired = Some((*t, interval));
        }
    }

    fn is_connected(&self, tuple: &Tuple) -> bool {
        self.fds
            .values()
            .any(|fd| matches!(fd, Fd::Conn { tuple: t, .. } if t == tuple))
    }
}

impl Stack for EngineStack {
    fn now(&self) -> Time {
        self.now
    }

    fn advance(&mut self, until: Time, stop_on_packet: bool, sent: &mut Vec<(Time, Segment)>) {
        let mut walk = Advance::new(self.now, until);
        while !stop_on_packet || sent.is_empty() {
            let Some(at) = walk.fire(&mut [&mut self.host]) else {
                break;
            };
            self.now = at;
            let before = sent.len();
            self.collect(sent);
            self.note_timer(&sent[before..]);
        }
        if stop_on_packet && !sent.is_empty() {
            return;
        }
        self.now = self.now.max(until);
        let due = self.host.poll_timeout().is_some_and(|d| d <= self.now);
        walk.finish(&mut [&mut self.host]);
        let before = sent.len();
        self.collect(sent);
        if due {
            self.note_timer(&sent[before..]);
        }
    }

    fn fired_timer(&self, t: Time) -> Option<Duration> {
        self.fired.filter(|(at, _)| *at == t).map(|(_, i)| i)
    }

    fn inject(&mut self, seg: &Segment, options: &TcpOptions) -> Result<(), String> {
        if seg.flags.syn() {
            if let Some(mss) = options.mss {
                self.peer_mss = mss as u32;
            }
            if options.sack_ok {
                self.notices.push(
                    "the inbound SYN offers SACK: Linux would use it (tail loss probes); the \
                     engine does not model it"
                        .into(),
                );
            }
        }
        let tuple = seg.receiver_tuple();
        let before = self.host.sequence(&tuple).map(|s| s.1);
        self.host.handle(self.now, seg);
        let after = self.host.sequence(&tuple).map(|s| s.1);
        if let (Some(b), Some(a)) = (before, after) {
            // Payload taken in order (rcv_nxt also counts a FIN).
            let advanced = a.wrapping_sub(b);
            let fin = seg.flags.fin() && advanced == seg.len + 1;
            self.bytes_in += (advanced - fin as u32).min(seg.len) as u64;
            self.eof |= fin;
        }
        Ok(())
    }

    fn late_search(&self) -> Duration {
        LATE_SEARCH
    }

    fn local_port(&self, fd: i64) -> Option<u16> {
        match self.fds.get(&fd)? {
            Fd::Conn { tuple, .. } => Some(tuple.local_port),
            _ => None,
        }
    }

    fn setup(&mut self, s: &Setup) -> Result<(), String> {
        let mut cfg = self.host.config().clone();
        if let Some(tick) = s.ts_tick_usecs {
            cfg.ts_tick_us = u32::try_from(tick).map_err(|_| "timestamp tick too large")?;
            cfg.validate()?;
        }
        self.host = Host::new(cfg);
        self.bind_port_zero = s.bind_port_zero;
        Ok(())
    }

    fn sysctl(&mut self, line: usize, s: &Sysctl) -> Result<(), Failure> {
        let mut cfg = self.host.config().clone();
        s.apply(&mut cfg).map_err(|e| fail(line, e))?;
        // The runner applies sysctls before anything happens, so the host
        // has nothing to lose yet.
        self.host = Host::new(cfg);
        Ok(())
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    fn call(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        self.syscall(line, c)
    }
}
