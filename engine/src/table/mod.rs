//! One shard's connection table: an `Index` of 4-byte references.
//!
//! The index holds only a `u32` per connection: either an index into a
//! chunked `Slab` of `ConnRecord`s, or (top bit set) a position in the
//! `TwRing` of compact TIME-WAIT records. The tuple is read through the
//! reference, its fixed end from the table's `Endpoints`, so a TIME-WAIT
//! entry costs its 24-byte record plus 5⅓ bytes of bucket (a 64-byte bucket
//! holds 12) over the index's load factor. Shards are chosen by
//! [`crate::tuple::shard_of`]; each shard is owned by one thread.

use std::time::Duration;

#[cfg(feature = "bench-hooks")]
use crate::conn::TimeoutsUs;
use crate::conn::{Conn, ConnRecord};
use crate::endpoint::{Packed, Side};
use crate::index::{prefetch_line, Index};
#[cfg(feature = "bench-hooks")]
use crate::seq::Seq;
use crate::state::State;
#[cfg(any(test, feature = "bench-hooks"))]
use crate::timewait::TwEntry;
use crate::timewait::{TwRecord, POS_MASK};
use crate::tuple::{HashKey, Tuple};

mod conn;
mod entries;
mod recent;
mod time_wait;

pub(crate) use conn::Hit;
use entries::{ConnRare, Entries, TwRare};

const TW_BIT: u32 = 1 << 31;

/// Bytes of one full connection's record in the slab: a promise the memory
/// plan and the README's per-entry figures rest on.
pub const CONN_BYTES: usize = 56;
/// Bytes of one TIME-WAIT record in the ring (Linux's `tw_sock_TCP` is 256).
pub const TIME_WAIT_BYTES: usize = 24;
const _: () = assert!(std::mem::size_of::<ConnRecord>() == CONN_BYTES);
const _: () = assert!(std::mem::size_of::<TwRecord>() == TIME_WAIT_BYTES);

/// The TIME-WAIT length a table assumes until told (Linux's `TCP_TIMEWAIT_LEN`).
const TIME_WAIT_MS: u32 = 60_000;

/// What [`Table::remove`] took out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Removed {
    Conn(Conn),
    TimeWait,
}

/// What a table lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A full connection, by slab index.
    Conn(u32),
    /// A TIME-WAIT entry, by ring position.
    TimeWait(u64),
}

/// One shard of the connection table.
pub struct Table {
    map: Index,
    e: Entries,
    tw_len: usize,
    /// Ring slots no longer referenced (restarted or removed entries).
    stale: usize,
    key: HashKey,
    /// How long TIME-WAIT lasts, so that a record's close() offset can count
    /// back from its (re)start, which is its expiry less this.
    time_wait_ms: u32,
    /// The endpoint the last new connection was packed under: its local
    /// address, fixed port and side, and index. A host accepts on a listener
    /// or connects to a service, one or a few, so nearly every insert names
    /// its connection from this without interning, whose miss path (a
    /// call, with the insert's values live across it) made every insert
    /// save and restore six registers ([`Table::insert_reserved`]).
    new_ep: Option<(u32, u16, Side, u16)>,
}

impl Table {
    /// An empty table whose hash is keyed by `key` (from the driver's secret).
    pub fn new(key: u64) -> Table {
        Table::with_capacity(key, 0)
    }

    /// An empty table with buckets for `n` entries.
    pub fn with_capacity(key: u64, n: usize) -> Table {
        Table {
            map: Index::with_capacity(n),
            e: Entries::default(),
            tw_len: 0,
            stale: 0,
            key: HashKey::from(key),
            time_wait_ms: TIME_WAIT_MS,
            new_ep: None,
        }
    }

