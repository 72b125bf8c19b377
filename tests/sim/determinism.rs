//! The same seed gives the same report whatever the thread count.

use teardown::sim::{SimArgs, SimReport};

use super::{args, run};

#[test]
fn same_seed_same_report_whatever_the_threads() {
    let a = SimArgs {
        loss: 0.02,
        jitter: std::time::Duration::from_millis(3),
        runaway_client: 0.02,
        ..args(20_000)
    };
    let strip = |r: SimReport| {
        let mut v = serde_json::to_value(&r).expect("serializes");
        for k in ["wall_seconds", "teardowns_per_sec", "threads", "resident"] {
            v.as_object_mut().expect("object").remove(k);
        }
        v["memory"]
            .as_object_mut()
            .expect("object")
            .remove("peak_heap_bytes");
        v
    };
    let one = strip(run(&SimArgs {
        threads: Some(1),
        ..a.clone()
    }));
    let two = strip(run(&SimArgs {
        threads: Some(2),
        ..a.clone()
    }));
    let again = strip(run(&SimArgs {
        threads: Some(2),
        ..a.clone()
    }));
    assert_eq!(one, two);
    assert_eq!(two, again);
    let other_seed = strip(run(&SimArgs {
        seed: 2,
        threads: Some(2),
        ..a
    }));
    assert_ne!(two, other_seed);
}
