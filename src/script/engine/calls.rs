//! The script's file descriptors and the system calls made on them: socket,
//! bind, listen, accept, connect, close, shutdown, setsockopt, fcntl, read
//! and write, with Linux's results and errnos.

use super::EngineStack;
use crate::script::parse::{Call, Syscall};
use crate::script::stack::{
    bind_address_no_port, fail, fcntl_result, int_arg, io_len, linger_abort, listen_port_zero,
    lowest_free_fd, runner_only, shutdown_how, would_block, Bound, CallResult, Failure, ACTIVE,
    LOCAL_IP, REMOTE_IP, SCRIPT_PORT,
};
use teardown_engine::state::State;
use teardown_engine::tuple::Tuple;
use teardown_engine::BindMode;

/// A file descriptor of the script.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fd {
    /// From socket(), not yet listening or connected; `bound` by bind(),
    /// else connect() picks the port. `no_port`: IP_BIND_ADDRESS_NO_PORT is
    /// set, for a bind() to come.
    Socket {
        linger_abort: bool,
        bound: Option<Bound>,
        no_port: bool,
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
            Fd::Socket { linger_abort, .. }
            | Fd::Listener { linger_abort }
            | Fd::Conn { linger_abort, .. } => linger_abort,
        }
    }
}

impl EngineStack {
    fn fd(&mut self, line: usize, fd: i64) -> Result<&mut Fd, Failure> {
        self.fds
            .get_mut(&fd)
            .ok_or_else(|| fail(line, format!("fd {fd} is not open in this script")))
    }

    fn free_fd(&self) -> i64 {
        lowest_free_fd(|fd| self.fds.contains_key(&fd))
    }

    /// Whether bind(0) would find a port now (`inet_csk_find_open_port`: a
    /// port of `ip_local_port_range` that no socket holds, [`Host::open_ports`](teardown_engine::host::Host::open_ports)).
    /// The engine takes the port at connect(), so the sockets bound to port 0
    /// and not yet connected hold one each here.
    fn bind_zero_finds_port(&self) -> bool {
        let waiting = self
            .fds
            .values()
            .filter(|fd| {
                matches!(
                    fd,
                    Fd::Socket {
                        bound: Some(Bound::PortZero { no_port: false }),
                        ..
                    }
                )
            })
            .count();
        self.host.open_ports(ACTIVE.local_ip) as usize > waiting
    }

