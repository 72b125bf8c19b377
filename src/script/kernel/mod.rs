//! The running Linux kernel as the stack under test, by packetdrill's own
//! method: the script's peer lives behind a tun device, inbound lines are
//! written to it as IPv4 packets, outbound lines are read from it, and the
//! system calls are real ones on real sockets.
//!
//! Each script gets a network namespace of its own (`unshare(CLONE_NEWNET)` on
//! a thread made for it), so it sees the kernel's default sysctls whatever the
//! host is tuned to, and scripts can run side by side without sharing ports or
//! TIME-WAIT entries. The namespace, its sockets and its TIME-WAIT entries go
//! when the thread's last descriptor closes.
//!
//! Time is real: a script that waits out a 60 s FIN-WAIT-2 takes 60 s. Needs
//! CAP_NET_ADMIN (root in the sandbox) and `/dev/net/tun`; [`available`] says
//! why not when they are missing.
//!
//! This module holds the namespace, the clock and the Stack impl; `calls`
//! makes the system calls on real sockets and `tun` sets up the device and
//! reads what the kernel sends through it.

mod calls;
mod tun;

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etherparse::TcpOptionElement;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{self, bind, SockaddrIn};
use nix::sys::time::TimeSpec;

use super::parse::{Syscall, TcpOptions};
use super::route;
use super::stack::{fail, CallResult, Failure, Setup, Stack, LOCAL_IP, REMOTE_IP};
use super::sysctl::Sysctl;
use teardown_engine::segment::Segment;
use teardown_engine::time::Time;
use tun::{configure_interface, ifreq, parse_outbound, TUN_NAME};

/// How long past an outbound packet's window the runner waits for it in real
/// time: long enough to report a late packet, short enough for a test suite.
const LATE_SEARCH: Duration = Duration::from_secs(2);

/// The longest single poll() while waiting; see [`KernelStack::advance`].
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Whether this process can run scripts against the kernel: moves a
/// throwaway thread into a new network namespace and opens a tun device there.
pub fn available() -> Result<(), String> {
    std::thread::spawn(|| KernelStack::new().map(drop).map_err(|e| e.to_string()))
        .join()
        .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}

pub struct KernelStack {
    tun: File,
    /// Time zero: when the script's first event asks the time, as
    /// packetdrill's `live_start_time_usecs`, not when the namespace was made.
    start: OnceCell<Instant>,
    /// Script descriptor numbers (3, 4, ...) to the real sockets.
    fds: BTreeMap<i64, OwnedFd>,
    /// Descriptors the script bound to its port: see [`bind_to`].
    bound: BTreeSet<i64>,
    /// `--bind_port=0`: bind() is a real bind to port 0, made at once.
    bind_port_zero: bool,
    /// Descriptors bound to port 0.
    bound_zero: BTreeSet<i64>,
    buf: Vec<u8>,
    notices: Vec<String>,
}

