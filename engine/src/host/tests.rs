use super::*;

/// A host sized for `n` connections reserves a wheel node for each, up to
/// `WHEEL_RESERVE`; sized for none, it reserves none. The reserve is real:
/// that many timers go in without the node slab growing.
#[test]
fn with_capacity_reserves_wheel_nodes_up_to_the_cap() {
    for (n, reserved) in [(0, 0), (1_000, 1_000), (WHEEL_RESERVE * 2, WHEEL_RESERVE)] {
        let mut h = Host::with_capacity(Config::default(), n);
        let cap = h.wheel.node_capacity();
        assert!(
            cap >= reserved && cap < 2 * reserved.max(1),
            "{n} connections: {cap} nodes"
        );
        let before = h.wheel.heap_bytes();
        for i in 0..reserved {
            h.wheel.insert(1 + i as u64, i as u32);
        }
        assert_eq!(
            h.wheel.heap_bytes(),
            before,
            "{n} connections: {reserved} timers"
        );
        h.wheel.insert(1, 0);
        assert!(
            h.wheel.heap_bytes() > before,
            "{n} connections: one timer past the reserve"
        );
    }
}

#[test]
fn listen_grows_the_bitmap_only_to_the_port() {
    let mut h = Host::new(Config::default());
    let before = h.heap_bytes();
    h.listen(80);
    // Two words needed; Vec may round up to four, far below 8 KiB.
    assert!(h.heap_bytes() - before <= 64, "{}", h.heap_bytes() - before);
    assert!(h.is_listening(80));
    assert!(!h.is_listening(81) && !h.is_listening(79));
    assert!(!h.is_listening(65535), "beyond the bitmap: not listening");
    h.listen(65535);
    assert!(h.is_listening(65535) && h.is_listening(80));
    assert!(!h.is_listening(65534) && !h.is_listening(1024));
    assert_eq!(h.heap_bytes() - before, 8192);
}

/// A burst (here twice `QUEUE_KEEP` SYNs, then their aborts' events)
/// grows a queue, and the first call after the driver drained it that moves
/// the clock on gives the memory back (the queues count in the engine's
/// measured heap), by each way of draining; a queue within `QUEUE_KEEP` is
/// left as it is.
#[test]
fn drained_queues_give_back_a_burst() {
    let mut h = Host::new(Config::default());
    let tuple = |i: usize| Tuple {
        local_ip: 1,
        remote_ip: 2,
        local_port: 10_000 + i as u16,
        remote_port: 80,
    };
    let burst = 2 * QUEUE_KEEP;
    let mut ms = 0;
    let mut tick = || {
        ms += 1;
        Time::from_millis(ms)
    };
    for i in 0..burst {
        h.connect(Time::ZERO, tuple(i)).unwrap();
    }
    assert_eq!(h.transmits().count(), burst);
    h.connect(Time::ZERO, tuple(burst)).unwrap();
    assert!(
        h.out.capacity() >= burst,
        "the burst's room, until the clock moves on"
    );
    assert_eq!(h.transmits().count(), 1);
    h.connect(tick(), tuple(burst + 1)).unwrap();
    let kept = h.out.capacity();
    assert!((1..QUEUE_KEEP).contains(&kept), "{kept}");
    assert_eq!(h.transmits().count(), 1);
    h.connect(tick(), tuple(burst + 2)).unwrap();
    assert_eq!(h.out.capacity(), kept, "within QUEUE_KEEP: not trimmed");
    assert_eq!(h.transmits().count(), 1);

    // Events: drained by `events`, then by `swap_events`.
    for swap in [false, true] {
        let now = tick();
        for i in 0..burst {
            h.abort(now, tuple(i)).unwrap();
            h.connect(now, tuple(i)).unwrap();
        }
        let mut buf = Vec::new();
        if swap {
            h.swap_events(&mut buf);
            assert!(buf.len() >= burst);
        } else {
            assert!(h.events().count() >= burst);
        }
        assert!(
            h.events.capacity() >= burst || swap,
            "drained, not yet trimmed"
        );
        h.abort(tick(), tuple(burst)).unwrap();
        let kept = h.events.capacity();
        assert!((1..QUEUE_KEEP).contains(&kept), "swap {swap}: {kept}");
        h.connect(tick(), tuple(burst)).unwrap();
        h.transmits().for_each(drop);
        h.events().for_each(drop);
    }
}

/// A SYN-ACK without timestamps leaves ts_recent 0 along with `TS_OK`
/// cleared, even where the SYN echoed a reused TIME-WAIT's TSval: PAWS
/// (`paws_discard`) reads ts_recent without asking for the flag.
#[test]
fn a_syn_ack_without_timestamps_clears_ts_recent() {
    use crate::conn::flag;
    use crate::segment::Flags;
    use crate::table::Found;
    let mut h = Host::new(Config::default());
    let t = Tuple::new([10, 0, 0, 1], 40_000, [10, 0, 0, 2], 80);
    h.connect(Time::ZERO, t).expect("connect");
    let syn = h.transmits().next().expect("SYN");
    let Some(Found::Conn(idx)) = h.table.find(&t) else {
        panic!("SYN-SENT entry");
    };
    // As if the SYN had taken over a TIME-WAIT that knew the peer's TSval.
    let mut c = h.table.conn(idx);
    assert!(c.has(flag::TS_OK));
    c.ts_recent = 77;
    h.table.set_conn(idx, &c);
    let syn_ack = Segment::new(
        &t.reversed(),
        Flags::SYN | Flags::ACK,
        9_000,
        syn.seq.wrapping_add(1),
        0,
        65_535,
    );
    h.handle(Time::from_millis(1), &syn_ack);
    assert_eq!(h.state(&t), State::Established);
    let c = h.table.conn(idx);
    assert!(!c.has(flag::TS_OK));
    assert_eq!(c.ts_recent, 0);
}
