//! Runs a parsed script against a [`Stack`] playing the local host, the way
//! packetdrill runs one against a kernel: inbound packets are injected at their
//! times, system calls are made at theirs, and each outbound packet must match
//! the next one the stack sends, within the timing tolerance.
//!
//! What a script means (its clock, its sequence-number mapping, what counts as
//! a match) lives here, once; the stacks only move time, carry packets and make
//! system calls. The engine's stack runs on a virtual clock, so a 60 s
//! TIME-WAIT takes no wall time; the kernel's runs in real time.
//!
//! This module sets a run up and walks the script's events; `timing` says when
//! each is due, `packets` injects inbound and matches outbound segments,
//! `calls` makes the system calls, and `notation` writes segments and lines
//! back in script notation.

mod calls;
mod notation;
mod packets;
mod timing;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::engine::EngineStack;
use super::parse::{Direction, Event, EventKind, Script, When};
use super::stack::{fail, Failure, Setup, Stack, PASSIVE};
use teardown_engine::segment::{Segment, Ts};
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

pub use notation::{call_line, packet_line};

/// packetdrill's default timing tolerance (`--tolerance_usecs`).
pub const DEFAULT_TOLERANCE_US: u64 = 4_000;
/// packetdrill's default relative tolerance (`--tolerance_percent`): a share
/// of the time since the previous event, for Linux's timer wheel, which fires
/// up to 12.5 % late. The larger of the two applies.
pub const DEFAULT_TOLERANCE_PERCENT: f64 = 12.5;

#[derive(Debug, Clone)]
pub struct Options {
    pub tolerance_us: u64,
    pub tolerance_percent: f64,
    /// Print every segment and system call, in script notation, on stdout.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tolerance_us: DEFAULT_TOLERANCE_US,
            tolerance_percent: DEFAULT_TOLERANCE_PERCENT,
            verbose: false,
        }
    }
}

/// One segment the host sent or received, for the pcap export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traced {
    pub t: Time,
    pub dir: Direction,
    pub seg: Segment,
}

/// What a run produced, pass or fail.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub failure: Option<Failure>,
    pub trace: Vec<Traced>,
    pub notices: Vec<String>,
    /// The virtual time when the run stopped.
    pub end: Time,
}

/// Runs `script` against the engine, to its end or its first failure.
/// Tolerances written in the script (`--tolerance_usecs=N`,
/// `--tolerance_percent=P`) override those in `opts`.
pub fn run(script: &Script, opts: &Options) -> Outcome {
    run_on(&mut EngineStack::new(), script, opts)
}

/// What happened in a recorded run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// `events[index]` of the script (an inbound packet or a system call) ran
    /// at `t`; a system call returned `result` (`0`, `-1 ECONNRESET`); an
    /// inbound packet carried timestamps `ts` (its TSecr the recording's own).
    Event {
        index: usize,
        t: Time,
        result: Option<String>,
        ts: Option<Ts>,
    },
    /// The stack sent this, shown in script notation (`F. 1:1(0) ack 1`); a
    /// timer of this interval sent it, when one did.
    Sent {
        t: Time,
        seg: Segment,
        text: String,
        timer: Option<Duration>,
    },
}

/// Runs `script`'s inbound packets and system calls against the engine and
/// records what it sends, in place of the script's own `>` lines (which are
/// skipped): the raw material of a script that says what the engine does
/// ([`super::record`]).
pub fn record(script: &Script, opts: &Options) -> (Outcome, Vec<Recorded>) {
    let mut stack = EngineStack::new();
    let mut log = Vec::new();
    let outcome = drive(&mut stack, script, opts, Some(&mut log));
    (outcome, log)
}

/// Runs `script` against `stack`.
pub fn run_on<S: Stack>(stack: &mut S, script: &Script, opts: &Options) -> Outcome {
    drive(stack, script, opts, None)
}

