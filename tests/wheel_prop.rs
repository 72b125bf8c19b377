//! The wheel against a reference model (a `BinaryHeap` of deadlines with lazy
//! cancellation, the usual priority-queue timer): same timers fire, none early,
//! none late.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use proptest::prelude::*;
use teardown_engine::wheel::{TimerKey, Wheel};

#[derive(Clone, Debug)]
enum Op {
    /// Insert at `now + offset`, or at an already-passed tick when `past`.
    Insert { offset: u64, past: bool },
    /// Remove the live timer at this index (mod the live count).
    Remove(usize),
    /// Poll at `now + step`.
    Poll(u64),
}

/// Offsets near and far, clustered around level boundaries (64^k).
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..70,
        3 => 0u64..5_000,
        2 => 0u64..400_000,
        2 => (1u32..=6, -3i64..=3).prop_map(|(l, d)| (64u64.pow(l) as i64 + d) as u64),
        1 => 0u64..(1 << 38),
        1 => Just(u64::MAX / 2),
    ]
}

fn step() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..3,
        3 => 0u64..100,
        2 => 0u64..10_000,
        1 => 0u64..1_000_000,
        1 => (1u32..=5).prop_map(|l| 64u64.pow(l)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (offset(), prop::bool::weighted(0.05))
            .prop_map(|(offset, past)| Op::Insert { offset, past }),
        2 => any::<usize>().prop_map(Op::Remove),
        3 => step().prop_map(Op::Poll),
    ]
}

/// Reference: a min-heap of (deadline, payload) with cancelled payloads skipped
/// when they surface, plus payload -> (key, deadline).
#[derive(Default)]
struct Model {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    cancelled: HashSet<u32>,
    live: Vec<u32>,
    info: HashMap<u32, (TimerKey, u64)>,
}

impl Model {
    /// The earliest live (deadline, payload), dropping cancelled ones on top.
    fn earliest(&mut self) -> Option<(u64, u32)> {
        while let Some(&Reverse((d, v))) = self.heap.peek() {
            if self.cancelled.remove(&v) {
                self.heap.pop();
            } else {
                return Some((d, v));
            }
        }
        None
    }

    /// Pops every live timer due at `now`.
    fn due(&mut self, now: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        while let Some((d, v)) = self.earliest() {
            if d > now {
                break;
            }
            self.heap.pop();
            out.push((d, v));
        }
        out
    }
}

fn check(ops: Vec<Op>, start: u64) {
    let mut wheel = Wheel::<u32>::new();
    let mut model = Model::default();
    let mut now = start;
    assert_eq!(wheel.poll(now), None);
    let mut next_payload = 0u32;

    let poll = |wheel: &mut Wheel<u32>, model: &mut Model, now: u64| {
        let mut fired = Vec::new();
        while let Some((d, v)) = wheel.poll(now) {
            assert!(d <= now, "fired early: deadline {d} at {now}");
            fired.push((d, v));
        }
        assert_eq!(wheel.elapsed(), now);
        fired.sort_unstable();
        let mut due = model.due(now);
        due.sort_unstable();
        assert_eq!(fired, due, "fired set at {now}");
        for (_, v) in due {
            model.info.remove(&v);
            let pos = model.live.iter().position(|&x| x == v).unwrap();
            model.live.swap_remove(pos);
        }
    };

    for op in ops {
        match op {
            Op::Insert { offset, past } => {
                let deadline = if past {
                    now.saturating_sub(offset % 100)
                } else {
                    now.saturating_add(offset)
                };
                let v = next_payload;
                next_payload += 1;
                let key = wheel.insert(deadline, v);
                assert_eq!(wheel.deadline(key), deadline);
                model.heap.push(Reverse((deadline, v)));
                model.info.insert(v, (key, deadline));
                model.live.push(v);
            }
            Op::Remove(i) => {
                if model.live.is_empty() {
                    continue;
                }
                let v = model.live.swap_remove(i % model.live.len());
                let (key, _) = model.info.remove(&v).unwrap();
                model.cancelled.insert(v);
                assert_eq!(wheel.remove(key), v);
            }
            Op::Poll(step) => {
                now = now.saturating_add(step);
                poll(&mut wheel, &mut model, now);
            }
        }
        assert_eq!(wheel.len(), model.live.len());
        // next_deadline: Some iff non-empty, never later than the earliest.
        match model.earliest() {
            None => assert_eq!(wheel.next_deadline(), None),
            Some((d, _)) => {
                let nd = wheel
                    .next_deadline()
                    .expect("non-empty wheel has a deadline");
                assert!(nd <= d.max(now), "next_deadline {nd} after earliest {d}");
                assert!(nd >= now);
            }
        }
    }
    // Drain: driving by next_deadline fires everything, each at its deadline.
    while let Some(nd) = wheel.next_deadline() {
        let (earliest, _) = model.earliest().unwrap();
        if earliest > now.saturating_add(1 << 40) {
            break; // parked far timers: checked by cancelling below
        }
        now = nd;
        poll(&mut wheel, &mut model, now);
    }
    for v in model.live.clone() {
        let (key, _) = model.info[&v];
        assert_eq!(wheel.remove(key), v);
    }
    assert!(wheel.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_reference_model(
        ops in prop::collection::vec(op(), 1..300),
        start in prop_oneof![Just(0u64), 0u64..1 << 40, Just((1u64 << 36) - 5)],
    ) {
        check(ops, start);
    }
}
