//! Hierarchical hashed timer wheel over abstract ticks.
//!
//! Layout (modelled on tokio's `runtime/time/wheel`):
//!
//! * **Levels.** `LEVELS` levels of 64 slots each. A slot on level `L`
//!   covers `64^L` ticks, so the whole wheel spans `64^6 = 2^36` ticks. A
//!   timer lives on the lowest level whose slot distinguishes its deadline
//!   from `elapsed`: the level is the index of the highest 6-bit digit in
//!   which `deadline` and `elapsed` differ. Every entry on level `L` is thus
//!   later than every entry on any level below `L`, so the earliest timer is
//!   always in the first non-empty level.
//! * **Bitmaps.** Each level keeps a `u64` of occupied slots. The next
//!   occupied slot is found by rotating the word so the current slot is bit
//!   0 and taking `trailing_zeros` — a few instructions, no slot scanning.
//! * **Intrusive lists.** Entries live in one slab (`Vec<Node<T>>` plus a
//!   free list). Each slot is a set of `LANES` doubly-linked lists
//!   threaded through `u32` indices (a node's lane is its index modulo
//!   `LANES`), and each node records its slot, so insert and cancel are
//!   O(1) and allocate nothing once the slab has grown. The lanes exist
//!   for the cascade: walking one long list is a chain of dependent cache
//!   misses, walking several in lock step overlaps them.
//! * **Cascade.** When time reaches a slot on level `L > 0`, the slot is
//!   emptied and its entries are re-inserted relative to the new `elapsed`,
//!   which moves them to lower levels (or to the due slot). Level-0 slots
//!   hold entries of exactly one deadline and are popped directly.
//! * **Far deadlines.** A deadline beyond the last top-level slot is parked
//!   in that last slot; whenever the slot is cascaded the entry is placed
//!   again, so it moves closer by up to `2^36` ticks each time and fires on
//!   time. Nothing panics for any `u64` deadline; the cost is one extra
//!   cascade per `2^36` ticks the entry waits beyond the wheel's span.

use std::mem::size_of;

const LEVELS: usize = 6;
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Shift of the top level's slot digit.
const TOP_SHIFT: u32 = LEVEL_BITS * (LEVELS as u32 - 1);
/// Ticks covered by the whole wheel.
const SPAN: u64 = 1 << (LEVEL_BITS * LEVELS as u32);
/// Pseudo-slot of entries that are already due (deadline <= `elapsed`).
const DUE: usize = LEVELS * SLOTS;
/// Lists per slot. A cascade walks them in lock step, so it has `LANES`
/// independent cache misses in flight instead of one pointer chase.
const LANES: usize = 16;
const _: () = assert!(LANES <= u16::BITS as usize, "a lane per bit of lanes_used");
/// Number of list heads: `LANES` per slot, including the due slot.
const LISTS: usize = (DUE + 1) * LANES;
/// `Node::slot` of a node sitting in the free list.
const FREE: u16 = u16::MAX;
const NIL: u32 = u32::MAX;

/// Handle returned by [`Wheel::insert`]; invalid once the timer fired or was
/// removed (the slab index may then be reused by another timer).
///
/// The slab index plus one, non-zero so that `Option<TimerKey>` takes four
/// bytes: that is where a connection keeps its peer's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(std::num::NonZeroU32);

impl TimerKey {
    #[inline]
    fn new(idx: u32) -> TimerKey {
        TimerKey(std::num::NonZeroU32::MIN.saturating_add(idx))
    }

    #[inline]
    fn idx(self) -> u32 {
        self.0.get() - 1
    }
}

/// One slab entry; 24 bytes for a 4-byte payload.
#[derive(Clone, Copy, Debug)]
struct Node<T> {
    deadline: u64,
    /// Next node in the list (or in the free list).
    next: u32,
    /// Previous node in the list, `NIL` at the head.
    prev: u32,
    /// Slot holding the node (`DUE` or `FREE` included), so that cancel can
    /// fix up the head and the bitmap without recomputing it. The lane is
    /// the node index modulo `LANES`.
    slot: u16,
    value: T,
}

