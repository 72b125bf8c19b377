//! Shards resident together or one at a time: the same simulation, a
//! different working set; tw-fill holding every entry at once.

use teardown::sim::{SimArgs, SimReport, Workload};

use super::{args, run};

/// All shards live at once (the default) or one at a time: the same simulation,
/// but in the first the tables really hold the whole population together.
#[test]
fn resident_and_one_shard_at_a_time_simulate_the_same_and_differ_in_working_set() {
    let a = SimArgs {
        loss: 0.02,
        threads: Some(1),
        ..args(20_000)
    };
    let resident = run(&a);
    let sequential = run(&SimArgs {
        sequential_shards: true,
        ..a
    });
    assert_eq!(resident.resident.mode, "all-shards");
    assert_eq!(sequential.resident.mode, "one-shard-per-thread");
    let simulated = |r: &SimReport| {
        let mut v = serde_json::to_value(r).expect("serializes");
        for k in ["wall_seconds", "teardowns_per_sec", "resident"] {
            v.as_object_mut().expect("object").remove(k);
        }
        v["memory"]
            .as_object_mut()
            .expect("object")
            .remove("peak_heap_bytes");
        v
    };
    assert_eq!(simulated(&resident), simulated(&sequential));
    // Every connection's TIME-WAIT outlives the run's opening minute, so at the
    // end all 20,000 are held together when the 8 shards are live at once.
    let held = resident.resident.peak_entries;
    assert!(held >= resident.peak["time_wait"], "{held}");
    assert!(resident.peak["time_wait"] >= 19_000, "{:?}", resident.peak);
    // One shard at a time, the thread never holds more than one shard's share.
    let one = sequential.resident.peak_entries;
    assert!(one * 4 < held, "one shard {one}, all shards {held}");
    assert!(one * 8 >= resident.peak["time_wait"], "{one}");
}

/// tw-fill holds every connection at once, ESTABLISHED at one moment and in
/// TIME-WAIT at another, while its shards take turns on the link: the clients
/// never have more than one shard's handshakes under way, where opening all N
/// at once would put N SYNs, and their timers, in flight together.
#[test]
fn tw_fill_holds_every_entry_at_once_with_one_shard_on_the_link_at_a_time() {
    let n = 8_000;
    let r = run(&SimArgs {
        workload: Workload::TwFill,
        ..args(n)
    });
    assert_eq!((r.completed, r.leaked), (n, 0));
    assert_eq!(r.peak["established"], n, "{:?}", r.peak);
    assert_eq!(r.peak["time_wait"], n, "{:?}", r.peak);
    assert_eq!(r.memory.established_share, 1.0);
    assert_eq!(r.memory.time_wait_share, 1.0);
    // Both states held every entry at some moment: both are measured (as 0
    // here, where the counting allocator is not this test's global one).
    for b in [r.memory.bytes_per_established, r.memory.bytes_per_time_wait] {
        assert!(b.is_some(), "{:?}", r.memory);
    }
    let one_shard = n / 8;
    assert!(
        r.peak_clients["syn_sent"] <= one_shard,
        "{:?}",
        r.peak_clients
    );
    assert!(r.peak["fin_wait_1"] <= one_shard, "{:?}", r.peak);
    // Each connection still sees one TIME-WAIT and one round trip of close.
    assert!(r.latency_ms.active_close.p50 >= 60_000.0);
    assert!(r.latency_ms.passive_close.max <= 10.0 + 1.0);
}

/// `--concurrency` is the run's, not each shard's rounded up: 65 over 64
/// shards opens 65 at once (one shard two), where it once opened 128.
#[test]
fn concurrency_is_shared_out_exactly() {
    for (concurrency, shards) in [(65, 64), (10_000, 64), (7, 3)] {
        let r = run(&SimArgs {
            concurrency,
            shards,
            loss: 0.0,
            threads: Some(1),
            ..args(20_000)
        });
        // No loss: every shard opens its share at time zero, all SYN-SENT together.
        assert_eq!(
            r.peak_clients["syn_sent"], concurrency,
            "{concurrency}/{shards}"
        );
    }
}
