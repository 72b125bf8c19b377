//! The client application's `--app-timeout` and its slots, and a client's
//! TIME-WAIT at the end, on a controlled clock: the worker's host wired
//! straight to a server host, no UDP and no real time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use teardown::link::{Loss, LossModel, LossOnly};
use teardown::service::metrics::completed;
use teardown::service::{Clock, CloseMode, SERVER_PORT};
use teardown::sim::AttackKind;
use teardown_engine::{CloseReason, Config, Event, Host, Segment, State, Time, Tuple};

use super::app::fin;
use super::{Outcome, Plan, Progress, Worker};
use crate::attack::PROBE;
use crate::report::{model_report, PerSecond};
use crate::{Args, Report};

const TIMEOUT: Duration = Duration::from_secs(8);

/// A worker of one client IP and `ports`, one connection live at a time.
fn worker(connections: u64, ports: (u16, u16), app_timeout: Option<Duration>) -> Worker {
    Worker::new(plan(connections, ports, app_timeout)).unwrap()
}

fn plan(connections: u64, ports: (u16, u16), app_timeout: Option<Duration>) -> Plan {
    Plan {
        index: 0,
        // Never sent to: the tests move the segments themselves.
        server: "127.0.0.1:9".parse().unwrap(),
        server_workers: 1,
        connections,
        concurrency: 1,
        rate: 0.0,
        close: CloseMode::Server,
        hold: Duration::ZERO,
        app_timeout,
        loss_to_server: Loss::none(),
        loss_to_client: Loss::none(),
        runaway: 0.0,
        ips: 1,
        ports,
        seed: 1,
        clock: Clock::new(1.0),
        attacks: Vec::new(),
        attack_rate: 0.0,
    }
}

/// The server's host and application: it closes on the client's FIN, and
/// right after ESTABLISHED while `closes_first` (`teardown serve --close server`).
struct Server {
    host: Host,
    closes_first: bool,
}

fn server() -> Server {
    let mut host = Host::new(Config::default());
    host.listen(SERVER_PORT);
    Server {
        host,
        closes_first: true,
    }
}

/// One turn at `now`: both hosts' timers, the worker's held closes, opens and sweep, then
/// segments both ways until both are quiet, each application on its events.
fn step(w: &mut Worker, s: &mut Server, now: Time) {
    w.host.handle_timeout(now);
    s.host.handle_timeout(now);
    w.close_held(now);
    w.open(now);
    w.sweep(now);
    loop {
        w.app(now);
        let to_server: Vec<Segment> = w.host.transmits().collect();
        for seg in &to_server {
            s.host.handle(now, seg);
        }
        let events: Vec<Event> = s.host.events().collect();
        for ev in events {
            match ev {
                Event::Established { tuple } if s.closes_first => {
                    let _ = s.host.close(now, tuple);
                }
                Event::PeerClosed { tuple } => {
                    let _ = s.host.close(now, tuple);
                }
                _ => {}
            }
        }
        let to_client: Vec<Segment> = s.host.transmits().collect();
        for seg in &to_client {
            w.host.handle(now, seg);
        }
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
    }
}

/// Steps every 100 ms from `from` for `span`; the time since `from` at which
/// the application first closed by its timeout, if it did.
fn run(w: &mut Worker, s: &mut Server, from: Time, span: Duration) -> Option<Duration> {
    let mut closed = None;
    let tick = Duration::from_millis(100);
    for i in 1..=(span.as_millis() / tick.as_millis()) as u32 {
        let before = w.out.app_timeouts;
        step(w, s, from + tick * i);
        if w.out.app_timeouts > before && closed.is_none() {
            closed = Some(tick * i);
        }
    }
    closed
}

