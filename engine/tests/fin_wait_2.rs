//! The orphan's FIN-WAIT-2 when its lifetime (`tcp_fin_time()`: the larger
//! of `tcp_fin_timeout` and 3.5 RTO) passes TIME-WAIT's 60 s. Linux then
//! keeps the full socket, an orphan still, for the excess
//! (`tcp_rcv_state_process`, `tcp_close`: the keepalive timer), and only then
//! makes the FIN_WAIT2 mini-socket, for the excess again
//! (`tcp_keepalive_timer` -> `tcp_time_wait`). At a 90 s `tcp_fin_timeout`
//! that is 30 s and 30 s: the entry is gone at 60 s, not 90 s
//! (`tests/scripts/fin-wait-2-orphan-past-60s.pkt` shows it on Linux).

mod common;

use std::time::Duration;

use teardown_engine::{CloseReason, Config, Flags, Host, Segment, State, Time, Tuple};

use common::closed;

fn server_tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

fn peer(port: u16) -> Tuple {
    server_tuple(port).reversed()
}

fn at(ms: u64) -> Time {
    Time::from_micros(ms * 1000)
}

/// A server host on port 80 without timestamps (shorter traces).
fn server(fin_timeout_s: u64, f: impl FnOnce(&mut Config)) -> Host {
    let mut cfg = Config {
        timestamps: false,
        fin_timeout: Duration::from_secs(fin_timeout_s),
        ..Config::default()
    };
    f(&mut cfg);
    let mut host = Host::new(cfg);
    host.listen(80);
    host
}

/// Opens a connection from the peer's `port` (its ISN 1000) at 0 ms.
/// Returns the server's snd_nxt.
fn open(host: &mut Host, port: u16) -> u32 {
    host.handle(
        at(0),
        &Segment::new(&peer(port), Flags::SYN, 1_000, 0, 0, 65_535),
    );
    let synack = host.transmits().next().expect("a SYN-ACK");
    let ack = Segment::new(&peer(port), Flags::ACK, 1_001, synack.seq + 1, 0, 65_535);
    host.handle(at(0), &ack);
    host.events().for_each(drop);
    synack.seq + 1
}

/// Opens, and closes at 10 ms: the FIN is on its way. Returns the
/// server's snd_nxt before it.
fn closing(host: &mut Host, port: u16) -> u32 {
    let isn = open(host, port);
    host.close(at(10), server_tuple(port)).unwrap();
    host.transmits().for_each(drop);
    isn
}

/// Opens, closes at 10 ms and has the peer ACK the FIN at 20 ms: the
/// server's end is an orphan in FIN-WAIT-2 from 20 ms. Returns its snd_nxt.
fn orphan_in_fin_wait_2(host: &mut Host, port: u16) -> u32 {
    let isn = open(host, port);
    host.close(at(10), server_tuple(port)).unwrap();
    assert_eq!(wire(host), [(Flags::FIN | Flags::ACK, isn)]);
    let ack = Segment::new(&peer(port), Flags::ACK, 1_001, isn + 1, 0, 65_535);
    host.handle(at(20), &ack);
    assert_eq!(wire(host), []);
    assert_eq!(host.state(&server_tuple(port)), State::FinWait2);
    isn + 1
}

/// What the server sent, as (flags, seq) pairs.
fn wire(host: &mut Host) -> Vec<(Flags, u32)> {
    host.transmits().map(|s| (s.flags, s.seq)).collect()
}

#[test]
fn past_sixty_seconds_the_full_socket_comes_first_then_the_mini_socket() {
    let mut host = server(90, |_| {});
    orphan_in_fin_wait_2(&mut host, 40_000);
    // The full socket: an orphan, so held to tcp_max_orphans.
    assert_eq!(host.orphans(), 1);

    // 30 s on (90 - 60) its keepalive timer makes the mini-socket, which is
    // no orphan.
    host.handle_timeout(at(20 + 29_998));
    assert_eq!(host.orphans(), 1);
    host.handle_timeout(at(20 + 30_002));
    assert_eq!(host.orphans(), 0);
    assert_eq!(host.state(&server_tuple(40_000)), State::FinWait2);

    // The mini-socket lives another 30 s: gone at 60 s, not 90 s.
    times_out_silently_after(&mut host, 60_000);
    assert_eq!(host.stats().timeouts_fin_wait_2, 1);
}

/// The orphan of [`orphan_in_fin_wait_2`] (port 40000) is still there just
/// before `ms` after its FIN-WAIT-2 began and has timed out, silently, just after.
fn times_out_silently_after(host: &mut Host, ms: u64) {
    host.handle_timeout(at(20 + ms - 2));
    assert_eq!(closed(host), []);
    host.handle_timeout(at(20 + ms + 2));
    assert_eq!(
        closed(host),
        [(40_000, State::FinWait2, CloseReason::FinWait2Timeout)]
    );
    assert_eq!(wire(host), []);
}

