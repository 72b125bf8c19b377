use super::*;

const APP_TIMEOUT: f64 = 120.0;

fn rto(m: f64) -> f64 {
    m + (2.0 * m).max(0.2)
}

#[test]
fn no_loss_is_one_round_trip() {
    let cfg = Config::default();
    let o = enumerate(&cfg, 0.0, 0.005, &rto, APP_TIMEOUT).completed;
    assert_eq!(o.len(), 1);
    let o = o[0];
    assert!((o.syn_sent - 0.010).abs() < 1e-12);
    assert!((o.syn_received - 0.010).abs() < 1e-12);
    assert_eq!(o.server_waiting, 0.0);
    assert!((o.client_rto - 0.21).abs() < 1e-12);
}

/// At 10 % loss the first attempt fails with 1 - 0.9² = 0.19, but when only the
/// SYN-ACK was lost the retransmitted SYN draws an immediate SYN-ACK: the
/// second round fails less often than 0.19. It reaches the server as its
/// timer would fire, and restarts it (`tcp_check_req`), so one SYN-ACK goes
/// then, not two: 0.028 fail twice, where two copies gave 0.021.
#[test]
fn the_retransmitted_syn_races_the_server_timer() {
    let cfg = Config {
        timestamps: false,
        ..Config::default()
    };
    let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
    let w: f64 = o.iter().map(|o| o.weight).sum();
    assert!((w - 1.0).abs() < 1e-9);
    let late = |after: f64| -> f64 {
        o.iter()
            .filter(|o| o.syn_sent > after)
            .map(|o| o.weight)
            .sum()
    };
    assert!((late(0.5) - 0.19).abs() < 1e-6, "{}", late(0.5));
    let second = late(1.5);
    assert!(second > 0.025 && second < 0.031, "{second}");
    // A client that retransmitted its SYN starts with the 3 s fallback,
    // not 1 s doubled.
    assert!(o
        .iter()
        .filter(|o| o.syn_sent > 0.5 && o.syn_sent < 1.5)
        .all(|o| (o.client_rto - 3.0).abs() < 1e-12));
}

/// The client's SYNs go at 0, 1, 2, 3, 4 and 5 s (`syn_linear_timeouts`
/// 4), not at 0, 1 and 3 s: at 10 % loss the third SYN, at 2 s, adds to
/// the handshakes that end just after 2 s (where the server's SYN-ACK
/// timer ends some anyway, 1 s after the second SYN opened it) at least
/// those whose first two SYNs were lost and whose third was answered,
/// 0.1² × 0.9².
#[test]
fn syns_keep_the_initial_rto_for_four_retransmissions() {
    let share_near_2_s = |cfg: &Config| -> f64 {
        enumerate(cfg, 0.1, 0.005, &rto, APP_TIMEOUT)
            .completed
            .iter()
            .filter(|o| o.syn_sent > 1.5 && o.syn_sent < 2.5)
            .map(|o| o.weight)
            .sum()
    };
    let linux = Config::default();
    let doubling = Config {
        syn_linear_timeouts: 0,
        ..linux.clone()
    };
    let (near, without) = (share_near_2_s(&linux), share_near_2_s(&doubling));
    assert!(near - without > 0.0081, "{near} against {without}");
}

/// Without timestamps a SYN-ACK resent for the client's retransmitted SYN
/// is not timed either: when only the first SYN-ACK was lost and the SYN
/// at 1 s drew the answer, neither end has a sample, and both go on with
/// 3 s (`tcp_init_metrics`).
#[test]
fn a_syn_ack_resent_for_a_duplicate_syn_leaves_no_sample() {
    let cfg = Config {
        timestamps: false,
        ..Config::default()
    };
    let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
    let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
    let answered: Vec<_> = o
        .iter()
        .filter(|o| near(o.syn_sent, 1.01) && near(o.syn_received, 1.01))
        .collect();
    assert!(!answered.is_empty());
    for o in answered {
        assert_eq!((o.server_m, o.client_m), (None, None));
        assert_eq!((o.server_rto, o.client_rto), (3.0, 3.0));
    }
}

