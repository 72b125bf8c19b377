//! The few socket calls std and mio do not offer: a connect bound to a chosen
//! source address with `IP_BIND_ADDRESS_NO_PORT`, `SO_LINGER` 0 (close by RST),
//! the kernel's TCP state (`TCP_INFO`), the descriptor limit, and errno names.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::net::TcpStream;

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A nonblocking connect to `dst`, from `src` when given. Without `port` the
/// source port is chosen at connect() time (`IP_BIND_ADDRESS_NO_PORT`, Linux
/// 4.2), so one source address reuses each ephemeral port toward every distinct
/// destination instead of reserving it at bind() (`inet_hash_connect`, not
/// `inet_csk_get_port`). With `port` (a shard's share of the ports) that port is
/// bound with `SO_REUSEADDR`, which lets bind() pass a port whose old connection
/// is in TIME-WAIT; connect() still refuses a 4-tuple that is (EADDRNOTAVAIL).
/// `EINPROGRESS` is success: the outcome arrives as a writable event.
pub fn connect_from(
    src: Option<Ipv4Addr>,
    port: Option<u16>,
    dst: SocketAddrV4,
) -> io::Result<TcpStream> {
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it; the
    // OwnedFd closes it on every early return below.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if src.is_some() || port.is_some() {
        let one: libc::c_int = 1;
        let local = sockaddr(SocketAddrV4::new(
            src.unwrap_or(Ipv4Addr::UNSPECIFIED),
            port.unwrap_or(0),
        ));
        let (level, option) = match port {
            None => (libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT),
            Some(_) => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
        };
        // SAFETY: the live socket, and pointers to live, properly sized values
        // whose lengths are passed with them. Tested in
        // `tests::connects_from_another_loopback_address` and
        // `tests::connects_from_a_chosen_port`.
        unsafe {
            check(libc::setsockopt(
                fd,
                level,
                option,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ))?;
            check(libc::bind(
                fd,
                (&local as *const libc::sockaddr_in).cast(),
                len,
            ))?;
        }
    }
    let remote = sockaddr(dst);
    // SAFETY: as above; `remote` lives across the call. Tested with and without a source.
    let rc = unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(owned)))
}

/// A nonblocking connect to an IPv4 or IPv6 `dst`: [`connect_from`] for IPv4;
/// for IPv6 the kernel picks the source (a chosen source address or port is
/// IPv4 only, and refused with `EAFNOSUPPORT`).
pub fn connect(src: Option<Ipv4Addr>, port: Option<u16>, dst: SocketAddr) -> io::Result<TcpStream> {
    match dst {
        SocketAddr::V4(d) => connect_from(src, port, d),
        SocketAddr::V6(_) if src.is_none() && port.is_none() => TcpStream::connect(dst),
        SocketAddr::V6(_) => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

/// Sets `SO_LINGER` {on, 0 s}: the next close() discards unsent data and sends
/// a RST instead of a FIN, so neither side keeps TIME-WAIT (`tcp_close`:
/// "Check zero linger _after_ checking for unread data").
pub fn set_linger_zero(s: &TcpStream) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a live socket and a pointer to a live `linger` with its size.
    // Tested in `tests::linger_zero_closes_with_a_reset`.
    check(unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })
}

/// `TCP_CLOSE` in `tcpi_state` (include/net/tcp_states.h).
pub const TCP_CLOSE: u8 = 7;

/// The socket's TCP state, the first byte of `struct tcp_info` (`tcpi_state`).
pub fn tcp_state(s: &TcpStream) -> io::Result<u8> {
    // The kernel copies min(len, sizeof(tcp_info)) bytes; only the first is read.
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: a live socket, a live 8-byte buffer and its length, which the
    // kernel may lower but never exceeds. Tested in `tests::tcp_state_reads_states`.
    check(unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok(info[0])
}

/// `RLIMIT_NOFILE` as (soft, hard).
pub fn nofile() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live, properly typed `r`.
    // Exercised by `tests::soft_limit_is_raised_to_the_hard_one`.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// Raises the soft descriptor limit to the hard one (which even root cannot
/// raise on these machines) and returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let (soft, hard) = nofile()?;
    if soft < hard {
        let r = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads one live, properly typed rlimit.
        // Exercised by `tests::soft_limit_is_raised_to_the_hard_one`.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) })?;
    }
    Ok(nofile()?.0)
}

/// The report key of an I/O error: the errno's name in lower case for the
/// ones a load generator meets, `other` for the rest.
pub fn errno_key(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => "eaddrnotavail",
        Some(libc::EADDRINUSE) => "eaddrinuse",
        Some(libc::ECONNREFUSED) => "econnrefused",
        Some(libc::ECONNRESET) => "econnreset",
        Some(libc::ECONNABORTED) => "econnaborted",
        Some(libc::ETIMEDOUT) => "etimedout",
        Some(libc::EMFILE) => "emfile",
        Some(libc::ENFILE) => "enfile",
        Some(libc::ENOBUFS) => "enobufs",
        Some(libc::EPIPE) => "epipe",
        Some(libc::ENETUNREACH) => "enetunreach",
        Some(libc::EHOSTUNREACH) => "ehostunreach",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{IpAddr, SocketAddr, TcpListener};

    fn listener() -> (TcpListener, SocketAddrV4) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else {
            unreachable!("bound IPv4")
        };
        (l, a)
    }

    #[test]
    fn connects_from_another_loopback_address() {
        let (l, a) = listener();
        let _c = connect_from(Some(Ipv4Addr::new(127, 1, 0, 4)), None, a).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(127, 1, 0, 4)));
        let _d = connect_from(None, None, a).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn connects_from_a_chosen_port() {
        let (l, a) = listener();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let src = Ipv4Addr::new(127, 1, 0, 5);
        let c = connect_from(Some(src), Some(port), a).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer, SocketAddr::new(IpAddr::V4(src), port));
        // The client closes first, so its TIME-WAIT holds the port; with
        // SO_REUSEADDR bind() still passes, and toward another destination the
        // 4-tuple is new.
        drop(c);
        drop(_s);
        let (l2, a2) = listener();
        let _c2 = connect_from(Some(src), Some(port), a2).unwrap();
        let (_s2, peer) = l2.accept().unwrap();
        assert_eq!(peer, SocketAddr::new(IpAddr::V4(src), port));
    }

    #[test]
    fn linger_zero_closes_with_a_reset() {
        let (l, a) = listener();
        let c = connect_from(None, None, a).unwrap();
        let (mut s, _) = l.accept().unwrap();
        set_linger_zero(&c).unwrap();
        drop(c);
        let e = s.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
    }

    #[test]
    fn tcp_state_reads_states() {
        let (l, a) = listener();
        let c = connect_from(None, None, a).unwrap();
        let (s, _) = l.accept().unwrap();
        // accept() returned, so the handshake is done: TCP_ESTABLISHED is 1.
        assert_eq!(tcp_state(&c).unwrap(), 1);
        drop(s);
        // The server's FIN moves the client to CLOSE-WAIT (8).
        let mut waited = 0;
        while tcp_state(&c).unwrap() != 8 && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(tcp_state(&c).unwrap(), 8);
    }

    #[test]
    fn soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_nofile().unwrap();
        assert_eq!(soft, nofile().unwrap().1);
    }

    #[test]
    fn errnos_have_names() {
        let e = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(errno_key(&e), "eaddrnotavail");
        assert_eq!(errno_key(&io::Error::other("x")), "other");
    }
}
