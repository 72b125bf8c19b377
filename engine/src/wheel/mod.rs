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
//!   `LANES`), and each node records its list, so insert and cancel are
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

mod levels;
mod lists;
#[cfg(test)]
mod tests;

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
/// `Node::list` of a node sitting in the free list.
const FREE: u16 = u16::MAX;
const _: () = assert!(LISTS <= FREE as usize, "a list index fits Node::list");
const NIL: u32 = u32::MAX;

/// Handle returned by [`Wheel::insert`]; invalid once the timer fired or was
/// removed (the slab index may then be reused by another timer).
///
/// The slab index with the top bit (`KEY_BIT`) set, non-zero so that `Option<TimerKey>`
/// takes four bytes: that is where a connection keeps its peer's timestamp.
/// One instruction each way (the index plus one took three to encode, its
/// overflow saturated), for a slab capped at 2^31 nodes (`MAX_NODES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(std::num::NonZeroU32);

/// The bit every [`TimerKey`] sets above its slab index.
const KEY_BIT: u32 = 1 << 31;
/// Nodes the slab may hold: every index is below [`KEY_BIT`].
const MAX_NODES: usize = KEY_BIT as usize;

impl TimerKey {
    #[inline]
    fn new(idx: u32) -> TimerKey {
        debug_assert!(idx < KEY_BIT);
        match std::num::NonZeroU32::new(idx | KEY_BIT) {
            Some(k) => TimerKey(k),
            None => unreachable!("KEY_BIT is set"),
        }
    }

    #[inline]
    fn idx(self) -> u32 {
        self.0.get() & !KEY_BIT
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
    /// List holding the node (`slot * LANES + lane`, the due slot's
    /// included; `FREE` on the free list), so that cancel finds its head
    /// without recomputing it, and its slot and lane (the node index modulo
    /// `LANES`) when it empties one.
    list: u16,
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
        Wheel {
            elapsed: 0,
            nodes: Vec::new(),
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

    /// Preallocates the slab for `n` pending timers, its nodes on the free
    /// list in index order. Inserts pop them as `insert_new` would
    /// have pushed them (the lowest unused index, under any node freed
    /// since), so the keys and the firing order are the same, without the
    /// out-of-line call and the push on each node's first use. The nodes
    /// are written now (resident at once, as an opening burst makes them).
    pub fn with_capacity(n: usize) -> Self
    where
        T: Default,
    {
        let n = n.min(MAX_NODES);
        let mut w = Self::new();
        let free = Node {
            deadline: 0,
            next: NIL,
            prev: NIL,
            list: FREE,
            value: T::default(),
        };
        w.nodes = vec![free; n];
        for (i, node) in (1..).zip(&mut w.nodes) {
            node.next = i;
        }
        if let Some(last) = w.nodes.last_mut() {
            last.next = NIL;
            w.free = 0;
        }
        w
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

    /// Nodes the slab holds without growing.
    #[cfg(test)]
    pub(crate) fn node_capacity(&self) -> usize {
        self.nodes.capacity()
    }

    /// Heap bytes owned by the wheel, counted by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node<T>>() + size_of::<[u32; LISTS]>()
    }

    /// Schedules `value` at `deadline`. A deadline at or before `elapsed`
    /// fires on the next poll.
    ///
    /// # Panics
    /// If more than `2^31` timers are pending at once.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let slot = self.slot_for(deadline);
        let idx = self.free;
        // `NIL` is never in the slab (it holds fewer nodes), so the lookup
        // is the test for an empty free list and the bounds check in one.
        let Some(node) = self.nodes.get_mut(idx as usize) else {
            return self.insert_new(deadline, value, slot);
        };
        // Only the timer is written here: `link` writes the rest.
        self.free = node.next;
        node.deadline = deadline;
        node.value = value;
        // A burst of inserts pops nodes freed long ago, one miss each in
        // a chain: ask for the next one while this insert links. Asked
        // untested: at the end of the free list the address is past the
        // slab, and a prefetch there is harmless.
        crate::index::prefetch_addr(self.nodes.as_ptr().wrapping_add(self.free as usize));
        self.link(idx, slot);
        self.len += 1;
        TimerKey::new(idx)
    }

    /// [`Wheel::insert`] into a new node at the end of the slab, the free
    /// list being empty. Out of line, as the growth it may call is: in line
    /// it made every insert save and restore registers, and the two paths
    /// joined made the common one check its node's index twice.
    #[cold]
    #[inline(never)]
    fn insert_new(&mut self, deadline: u64, value: T, slot: usize) -> TimerKey {
        let idx = self.nodes.len();
        assert!(idx < MAX_NODES, "timer wheel slab full");
        self.nodes.push(Node {
            deadline,
            next: NIL,
            prev: NIL,
            list: FREE,
            value,
        });
        let idx = idx as u32;
        self.link(idx, slot);
        self.len += 1;
        TimerKey::new(idx)
    }

    /// Cancels a pending timer in O(1) and returns its payload. In line, the
    /// release with it: a cancel is one store and a few tests past the
    /// unlink, cheaper than the call.
    #[inline(always)]
    pub fn remove(&mut self, key: TimerKey) -> T {
        debug_assert!(self.is_live(key), "remove of a dead TimerKey");
        self.take(key.idx()).1
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
            return self.reset_last(key, deadline, value);
        }
        let idx = key.idx();
        let node = &mut self.nodes[idx as usize];
        let Node {
            next, prev, list, ..
        } = *node;
        node.deadline = deadline;
        node.value = value;
        self.unlink_from(next, prev, list);
        // Placed after the unlink: computed before, the slot was held
        // through it, and every reset saved and restored more registers.
        let slot = self.slot_for(deadline);
        self.link(idx, slot);
        key
    }

    /// [`Wheel::reset`] of the only timer: taken out, it empties the wheel,
    /// which may give back its nodes (and so change the key), so it is
    /// removed and inserted. Out of line: the calls made every reset save
    /// and restore its arguments.
    #[cold]
    #[inline(never)]
    fn reset_last(&mut self, key: TimerKey, deadline: u64, value: T) -> TimerKey {
        self.remove(key);
        self.insert(deadline, value)
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
                return Some(self.take(idx));
            }
            match self.next_expiration() {
                Some(e) if e.deadline <= now => {
                    self.elapsed = e.deadline;
                    if e.slot < SLOTS {
                        // A level-0 slot holds one deadline: pop straight
                        // from it instead of moving it to the due slot.
                        let idx = self.first_in(e.slot).expect("occupied slot");
                        debug_assert_eq!(self.nodes[idx as usize].deadline, e.deadline);
                        return Some(self.take(idx));
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
            .is_some_and(|n| n.list != FREE)
    }
}
