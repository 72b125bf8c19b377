//! Where a deadline goes: its slot relative to `elapsed`, the earliest
//! occupied slot, and the cascade that re-places a higher slot's timers
//! once time reaches it (see the layout in the module docs of [`super`]).

use super::{
    Expiration, Wheel, DUE, LANES, LEVELS, LEVEL_BITS, NIL, SLOTS, SLOT_MASK, SPAN, TOP_SHIFT,
};

impl<T: Copy> Wheel<T> {
    /// Slot for a deadline relative to the current `elapsed`. Nearly every
    /// deadline agrees with `elapsed` above the top level's digit (it is
    /// less than `2^36` ticks off and crosses no `2^36` boundary): its level
    /// is then the highest differing digit's and nothing else is checked;
    /// the rest go to [`Wheel::slot_far`].
    #[inline]
    pub(super) fn slot_for(&self, deadline: u64) -> usize {
        if deadline <= self.elapsed {
            return DUE;
        }
        let high = ((self.elapsed ^ deadline) | SLOT_MASK).ilog2();
        if high >= TOP_SHIFT + LEVEL_BITS {
            return self.slot_far(deadline);
        }
        let level = high / LEVEL_BITS;
        let slot = (deadline >> (level * LEVEL_BITS)) & SLOT_MASK;
        level as usize * SLOTS + slot as usize
    }

    /// [`Wheel::slot_for`] of a deadline differing from `elapsed` above the
    /// top level's digit: parked beyond the wheel's span, or across a `2^36`
    /// boundary but within it. In line: out of line, the call made every
    /// insert and reset save and restore registers.
    #[inline(always)]
    fn slot_far(&self, deadline: u64) -> usize {
        let top_digit = self.elapsed >> TOP_SHIFT;
        // Start of the top-level slot 64 slots ahead: the first tick the
        // wheel cannot represent without wrapping onto the current slot.
        let horizon = (top_digit << TOP_SHIFT).saturating_add(SPAN);
        if deadline >= horizon {
            // Park in the last top-level slot; re-placed when cascaded.
            return (LEVELS - 1) * SLOTS + ((top_digit + SLOT_MASK) & SLOT_MASK) as usize;
        }
        // Deadlines crossing a 2^36 boundary differ above the top digit but
        // still fit in the top level (in a slot behind the current one).
        let slot = (deadline >> TOP_SHIFT) & SLOT_MASK;
        (LEVELS - 1) * SLOTS + slot as usize
    }

    pub(super) fn next_expiration(&self) -> Option<Expiration> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * LEVEL_BITS;
            let current = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            // Search from the current slot inclusive: on level 0 it may hold
            // the rest of the deadline being drained; above level 0 it is
            // always empty.
            let slot =
                (current + occupied.rotate_right(current).trailing_zeros()) & SLOT_MASK as u32;
            let level_start = self.elapsed & !((1 << (shift + LEVEL_BITS)) - 1);
            let mut deadline = level_start + ((slot as u64) << shift);
            if slot < current {
                // Wrapped: only the top level holds slots behind `elapsed`.
                debug_assert_eq!(level, LEVELS - 1);
                deadline = deadline.saturating_add(SPAN);
            }
            return Some(Expiration {
                slot: level * SLOTS + slot as usize,
                deadline,
            });
        }
        None
    }

    /// Empties a higher-level slot that time has reached, re-placing its
    /// entries relative to the new `elapsed` (lower levels or the due slot).
    pub(super) fn cascade(&mut self, slot: usize) {
        let mut cursors: [u32; LANES] = std::array::from_fn(|lane| self.head(slot * LANES + lane));
        self.heads[slot * LANES..][..LANES].fill(!NIL);
        self.lanes_used[slot] = 0;
        self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
        // One node per lane per round. All loads of a round are issued
        // before any node is re-linked, so they miss the cache in parallel.
        let mut batch = [(NIL, 0u64); LANES];
        loop {
            let mut live = 0;
            for cursor in &mut cursors {
                if *cursor != NIL {
                    let node = &self.nodes[*cursor as usize];
                    batch[live] = (*cursor, node.deadline);
                    *cursor = node.next;
                    live += 1;
                }
            }
            if live == 0 {
                return;
            }
            for &(idx, deadline) in &batch[..live] {
                let target = self.slot_for(deadline);
                self.link(idx, target);
            }
        }
    }
}