fn drive<S: Stack>(
    stack: &mut S,
    script: &Script,
    opts: &Options,
    record: Option<&mut Vec<Recorded>>,
) -> Outcome {
    let opts = Options {
        tolerance_us: script.tolerance_usecs.unwrap_or(opts.tolerance_us),
        tolerance_percent: script.tolerance_percent.unwrap_or(opts.tolerance_percent),
        ..opts.clone()
    };
    let mut r = Runner {
        opts: &opts,
        stack,
        queue: VecDeque::new(),
        trace: Vec::new(),
        notices: script.notices.clone(),
        tuple: PASSIVE,
        connected: BTreeSet::new(),
        local_isn: None,
        remote_isn: None,
        ts_offset: None,
        ts_sent: Vec::new(),
        ts_tick_usecs: script.ts_tick_usecs,
        last_ts_sent: None,
        ts_slack: Duration::ZERO,
        last_absolute: 0,
        last_event: None,
        record,
    };
    let setup = Setup {
        ts_tick_usecs: script.ts_tick_usecs,
        bind_port_zero: script.bind_port_zero,
    };
    let failure = r
        .stack
        .setup(&setup)
        .map_err(|e| fail(script.setup_line, e))
        .and_then(|()| r.run(&script.events))
        .err();
    let mut notices = r.notices;
    notices.extend(r.stack.take_notices());
    Outcome {
        failure,
        trace: r.trace,
        notices,
        end: r.stack.now(),
    }
}

struct Runner<'a, S: Stack> {
    opts: &'a Options,
    stack: &'a mut S,
    /// Segments the stack sent that no `>` line has matched yet.
    queue: VecDeque<(Time, Segment)>,
    trace: Vec<Traced>,
    notices: Vec<String>,
    /// The connection under test: the latest one connect() opened, or the
    /// passive one.
    tuple: Tuple,
    /// Descriptors that connect() or accept() gave a connection.
    connected: BTreeSet<i64>,
    /// Live and script ISN of the local host, from its first SYN.
    local_isn: Option<(u32, u32)>,
    /// The remote ISN: the sequence number of the first inbound SYN.
    remote_isn: Option<u32>,
    /// Live minus script TSval of the local host, from its latest checked
    /// segment with timestamps: inbound TSecrs are shifted by it.
    ts_offset: Option<u32>,
    /// Script and live TSval of each checked outbound segment with
    /// timestamps: an inbound TSecr that echoes one of them goes in as
    /// exactly that live TSval, not shifted by the latest offset (which a
    /// millisecond of jitter since moves). Linux ≥ 6.15 takes a handshake
    /// ACK only if its TSecr lies within the SYN-ACKs' TSvals.
    ts_sent: Vec<(u32, u32)>,
    /// `--tcp_ts_tick_usecs`: outbound TSvals are checked when given.
    ts_tick_usecs: Option<u64>,
    /// The local host's latest TSval: what a peer echoes. A recording puts
    /// it in every inbound TSecr but a SYN's, since a scenario cannot know it.
    last_ts_sent: Option<u32>,
    /// How late the events since the last checked TSval ran (see `check_ts`).
    ts_slack: Duration,
    /// The last absolute time written in the script, to catch time going backwards.
    last_absolute: u64,
    /// When the previous event was due, and whether it was an inbound packet:
    /// the base of the relative tolerance, and of a relative inbound packet
    /// that follows another (packetdrill anchors those to the script's time,
    /// so that injection overheads do not add up).
    last_event: Option<(Time, bool)>,
    /// In a recording, what happened; unexpected packets are then no error.
    record: Option<&'a mut Vec<Recorded>>,
}

