//! Which local ports an active-opening host holds, and where Linux's connect()
//! starts looking for a free one.
//!
//! Linux keeps one bind bucket per local port (`inet_bind_bucket`); TIME-WAIT
//! mini-sockets keep theirs (`tw_tb`), so a port stays taken until its last
//! TIME-WAIT goes. Here a port's bucket is one `u32` per port of
//! `ip_local_port_range` per local address, made at the first use of that
//! address (28,232 ports: 110 KiB per address): the count of entries (full
//! connections and TIME-WAIT) on it, and a bit for a port taken by `bind()`,
//! which connect() never shares (`tb->fastreuse >= 0` in
//! `__inet_hash_connect`). Only ports the host opened actively are counted;
//! passive entries sit on a listening port, which connect() skips anyway.
//! A second bit says that one of the port's entries goes to the host's first
//! destination (a client host has one or a few): the search for that
//! destination then knows its 4-tuple is taken without the table lookup
//! (`__inet_check_established`) it would otherwise make for every port in use.
//!
//! The search order is `__inet_hash_connect`'s (net/ipv4/inet_hashtables.c):
//! a keyed offset per (saddr, daddr, dport) (`secure_ipv4_port_ephemeral`,
//! net/core/secure_seq.c) plus a per-destination perturbation
//! (`table_perturb`, RFC 6056 algorithm 4) that grows by the ports probed
//! after every success.

mod perturb;
mod taken;

use std::cell::Cell;

use hashbrown::HashTable;

use crate::tuple::Tuple;
use perturb::Peeked;
pub(crate) use perturb::PerturbSlot;
pub(crate) use taken::Taken;

/// How the application obtains its local port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// connect() on an unbound socket, or after bind(addr, 0) with
    /// `IP_BIND_ADDRESS_NO_PORT`: the port is chosen at connect time and may be
    /// shared by connections to other destinations (`__inet_hash_connect`).
    NoPort,
    /// bind(addr, 0) before connect(): the port is chosen by
    /// `inet_csk_get_port` / `inet_csk_find_open_port` without knowing the
    /// destination, so it must be free of every other user.
    BeforeConnect,
}

/// What [`crate::Host::connect_ephemeral`] opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    pub tuple: Tuple,
    /// Ports looked at before one was taken (1 when the first was free).
    pub probed: u32,
    /// The 4-tuple was taken over from a TIME-WAIT entry (`tcp_twsk_unique`;
    /// Linux's `TWRecycled`).
    pub tw_reused: bool,
}

/// The port bucket's bind() bit; the low bits count entries.
const BOUND: u32 = 1 << 31;
/// The port bucket's bit for an entry to [`Ports::first_dest`]: a 4-tuple
/// is unique, so at most one entry on a port sets it.
const TO_FIRST: u32 = 1 << 30;
/// The port bucket's count of entries.
const USERS: u32 = TO_FIRST - 1;

/// The bucket bits that refuse a port to connect() to the first destination
/// without a table lookup, which [`Taken`] mirrors.
const REFUSED: u32 = BOUND | TO_FIRST;

/// A local address and its ports.
struct Local {
    ip: u32,
    /// One bucket per port of the range.
    buckets: Box<[u32]>,
    /// The ports whose bucket has a [`REFUSED`] bit.
    taken: Taken,
}

impl Local {
    /// Sets port `idx`'s bucket to `b`, and its [`Taken`] bit to match.
    #[inline]
    fn set(&mut self, idx: usize, b: u32) {
        self.buckets[idx] = b;
        self.taken.set(idx, b & REFUSED != 0);
    }
}

/// Slots of [`Ports`]' cache of local addresses found.
const RECENT_LOCALS: usize = 64;

/// The index of a local address's buckets, as a search found it: the new
/// entry's [`Ports::acquire_at`] writes its port's bucket without looking
/// the address up again (locals are only added, so an index stays valid).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalAt(usize);