impl KernelStack {
    /// Moves the calling thread into a network namespace of its own and
    /// brings up a tun device there, 192.168.0.1 point-to-point to 192.0.2.1.
    /// Call it on a thread made for the script: the thread never comes back
    /// to the host's namespace.
    pub fn new() -> io::Result<KernelStack> {
        // One namespace set up at a time: dozens at once on two cores starve
        // the scripts already running (a poisoned lock only means another
        // setup failed).
        static SETUP: Mutex<()> = Mutex::new(());
        let _one_at_a_time = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/net/tun: {e}")))?;
        let mut ifr = ifreq(TUN_NAME);
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`; `ifr` is a valid,
        // initialised ifreq that lives across the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF: {e}")));
        }
        configure_interface()?;
        let notices = match realtime_priority() {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!(
                "the runner keeps normal priority ({e}); under load its events may run late"
            )],
        };
        Ok(KernelStack {
            tun,
            start: OnceCell::new(),
            fds: BTreeMap::new(),
            bound: BTreeSet::new(),
            bind_port_zero: false,
            bound_zero: BTreeSet::new(),
            buf: vec![0; 65_536],
            notices,
        })
    }

    /// Reads every packet waiting on the tun device; keeps the TCP segments
    /// the local host sent to the script's peer.
    fn drain(&mut self, sent: &mut Vec<(Time, Segment)>) {
        loop {
            let n = match self.tun.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.notices.push(format!("reading {TUN_NAME}: {e}"));
                    return;
                }
            };
            if let Some(seg) = parse_outbound(&self.buf[..n]) {
                sent.push((self.now(), seg));
            }
        }
    }

    fn sock(&self, line: usize, fd: i64) -> Result<&OwnedFd, Failure> {
        self.fds
            .get(&fd)
            .ok_or_else(|| fail(line, format!("fd {fd} is not open in this script")))
    }

    fn raw(&self, line: usize, fd: i64) -> Result<RawFd, Failure> {
        self.sock(line, fd).map(|s| s.as_raw_fd())
    }
}

/// Puts the calling thread in SCHED_RR at the lowest real-time priority, as
/// packetdrill's `set_scheduling_priority` does, and for its reason: the
/// runner mostly sleeps in ppoll(), and what matters is that it wakes on
/// time. Under a CPU-bound load (a test suite on two cores) a normal thread
/// woke up to 30 ms late, past the 4 ms tolerance. Round-robin among the
/// scripts running side by side; the kernel's real-time throttling still
/// leaves 5 % to everything else. Like packetdrill, not on a single CPU.
fn realtime_priority() -> Result<(), String> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) <= 1 {
        return Err("one CPU: a real-time runner could starve the machine".into());
    }
    // SAFETY: sched_get_priority_min only reads its argument.
    let min = unsafe { libc::sched_get_priority_min(libc::SCHED_RR) };
    let param = libc::sched_param {
        sched_priority: min.max(1),
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that lives across the call, which only reads it.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } < 0 {
        return Err(format!(
            "sched_setscheduler: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Binds to the script's local address: the script's `bind(3, ..., ...)`
/// names none, so the runner binds at listen() (the script's port) or
/// connect() (the ephemeral one: a script that does not bind lets the
/// kernel choose), and the 4-tuples are the engine's.
fn bind_to(fd: RawFd, port: u16) -> nix::Result<()> {
    bind(
        fd,
        &SockaddrIn::from(SocketAddrV4::new(LOCAL_IP.into(), port)),
    )
}

impl Stack for KernelStack {
    fn now(&self) -> Time {
        Time::from_micros(self.start.get_or_init(Instant::now).elapsed().as_micros() as u64)
    }

    fn advance(&mut self, until: Time, stop_on_packet: bool, sent: &mut Vec<(Time, Segment)>) {
        loop {
            self.drain(sent);
            if stop_on_packet && !sent.is_empty() {
                return;
            }
            let now = self.now();
            if now >= until {
                return;
            }
            // poll()'s timer slack is 0.1 % of its timeout (59 ms on a 59 s
            // wait, select_estimate_accuracy()): short slices keep it in
            // microseconds.
            let wait = TimeSpec::from_duration((until - now).min(MAX_SLEEP));
            let mut fds = [PollFd::new(self.tun.as_fd(), PollFlags::POLLIN)];
            // EINTR and timeouts both come back round the loop.
            let _ = ppoll(&mut fds, Some(wait), None);
        }
    }

    fn inject(&mut self, seg: &Segment, options: &TcpOptions) -> Result<(), String> {
        // The segment's timestamps (TSecr already mapped to the kernel's
        // clock by the runner) go in as nop,nop,TS (pcap::encode_with_options).
        let mut opts = Vec::new();
        if let Some(mss) = options.mss {
            opts.push(TcpOptionElement::MaximumSegmentSize(mss));
        }
        if options.sack_ok {
            opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some(ws) = options.wscale {
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::WindowScale(ws));
        }
        let mut pkt = Vec::new();
        crate::pcap::encode_with_options(seg, &opts, &mut pkt).map_err(|e| e.to_string())?;
        self.tun
            .write_all(&pkt)
            .map_err(|e| format!("write to {TUN_NAME}: {e}"))
    }

    fn late_search(&self) -> Duration {
        LATE_SEARCH
    }

    fn local_port(&self, fd: i64) -> Option<u16> {
        let sock = self.fds.get(&fd)?;
        let addr: SockaddrIn = socket::getsockname(sock.as_raw_fd()).ok()?;
        Some(addr.port())
    }

    /// A tick of 1 µs sets the `tcp_usec_ts` feature on the route to the
    /// peer (`route`); Linux's TSval has no other tick than that and
    /// `tcp_clock_ms`.
    fn setup(&mut self, s: &Setup) -> Result<(), String> {
        self.bind_port_zero = s.bind_port_zero;
        match s.ts_tick_usecs {
            None | Some(1000) => Ok(()),
            Some(1) => {
                let oif = nix::net::if_::if_nametoindex(TUN_NAME)
                    .map_err(|e| format!("if_nametoindex({TUN_NAME}): {e}"))?;
                route::set_usec_ts(REMOTE_IP, oif, LOCAL_IP).map_err(|e| {
                    format!(
                        "--tcp_ts_tick_usecs=1: setting the route feature tcp_usec_ts \
                         (Linux >= 6.7): {e}"
                    )
                })
            }
            Some(tick) => Err(format!(
                "--tcp_ts_tick_usecs={tick}: Linux's TSval ticks every 1000 us (tcp_clock_ms) \
                 or, on a route with the tcp_usec_ts feature, every 1 us; no other tick runs \
                 on the kernel"
            )),
        }
    }

    /// Writes the sysctl under `/proc/sys/net/ipv4`, which a thread sees for
    /// its own network namespace (`net_ctl_header_lookup` looks at
    /// `current`): this thread's, made in [`KernelStack::new`] and gone with
    /// the script, so nothing needs restoring. Every [`Sysctl`] is per
    /// namespace; the check below makes sure the host's are never touched.
    fn sysctl(&mut self, line: usize, s: &Sysctl) -> Result<(), Failure> {
        let ns = |p: &str| std::fs::read_link(p).map_err(|e| fail(line, format!("{p}: {e}")));
        if ns("/proc/thread-self/ns/net")? == ns("/proc/self/ns/net")? {
            return Err(fail(
                line,
                "the runner's thread is in the process's network namespace: sysctl not set",
            ));
        }
        let path = format!("/proc/sys/net/ipv4/{}", s.name());
        std::fs::write(&path, s.value()).map_err(|e| fail(line, format!("writing {path}: {e}")))
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
    fn call(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        self.syscall(line, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_thread_becomes_real_time_or_says_why_not() {
        std::thread::spawn(|| match realtime_priority() {
            // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
            Ok(()) => assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_RR),
            Err(e) => assert!(
                e.contains("Operation not permitted") || e.starts_with("one CPU"),
                "{e}"
            ),
        })
        .join()
        .unwrap();
        // Only the spawned thread changed policy.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }
}
