//! connect() without a port through the public API: Linux's ephemeral port
//! search (`__inet_hash_connect`, `inet_csk_find_open_port`), EADDRNOTAVAIL,
//! and `tcp_twsk_unique` taking over a TIME-WAIT 4-tuple. The host is the
//! client; the test plays the server, segment by segment.

use teardown_engine::{
    BindMode, Config, Connected, Error, Flags, Host, Segment, State, Time, Ts, Tuple,
};

const CLIENT: u32 = u32::from_be_bytes([10, 0, 0, 1]);
const SERVER: u32 = u32::from_be_bytes([10, 0, 0, 2]);
const LOOP_CLIENT: u32 = u32::from_be_bytes([127, 0, 0, 1]);
const LOOP_SERVER: u32 = u32::from_be_bytes([127, 0, 0, 2]);
const SERVER_ISS: u32 = 7_000;
/// The server's TS value on every segment it sends.
const SERVER_TS: u32 = 4_242;

fn cfg(range: (u16, u16), tw_reuse: u8) -> Config {
    Config {
        ip_local_port_range: range,
        tw_reuse,
        ..Config::default()
    }
}

/// A segment from the server to the client's `t` (client's view).
fn from_server(t: &Tuple, flags: Flags, seq: u32, ack: u32, ts: bool) -> Segment {
    let mut s = Segment::new(&t.reversed(), flags, seq, ack, 0, 65_535);
    s.ts = ts.then_some(Ts {
        val: SERVER_TS,
        ecr: 0,
    });
    s
}

struct Client {
    host: Host,
    now: Time,
}

impl Client {
    fn new(cfg: Config) -> Client {
        Client {
            host: Host::new(cfg),
            now: Time::ZERO,
        }
    }

    fn at(&mut self, ms: u64) -> &mut Client {
        self.now = Time::from_millis(ms);
        self
    }

    fn connect(&mut self, from: u32, to: u32, mode: BindMode) -> Result<Connected, Error> {
        self.host.connect_ephemeral(self.now, from, to, 80, mode)
    }

    fn port(&mut self, from: u32, to: u32, mode: BindMode) -> u16 {
        let c = self.connect(from, to, mode).expect("a free port");
        self.host.transmits().for_each(drop);
        c.tuple.local_port
    }

    /// SYN out, SYN-ACK in (with TS when `ts`), ACK out: ESTABLISHED.
    fn establish(&mut self, c: &Connected, ts: bool) -> Segment {
        let syn = self.host.transmits().next().expect("SYN");
        assert_eq!(syn.flags, Flags::SYN);
        let synack = from_server(
            &c.tuple,
            Flags::SYN | Flags::ACK,
            SERVER_ISS,
            syn.seq + 1,
            ts,
        );
        self.host.handle(self.now, &synack);
        self.host.transmits().for_each(drop);
        assert_eq!(self.host.state(&c.tuple), State::Established);
        syn
    }

    /// The client closes first: FIN out, ACK and FIN in: TIME-WAIT. Returns
    /// the client's snd_nxt there.
    fn close_into_time_wait(&mut self, t: &Tuple, ts: bool) -> u32 {
        self.host.close(self.now, *t).expect("close");
        let fin = self.host.transmits().next().expect("FIN");
        assert!(fin.flags.fin());
        let (seq, ack) = (fin.ack, fin.seq + 1);
        self.host
            .handle(self.now, &from_server(t, Flags::ACK, seq, ack, ts));
        self.host.handle(
            self.now,
            &from_server(t, Flags::FIN | Flags::ACK, seq, ack, ts),
        );
        self.host.transmits().for_each(drop);
        assert_eq!(self.host.state(t), State::TimeWait);
        ack
    }
}

#[test]
fn even_ports_first_then_odd_then_eaddrnotavail() {
    let mut c = Client::new(cfg((40_000, 40_009), 0));
    let ports: Vec<u16> = (0..10)
        .map(|_| c.port(CLIENT, SERVER, BindMode::NoPort))
        .collect();
    assert!(ports[..5].iter().all(|p| p % 2 == 0), "{ports:?}");
    assert!(ports[5..].iter().all(|p| p % 2 == 1), "{ports:?}");
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (40_000..40_010).collect::<Vec<_>>());
    assert_eq!(
        c.connect(CLIENT, SERVER, BindMode::NoPort),
        Err(Error::AddrNotAvail { probed: 10 })
    );
    assert_eq!(c.host.stats().connect_eaddrnotavail, 1);
}

