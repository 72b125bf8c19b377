//! The seed cases of the four-way close (`seed.rs`) and the engine's rules, as packet traces:
//! two engines joined by a hand-operated link; each test delivers, drops and
//! delays segments and asserts the exact replies (flags, seq, ack), the states
//! passed through and when.

use std::time::Duration;

use teardown_engine::{
    Advance, CloseReason, Config, Event, Flags, Host, Role, Segment, State, Time, Tuple,
};

#[path = "../common/mod.rs"]
mod common;
use common::{open_from, sent_on};

mod close;
mod handshake;
mod rst;
mod rules;
mod seed;

const ONE_WAY: Duration = Duration::from_millis(50);

/// The test connection as the client names it, and as the server does.
const CLIENT: Tuple = Tuple::new([10, 0, 0, 2], 40_000, [10, 0, 0, 1], 80);
const SERVER: Tuple = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000);

/// What the client sends the server and the server the client, before a test
/// says what differs (smoltcp's SEND_TEMPL / RECV_TEMPL).
const FROM_CLIENT: Segment = sent_on(CLIENT);
const FROM_SERVER: Segment = sent_on(SERVER);
/// An RST as a stack sends one: window 0.
const RST_FROM_SERVER: Segment = Segment {
    flags: Flags::RST,
    wnd: 0,
    ..FROM_SERVER
};

/// The client's RST at `seq`, and its SYN: what the RST and SYN tests vary.
fn client_rst(seq: u32) -> Segment {
    Segment {
        flags: Flags::RST,
        seq,
        wnd: 0,
        ..FROM_CLIENT
    }
}
fn client_syn(seq: u32) -> Segment {
    Segment {
        flags: Flags::SYN,
        seq,
        ..FROM_CLIENT
    }
}

/// A client and a server, one connection between them, and a clock.
struct Net {
    now: Time,
    c: Host,
    s: Host,
    /// The connection as the client names it.
    ct: Tuple,
    /// ... and as the server names it.
    st: Tuple,
}

/// These cases time every segment by hand: the peer's FIN is ACKed at once
/// (the delayed ACK has its own tests, engine/tests/delayed_ack.rs).
fn cfg() -> Config {
    Config {
        trace_states: true,
        delayed_ack: false,
        ..Config::default()
    }
}

impl Net {
    fn with(ccfg: Config, scfg: Config) -> Net {
        let mut net = Net {
            now: Time::from_millis(1_000),
            c: Host::new(ccfg),
            s: Host::new(scfg),
            ct: CLIENT,
            st: SERVER,
        };
        net.s.listen(80);
        net
    }

    /// Both ends ESTABLISHED after a handshake over a 100 ms RTT (so RTO = 300 ms).
    fn established(ccfg: Config, scfg: Config) -> Net {
        let mut net = Net::with(ccfg, scfg);
        net.c.connect(net.now, net.ct).unwrap();
        let syn = net.one_c();
        net.hop();
        net.s.handle(net.now, &syn);
        let synack = net.one_s();
        net.hop();
        net.c.handle(net.now, &synack);
        let ack = net.one_c();
        net.hop();
        net.s.handle(net.now, &ack);
        assert_eq!(net.c.state(&net.ct), State::Established);
        assert_eq!(net.s.state(&net.st), State::Established);
        assert_eq!(net.s.rto(&net.st), Some(Duration::from_millis(300)));
        assert_eq!(net.c.rto(&net.ct), Some(Duration::from_millis(300)));
        net.c.events().for_each(drop);
        net.s.events().for_each(drop);
        net
    }

    fn default() -> Net {
        Net::established(cfg(), cfg())
    }

    fn hop(&mut self) {
        self.advance(ONE_WAY);
    }

