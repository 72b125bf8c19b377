//! Runs a parsed script against one [`Host`] playing the local host, the way
//! packetdrill runs one against a kernel: inbound packets are injected at their
//! times, system calls are made at theirs, and each outbound packet must match
//! the next one the host sends, within the timing tolerance.
//!
//! The clock is virtual: the runner jumps from event to event and fires the
//! host's timers at their deadlines on the way, so a 60 s TIME-WAIT takes no
//! wall time.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use super::parse::{Call, Direction, Event, EventKind, Expr, PacketSpec, Script, Syscall, When};
use crate::host::{Event as HostEvent, Host};
use crate::segment::{Flags, Segment};
use crate::state::State;
use crate::time::Time;
use crate::tuple::Tuple;
use crate::Config;

/// The local host, as in packetdrill's defaults (`--local_ip`).
pub const LOCAL_IP: [u8; 4] = [192, 168, 0, 1];
/// The remote peer the script plays (`--remote_ip`).
pub const REMOTE_IP: [u8; 4] = [192, 0, 2, 1];
/// The port the local host listens on, and that connect() connects to
/// (packetdrill's `--bind_port` and `--connect_port`).
pub const SCRIPT_PORT: u16 = 8080;
/// The other end's port: the remote's on a passive open, the local host's
/// ephemeral port on an active one.
pub const EPHEMERAL_PORT: u16 = 40_000;

/// packetdrill's default timing tolerance (`--tolerance_usecs`).
pub const DEFAULT_TOLERANCE_US: u64 = 4_000;

/// Linux's MSS when the peer's SYN carries no MSS option (RFC 9293 §3.7.1).
const DEFAULT_MSS: u32 = 536;

/// How far past an outbound packet's window the runner looks for a late
/// packet, so that the error can say when it did come.
const LATE_SEARCH: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone)]
pub struct Options {
    pub tolerance_us: u64,
    /// Print every segment and system call, in script notation, on stdout.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tolerance_us: DEFAULT_TOLERANCE_US,
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

/// Why a script failed: the line and a packetdrill-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.msg)
    }
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

/// A file descriptor of the script.
#[derive(Debug, Clone, Copy)]
enum Fd {
    /// From socket(), not yet listening or connected.
    Socket {
        linger_abort: bool,
    },
    Listener {
        linger_abort: bool,
    },
    Conn {
        tuple: Tuple,
        linger_abort: bool,
    },
}

impl Fd {
    fn linger_abort(&mut self) -> &mut bool {
        match self {
            Fd::Socket { linger_abort }
            | Fd::Listener { linger_abort }
            | Fd::Conn { linger_abort, .. } => linger_abort,
        }
    }
}

/// A system call's result: a value, or -1 with an errno name.
type CallResult = Result<i64, &'static str>;

/// Runs `script` to its end or its first failure.
/// A tolerance written in the script (`--tolerance_usecs=N`) overrides the one
/// in `opts`.
pub fn run(script: &Script, opts: &Options) -> Outcome {
    let opts = Options {
        tolerance_us: script.tolerance_usecs.unwrap_or(opts.tolerance_us),
        ..opts.clone()
    };
    let mut r = Runner::new(&opts);
    r.notices.extend(script.notices.iter().cloned());
    let failure = r.run(&script.events).err();
    Outcome {
        failure,
        trace: r.trace,
        notices: r.notices,
        end: r.now,
    }
}

struct Runner<'a> {
    opts: &'a Options,
    host: Host,
    now: Time,
    /// Segments the host sent that no `>` line has matched yet.
    queue: VecDeque<(Time, Segment)>,
    trace: Vec<Traced>,
    notices: Vec<String>,
    /// The connection under test (one per script, as in packetdrill).
    tuple: Tuple,
    /// Live and script ISN of the local host, from its first SYN.
    local_isn: Option<(u32, u32)>,
    /// The remote ISN: the sequence number of the first inbound SYN.
    remote_isn: Option<u32>,
    fds: BTreeMap<i64, Fd>,
    /// Passive connections through the handshake, not yet accepted.
    accept_queue: VecDeque<Tuple>,
    listener_linger_abort: bool,
    peer_mss: u32,
    /// In-order payload bytes received, and read by the application.
    bytes_in: u64,
    bytes_read: u64,
    /// The last absolute time written in the script, to catch time going backwards.
    last_absolute: u64,
}

