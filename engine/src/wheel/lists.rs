//! The intrusive lists behind the slots and the node slab they thread:
//! heads stored inverted, link and unlink in O(1), and a freed node's
//! return to the free list.

use super::{Node, Wheel, FREE, LANES, NIL, SLOTS};

impl<T: Copy> Wheel<T> {
    /// Head of list `list` (`NIL` when empty).
    #[inline]
    pub(super) fn head(&self, list: usize) -> u32 {
        !self.heads[list]
    }

    #[inline]
    pub(super) fn set_head(&mut self, list: usize, idx: u32) {
        self.heads[list] = !idx;
    }

    /// Any node of `slot`: the head of its first non-empty lane.
    pub(super) fn first_in(&self, slot: usize) -> Option<u32> {
        let used = self.lanes_used[slot];
        (used != 0).then(|| self.head(slot * LANES + used.trailing_zeros() as usize))
    }

    /// Pushes node `idx` onto the front of its lane in `slot`. A neighbour
    /// index is `NIL` or in the slab, and `NIL` never is (the slab holds
    /// fewer nodes), so `get_mut` is the `NIL` test and the bounds check in
    /// one; likewise in [`Wheel::unlink_from`].
    #[inline(always)]
    pub(super) fn link(&mut self, idx: u32, slot: usize) {
        let lane = idx as usize % LANES;
        let list = slot * LANES + lane;
        let head = self.head(list);
        let node = &mut self.nodes[idx as usize];
        node.next = head;
        node.prev = NIL;
        node.list = list as u16;
        if let Some(old) = self.nodes.get_mut(head as usize) {
            old.prev = idx;
        } else {
            // Only a lane that was empty has its bit, and maybe its slot's,
            // to set: a lane holding nodes has both set already.
            self.lanes_used[slot] |= 1 << lane;
            self.occupied[slot / SLOTS] |= 1 << (slot % SLOTS);
        }
        self.set_head(list, idx);
    }

    /// Takes the node whose links were `next` and `prev` off `list`, clearing
    /// its lane's and slot's bits when it was the last there. The links are
    /// read by the caller, which rewrites the node before: nothing of it is
    /// held through the unlink, so fewer registers are saved on each call.
    #[inline(always)]
    pub(super) fn unlink_from(&mut self, next: u32, prev: u32, list: u16) {
        let list = list as usize;
        if let Some(n) = self.nodes.get_mut(next as usize) {
            n.prev = prev;
        }
        if let Some(p) = self.nodes.get_mut(prev as usize) {
            p.next = next;
        } else {
            self.set_head(list, next);
            if next == NIL {
                let (slot, lane) = (list / LANES, list % LANES);
                self.lanes_used[slot] &= !(1 << lane);
                if self.lanes_used[slot] == 0 {
                    self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
                }
            }
        }
    }

    /// Node `idx`'s timer, and the node unlinked and moved to the free list.
    #[inline(always)]
    pub(super) fn take(&mut self, idx: u32) -> (u64, T) {
        let Node {
            deadline, value, ..
        } = self.nodes[idx as usize];
        self.release(idx);
        (deadline, value)
    }

    /// Unlinks node `idx` and moves it to the free list. It returns nothing:
    /// a cancel drops the timer, and holding it through the unlink made every
    /// call save and restore two more registers. In line: with the node
    /// rewritten before its neighbours, it needs few enough registers that
    /// the call cost more than its callers' spills (out of line it took
    /// 2.5 M more instructions of 679 M in the sequential 100 k run).
    #[inline(always)]
    pub(super) fn release(&mut self, idx: u32) {
        let node = &mut self.nodes[idx as usize];
        let Node {
            next, prev, list, ..
        } = *node;
        node.list = FREE;
        node.next = self.free;
        self.free = idx;
        self.unlink_from(next, prev, list);
        self.len -= 1;
        if self.len == 0 {
            self.shrink();
        }
    }

    /// Nothing pending, so every key is dead and the nodes can go back: a
    /// burst of timers (a million FINs at once) leaves no residue behind.
    /// Out of line for the same reason as [`Wheel::insert_new`].
    #[cold]
    #[inline(never)]
    pub(super) fn shrink(&mut self) {
        if self.nodes.capacity() > SHRINK_AT {
            self.nodes = Vec::new();
            self.free = NIL;
        }
    }
}

/// Node capacity above which an emptied wheel returns its node storage.
const SHRINK_AT: usize = 256;
