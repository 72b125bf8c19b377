//! What a script runs against: the [`Stack`] trait a stack implements to play
//! the local host, the addresses the script's connection uses, and the
//! system-call helpers both stacks (the engine's and the kernel's) share, so
//! that each stack and the runner depend on this module and not on each other.

use std::fmt;
use std::time::Duration;

use super::parse::{Expr, Syscall, TcpOptions};
use super::sysctl::Sysctl;
use teardown_engine::segment::Segment;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

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

/// The connection of a script that listens, and of one that connects.
pub const PASSIVE: Tuple = Tuple::new(LOCAL_IP, SCRIPT_PORT, REMOTE_IP, EPHEMERAL_PORT);
pub const ACTIVE: Tuple = Tuple::new(LOCAL_IP, EPHEMERAL_PORT, REMOTE_IP, SCRIPT_PORT);

/// What a script asks of the stack before its first line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Setup {
    /// `--tcp_ts_tick_usecs`: the tick of the local host's TSval clock (None:
    /// the stack's own, Linux's millisecond).
    pub ts_tick_usecs: Option<u64>,
    /// `--bind_port=0`: `bind()` binds port 0.
    pub bind_port_zero: bool,
}

/// How a script's `bind()` takes its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The script's port, [`EPHEMERAL_PORT`] (packetdrill's `--bind_port`).
    ScriptPort,
    /// Port 0: the stack chooses at bind() (`inet_csk_find_open_port`, odd
    /// ports first, a port nobody holds), or at connect() like an unbound
    /// socket when `IP_BIND_ADDRESS_NO_PORT` was set (`__inet_hash_connect`).
    PortZero { no_port: bool },
}

/// A call the runner answers itself (getsockname(), from
/// [`Stack::local_port`]): a stack never gets it.
pub fn runner_only(line: usize, c: &Syscall) -> Failure {
    fail(line, format!("{}() is answered by the runner", c.name))
}

/// listen() on a socket bound to port 0 would listen where the script's
/// peer does not send.
pub fn listen_port_zero(line: usize) -> Failure {
    fail(
        line,
        format!(
            "listen() on a socket bound to port 0 (--bind_port=0): the script's peer \
             sends to port {SCRIPT_PORT}"
        ),
    )
}

/// Why a script failed: the line and a packetdrill-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub msg: String,
    /// The runner itself could not run an inbound packet or a system call in
    /// time ("could only run at"): a fault of the machine running the script
    /// in real time, which says nothing about the stack.
    pub runner_late: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.msg)
    }
}

/// A system call's result: a value, or -1 with an errno name.
pub type CallResult = Result<i64, String>;