#[test]
fn a_connect_port_is_shared_across_destinations_a_bound_one_is_not() {
    let other = SERVER + 1;
    let mut c = Client::new(cfg((40_000, 40_001), 0));
    let a = c.port(CLIENT, SERVER, BindMode::NoPort);
    let b = c.port(CLIENT, other, BindMode::NoPort);
    // Each destination's search starts on an even port, and the one port
    // already carries a different 4-tuple: __inet_check_established passes.
    assert_eq!((a, b), (40_000, 40_000));
    assert_eq!(c.port(CLIENT, SERVER, BindMode::NoPort), 40_001);
    // bind(0) wants a port nobody holds: none is left.
    assert!(matches!(
        c.connect(CLIENT, other, BindMode::BeforeConnect),
        Err(Error::AddrNotAvail { .. })
    ));

    let mut d = Client::new(cfg((40_000, 40_001), 0));
    // bind(0) takes the odd ports first ...
    assert_eq!(d.port(CLIENT, SERVER, BindMode::BeforeConnect), 40_001);
    // ... and connect() never shares a bound port, even to another destination.
    assert_eq!(d.port(CLIENT, other, BindMode::NoPort), 40_000);
    assert_eq!(d.port(CLIENT, SERVER + 2, BindMode::NoPort), 40_000);
    assert!(matches!(
        d.connect(CLIENT, SERVER + 3, BindMode::BeforeConnect),
        Err(Error::AddrNotAvail { probed: 2 })
    ));
    // Another local address has its own ports.
    assert_eq!(d.port(CLIENT + 1, SERVER, BindMode::BeforeConnect), 40_001);
}

#[test]
fn a_port_shared_with_another_destination_is_ours_again_once_our_entry_goes() {
    let other = SERVER + 1;
    let mut c = Client::new(cfg((40_000, 40_001), 0));
    let first = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("a port");
    c.host.transmits().for_each(drop);
    assert_eq!(first.tuple.local_port, 40_000);
    assert_eq!(c.port(CLIENT, other, BindMode::NoPort), 40_000);
    assert_eq!(c.port(CLIENT, SERVER, BindMode::NoPort), 40_001);
    // Our entry on 40,000 goes; the other destination's stays there, and
    // the 4-tuple to us is free again (__inet_check_established finds none).
    c.host
        .abort(c.now, first.tuple)
        .expect("an open connection");
    c.host.transmits().for_each(drop);
    assert_eq!(c.port(CLIENT, SERVER, BindMode::NoPort), 40_000);
    assert!(matches!(
        c.connect(CLIENT, SERVER, BindMode::NoPort),
        Err(Error::AddrNotAvail { probed: 2 })
    ));
}

/// One port, one connection closed into TIME-WAIT at t = 0, then a connect()
/// at `ms`: what happens.
fn reconnect_after_time_wait(
    tw_reuse: u8,
    from: u32,
    to: u32,
    ts: bool,
    ms: u64,
) -> (Result<Connected, Error>, Option<Segment>, u32) {
    let mut c = Client::new(cfg((40_000, 40_000), tw_reuse));
    let first = c.connect(from, to, BindMode::NoPort).expect("first");
    c.establish(&first, ts);
    let snd_nxt = c.close_into_time_wait(&first.tuple, ts);
    let again = c.at(ms).connect(from, to, BindMode::NoPort);
    let syn = c.host.transmits().next();
    (again, syn, snd_nxt)
}

#[test]
fn tw_reuse_1_takes_over_time_wait_after_the_delay_with_a_new_iss_and_ts_recent() {
    let (again, syn, snd_nxt) = reconnect_after_time_wait(1, CLIENT, SERVER, true, 1_001);
    let again = again.expect("reused");
    assert!(again.tw_reused);
    assert_eq!(again.probed, 1);
    let syn = syn.expect("SYN");
    assert_eq!(syn.flags, Flags::SYN);
    // write_seq = tw_snd_nxt + 65535 + 2; TSecr carries the inherited ts_recent.
    assert_eq!(syn.seq, snd_nxt.wrapping_add(65_537));
    assert_eq!(syn.ts.map(|t| t.ecr), Some(SERVER_TS));
}

