//! The control loop: SIGINT/SIGTERM, `GET /metrics`, `POST /release` (ends
//! `--keep`), the kernel listener of `--kernel-listen`, and a 10 ms sampler of
//! host-wide peak populations.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::metrics::Shared;
use super::Sampled;
use teardown_engine::state::State;

const METRICS: Token = Token(0);
const KERNEL: Token = Token(1);
const SIGNALS: Token = Token(2);
const WAKER: Token = Token(3);
const FIRST_CONN: usize = 16;
/// Scrapes served at once; more wait in the listen backlog.
const MAX_CONNS: usize = 64;
/// A request larger than this is refused (431).
const MAX_REQUEST: usize = 8192;
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// One HTTP connection: the request read so far, then the response being written.
struct Http {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    written: usize,
}

pub(super) struct Control {
    poll: Poll,
    metrics: TcpListener,
    kernel: Option<TcpListener>,
    /// Real time an accepted kernel connection is kept open before the close.
    kernel_hold: Duration,
    /// Held kernel connections, oldest first (one hold for all: already in
    /// deadline order).
    held: VecDeque<(Instant, TcpStream)>,
    signals: Option<Signals>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    workers: Vec<Arc<Waker>>,
    conns: Vec<Option<Http>>,
    sampled: Sampled,
}

impl Control {
    pub(super) fn new(
        mut metrics: TcpListener,
        mut kernel: Option<TcpListener>,
        kernel_hold: Duration,
        signals: bool,
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
        workers: Vec<Arc<Waker>>,
    ) -> anyhow::Result<Control> {
        let poll = Poll::new()?;
        let r = poll.registry();
        r.register(&mut metrics, METRICS, Interest::READABLE)?;
        if let Some(k) = kernel.as_mut() {
            r.register(k, KERNEL, Interest::READABLE)?;
        }
        let signals = if signals {
            let mut s = Signals::new([SIGINT, SIGTERM])?;
            r.register(&mut s, SIGNALS, Interest::READABLE)?;
            Some(s)
        } else {
            None
        };
        let waker = Arc::new(Waker::new(r, WAKER)?);
        Ok(Control {
            poll,
            metrics,
            kernel,
            kernel_hold,
            held: VecDeque::new(),
            signals,
            waker,
            shared,
            stop,
            workers,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            sampled: Sampled::default(),
        })
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Runs until a signal or [`super::Server::stop`]; then tells the workers to
    /// stop and returns the sampled peaks.
    pub(super) fn run(mut self) -> anyhow::Result<Sampled> {
        let mut events = Events::with_capacity(64);
        loop {
            match self.poll.poll(&mut events, Some(SAMPLE_EVERY)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for ev in events.iter() {
                match ev.token() {
                    METRICS => self.accept_scrapes()?,
                    KERNEL => self.accept_kernel()?,
                    SIGNALS => {
                        if let Some(s) = self.signals.as_mut() {
                            if s.pending().next().is_some() {
                                self.stop.store(true, Relaxed);
                            }
                        }
                    }
                    WAKER => {}
                    Token(t) => self.serve(t - FIRST_CONN),
                }
            }
            self.release_held()?;
            self.sample();
            if self.stop.load(Relaxed) {
                break;
            }
        }
        for w in &self.workers {
            w.wake()?;
        }
        self.sampled.kernel_accepted = self.shared.kernel_accepted_total();
        Ok(self.sampled)
    }

    fn sample(&mut self) {
        let t = self.shared.totals();
        for s in State::ALL {
            let i = s as usize;
            self.sampled.peak[i] = self.sampled.peak[i].max(t.population[i] as usize);
        }
        let tw = t.population[State::TimeWait as usize];
        if tw > self.sampled.tw_at_peak && t.entries > 0 {
            self.sampled.tw_at_peak = tw;
            self.sampled.entries_at_tw_peak = t.entries;
            self.sampled.bytes_per_entry_at_tw_peak = t.heap_bytes as f64 / t.entries as f64;
        }
    }

    /// Closes the held kernel connections whose hold is over; then accepts
    /// again, since connections left queued when the descriptors ran out
    /// (EMFILE) raise no new readiness event.
    fn release_held(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let before = self.held.len();
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            self.held.pop_front();
        }
        if self.held.len() < before {
            self.accept_kernel()?;
        }
        Ok(())
    }

    /// A close-heavy kernel server: accept, then close at once, or after
    /// `--hold` (the FIN goes first, so TIME-WAIT lands on this side).
    fn accept_kernel(&mut self) -> anyhow::Result<()> {
        let Some(l) = self.kernel.as_ref() else {
            return Ok(());
        };
        let mut n = 0;
        loop {
            match l.accept() {
                Ok((stream, _)) => {
                    if !self.kernel_hold.is_zero() {
                        self.held
                            .push_back((Instant::now() + self.kernel_hold, stream));
                    }
                    n += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(e) if is_transient_accept(&e) => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.shared.kernel_accepted(n);
        self.sampled.kernel_held_peak = self.sampled.kernel_held_peak.max(self.held.len());
        Ok(())
    }

    fn accept_scrapes(&mut self) -> anyhow::Result<()> {
        loop {
            let Some(slot) = self.conns.iter().position(Option::is_none) else {
                return Ok(());
            };
            match self.metrics.accept() {
                Ok((mut stream, _)) => {
                    self.poll.registry().register(
                        &mut stream,
                        Token(FIRST_CONN + slot),
                        Interest::READABLE,
                    )?;
                    self.conns[slot] = Some(Http {
                        stream,
                        request: Vec::new(),
                        response: Vec::new(),
                        written: 0,
                    });
                    self.serve(slot);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_transient_accept(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads the request, answers it, closes the connection when written.
    fn serve(&mut self, slot: usize) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let mut close = c.response.is_empty() && read_request(c, &self.shared, &self.workers);
        close = close || (!c.response.is_empty() && write_response(c));
        if close {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.conns[slot] = None;
        } else if !c.response.is_empty() {
            let _ = self.poll.registry().reregister(
                &mut c.stream,
                Token(FIRST_CONN + slot),
                Interest::WRITABLE,
            );
        }
    }
}

fn is_transient_accept(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Reads until WouldBlock and, once the request is complete, prepares the
/// response. True when the connection should simply be closed.
fn read_request(c: &mut Http, shared: &Shared, workers: &[Arc<Waker>]) -> bool {
    let mut buf = [0u8; 2048];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => c.request.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
        if c.request.len() > MAX_REQUEST {
            c.response = response("431 Request Header Fields Too Large", "");
            return false;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    c.response = match req.parse(&c.request) {
        Ok(httparse::Status::Partial) => return false,
        Err(_) => response("400 Bad Request", ""),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            match (req.method, path) {
                (Some("GET"), "/metrics") => response("200 OK", &shared.encode()),
                (Some("POST"), "/release") => {
                    if shared.release() {
                        // A worker asleep until its next timer acts now; one
                        // that cannot be woken sees the flag at that timer.
                        for w in workers {
                            let _ = w.wake();
                        }
                    }
                    response("200 OK", "released\n")
                }
                (Some("GET"), _) => response("404 Not Found", "try /metrics\n"),
                _ => response("405 Method Not Allowed", ""),
            }
        }
    };
    false
}

/// Writes what it can; true when all is written or the peer is gone.
fn write_response(c: &mut Http) -> bool {
    while c.written < c.response.len() {
        match c.stream.write(&c.response[c.written..]) {
            Ok(0) => return true,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
