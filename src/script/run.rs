//! Runs a parsed script against a [`Stack`] playing the local host, the way
//! packetdrill runs one against a kernel: inbound packets are injected at their
//! times, system calls are made at theirs, and each outbound packet must match
//! the next one the stack sends, within the timing tolerance.
//!
//! What a script means (its clock, its sequence-number mapping, what counts as
//! a match) lives here, once; the stacks only move time, carry packets and make
//! system calls. The engine's stack runs on a virtual clock, so a 60 s
//! TIME-WAIT takes no wall time; the kernel's runs in real time.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::engine::EngineStack;
use super::parse::{Call, Direction, Event, EventKind, Expr, PacketSpec, Script, Syscall, When};
use super::stack::{
    fail, int_arg, sockaddr_in, CallResult, Failure, Setup, Stack, ACTIVE, LOCAL_IP, PASSIVE,
};
use teardown_engine::segment::{Flags, Segment, Ts};
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

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

    /// packetdrill's `verify_time`: the larger of the fixed tolerance and
    /// the relative one, a share of the time since the previous event was due.
    fn tolerance(&self, due: Time) -> Duration {
        let fixed = Duration::from_micros(self.opts.tolerance_us);
        let Some((last, _)) = self.last_event else {
            return fixed;
        };
        let delta = due.saturating_sub(last).as_micros() as f64;
        let relative = (delta * self.opts.tolerance_percent / 100.0) as u64;
        fixed.max(Duration::from_micros(relative))
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

    /// The window `[lo, hi]` in which event `ev` is due (None for `*`).
    fn window(&mut self, ev: &Event) -> Result<Option<(Time, Time)>, Failure> {
        match ev.when {
            When::Any => Ok(None),
            When::At {
                relative,
                start,
                end,
            } => {
                let base = if relative {
                    match self.last_event {
                        Some((due, true)) if is_inbound(ev) => due.as_micros(),
                        _ => self.now().as_micros(),
                    }
                } else {
                    if start < self.last_absolute {
                        return Err(fail(
                            ev.line,
                            format!(
                                "time goes backward in script from {} usec to {start} usec",
                                self.last_absolute
                            ),
                        ));
                    }
                    self.last_absolute = start;
                    0
                };
                let at = |t: u64| {
                    base.checked_add(t).map(Time::from_micros).ok_or_else(|| {
                        fail(ev.line, "time overflows: the script runs past 2^64 usec")
                    })
                };
                Ok(Some((at(start)?, at(end.unwrap_or(start))?)))
            }
        }
    }

    /// Brings the clock to an inbound packet's or a system call's time; the
    /// stack must send nothing the script did not expect meanwhile.
    fn arrive_at(&mut self, ev: &Event) -> Result<Option<(Time, Time)>, Failure> {
        let window = self.window(ev)?;
        let before = self.now();
        // Injecting an inbound packet is the runner's own work: time it took
        // (the runner's thread descheduled mid-write) is the runner falling
        // behind, even when it shows only at the next line.
        let after_inbound = matches!(self.last_event, Some((_, true)));
        let t = window.map_or(before, |(lo, _)| lo.max(before));
        self.unexpected(ev.line)?;
        self.advance(t, true);
        self.unexpected(ev.line)?;
        if let Some((lo, hi)) = window {
            let now = self.now();
            let limit = hi + self.tolerance(lo);
            if now > limit {
                return Err(Failure {
                    // Only if the time was still to come, or the runner took
                    // it past while injecting the line before: an earlier
                    // line that waited (for a packet, or a blocking call)
                    // and took the clock past it is the script's or the
                    // stack's doing.
                    runner_late: before <= limit || after_inbound,
                    ..fail(
                        ev.line,
                        format!(
                            "timing error: expected event at {} sec but it could only run at {} sec",
                            secs(hi),
                            secs(now)
                        ),
                    )
                });
            }
        }
        Ok(window)
    }

    /// How late an event was done after its window opened: the local host's
    /// next TSvals may be that much later than the script's.
    fn note_lateness(&mut self, window: Option<(Time, Time)>) {
        if let Some((lo, _)) = window {
            self.ts_slack += self.now().saturating_sub(lo);
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

    // ---- packets -------------------------------------------------------------

    fn inbound(&mut self, line: usize, p: &PacketSpec) -> Result<(), Failure> {
        let syn = p.flags.syn();
        if syn {
            self.remote_isn.get_or_insert(p.seq);
        }
        let seq = if syn {
            p.seq
        } else {
            p.seq.wrapping_add(self.remote_isn.unwrap_or(0))
        };
        let ack = p.ack.map_or(0, |a| match self.local_isn {
            Some((live, script)) if syn => a.wrapping_add(live.wrapping_sub(script)),
            Some((live, _)) => a.wrapping_add(live),
            None => a,
        });
        let t = self.tuple;
        let seg = Segment {
            src_ip: t.remote_ip,
            dst_ip: t.local_ip,
            src_port: t.remote_port,
            dst_port: t.local_port,
            seq,
            ack,
            len: p.len,
            wnd: p.win.unwrap_or(0),
            flags: p.flags,
            // TSval is the script's peer clock, as written; TSecr echoes ours.
            ts: p.options.ts.map(|ts| Ts {
                val: ts.val,
                ecr: match self.last_ts_sent {
                    Some(latest) if self.record.is_some() && !syn => latest,
                    _ => ts.ecr.wrapping_add(self.ts_offset.unwrap_or(0)),
                },
            }),
        };
        if let Some(Some(Recorded::Event { ts, .. })) =
            self.record.as_deref_mut().map(|log| log.last_mut())
        {
            *ts = seg.ts;
        }
        let now = self.now();
        if self.opts.verbose {
            println!("{}", self.dump(now, Direction::Inbound, &seg));
        }
        self.trace.push(Traced {
            t: now,
            dir: Direction::Inbound,
            seg,
        });
        self.stack
            .inject(&seg, &p.options)
            .map_err(|e| fail(line, format!("error injecting packet: {e}")))?;
        self.advance(now, false);
        Ok(())
    }

    fn outbound(&mut self, ev: &Event, p: &PacketSpec) -> Result<Option<(Time, Time)>, Failure> {
        let window = self.window(ev)?;
        let tol = window.map_or(Duration::ZERO, |(lo, _)| self.tolerance(lo));
        let late = self.stack.late_search();
        if self.queue.is_empty() {
            let until = window.map_or(self.now() + late, |(_, hi)| hi + tol);
            self.advance(until, true);
        }
        if self.queue.is_empty() {
            // Look further, to say when the packet did come, if ever.
            let until = self.now() + late;
            self.advance(until, true);
        }
        let Some((te, seg)) = self.queue.pop_front() else {
            return Err(fail(
                ev.line,
                format!(
                    "error handling packet: expected outbound packet {} but the host sent \
                     nothing (looked {} s past the expected time)\nscript packet: {}",
                    window.map_or("at any time".to_string(), |(lo, _)| format!(
                        "at {} sec",
                        secs(lo)
                    )),
                    late.as_secs_f64(),
                    spec_string(p)
                ),
            ));
        };
        if seg.flags.syn() && self.local_isn.is_none() {
            self.local_isn = Some((seg.seq, p.seq));
        }
        if self.opts.verbose {
            println!("{}", self.dump(te, Direction::Outbound, &seg));
        }
        let (seq, ack) = self.outbound_to_script(&seg);
        let fields = [
            ("tcp_fin", p.flags.fin() as u32, seg.flags.fin() as u32),
            ("tcp_syn", p.flags.syn() as u32, seg.flags.syn() as u32),
            ("tcp_rst", p.flags.rst() as u32, seg.flags.rst() as u32),
            (
                "tcp_psh",
                p.flags.contains(Flags::PSH) as u32,
                seg.flags.contains(Flags::PSH) as u32,
            ),
            ("tcp_ack", p.flags.ack() as u32, seg.flags.ack() as u32),
            ("tcp_seq", p.seq, seq),
            ("tcp_payload_len", p.len, seg.len),
            (
                "tcp_ack_seq",
                p.ack.unwrap_or(0),
                if seg.flags.ack() { ack } else { 0 },
            ),
        ];
        let mismatch = fields
            .into_iter()
            .chain(p.win.map(|w| ("tcp_window", w as u32, seg.wnd as u32)))
            .find(|(_, want, got)| want != got);
        let width = window.map_or(Duration::ZERO, |(lo, hi)| hi - lo);
        let ts_mismatch = self.check_ts(p, &seg, tol, width);
        let detail = |msg: String| {
            format!(
                "error handling packet: {msg}\nscript packet: {:>10} {}\nactual packet: {}",
                window.map_or("*".to_string(), |(lo, _)| secs(lo)),
                spec_string(p),
                self.dump(te, Direction::Outbound, &seg)
            )
        };
        if let Some((name, want, got)) = mismatch {
            return Err(fail(
                ev.line,
                detail(format!(
                    "live packet field {name}: expected: {want} vs actual: {got}"
                )),
            ));
        }
        if let Some(msg) = ts_mismatch {
            return Err(fail(ev.line, detail(msg)));
        }
        if let Some((lo, hi)) = window {
            let early = te + tol < lo;
            let late = te > hi + tol;
            if early || late {
                let expected = if lo == hi {
                    format!("at {} sec", secs(lo))
                } else {
                    format!("in time range {}~{} sec", secs(lo), secs(hi))
                };
                return Err(fail(
                    ev.line,
                    detail(format!(
                        "timing error: expected outbound packet {expected} but happened at {} sec; \
                         tolerance {} sec",
                        secs(te),
                        secs(Time::ZERO + tol)
                    )),
                ));
            }
        }
        Ok(window)
    }

    /// The timestamps option of an outbound segment against the script's
    /// (unless it wrote `<...>`): present on both or neither; TSecr equal
    /// (packetdrill does not check it); TSval, mapped to script time by the
    /// previous one, within the timing tolerance when `--tcp_ts_tick_usecs`
    /// is given (packetdrill's rule, but packetdrill maps by the first one
    /// only; here a line with a time range `lo~hi` also takes the TSval of any
    /// time in it, `width`).
    fn check_ts(
        &mut self,
        p: &PacketSpec,
        seg: &Segment,
        tol: Duration,
        width: Duration,
    ) -> Option<String> {
        if p.options.unchecked {
            if let (Some(live), Some(script), None) = (seg.ts, p.options.ts, self.ts_offset) {
                self.ts_offset = Some(live.val.wrapping_sub(script.val));
            }
            return None;
        }
        let (live, script) = match (seg.ts, p.options.ts) {
            (None, None) => return None,
            (Some(live), Some(script)) => (live, script),
            (live, script) => {
                return Some(format!(
                    "live packet TCP timestamps option: expected: {} vs actual: {}",
                    if script.is_some() {
                        "present"
                    } else {
                        "absent"
                    },
                    if live.is_some() { "present" } else { "absent" },
                ))
            }
        };
        let offset = *self
            .ts_offset
            .get_or_insert(live.val.wrapping_sub(script.val));
        // Inbound TSvals go in as written, so the echo of one is unmapped.
        if live.ecr != script.ecr {
            return Some(format!(
                "live packet field tcp_ts_ecr: expected: {} vs actual: {}",
                script.ecr, live.ecr
            ));
        }
        let mapped = live.val.wrapping_sub(offset);
        let ahead = mapped.wrapping_sub(script.val) as i32 as i64;
        // The next lines are timed from when this one happened, and so are
        // their TSvals: re-anchor (packetdrill keeps the first offset, so
        // that lateness within tolerances adds up). Events that ran late
        // since then (an injection on a busy machine) make TSvals late too.
        self.ts_offset = Some(live.val.wrapping_sub(script.val));
        let late = std::mem::take(&mut self.ts_slack);
        match self.ts_tick_usecs {
            Some(tick)
                if ahead * (tick as i64) < -(tol.as_micros() as i64)
                    || ahead * (tick as i64) > (tol + width + late).as_micros() as i64 =>
            {
                Some(format!(
                    "bad outbound TCP timestamp value: expected: {} vs actual: {mapped}",
                    script.val
                ))
            }
            _ => None,
        }
    }

    /// Live to script sequence space: packetdrill's mapping (SYNs absolute,
    /// everything else relative to the ISNs).
    fn outbound_to_script(&self, seg: &Segment) -> (u32, u32) {
        let syn = seg.flags.syn();
        let seq = match self.local_isn {
            Some((live, script)) if syn => seg.seq.wrapping_sub(live).wrapping_add(script),
            Some((live, _)) => seg.seq.wrapping_sub(live),
            None => seg.seq,
        };
        let ack = if syn {
            seg.ack
        } else {
            seg.ack.wrapping_sub(self.remote_isn.unwrap_or(0))
        };
        (seq, ack)
    }

    /// A segment in script notation, with its time and direction.
    fn dump(&self, t: Time, dir: Direction, seg: &Segment) -> String {
        let syn = seg.flags.syn();
        let (seq, ack) = match dir {
            Direction::Outbound => self.outbound_to_script(seg),
            Direction::Inbound => {
                let seq = if syn {
                    seg.seq
                } else {
                    seg.seq.wrapping_sub(self.remote_isn.unwrap_or(0))
                };
                let ack = match self.local_isn {
                    Some((live, script)) if syn => seg.ack.wrapping_sub(live.wrapping_sub(script)),
                    Some((live, _)) => seg.ack.wrapping_sub(live),
                    None => seg.ack,
                };
                (seq, ack)
            }
        };
        let arrow = if dir == Direction::Inbound { '<' } else { '>' };
        format!(
            "{:>10} {arrow} {} win {}",
            secs(t),
            notation(seg, seq, ack),
            seg.wnd
        )
    }

    /// An outbound segment in script notation, without time or window.
    fn packet_text(&self, seg: &Segment) -> String {
        let (seq, ack) = self.outbound_to_script(seg);
        notation(seg, seq, ack)
    }

    // ---- system calls --------------------------------------------------------

    /// After connect() on `fd`: its connection is the one under test. The
    /// port is the script's when it bound to it, else the one the stack
    /// chose (packetdrill reads it the same way). A connect() that failed
    /// (EADDRNOTAVAIL) leaves the connection under test as it was. Another
    /// 4-tuple is another connection, whose first SYN fixes its ISNs and
    /// its TSval offset afresh (packetdrill maps each socket by itself; Linux
    /// 6.18 and the engine key the TS offset by the 4-tuple); the same
    /// 4-tuple again (a TIME-WAIT taken over) keeps them.
    fn follow(&mut self, fd: i64) {
        let port = self.stack.local_port(fd).filter(|p| *p != 0);
        let tuple = Tuple {
            local_port: port.unwrap_or(ACTIVE.local_port),
            ..ACTIVE
        };
        if tuple != self.tuple {
            self.local_isn = None;
            self.remote_isn = None;
            self.ts_offset = None;
        }
        self.tuple = tuple;
    }

    /// getsockname() on a connected descriptor, not in packetdrill: the
    /// address must be the script's `{sa_family=AF_INET,
    /// sin_port=htons(P), sin_addr=inet_addr("A")}`, so that a script can
    /// say which port bind(0) or connect() chose.
    fn getsockname(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        let fd = int_arg(line, c, 0)?;
        let want = sockaddr_in(c.args.get(1)).ok_or_else(|| {
            fail(
                line,
                "getsockname(): expected {sa_family=AF_INET, sin_port=htons(P), \
                 sin_addr=inet_addr(\"A\")}",
            )
        })?;
        let port = self
            .stack
            .local_port(fd)
            .filter(|_| self.connected.contains(&fd))
            .ok_or_else(|| {
                fail(
                    line,
                    format!(
                        "getsockname({fd}): supported after connect() or accept() on it only \
                         (the engine takes a bound port at connect())"
                    ),
                )
            })?;
        let got = (LOCAL_IP, port);
        if got != want {
            let show =
                |(ip, port): ([u8; 4], u16)| format!("{}:{port}", std::net::Ipv4Addr::from(ip));
            return Err(fail(
                line,
                format!(
                    "getsockname({fd}): the local address is {}, but the script expected {}",
                    show(got),
                    show(want)
                ),
            ));
        }
        Ok(Ok(0))
    }

    fn syscall(&mut self, line: usize, c: &Syscall) -> Result<(), Failure> {
        let now = self.now();
        let got = match c.call {
            Call::Getsockname => self.getsockname(line, c)?,
            _ => self.stack.call(line, c)?,
        };
        let opened = got.is_ok() || matches!(&got, Err(e) if e == "EINPROGRESS");
        let fd = match c.args.first() {
            Some(Expr::Int(fd)) => Some(*fd),
            _ => None,
        };
        match (c.call, fd, &got) {
            (Call::Connect, Some(fd), _) if opened => {
                self.connected.insert(fd);
                self.follow(fd);
            }
            (Call::Accept, _, Ok(new)) => {
                self.connected.insert(*new);
            }
            (Call::Close, Some(fd), _) => {
                self.connected.remove(&fd);
            }
            _ => {}
        }
        self.advance(self.now(), false);
        if self.opts.verbose {
            let ret = match &got {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 {e}"),
            };
            let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
            println!(
                "{:>10}   {}({}) = {ret}",
                secs(now),
                c.name,
                args.join(", ")
            );
        }
        if let Some(Some(Recorded::Event { result, .. })) =
            self.record.as_deref_mut().map(|log| log.last_mut())
        {
            *result = Some(match &got {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 {e}"),
            });
            return Ok(());
        }
        // As packetdrill: the value must match, and so must the errno when
        // the script names one.
        let ok = match &got {
            Ok(v) => c.ret == *v,
            Err(e) => c.ret == -1 && c.errno.as_ref().is_none_or(|want| want == e),
        };
        if ok {
            return Ok(());
        }
        let got = match got {
            Ok(v) => v.to_string(),
            Err(e) => format!("-1 ({e})"),
        };
        let want = match &c.errno {
            Some(e) => format!("{} ({e})", c.ret),
            None => c.ret.to_string(),
        };
        Err(fail(
            line,
            format!(
                "{}() returned {got}, but the script expected {want}",
                c.name
            ),
        ))
    }
}

fn is_inbound(ev: &Event) -> bool {
    matches!(&ev.kind, EventKind::Packet(p) if p.dir == Direction::Inbound)
}

fn secs(t: Time) -> String {
    t.to_string()
}

/// `F. 1:1(0) ack 1`: flags, sequence range, and the ACK when it has one.
fn notation(seg: &Segment, seq: u32, ack: u32) -> String {
    let mut s = format!(
        "{:?} {seq}:{}({})",
        seg.flags,
        seq.wrapping_add(seg.len),
        seg.len
    );
    if seg.flags.ack() {
        s += &format!(" ack {ack}");
    }
    s
}

/// A script packet line without its time, options included, as a recording
/// writes it: `< S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,TS val 1 ecr 0,nop,wscale 7>`.
pub fn packet_line(p: &PacketSpec) -> String {
    let o = &p.options;
    let mut opts = Vec::new();
    if let Some(m) = o.mss {
        opts.push(format!("mss {m}"));
    }
    if o.sack_ok {
        opts.push("sackOK".to_string());
    }
    if let Some(ts) = o.ts {
        opts.push(format!("nop,nop,TS val {} ecr {}", ts.val, ts.ecr));
    }
    if let Some(w) = o.wscale {
        opts.push(format!("nop,wscale {w}"));
    }
    let mut s = spec_string(p);
    if o.unchecked {
        s += " <...>";
    } else if !opts.is_empty() {
        s += &format!(" <{}>", opts.join(","));
    }
    s
}

/// A system call line without its time, with `result` as its value:
/// `close(4) = 0`, `read(4, ..., 1000) = -1 ECONNRESET`.
pub fn call_line(c: &Syscall, result: &str) -> String {
    let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
    format!("{}({}) = {result}", c.name, args.join(", "))
}

/// A script packet in packetdrill's notation.
fn spec_string(p: &PacketSpec) -> String {
    let mut s = format!(
        "{} {:?} {}:{}({})",
        if p.dir == Direction::Inbound {
            '<'
        } else {
            '>'
        },
        p.flags,
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        s += &format!(" ack {a}");
    }
    if let Some(w) = p.win {
        s += &format!(" win {w}");
    }
    s
}
