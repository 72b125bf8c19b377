//! The engine fuzz harness (`teardown::fuzzing::engine`, also a cargo-fuzz
//! target) on proptest's random byte strings.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segment_sequences_keep_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        teardown::fuzzing::engine(&data);
    }
}
