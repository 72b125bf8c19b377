use super::super::tests::{conn, tuple, tw};
use super::super::Found;
use super::*;
use std::time::Duration;

#[test]
fn time_wait_lifecycle_and_stale_slots() {
    let mut t = Table::new(1);
    let a = t.insert_conn(conn(1));
    let b = t.insert_conn(conn(2));
    let pa = t.conn_to_time_wait(a, tw(1, 100)).expect("room");
    let pb = t.conn_to_time_wait(b, tw(2, 200)).expect("room");
    assert_eq!(t.find(&tuple(1)), Some(Found::TimeWait(pa)));
    assert_eq!(t.time_wait_len(), 2);
    // Restarting 1 moves it behind 2.
    let pa2 = t.restart_time_wait(pa, 300, false);
    assert_eq!(t.find(&tuple(1)), Some(Found::TimeWait(pa2)));
    assert_eq!(t.pop_expired_time_wait(150), None);
    assert_eq!(
        t.pop_expired_time_wait(250).map(|e| e.tuple),
        Some(tuple(2))
    );
    assert_eq!(t.pop_expired_time_wait(299), None);
    assert_eq!(
        t.pop_expired_time_wait(300).map(|e| e.tuple),
        Some(tuple(1))
    );
    assert!(t.is_empty());
    assert_eq!(t.time_wait_len(), 0);
    let _ = pb;
}

/// Two tables alike: 3,000 entries, 10 per millisecond (expiring 1,000 to
/// 1,299), every third removed and every seventh still live restarted,
/// in order after the newest (1,300 to 1,449), as the engine restarts one:
/// its new expiry is now + TIME-WAIT, never before one already pushed
/// ([`TwRing::push`]). Every fifth restarted one is then removed too, so
/// stale slots lie among live ones at both ends, expired and not.
fn tables_with_stale_slots() -> (Table, Table) {
    let fill = || {
        let mut t = Table::new(3);
        let mut pos = Vec::new();
        for p in 0..3_000u16 {
            let i = t.insert_conn(conn(p));
            let e = tw(p, 1_000 + p as u32 / 10);
            pos.push(t.conn_to_time_wait(i, e).expect("room"));
        }
        for p in (0..3_000u16).step_by(3) {
            t.remove_time_wait(pos[p as usize], &tuple(p));
        }
        let restarted = (1..3_000u16).step_by(7).filter(|p| p % 3 != 0);
        for (k, p) in restarted.enumerate() {
            let q = t.restart_time_wait(pos[p as usize], 1_300 + p as u32 / 20, false);
            if k % 5 == 0 {
                t.remove_time_wait(q, &tuple(p));
            }
        }
        t
    };
    (fill(), fill())
}

#[test]
fn expiry_in_batches_pops_as_single_pops_do() {
    for size in [1, 2, 16, 64] {
        let (mut one, mut batched) = tables_with_stale_slots();
        for now_ms in [999, 1_000, 1_001, 1_150, 1_150, 1_299, 1_300, 1_400, 1_449] {
            let mut want = Vec::new();
            while let Some(e) = one.pop_expired_time_wait(now_ms) {
                want.push(e);
            }
            let mut got = Vec::new();
            loop {
                let n = batched.expire_time_wait(now_ms, size, |e| got.push(e));
                if n < size {
                    break;
                }
            }
            assert_eq!(got, want, "batch {size} at {now_ms}");
            assert!(want.iter().all(|e| e.expires_ms <= now_ms));
            // The same ring left behind: the same front, live or stale.
            assert_eq!(
                batched.e.tw.front().map(|f| f.0),
                one.e.tw.front().map(|f| f.0)
            );
            assert_eq!(batched.time_wait_len(), one.time_wait_len());
            assert_eq!(batched.len(), one.len());
        }
        assert_eq!(batched.time_wait_len(), 0);
    }
}

#[test]
fn compaction_drops_stale_slots_and_keeps_expiry_order() {
    let mut t = Table::new(5);
    let n = 20_000u16;
    let mut pos = Vec::new();
    for p in 0..n {
        let i = t.insert_conn(conn(p));
        pos.push(
            t.conn_to_time_wait(i, tw(p, 1_000 + p as u32))
                .expect("room"),
        );
    }
    // Remove every other entry and restart a quarter: lots of stale slots.
    for p in (0..n).step_by(2) {
        t.remove_time_wait(pos[p as usize], &tuple(p));
    }
    for p in (1..n).step_by(4) {
        pos[p as usize] = t.restart_time_wait(pos[p as usize], 50_000 + p as u32, false);
    }
    let before = t.heap_bytes();
    t.compact_time_wait();
    assert!(t.heap_bytes() < before, "{} !< {before}", t.heap_bytes());
    assert_eq!(t.time_wait_len(), n as usize / 2);
    for p in 0..n {
        let found = t.find(&tuple(p));
        assert_eq!(found.is_some(), p % 2 == 1, "{p}");
        if let Some(Found::TimeWait(q)) = found {
            assert_eq!(t.time_wait(q).tuple, tuple(p));
        }
    }
    // Expiry order survives: the unrestarted odd entries first, by deadline.
    let mut last = 0;
    let mut count = 0;
    while let Some(e) = t.pop_expired_time_wait(u32::MAX / 2) {
        assert!(e.expires_ms >= last);
        last = e.expires_ms;
        count += 1;
    }
    assert_eq!(count, n as usize / 2);
    assert!(t.is_empty());
}