/// A client whose server forgot the connection (an orphan reset whose FIN
/// and RST were both lost) stays ESTABLISHED with no timer: loadgen would
/// count it leaked at `--timeout`. With `--app-timeout` the application
/// closes it between 1 and 1.25 timeouts after it opened, the server answers
/// the FIN with an RST, and the connection is accounted for.
#[test]
fn a_half_open_client_is_closed_by_the_app_timeout_not_leaked() {
    let t0 = Time::from_millis(1_000);
    let half_open = |app_timeout| {
        let (mut w, mut s) = (worker(1, (40_000, 40_000), app_timeout), server());
        s.closes_first = false;
        step(&mut w, &mut s, t0);
        let tuple = w.plan.tuple(0);
        assert_eq!(w.host.state(&tuple), State::Established);
        assert!(s.host.forget(&tuple.reversed()));
        let closed = run(&mut w, &mut s, t0, TIMEOUT * 3);
        (w, closed)
    };

    let (w, closed) = half_open(None);
    assert_eq!(closed, None);
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::Established);
    assert_eq!((w.out.opened, w.out.accounted), (1, 0), "leaked");

    let (w, closed) = half_open(Some(TIMEOUT));
    let at = closed.expect("closed by the app timeout");
    assert!(at >= TIMEOUT && at <= TIMEOUT + TIMEOUT / 4, "{at:?}");
    assert_eq!(w.out.app_timeouts, 1);
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::Closed);
    assert_eq!(w.out.closed[CloseReason::Reset.index()], 1);
    assert_eq!((w.out.opened, w.out.accounted, w.live), (1, 1, 0));
    let sweeps = w.app_timeout.as_ref().unwrap().next_sweep;
    assert_eq!(sweeps, None, "no sweeps with nothing live");
}

/// A connection the server closes at once is not the timeout's business, and
/// its tuple, reopened just before its timeout would have come, is timed
/// from its own open. That idle connection, closed by the timeout while its
/// server is alive, ends in an ordinary teardown: completed, not leaked.
#[test]
fn the_app_timeout_counts_from_each_open_and_a_live_server_completes_the_close() {
    let t0 = Time::from_millis(1_000);
    let (mut w, mut s) = (worker(2, (40_000, 40_000), Some(TIMEOUT)), server());
    step(&mut w, &mut s, t0);
    assert_eq!((w.out.accounted, w.out.app_timeouts), (1, 0));
    assert_eq!(w.out.closed[CloseReason::LastAckAcked.index()], 1);

    // The same tuple again (one port), from TIME-WAIT on the server.
    s.closes_first = false;
    let t1 = t0 + (TIMEOUT - Duration::from_secs(1));
    step(&mut w, &mut s, t1);
    assert_eq!(w.out.opened, 2);
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::Established);

    let closed = run(&mut w, &mut s, t1, TIMEOUT * 2 + Duration::from_secs(70));
    let at = closed.expect("closed by the app timeout");
    assert!(at >= TIMEOUT && at <= TIMEOUT + TIMEOUT / 4, "{at:?}");
    assert_eq!(w.out.app_timeouts, 1);
    assert_eq!(w.out.closed[CloseReason::TimeWaitExpired.index()], 1);
    assert_eq!(completed(&w.out.closed), 2);
    assert_eq!((w.out.opened, w.out.accounted, w.live), (2, 2, 0));
}

/// The report of a run of `connections` whose workers stopped with `outs`, at `--timeout`.
fn report_of(connections: u64, outs: Vec<Outcome>) -> Report {
    let n = connections.to_string();
    let args = Args::parse_from(["loadgen", "--connections", &n]);
    let seconds = PerSecond::new(Instant::now());
    model_report(&args, &outs, &seconds, 1, 1, TIMEOUT, true, 1, None, None)
}

/// The report of a one-connection run whose one worker stopped with `out`.
fn report(out: Outcome) -> Report {
    report_of(1, vec![out])
}

