//! One connection's life against a real server, driven by readiness events:
//! connect, send the request, read the response to its end, close the way
//! `--close` asks, and watch the close finish. Each step returns a verdict
//! (still going, or done with an [`Outcome`]); the driver acts on it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::http::Response;
use super::workload::{Close, Request};
use crate::sock;

/// `TCP_CLOSE_WAIT` in `tcpi_state`: the server's FIN has arrived.
const TCP_CLOSE_WAIT: u8 = 8;

/// The workload, shared by every connection.
pub struct Plan {
    pub request: Request,
    /// The bytes `request` sends.
    pub bytes: Vec<u8>,
    pub close: Close,
}

/// How a connection ended: the first closing move, read from its own socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// The server's FIN came first; TIME-WAIT is the server's.
    ServerFin,
    /// Our FIN came first; TIME-WAIT is ours.
    ClientFin,
    /// We closed with SO_LINGER 0.
    ClientRst,
    /// A RST from the server (ECONNRESET).
    ServerRst,
    /// The kernel ended it with another error (in `errors`).
    Error,
}

impl ClosedBy {
    pub const ALL: [ClosedBy; 5] = [
        ClosedBy::ServerFin,
        ClosedBy::ClientFin,
        ClosedBy::ClientRst,
        ClosedBy::ServerRst,
        ClosedBy::Error,
    ];

    pub fn key(self) -> &'static str {
        match self {
            ClosedBy::ServerFin => "server_fin",
            ClosedBy::ClientFin => "client_fin",
            ClosedBy::ClientRst => "client_rst",
            ClosedBy::ServerRst => "server_rst",
            ClosedBy::Error => "error",
        }
    }
}

/// A finished connection, for the report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// None: it never got established.
    pub closed_by: Option<ClosedBy>,
    /// The whole exchange happened: connect, request, full response, a clean close.
    pub completed: bool,
    /// An errno key (`sock::errno_key`), `bad_response` or `truncated_response`.
    pub error: Option<&'static str>,
    /// From the intended start.
    pub connect: Option<Duration>,
    /// From the intended start to the first response byte.
    pub first_byte: Option<Duration>,
    /// From our close (or the server's FIN) to the socket gone.
    pub close: Option<Duration>,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending(usize),
    Receiving,
    /// Our FIN is out; waiting for the server's (FIN-WAIT-1/2, then TIME-WAIT).
    FinWait,
    /// The server's FIN came and ours is out (LAST-ACK): waiting for CLOSED.
    LastAck,
    /// Closing with a RST when the driver drops the socket.
    Reset,
}

/// The driver's instruction after an event.
#[must_use]
pub enum Verdict {
    Wait,
    /// Done: deregister and call [`Conn::finish`].
    Done,
}

pub struct Conn {
    pub stream: TcpStream,
    intended: Instant,
    phase: Phase,
    response: Option<Response>,
    /// The exchange asked for is whole (the response, or nothing to wait for).
    answered: bool,
    close_from: Option<Instant>,
    out: Outcome,
}

impl Conn {
    /// A connection whose connect() is in progress, meant to start at `intended`.
    pub fn new(stream: TcpStream, intended: Instant, plan: &Plan) -> Conn {
        Conn {
            stream,
            intended,
            phase: Phase::Connecting,
            response: (plan.request == Request::Http).then(Response::new),
            answered: false,
            close_from: None,
            out: Outcome::default(),
        }
    }

    /// Advances as far as the socket allows (readiness is edge-triggered, so
    /// every step runs until WouldBlock).
    pub fn on_event(&mut self, plan: &Plan, buf: &mut [u8]) -> Verdict {
        match self.step(plan, buf) {
            Ok(v) => v,
            Err(e) => {
                self.out.error = Some(sock::errno_key(&e));
                if self.phase != Phase::Connecting {
                    let reset = e.raw_os_error() == Some(libc::ECONNRESET);
                    self.out.closed_by = match self.out.closed_by {
                        Some(c) if !reset => Some(c),
                        _ if reset => Some(ClosedBy::ServerRst),
                        _ => Some(ClosedBy::Error),
                    };
                }
                Verdict::Done
            }
        }
    }