impl<'a> Runner<'a> {
    fn new(opts: &'a Options) -> Runner<'a> {
        let cfg = Config::default();
        Runner {
            opts,
            host: Host::new(cfg),
            now: Time::ZERO,
            queue: VecDeque::new(),
            trace: Vec::new(),
            notices: Vec::new(),
            tuple: Tuple::new(LOCAL_IP, SCRIPT_PORT, REMOTE_IP, EPHEMERAL_PORT),
            local_isn: None,
            remote_isn: None,
            fds: BTreeMap::new(),
            accept_queue: VecDeque::new(),
            listener_linger_abort: false,
            peer_mss: DEFAULT_MSS,
            bytes_in: 0,
            bytes_read: 0,
            last_absolute: 0,
        }
    }

    fn tolerance(&self) -> Duration {
        Duration::from_micros(self.opts.tolerance_us)
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
        for ev in events {
            match &ev.kind {
                EventKind::Packet(p) if p.dir == Direction::Outbound => self.outbound(ev, p)?,
                EventKind::Packet(p) => {
                    let t = self.arrive_at(ev)?;
                    self.inbound(t, p);
                }
                EventKind::Syscall(c) => {
                    let t = self.arrive_at(ev)?;
                    self.syscall(t, ev.line, c)?;
                }
                EventKind::Ignored => {}
            }
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
                    self.now.as_micros()
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
                let lo = Time::from_micros(base + start);
                let hi = Time::from_micros(base + end.unwrap_or(start));
                Ok(Some((lo, hi)))
            }
        }
    }

    /// Brings the clock to an inbound packet's or a system call's time, firing
    /// timers on the way; the host must send nothing the script did not expect.
    fn arrive_at(&mut self, ev: &Event) -> Result<Time, Failure> {
        let window = self.window(ev)?;
        let t = window.map_or(self.now, |(lo, _)| lo.max(self.now));
        self.unexpected(ev.line)?;
        self.advance(t, true);
        self.unexpected(ev.line)?;
        if let Some((_, hi)) = window {
            if self.now > hi + self.tolerance() {
                return Err(fail(
                    ev.line,
                    format!(
                        "timing error: expected event at {} sec but it could only run at {} sec",
                        secs(hi),
                        secs(self.now)
                    ),
                ));
            }
        }
        Ok(self.now)
    }