impl<S: Stack> Runner<'_, S> {
    fn now(&self) -> Time {
        self.stack.now()
    }
    /// Notes when `ev` was due, for the events after it.
    fn done(&mut self, ev: &Event, window: Option<(Time, Time)>) {
        let due = window.map_or(self.now(), |(lo, _)| lo);
        self.last_event = Some((due, is_inbound(ev)));
    }

    fn run(&mut self, events: &[Event]) -> Result<(), Failure> {
        if let Some(first) = events.first() {
            if !matches!(
                first.when,
                When::At {
                    relative: _,
                    start: 0,
                    ..
                } | When::Any
            ) {
                return Err(fail(first.line, "first event should be at time 0"));
            }
        }
        for (index, ev) in events.iter().enumerate() {
            let window = match &ev.kind {
                EventKind::Packet(p) if p.dir == Direction::Outbound => {
                    if self.record.is_some() {
                        continue; // the recording writes its own
                    }
                    self.outbound(ev, p)?
                }
                EventKind::Packet(p) => {
                    let window = self.arrive_at(ev)?;
                    self.log_event(index);
                    self.inbound(ev.line, p)?;
                    self.note_lateness(window);
                    window
                }
                EventKind::Syscall(c) => {
                    let window = self.arrive_at(ev)?;
                    self.log_event(index);
                    self.syscall(ev.line, c)?;
                    self.note_lateness(window);
                    window
                }
                EventKind::Sysctl(settings) => {
                    if events[..index]
                        .iter()
                        .any(|e| !matches!(e.kind, EventKind::Sysctl(_)))
                    {
                        return Err(fail(
                            ev.line,
                            "a sysctl line must come before the script's first packet or \
                             system call: both stacks apply sysctls before the script starts",
                        ));
                    }
                    for s in settings {
                        self.stack.sysctl(ev.line, s)?;
                    }
                    continue;
                }
            };
            self.done(ev, window);
        }
        // What the stack sends within the tolerance of the last line is
        // still the last line's doing (a real kernel answers within
        // microseconds, but not within none).
        let end = self.now() + Duration::from_micros(self.opts.tolerance_us);
        self.advance(end, true);
        if self.record.is_some() {
            return Ok(());
        }
        match (self.queue.front(), events.last()) {
            (Some(&(t, seg)), Some(last)) => Err(fail(
                last.line,
                format!(
                    "error: unexpected outbound packet after the last line: {}",
                    self.dump(t, Direction::Outbound, &seg)
                ),
            )),
            _ => Ok(()),
        }
    }

    fn log_event(&mut self, index: usize) {
        let t = self.now();
        if let Some(log) = self.record.as_deref_mut() {
            log.push(Recorded::Event {
                index,
                t,
                result: None,
                ts: None,
            });
        }
    }

    fn unexpected(&self, line: usize) -> Result<(), Failure> {
        if self.record.is_some() {
            return Ok(());
        }
        match self.queue.front() {
            Some(&(t, seg)) => Err(fail(
                line,
                format!(
                    "error: unexpected outbound packet before this line: {}",
                    self.dump(t, Direction::Outbound, &seg)
                ),
            )),
            None => Ok(()),
        }
    }

    /// Lets the stack run to `until`, queueing and tracing what it sends.
    fn advance(&mut self, until: Time, stop_on_packet: bool) {
        let mut sent = Vec::new();
        self.stack.advance(until, stop_on_packet, &mut sent);
        for (t, seg) in sent {
            if let Some(ts) = seg.ts {
                self.last_ts_sent = Some(ts.val);
            }
            self.trace.push(Traced {
                t,
                dir: Direction::Outbound,
                seg,
            });
            if self.record.is_some() {
                if seg.flags.syn() && self.local_isn.is_none() {
                    self.local_isn = Some((seg.seq, 0));
                }
                let text = self.packet_text(&seg);
                let timer = self.stack.fired_timer(t);
                if let Some(log) = self.record.as_deref_mut() {
                    log.push(Recorded::Sent {
                        t,
                        seg,
                        text,
                        timer,
                    });
                }
            } else {
                self.queue.push_back((t, seg));
            }
        }
    }
}

fn is_inbound(ev: &Event) -> bool {
    matches!(&ev.kind, EventKind::Packet(p) if p.dir == Direction::Inbound)
}

fn secs(t: Time) -> String {
    t.to_string()
}