    /// The table of a host whose TIME-WAIT lasts `time_wait` (60 s unless
    /// told): TIME-WAIT records keep close() as an offset before their start,
    /// which this places. Any length is correct; the right one keeps the
    /// offsets small enough to stay in the record.
    pub fn with_time_wait(mut self, time_wait: Duration) -> Table {
        self.time_wait_ms = u32::try_from(time_wait.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// When a TIME-WAIT entry expiring at `expires_ms` (re)started: its
    /// expiry less TIME-WAIT's length, as the records count it.
    #[inline]
    pub(crate) fn time_wait_start(&self, expires_ms: u32) -> u32 {
        expires_ms.wrapping_sub(self.time_wait_ms)
    }

    /// Entries of any state.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// TIME-WAIT entries.
    pub fn time_wait_len(&self) -> usize {
        self.tw_len
    }

    /// Heap bytes this table owns, from its allocations' capacities. The counting
    /// allocator (`teardown::alloc`) checks this figure in the tests.
    pub fn heap_bytes(&self) -> usize {
        self.map.allocation_size()
            + self.e.conns.heap_bytes()
            + self.e.conn_rare.heap_bytes()
            + self.e.tw.heap_bytes()
            + self.e.tw_rare.heap_bytes()
            + self.e.eps.heap_bytes()
    }

    #[inline]
    fn tw_ref(pos: u64) -> u32 {
        TW_BIT | (pos & POS_MASK) as u32
    }

    /// First half of a lookup ahead of time: brings `tuple`'s index bucket
    /// into cache. Issue it a few segments before [`Table::prefetch_entry`].
    #[inline]
    pub(crate) fn prefetch_bucket(&self, tuple: &Tuple) {
        self.map.prefetch(tuple.hash(self.key));
    }

    /// Second half: reads the bucket (in cache by now) and brings in the
    /// connection record (its one or two slab lines) or TIME-WAIT record its
    /// matching tags point to.
    #[inline]
    pub(crate) fn prefetch_entry(&self, tuple: &Tuple) {
        for r in self.map.home_candidates(tuple.hash(self.key)) {
            if r & TW_BIT != 0 {
                prefetch_line(self.e.tw.at(self.e.tw.resolve(r & !TW_BIT)));
            } else {
                self.e.conns.prefetch(r);
            }
        }
    }

    /// Looks `tuple` up.
    #[inline(always)]
    pub(crate) fn find(&self, tuple: &Tuple) -> Option<Found> {
        self.find_hashed(tuple, self.hash(tuple))
    }

    /// `tuple`'s keyed hash, for a lookup that may be followed by an insert
    /// ([`Table::find_hashed`], [`Table::insert_reserved`]).
    #[inline(always)]
    pub(crate) fn hash(&self, tuple: &Tuple) -> u64 {
        tuple.hash(self.key)
    }

    /// [`Table::find`] given `tuple`'s [`Table::hash`].
    #[inline(always)]
    pub(crate) fn find_hashed(&self, tuple: &Tuple, hash: u64) -> Option<Found> {
        let e = &self.e;
        self.map.find(hash, e.named(tuple)).map(|r| {
            if r & TW_BIT != 0 {
                Found::TimeWait(e.tw.resolve(r & !TW_BIT))
            } else {
                Found::Conn(r)
            }
        })
    }

    /// [`Table::find`] for an application's call on a full connection:
    /// one the host touched last is found without hashing ([`recent::Recent`]).
    /// A full connection found either way is in its recent slot after, so
    /// the call's write-back ([`Table::set_found_conn`]) need not put it
    /// there again.
    #[inline(always)]
    pub(crate) fn find_conn(&mut self, tuple: &Tuple) -> Option<Found> {
        match self.e.recent.get(tuple) {
            Some(idx) => {
                debug_assert_eq!(self.find(tuple), Some(Found::Conn(idx)));
                Some(Found::Conn(idx))
            }
            None => self.find_conn_slow(tuple),
        }
    }

    /// [`Table::find_conn`] when the recent slots do not hold `tuple`.
    #[inline(never)]
    fn find_conn_slow(&mut self, tuple: &Tuple) -> Option<Found> {
        let found = self.find(tuple);
        if let Some(Found::Conn(idx)) = found {
            self.e.recent.put(tuple, idx);
        }
        found
    }

    /// Removes `tuple`, whatever its state, in one probe.
    pub(crate) fn remove(&mut self, tuple: &Tuple) -> Option<Removed> {
        let e = &self.e;
        let r = self.map.remove(tuple.hash(self.key), e.named(tuple))?;
        if r & TW_BIT != 0 {
            let pos = self.e.tw.resolve(r & !TW_BIT);
            self.e.take_tw_rare(pos);
            self.tw_len -= 1;
            self.stale += 1;
            Some(Removed::TimeWait)
        } else {
            Some(Removed::Conn(self.e.remove_conn(r)))
        }
    }

    /// Adds a new connection (`last_oow_ms` 0, as `Conn::new` makes it)
    /// whose tuple is not in the table yet. Its fixed end is the remote port
    /// if we connected (SYN-SENT), else the local one.
    #[cfg(any(test, feature = "bench-hooks"))]
    pub(crate) fn insert_conn(&mut self, conn: Conn) -> u32 {
        let idx = self.reserve_conn(&conn);
        self.insert_reserved(idx, &conn, self.hash(&conn.tuple));
        idx
    }

    /// A slab slot for new connection `conn`, named before it is stored: its
    /// first segment (which names it to the timers) goes out first, and
    /// [`Table::insert_reserved`] then stores it, once, as it is after
    /// sending. Nothing may insert into the table in between.
    #[inline]
    pub(crate) fn reserve_conn(&mut self, conn: &Conn) -> u32 {
        self.e.conns.reserve(|| conn.record(Packed::default()))
    }

    /// `Table::insert_conn` (test and bench builds) into the slot
    /// [`Table::reserve_conn`] took, given the tuple's [`Table::hash`]: a SYN
    /// that found no entry is inserted without hashing its tuple again. The
    /// new connection is not put in the recent slots: the application's first
    /// call on it nearly always follows a segment of it, whose write-back
    /// ([`Table::set_conn`]) puts it there, and [`Table::find_conn`] falls
    /// back to the index. Under the endpoint the insert before was packed
    /// under ([`Table::new_ep`]), the name is made here; else interned out of
    /// line.
    pub(crate) fn insert_reserved(&mut self, idx: u32, conn: &Conn, hash: u64) {
        debug_assert_eq!(hash, self.hash(&conn.tuple));
        debug_assert_eq!(conn.last_oow_ms, 0);
        let t = &conn.tuple;
        let (side, port, other) = Self::fixed_end(conn);
        let Some((.., ep)) = self
            .new_ep
            .filter(|e| (e.0, e.1, e.2) == (t.local_ip, port, side))
        else {
            return self.insert_packing(idx, conn, hash);
        };
        let name = Packed {
            remote_ip: t.remote_ip,
            port: other,
            ep,
        };
        debug_assert_eq!(self.e.eps.tuple(&name), Some(*t));
        self.e.conns.set(idx, conn.record(name));
        self.index_insert(idx, hash);
    }

    /// The side, fixed port and other port of new connection `conn`: the
    /// remote port is fixed if we connected (SYN-SENT), else the local one.
    #[inline(always)]
    fn fixed_end(conn: &Conn) -> (Side, u16, u16) {
        let t = &conn.tuple;
        match conn.state {
            State::SynSent => (Side::Client, t.remote_port, t.local_port),
            _ => (Side::Server, t.local_port, t.remote_port),
        }
    }

    /// [`Table::insert_reserved`] under an endpoint other than the last
    /// one: interned, and remembered unless spilled.
    #[cold]
    #[inline(never)]
    fn insert_packing(&mut self, idx: u32, conn: &Conn, hash: u64) {
        let (side, port, _) = Self::fixed_end(conn);
        let name = self.e.eps.pack(&conn.tuple, side);
        self.e.conns.set(idx, conn.record(name));
        // A new connection has sent no out-of-window ACK yet
        // (`last_oow_ack_time` starts at 0), so only a spilled tuple needs
        // rare fields.
        debug_assert_eq!(conn.last_oow_ms, 0);
        if name.spilled() {
            self.put_conn_rare(idx, 0, conn.tuple);
        } else {
            self.new_ep = Some((conn.tuple.local_ip, port, side, name.ep));
        }
        self.index_insert(idx, hash);
    }

    /// Puts slab entry `idx`, whose tuple's hash is `hash`, in the index.
    #[inline(always)]
    fn index_insert(&mut self, idx: u32, hash: u64) {
        let (e, key) = (&self.e, self.key);
        self.map
            .insert_unique(hash, idx, |r| e.tuple_of(r).hash(key));
    }

    /// For `benches/table.rs`, which sets this table beside std's `HashMap` and
    /// `DashMap`: the engine's own insert path (a fresh [`Conn`] into the slab and
    /// its reference into the map), without the timer and segment work of
    /// [`crate::Host::connect`] that would swamp it.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_insert(&mut self, tuple: Tuple) {
        self.insert_conn(Conn::new(
            tuple,
            State::Established,
            Seq(0),
            &Self::bench_timeouts(),
        ));
    }

    /// The bench hooks' entries have the default profile's RTO (the table
    /// reads none).
    #[cfg(feature = "bench-hooks")]
    fn bench_timeouts() -> TimeoutsUs {
        TimeoutsUs::new(&crate::Config::default())
    }

    /// For `benches/table.rs`: a lookup, as [`crate::Host::handle`] starts.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_find(&self, tuple: &Tuple) -> bool {
        self.find(tuple).is_some()
    }