    fn unexpected(&self, line: usize) -> Result<(), Failure> {
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

    /// Moves the clock to `until`, firing each timer at its deadline. With
    /// `stop_on_packet`, stops as soon as the host has sent something.
    fn advance(&mut self, until: Time, stop_on_packet: bool) {
        let mut fired = None;
        while !stop_on_packet || self.queue.is_empty() {
            match self.host.poll_timeout() {
                Some(d) if d <= until => {
                    let d = d.max(self.now);
                    if fired == Some(d) {
                        break; // nothing more due at this instant
                    }
                    self.now = d;
                    self.host.handle_timeout(d);
                    fired = Some(d);
                    self.collect();
                }
                _ => break,
            }
        }
        if stop_on_packet && !self.queue.is_empty() {
            return;
        }
        self.now = self.now.max(until);
        self.host.handle_timeout(self.now);
        self.collect();
    }

    /// Takes what the host sent and told since the last call.
    fn collect(&mut self) {
        let now = self.now;
        let sent: Vec<Segment> = self.host.transmits().collect();
        for seg in sent {
            self.trace.push(Traced {
                t: now,
                dir: Direction::Outbound,
                seg,
            });
            self.queue.push_back((now, seg));
        }
        let events: Vec<HostEvent> = self.host.events().collect();
        for e in events {
            match e {
                HostEvent::Established { tuple } if !self.is_connected(&tuple) => {
                    self.accept_queue.push_back(tuple);
                }
                HostEvent::Closed { tuple, .. } => self.accept_queue.retain(|t| *t != tuple),
                _ => {}
            }
        }
    }

    fn is_connected(&self, tuple: &Tuple) -> bool {
        self.fds
            .values()
            .any(|fd| matches!(fd, Fd::Conn { tuple: t, .. } if t == tuple))
    }

    // ---- packets -------------------------------------------------------------

    fn inbound(&mut self, t: Time, p: &PacketSpec) {
        let syn = p.flags.syn();
        if syn {
            self.remote_isn.get_or_insert(p.seq);
            if let Some(mss) = p.options.mss {
                self.peer_mss = mss as u32;
            }
            if p.options.sack_ok || p.options.timestamps {
                self.notices.push(
                    "the inbound SYN offers SACK or timestamps: Linux would use them (tail loss \
                     probes, PAWS); the engine models neither"
                        .into(),
                );
            }
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
        let seg = Segment {
            src_ip: self.tuple.remote_ip,
            dst_ip: self.tuple.local_ip,
            src_port: self.tuple.remote_port,
            dst_port: self.tuple.local_port,
            seq,
            ack,
            len: p.len,
            wnd: p.win.unwrap_or(0),
            flags: p.flags,
        };
        if self.opts.verbose {
            println!("{}", self.dump(t, Direction::Inbound, &seg));
        }
        self.trace.push(Traced {
            t,
            dir: Direction::Inbound,
            seg,
        });
        let before = self.host.sequence(&self.tuple).map(|s| s.1);
        self.host.handle(t, &seg);
        let after = self.host.sequence(&self.tuple).map(|s| s.1);
        if let (Some(b), Some(a)) = (before, after) {
            // Payload taken in order (rcv_nxt also counts a FIN).
            let advanced = a.wrapping_sub(b);
            let fin = seg.flags.fin() && advanced == seg.len + 1;
            self.bytes_in += (advanced - fin as u32).min(seg.len) as u64;
        }
        self.collect();
    }

    fn outbound(&mut self, ev: &Event, p: &PacketSpec) -> Result<(), Failure> {
        let window = self.window(ev)?;
        let tol = self.tolerance();
        if self.queue.is_empty() {
            let until = window.map_or(self.now + LATE_SEARCH, |(_, hi)| hi + tol);
            self.advance(until, true);
        }
        if self.queue.is_empty() {
            // Look further, to say when the packet did come, if ever.
            let until = self.now + LATE_SEARCH;
            self.advance(until, true);
        }
        let Some((te, seg)) = self.queue.pop_front() else {
            let why = format!("looked {} s past the expected time", LATE_SEARCH.as_secs());
            return Err(fail(
                ev.line,
                format!(
                    "error handling packet: expected outbound packet {} but the host sent \
                     nothing ({why})\nscript packet: {}",
                    window.map_or("at any time".to_string(), |(lo, _)| format!(
                        "at {} sec",
                        secs(lo)
                    )),
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
                        secs(Time::from_micros(self.opts.tolerance_us))
                    )),
                ));
            }
        }
        Ok(())
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
        let mut s = format!(
            "{:>10} {arrow} {:?} {seq}:{}({})",
            secs(t),
            seg.flags,
            seq.wrapping_add(seg.len),
            seg.len
        );
        if seg.flags.ack() {
            s += &format!(" ack {ack}");
        }
        s + &format!(" win {}", seg.wnd)
    }

    // ---- system calls --------------------------------------------------------

