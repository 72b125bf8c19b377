//! Tests of how the attacker tells its replies apart and which kind a kill goes to.

use super::*;

#[test]
fn replies_to_made_up_tuples_stay_with_the_attacker_and_name_their_kind() {
    let kinds = [AttackKind::BlindRst, AttackKind::FinUnknown];
    let mut a = Attacker::new(&kinds, 1.0, 3, CloseMode::Server, &Default::default());
    let made_up = Tuple {
        local_ip: ATTACK_NET | 1 << 8 | 3,
        remote_ip: u32::from_be_bytes(SERVER_IP),
        local_port: 5000,
        remote_port: SERVER_PORT,
    };
    let from_server = |t: &Tuple, f| Segment::new(&t.reversed(), f, 1, 2, 0, 0);
    assert!(a.intercept(&from_server(&made_up, Flags::RST)));
    assert!(a.intercept(&from_server(&made_up, Flags::SYN | Flags::ACK)));
    let client = Tuple::new([10, 128, 0, 1], 40_000, SERVER_IP, SERVER_PORT);
    assert!(!a.intercept(&from_server(&client, Flags::RST)));
    let r = report(&[a.counts().collect()]);
    assert_eq!(r["fin-unknown"]["rst_replies"], 1);
    assert_eq!(r["blind-rst"]["rst_replies"], 0);
    assert_eq!(a.other_replies(), 1);
}

#[test]
fn a_kill_after_several_kinds_goes_to_the_likeliest_killer() {
    let kinds = [
        AttackKind::BlindRst,
        AttackKind::InwindowRst,
        AttackKind::SynLastack,
    ];
    let mut a = Attacker::new(&kinds, 1.0, 0, CloseMode::Server, &Default::default());
    let t = |port| Tuple::new([10, 128, 0, 1], port, SERVER_IP, SERVER_PORT);
    // In-window RST first, blind RST last: the in-window one killed.
    a.attacked.insert(t(1), 0b011);
    a.attacked.insert(t(2), 0b001);
    a.attacked.insert(t(3), 0b101);
    for port in 1..=3 {
        a.closed(Time::ZERO, t(port), State::Established, CloseReason::Reset);
    }
    let r = report(&[a.counts().collect()]);
    assert_eq!(r["inwindow-rst"]["killed"], 1);
    assert_eq!(r["blind-rst"]["killed"], 2);
    assert_eq!(r["syn-lastack"]["killed"], 0);
    assert!(a.attacked.is_empty());
}

/// A client TIME-WAIT ended by an RST after the server's FIN came to it again
/// was a finished teardown, not a kill: under load the server's retransmitted
/// FIN draws a second ACK, which the server, closed by the first, answers with
/// an RST at rcv_nxt (seen in the e2e attack run on a loaded machine, where it
/// booked 9 blind-RST kills). Without the FIN again the RST is a kill: the
/// server's LAST-ACK died with its FIN already on its way.
#[test]
fn an_rst_that_ends_the_clients_time_wait_after_a_second_fin_is_no_kill() {
    let kinds = [AttackKind::BlindRst];
    let mut a = Attacker::new(&kinds, 1.0, 0, CloseMode::Server, &Default::default());
    let t = |port| Tuple::new([10, 128, 0, 1], port, SERVER_IP, SERVER_PORT);
    for port in 1..=3 {
        a.attacked.insert(t(port), 0b1);
    }
    let fin = Segment::new(&t(1).reversed(), Flags::FIN | Flags::ACK, 7, 9, 0, 0);
    a.observe(&fin, State::TimeWait);
    a.closed(Time::ZERO, t(1), State::TimeWait, CloseReason::Reset);
    a.closed(Time::ZERO, t(2), State::TimeWait, CloseReason::Reset);
    a.closed(Time::ZERO, t(3), State::FinWait2, CloseReason::Reset);
    let r = report(&[a.counts().collect()]);
    assert_eq!(r["blind-rst"]["killed"], 2);
    assert!(a.attacked.is_empty() && a.fin_again.is_empty());
}
