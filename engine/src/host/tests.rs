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

/// A burst (here twice `QUEUE_KEEP` SYNs, then their aborts' events) keeps
/// its queue's capacity through its own drain and gives it back, down to
/// `QUEUE_KEEP`, at the next one, by each way of draining; a queue within
/// `QUEUE_KEEP` is left as it is.
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
    for i in 0..=burst {
        h.connect(Time::ZERO, tuple(i)).unwrap();
        if i == burst - 1 {
            assert_eq!(h.transmits().count(), burst);
            assert!(h.out.capacity() >= burst, "drained with the burst in it");
        }
    }
    assert_eq!(h.transmits().count(), 1);
    let kept = h.out.capacity();
    assert!((QUEUE_KEEP..burst).contains(&kept), "{kept}");
    h.connect(Time::ZERO, tuple(burst + 1)).unwrap();
    assert_eq!(h.transmits().count(), 1);
    assert_eq!(h.out.capacity(), kept, "within QUEUE_KEEP: not trimmed");

    // Events: drained by `events`, then by `swap_events`.
    for swap in [false, true] {
        for i in 0..burst {
            h.abort(Time::ZERO, tuple(i)).unwrap();
            h.connect(Time::ZERO, tuple(i)).unwrap();
        }
        let mut buf = Vec::new();
        let drained = |h: &mut Host, buf: &mut Vec<Event>| {
            if swap {
                h.swap_events(buf);
                buf.len()
            } else {
                h.events().count()
            }
        };
        assert!(drained(&mut h, &mut buf) >= burst);
        h.abort(Time::ZERO, tuple(burst)).unwrap();
        h.connect(Time::ZERO, tuple(burst)).unwrap();
        assert!(drained(&mut h, &mut buf) >= 1);
        let kept = h.events.capacity();
        assert!((QUEUE_KEEP..burst).contains(&kept), "swap {swap}: {kept}");
    }
}
