//! Per-segment cost by state: a host holding many connections in one state,
//! fed one segment per connection in turn, throughput in segments.
//!
//! Each segment is one that leaves the connection where it is, so the
//! population holds still while criterion samples it (the clock is frozen, so
//! no timer fires either):
//! - ESTABLISHED: a duplicate pure ACK;
//! - FIN-WAIT-1: an ACK of the data but not of our FIN (case 2's view from the
//!   closer while the ACK of its FIN is lost);
//! - FIN-WAIT-2: a duplicate pure ACK;
//! - CLOSE-WAIT: the peer's retransmitted FIN (our ACK of it was lost), re-ACKed;
//! - LAST-ACK: the peer's retransmitted FIN, not acknowledging ours, re-ACKed;
//! - TIME-WAIT: the peer's retransmitted FIN (case 4), re-ACKed and the entry's
//!   timer restarted, which appends it to the ring; `handle_timeout` every
//!   1,024 segments drops the stale slots, as a driver's timer tick would.
//!
//! One client host and one server host are walked through a teardown together;
//! the bench of each state runs at the stage where one of them holds it.

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use teardown_engine::{Config, Flags, Host, Segment, State, Time, Tuple};

const ONE_WAY: Duration = Duration::from_millis(5);
const PORTS: u32 = 28_232;

/// The `i`-th connection as the client names it.
fn client_tuple(i: u32) -> Tuple {
    Tuple {
        local_ip: 0x0b00_0000 + i / PORTS,
        remote_ip: 0x0a00_0001,
        local_port: 32_768 + (i % PORTS) as u16,
        remote_port: 80,
    }
}

/// Hands every pending segment of `from` to `to`.
fn deliver(now: Time, from: &mut Host, to: &mut Host) {
    let segs: Vec<Segment> = from.transmits().collect();
    for seg in &segs {
        to.handle(now, seg);
    }
    from.events().for_each(drop);
    to.events().for_each(drop);
}

/// One segment per connection of `host` (named by `tuples` as `host` sees them),
/// sent by the peer: `seq` and `ack` offsets from the host's rcv_nxt and snd_nxt.
fn segments(
    host: &Host,
    tuples: &[Tuple],
    flags: Flags,
    seq_back: u32,
    ack_back: u32,
) -> Vec<Segment> {
    tuples
        .iter()
        .map(|t| {
            let (snd_nxt, rcv_nxt) = host.sequence(t).expect("connection present");
            let seq = rcv_nxt.wrapping_sub(seq_back);
            let ack = snd_nxt.wrapping_sub(ack_back);
            Segment::new(&t.reversed(), flags, seq, ack, 0, 65_535)
        })
        .collect()
}

/// Feeds `segs` round-robin to `host` at the frozen `now`, draining its output.
fn feed(
    c: &mut Criterion,
    name: &str,
    n: &str,
    now: Time,
    host: &mut Host,
    segs: &[Segment],
    state: State,
) {
    assert_eq!(
        host.population(state),
        segs.len(),
        "{name}: population not in {state}"
    );
    let mut g = c.benchmark_group("state_machine");
    g.throughput(Throughput::Elements(1));
    let mut j = 0usize;
    g.bench_function(BenchmarkId::new(name, n), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                host.handle(now, &segs[j]);
                drop(host.transmits());
                j += 1;
                if j == segs.len() {
                    j = 0;
                }
                if j.is_multiple_of(1024) {
                    host.handle_timeout(now);
                    drop(host.events());
                }
            }
            start.elapsed()
        })
    });
    g.finish();
    assert_eq!(
        host.population(state),
        segs.len(),
        "{name}: the segments moved the state"
    );
}

fn state_machine(c: &mut Criterion) {
    let (n, label) = if common::quick() {
        (10_000, "10k")
    } else {
        (1_000_000, "1M")
    };
    let ct: Vec<Tuple> = (0..n).map(client_tuple).collect();
    let st: Vec<Tuple> = ct.iter().map(Tuple::reversed).collect();
    let mut now = Time::from_millis(1_000);
    // Every connection must reach TIME-WAIT, not overflow past tcp_max_tw_buckets;
    // the stages hand each host's output over at once, so the ACK of a FIN must
    // leave at once too (a delayed one would keep the server in FIN-WAIT-1).
    let cfg = Config {
        max_tw_buckets: usize::MAX,
        delayed_ack: false,
        ..Config::default()
    };
    let mut cl = Host::new(cfg.clone());
    let mut sv = Host::new(cfg);
    sv.listen(80);

    // Handshake.
    for t in &ct {
        cl.connect(now, *t).expect("fresh tuple");
    }
    now = now + ONE_WAY;
    deliver(now, &mut cl, &mut sv);
    now = now + ONE_WAY;
    deliver(now, &mut sv, &mut cl);
    now = now + ONE_WAY;
    deliver(now, &mut cl, &mut sv);
    let segs = segments(&sv, &st, Flags::ACK, 0, 0);
    feed(
        c,
        "established_dup_ack",
        label,
        now,
        &mut sv,
        &segs,
        State::Established,
    );

    // The server closes: FIN-WAIT-1 until the client's ACK arrives.
    for t in &st {
        sv.close(now, *t).expect("open connection");
    }
    let fins: Vec<Segment> = sv.transmits().collect();
    let segs = segments(&sv, &st, Flags::ACK, 0, 1);
    feed(
        c,
        "fin_wait_1_ack_below_fin",
        label,
        now,
        &mut sv,
        &segs,
        State::FinWait1,
    );

    // The FINs reach the client: CLOSE-WAIT.
    now = now + ONE_WAY;
    for f in &fins {
        cl.handle(now, f);
    }
    let acks: Vec<Segment> = cl.transmits().collect();
    let segs = segments(&cl, &ct, Flags::FIN | Flags::ACK, 1, 0);
    feed(
        c,
        "close_wait_fin_retransmit",
        label,
        now,
        &mut cl,
        &segs,
        State::CloseWait,
    );

    // The ACKs reach the server: FIN-WAIT-2.
    now = now + ONE_WAY;
    for a in &acks {
        sv.handle(now, a);
    }
    drop(sv.transmits());
    let segs = segments(&sv, &st, Flags::ACK, 0, 0);
    feed(
        c,
        "fin_wait_2_dup_ack",
        label,
        now,
        &mut sv,
        &segs,
        State::FinWait2,
    );

    // The client closes: LAST-ACK.
    for t in &ct {
        cl.close(now, *t).expect("CLOSE-WAIT connection");
    }
    let client_fins: Vec<Segment> = cl.transmits().collect();
    let segs = segments(&cl, &ct, Flags::FIN | Flags::ACK, 1, 1);
    feed(
        c,
        "last_ack_fin_retransmit",
        label,
        now,
        &mut cl,
        &segs,
        State::LastAck,
    );

    // The client's FINs reach the server: TIME-WAIT.
    now = now + ONE_WAY;
    for f in &client_fins {
        sv.handle(now, f);
    }
    drop(sv.transmits());
    let segs = segments(&sv, &st, Flags::FIN | Flags::ACK, 1, 0);
    feed(
        c,
        "time_wait_fin_retransmit",
        label,
        now,
        &mut sv,
        &segs,
        State::TimeWait,
    );
}

criterion_group! {
    name = benches;
    config = common::criterion(Duration::from_secs(1), Duration::from_secs(2), 20);
    targets = state_machine
}
criterion_main!(benches);