/// A client that closes first holds TIME-WAIT for 2*MSL after its teardown
/// is over. Meanwhile it is settled but not accounted for: the worker is
/// done, so the run need not wait 2*MSL, and a report made then counts it
/// completed and in TIME-WAIT, not leaked. Once TIME-WAIT is over it is
/// accounted for and still completed once, not twice.
#[test]
fn a_client_in_time_wait_at_the_end_is_settled_not_leaked() {
    let t0 = Time::from_millis(1_000);
    let closing_first = || {
        let (mut w, mut s) = (worker(1, (40_000, 40_000), None), server());
        w.plan.close = CloseMode::Client;
        s.closes_first = false;
        step(&mut w, &mut s, t0);
        (w, s)
    };
    // (accounted, settled, done) as the worker publishes them.
    let published = |w: &Worker| {
        let p = Progress::default();
        w.publish(&p);
        let load = |n: &AtomicU64| n.load(Relaxed);
        (load(&p.accounted), load(&p.settled), p.done.load(Relaxed))
    };
    // (leaked, client_time_wait_at_end, completed) as the report says them.
    let reported = |r: &Report| {
        let j = &r.json;
        assert_eq!(j["leaked"], json!(r.leaked));
        (
            r.leaked,
            j["client_time_wait_at_end"].clone(),
            j["completed"].clone(),
        )
    };

    let (w, _) = closing_first();
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::TimeWait);
    assert_eq!(published(&w), (0, 1, true));
    assert_eq!(reported(&report(w.finish())), (0, json!(1), json!(1)));

    let (mut w, mut s) = closing_first();
    run(&mut w, &mut s, t0, Duration::from_secs(61));
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::Closed);
    assert_eq!(w.out.closed[CloseReason::TimeWaitExpired.index()], 1);
    assert_eq!(published(&w), (1, 1, true));
    assert_eq!(reported(&report(w.finish())), (0, json!(0), json!(1)));
}

/// With `--close client` a connection gives its slot back at close(): the
/// next opens at once while it waits out TIME-WAIT, as a real client's pool
/// reopens while the kernel holds the old socket, and a one-slot worker puts
/// all three of its connections through in three steps, not in three 2*MSL.
/// With one port the second open must wait for the first tuple to leave
/// TIME-WAIT, and the report says how long it waited.
#[test]
fn a_client_closing_first_frees_its_slot_at_close_and_waits_only_for_a_tuple() {
    let t0 = Time::from_millis(1_000);
    let ms = Duration::from_millis(1);
    let closing_first = |connections, ports| {
        let (mut w, mut s) = (worker(connections, ports, None), server());
        w.plan.close = CloseMode::Client;
        s.closes_first = false;
        (w, s)
    };

    let (mut w, mut s) = closing_first(3, (40_000, 40_002));
    for i in 0..3 {
        step(&mut w, &mut s, t0 + ms * i);
        assert_eq!(w.out.opened, i as u64 + 1);
        assert_eq!(w.slots.count(), 0, "given back at close()");
    }
    for k in 0..3 {
        assert_eq!(w.host.state(&w.plan.tuple(k)), State::TimeWait);
    }
    assert_eq!((w.live, w.completed()), (3, 3));
    assert!(w.settled());

    let (mut w, mut s) = closing_first(2, (40_000, 40_000));
    w.at = Instant::now();
    step(&mut w, &mut s, t0);
    let waited_from = Instant::now();
    w.at = waited_from;
    step(&mut w, &mut s, t0 + ms);
    assert_eq!(w.out.opened, 1, "the one tuple is in TIME-WAIT");
    assert_eq!(w.waiting_since, Some(waited_from));
    // The worker's real clock, as its tick would read it when TIME-WAIT is over.
    w.at = waited_from + Duration::from_millis(5);
    run(&mut w, &mut s, t0, Duration::from_secs(61));
    assert_eq!(w.out.opened, 2, "reopened once TIME-WAIT was over");
    assert_eq!(w.out.tuple_wait, Duration::from_millis(5));
    assert_eq!(w.waiting_since, None);
}