#[test]
fn at_sixty_seconds_or_less_the_mini_socket_comes_at_once() {
    let mut host = server(60, |_| {});
    orphan_in_fin_wait_2(&mut host, 40_000);
    assert_eq!(host.orphans(), 0);
    times_out_silently_after(&mut host, 60_000);
}

#[test]
fn the_rfc_profile_keeps_one_mini_socket_for_the_whole_timeout() {
    let mut host = server(90, |c| c.fin_wait2_keepalive = false);
    orphan_in_fin_wait_2(&mut host, 40_000);
    assert_eq!(host.orphans(), 0);
    times_out_silently_after(&mut host, 90_000);
}

#[test]
fn an_in_window_rst_draws_a_challenge_ack_from_the_full_socket_and_kills_the_mini_socket() {
    let mut host = server(90, |_| {});
    let snd_nxt = orphan_in_fin_wait_2(&mut host, 40_000);
    // In the window, not at rcv_nxt (1001): RFC 5961 §3.2 on the full socket.
    let rst = Segment::new(&peer(40_000), Flags::RST, 1_101, 0, 0, 0);
    host.handle(at(1_000), &rst);
    assert_eq!(wire(&mut host), [(Flags::ACK, snd_nxt)]);
    assert_eq!(host.state(&server_tuple(40_000)), State::FinWait2);

    // The mini-socket takes any RST in the window (tcp_timewait_state_process).
    host.handle_timeout(at(31_000));
    host.handle(at(31_000), &rst);
    assert_eq!(wire(&mut host), []);
    assert_eq!(
        closed(&mut host),
        [(40_000, State::FinWait2, CloseReason::Reset)]
    );
}

#[test]
fn the_peers_fin_in_the_full_part_enters_time_wait() {
    let mut host = server(90, |_| {});
    let snd_nxt = orphan_in_fin_wait_2(&mut host, 40_000);
    let fin = Segment::new(
        &peer(40_000),
        Flags::FIN | Flags::ACK,
        1_001,
        snd_nxt,
        0,
        65_535,
    );
    host.handle(at(5_000), &fin);
    assert_eq!(wire(&mut host), [(Flags::ACK, snd_nxt)]);
    assert_eq!(host.state(&server_tuple(40_000)), State::TimeWait);
    assert_eq!(host.orphans(), 0);
    // TIME-WAIT's 60 s from the FIN, not what was left of FIN-WAIT-2.
    host.handle_timeout(at(5_000 + 59_998));
    assert_eq!(host.state(&server_tuple(40_000)), State::TimeWait);
    host.handle_timeout(at(5_000 + 60_002));
    assert_eq!(
        closed(&mut host),
        [(40_000, State::TimeWait, CloseReason::TimeWaitExpired)]
    );
}

#[test]
fn the_full_part_takes_no_bucket_and_finds_none_free_at_its_end() {
    // One bucket, taken by a first connection's TIME-WAIT at 5 s.
    let mut host = server(90, |c| c.max_tw_buckets = 1);
    let first = orphan_in_fin_wait_2(&mut host, 40_000);
    let fin = Segment::new(
        &peer(40_000),
        Flags::FIN | Flags::ACK,
        1_001,
        first,
        0,
        65_535,
    );
    host.handle(at(5_000), &fin);
    host.transmits().for_each(drop);
    assert_eq!(host.state(&server_tuple(40_000)), State::TimeWait);

    // The second orphan's FIN-WAIT-2 needs no bucket while it is a full socket.
    let isn = open(&mut host, 40_001);
    host.close(at(6_000), server_tuple(40_001)).unwrap();
    let ack = Segment::new(&peer(40_001), Flags::ACK, 1_001, isn + 1, 0, 65_535);
    host.handle(at(6_000), &ack);
    host.transmits().for_each(drop);
    assert_eq!(host.state(&server_tuple(40_001)), State::FinWait2);
    assert_eq!(host.stats().time_wait_overflow, 0);

    // At its keepalive timer the mini-socket finds the one bucket taken: the
    // connection is done, silently (`tcp_time_wait`, TCPTimeWaitOverflow).
    host.handle_timeout(at(6_000 + 30_002));
    assert_eq!(wire(&mut host), []);
    assert_eq!(
        closed(&mut host),
        [(40_001, State::FinWait2, CloseReason::TimeWaitOverflow)]
    );
    assert_eq!(host.stats().time_wait_overflow, 1);
}

