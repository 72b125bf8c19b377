//! The script's system calls made for real: nonblocking sockets in the
//! script's namespace, bound to the script's addresses, with the kernel's
//! results and errnos.

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, accept4, connect, listen, recv, send, setsockopt, sockopt, AddressFamily, Backlog,
    MsgFlags, Shutdown, SockFlag, SockProtocol, SockType, SockaddrIn,
};

use crate::script::parse::{Call, Expr, Syscall};
use crate::script::stack::{
    bind_address_no_port, fail, fcntl_result, flag_arg, int_arg, io_len, linger_abort,
    listen_port_zero, lowest_free_fd, runner_only, shutdown_how, would_block, CallResult, Failure,
    Stack, EPHEMERAL_PORT, REMOTE_IP, SCRIPT_PORT,
};

use super::{bind_to, KernelStack};

impl KernelStack {
    /// A real system call on the script's socket, its errno as the result.
    pub(super) fn syscall(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        let errno = |e: Errno| -> CallResult { Err(format!("{e:?}")) };
        Ok(match c.call {
            Call::Socket => {
                let fd = socket::socket(
                    AddressFamily::Inet,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    SockProtocol::Tcp,
                )
                .map_err(|e| fail(line, format!("socket(): {e}")))?;
                let n = lowest_free_fd(|n| self.fds.contains_key(&n));
                self.fds.insert(n, fd);
                Ok(n)
            }
            Call::Bind if self.bind_port_zero => {
                // A real bind to port 0: the kernel chooses now
                // (inet_csk_get_port), or at connect() after
                // IP_BIND_ADDRESS_NO_PORT.
                let fd = int_arg(line, c, 0)?;
                match bind_to(self.raw(line, fd)?, 0) {
                    Ok(()) => {
                        self.bound_zero.insert(fd);
                        Ok(0)
                    }
                    Err(e) => errno(e),
                }
            }
            Call::Bind => {
                // Deferred to listen() or connect(): see bind_to(). A socket
                // bound already (or given a port by listen() or connect())
                // cannot be bound again: inet_bind's EINVAL.
                let fd = int_arg(line, c, 0)?;
                self.sock(line, fd)?;
                if self.bound.contains(&fd) || self.local_port(fd).is_some_and(|p| p != 0) {
                    return Ok(Err("EINVAL".into()));
                }
                self.bound.insert(fd);
                Ok(0)
            }
            Call::Getsockname => return Err(runner_only(line, c)),
            Call::Fcntl => {
                self.sock(line, int_arg(line, c, 0)?)?;
                fcntl_result(c)
            }
            Call::Listen => {
                let n = int_arg(line, c, 0)?;
                if self.bound_zero.contains(&n) {
                    return Err(listen_port_zero(line));
                }
                let fd = self.sock(line, n)?;
                let n = int_arg(line, c, 1)?;
                let backlog = i32::try_from(n)
                    .ok()
                    .and_then(|b| Backlog::new(b).ok())
                    .ok_or_else(|| fail(line, format!("listen(): backlog {n} is out of range")))?;
                match bind_to(fd.as_raw_fd(), SCRIPT_PORT).and_then(|()| listen(fd, backlog)) {
                    Ok(()) => Ok(0),
                    Err(e) => errno(e),
                }
            }
            Call::Accept => {
                let fd = self.raw(line, int_arg(line, c, 0)?)?;
                match accept4(fd, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
                    Ok(raw) => {
                        // SAFETY: accept4 just returned `raw`, a new descriptor
                        // that nothing else owns.
                        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                        let n = lowest_free_fd(|n| self.fds.contains_key(&n));
                        self.fds.insert(n, fd);
                        Ok(n)
                    }
                    Err(Errno::EAGAIN) if c.ret >= 0 => return Err(would_block(line, "accept")),
                    Err(e) => errno(e),
                }
            }
            Call::Connect => {
                let n = int_arg(line, c, 0)?;
                let fd = self.raw(line, n)?;
                let remote = SockaddrIn::from(SocketAddrV4::new(REMOTE_IP.into(), SCRIPT_PORT));
                // Unbound, the kernel picks the port (__inet_hash_connect).
                let bound = if self.bound.contains(&n) {
                    bind_to(fd, EPHEMERAL_PORT)
                } else {
                    Ok(())
                };
                match bound.and_then(|()| connect(fd, &remote)) {
                    Ok(()) => Ok(0),
                    // As on the engine: a blocking connect() would return 0 once
                    // established; the script goes on meanwhile.
                    Err(Errno::EINPROGRESS) if c.ret >= 0 => Ok(0),
                    Err(e) => errno(e),
                }
            }
            Call::Close => {
                let n = int_arg(line, c, 0)?;
                self.sock(line, n)?;
                // Dropping the OwnedFd is the close(); Linux's close() of a
                // socket does not fail.
                self.fds.remove(&n);
                self.bound.remove(&n);
                self.bound_zero.remove(&n);
                Ok(0)
            }
            Call::Shutdown => {
                let fd = self.raw(line, int_arg(line, c, 0)?)?;
                let how = match shutdown_how(line, c)? {
                    "SHUT_RD" => Shutdown::Read,
                    "SHUT_WR" => Shutdown::Write,
                    _ => Shutdown::Both,
                };
                match socket::shutdown(fd, how) {
                    Ok(()) => Ok(0),
                    Err(e) => errno(e),
                }
            }
            Call::Setsockopt => {
                let n = int_arg(line, c, 0)?;
                self.sock(line, n)?;
                let (fds, notices) = (&self.fds, &mut self.notices);
                let Some(fd) = fds.get(&n) else {
                    return Ok(Err("EBADF".into()));
                };
                let r = match (linger_abort(line, c)?, c.args.get(2)) {
                    (Some(abort), _) => setsockopt(
                        fd,
                        sockopt::Linger,
                        &libc::linger {
                            l_onoff: abort as i32,
                            l_linger: 0,
                        },
                    ),
                    (None, Some(Expr::Name(o))) if o == "SO_REUSEADDR" => {
                        setsockopt(fd, sockopt::ReuseAddr, &flag_arg(c))
                    }
                    (None, Some(Expr::Name(o))) if o == "TCP_NODELAY" => {
                        setsockopt(fd, sockopt::TcpNoDelay, &flag_arg(c))
                    }
                    (None, _) if bind_address_no_port(c).is_some() => {
                        setsockopt(fd, sockopt::IpBindAddressNoPort, &flag_arg(c))
                    }
                    (None, o) => {
                        notices.push(format!(
                            "line {line}: setsockopt({}) is not applied to the kernel's socket",
                            o.map_or("?".into(), |o| o.to_string())
                        ));
                        Ok(())
                    }
                };
                match r {
                    Ok(()) => Ok(0),
                    Err(e) => errno(e),
                }
            }
            Call::Write => {
                let fd = self.raw(line, int_arg(line, c, 0)?)?;
                let len = io_len(line, c)?;
                match send(fd, &vec![0; len], MsgFlags::MSG_NOSIGNAL) {
                    Ok(n) => Ok(n as i64),
                    Err(e) => errno(e),
                }
            }
            Call::Read => {
                let fd = self.raw(line, int_arg(line, c, 0)?)?;
                let len = io_len(line, c)?;
                match recv(fd, &mut vec![0; len], MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => Ok(n as i64),
                    Err(e) => errno(e),
                }
            }
        })
    }
}