/// With `--hold` a connection keeps its slot until the held close. One
/// ended before it (here the server's RST) gives the slot back at CLOSED,
/// and its held close, due later, leaves alone the newer connection that
/// reused its one tuple meanwhile: that one is closed at its own time.
#[test]
fn a_held_connection_keeps_its_slot_until_its_close_or_its_end() {
    let t0 = Time::from_millis(1_000);
    let (hold, half) = (Duration::from_secs(10), Duration::from_secs(5));
    let (mut w, mut s) = (worker(2, (40_000, 40_000), None), server());
    w.plan.close = CloseMode::Client;
    w.plan.hold = hold;
    s.closes_first = false;
    let tuple = w.plan.tuple(0);
    step(&mut w, &mut s, t0);
    step(&mut w, &mut s, t0 + half);
    assert_eq!(w.host.state(&tuple), State::Established);
    assert_eq!((w.out.opened, w.slots.count()), (1, 1), "held open");

    // The server aborts: the client is CLOSED by its RST, not by its app,
    // and the tuple, free again, opens the second connection.
    s.host.abort(t0 + half, tuple.reversed()).unwrap();
    step(&mut w, &mut s, t0 + half);
    assert_eq!(w.out.closed[CloseReason::Reset.index()], 1);
    assert_eq!(w.slots.count(), 0, "given back at CLOSED");
    let reopened = t0 + half + Duration::from_millis(1);
    step(&mut w, &mut s, reopened);
    assert_eq!((w.out.opened, w.slots.count()), (2, 1));
    assert_eq!(w.host.state(&tuple), State::Established);

    // The first's held close comes due: the second is not its connection.
    step(&mut w, &mut s, t0 + hold);
    assert_eq!(w.host.state(&tuple), State::Established);
    assert_eq!(w.slots.count(), 1);
    step(&mut w, &mut s, reopened + hold);
    assert_eq!(w.host.state(&tuple), State::TimeWait);
    assert_eq!(w.slots.count(), 0);
}

/// A one-port worker whose server never closes first, and whose attacker
/// (`--attack blind-rst` at its least rate: one segment, at its first call)
/// has hit the first connection at `t0`. Its RST never reaches the server.
fn rst_attacked(t0: Time) -> (Worker, Server) {
    let mut p = plan(2, (40_000, 40_000), None);
    p.attacks = vec![AttackKind::BlindRst];
    let (mut w, mut s) = (Worker::new(p).unwrap(), server());
    s.closes_first = false;
    step(&mut w, &mut s, t0);
    w.attack(t0);
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::Established);
    let probe = w.attacker.as_ref().and_then(|a| a.next_probe());
    assert_eq!(probe, Some(t0 + PROBE), "the attack queued its probe");
    (w, s)
}

/// An RST attack's probe closes the attacked connection still ESTABLISHED
/// [`PROBE`] later, as its server side may have died silently.
#[test]
fn an_rst_probe_closes_the_connection_it_attacked() {
    let t0 = Time::from_millis(1_000);
    let (mut w, mut s) = rst_attacked(t0);
    w.attack(t0 + PROBE);
    step(&mut w, &mut s, t0 + PROBE);
    assert_eq!(w.host.state(&w.plan.tuple(0)), State::TimeWait);
}

/// ... but not a newer connection that reused the tuple meanwhile.
#[test]
fn an_rst_probe_leaves_alone_a_newer_connection_on_its_tuple() {
    let t0 = Time::from_millis(1_000);
    let (mut w, mut s) = rst_attacked(t0);
    let tuple = w.plan.tuple(0);
    let later = t0 + Duration::from_secs(1);
    s.host.abort(later, tuple.reversed()).unwrap();
    step(&mut w, &mut s, later);
    step(&mut w, &mut s, later + Duration::from_millis(1));
    assert_eq!(w.out.opened, 2, "the tuple reused");
    w.attack(t0 + PROBE);
    step(&mut w, &mut s, t0 + PROBE);
    assert_eq!(w.host.state(&tuple), State::Established);
}