/// What a script runs against: the engine on a virtual clock
/// (`EngineStack`), or on Linux the kernel itself through a tun device
/// (`KernelStack`). A stack plays the local host; the runner
/// plays the remote peer and keeps the script's meaning.
pub trait Stack {
    /// Time since the script started.
    fn now(&self) -> Time;
    /// Lets time pass until `until`, appending what the stack sends meanwhile,
    /// with the time it was sent, to `sent`. With `stop_on_packet`, returns as
    /// soon as it has sent something.
    fn advance(&mut self, until: Time, stop_on_packet: bool, sent: &mut Vec<(Time, Segment)>);
    /// Delivers one inbound segment, now.
    fn inject(&mut self, seg: &Segment, options: &TcpOptions) -> Result<(), String>;
    /// Makes a system call, now. `Err` is a failure of the script (a call the
    /// stack cannot make as written), not an error result of the call.
    fn call(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure>;
    /// How long past an outbound packet's window to wait for it, so that the
    /// error can say when it did come.
    fn late_search(&self) -> Duration;
    /// The local port of a connected descriptor (chosen by connect() when
    /// the script did not bind()).
    fn local_port(&self, fd: i64) -> Option<u16>;
    /// Applies the script's options, before anything else; Err says why
    /// this stack cannot run them.
    fn setup(&mut self, s: &Setup) -> Result<(), String>;
    /// Sets a sysctl, before the script's first packet or system call.
    fn sysctl(&mut self, line: usize, s: &Sysctl) -> Result<(), Failure>;
    /// Notices gathered since the last call (what the stack does not model).
    fn take_notices(&mut self) -> Vec<String>;
    /// The interval of the timer that fired at `t` and sent what was sent
    /// then, when the stack knows it (the engine does, the kernel does not say).
    fn fired_timer(&self, _t: Time) -> Option<Duration> {
        None
    }
}

/// The `i`th argument of a call, as a number (a file descriptor, a length).
/// The most bytes one write() or read() of a script names: a script plays a
/// few segments, and the kernel's runner allocates what it names.
pub const MAX_IO: i64 = 1 << 20;

/// The length of a write() or read() (its third argument), 0 to [`MAX_IO`]
/// bytes, for both stacks alike.
pub fn io_len(line: usize, c: &Syscall) -> Result<usize, Failure> {
    let n = int_arg(line, c, 2)?;
    if (0..=MAX_IO).contains(&n) {
        Ok(n as usize)
    } else {
        Err(fail(
            line,
            format!("{}(): length {n} is outside 0 to {MAX_IO} bytes", c.name),
        ))
    }
}

pub fn int_arg(line: usize, c: &Syscall, i: usize) -> Result<i64, Failure> {
    match c.args.get(i) {
        Some(Expr::Int(v)) => Ok(*v),
        _ => Err(fail(
            line,
            format!("{}(): argument {} must be a number", c.name, i + 1),
        )),
    }
}

/// shutdown()'s second argument, as its name.
pub fn shutdown_how(line: usize, c: &Syscall) -> Result<&str, Failure> {
    match c.args.get(1) {
        Some(Expr::Name(n)) if ["SHUT_RD", "SHUT_WR", "SHUT_RDWR"].contains(&n.as_str()) => {
            Ok(n.as_str())
        }
        Some(Expr::Int(0)) => Ok("SHUT_RD"),
        Some(Expr::Int(1)) => Ok("SHUT_WR"),
        Some(Expr::Int(2)) => Ok("SHUT_RDWR"),
        _ => Err(fail(
            line,
            "shutdown(): expected SHUT_RD, SHUT_WR or SHUT_RDWR",
        )),
    }
}

/// setsockopt(SO_LINGER)'s argument as `abort on close`, refusing what
/// neither stack runs as written: a non-zero linger time makes close() block.
pub fn linger_abort(line: usize, c: &Syscall) -> Result<Option<bool>, Failure> {
    if !matches!(c.args.get(2), Some(Expr::Name(n)) if n == "SO_LINGER") {
        return Ok(None);
    }
    let (onoff, linger) = linger_fields(c.args.get(3))
        .ok_or_else(|| fail(line, "SO_LINGER needs {onoff=N, linger=N}"))?;
    if onoff != 0 && linger != 0 {
        return Err(fail(
            line,
            "SO_LINGER with a non-zero linger time is not modelled (close() would block)",
        ));
    }
    Ok(Some(onoff != 0))
}

/// `[1]` or `1` as an on/off flag (SO_REUSEADDR, TCP_NODELAY,
/// IP_BIND_ADDRESS_NO_PORT).
pub fn flag_arg(c: &Syscall) -> bool {
    match c.args.get(3) {
        Some(Expr::List(v)) => !matches!(v.first(), Some(Expr::Int(0))),
        Some(Expr::Int(v)) => *v != 0,
        _ => true,
    }
}

/// setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, \[v\], 4) as `v != 0`;
/// packetdrill has no name for it, so 24 (its value on Linux) also does.
pub fn bind_address_no_port(c: &Syscall) -> Option<bool> {
    let is = |i: usize, names: &[&str], value: i64| match c.args.get(i) {
        Some(Expr::Name(n)) => names.contains(&n.as_str()),
        Some(Expr::Int(v)) => *v == value,
        _ => false,
    };
    let yes = is(1, &["SOL_IP", "IPPROTO_IP"], 0) && is(2, &["IP_BIND_ADDRESS_NO_PORT"], 24);
    yes.then(|| flag_arg(c))
}

/// packetdrill's `{sa_family=AF_INET, sin_port=htons(P), sin_addr=inet_addr("A")}`.
pub fn sockaddr_in(e: Option<&Expr>) -> Option<([u8; 4], u16)> {
    let Some(Expr::Struct(fields)) = e else {
        return None;
    };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if !matches!(field("sa_family"), Some(Expr::Name(f)) if f == "AF_INET") {
        return None;
    }
    let port = match field("sin_port")? {
        Expr::Call(f, args) if f == "htons" => match args.as_slice() {
            [Expr::Int(p)] => u16::try_from(*p).ok()?,
            _ => return None,
        },
        _ => return None,
    };
    let ip = match field("sin_addr")? {
        Expr::Call(f, args) if f == "inet_addr" => match args.as_slice() {
            [Expr::Str(a)] => a.parse::<std::net::Ipv4Addr>().ok()?.octets(),
            _ => return None,
        },
        _ => return None,
    };
    Some((ip, port))
}

/// fcntl()'s result. Both stacks keep every descriptor non-blocking already,
/// so the call changes nothing and its value is the script's own business
/// (F_GETFL flags).
pub fn fcntl_result(c: &Syscall) -> CallResult {
    if c.ret >= 0 {
        Ok(c.ret)
    } else {
        Err("EINVAL".into())
    }
}

/// The lowest free descriptor from 3, as a kernel hands them out.
pub fn lowest_free_fd(is_open: impl Fn(i64) -> bool) -> i64 {
    (3..).find(|fd| !is_open(*fd)).unwrap_or(3)
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

pub fn fail(line: usize, msg: impl Into<String>) -> Failure {
    Failure {
        line,
        msg: msg.into(),
        runner_late: false,
    }
}

/// A blocking call that would wait: neither stack runs one (packetdrill runs
/// them on a thread of their own).
pub fn would_block(line: usize, name: &str) -> Failure {
    fail(
        line,
        format!(
            "{name}() would block: no connection has completed the handshake \
             (blocking calls are not modelled)"
        ),
    )
}