/// Timer wheel storing a `T` per timer; see the module docs for the layout.
#[derive(Clone, Debug)]
pub struct Wheel<T> {
    /// The tick up to which timers have been processed.
    elapsed: u64,
    nodes: Vec<Node<T>>,
    /// Head of the free list through `Node::next`.
    free: u32,
    len: usize,
    /// Occupied bits for every slot, 64 per word: one word per level, then
    /// bit 0 of the last word for the due slot, so link/unlink index it the
    /// same way for all slots.
    occupied: [u64; LEVELS + 1],
    /// List heads, `LANES` consecutive ones per slot, each stored inverted
    /// (`!head`) so that an empty list is 0: the array comes zeroed from the
    /// allocator (calloc) instead of being filled with `NIL`, 24 KiB per
    /// wheel and two wheels per simulated shard. Read and written through
    /// [`Wheel::head`] and [`Wheel::set_head`].
    heads: Box<[u32; LISTS]>,
    /// Per slot, a bit for each lane whose list is not empty: which lane to
    /// pop, and whether the slot empties, without scanning its `LANES` heads.
    lanes_used: [u16; DUE + 1],
}

/// Earliest occupied slot of the first non-empty level.
#[derive(Clone, Copy, Debug)]
struct Expiration {
    slot: usize,
    /// Start of the slot: exact deadline on level 0, lower bound above.
    deadline: u64,
}

impl<T: Copy> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Wheel<T> {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Preallocates the slab for `n` pending timers.
    pub fn with_capacity(n: usize) -> Self {
        Wheel {
            elapsed: 0,
            nodes: Vec::with_capacity(n),
            free: NIL,
            len: 0,
            occupied: [0; LEVELS + 1],
            heads: vec![!NIL; LISTS]
                .into_boxed_slice()
                .try_into()
                .expect("LISTS heads"),
            lanes_used: [0; DUE + 1],
        }
    }

