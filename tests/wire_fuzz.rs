//! The wire fuzz harness (`teardown::fuzzing::wire`, also a cargo-fuzz target)
//! on proptest's byte strings: raw bytes, and valid datagrams with one byte
//! changed, so that most inputs get past the header checks.

use proptest::prelude::*;
use teardown::wire::VERSION;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_keep_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        teardown::fuzzing::wire(&data);
    }

    #[test]
    fn valid_datagrams_with_one_byte_changed_keep_the_invariants(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), teardown::wire::RECORD_LEN), 0..16),
        at in any::<usize>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let mut d = vec![b'T', b'D', VERSION, 0];
        d.extend_from_slice(&(records.len() as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        for mut r in records {
            r[26] &= teardown::wire::FLAG_MASK;
            r[27] &= teardown::wire::OPT_TS;
            if r[27] == 0 {
                r[28..].fill(0);
            }
            // A payload length a segment may model (at most 2^30).
            r[20] &= 0x3f;
            d.extend_from_slice(&r);
        }
        prop_assert!(teardown::wire::decode(&d).is_ok());
        teardown::fuzzing::wire(&d);
        let i = at % d.len();
        d[i] = byte;
        if truncate {
            d.truncate(i);
        }
        teardown::fuzzing::wire(&d);
    }
}
