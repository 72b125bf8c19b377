//! The datagram codec allocates nothing per segment: measured with the counting
//! allocator, not assumed.

use teardown::alloc::{thread_net_bytes, Counting};
use teardown::wire::{decode, Encoder, MAX_RECORDS};
use teardown_engine::{Flags, Segment, Tuple};

mod common;

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn encoding_and_decoding_full_datagrams_allocates_nothing() {
    assert!(teardown::alloc::installed());
    let mut enc = Encoder::default();
    let t = Tuple::new([10, 128, 0, 1], 40_000, [10, 0, 0, 1], 80);
    let seg = Segment {
        flags: Flags::FIN | Flags::ACK,
        seq: 7,
        ack: 9,
        ..common::sent_on(t)
    };
    let mut checksum = 0u64;
    let before = thread_net_bytes();
    for round in 0..10u32 {
        while !enc.is_full() {
            let mut s = seg;
            s.seq = round;
            enc.push(&s);
        }
        for s in decode(enc.datagram()).expect("valid") {
            checksum = checksum.wrapping_add(s.seq as u64);
        }
        enc.clear();
    }
    assert_eq!(thread_net_bytes(), before, "the codec allocated");
    assert_eq!(checksum, (0..10u64).sum::<u64>() * MAX_RECORDS as u64);
}
