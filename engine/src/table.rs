//! One shard's connection table: an [`Index`] of 4-byte references.
//!
//! The index holds only a `u32` per connection: either an index into a
//! chunked [`Slab`] of full [`Conn`]s, or (top bit set) a position in the
//! [`TwRing`] of compact TIME-WAIT entries. The tuple is read through the
//! reference, so a TIME-WAIT entry costs its 28-byte record plus 5⅓ bytes
//! of bucket (a 64-byte bucket holds 12) over the index's load factor.
//! Shards are chosen by [`crate::tuple::shard_of`]; each shard is owned by
//! one thread.

use hashbrown::HashTable;

use crate::conn::Conn;
use crate::index::{prefetch_line, Index};
use crate::slab::Slab;
use crate::timewait::{TwEntry, TwRecord, TwRing, OOW_BIT, POS_MASK, TS_BIT};
use crate::tuple::Tuple;
#[cfg(feature = "bench-hooks")]
use crate::{seq::Seq, state::State};

const TW_BIT: u32 = 1 << 31;

/// Bytes of one full connection's record in the slab: a promise the memory
/// plan and the README's per-entry figures rest on.
pub const CONN_BYTES: usize = 64;
/// Bytes of one TIME-WAIT record in the ring (Linux's `tw_sock_TCP` is 256).
pub const TIME_WAIT_BYTES: usize = 28;
const _: () = assert!(std::mem::size_of::<Conn>() == CONN_BYTES);
const _: () = assert!(std::mem::size_of::<TwRecord>() == TIME_WAIT_BYTES);

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
    conns: Slab<Conn>,
    tw: TwRing,
    tw_len: usize,
    /// Ring slots no longer referenced (restarted or removed entries).
    stale: usize,
    key: u64,
    /// The local addresses TIME-WAIT records name by index (a server has a
    /// handful; [`TwRecord`] keeps 14 bits for the index).
    locals: Vec<u32>,
    local_index: HashTable<u16>,
    /// `last_oow_ms` of the TIME-WAIT entries that have one, by ring
    /// position: only entries that rate-limited an out-of-window ACK (or an
    /// orphan's FIN-WAIT-2 that did), so a few bytes here spare four in
    /// every record. A record with [`OOW_BIT`] has an entry here.
    oow: HashTable<(u64, u32)>,
}

/// Most local addresses one table's TIME-WAIT records can name.
const MAX_LOCALS: usize = OOW_BIT as usize;

/// Local-address bits of [`TwRecord::local_ip_ts`].
const LOCAL_MASK: u16 = !(TS_BIT | OOW_BIT);