    /// The tick the wheel has processed up to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes owned by the wheel, counted by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node<T>>() + size_of::<[u32; LISTS]>()
    }

    /// Schedules `value` at `deadline`. A deadline at or before `elapsed`
    /// fires on the next poll.
    ///
    /// # Panics
    /// If more than `u32::MAX - 1` timers are pending at once.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let slot = self.slot_for(deadline);
        let node = Node {
            deadline,
            next: NIL,
            prev: NIL,
            slot: slot as u16,
            value,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.nodes[idx as usize].next;
            // A burst of inserts pops nodes freed long ago, one miss each in
            // a chain: ask for the next one while this insert links.
            if let Some(next) = self.nodes.get(self.free as usize) {
                crate::index::prefetch_line(next);
            }
            self.nodes[idx as usize] = node;
            idx
        } else {
            self.push_node(node)
        };
        self.link(idx, slot);
        self.len += 1;
        TimerKey::new(idx)
    }

    /// Cancels a pending timer in O(1) and returns its payload.
    pub fn remove(&mut self, key: TimerKey) -> T {
        debug_assert!(self.is_live(key), "remove of a dead TimerKey");
        self.release(key.idx()).1
    }

    /// Moves the live timer `key` to `deadline` with `value`: what
    /// [`Wheel::remove`] then [`Wheel::insert`] do, and the key they would
    /// give (the free list hands the freed node straight back), without the
    /// trip through the free list. A retransmission timer is re-armed on
    /// most segments sent.
    #[inline(never)]
    pub fn reset(&mut self, key: TimerKey, deadline: u64, value: T) -> TimerKey {
        debug_assert!(self.is_live(key), "reset of a dead TimerKey");
        if self.len == 1 {
            // The last timer out empties the wheel, which may give back its
            // nodes (and so change the key): the same as remove and insert.
            self.remove(key);
            return self.insert(deadline, value);
        }
        let idx = key.idx();
        self.unlink(idx);
        let slot = self.slot_for(deadline);
        let node = &mut self.nodes[idx as usize];
        node.deadline = deadline;
        node.value = value;
        self.link(idx, slot);
        key
    }

    /// Deadline the live timer `key` was inserted with.
    pub fn deadline(&self, key: TimerKey) -> u64 {
        debug_assert!(self.is_live(key), "deadline of a dead TimerKey");
        self.nodes[key.idx() as usize].deadline
    }

    /// Lower bound on the earliest pending deadline, for sleeping until it.
    /// Exact when the earliest timer is on level 0 or already due (then it is
    /// `elapsed`); otherwise the start of its slot, which is never later
    /// than the true deadline. Polling at that tick cascades the slot.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.occupied[LEVELS] != 0 {
            return Some(self.elapsed);
        }
        self.next_expiration().map(|e| e.deadline)
    }

    /// Pops one timer with deadline <= `now`, advancing `elapsed` and
    /// cascading higher-level slots as needed. Returns `None` once nothing
    /// is due at `now`, leaving `elapsed == now`. Time never goes backwards:
    /// a `now` below `elapsed` is treated as `elapsed`.
    pub fn poll(&mut self, now: u64) -> Option<(u64, T)> {
        let now = now.max(self.elapsed);
        loop {
            let due = if self.occupied[LEVELS] != 0 {
                self.first_in(DUE)
            } else {
                None
            };
            if let Some(idx) = due {
                return Some(self.release(idx));
            }
            match self.next_expiration() {
                Some(e) if e.deadline <= now => {
                    self.elapsed = e.deadline;
                    if e.slot < SLOTS {
                        // A level-0 slot holds one deadline: pop straight
                        // from it instead of moving it to the due slot.
                        let idx = self.first_in(e.slot).expect("occupied slot");
                        debug_assert_eq!(self.nodes[idx as usize].deadline, e.deadline);
                        return Some(self.release(idx));
                    }
                    self.cascade(e.slot);
                }
                _ => {
                    self.elapsed = now;
                    return None;
                }
            }
        }
    }

    fn is_live(&self, key: TimerKey) -> bool {
        self.nodes
            .get(key.idx() as usize)
            .is_some_and(|n| n.slot != FREE)
    }

    /// Head of list `list` (`NIL` when empty).
    #[inline]
    fn head(&self, list: usize) -> u32 {
        !self.heads[list]
    }

    #[inline]
    fn set_head(&mut self, list: usize, idx: u32) {
        self.heads[list] = !idx;
    }

    /// Any node of `slot`: the head of its first non-empty lane.
    fn first_in(&self, slot: usize) -> Option<u32> {
        let used = self.lanes_used[slot];
        (used != 0).then(|| self.head(slot * LANES + used.trailing_zeros() as usize))
    }

    /// Slot for a deadline relative to the current `elapsed`.
    fn slot_for(&self, deadline: u64) -> usize {
        if deadline <= self.elapsed {
            return DUE;
        }
        let top_digit = self.elapsed >> TOP_SHIFT;
        // Start of the top-level slot 64 slots ahead: the first tick the
        // wheel cannot represent without wrapping onto the current slot.
        let horizon = (top_digit << TOP_SHIFT).saturating_add(SPAN);
        if deadline >= horizon {
            // Park in the last top-level slot; re-placed when cascaded.
            return (LEVELS - 1) * SLOTS + ((top_digit + SLOT_MASK) & SLOT_MASK) as usize;
        }
        let level = ((self.elapsed ^ deadline) | SLOT_MASK).ilog2() / LEVEL_BITS;
        // Deadlines crossing a 2^36 boundary differ above the top digit but
        // still fit in the top level (in a slot behind the current one).
        let level = level.min(LEVELS as u32 - 1);
        let slot = (deadline >> (level * LEVEL_BITS)) & SLOT_MASK;
        level as usize * SLOTS + slot as usize
    }

    fn next_expiration(&self) -> Option<Expiration> {
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
    fn cascade(&mut self, slot: usize) {
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

    /// Pushes node `idx` onto the front of its lane in `slot`.
    #[inline(always)]
    fn link(&mut self, idx: u32, slot: usize) {
        let list = slot * LANES + idx as usize % LANES;
        let head = self.head(list);
        let node = &mut self.nodes[idx as usize];
        node.next = head;
        node.prev = NIL;
        node.slot = slot as u16;
        if head != NIL {
            self.nodes[head as usize].prev = idx;
        }
        self.set_head(list, idx);
        self.lanes_used[slot] |= 1 << (idx as usize % LANES);
        self.occupied[slot / SLOTS] |= 1 << (slot % SLOTS);
    }

    /// Takes node `idx` off its list, clearing its lane's and slot's bits
    /// when it was the last there.
    #[inline(always)]
    fn unlink(&mut self, idx: u32) {
        let Node {
            next, prev, slot, ..
        } = self.nodes[idx as usize];
        let slot = slot as usize;
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.set_head(slot * LANES + idx as usize % LANES, next);
            if next == NIL {
                self.lanes_used[slot] &= !(1 << (idx as usize % LANES));
                if self.lanes_used[slot] == 0 {
                    self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
                }
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Unlinks node `idx`, moves it to the free list and returns its timer.
    #[inline(never)]
    fn release(&mut self, idx: u32) -> (u64, T) {
        let Node {
            deadline, value, ..
        } = self.nodes[idx as usize];
        self.unlink(idx);
        let node = &mut self.nodes[idx as usize];
        node.slot = FREE;
        node.next = self.free;
        self.free = idx;
        self.len -= 1;
        if self.len == 0 {
            self.shrink();
        }
        (deadline, value)
    }

    /// A new node at the end of the slab, for [`Wheel::insert`] when the
    /// free list is empty. Out of line, as the growth it may call is: in
    /// line it made every insert save and restore registers.
    #[cold]
    #[inline(never)]
    fn push_node(&mut self, node: Node<T>) -> u32 {
        let idx = self.nodes.len();
        assert!(idx < NIL as usize, "timer wheel slab full");
        self.nodes.push(node);
        idx as u32
    }

    /// Nothing pending, so every key is dead and the nodes can go back: a
    /// burst of timers (a million FINs at once) leaves no residue behind.
    /// Out of line for the same reason as [`Wheel::push_node`].
    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        if self.nodes.capacity() > SHRINK_AT {
            self.nodes = Vec::new();
            self.free = NIL;
        }
    }
}

/// Node capacity above which an emptied wheel returns its node storage.
const SHRINK_AT: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls every tick from `elapsed + 1` to `to`, returning (tick, deadline, value).
    fn drive(w: &mut Wheel<u32>, to: u64) -> Vec<(u64, u64, u32)> {
        let mut out = Vec::new();
        for now in w.elapsed() + 1..=to {
            while let Some((d, v)) = w.poll(now) {
                out.push((now, d, v));
            }
            assert_eq!(w.elapsed(), now);
        }
        out
    }

    #[test]
    fn node_is_24_bytes_for_u32() {
        assert!(size_of::<Node<u32>>() <= 24, "{}", size_of::<Node<u32>>());
    }

    #[test]
    fn fires_exactly_at_deadline() {
        let mut w = Wheel::new();
        for d in [1u64, 5, 63, 64, 65, 100, 4095, 4096, 4097, 300_000] {
            w.insert(d, d as u32);
        }
        let fired = drive(&mut w, 300_001);
        assert_eq!(fired.len(), 10);
        for (now, d, v) in fired {
            assert_eq!(now, d, "fired late or early");
            assert_eq!(v as u64, d);
        }
        assert!(w.is_empty());
    }

    #[test]
    fn not_before_deadline_with_coarse_polls() {
        let mut w = Wheel::new();
        w.insert(1000, 7);
        assert_eq!(w.poll(999), None);
        assert_eq!(w.elapsed(), 999);
        assert_eq!(w.next_deadline(), Some(1000));
        assert_eq!(w.poll(5000), Some((1000, 7)));
        assert_eq!(w.poll(5000), None);
        assert_eq!(w.elapsed(), 5000);
    }

    #[test]
    fn past_deadline_fires_on_next_poll() {
        let mut w = Wheel::new();
        w.poll(100);
        w.insert(50, 1);
        w.insert(100, 2);
        assert_eq!(w.next_deadline(), Some(100));
        let mut got = vec![w.poll(100).unwrap(), w.poll(100).unwrap()];
        got.sort();
        assert_eq!(got, vec![(50, 1), (100, 2)]);
        assert_eq!(w.poll(100), None);
    }

    #[test]
    fn same_deadline_all_returned() {
        let mut w = Wheel::new();
        for v in 0..10 {
            w.insert(70, v);
        }
        w.insert(71, 10);
        let mut got: Vec<_> = std::iter::from_fn(|| w.poll(70)).map(|(_, v)| v).collect();
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(w.poll(71), Some((71, 10)));
    }

    #[test]
    fn an_emptied_wheel_gives_its_nodes_back() {
        let mut w = Wheel::new();
        let keys: Vec<TimerKey> = (0..100_000u32)
            .map(|i| w.insert(10 + i as u64, i))
            .collect();
        assert!(w.heap_bytes() >= 100_000 * 24);
        for k in keys {
            w.remove(k);
        }
        assert!(w.heap_bytes() < 100_000, "{}", w.heap_bytes());
        let k = w.insert(5, 7);
        assert_eq!(w.poll(5), Some((5, 7)));
        assert!(w.is_empty());
        let _ = k;
    }

    #[test]
    fn remove_cancels() {
        let mut w = Wheel::new();
        let a = w.insert(10, 1);
        w.insert(10, 2);
        let c = w.insert(5000, 3);
        assert_eq!(w.deadline(c), 5000);
        assert_eq!(w.remove(a), 1);
        assert_eq!(w.remove(c), 3);
        assert_eq!(w.len(), 1);
        assert_eq!(drive(&mut w, 10_000), vec![(10, 10, 2)]);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn reinsert_reuses_freed_nodes() {
        let mut w = Wheel::with_capacity(4);
        let keys: Vec<_> = (0..4).map(|i| w.insert(100 + i, i as u32)).collect();
        let bytes = w.heap_bytes();
        for round in 0..100u32 {
            let k = keys[(round % 4) as usize];
            let d = w.deadline(k);
            w.remove(k);
            let k2 = w.insert(d, round);
            assert_eq!(k2, k, "freed slab entry reused");
        }
        assert_eq!(w.heap_bytes(), bytes);
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn reset_is_remove_then_insert() {
        // Twin wheels: one moves timers with reset, the other with remove
        // and insert. Keys, firing order and emptying must agree, across
        // levels, into the past, and for the sole timer of a large wheel.
        let (mut a, mut b) = (Wheel::new(), Wheel::new());
        let mut keys: Vec<_> = (0..600u32)
            .map(|i| {
                let d = 5 + u64::from(i) * 37 % 5000;
                (a.insert(d, i), b.insert(d, i))
            })
            .collect();
        for (moved, (round, (ka, kb))) in keys.iter_mut().enumerate().step_by(3).enumerate() {
            let d = [2, 700, 90_000, 7][round % 4] + moved as u64 % 11;
            let v = 1000 + round as u32;
            let before = *ka;
            *ka = a.reset(*ka, d, v);
            b.remove(*kb);
            *kb = b.insert(d, v);
            assert_eq!(*ka, before);
            assert_eq!(*ka, *kb);
            assert_eq!(a.deadline(*ka), d);
        }
        assert_eq!(drive(&mut a, 3000), drive(&mut b, 3000));
        let live: Vec<_> = keys.iter().filter(|(k, _)| a.is_live(*k)).collect();
        for &&(ka, kb) in &live[1..] {
            assert_eq!(a.remove(ka), b.remove(kb));
        }
        let (ka, kb) = *live[0];
        assert_eq!(a.len(), 1);
        let (ka, kb) = (a.reset(ka, 4000, 9), {
            b.remove(kb);
            b.insert(4000, 9)
        });
        assert_eq!(ka, kb);
        assert_eq!(a.heap_bytes(), b.heap_bytes());
        assert_eq!(drive(&mut a, 200_000), drive(&mut b, 200_000));
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn far_deadlines_across_levels() {
        let mut w = Wheel::new();
        let ds: Vec<u64> = (0..LEVELS as u32)
            .flat_map(|l| {
                let b = 1u64 << (l * LEVEL_BITS);
                [b * 63 - 1, b * 64, b * 64 + 1, b * 64 * 3 + 17]
            })
            .collect();
        for (i, &d) in ds.iter().enumerate() {
            w.insert(d, i as u32);
        }
        let mut fired = Vec::new();
        // Sleep-driven: jump straight to each next_deadline like a real driver.
        while let Some(next) = w.next_deadline() {
            assert!(next >= w.elapsed());
            while let Some((d, v)) = w.poll(next) {
                assert!(d <= next);
                assert_eq!(
                    d, next,
                    "a lower bound must be reached before the deadline passes"
                );
                fired.push((d, v));
            }
        }
        let mut want: Vec<_> = ds.iter().enumerate().map(|(i, &d)| (d, i as u32)).collect();
        want.sort();
        fired.sort();
        assert_eq!(fired, want);
    }

    #[test]
    fn huge_deadlines_are_clamped_not_lost() {
        let mut w = Wheel::new();
        w.insert(SPAN * 5 + 3, 1);
        let max = w.insert(u64::MAX, 2);
        w.insert(SPAN - 1, 3);
        assert!(w.next_deadline().unwrap() < SPAN);
        assert_eq!(w.poll(SPAN - 2), None);
        assert_eq!(w.poll(SPAN - 1), Some((SPAN - 1, 3)));
        assert_eq!(w.poll(SPAN * 5 + 2), None);
        assert_eq!(w.poll(SPAN * 5 + 3), Some((SPAN * 5 + 3, 1)));
        assert_eq!(w.poll(SPAN * 9), None);
        assert_eq!(w.deadline(max), u64::MAX);
        assert_eq!(w.remove(max), 2);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_near_u64_max() {
        let mut w = Wheel::new();
        assert_eq!(w.poll(u64::MAX - 100), None);
        w.insert(u64::MAX, 1);
        w.insert(u64::MAX - 50, 2);
        assert!(w.next_deadline().unwrap() <= u64::MAX - 50);
        assert_eq!(w.poll(u64::MAX - 51), None);
        assert_eq!(w.poll(u64::MAX - 50), Some((u64::MAX - 50, 2)));
        assert_eq!(w.poll(u64::MAX - 1), None);
        assert_eq!(w.poll(u64::MAX), Some((u64::MAX, 1)));
        assert_eq!(w.poll(u64::MAX), None);
    }

    #[test]
    fn wrap_across_top_level_boundary() {
        let mut w = Wheel::new();
        w.poll(SPAN - 10);
        w.insert(SPAN + 5, 1);
        w.insert(SPAN - 3, 2);
        assert_eq!(w.next_deadline(), Some(SPAN - 3));
        assert_eq!(w.poll(SPAN - 3), Some((SPAN - 3, 2)));
        assert_eq!(w.poll(SPAN + 4), None);
        assert_eq!(w.poll(SPAN + 5), Some((SPAN + 5, 1)));
    }
}