/// A client that closed first is done when it enters TIME-WAIT: the last
/// teardown's end is stamped then, not when TIME-WAIT expires.
#[test]
fn a_teardown_ends_on_entering_time_wait_not_on_leaving_it() {
    let t0 = Time::from_millis(1_000);
    let (mut w, mut s) = (worker(1, (40_000, 40_000), None), server());
    w.plan.close = CloseMode::Client;
    s.closes_first = false;
    let entered = Instant::now();
    w.at = entered;
    step(&mut w, &mut s, t0);
    assert_eq!(w.out.last_close, None, "no event announces TIME-WAIT");
    w.note_completions();
    assert_eq!(w.out.last_close, Some(entered));

    w.at = entered + Duration::from_secs(60);
    run(&mut w, &mut s, t0, Duration::from_secs(61));
    w.note_completions();
    assert_eq!(w.out.closed[CloseReason::TimeWaitExpired.index()], 1);
    assert_eq!(
        w.out.last_close,
        Some(entered),
        "TIME-WAIT's end is not stamped"
    );
}

/// A `--close client` connection whose handshake took 7 s of engine time
/// (a few ms of scheduling on a loaded machine at `--time-scale 0.01`), its
/// FIN's RTO three times that, then its FINs lost to the server, all of
/// them or (`first_through`) all but the first, whose answers are lost
/// instead; run until the client gives up. The FINs sent, and the two hosts.
fn fin_given_up(first_through: bool) -> (u32, Worker, Server) {
    let t0 = Time::from_millis(1_000);
    let (mut w, mut s) = (worker(1, (40_000, 40_000), None), server());
    w.plan.close = CloseMode::Client;
    w.plan.loss_to_server = Loss::new(0.05, LossModel::Bernoulli, LossOnly::Any).unwrap();
    s.closes_first = false;
    w.open(t0);
    for seg in w.host.transmits().collect::<Vec<_>>() {
        s.host.handle(t0, &seg);
    }
    let t1 = t0 + Duration::from_secs(7);
    for seg in s.host.transmits().collect::<Vec<_>>() {
        w.host.handle(t1, &seg);
    }
    w.app(t1);
    let tuple = w.plan.tuple(0);
    assert_eq!(
        w.host.state(&tuple),
        State::FinWait1,
        "closed at ESTABLISHED"
    );
    assert_eq!(w.host.rto(&tuple), Some(Duration::from_secs(21)));
    // A lost FIN takes the handshake's ACK it carries along; the server's
    // SYN-ACK again draws a pure ACK, which gets through.
    let mut fins = 0;
    let tick = Duration::from_millis(100);
    for i in 0..=1_600 {
        let now = t1 + tick * i;
        w.host.handle_timeout(now);
        s.host.handle_timeout(now);
        loop {
            w.app(now);
            let to_server: Vec<Segment> = w.host.transmits().collect();
            for seg in &to_server {
                if seg.flags.fin() {
                    fins += 1;
                    if !(first_through && fins == 1) {
                        continue;
                    }
                    // As `Worker::send` marks a FIN it lets through.
                    super::app::fin_went_through(&w.plan, &mut w.fins_through, &seg.sender_tuple());
                }
                s.host.handle(now, seg);
            }
            let to_client: Vec<Segment> = s.host.transmits().collect();
            if !(first_through && fins > 0) {
                for seg in &to_client {
                    w.host.handle(now, seg);
                }
            }
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
        }
    }
    assert_eq!(w.host.state(&tuple), State::Closed);
    assert_eq!(w.out.closed[CloseReason::RetriesExhausted.index()], 1);
    (fins, w, s)
}

