//! One worker: a mio loop over one UDP socket and one host shard.
//!
//! Each iteration drains the socket until `WouldBlock`, handing every segment to
//! the host as it is decoded, answers the application's events (close on
//! ESTABLISHED with `--close server`, after `--hold` or once `--keep` newer
//! ones are held; close on the peer's FIN), fires the host's
//! timers and sends what the host emitted, packed into as few datagrams as the
//! peers allow. Nothing is allocated per segment: the receive buffer, the event
//! scratch vector and one encoder per peer are reused. The server application
//! it answers events with is in `worker/app.rs`.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::metrics::{Io, Shared, REASONS};
use super::peers::Peers;
use super::{net, route, Clock, CloseMode, ServeArgs, WorkerFinal, SERVER_PORT};
use crate::wire::{self, Encoder};
use teardown_engine::config::Config;
use teardown_engine::driver::handle_burst;
use teardown_engine::host::{Event, Host};
use teardown_engine::segment::Segment;
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;
use teardown_engine::Advance;

mod app;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Timers and pending output are serviced at least this often (in datagrams)
/// while a burst is being drained, so a long burst cannot starve them.
const TICK_EVERY: u32 = 32;

pub(super) struct Worker {
    index: usize,
    workers: usize,
    poll: Poll,
    socket: UdpSocket,
    waker: Arc<Waker>,
    host: Host,
    clock: Clock,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    close: CloseMode,
    hold: Duration,
    /// `--hold` as given: after `POST /release` [`Worker::hold`] becomes the
    /// pace of what is still kept, and this says whether a connection
    /// established later is held at all (in line with the rest, so for at
    /// most `--hold`) or closed at once.
    hold_flag: Duration,
    /// This worker's share of `--keep`, until `POST /release`.
    keep: Option<usize>,
    /// How long the last connection `--keep` pushed out had been held.
    kept_for: Duration,
    /// Connections waiting out `--hold` or `--keep` before the server closes
    /// them, by the time they were established, oldest first.
    held: VecDeque<(Time, Tuple)>,
    rx: Vec<u8>,
    scratch: Vec<Event>,
    /// This worker's segments of one datagram, handled as a burst.
    burst: Vec<Segment>,
    peers: Peers,
    closed: [u64; REASONS],
    io: Io,
    peak: [usize; State::COUNT],
    /// Most entries (connections and TIME-WAIT) the worker's table held at a tick.
    peak_entries: usize,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        index: usize,
        workers: usize,
        mut socket: UdpSocket,
        cfg: Config,
        args: &ServeArgs,
        clock: Clock,
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Worker> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut host = Host::new(cfg);
        host.listen(SERVER_PORT);
        Ok(Worker {
            index,
            workers,
            poll,
            socket,
            waker,
            host,
            clock,
            shared,
            stop,
            close: args.close,
            hold: args.hold,
            hold_flag: args.hold,
            // Rounded down: the workers together keep fewer than the clients
            // may have open, so some worker always has one to close.
            keep: args.keep.map(|n| n / workers),
            kept_for: Duration::ZERO,
            held: VecDeque::new(),
            // One byte more than the largest valid datagram, so that an oversized
            // one is seen whole enough to be rejected as oversized.
            rx: vec![0; wire::MAX_DATAGRAM + 1],
            scratch: Vec::new(),
            burst: Vec::with_capacity(wire::MAX_RECORDS),
            peers: Peers::default(),
            closed: [0; REASONS],
            io: Io::default(),
            peak: [0; State::COUNT],
            peak_entries: 0,
            first_rx: None,
            last_rx: None,
        })
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    pub(super) fn run(mut self) -> anyhow::Result<WorkerFinal> {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = self.next_wakeup();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let started = Instant::now();
            let stopping = self.stop.load(Relaxed);
            // The waker only interrupts the poll; the stop flag says why. The socket
            // is drained whatever woke us, so a stop still serves what has arrived.
            if !events.is_empty() {
                self.drain()?;
            }
            self.tick();
            self.io.loop_iterations += 1;
            let busy = started.elapsed().as_micros() as u64;
            self.io.loop_busy_us += busy;
            self.shared
                .publish(self.index, &self.host, &self.closed, &self.io, busy);
            if stopping {
                break;
            }
        }
        let mut population = [0; State::COUNT];
        for s in State::ALL {
            population[s as usize] = self.host.population(s);
        }
        Ok(WorkerFinal {
            stats: *self.host.stats(),
            population,
            peak: self.peak,
            peak_entries: self.peak_entries,
            cpu_secs: net::thread_cpu_secs(),
            closed: self.closed,
            first_rx: self.first_rx,
            last_rx: self.last_rx,
        })
    }

    /// Real time until the next host deadline or held close.
    fn next_wakeup(&self) -> Option<Duration> {
        let host = self.host.poll_timeout();
        let held = self.next_held_close();
        let next = match (host, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|t| self.clock.real_until(t))
    }

    /// Receives until the socket would block.
    fn drain(&mut self) -> anyhow::Result<()> {
        let mut since_tick = 0;
        loop {
            match self.socket.recv_from(&mut self.rx) {
                Ok((n, from)) => {
                    self.on_datagram(n, from);
                    since_tick += 1;
                    if since_tick == TICK_EVERY {
                        since_tick = 0;
                        self.tick();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An ICMP error queued on the socket by an earlier send; not ours to fix.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn on_datagram(&mut self, n: usize, from: SocketAddr) {
        let at = Instant::now();
        self.io.datagrams_received += 1;
        self.first_rx.get_or_insert(at);
        self.last_rx = Some(at);
        let now = self.clock.at(at);
        let records = match wire::decode(&self.rx[..n]) {
            Ok(r) => r,
            Err(_) => {
                self.io.datagrams_malformed += 1;
                return;
            }
        };
        let peer = self.peers.index(from);
        for seg in records {
            if route(&seg.receiver_tuple(), self.workers) != self.index {
                // Another worker owns this tuple; taking it here would split its state.
                self.io.segments_dropped += 1;
                continue;
            }
            if let Some(p) = peer {
                self.peers.learn(seg.src_ip, p);
            }
            self.burst.push(seg);
        }
        handle_burst(&mut self.host, now, &self.burst);
        self.burst.clear();
        self.app(now);
        self.send(false);
    }

    /// Timers, held closes, the application, and every pending segment out.
    fn tick(&mut self) {
        let now = self.clock.now();
        // A real clock: whatever fell due since the last tick fires now, late.
        Advance::new(now, now).finish(&mut [&mut self.host]);
        if self.keep.is_some() && self.shared.released() {
            // What is still kept is held as long as the last one pushed out
            // was, so it closes at the pace it was opened: closing it all at
            // once would send a burst of FINs that overflows the sockets and
            // comes back as spurious retransmissions.
            self.keep = None;
            self.hold = if self.hold.is_zero() {
                self.kept_for
            } else {
                self.hold.min(self.kept_for)
            };
        }
        while self.next_held_close().is_some_and(|t| t <= now) {
            if let Some((_, tuple)) = self.held.pop_front() {
                self.prefetch_held();
                // It may have closed meanwhile (an RST, the peer's FIN handled below).
                let _ = self.host.close(now, tuple);
            }
        }
        self.app(now);
        self.send(true);
        for s in State::TEARDOWN {
            let i = s as usize;
            self.peak[i] = self.peak[i].max(self.host.population(s));
        }
        self.peak_entries = self.peak_entries.max(self.host.len());
    }

    /// Packs pending segments into each peer's datagram; sends full datagrams, and
    /// with `all` the partial ones too. A datagram the socket refuses is dropped
    /// and counted: the engine's retransmissions recover, as over a lossy link.
    fn send(&mut self, all: bool) {
        for seg in self.host.transmits() {
            let Some(&p) = self.peers.by_ip.get(&seg.dst_ip) else {
                self.io.segments_dropped += 1;
                continue;
            };
            let (addr, enc) = &mut self.peers.out[p as usize];
            enc.push(&seg);
            if enc.is_full() {
                send_datagram(&self.socket, *addr, enc, &mut self.io);
            }
        }
        if all {
            for (addr, enc) in &mut self.peers.out {
                if !enc.is_empty() {
                    send_datagram(&self.socket, *addr, enc, &mut self.io);
                }
            }
        }
    }
}

fn send_datagram(socket: &UdpSocket, to: SocketAddr, enc: &mut Encoder, io: &mut Io) {
    match socket.send_to(enc.datagram(), to) {
        Ok(_) => io.datagrams_sent += 1,
        Err(_) => io.segments_dropped += enc.len() as u64,
    }
    enc.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::SERVER_IP;
    use teardown_engine::segment::Flags;

    fn worker(keep: usize) -> Worker {
        let args = ServeArgs {
            keep: Some(keep),
            ..ServeArgs::default()
        };
        let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let shared = Arc::new(Shared::new(1, 1.0));
        let stop = Arc::new(AtomicBool::new(false));
        Worker::new(
            0,
            1,
            socket,
            Config::default(),
            &args,
            Clock::new(1.0),
            shared,
            stop,
        )
        .unwrap()
    }

    /// A handshake from client port `port` at `now`, then the application's
    /// answer to it; returns the server's tuple.
    fn establish(w: &mut Worker, now: Time, port: u16) -> Tuple {
        let client = Tuple::new([10, 128, 0, 1], port, SERVER_IP, SERVER_PORT);
        w.host
            .handle(now, &Segment::new(&client, Flags::SYN, 1000, 0, 0, 65_535));
        let syn_ack = w.host.transmits().next_back().expect("a SYN-ACK");
        let ack = Segment::new(&client, Flags::ACK, 1001, syn_ack.seq + 1, 0, 65_535);
        w.host.handle(now, &ack);
        w.app(now);
        w.host.transmits().for_each(drop);
        client.reversed()
    }

    #[test]
    fn after_the_release_what_was_kept_is_paced_and_a_late_one_closes_at_once() {
        let mut w = worker(1);
        let t0 = w.clock.now();
        let first = establish(&mut w, t0, 40_000);
        assert_eq!(w.host.state(&first), State::Established);
        // Past --keep 1: the new one pushes the oldest out.
        let second = establish(&mut w, t0 + Duration::from_secs(5), 40_001);
        assert_eq!(w.host.state(&first), State::FinWait1);
        assert_eq!(w.host.state(&second), State::Established);
        assert!(w.shared.release());
        w.tick();
        // Still kept: it closes 5 s after it was established, as the first did.
        assert_eq!(w.host.state(&second), State::Established);
        assert_eq!(w.next_held_close(), Some(t0 + Duration::from_secs(10)));
        // Established after the release (a handshake retried): no backlog to
        // pace, so it closes at once.
        let late = establish(&mut w, t0 + Duration::from_secs(6), 40_002);
        assert_eq!(w.host.state(&late), State::FinWait1);
        assert_eq!(w.held.len(), 1);
    }
}