/// With timestamps the SYN-ACK's TSecr samples the client after a
/// retransmitted SYN: m = 10 ms when the first SYN was lost (its second copy
/// opened the server), 1.01 s when only the SYN-ACK was (the server echoes
/// the first SYN's TSval).
#[test]
fn timestamps_sample_the_copy_the_server_recorded() {
    let o = enumerate(&Config::default(), 0.1, 0.005, &rto, APP_TIMEOUT).completed;
    let second: Vec<_> = o
        .iter()
        .filter(|o| o.syn_sent > 0.5 && o.syn_sent < 1.5)
        .collect();
    assert!(!second.is_empty());
    for o in &second {
        let m = o.client_m.expect("a TSecr sample");
        let near = |x: f64| (m - x).abs() < 1e-9;
        assert!(near(0.01) || near(1.01), "{m}");
        assert!((o.client_rto - rto(m)).abs() < 1e-12);
    }
    assert!(second
        .iter()
        .any(|o| (o.client_rto - rto(1.01)).abs() < 1e-9));
    assert!(second
        .iter()
        .any(|o| (o.client_rto - rto(0.01)).abs() < 1e-9));
}

/// With `tcp_synack_retries` 1 a request opened at 5 ms sees the client's
/// SYNs at 1, 2, 3, 4 and 5 s restart its timer: its first expiry is at
/// 6 s (a SYN-ACK), and the SYN at 7 s restarts the next, 2 s, to 9 s,
/// where it is dropped. A client whose SYN-ACKs were all lost until then
/// is answered at 11 s by a new request: 9 s of SYN-RECEIVED, then 10 ms
/// when the request gets through at once. None of those spends 11.01 s
/// in one request, as before the drop was modelled.
#[test]
fn a_syn_after_the_drop_opens_a_new_request() {
    let cfg = Config {
        synack_retries: 1,
        ..Config::default()
    };
    let o = enumerate(&cfg, 0.1, 0.005, &rto, APP_TIMEOUT).completed;
    let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
    let at_11_s: Vec<f64> = o
        .iter()
        .filter(|o| near(o.syn_sent, 11.01) && near(o.client_waiting, 0.005))
        .map(|o| o.syn_received)
        .collect();
    assert!(at_11_s.iter().any(|&s| near(s, 9.01)), "{at_11_s:?}");
    assert!(!at_11_s.iter().any(|&s| near(s, 11.01)), "{at_11_s:?}");
}

/// A failed handshake held SYN-RECEIVED until its request was dropped: at
/// least 1 s with 0 retries (none resent), 3 s with 1 and 7 s with 2, and
/// longer where the client's SYNs restarted the timer (or a second request
/// opened). At 30 % loss fewer retries fail far more handshakes: a client
/// whose request copies are all lost until the drop meets an RST.
#[test]
fn a_dropped_request_fails_the_handshake() {
    let failed = |retries: u8| {
        let cfg = Config {
            synack_retries: retries,
            ..Config::default()
        };
        enumerate(&cfg, 0.3, 0.005, &rto, APP_TIMEOUT).failed
    };
    let (zero, one, two, five) = (failed(0), failed(1), failed(2), failed(5));
    assert!(zero.per_completed > one.per_completed, "{zero:?} {one:?}");
    let held = |f: Failed| f.syn_received / f.per_completed;
    assert!((1.0..held(one)).contains(&held(zero)), "{zero:?}");
    assert!((3.0..held(two)).contains(&held(one)), "{one:?}");
    assert!(held(two) >= 7.0, "{two:?}");
    assert!(
        one.per_completed > 0.05 && two.per_completed > 0.01,
        "{one:?} {two:?}"
    );
    assert!(five.per_completed < 0.001, "{five:?}");
}
