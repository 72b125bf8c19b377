//! The full connections the host touched last, by tuple, for the
//! application's calls.
//!
//! `send` and `close` name a connection by its 4-tuple, and most often it is
//! one whose segment the host has just handled (the request that the
//! response answers, the FIN that the close follows). A few direct-mapped
//! slots keyed by the ports spare such a call the keyed hash and the index
//! probe (Linux's socket calls hold the socket and need no lookup at all).

use crate::tuple::Tuple;

/// Slots: a burst of segments handled before the application runs touches
/// several connections, whose calls then come in turn.
const SLOTS: usize = 16;

/// Each slot: a tuple and its slab index plus one (0: empty), so that the
/// all-zero default holds nothing.
#[derive(Default)]
pub(super) struct Recent {
    slots: [(Tuple, u32); SLOTS],
}

impl Recent {
    #[inline(always)]
    fn slot(t: &Tuple) -> usize {
        (t.remote_port ^ t.local_port) as usize % SLOTS
    }

    /// `t`'s slab index, if its slot holds it.
    #[inline(always)]
    pub(super) fn get(&self, t: &Tuple) -> Option<u32> {
        let (tuple, idx) = self.slots[Self::slot(t)];
        (idx != 0 && tuple == *t).then(|| idx - 1)
    }

    /// Full connection `idx`, named `t`, is live.
    #[inline(always)]
    pub(super) fn put(&mut self, t: &Tuple, idx: u32) {
        self.slots[Self::slot(t)] = (*t, idx + 1);
    }

    /// Full connection `idx`, named `t`, leaves the slab (its index may be
    /// reused for another tuple at once).
    #[inline(always)]
    pub(super) fn forget(&mut self, t: &Tuple, idx: u32) {
        let s = &mut self.slots[Self::slot(t)];
        if s.1 == idx + 1 {
            s.1 = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(port: u16) -> Tuple {
        Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
    }

    #[test]
    fn holds_the_last_of_each_slot_until_forgotten() {
        let mut r = Recent::default();
        assert_eq!(r.get(&Tuple::default()), None, "empty holds nothing");
        r.put(&tuple(1), 0);
        r.put(&tuple(2), 7);
        assert_eq!(r.get(&tuple(1)), Some(0));
        assert_eq!(r.get(&tuple(2)), Some(7));
        // Same slot, other tuple: the newer wins, the older is not mistaken.
        let clash = tuple(1 + SLOTS as u16);
        r.put(&clash, 9);
        assert_eq!(r.get(&tuple(1)), None);
        assert_eq!(r.get(&clash), Some(9));
        // Forgetting an index the slot no longer holds leaves it.
        r.forget(&tuple(1), 0);
        assert_eq!(r.get(&clash), Some(9));
        r.forget(&clash, 9);
        assert_eq!(r.get(&clash), None);
        assert_eq!(r.get(&tuple(2)), Some(7));
    }
}