    /// A system call on the script's descriptors, answered as Linux's would
    /// be (each case names the kernel function it follows).
    pub(super) fn syscall(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        let t = self.now;
        Ok(match c.call {
            Call::Socket => {
                let fd = self.free_fd();
                self.fds.insert(
                    fd,
                    Fd::Socket {
                        linger_abort: false,
                        bound: None,
                        no_port: false,
                    },
                );
                Ok(fd)
            }
            Call::Bind => {
                let fd = int_arg(line, c, 0)?;
                let port_zero = self.bind_port_zero;
                // bind(0) without IP_BIND_ADDRESS_NO_PORT takes its port now
                // (inet_csk_get_port), and with none free fails: EADDRINUSE.
                let finds_port = !port_zero || self.bind_zero_finds_port();
                let Fd::Socket { bound, no_port, .. } = self.fd(line, fd)? else {
                    return Ok(Err("EINVAL".into()));
                };
                // inet_bind: EINVAL once the socket has a port (a bind() with
                // IP_BIND_ADDRESS_NO_PORT gave it none yet).
                if bound.is_some_and(|b| b != Bound::PortZero { no_port: true }) {
                    return Ok(Err("EINVAL".into()));
                }
                if !port_zero {
                    *bound = Some(Bound::ScriptPort);
                } else if *no_port || finds_port {
                    *bound = Some(Bound::PortZero { no_port: *no_port });
                } else {
                    return Ok(Err("EADDRINUSE".into()));
                }
                Ok(0)
            }
            Call::Fcntl => {
                self.fd(line, int_arg(line, c, 0)?)?;
                fcntl_result(c)
            }
            Call::Getsockname => return Err(runner_only(line, c)),
            Call::Listen => {
                let fd = int_arg(line, c, 0)?;
                let slot = self.fd(line, fd)?;
                if let Fd::Socket {
                    bound: Some(Bound::PortZero { .. }),
                    ..
                } = slot
                {
                    return Err(listen_port_zero(line));
                }
                let linger_abort = *slot.linger_abort();
                self.host.listen(SCRIPT_PORT);
                self.listening = true;
                self.listener_linger_abort = linger_abort;
                self.fds.insert(fd, Fd::Listener { linger_abort });
                Ok(0)
            }
            Call::Accept => {
                let fd = int_arg(line, c, 0)?;
                if !matches!(self.fd(line, fd)?, Fd::Listener { .. }) {
                    return Ok(Err("EINVAL".into()));
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
                    None if c.ret < 0 => Err("EAGAIN".into()),
                    None => return Err(would_block(line, "accept")),
                }
            }
            Call::Connect => {
                let fd = int_arg(line, c, 0)?;
                let (linger_abort, bound) = match *self.fd(line, fd)? {
                    Fd::Socket {
                        linger_abort,
                        bound,
                        ..
                    } => (linger_abort, bound),
                    _ => return Ok(Err("EISCONN".into())),
                };
                // A socket bound to the script's port connects from it; an
                // unbound one (or one bound to port 0 with
                // IP_BIND_ADDRESS_NO_PORT) lets the host choose as Linux's
                // connect() does, and one bound to port 0 as bind() does.
                let mode = match bound {
                    Some(Bound::ScriptPort) => None,
                    None | Some(Bound::PortZero { no_port: true }) => Some(BindMode::NoPort),
                    Some(Bound::PortZero { no_port: false }) => Some(BindMode::BeforeConnect),
                };
                let ip = |a: [u8; 4]| u32::from_be_bytes(a);
                let opened = match mode {
                    None => self.host.connect(t, ACTIVE).map(|()| ACTIVE),
                    Some(mode) => self
                        .host
                        .connect_ephemeral(t, ip(LOCAL_IP), ip(REMOTE_IP), SCRIPT_PORT, mode)
                        .map(|c| c.tuple),
                };
                match opened {
                    Ok(tuple) => {
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
                            Err("EINPROGRESS".into())
                        } else {
                            Ok(0)
                        }
                    }
                    // No port left, or the 4-tuple is taken (a TIME-WAIT
                    // entry tcp_twsk_unique will not give up):
                    // __inet_hash_connect's EADDRNOTAVAIL.
                    Err(_) => Err("EADDRNOTAVAIL".into()),
                }
            }
            Call::Close => {
                let fd = int_arg(line, c, 0)?;
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
                let fd = int_arg(line, c, 0)?;
                let how = shutdown_how(line, c)?;
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN".into()));
                };
                if how == "SHUT_RD" {
                    Ok(0)
                } else {
                    match self.host.shutdown(t, tuple) {
                        Ok(()) => Ok(0),
                        Err(_) => Err("ENOTCONN".into()),
                    }
                }
            }
            Call::Setsockopt => {
                let fd = int_arg(line, c, 0)?;
                let abort = linger_abort(line, c)?;
                let slot = self.fd(line, fd)?;
                if let (Some(v), Fd::Socket { no_port, .. }) = (bind_address_no_port(c), &mut *slot)
                {
                    *no_port = v;
                }
                if let Some(abort) = abort {
                    *slot.linger_abort() = abort;
                    if let Fd::Listener { .. } = slot {
                        self.listener_linger_abort = abort;
                    }
                }
                Ok(0)
            }
            Call::Write => {
                let fd = int_arg(line, c, 0)?;
                let len = io_len(line, c)? as u32;
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN".into()));
                };
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
                    // tcp_sendmsg: a pending error first, then EPIPE.
                    Err(_) => Err(self.sk_err.take().unwrap_or("EPIPE").into()),
                }
            }
            Call::Read => {
                let fd = int_arg(line, c, 0)?;
                let len = io_len(line, c)? as u64;
                let Fd::Conn { tuple, .. } = *self.fd(line, fd)? else {
                    return Ok(Err("ENOTCONN".into()));
                };
                // tcp_recvmsg's order: data, end of stream (SOCK_DONE), a
                // pending error, a socket shut down by the reset, or wait.
                let available = self.bytes_in - self.bytes_read;
                if available > 0 {
                    let n = available.min(len);
                    self.bytes_read += n;
                    Ok(n as i64)
                } else if self.eof {
                    Ok(0)
                } else if let Some(e) = self.sk_err.take() {
                    Err(e.into())
                } else if self.host.state(&tuple) == State::Closed {
                    Ok(0)
                } else {
                    Err("EAGAIN".into())
                }
            }
        })
    }
}