/// Ports in use per local address, and the perturbation table.
pub(crate) struct Ports {
    low: u16,
    high: u16,
    /// [`Ports::even_remaining`], worked out once: every search reads it.
    remaining: u32,
    secret: u64,
    /// The local addresses used, in order of first use.
    locals: Vec<Local>,
    by_ip: HashTable<u32>,
    /// The index into `locals` found last for an address, one slot per
    /// address's low bits (`u32::MAX`: none). One connect() looks its
    /// address up for the search and again for the new entry, and a client
    /// connects from a few dozen addresses in turn (71 for a million
    /// connections to one server): its connect, the hints for the connects
    /// after it and a close each ask for a different one, which a single
    /// "last found" missed nearly every time (then a hashed lookup, some 50
    /// instructions, four a connect).
    recent_local: [Cell<u32>; RECENT_LOCALS],
    /// `table_perturb`, only the slots in use: (index, value).
    perturb: Vec<(u16, u32)>,
    perturb_at: HashTable<u32>,
    /// The destination [`Ports::start`] searched for last: a client
    /// connects to one server, from one address per simulated shard, so the
    /// next search is most often to it and finds its port offset (a keyed
    /// hash) and slot here. Kept apart from `peeked`, which the hints for
    /// the connects after this one fill.
    searched: Option<Peeked>,
    /// The destination [`Ports::peek_start`] looked up last: a driver hints
    /// each connect twice, a connect apart (`Host::prefetch_connect`), and
    /// the second hint finds its hash and slot here. Slots are only added,
    /// so one found stays valid.
    peeked: Cell<Option<Peeked>>,
    /// Draws taken from [`Ports::draw`].
    draws: u64,
    /// The (address, port) of the first active open's peer: buckets mark
    /// their entry to it with [`TO_FIRST`].
    first_dest: Option<(u32, u16)>,
}

impl Ports {
    pub(crate) fn new(range: (u16, u16), secret: u64) -> Ports {
        let len = u32::from(range.1) + 1 - u32::from(range.0);
        Ports {
            low: range.0,
            high: range.1,
            // `remaining` of `__inet_hash_connect`: the range, rounded down
            // to even when above one port.
            remaining: if len > 1 { len & !1 } else { len },
            secret,
            locals: Vec::new(),
            by_ip: HashTable::new(),
            recent_local: [const { Cell::new(u32::MAX) }; RECENT_LOCALS],
            perturb: Vec::new(),
            perturb_at: HashTable::new(),
            searched: None,
            peeked: Cell::new(None),
            draws: 0,
            first_dest: None,
        }
    }

    /// Ports in the range (`high + 1 - low`).
    #[inline]
    pub(crate) fn range_len(&self) -> u32 {
        u32::from(self.high) + 1 - u32::from(self.low)
    }

    #[inline]
    pub(crate) fn low(&self) -> u16 {
        self.low
    }