/// Two orphans in FIN-WAIT-1, against a limit of one, and a third end shut
/// down (port 40002), its FIN acknowledged at 20 ms: FIN-WAIT-2, no orphan.
/// Returns that end's snd_nxt.
fn two_orphans_and_a_shut_down_end(host: &mut Host) -> u32 {
    for port in [40_000, 40_001] {
        closing(host, port);
    }
    let isn = open(host, 40_002);
    host.shutdown(at(10), server_tuple(40_002)).unwrap();
    let ack = Segment::new(&peer(40_002), Flags::ACK, 1_001, isn + 1, 0, 65_535);
    host.handle(at(20), &ack);
    host.transmits().for_each(drop);
    assert_eq!(host.state(&server_tuple(40_002)), State::FinWait2);
    assert_eq!(host.orphans(), 2);
    isn + 1
}

#[test]
fn close_after_shutdown_keeps_a_full_socket_held_to_the_orphan_limit() {
    let mut host = server(90, |c| c.max_orphans = 1);
    let snd_nxt = two_orphans_and_a_shut_down_end(&mut host);

    // Its close() past the tick: the full socket stays, so tcp_close's
    // tcp_check_oom resets it (TCPAbortOnMemory).
    host.close(at(150), server_tuple(40_002)).unwrap();
    assert_eq!(wire(&mut host), [(Flags::RST | Flags::ACK, snd_nxt)]);
    assert_eq!(
        closed(&mut host),
        [(40_002, State::FinWait2, CloseReason::TooManyOrphans)]
    );
    assert_eq!(host.stats().abort_on_memory, 1);
}

#[test]
fn close_after_shutdown_at_sixty_seconds_makes_a_mini_socket_past_the_orphan_limit() {
    let mut host = server(60, |c| c.max_orphans = 1);
    two_orphans_and_a_shut_down_end(&mut host);

    // tcp_close makes the mini-socket and skips the orphan check.
    host.close(at(150), server_tuple(40_002)).unwrap();
    assert_eq!(wire(&mut host), []);
    assert_eq!(closed(&mut host), []);
    assert_eq!(host.state(&server_tuple(40_002)), State::FinWait2);
    assert_eq!(host.stats().abort_on_memory, 0);
}

#[test]
fn a_fin_resent_until_the_rto_backs_off_past_17_seconds_stretches_the_default() {
    // The default 60 s tcp_fin_timeout, but a FIN resent seven times: the
    // RTO has backed off to 200 ms x 2^7 = 25.6 s, and tcp_fin_time() is
    // 3.5 of it, 89.6 s. The full socket stays 29.6 s, then the mini-socket
    // lives max(29.6 s, 89.6 s): gone 119.2 s after the ACK.
    let mut host = server(60, |_| {});
    let isn = closing(&mut host, 40_000);
    // Wake when the host asks to (the wheel may ask early, to cascade)
    // until the FIN has gone out seven times more.
    let (mut now, mut resent) = (10, 0);
    while resent < 7 {
        let deadline = host.poll_timeout().expect("the FIN's timer");
        now = deadline.as_micros().div_ceil(1000);
        host.handle_timeout(at(now));
        let sent = wire(&mut host);
        if !sent.is_empty() {
            assert_eq!(sent, [(Flags::FIN | Flags::ACK, isn)]);
            resent += 1;
        }
    }
    let ack = Segment::new(&peer(40_000), Flags::ACK, 1_001, isn + 1, 0, 65_535);
    host.handle(at(now), &ack);
    assert_eq!(host.orphans(), 1);
    host.handle_timeout(at(now + 29_598));
    assert_eq!(host.orphans(), 1);
    host.handle_timeout(at(now + 29_602));
    assert_eq!(host.orphans(), 0);
    host.handle_timeout(at(now + 119_198));
    assert_eq!(closed(&mut host), []);
    // Each of the two timers may fire a tick late.
    host.handle_timeout(at(now + 119_204));
    assert_eq!(
        closed(&mut host),
        [(40_000, State::FinWait2, CloseReason::FinWait2Timeout)]
    );
}

#[test]
fn an_out_of_order_fin_on_the_ack_of_ours_resets_the_orphan() {
    // tcp_rcv_state_process: "Receive out of order FIN after close()".
    let mut host = server(90, |_| {});
    let isn = closing(&mut host, 40_000);
    let fin = Segment::new(
        &peer(40_000),
        Flags::FIN | Flags::ACK,
        1_101,
        isn + 1,
        0,
        65_535,
    );
    host.handle(at(20), &fin);
    assert_eq!(wire(&mut host), [(Flags::RST, isn + 1)]);
    assert_eq!(
        closed(&mut host),
        [(40_000, State::FinWait1, CloseReason::Aborted)]
    );
    assert_eq!(host.stats().abort_on_data, 1);
    assert_eq!(host.orphans(), 0);
}