/// The e2e flake of `--close client` under burst loss on a loaded machine:
/// the orphan's limit, 102.2 s from the first FIN (`tcp_model_timeout`),
/// lets only three FINs go at an RTO of 21 s. All three lost, the client
/// gives up in FIN-WAIT-1 without a word, as Linux does, and the server,
/// which never had the FIN, stays ESTABLISHED. The report names it
/// half-open, not leaked; an ESTABLISHED entry no client gave up on so is
/// still leaked, and a client whose first FIN got through gave up on no
/// half-open server (it is in CLOSE-WAIT).
#[test]
fn a_server_left_established_by_a_client_that_gave_up_its_fin_is_half_open() {
    let (fins, w, mut s) = fin_given_up(false);
    assert_eq!(fins, 3);
    assert_eq!(w.out.fin_abandoned, 1);
    assert_eq!(w.fins_through.first(), Some(&fin::ABANDONED));
    let server_side = w.plan.tuple(0).reversed();
    // No keepalive: ESTABLISHED for good.
    s.host.handle_timeout(Time::from_secs_f64(7_200.0));
    assert_eq!(s.host.state(&server_side), State::Established);
    assert_eq!(s.host.transmits().count(), 0);

    let outs = [w.finish()];
    let args = Args::parse_from(["loadgen", "--connections", "1"]);
    let seconds = PerSecond::new(Instant::now());
    // The report when the server's metrics end with `established` ESTABLISHED.
    let report = |established: u64| {
        let key = "teardown_connections{state=\"established\"}".to_string();
        let m = std::collections::BTreeMap::from([(key, established as f64)]);
        let end = Some(&m);
        model_report(&args, &outs, &seconds, 1, 1, TIMEOUT, true, 1, None, end)
    };
    let r = report(1);
    assert_eq!(r.leaked, 0, "{:#}", r.json);
    assert_eq!(r.json["server_half_open"], json!(1));
    let r = report(2);
    assert_eq!(
        (r.leaked, r.json["server_half_open"].clone()),
        (1, json!(1))
    );

    let (fins, w, s) = fin_given_up(true);
    assert_eq!(fins, 3);
    assert_eq!(w.out.fin_abandoned, 0);
    assert!(
        w.fins_through.iter().all(|&f| f == 0),
        "forgotten at the close"
    );
    // A tuple outside the worker's range (an attack's) marks nothing, even
    // where its place would alias one of the worker's.
    let own = w.plan.tuple(0);
    let mut marks = Vec::new();
    for foreign in [
        Tuple {
            local_ip: own.local_ip.wrapping_sub(1),
            ..own
        },
        Tuple {
            remote_port: own.remote_port + 1,
            ..own
        },
        Tuple {
            local_port: own.local_port.wrapping_sub(1),
            ..own
        },
    ] {
        super::app::fin_went_through(&w.plan, &mut marks, &foreign);
    }
    assert!(marks.is_empty());
    super::app::fin_went_through(&w.plan, &mut marks, &own);
    assert_eq!(marks, [fin::THROUGH]);

    // The tuple opened again: the server's half-open entry ends at the new
    // SYN, and the give-up excuses nothing more, once.
    let (_, mut w, _) = fin_given_up(false);
    w.reopened(0);
    assert_eq!(w.out.fin_abandoned, 0);
    w.reopened(0);
    assert_eq!(w.out.fin_abandoned, 0);
    assert_eq!(s.host.state(&w.plan.tuple(0).reversed()), State::CloseWait);
}

/// A run cut short by `--timeout` reports the connections it never opened,
/// and the longest wait of its workers for a tuple (they waited side by
/// side, so not the sum).
#[test]
fn the_report_counts_the_unopened_and_the_longest_tuple_wait() {
    let waited = |ms| {
        let mut w = worker(1, (40_000, 40_000), None);
        w.out.opened = 1;
        w.out.accounted = 1;
        w.out.tuple_wait = Duration::from_millis(ms);
        w.finish()
    };
    let r = report_of(5, vec![waited(1_500), waited(2_500)]);
    assert_eq!(r.json["unopened"], json!(3));
    assert_eq!(r.json["tuple_wait_secs"], json!(2.5));
    let r = report_of(2, vec![waited(0), waited(0)]);
    assert_eq!(r.json["unopened"], json!(0));
}

/// The sweep finds each tuple by its place in the worker's range.
#[test]
fn a_tuple_and_its_place_in_the_range_correspond() {
    let mut w = worker(1, (1_000, 1_009), None);
    w.plan.index = 2;
    w.plan.ips = 3;
    for k in 0..30 {
        assert_eq!(w.plan.place(&w.plan.tuple(k)), k as usize);
    }
    assert_eq!(w.plan.tuple(29).local_port, 1_009);
}