    /// Moves the clock forward by `d`, firing both hosts' timers on the way at
    /// their deadlines, as a driver does.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.now = Advance::new(self.now, end).finish(&mut [&mut self.c, &mut self.s]);
    }

    /// Fires timer after timer, both hosts' in one time order, for at most
    /// `limit`, while `go` holds before each instant; returns when it stopped.
    fn walk_while(&mut self, limit: Duration, mut go: impl FnMut(&mut Net) -> bool) -> Time {
        let mut walk = Advance::new(self.now, self.now + limit);
        while go(self) {
            let Some(at) = walk.fire(&mut [&mut self.c, &mut self.s]) else {
                break;
            };
            self.now = at;
        }
        self.now
    }

    /// Steps timer by timer until one of the hosts has something to send, or
    /// `limit` has passed; returns when.
    fn until_transmit(&mut self, limit: Duration) -> Time {
        self.walk_while(limit, |n| {
            n.c.pending_transmits().is_empty() && n.s.pending_transmits().is_empty()
        })
    }

    fn out_c(&mut self) -> Vec<Segment> {
        self.c.transmits().collect()
    }
    fn out_s(&mut self) -> Vec<Segment> {
        self.s.transmits().collect()
    }
    fn one_c(&mut self) -> Segment {
        let v = self.out_c();
        assert_eq!(v.len(), 1, "client sent {v:?}");
        v[0]
    }
    fn one_s(&mut self) -> Segment {
        let v = self.out_s();
        assert_eq!(v.len(), 1, "server sent {v:?}");
        v[0]
    }
    /// The server's one segment (its FIN) to the client, and the client's one
    /// answer (its ACK) back.
    fn server_fin_acked(&mut self) {
        let fin = self.one_s();
        self.c.handle(self.now, &fin);
        let ack = self.one_c();
        self.s.handle(self.now, &ack);
    }
    fn seq_c(&self) -> (u32, u32) {
        self.c.sequence(&self.ct).unwrap()
    }
    fn seq_s(&self) -> (u32, u32) {
        self.s.sequence(&self.st).unwrap()
    }
}

/// Asserts a segment's flags (packetdrill notation), seq and ack.
#[track_caller]
fn check(seg: &Segment, flags: &str, seq: u32, ack: u32) {
    assert_eq!(format!("{:?}", seg.flags), flags, "flags of {seg:?}");
    assert_eq!(seg.seq, seq, "seq of {seg:?}");
    if seg.flags.ack() {
        assert_eq!(seg.ack, ack, "ack of {seg:?}");
    }
}

fn transitions(h: &mut Host) -> Vec<(State, State)> {
    h.events()
        .filter_map(|e| match e {
            Event::StateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

fn closed(h: &mut Host) -> Vec<(State, CloseReason, Role)> {
    h.events()
        .filter_map(|e| match e {
            Event::Closed {
                from, reason, role, ..
            } => Some((from, reason, role)),
            _ => None,
        })
        .collect()
}

use State::*;

/// Builds a server-side connection in `state` and returns the net.
fn in_state(state: State) -> Net {
    let mut n = Net::default();
    match state {
        Established => {}
        FinWait1 => {
            n.s.close(n.now, n.st).unwrap();
            n.out_s();
        }
        FinWait2 | TimeWait => {
            n.s.close(n.now, n.st).unwrap();
            let fin = n.one_s();
            n.c.handle(n.now, &fin);
            let ack = n.one_c();
            n.s.handle(n.now, &ack);
            if state == TimeWait {
                n.c.close(n.now, n.ct).unwrap();
                let fin2 = n.one_c();
                n.s.handle(n.now, &fin2);
                n.out_s();
            }
        }
        Closing => {
            n.s.close(n.now, n.st).unwrap();
            n.out_s();
            n.c.close(n.now, n.ct).unwrap();
            let cfin = n.one_c();
            n.s.handle(n.now, &cfin);
            n.out_s();
        }
        CloseWait | LastAck => {
            n.c.close(n.now, n.ct).unwrap();
            let fin = n.one_c();
            n.s.handle(n.now, &fin);
            n.out_s();
            if state == LastAck {
                n.s.close(n.now, n.st).unwrap();
                n.out_s();
            }
        }
        s => panic!("not built here: {s}"),
    }
    assert_eq!(n.s.state(&n.st), state);
    n.s.events().for_each(drop);
    n
}
