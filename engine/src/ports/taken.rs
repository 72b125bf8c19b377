//! A local address's ports that connect() to the first destination skips
//! unlooked, one bit each, so that its walk passes 64 of them per word.
//!
//! `__inet_hash_connect` walks the range two ports at a time, and a port
//! whose bucket bind() made or that holds an entry to this destination is
//! refused there without a table lookup ([`super::Ports::holds_first_dest`]).
//! Once an address's ports of one parity are mostly held (connect() fills the
//! even ones first), a search walks hundreds of such buckets, up to half the
//! range (14,116 for Linux's default), a load of a `u32` and three tests each.
//! Here bit `idx` is the port at range offset `idx`, and the walk reads its
//! parity's bits of a word at once (32 ports). It gives the same port and the
//! same count of ports probed; it only counts the refused ones by the word
//! instead of one at a time.

/// Bits per word.
const BITS: usize = u64::BITS as usize;
/// The even bits of a word: one parity's ports, once shifted to bit 0.
const EVEN: u64 = 0x5555_5555_5555_5555;

/// Per local address: the ports whose bucket is bound or holds an entry to
/// the first destination.
pub(crate) struct Taken {
    words: Box<[u64]>,
}

impl Taken {
    /// All clear, for a range of `len` ports.
    pub(crate) fn new(len: u32) -> Taken {
        Taken {
            words: vec![0; (len as usize).div_ceil(BITS)].into_boxed_slice(),
        }
    }

    /// Marks the port at range offset `idx` refused (`on`) or not.
    #[inline]
    pub(crate) fn set(&mut self, idx: usize, on: bool) {
        let bit = idx % BITS;
        let word = &mut self.words[idx / BITS];
        *word = (*word & !(1 << bit)) | (u64::from(on) << bit);
    }

    /// Whether the port at range offset `idx` is marked.
    #[cfg(test)]
    pub(crate) fn get(&self, idx: usize) -> bool {
        self.words[idx / BITS] & (1 << (idx % BITS)) != 0
    }

    /// Heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * size_of::<u64>()
    }

    /// The first step `k`, from `k` on and below `npos`, whose position
    /// `(pos0 + k) % npos` of `parity` is clear; `npos` when none is. The
    /// positions of a parity form a circle of `npos`, as the walk's ports do
    /// over an even range.
    #[inline]
    pub(crate) fn next_clear(
        &self,
        parity: usize,
        npos: usize,
        pos0: usize,
        mut k: usize,
    ) -> usize {
        debug_assert!(pos0 < npos && 2 * npos <= self.words.len() * BITS && parity < 2);
        while k < npos {
            let mut pos = pos0 + k;
            if pos >= npos {
                pos -= npos;
            }
            let idx = 2 * pos + parity;
            let bit = idx % BITS;
            // Bit 2j: the port j steps on is clear, up to the word's end
            // (`bit` has the walk's parity), the circle's wrap and the steps
            // left, whichever comes first.
            let clear = (!self.words[idx / BITS] >> bit) & EVEN;
            let span = ((BITS + 1 - bit) / 2).min(npos - pos).min(npos - k);
            let run = clear.trailing_zeros() as usize / 2;
            if run < span {
                return k + run;
            }
            k += span;
        }
        npos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The step-by-step reading of [`Taken::next_clear`].
    fn one_by_one(t: &Taken, parity: usize, npos: usize, pos0: usize, from: usize) -> usize {
        (from..npos)
            .find(|k| !t.get(2 * ((pos0 + k) % npos) + parity))
            .unwrap_or(npos)
    }

    proptest! {
        /// For any marks on a range of any even size, and any start and first
        /// step, the word-wise search stops where the one-by-one walk does.
        #[test]
        fn next_clear_stops_where_a_port_by_port_walk_does(
            half in 1usize..300,
            marks in prop::collection::vec(any::<bool>(), 600),
            dense in 0u8..4,
            pos0 in 0usize..300,
            from in 0usize..300,
        ) {
            let len = 2 * half;
            let mut t = Taken::new(len as u32);
            for (idx, &m) in marks.iter().take(len).enumerate() {
                // Mostly marked too, as a full parity is: runs over words.
                t.set(idx, m || dense > 1);
            }
            // Some clear ports in a dense range.
            for idx in (0..len).step_by(37) {
                t.set(idx, marks[idx]);
            }
            let (pos0, from) = (pos0 % half, from % (half + 1));
            for parity in 0..2 {
                prop_assert_eq!(
                    t.next_clear(parity, half, pos0, from),
                    one_by_one(&t, parity, half, pos0, from)
                );
            }
        }
    }

    #[test]
    fn a_mark_is_set_and_cleared_for_its_port_alone() {
        let mut t = Taken::new(28_232);
        t.set(14_115 * 2 + 1, true);
        t.set(128, true);
        assert!(t.get(28_231) && t.get(128));
        assert!(!t.get(28_230) && !t.get(129) && !t.get(126));
        t.set(128, false);
        assert!(!t.get(128) && t.get(28_231));
        // A full even parity is passed whole; the odd one stops at once.
        for idx in (0..28_232).step_by(2) {
            t.set(idx, true);
        }
        assert_eq!(t.next_clear(0, 14_116, 5_000, 0), 14_116);
        assert_eq!(
            t.next_clear(1, 14_116, 14_115, 0),
            1,
            "the wrap's port is clear"
        );
        assert_eq!(t.heap_bytes(), 442 * 8);
    }
}