    /// For the planner's memory test: a connection straight into TIME-WAIT,
    /// expiring at `expires_ms`, as [`crate::Host`]'s close path stores it
    /// (closed as it entered).
    #[cfg(feature = "bench-hooks")]
    pub fn bench_time_wait(&mut self, tuple: Tuple, expires_ms: u32) {
        let idx = self.insert_conn(Conn::new(
            tuple,
            State::FinWait1,
            Seq(0),
            &Self::bench_timeouts(),
        ));
        let start = self.time_wait_start(expires_ms);
        let e = TwEntry {
            tuple,
            expires_ms,
            entry_ms: start,
            close_ms: start,
            ..TwEntry::default()
        };
        let _ = self.conn_to_time_wait(idx, e);
    }

    /// For the planner's memory test: drops every TIME-WAIT entry expired at `now_ms`.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_expire(&mut self, now_ms: u32) {
        while self.pop_expired_time_wait(now_ms).is_some() {}
    }

    /// For `benches/table.rs`: find and remove, as [`crate::Host::forget`] does
    /// without the timer work.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_remove(&mut self, tuple: &Tuple) -> bool {
        self.remove(tuple).is_some()
    }

    /// Iterates over all full connections.
    #[cfg(test)]
    pub(crate) fn conn_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.map.iter().filter(|r| r & TW_BIT == 0)
    }
}

#[cfg(test)]
mod tests;
