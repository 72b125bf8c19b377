//! The application's share of `--concurrency`: a connection holds a slot
//! from connect() to the application's close(), or to its end if that comes
//! first (a reset, a runaway), as a real client's pool holds a socket until
//! it closes it. A client that closes first then waits out TIME-WAIT in its
//! host's table, holding its 4-tuple but not a slot: otherwise `--close
//! client` could open only `--concurrency` connections per 2*MSL.

/// One bit per tuple of the worker's range, by its place ([`super::Plan::place`]).
#[derive(Default)]
pub(super) struct Slots {
    bits: Vec<u64>,
    count: usize,
}

impl Slots {
    /// Slots held now.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The connection at `place` takes a slot.
    pub(super) fn take(&mut self, place: usize) {
        let (word, bit) = (place / 64, 1u64 << (place % 64));
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        debug_assert_eq!(self.bits[word] & bit, 0, "a tuple live twice");
        self.bits[word] |= bit;
        self.count += 1;
    }

    /// The connection at `place` gives its slot back, if it still held one:
    /// whether it did.
    pub(super) fn give_back(&mut self, place: usize) -> bool {
        let (word, bit) = (place / 64, 1u64 << (place % 64));
        match self.bits.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                self.count -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn a_slot_is_given_back_once() {
        let mut s = Slots::default();
        s.take(3);
        s.take(200);
        assert_eq!(s.count(), 2);
        assert!(s.give_back(200));
        assert!(!s.give_back(200), "given back twice");
        assert!(!s.give_back(5_000), "never taken, beyond the bits");
        assert_eq!(s.count(), 1);
        s.take(200);
        assert_eq!(s.count(), 2);
    }
}