    /// Whether `port` lies in `ip_local_port_range`: the ports connect()'s
    /// search picks.
    #[inline]
    pub(crate) fn in_range(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// The index of local address `ip` in `locals`. Inlined for an
    /// address found recently, which is nearly always the one asked for;
    /// the hashed search for another is out of line.
    #[inline]
    fn local(&self, ip: u32) -> Option<usize> {
        let i = self.recent_local[ip as usize % RECENT_LOCALS].get() as usize;
        if self.locals.get(i).is_some_and(|l| l.ip == ip) {
            return Some(i);
        }
        self.hash_local(ip)
    }

    /// An address not found recently: hashed.
    #[cold]
    #[inline(never)]
    fn hash_local(&self, ip: u32) -> Option<usize> {
        let locals = &self.locals;
        let i = *self
            .by_ip
            .find(mix(ip as u64), |&i| locals[i as usize].ip == ip)?;
        self.recent_local[ip as usize % RECENT_LOCALS].set(i);
        Some(i as usize)
    }

    fn local_or_insert(&mut self, ip: u32) -> usize {
        if let Some(i) = self.local(ip) {
            return i;
        }
        let i = self.locals.len();
        let len = self.range_len();
        self.locals.push(Local {
            ip,
            buckets: vec![0; len as usize].into_boxed_slice(),
            taken: Taken::new(len),
        });
        let locals = &self.locals;
        self.by_ip.insert_unique(mix(ip as u64), i as u32, |&j| {
            mix(locals[j as usize].ip as u64)
        });
        i
    }

    /// The buckets of local address `ip`, one per port of the range from
    /// [`Ports::low`] (0 when nobody holds the port); None when no entry
    /// ever used the address.
    #[inline]
    pub(crate) fn buckets(&self, ip: u32) -> Option<&[u32]> {
        self.local_at(ip).map(|at| self.buckets_at(at))
    }

    /// Where local address `ip`'s buckets are; None when no entry ever used
    /// the address. Looked up once per port search.
    #[inline]
    pub(crate) fn local_at(&self, ip: u32) -> Option<LocalAt> {
        self.local(ip).map(LocalAt)
    }

    /// The buckets at `at` ([`Ports::buckets`]).
    #[inline]
    pub(crate) fn buckets_at(&self, at: LocalAt) -> &[u32] {
        &self.locals[at.0].buckets
    }

    /// The refused ports of the address at `at` ([`Taken`]).
    #[inline]
    pub(crate) fn taken_at(&self, at: LocalAt) -> &Taken {
        &self.locals[at.0].taken
    }

    /// One more entry on `tuple`'s local port; `bound` marks the port taken by
    /// bind() (`inet_csk_get_port` made the bucket).
    pub(crate) fn acquire(&mut self, tuple: &Tuple, bound: bool) {
        if !self.in_range(tuple.local_port) {
            return;
        }
        let at = LocalAt(self.local_or_insert(tuple.local_ip));
        self.acquire_at(at, tuple, bound);
    }

    /// [`Ports::acquire`] for a port of the range whose address's buckets a
    /// search found at `at`.
    #[inline]
    pub(crate) fn acquire_at(&mut self, at: LocalAt, tuple: &Tuple, bound: bool) {
        debug_assert!(self.in_range(tuple.local_port));
        debug_assert_eq!(self.locals[at.0].ip, tuple.local_ip);
        let dest = (tuple.remote_ip, tuple.remote_port);
        let to_first = *self.first_dest.get_or_insert(dest) == dest;
        let idx = usize::from(tuple.local_port - self.low);
        let local = &mut self.locals[at.0];
        let b = (local.buckets[idx] + 1)
            | if bound { BOUND } else { 0 }
            | if to_first { TO_FIRST } else { 0 };
        local.set(idx, b);
    }

    /// An entry on `tuple`'s local port left the table: the bucket goes with
    /// its last user (`inet_bind_bucket_destroy`).
    pub(crate) fn release(&mut self, tuple: &Tuple) {
        if !self.in_range(tuple.local_port) {
            return;
        }
        let Some(i) = self.local(tuple.local_ip) else {
            return;
        };
        let to_first = self.first_dest == Some((tuple.remote_ip, tuple.remote_port));
        let idx = usize::from(tuple.local_port - self.low);
        let local = &mut self.locals[i];
        let b = local.buckets[idx];
        let b = if b & USERS <= 1 {
            0
        } else if to_first {
            (b - 1) & !TO_FIRST
        } else {
            b - 1
        };
        local.set(idx, b);
    }

    /// Whether bind() took the port of `bucket`: connect() skips it.
    #[inline]
    pub(crate) fn is_bound(bucket: u32) -> bool {
        bucket & BOUND != 0
    }

    /// Whether `(ip, port)` is the first destination, whose entries the
    /// buckets mark.
    #[inline]
    pub(crate) fn is_first_dest(&self, ip: u32, port: u16) -> bool {
        self.first_dest == Some((ip, port))
    }

    /// Whether the port of `bucket` holds an entry to the first destination:
    /// the 4-tuple from this port to it is in the table.
    #[inline]
    pub(crate) fn holds_first_dest(bucket: u32) -> bool {
        bucket & TO_FIRST != 0
    }

    /// Heap bytes (for [`crate::Host::heap_bytes`]).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.locals.capacity() * std::mem::size_of::<Local>()
            + self
                .locals
                .iter()
                .map(|l| l.buckets.len() * 4 + l.taken.heap_bytes())
                .sum::<usize>()
            + self.by_ip.capacity() * 5
            + self.perturb.capacity() * 8
            + self.perturb_at.capacity() * 5
    }
}

/// A cheap 64-bit mix for the small lookup tables here (splitmix64's finaliser).
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
