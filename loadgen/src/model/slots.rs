//! The application's share of `--concurrency`: a connection holds a slot
//! from connect() to the application's close(), or to its end if that comes
//! first (a reset, a runaway), as a real client's pool holds a socket until
//! it closes it. A client that closes first then waits out TIME-WAIT in its
//! host's table, holding its 4-tuple but not a slot: otherwise `--close
//! client` could open only `--concurrency` connections per 2*MSL.

use std::num::NonZeroU32;

/// A connection's serial among its worker's opens: it tells a newer
/// connection on a reused 4-tuple from the older one a queued close (`--hold`,
/// an RST attack's probe) was meant for.
pub(crate) type Serial = NonZeroU32;

/// The serial of the worker's `n`-th open (from 0), wrapping after 2^32 - 1.
pub(super) fn serial(n: u64) -> Serial {
    NonZeroU32::MIN.saturating_add((n % u64::from(u32::MAX)) as u32)
}

/// Which connection holds each tuple's slot, by the tuple's place in the
/// worker's range ([`super::Plan::place`]): its serial, 0 where none does.
#[derive(Default)]
pub(super) struct Slots {
    holders: Vec<u32>,
    count: usize,
}

impl Slots {
    /// Slots held now.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The connection `serial` at `place` takes a slot.
    pub(super) fn take(&mut self, place: usize, serial: Serial) {
        if place >= self.holders.len() {
            self.holders.resize(place + 1, 0);
        }
        debug_assert_eq!(self.holders[place], 0, "a tuple live twice");
        self.holders[place] = serial.get();
        self.count += 1;
    }

    /// The connection holding the slot at `place`, if one does.
    pub(super) fn holder(&self, place: usize) -> Option<Serial> {
        self.holders.get(place).copied().and_then(NonZeroU32::new)
    }

    /// The connection at `place` gives its slot back, if it still held one:
    /// whether it did.
    pub(super) fn give_back(&mut self, place: usize) -> bool {
        match self.holders.get_mut(place) {
            Some(h) if *h != 0 => {
                *h = 0;
                self.count -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{serial, Slots};

    #[test]
    fn a_slot_is_given_back_once_and_names_its_holder() {
        let mut s = Slots::default();
        s.take(3, serial(0));
        s.take(200, serial(1));
        assert_eq!(s.count(), 2);
        assert_eq!(s.holder(200), Some(serial(1)));
        assert!(s.give_back(200));
        assert!(!s.give_back(200), "given back twice");
        assert!(!s.give_back(5_000), "never taken, beyond the places");
        assert_eq!((s.count(), s.holder(200)), (1, None));
        s.take(200, serial(2));
        assert_eq!((s.count(), s.holder(200)), (2, Some(serial(2))));
    }

    #[test]
    fn serials_are_never_zero() {
        assert_eq!(serial(0).get(), 1);
        assert_eq!(serial(u64::from(u32::MAX) - 1).get(), u32::MAX);
        assert_eq!(serial(u64::from(u32::MAX)), serial(0));
    }
}
