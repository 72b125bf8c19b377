//! Socket and file helpers shared by `teardown serve` and `loadgen`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

/// Socket buffer size asked for on every UDP socket. A burst of a few thousand
/// segments is a few hundred kB of datagrams; the default 208 kB receive buffer
/// holds only three full ones. The kernel caps the request at `rmem_max`/`wmem_max`.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Binds `n` nonblocking UDP sockets at consecutive ports from `first` (port 0:
/// any free run of `n` ports), sized with [`set_buffers`].
pub fn bind_consecutive(first: SocketAddr, n: usize) -> anyhow::Result<Vec<mio::net::UdpSocket>> {
    let attempts = if first.port() == 0 { 32 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        match try_bind_run(first, n) {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

fn try_bind_run(first: SocketAddr, n: usize) -> anyhow::Result<Vec<mio::net::UdpSocket>> {
    let s0 = mio::net::UdpSocket::bind(first).with_context(|| format!("binding UDP {first}"))?;
    let base = s0.local_addr()?;
    let mut v = vec![s0];
    for i in 1..n {
        let mut a = base;
        let port = base.port() as usize + i;
        if port > u16::MAX as usize {
            bail!("no room for {n} consecutive ports above {}", base.port());
        }
        a.set_port(port as u16);
        v.push(mio::net::UdpSocket::bind(a).with_context(|| format!("binding UDP {a}"))?);
    }
    for s in &v {
        set_buffers(s, SOCKET_BUFFER)?;
    }
    Ok(v)
}

/// Sets SO_RCVBUF and SO_SNDBUF (the std and mio sockets expose neither).
pub fn set_buffers(socket: &impl AsRawFd, bytes: usize) -> std::io::Result<()> {
    let fd = socket.as_raw_fd();
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: `fd` is an open socket borrowed from `socket` for the duration of
        // the call; the option value points at a live c_int whose size is passed.
        // Tested in `tests::buffers_grow`.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises a listening socket's accept backlog (mio binds with 1,024). Calling
/// listen(2) again on a listening socket only changes the backlog; the kernel
/// caps it at `net.core.somaxconn`.
pub fn set_backlog(listener: &impl AsRawFd, backlog: i32) -> std::io::Result<()> {
    // SAFETY: listen(2) on a descriptor borrowed from a live listener; no memory
    // is passed. Tested in `tests::backlog_can_grow`.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A nonblocking TCP listener on `addr` with SO_REUSEPORT set before bind(2), so
/// that several processes (`teardown serve --processes`) can listen on one port,
/// each with its own accept queue and descriptor table; the kernel spreads new
/// connections over the group by 4-tuple hash (`reuseport_select_sock`).
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> anyhow::Result<std::net::TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket(2)")?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true).context("SO_REUSEPORT")?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
        .with_context(|| format!("binding TCP {addr} with SO_REUSEPORT"))?;
    let backlog = socket::Backlog::new(backlog).unwrap_or(socket::Backlog::MAXCONN);
    socket::listen(&fd, backlog).context("listen(2)")?;
    Ok(std::net::TcpListener::from(fd))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (20,000 here, which even
/// root cannot raise) and returns it.
pub fn raise_nofile() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit")?;
    Ok(hard)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory,
/// flushed, then renamed over the target, so a reader sees the old file or the
/// whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}

/// A plain `GET` of an `http://host:port/path` URL over a std TcpStream, enough
/// for a metrics scrape. Returns the body of a 200 response.
pub fn http_get(url: &str, timeout: Duration) -> anyhow::Result<String> {
    http_request("GET", url, timeout)
}

/// A `POST` with an empty body, for the control endpoints (`/release`).
pub fn http_post(url: &str, timeout: Duration) -> anyhow::Result<String> {
    http_request("POST", url, timeout)
}

fn http_request(method: &str, url: &str, timeout: Duration) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let length = if method == "GET" {
        ""
    } else {
        "Content-Length: 0\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}Connection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url}: malformed HTTP response"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{url}: {status}");
    }
    Ok(body.to_string())
}

/// CPU seconds (user + system) this process has used so far.
pub fn cpu_secs() -> f64 {
    rusage_secs(libc::RUSAGE_SELF)
}

/// CPU seconds (user + system) the calling thread has used so far: a
/// worker's own, without the control thread's or the other workers'.
pub fn thread_cpu_secs() -> f64 {
    rusage_secs(libc::RUSAGE_THREAD)
}

/// `getrusage(who)`'s user + system seconds; 0 if the call fails.
fn rusage_secs(who: libc::c_int) -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the live, properly typed `u`.
    // Tested in `tests::cpu_time_advances`.
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcvbuf(s: &impl AsRawFd) -> libc::c_int {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the fd is open for the call; `v` and `len` are live and sized.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    }

    #[test]
    fn buffers_grow() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = rcvbuf(&s);
        set_buffers(&s, 1 << 20).unwrap();
        assert!(rcvbuf(&s) > before, "{before} -> {}", rcvbuf(&s));
    }

    #[test]
    fn cpu_time_advances() {
        // Spins until this thread has used 25 ms of CPU (by its own clock),
        // so that a loaded machine makes the test slower, not wrong.
        let spin = || {
            let (start, t) = (thread_cpu_secs(), std::time::Instant::now());
            while thread_cpu_secs() - start < 0.025 && t.elapsed() < Duration::from_secs(10) {
                std::hint::black_box(0u64);
            }
        };
        let before = cpu_secs();
        let thread_before = thread_cpu_secs();
        spin();
        assert!(cpu_secs() - before >= 0.02);
        assert!(thread_cpu_secs() - thread_before >= 0.025);
        // Another thread's spin is the process's time, not this thread's.
        let mine = thread_cpu_secs();
        let process = cpu_secs();
        let theirs = std::thread::spawn(move || {
            let start = thread_cpu_secs();
            spin();
            thread_cpu_secs() - start
        })
        .join()
        .unwrap();
        assert!(theirs >= 0.025, "{theirs}");
        assert!(cpu_secs() - process >= 0.02);
        let joined = thread_cpu_secs() - mine;
        assert!(joined < 0.015, "{joined}");
    }

    #[test]
    fn reuseport_listeners_share_a_port() {
        let a = bind_reuseport("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_reuseport(addr, 16).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // A listener without SO_REUSEPORT may not join the group.
        assert!(std::net::TcpListener::bind(addr).is_err());
        let v6 = bind_reuseport("[::1]:0".parse().unwrap(), 16).unwrap();
        assert!(v6.local_addr().unwrap().is_ipv6());
    }

    #[test]
    fn backlog_can_grow() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_backlog(&l, 4096).unwrap();
        // Still a working listener.
        let a = l.local_addr().unwrap();
        let _c = std::net::TcpStream::connect(a).unwrap();
        assert!(l.accept().is_ok());
    }

    #[test]
    fn consecutive_ports() {
        let v = bind_consecutive("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let p0 = v[0].local_addr().unwrap().port();
        assert_eq!(v[2].local_addr().unwrap().port(), p0 + 2);
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
