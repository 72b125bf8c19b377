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
/// grows a queue, and the first call after the driver drained it gives the
/// memory back (the queues count in the engine's measured heap), by each
/// way of draining; a queue within `QUEUE_KEEP` is left as it is.
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
    for i in 0..burst {
        h.connect(Time::ZERO, tuple(i)).unwrap();
    }
    assert_eq!(h.transmits().count(), burst);
    assert!(
        h.out.capacity() >= burst,
        "the burst's room, until the next call"
    );
    h.connect(Time::ZERO, tuple(burst)).unwrap();
    let kept = h.out.capacity();
    assert!((1..QUEUE_KEEP).contains(&kept), "{kept}");
    assert_eq!(h.transmits().count(), 1);
    h.connect(Time::ZERO, tuple(burst + 1)).unwrap();
    assert_eq!(h.out.capacity(), kept, "within QUEUE_KEEP: not trimmed");
    assert_eq!(h.transmits().count(), 1);

    // Events: drained by `events`, then by `swap_events`.
    for swap in [false, true] {
        for i in 0..burst {
            h.abort(Time::ZERO, tuple(i)).unwrap();
            h.connect(Time::ZERO, tuple(i)).unwrap();
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
        h.abort(Time::ZERO, tuple(burst)).unwrap();
        let kept = h.events.capacity();
        assert!((1..QUEUE_KEEP).contains(&kept), "swap {swap}: {kept}");
        h.connect(Time::ZERO, tuple(burst)).unwrap();
        h.transmits().for_each(drop);
        h.events().for_each(drop);
    }
}