    fn step(&mut self, plan: &Plan, buf: &mut [u8]) -> io::Result<Verdict> {
        loop {
            match self.phase {
                Phase::Connecting => {
                    if let Some(e) = self.stream.take_error()? {
                        return Err(e);
                    }
                    match self.stream.peer_addr() {
                        Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Verdict::Wait),
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    }
                    self.out.connect = Some(self.intended.elapsed());
                    self.phase = Phase::Sending(0);
                }
                Phase::Sending(sent) if sent < plan.bytes.len() => {
                    match self.stream.write(&plan.bytes[sent..]) {
                        Ok(n) => self.phase = Phase::Sending(sent + n),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Verdict::Wait),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Phase::Sending(_) => {
                    self.phase = Phase::Receiving;
                    if plan.request == Request::None {
                        self.answered = true;
                        if let Some(v) = self.close_now(plan)? {
                            return Ok(v);
                        }
                    }
                }
                Phase::Receiving => match self.read(buf)? {
                    None => return Ok(Verdict::Wait),
                    Some(0) => {
                        // The server's FIN came first.
                        if let Some(r) = &mut self.response {
                            r.eof();
                        }
                        let whole = self.response.as_ref().is_none_or(Response::is_complete);
                        if !whole && self.out.error.is_none() {
                            self.out.error = Some("truncated_response");
                        }
                        self.answered = whole && self.out.error.is_none();
                        self.passive_close()?;
                    }
                    Some(n) => {
                        if self.out.first_byte.is_none() {
                            self.out.first_byte = Some(self.intended.elapsed());
                        }
                        self.take(plan, &buf[..n]);
                        // A bad response ends the exchange too, uncompleted.
                        if self.answered || self.out.error.is_some() {
                            if let Some(v) = self.close_now(plan)? {
                                return Ok(v);
                            }
                        }
                    }
                },
                Phase::FinWait => match self.read(buf)? {
                    None => return Ok(Verdict::Wait),
                    Some(0) => {
                        self.out.close = self.close_from.map(|t| t.elapsed());
                        self.out.completed = self.answered;
                        return Ok(Verdict::Done);
                    }
                    Some(_) => {}
                },
                Phase::LastAck => {
                    if sock::tcp_state(&self.stream)? != sock::TCP_CLOSE {
                        return Ok(Verdict::Wait);
                    }
                    self.out.close = self.close_from.map(|t| t.elapsed());
                    self.out.completed = self.answered;
                    return Ok(Verdict::Done);
                }
                Phase::Reset => return Ok(Verdict::Done),
            }
        }
    }

    /// One read: None on WouldBlock, Some(0) at the server's FIN.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Response bytes: parsed for HTTP; for raw, any reply answers a client close.
    fn take(&mut self, plan: &Plan, data: &[u8]) {
        match &mut self.response {
            Some(r) if self.out.error.is_none() => match r.feed(data) {
                Ok(()) => self.answered = r.is_complete(),
                // Unreadable: stop parsing, and let the close still happen.
                Err(_) => self.out.error = Some("bad_response"),
            },
            Some(_) => {}
            None => self.answered = plan.close != Close::Server,
        }
    }

    /// The exchange is over: close as asked. None: keep reading (to the FIN).
    fn close_now(&mut self, plan: &Plan) -> io::Result<Option<Verdict>> {
        match plan.close {
            Close::Server => Ok(None),
            Close::Rst => {
                sock::set_linger_zero(&self.stream)?;
                self.out.closed_by = Some(ClosedBy::ClientRst);
                self.out.completed = self.answered;
                self.phase = Phase::Reset;
                Ok(Some(Verdict::Done))
            }
            Close::Client if sock::tcp_state(&self.stream)? == TCP_CLOSE_WAIT => {
                // The server's FIN is already here, unread: it closed first.
                self.passive_close()?;
                Ok(None)
            }
            Close::Client => {
                self.out.closed_by = Some(ClosedBy::ClientFin);
                self.close_from = Some(Instant::now());
                self.stream.shutdown(Shutdown::Write)?;
                self.phase = Phase::FinWait;
                Ok(None)
            }
        }
    }

    /// After the server's FIN: ours (CLOSE-WAIT to LAST-ACK), then wait for CLOSED.
    fn passive_close(&mut self) -> io::Result<()> {
        self.out.closed_by = Some(ClosedBy::ServerFin);
        self.close_from = Some(Instant::now());
        self.stream.shutdown(Shutdown::Write)?;
        self.phase = Phase::LastAck;
        Ok(())
    }

    /// Closes the socket (a RST if the phase says so) and gives the outcome.
    pub fn finish(self) -> Outcome {
        let mut out = self.out;
        let started = Instant::now();
        drop(self.stream);
        if self.phase == Phase::Reset {
            out.close = Some(started.elapsed());
        }
        out
    }
}