    fn syscall(&mut self, t: Time, line: usize, c: &Syscall) -> Result<(), Failure> {
        let got = self.call(t, line, c)?;
        self.collect();
        if self.opts.verbose {
            let ret = match got {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 {e}"),
            };
            let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
            println!("{:>10}   {}({}) = {ret}", secs(t), c.name, args.join(", "));
        }
        let ok = match got {
            Ok(v) => c.ret == v,
            // Errors are matched loosely: -1 with any errno name.
            Err(_) => c.ret == -1,
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

    fn call(&mut self, t: Time, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        let fd_arg = |i: usize| match c.args.get(i) {
            Some(Expr::Int(v)) => Ok(*v),
            _ => Err(fail(
                line,
                format!("{}(): argument {} must be a number", c.name, i + 1),
            )),
        };
        Ok(match c.call {
            Call::Socket => {
                let fd = self.free_fd();
                self.fds.insert(
                    fd,
                    Fd::Socket {
                        linger_abort: false,
                    },
                );
                Ok(fd)
            }
            Call::Bind | Call::Fcntl => {
                self.fd(line, fd_arg(0)?)?;
                if c.call == Call::Fcntl {
                    // fcntl's result is the script's own business (F_GETFL flags).
                    return Ok(if c.ret >= 0 { Ok(c.ret) } else { Err("EINVAL") });
                }
                Ok(0)
            }
            Call::Listen => {
                let fd = fd_arg(0)?;
                let linger_abort = *self.fd(line, fd)?.linger_abort();
                self.host.listen(SCRIPT_PORT);
                self.listener_linger_abort = linger_abort;
                self.fds.insert(fd, Fd::Listener { linger_abort });
                Ok(0)
            }
            Call::Accept => {
                let fd = fd_arg(0)?;
                if !matches!(self.fd(line, fd)?, Fd::Listener { .. }) {
                    return Ok(Err("EINVAL"));
                }
                match self.accept_queue.pop_front() {
                    Some(tuple) => {
                        let new = self.free_fd();
                        let linger_abort = self.listener_linger_abort;
                        self.fds.insert(
                            new,
                            Fd::Conn {
                                tuple,
                                linger_abort,
                            },
                        );
                        Ok(new)
                    }
                    None if c.ret < 0 => Err("EAGAIN"),
                    None => {
                        return Err(fail(
                            line,
                            "accept() would block: no connection has completed the handshake \
                             (blocking calls are not modelled)",
                        ))
                    }
                }
            }
            Call::Connect => {
                let fd = fd_arg(0)?;
                let linger_abort = *self.fd(line, fd)?.linger_abort();
                self.tuple = Tuple::new(LOCAL_IP, EPHEMERAL_PORT, REMOTE_IP, SCRIPT_PORT);
                let tuple = self.tuple;
                match self.host.connect(t, tuple) {
                    Ok(()) => {
                        self.fds.insert(
                            fd,
                            Fd::Conn {
                                tuple,
                                linger_abort,
                            },
                        );
                        // A non-blocking connect() returns EINPROGRESS; a blocking
                        // one would return 0 once established.
                        if c.ret < 0 {
                            Err("EINPROGRESS")
                        } else {
                            Ok(0)
                        }
                    }
                    Err(_) => Err("EISCONN"),
                }
            }
            Call::Close => {
                let fd = fd_arg(0)?;
                match self.fd(line, fd)? {
                    Fd::Conn {
                        tuple,
                        linger_abort,
                    } => {
                        let (tuple, abort) = (*tuple, *linger_abort);
                        // close() succeeds whatever state the connection is in,
                        // even when it is already gone (reset).
                        let _ = if abort {
                            self.host.abort(t, tuple)
                        } else {
                            self.host.close(t, tuple)
                        };
                        self.bytes_read = self.bytes_in;
                    }
                    Fd::Listener { .. } => self.notices.push(format!(
                        "line {line}: close() of a listening socket: the engine keeps listening"
                    )),
                    Fd::Socket { .. } => {}
                }
                self.fds.remove(&fd);
                Ok(0)
            }
            Call::Shutdown => {
                let fd = fd_arg(0)?;
                let how = match c.args.get(1) {
                    Some(Expr::Name(n)) => n.as_str(),
                    Some(Expr::Int(0)) => "SHUT_RD",
                    Some(Expr::Int(1)) => "SHUT_WR",
                    Some(Expr::Int(2)) => "SHUT_RDWR",
                    _ => {
                        return Err(fail(
                            line,
                            "shutdown(): expected SHUT_RD, SHUT_WR or SHUT_RDWR",
                        ))
                    }
                };
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN"));
                };
                match how {
                    "SHUT_RD" => Ok(0),
                    "SHUT_WR" | "SHUT_RDWR" => match self.host.shutdown(t, tuple) {
                        Ok(()) => Ok(0),
                        Err(_) => Err("ENOTCONN"),
                    },
                    other => return Err(fail(line, format!("shutdown(): unknown mode {other}"))),
                }
            }
            Call::Setsockopt => {
                let fd = fd_arg(0)?;
                let slot = self.fd(line, fd)?;
                if matches!(c.args.get(2), Some(Expr::Name(n)) if n == "SO_LINGER") {
                    let (onoff, linger) = linger_fields(c.args.get(3))
                        .ok_or_else(|| fail(line, "SO_LINGER needs {onoff=N, linger=N}"))?;
                    if onoff != 0 && linger != 0 {
                        return Err(fail(
                            line,
                            "SO_LINGER with a non-zero linger time is not modelled (close() would block)",
                        ));
                    }
                    *slot.linger_abort() = onoff != 0;
                    if let Fd::Listener { .. } = slot {
                        self.listener_linger_abort = onoff != 0;
                    }
                }
                Ok(0)
            }
            Call::Write => {
                let fd = fd_arg(0)?;
                let len = fd_arg(2)?;
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN"));
                };
                let len = u32::try_from(len).map_err(|_| fail(line, "write(): bad length"))?;
                if len > self.peer_mss {
                    return Err(fail(
                        line,
                        format!(
                            "write() of {len} bytes exceeds the peer's MSS ({}): Linux would send \
                             several segments, the engine sends one; keep writes within the MSS",
                            self.peer_mss
                        ),
                    ));
                }
                match self.host.send(t, tuple, len) {
                    Ok(()) => Ok(len as i64),
                    Err(_) => Err("EPIPE"),
                }
            }
            Call::Read => {
                let fd = fd_arg(0)?;
                let len = fd_arg(2)?.max(0) as u64;
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN"));
                };
                let available = self.bytes_in - self.bytes_read;
                let state = self.host.state(&tuple);
                if available > 0 {
                    let n = available.min(len);
                    self.bytes_read += n;
                    Ok(n as i64)
                } else if state.fin_received() {
                    Ok(0)
                } else if state == State::Closed {
                    Err("ECONNRESET")
                } else {
                    Err("EAGAIN")
                }
            }
        })
    }

    fn fd(&mut self, line: usize, fd: i64) -> Result<&mut Fd, Failure> {
        self.fds
            .get_mut(&fd)
            .ok_or_else(|| fail(line, format!("fd {fd} is not open in this script")))
    }

    /// The lowest free descriptor from 3, as a kernel hands them out.
    fn free_fd(&self) -> i64 {
        (3..).find(|fd| !self.fds.contains_key(fd)).unwrap_or(3)
    }
}

/// `{onoff=1, linger=0}` (or `l_onoff`, `l_linger`).
fn linger_fields(e: Option<&Expr>) -> Option<(i64, i64)> {
    let Some(Expr::Struct(fields)) = e else {
        return None;
    };
    let get = |names: [&str; 2]| {
        fields.iter().find_map(|(n, v)| match v {
            Expr::Int(i) if names.contains(&n.as_str()) => Some(*i),
            _ => None,
        })
    };
    Some((get(["onoff", "l_onoff"])?, get(["linger", "l_linger"])?))
}

fn fail(line: usize, msg: impl Into<String>) -> Failure {
    Failure {
        line,
        msg: msg.into(),
    }
}

fn secs(t: Time) -> String {
    t.to_string()
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