#[inline]
fn spread(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
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
            conns: Slab::default(),
            tw: TwRing::default(),
            tw_len: 0,
            stale: 0,
            key,
            locals: Vec::new(),
            local_index: HashTable::new(),
            oow: HashTable::new(),
        }
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
    /// allocator ([`crate::alloc`]) checks this figure in the tests.
    pub fn heap_bytes(&self) -> usize {
        self.map.allocation_size()
            + self.conns.heap_bytes()
            + self.tw.heap_bytes()
            + self.locals.capacity() * 4
            + self.local_index.allocation_size()
            + self.oow.allocation_size()
    }

    #[inline]
    fn tuple_of(conns: &Slab<Conn>, tw: &TwRing, locals: &[u32], r: u32) -> Tuple {
        if r & TW_BIT != 0 {
            Self::record_tuple(locals, tw.at(tw.resolve(r & !TW_BIT)))
        } else {
            conns.get(r).tuple
        }
    }

    #[inline]
    fn record_tuple(locals: &[u32], rec: &TwRecord) -> Tuple {
        Tuple {
            local_ip: locals
                .get((rec.local_ip_ts & LOCAL_MASK) as usize)
                .copied()
                .unwrap_or(0),
            remote_ip: rec.remote_ip,
            local_port: rec.local_port,
            remote_port: rec.remote_port,
        }
    }

    /// The index of local address `ip`, added if new; `None` once
    /// [`MAX_LOCALS`] are taken.
    fn local_index(&mut self, ip: u32) -> Option<u16> {
        let hash = |ip: u32| spread(ip as u64);
        let locals = &self.locals;
        if let Some(&i) = self
            .local_index
            .find(hash(ip), |&i| locals[i as usize] == ip)
        {
            return Some(i);
        }
        if self.locals.len() >= MAX_LOCALS {
            return None;
        }
        let i = self.locals.len() as u16;
        self.locals.push(ip);
        let locals = &self.locals;
        self.local_index
            .insert_unique(hash(ip), i, |&j| hash(locals[j as usize]));
        Some(i)
    }

    fn pack(&mut self, e: &TwEntry) -> Option<TwRecord> {
        let local = self.local_index(e.tuple.local_ip)?;
        Some(TwRecord {
            remote_ip: e.tuple.remote_ip,
            local_port: e.tuple.local_port,
            remote_port: e.tuple.remote_port,
            local_ip_ts: local | if e.ts_recent.is_some() { TS_BIT } else { 0 },
            expires_off: 0,
            snd_nxt: e.snd_nxt,
            rcv_nxt: e.rcv_nxt,
            close_ms: e.close_ms,
            ts_recent: e.ts_recent.unwrap_or(0),
        })
    }

    #[inline]
    fn unpack(&self, pos: u64) -> TwEntry {
        let rec = self.tw.at(pos);
        let last_oow_ms = if rec.local_ip_ts & OOW_BIT != 0 {
            self.oow_at(pos)
        } else {
            0
        };
        TwEntry {
            tuple: Self::record_tuple(&self.locals, rec),
            snd_nxt: rec.snd_nxt,
            rcv_nxt: rec.rcv_nxt,
            expires_ms: self.tw.expires_ms(pos),
            close_ms: rec.close_ms,
            last_oow_ms,
            ts_recent: (rec.local_ip_ts & TS_BIT != 0).then_some(rec.ts_recent),
        }
    }

    /// The `last_oow_ms` kept for slot `pos`, 0 if none. Out of line: few
    /// entries have one.
    #[cold]
    fn oow_at(&self, pos: u64) -> u32 {
        self.oow
            .find(spread(pos), |&(p, _)| p == pos)
            .map_or(0, |&(_, ms)| ms)
    }

    /// Takes the `last_oow_ms` kept for slot `pos` (0 if none) and clears
    /// the slot's flag.
    #[inline]
    fn take_oow(&mut self, pos: u64) -> u32 {
        let rec = self.tw.at_mut(pos);
        if rec.local_ip_ts & OOW_BIT == 0 {
            return 0;
        }
        rec.local_ip_ts &= !OOW_BIT;
        self.remove_oow(pos)
    }

    #[cold]
    fn remove_oow(&mut self, pos: u64) -> u32 {
        match self.oow.find_entry(spread(pos), |&(p, _)| p == pos) {
            Ok(e) => e.remove().0 .1,
            Err(_) => 0,
        }
    }

    /// Keeps `last_oow_ms` for slot `pos` (0 keeps nothing).
    #[inline]
    fn put_oow(&mut self, pos: u64, last_oow_ms: u32) {
        if last_oow_ms != 0 {
            self.insert_oow(pos, last_oow_ms);
        }
    }

    #[cold]
    fn insert_oow(&mut self, pos: u64, last_oow_ms: u32) {
        let rec = self.tw.at_mut(pos);
        if rec.local_ip_ts & OOW_BIT != 0 {
            if let Some(e) = self.oow.find_mut(spread(pos), |&(p, _)| p == pos) {
                e.1 = last_oow_ms;
                return;
            }
        }
        rec.local_ip_ts |= OOW_BIT;
        self.oow
            .insert_unique(spread(pos), (pos, last_oow_ms), |&(p, _)| spread(p));
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
    /// slab line or TIME-WAIT record its matching tags point to.
    #[inline]
    pub(crate) fn prefetch_entry(&self, tuple: &Tuple) {
        for r in self.map.home_candidates(tuple.hash(self.key)) {
            if r & TW_BIT != 0 {
                prefetch_line(self.tw.at(self.tw.resolve(r & !TW_BIT)));
            } else {
                prefetch_line(self.conns.get(r));
            }
        }
    }

    /// Looks `tuple` up.
    #[inline(always)]
    pub(crate) fn find(&self, tuple: &Tuple) -> Option<Found> {
        let (conns, tw, locals) = (&self.conns, &self.tw, &self.locals);
        self.map
            .find(tuple.hash(self.key), |r| {
                Self::tuple_of(conns, tw, locals, r) == *tuple
            })
            .map(|r| {
                if r & TW_BIT != 0 {
                    Found::TimeWait(tw.resolve(r & !TW_BIT))
                } else {
                    Found::Conn(r)
                }
            })
    }

    /// Removes `tuple`, whatever its state, in one probe.
    pub(crate) fn remove(&mut self, tuple: &Tuple) -> Option<Removed> {
        let (conns, tw, locals) = (&self.conns, &self.tw, &self.locals);
        let r = self.map.remove(tuple.hash(self.key), |r| {
            Self::tuple_of(conns, tw, locals, r) == *tuple
        })?;
        if r & TW_BIT != 0 {
            self.take_oow(self.tw.resolve(r & !TW_BIT));
            self.tw_len -= 1;
            self.stale += 1;
            Some(Removed::TimeWait)
        } else {
            Some(Removed::Conn(self.conns.remove(r)))
        }
    }

    /// Adds a connection whose tuple is not in the table yet.
    pub(crate) fn insert_conn(&mut self, conn: Conn) -> u32 {
        let hash = conn.tuple.hash(self.key);
        let idx = self.conns.insert(conn);
        let (conns, tw, locals, key) = (&self.conns, &self.tw, &self.locals, self.key);
        self.map.insert_unique(hash, idx, |r| {
            Self::tuple_of(conns, tw, locals, r).hash(key)
        });
        idx
    }

    #[inline]
    pub(crate) fn conn(&self, idx: u32) -> &Conn {
        self.conns.get(idx)
    }

    #[inline]
    pub(crate) fn conn_mut(&mut self, idx: u32) -> &mut Conn {
        self.conns.get_mut(idx)
    }

    /// Removes a full connection (it reached CLOSED).
    pub(crate) fn remove_conn(&mut self, idx: u32) -> Conn {
        let hash = self.conns.get(idx).tuple.hash(self.key);
        self.map.remove(hash, |r| r == idx);
        self.conns.remove(idx)
    }

    /// Replaces full connection `idx` by a compact TIME-WAIT entry; returns
    /// its position, or `None` (and the connection stays) when the table
    /// cannot name one more local address.
    pub(crate) fn conn_to_time_wait(&mut self, idx: u32, e: TwEntry) -> Option<u64> {
        let rec = self.pack(&e)?;
        let hash = e.tuple.hash(self.key);
        let pos = self.tw.push(rec, e.expires_ms);
        self.put_oow(pos, e.last_oow_ms);
        if let Some(r) = self.map.find_mut(hash, |r| r == idx) {
            *r = Self::tw_ref(pos);
        }
        self.conns.remove(idx);
        self.tw_len += 1;
        Some(pos)
    }

    #[inline]
    pub(crate) fn time_wait(&self, pos: u64) -> TwEntry {
        self.unpack(pos)
    }

    /// Records an out-of-window ACK sent by entry `pos`.
    #[inline]
    pub(crate) fn set_time_wait_oow(&mut self, pos: u64, last_oow_ms: u32) {
        self.put_oow(pos, last_oow_ms);
    }

    /// Records the peer's timestamp on entry `pos` (which negotiated them).
    #[inline]
    pub(crate) fn set_time_wait_ts(&mut self, pos: u64, ts_recent: u32) {
        let rec = self.tw.at_mut(pos);
        rec.local_ip_ts |= TS_BIT;
        rec.ts_recent = ts_recent;
    }

    /// Moves TIME-WAIT entry `pos` to the tail with a new expiry (its timer restarted).
    /// The old slot goes stale. Returns the new position.
    pub(crate) fn restart_time_wait(&mut self, pos: u64, expires_ms: u32) -> u64 {
        let rec = *self.tw.at(pos);
        let hash = Self::record_tuple(&self.locals, &rec).hash(self.key);
        let old = Self::tw_ref(pos);
        let new_pos = self.tw.push(rec, expires_ms);
        self.tw.at_mut(new_pos).local_ip_ts &= !OOW_BIT;
        let last_oow_ms = self.take_oow(pos);
        self.put_oow(new_pos, last_oow_ms);
        if let Some(r) = self.map.find_mut(hash, |r| r == old) {
            *r = Self::tw_ref(new_pos);
        }
        self.stale += 1;
        new_pos
    }

    /// Removes TIME-WAIT entry `pos` before its expiry (RST, reuse by a new SYN);
    /// its ring slot goes stale.
    pub(crate) fn remove_time_wait(&mut self, pos: u64) -> TwEntry {
        let e = self.unlink_time_wait(pos);
        self.stale += 1;
        e
    }

    fn unlink_time_wait(&mut self, pos: u64) -> TwEntry {
        let e = self.unpack(pos);
        if e.last_oow_ms != 0 {
            // The slot goes stale or is popped: its flag is never read again.
            self.remove_oow(pos);
        }
        let old = Self::tw_ref(pos);
        if self
            .map
            .remove(e.tuple.hash(self.key), |r| r == old)
            .is_some()
        {
            self.tw_len -= 1;
        }
        e
    }

    /// Rewrites the ring without its stale slots once they outnumber the live
    /// ones, keeping expiry order: heavy SYN-into-TIME-WAIT reuse or restarts
    /// otherwise leave up to one 28-byte slot per entry of the last TIME-WAIT
    /// period. Amortised O(1) per stale slot. Ring positions change, so this runs
    /// only between segments (from `Host::handle_timeout`).
    pub(crate) fn compact_time_wait(&mut self) {
        if self.stale < 1024 || self.stale < self.tw_len {
            return;
        }
        // New positions continue after the old tail, so no live reference can
        // equal another entry's new one while they are being rewritten.
        let mut ring = TwRing::starting_at(self.tw.tail());
        let mut oow = HashTable::with_capacity(self.oow.len());
        while let Some((pos, rec)) = self.tw.front() {
            let rec = *rec;
            let old = Self::tw_ref(pos);
            let hash = Self::record_tuple(&self.locals, &rec).hash(self.key);
            if let Some(r) = self.map.find_mut(hash, |x| x == old) {
                let new_pos = ring.push(rec, self.tw.expires_ms(pos));
                *r = Self::tw_ref(new_pos);
                if rec.local_ip_ts & OOW_BIT != 0 {
                    let ms = self.oow_at(pos);
                    oow.insert_unique(spread(new_pos), (new_pos, ms), |&(p, _)| spread(p));
                }
            }
            self.tw.pop_front();
        }
        self.tw = ring;
        self.oow = oow;
        self.stale = 0;
    }

    /// The oldest live TIME-WAIT entry, skipping (and dropping) stale ring slots.
    pub(crate) fn oldest_time_wait(&mut self) -> Option<(u64, TwEntry)> {
        while let Some((pos, rec)) = self.tw.front() {
            let r = Self::tw_ref(pos);
            let hash = Self::record_tuple(&self.locals, rec).hash(self.key);
            if self.map.find(hash, |x| x == r).is_some() {
                return Some((pos, self.unpack(pos)));
            }
            self.tw.pop_front();
        }
        None
    }

    /// The expiry of the oldest ring slot, possibly stale: a lower bound on
    /// the earliest live expiry, since slots are appended in expiry order.
    pub(crate) fn time_wait_front_expiry(&self) -> Option<u32> {
        self.tw.front().map(|(pos, _)| self.tw.expires_ms(pos))
    }

    /// Removes the oldest TIME-WAIT entry if it expired at `now_ms`.
    pub(crate) fn pop_expired_time_wait(&mut self, now_ms: u32) -> Option<TwEntry> {
        let (pos, e) = self.oldest_time_wait()?;
        if (now_ms.wrapping_sub(e.expires_ms) as i32) < 0 {
            return None;
        }
        self.unlink_time_wait(pos);
        self.tw.pop_front();
        Some(e)
    }

    /// For `benches/table.rs`, which sets this table beside std's `HashMap` and
    /// `DashMap`: the engine's own insert path (a fresh [`Conn`] into the slab and
    /// its reference into the map), without the timer and segment work of
    /// [`crate::Host::connect`] that would swamp it.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_insert(&mut self, tuple: Tuple) {
        self.insert_conn(Conn::new(tuple, State::Established, Seq(0)));
    }

    /// For `benches/table.rs`: a lookup, as [`crate::Host::handle`] starts.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_find(&self, tuple: &Tuple) -> bool {
        self.find(tuple).is_some()
    }

    /// For the planner's memory test: a connection straight into TIME-WAIT,
    /// expiring at `expires_ms`, as [`crate::Host`]'s close path stores it.
    #[cfg(feature = "bench-hooks")]
    pub fn bench_time_wait(&mut self, tuple: Tuple, expires_ms: u32) {
        let idx = self.insert_conn(Conn::new(tuple, State::FinWait1, Seq(0)));
        let e = TwEntry {
            tuple,
            expires_ms,
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
mod tests {
    use super::*;
    use crate::state::State;

    fn tuple(port: u16) -> Tuple {
        Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
    }

    fn conn(port: u16) -> Conn {
        Conn::new(
            tuple(port),
            State::Established,
            crate::seq::Seq(port as u32),
        )
    }

    fn tw(port: u16, expires_ms: u32) -> TwEntry {
        TwEntry {
            tuple: tuple(port),
            expires_ms,
            ..TwEntry::default()
        }
    }

    #[test]
    fn insert_find_remove() {
        let mut t = Table::new(9);
        let idx: Vec<u32> = (0..10_000).map(|p| t.insert_conn(conn(p))).collect();
        assert_eq!(t.len(), 10_000);
        for p in (0..10_000).step_by(7) {
            assert_eq!(t.find(&tuple(p)), Some(Found::Conn(idx[p as usize])));
        }
        assert_eq!(t.find(&tuple(20_000)), None);
        let c = t.remove_conn(idx[5]);
        assert_eq!(c.tuple, tuple(5));
        assert_eq!(t.find(&tuple(5)), None);
        // The freed slot is reused.
        assert_eq!(t.insert_conn(conn(5)), idx[5]);
    }

    #[test]
    fn time_wait_lifecycle_and_stale_slots() {
        let mut t = Table::new(1);
        let a = t.insert_conn(conn(1));
        let b = t.insert_conn(conn(2));
        let pa = t.conn_to_time_wait(a, tw(1, 100)).expect("room");
        let pb = t.conn_to_time_wait(b, tw(2, 200)).expect("room");
        assert_eq!(t.find(&tuple(1)), Some(Found::TimeWait(pa)));
        assert_eq!(t.time_wait_len(), 2);
        // Restarting 1 moves it behind 2.
        let pa2 = t.restart_time_wait(pa, 300);
        assert_eq!(t.find(&tuple(1)), Some(Found::TimeWait(pa2)));
        assert_eq!(t.pop_expired_time_wait(150), None);
        assert_eq!(
            t.pop_expired_time_wait(250).map(|e| e.tuple),
            Some(tuple(2))
        );
        assert_eq!(t.pop_expired_time_wait(299), None);
        assert_eq!(
            t.pop_expired_time_wait(300).map(|e| e.tuple),
            Some(tuple(1))
        );
        assert!(t.is_empty());
        assert_eq!(t.time_wait_len(), 0);
        let _ = pb;
    }

    #[test]
    fn compaction_drops_stale_slots_and_keeps_expiry_order() {
        let mut t = Table::new(5);
        let n = 20_000u16;
        let mut pos = Vec::new();
        for p in 0..n {
            let i = t.insert_conn(conn(p));
            pos.push(
                t.conn_to_time_wait(i, tw(p, 1_000 + p as u32))
                    .expect("room"),
            );
        }
        // Remove every other entry and restart a quarter: lots of stale slots.
        for p in (0..n).step_by(2) {
            t.remove_time_wait(pos[p as usize]);
        }
        for p in (1..n).step_by(4) {
            pos[p as usize] = t.restart_time_wait(pos[p as usize], 50_000 + p as u32);
        }
        let before = t.heap_bytes();
        t.compact_time_wait();
        assert!(t.heap_bytes() < before, "{} !< {before}", t.heap_bytes());
        assert_eq!(t.time_wait_len(), n as usize / 2);
        for p in 0..n {
            let found = t.find(&tuple(p));
            assert_eq!(found.is_some(), p % 2 == 1, "{p}");
            if let Some(Found::TimeWait(q)) = found {
                assert_eq!(t.time_wait(q).tuple, tuple(p));
            }
        }
        // Expiry order survives: the unrestarted odd entries first, by deadline.
        let mut last = 0;
        let mut count = 0;
        while let Some(e) = t.pop_expired_time_wait(u32::MAX / 2) {
            assert!(e.expires_ms >= last);
            last = e.expires_ms;
            count += 1;
        }
        assert_eq!(count, n as usize / 2);
        assert!(t.is_empty());
    }

    #[test]
    fn last_oow_follows_its_entry_and_leaves_with_it() {
        let mut t = Table::new(7);
        let mut pos = Vec::new();
        for p in 0..4_000u16 {
            let i = t.insert_conn(conn(p));
            let mut e = tw(p, 1_000 + p as u32);
            // Every third enters TIME-WAIT with one (an orphan's FIN-WAIT-2).
            e.last_oow_ms = if p % 3 == 0 { 10 + p as u32 } else { 0 };
            pos.push(t.conn_to_time_wait(i, e).expect("room"));
        }
        // Every fifth rate-limits an ACK now; every seventh restarts; every
        // second goes.
        for p in (0..4_000u16).step_by(5) {
            t.set_time_wait_oow(pos[p as usize], 50_000 + p as u32);
        }
        for p in (0..4_000u16).step_by(7) {
            pos[p as usize] = t.restart_time_wait(pos[p as usize], 90_000 + p as u32);
        }
        for p in (0..4_000u16).step_by(2) {
            t.remove_time_wait(pos[p as usize]);
        }
        t.compact_time_wait();
        let want = |p: u16| match (p % 5, p % 3) {
            (0, _) => 50_000 + p as u32,
            (_, 0) => 10 + p as u32,
            _ => 0,
        };
        for p in (1..4_000u16).step_by(2) {
            let Some(Found::TimeWait(q)) = t.find(&tuple(p)) else {
                panic!("{p} not in TIME-WAIT");
            };
            let e = t.time_wait(q);
            assert_eq!((e.tuple, e.last_oow_ms), (tuple(p), want(p)), "{p}");
        }
        assert_eq!(
            t.oow.len(),
            (1..4_000u16).step_by(2).filter(|&p| want(p) != 0).count()
        );
        while t.pop_expired_time_wait(u32::MAX / 2).is_some() {}
        assert_eq!(t.oow.len(), 0);
    }

    #[test]
    fn survives_growth_with_mixed_references() {
        let mut t = Table::new(3);
        for p in 0..50_000u16 {
            let i = t.insert_conn(conn(p));
            if p % 2 == 0 {
                t.conn_to_time_wait(i, tw(p, 10)).expect("room");
            }
        }
        for p in 0..50_000u16 {
            let f = t.find(&tuple(p)).expect("present");
            assert_eq!(matches!(f, Found::TimeWait(_)), p % 2 == 0);
        }
        let mut n = 0;
        while t.pop_expired_time_wait(10).is_some() {
            n += 1;
        }
        assert_eq!(n, 25_000);
        assert_eq!(t.len(), 25_000);
        assert_eq!(t.conn_indices().count(), 25_000);
    }
}
