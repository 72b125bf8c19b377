//! `Host::send_close` (the application's last write and its close() in one
//! call) against send() then close(): two worlds driven alike, one making the
//! two calls and one the single call, must put the same segments on the wire
//! at the same times and report the same events and counters, in ESTABLISHED
//! and in CLOSE-WAIT, with timestamps and without, with each segment of the
//! exchange lost in turn.

use std::collections::VecDeque;
use teardown_engine::{Config, Event, Host, Segment, Stats, Time, Tuple};

/// One way's delay on the link.
const DELAY_MS: u64 = 5;
/// The client's request and the server's response.
const REQUEST: u32 = 100;
const RESPONSE: u32 = 500;

fn tuple() -> Tuple {
    Tuple::new([10, 0, 0, 2], 40_000, [10, 0, 0, 1], 80)
}

/// What a world did: every segment sent (when, by the server?), every event.
#[derive(Debug, PartialEq)]
struct Trace {
    wire: Vec<(Time, bool, Segment)>,
    events: Vec<(Time, bool, Event)>,
    client: Stats,
    server: Stats,
}

struct World {
    client: Host,
    server: Host,
    /// In flight: arrival time, to the server?, the segment.
    link: VecDeque<(Time, bool, Segment)>,
    trace: Trace,
    /// The server answers with `send_close` (else send() then close()).
    fused: bool,
    /// The client closes right after its request (the server answers in CLOSE-WAIT).
    client_fin: bool,
    server_closed: bool,
    /// Which segment of the exchange (counting all sent) the link drops.
    lose: Option<usize>,
    sent: usize,
}

impl World {
    fn new(timestamps: bool, fused: bool, client_fin: bool, lose: Option<usize>) -> World {
        let cfg = Config {
            timestamps,
            ..Config::default()
        };
        let mut server = Host::new(cfg.clone());
        server.listen(80);
        World {
            client: Host::new(cfg),
            server,
            link: VecDeque::new(),
            trace: Trace {
                wire: Vec::new(),
                events: Vec::new(),
                client: Stats::default(),
                server: Stats::default(),
            },
            fused,
            client_fin,
            server_closed: false,
            lose,
            sent: 0,
        }
    }

    /// Drains what `server` (or the client) sent and what its application
    /// learnt, and lets the application act on it, until nothing is left.
    fn after(&mut self, now: Time, server: bool) {
        loop {
            let host = if server {
                &mut self.server
            } else {
                &mut self.client
            };
            let out: Vec<Segment> = host.transmits().collect();
            let events: Vec<Event> = host.events().collect();
            if out.is_empty() && events.is_empty() {
                return;
            }
            for seg in out {
                self.trace.wire.push((now, server, seg));
                if self.lose != Some(self.sent) {
                    let at = now + std::time::Duration::from_millis(DELAY_MS);
                    self.link.push_back((at, !server, seg));
                }
                self.sent += 1;
            }
            for ev in events {
                self.trace.events.push((now, server, ev));
                self.app(now, server, ev);
            }
        }
    }

    fn app(&mut self, now: Time, server: bool, ev: Event) {
        let t = tuple();
        match (server, ev) {
            (false, Event::Established { .. }) => {
                self.client.send(now, t, REQUEST).expect("request");
                if self.client_fin {
                    self.client.close(now, t).expect("client close");
                }
            }
            (false, Event::PeerClosed { .. }) => self.client.close(now, t).expect("close"),
            (true, Event::Received { .. }) if !self.server_closed => {
                let r = t.reversed();
                if self.fused {
                    self.server
                        .send_close(now, r, RESPONSE)
                        .expect("send_close");
                } else {
                    self.server.send(now, r, RESPONSE).expect("send");
                    self.server.close(now, r).expect("close");
                }
                self.server_closed = true;
            }
            _ => {}
        }
    }

    fn run(mut self) -> Trace {
        let start = Time::ZERO;
        self.client.connect(start, tuple()).expect("connect");
        self.after(start, false);
        for _ in 0..10_000 {
            let arrival = self.link.front().map(|&(at, _, _)| at);
            let timers = [self.client.poll_timeout(), self.server.poll_timeout()];
            let Some(now) = [arrival, timers[0], timers[1]].into_iter().flatten().min() else {
                break;
            };
            if arrival == Some(now) {
                let (_, to_server, seg) = self.link.pop_front().expect("front");
                let host = if to_server {
                    &mut self.server
                } else {
                    &mut self.client
                };
                host.handle(now, &seg);
                self.after(now, to_server);
            } else if timers[0] == Some(now) {
                self.client.handle_timeout(now);
                self.after(now, false);
            } else {
                self.server.handle_timeout(now);
                self.after(now, true);
            }
        }
        assert!(
            self.client.is_empty() && self.server.is_empty(),
            "both ends closed"
        );
        self.trace.client = *self.client.stats();
        self.trace.server = *self.server.stats();
        self.trace
    }
}

#[test]
fn send_close_is_send_then_close() {
    for timestamps in [true, false] {
        for client_fin in [false, true] {
            let clean = World::new(timestamps, false, client_fin, None).run();
            // The response and our FIN go as one segment: the case the single
            // call must keep.
            assert_eq!(clean.server.fins_on_data, 1, "{clean:?}");
            let segments = clean.wire.len();
            let mut resent = 0;
            for lose in std::iter::once(None).chain((0..segments).map(Some)) {
                let apart = World::new(timestamps, false, client_fin, lose).run();
                let fused = World::new(timestamps, true, client_fin, lose).run();
                assert_eq!(
                    fused, apart,
                    "timestamps {timestamps}, client FIN {client_fin}, lost {lose:?}"
                );
                resent += fused.server.retransmits + fused.client.retransmits;
            }
            assert!(
                resent >= segments as u64 / 2,
                "the losses were repaired: {resent}"
            );
        }
    }
}

#[test]
fn send_close_refused_leaves_the_connection() {
    let mut host = Host::new(Config::default());
    let t = tuple();
    assert!(
        host.send_close(Time::ZERO, t, RESPONSE).is_err(),
        "no connection"
    );
    host.connect(Time::ZERO, t).expect("connect");
    let _ = host.transmits().count();
    // SYN-SENT cannot send: nothing happens, as send() would do nothing.
    assert!(host.send_close(Time::ZERO, t, RESPONSE).is_err());
    assert_eq!(host.transmits().count(), 0);
    assert_eq!(host.state(&t), teardown_engine::State::SynSent);
}