#[test]
fn last_oow_follows_its_entry_and_leaves_with_it() {
    let mut t = Table::new(7);
    let mut pos = Vec::new();
    for p in 0..4_000u16 {
        let i = t.insert_conn(conn(p));
        let mut e = tw(p, 1_000 + p as u32);
        // Every third enters TIME-WAIT with one (an orphan's FIN-WAIT-2).
        e.last_oow_ms = if p % 3 == 0 { 10 + p as u32 } else { 0 };
        pos.push(t.conn_to_time_wait(i, e).expect("room"));
    }
    // Every fifth rate-limits an ACK now; every seventh restarts; every
    // second goes.
    for p in (0..4_000u16).step_by(5) {
        t.set_time_wait_oow(pos[p as usize], 50_000 + p as u32);
    }
    for p in (0..4_000u16).step_by(7) {
        pos[p as usize] = t.restart_time_wait(pos[p as usize], 60_000 + p as u32, false);
    }
    for p in (0..4_000u16).step_by(2) {
        t.remove_time_wait(pos[p as usize], &tuple(p));
    }
    t.compact_time_wait();
    let want = |p: u16| match (p % 5, p % 3) {
        (0, _) => 50_000 + p as u32,
        (_, 0) => 10 + p as u32,
        _ => 0,
    };
    for p in (1..4_000u16).step_by(2) {
        let Some(Found::TimeWait(q)) = t.find(&tuple(p)) else {
            panic!("{p} not in TIME-WAIT");
        };
        let e = t.time_wait(q);
        assert_eq!((e.tuple, e.last_oow_ms), (tuple(p), want(p)), "{p}");
    }
    assert_eq!(
        t.e.tw_rare.len(),
        (1..4_000u16).step_by(2).filter(|&p| want(p) != 0).count()
    );
    while t.pop_expired_time_wait(u32::MAX / 2).is_some() {}
    assert_eq!(t.e.tw_rare.len(), 0);
}

#[test]
fn close_stamps_come_back_exactly_near_or_far() {
    // TIME-WAIT lasts 1 s here: offsets count back from expiry - 1 s.
    let mut t = Table::new(11).with_time_wait(Duration::from_secs(1));
    let mut pos = Vec::new();
    // close() from 0 ms to 1000 s before the entry started, and one
    // "after" it (a stamp from another clock: still exact).
    let backs = [0u32, 1, 65_534, 65_535, 65_536, 1_000_000, u32::MAX];
    for (p, &back) in backs.iter().enumerate() {
        let i = t.insert_conn(conn(p as u16));
        let mut e = tw(p as u16, 5_000_000);
        e.entry_ms = 5_000_000 - 1_000;
        e.close_ms = (5_000_000 - 1_000u32).wrapping_sub(back);
        pos.push(t.conn_to_time_wait(i, e).expect("room"));
        assert_eq!(t.time_wait(pos[p]).close_ms, e.close_ms, "{back}");
    }
    // Only the far ones keep their stamp beside the ring.
    assert_eq!(t.e.tw_rare.len(), 4);
    // A restart 60 s later moves the start: near ones may go far (and
    // the stamp from after the start comes near), and every stamp
    // survives the move and a compaction.
    for (p, &back) in backs.iter().enumerate() {
        pos[p] = t.restart_time_wait(pos[p], 5_060_000, false);
        let want = (5_000_000 - 1_000u32).wrapping_sub(back);
        assert_eq!(t.time_wait(pos[p]).close_ms, want, "{back}");
    }
    assert_eq!(t.e.tw_rare.len(), 4);
    t.stale = 1 << 20;
    t.compact_time_wait();
    for (p, &back) in backs.iter().enumerate() {
        let Some(Found::TimeWait(q)) = t.find(&tuple(p as u16)) else {
            panic!("{p} not in TIME-WAIT");
        };
        let want = (5_000_000 - 1_000u32).wrapping_sub(back);
        assert_eq!(t.time_wait(q).close_ms, want);
    }
    assert_eq!(t.e.tw_rare.len(), 4);
}

/// `tw_entry_stamp`: an entry's start is its expiry less the TIME-WAIT
/// length, stored nowhere, until its timer restarts; then the first start
/// is kept beside the ring, through more restarts and a compaction, and
/// leaves with the entry. Where no takeover reads it, a restart starts it
/// afresh and nothing is stored.
#[test]
fn the_entry_stamp_survives_restarts() {
    let mut t = Table::new(5);
    let (i, j) = (t.insert_conn(conn(1)), t.insert_conn(conn(2)));
    let a = t.conn_to_time_wait(i, tw(1, 61_000)).expect("room");
    let b = t.conn_to_time_wait(j, tw(2, 61_500)).expect("room");
    assert_eq!(
        (t.time_wait(a).entry_ms, t.time_wait(b).entry_ms),
        (1_000, 1_500)
    );
    assert_eq!(t.e.tw_rare.len(), 0);

    let a = t.restart_time_wait(a, 62_000, true);
    let a = t.restart_time_wait(a, 63_000, true);
    let b = t.restart_time_wait(b, 62_500, false);
    assert_eq!(t.time_wait(b).entry_ms, 2_500);
    assert_eq!(t.time_wait(a).expires_ms, 63_000);
    assert_eq!(t.time_wait(a).entry_ms, 1_000);
    assert_eq!(t.e.tw_rare.len(), 1);
    t.stale = 1 << 20;
    t.compact_time_wait();
    let entry = |t: &Table, p| match t.find(&tuple(p)) {
        Some(Found::TimeWait(q)) => t.time_wait(q).entry_ms,
        other => panic!("{p}: {other:?}"),
    };
    assert_eq!((entry(&t, 1), entry(&t, 2)), (1_000, 2_500));
    while t.pop_expired_time_wait(u32::MAX / 2).is_some() {}
    assert_eq!(t.e.tw_rare.len(), 0);
}
