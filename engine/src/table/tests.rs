use super::*;

pub(super) fn tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

/// An ESTABLISHED entry on `tuple`, ISS `iss` (the table reads no RTO).
pub(super) fn conn_on(tuple: Tuple, iss: u32) -> Conn {
    let t = crate::conn::TimeoutsUs::new(&crate::Config::default());
    Conn::new(tuple, State::Established, crate::seq::Seq(iss), &t)
}

pub(super) fn conn(port: u16) -> Conn {
    conn_on(tuple(port), port as u32)
}

/// An entry whose application closed as it entered TIME-WAIT.
pub(super) fn tw(port: u16, expires_ms: u32) -> TwEntry {
    TwEntry {
        tuple: tuple(port),
        expires_ms,
        entry_ms: expires_ms.wrapping_sub(TIME_WAIT_MS),
        close_ms: expires_ms.wrapping_sub(TIME_WAIT_MS),
        ..TwEntry::default()
    }
}

#[test]
fn insert_find_remove() {
    let mut t = Table::new(9);
    let idx: Vec<u32> = (0..10_000).map(|p| t.insert_conn(conn(p))).collect();
    assert_eq!(t.len(), 10_000);
    for p in (0..10_000).step_by(7) {
        assert_eq!(t.find(&tuple(p)), Some(Found::Conn(idx[p as usize])));
    }
    assert_eq!(t.find(&tuple(20_000)), None);
    let c = t.remove_conn(idx[5]);
    assert_eq!(c.tuple, tuple(5));
    assert_eq!(t.find(&tuple(5)), None);
    // The freed slot is reused.
    assert_eq!(t.insert_conn(conn(5)), idx[5]);
}

#[test]
fn a_connection_past_the_endpoint_limit_is_spilled_and_kept_out_of_time_wait() {
    let mut t = Table::new(17);
    // One endpoint per local address: fill the table's 16,383.
    let on = |ip: u32, port: u16| Tuple {
        local_ip: ip,
        remote_ip: 0x0a09_0002,
        local_port: 80,
        remote_port: port,
    };
    for ip in 0..crate::endpoint::MAX as u32 {
        t.insert_conn(conn_on(on(ip, 1), 0));
    }
    let rare_before = t.e.conn_rare.len();
    // A new endpoint: spilled, yet found, read, written and removed as any.
    let spilled = on(1 << 30, 2);
    let i = t.insert_conn(conn_on(spilled, 0));
    assert_eq!(t.e.conn_rare.len(), rare_before + 1);
    assert_eq!(t.find(&spilled), Some(Found::Conn(i)));
    let mut c = t.conn(i);
    assert_eq!(c.tuple, spilled);
    c.last_oow_ms = 5;
    t.set_conn(i, &c);
    c.last_oow_ms = 0;
    t.set_conn(i, &c);
    assert_eq!(t.conn(i).tuple, spilled);
    // TIME-WAIT cannot name it: the host's overflow path takes it.
    let mut e = tw(0, 1_000);
    e.tuple = spilled;
    assert_eq!(t.conn_to_time_wait(i, e), None);
    assert_eq!(t.find(&spilled), Some(Found::Conn(i)));
    // A known endpoint with a new peer still packs.
    let known = on(7, 3);
    let k = t.insert_conn(conn_on(known, 0));
    assert!(t
        .conn_to_time_wait(
            k,
            TwEntry {
                tuple: known,
                ..tw(0, 1_000)
            }
        )
        .is_some());
    assert_eq!(t.remove_conn(i).tuple, spilled);
    assert_eq!(t.find(&spilled), None);
    assert_eq!(t.e.conn_rare.len(), rare_before);
}

#[test]
fn survives_growth_with_mixed_references() {
    let mut t = Table::new(3);
    for p in 0..50_000u16 {
        let i = t.insert_conn(conn(p));
        if p % 2 == 0 {
            t.conn_to_time_wait(i, tw(p, 10)).expect("room");
        }
    }
    for p in 0..50_000u16 {
        let f = t.find(&tuple(p)).expect("present");
        assert_eq!(matches!(f, Found::TimeWait(_)), p % 2 == 0);
    }
    let mut n = 0;
    while t.pop_expired_time_wait(10).is_some() {
        n += 1;
    }
    assert_eq!(n, 25_000);
    assert_eq!(t.len(), 25_000);
    assert_eq!(t.conn_indices().count(), 25_000);
}

/// An insert under the endpoint the one before was packed under names its
/// entry from the table's memo (`new_ep`), others by interning: entries
/// under endpoints in turn, of both sides, are found and read back whole.
#[test]
fn inserts_under_endpoints_in_turn_name_their_entries() {
    let mut t = Table::new(23);
    let ends = [
        (1, 80, State::Established),
        (1, 80, State::SynSent),
        (2, 80, State::Established),
        (1, 443, State::Established),
    ];
    let timeouts = crate::conn::TimeoutsUs::new(&crate::Config::default());
    let mut made = Vec::new();
    for k in 0..200u16 {
        let (ip, port, state) = ends[usize::from(k / 3) % ends.len()];
        let tuple = match state {
            State::SynSent => Tuple {
                local_ip: ip,
                remote_ip: 0x0a09_0002,
                local_port: 30_000 + k,
                remote_port: port,
            },
            _ => Tuple {
                local_ip: ip,
                remote_ip: 0x0a09_0002 + u32::from(k),
                local_port: port,
                remote_port: 40_000 + k,
            },
        };
        let c = Conn::new(tuple, state, crate::seq::Seq(0), &timeouts);
        made.push((t.insert_conn(c), tuple));
    }
    for (i, tuple) in made {
        assert_eq!(t.find(&tuple), Some(Found::Conn(i)));
        assert_eq!(t.conn(i).tuple, tuple);
    }
}