#[test]
fn a_time_wait_taken_over_on_a_shared_port_leaves_the_port_counted() {
    let other = SERVER + 1;
    let mut c = Client::new(cfg((40_000, 40_000), 1));
    let first = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("first");
    c.establish(&first, true);
    c.close_into_time_wait(&first.tuple, true);
    // Another destination shares the one port.
    let second = c.connect(CLIENT, other, BindMode::NoPort).expect("shared");
    c.host.transmits().for_each(drop);
    // tcp_tw_reuse hands the TIME-WAIT 4-tuple to a new connection to us.
    let again = c.at(1_001).connect(CLIENT, SERVER, BindMode::NoPort);
    assert!(again.expect("reused").tw_reused);
    c.host.transmits().for_each(drop);
    // The other destination's connection goes; ours still holds the port,
    // so a second connection to us finds no port, not a duplicate 4-tuple.
    c.host
        .abort(c.now, second.tuple)
        .expect("an open connection");
    c.host.transmits().for_each(drop);
    assert_eq!(
        c.connect(CLIENT, SERVER, BindMode::NoPort),
        Err(Error::AddrNotAvail { probed: 1 })
    );
}

#[test]
fn tw_reuse_waits_for_the_delay() {
    let (again, syn, _) = reconnect_after_time_wait(1, CLIENT, SERVER, true, 1_000);
    assert_eq!(again, Err(Error::AddrNotAvail { probed: 1 }));
    assert!(syn.is_none());
}

#[test]
fn tw_reuse_needs_timestamps_and_the_sysctl() {
    let (again, _, _) = reconnect_after_time_wait(1, CLIENT, SERVER, false, 5_000);
    assert!(matches!(again, Err(Error::AddrNotAvail { .. })));
    let (again, _, _) = reconnect_after_time_wait(0, CLIENT, SERVER, true, 5_000);
    assert!(matches!(again, Err(Error::AddrNotAvail { .. })));
}

#[test]
fn tw_reuse_2_is_for_loopback_only() {
    let (again, _, _) = reconnect_after_time_wait(2, CLIENT, SERVER, true, 5_000);
    assert!(matches!(again, Err(Error::AddrNotAvail { .. })));
    let (again, _, _) = reconnect_after_time_wait(2, LOOP_CLIENT, LOOP_SERVER, true, 5_000);
    assert!(again.expect("loopback").tw_reused);
}

#[test]
fn the_port_comes_back_when_time_wait_ends() {
    let mut c = Client::new(cfg((40_000, 40_000), 0));
    let first = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("first");
    c.establish(&first, true);
    c.close_into_time_wait(&first.tuple, true);
    c.at(60_001);
    c.host.handle_timeout(c.now);
    assert_eq!(c.host.state(&first.tuple), State::Closed);
    let again = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("free");
    assert!(!again.tw_reused);
    assert_eq!(c.host.stats().tw_reused, 0);
}

#[test]
fn connect_on_a_bound_port_takes_time_wait_with_timestamps_alone() {
    // A port the caller bound (twp NULL in tcp_twsk_unique): tcp_tw_reuse and
    // its delay do not apply, the peer's timestamps do.
    for (ts, taken) in [(true, true), (false, false)] {
        let mut c = Client::new(cfg((40_000, 40_000), 0));
        let first = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("first");
        c.establish(&first, ts);
        c.close_into_time_wait(&first.tuple, ts);
        c.at(10);
        let r = c.host.connect(c.now, first.tuple);
        assert_eq!(r.is_ok(), taken, "ts {ts}");
        if !taken {
            assert_eq!(r, Err(Error::Exists(first.tuple)));
        }
        let want = if taken {
            State::SynSent
        } else {
            State::TimeWait
        };
        assert_eq!(c.host.state(&first.tuple), want);
        assert_eq!(c.host.stats().tw_reused, taken as u64);
    }
}

#[test]
fn the_search_starts_past_the_last_port_for_the_same_destination() {
    // Released ports are not reused first (unlike a FIFO of free ports): the
    // perturbation moves the start on by at least the ports probed.
    let mut c = Client::new(cfg((40_000, 40_999), 0));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let conn = c.connect(CLIENT, SERVER, BindMode::NoPort).expect("port");
        c.host.transmits().for_each(drop);
        c.host.abort(c.now, conn.tuple).expect("abort");
        c.host.transmits().for_each(drop);
        seen.push(conn.tuple.local_port);
    }
    let distinct: std::collections::BTreeSet<u16> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "{seen:?}");
}
