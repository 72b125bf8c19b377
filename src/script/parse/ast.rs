//! What a script is once parsed: its events (a time and a packet, a system
//! call or sysctls) and the options given in the script itself.

use std::fmt;

use teardown_engine::segment::{Flags, Ts};

use crate::script::sysctl::Sysctl;

/// A parsed script.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub events: Vec<Event>,
    /// `--tolerance_usecs=N` given in the script itself.
    pub tolerance_usecs: Option<u64>,
    /// `--tolerance_percent=P` given in the script itself.
    pub tolerance_percent: Option<f64>,
    /// `--tcp_ts_tick_usecs=N`: microseconds per TSval tick; the local
    /// host's clock runs at it and outbound TSvals are checked only when it
    /// is given, as packetdrill does.
    pub ts_tick_usecs: Option<u64>,
    /// `--bind_port=0` (packetdrill's option): `bind()` binds port 0, so the
    /// stack chooses the port at bind() (`inet_csk_find_open_port`), or at
    /// connect() after `IP_BIND_ADDRESS_NO_PORT`.
    pub bind_port_zero: bool,
    /// The line of the last of those two options, where a stack that cannot
    /// run them fails.
    pub setup_line: usize,
    /// Things parsed and ignored (options, shell commands, code blocks), for stderr.
    pub notices: Vec<String>,
}

/// One line of the script: when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub line: usize,
    pub when: When,
    pub kind: EventKind,
}

/// The time column, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `*`: any time.
    Any,
    /// `t`, `+t`, `a~b` or `+a~+b`.
    At {
        relative: bool,
        start: u64,
        end: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: injected into the host.
    Inbound,
    /// `>`: expected from the host.
    Outbound,
}

/// A packet line: `< S. 0:0(0) ack 1 win 65535 <mss 1460>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSpec {
    pub dir: Direction,
    pub flags: Flags,
    pub seq: u32,
    pub len: u32,
    pub ack: Option<u32>,
    pub win: Option<u16>,
    pub options: TcpOptions,
}

/// TCP options as written. The engine has none; they are parsed so that Linux
/// scripts read, and the few that matter to the runner are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// `<...>`: packetdrill's "don't check the options".
    pub unchecked: bool,
    pub mss: Option<u16>,
    pub sack_ok: bool,
    /// `TS val X ecr Y`, as written (script time: the runner maps them).
    pub ts: Option<Ts>,
    pub wscale: Option<u8>,
}

/// The system calls the runner models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Socket,
    Bind,
    Listen,
    Accept,
    Connect,
    Close,
    Shutdown,
    Setsockopt,
    /// Not in packetdrill: checks the port a stack chose (see docs/scripts.md).
    Getsockname,
    Fcntl,
    Write,
    Read,
}

impl Call {
    pub(super) fn from_name(s: &str) -> Option<Call> {
        Some(match s {
            "socket" => Call::Socket,
            "bind" => Call::Bind,
            "listen" => Call::Listen,
            "accept" | "accept4" => Call::Accept,
            "connect" => Call::Connect,
            "close" => Call::Close,
            "shutdown" => Call::Shutdown,
            "setsockopt" => Call::Setsockopt,
            "getsockname" => Call::Getsockname,
            "fcntl" => Call::Fcntl,
            "write" | "send" => Call::Write,
            "read" | "recv" => Call::Read,
            _ => return None,
        })
    }
}

/// An argument of a system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `...`
    Ellipsis,
    Int(i64),
    Name(String),
    Str(String),
    /// `O_RDWR|O_NONBLOCK`
    Or(Vec<Expr>),
    /// `[1]`
    List(Vec<Expr>),
    /// `{onoff=1, linger=0}`
    Struct(Vec<(String, Expr)>),
    /// `htons(8080)`, `inet_addr("192.168.0.1")`: packetdrill's sockaddr fields.
    Call(String, Vec<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        };
        match self {
            Expr::Ellipsis => f.write_str("..."),
            Expr::Int(v) => write!(f, "{v}"),
            Expr::Name(n) => f.write_str(n),
            Expr::Str(s) => write!(f, "{s:?}"),
            Expr::Or(items) => list(f, items, "|"),
            Expr::List(items) => {
                f.write_str("[")?;
                list(f, items, ", ")?;
                f.write_str("]")
            }
            Expr::Call(name, args) => {
                write!(f, "{name}(")?;
                list(f, args, ", ")?;
                f.write_str(")")
            }
            Expr::Struct(fields) => {
                f.write_str("{")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    write!(f, "{sep}{n}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A system call line: `+0 close(4) = 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    pub call: Call,
    pub name: String,
    pub args: Vec<Expr>,
    pub ret: i64,
    /// `ECONNRESET` in `= -1 ECONNRESET (Connection reset by peer)`.
    pub errno: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Packet(PacketSpec),
    Syscall(Syscall),
    /// A shell line setting sysctls, applied before the script starts.
    Sysctl(Vec<Sysctl>),
}
