//! The table's TIME-WAIT half: a full connection becomes a compact record in
//! the ring ([`crate::timewait`]), which segments read and restart, and
//! which leaves by expiry, RST or reuse.

use super::{Table, TwRare};
use crate::endpoint::{Packed, INDEX_MASK};
use crate::rare::Rare;
use crate::timewait::{TwEntry, TwExpired, TwRecord, TwRing, FAR, TS_BIT};
use crate::tuple::Tuple;

impl Table {
    /// Replaces full connection `idx` by a compact TIME-WAIT entry; returns
    /// its position, or `None` (and the connection stays) when its endpoint
    /// could not be interned: no room, as when `tcp_max_tw_buckets` is reached.
    #[cfg(any(test, feature = "bench-hooks"))]
    pub(crate) fn conn_to_time_wait(&mut self, idx: u32, e: TwEntry) -> Option<u64> {
        let hash = e.tuple.hash(self.key);
        self.conn_to_time_wait_hashed(idx, &e, hash)
    }

    /// `Table::conn_to_time_wait` (test and bench builds) given the hash of
    /// `e.tuple`.
    pub(crate) fn conn_to_time_wait_hashed(
        &mut self,
        idx: u32,
        e: &TwEntry,
        hash: u64,
    ) -> Option<u64> {
        debug_assert_eq!(hash, e.tuple.hash(self.key));
        let name = self.e.conns.get(idx).name;
        if name.spilled() {
            return None;
        }
        let pos = self.push_time_wait(name, e);
        if let Some(r) = self.map.find_mut(hash, |r| r == idx) {
            *r = Self::tw_ref(pos);
        }
        self.e.drop_conn(idx, &e.tuple);
        self.tw_len += 1;
        Some(pos)
    }

    /// Appends `e` to the ring under `name` (its tuple, packed), with its rare
    /// fields beside it if it has any.
    fn push_time_wait(&mut self, name: Packed, e: &TwEntry) -> u64 {
        let start = self.time_wait_start(e.expires_ms);
        let back = start.wrapping_sub(e.close_ms);
        // A `back` of exactly FAR is far too: the value is the escape.
        let close_off = u16::try_from(back).unwrap_or(FAR);
        let ts = if e.ts_recent.is_some() { TS_BIT } else { 0 };
        let far = close_off == FAR;
        let restarted = e.entry_ms != start;
        let mut name = Packed {
            ep: name.ep & INDEX_MASK | ts,
            ..name
        };
        name.set_rare(far || e.last_oow_ms != 0 || restarted);
        let rec = TwRecord {
            name,
            expires_off: 0,
            close_off,
            snd_nxt: e.snd_nxt,
            rcv_nxt: e.rcv_nxt,
            ts_recent: e.ts_recent.unwrap_or(0),
        };
        let pos = self.e.tw.push(rec, e.expires_ms);
        if rec.name.has_rare() {
            let rare = TwRare {
                last_oow_ms: e.last_oow_ms,
                close_ms: e.close_ms,
                entry_ms: restarted.then_some(e.entry_ms),
            };
            self.e.tw_rare.put(pos, rare);
        }
        pos
    }

    /// TIME-WAIT entry `pos`, unpacked.
    #[inline]
    pub(crate) fn time_wait(&self, pos: u64) -> TwEntry {
        let (rec, expires_ms) = self.e.tw.get(pos);
        let rare = self.e.tw_rare(pos, rec);
        self.unpack_time_wait(rec, expires_ms, self.e.tw_tuple(rec), rare)
    }

    /// [`Table::time_wait`] for a caller that found `pos` by `tuple`: the
    /// tuple is not unpacked from its interned end again.
    #[inline]
    pub(crate) fn time_wait_named(&self, pos: u64, tuple: Tuple) -> TwEntry {
        let (rec, expires_ms) = self.e.tw.get(pos);
        self.unpack_time_wait(rec, expires_ms, tuple, self.e.tw_rare(pos, rec))
    }

    /// [`Table::time_wait`] given the slot's record, expiry, tuple and rare
    /// fields (the caller that hashed the tuple has it unpacked already).
    #[inline]
    fn unpack_time_wait(
        &self,
        rec: &TwRecord,
        expires_ms: u32,
        tuple: Tuple,
        rare: TwRare,
    ) -> TwEntry {
        debug_assert_eq!(tuple, self.e.tw_tuple(rec));
        TwEntry {
            tuple,
            snd_nxt: rec.snd_nxt,
            rcv_nxt: rec.rcv_nxt,
            expires_ms,
            entry_ms: rare.entry_ms.unwrap_or(self.time_wait_start(expires_ms)),
            close_ms: self.close_ms(rec, expires_ms, &rare),
            last_oow_ms: rare.last_oow_ms,
            ts_recent: (rec.name.ep & TS_BIT != 0).then_some(rec.ts_recent),
        }
    }

    /// When record `rec`, expiring at `expires_ms`, was closed: an offset
    /// before its (re)start, or its rare field when that was too far back.
    #[inline]
    fn close_ms(&self, rec: &TwRecord, expires_ms: u32, rare: &TwRare) -> u32 {
        if rec.close_off == FAR {
            rare.close_ms
        } else {
            let start = self.time_wait_start(expires_ms);
            start.wrapping_sub(rec.close_off as u32)
        }
    }

    /// Records an out-of-window ACK sent by entry `pos` (0 records nothing).
    pub(crate) fn set_time_wait_oow(&mut self, pos: u64, last_oow_ms: u32) {
        if last_oow_ms == 0 {
            return;
        }
        let mut rare = self.e.tw_rare(pos, self.e.tw.at(pos));
        rare.last_oow_ms = last_oow_ms;
        self.e.tw.at_mut(pos).name.set_rare(true);
        self.e.tw_rare.put(pos, rare);
    }

    /// Records the peer's timestamp on entry `pos` (which negotiated them).
    #[inline]
    pub(crate) fn set_time_wait_ts(&mut self, pos: u64, ts_recent: u32) {
        let rec = self.e.tw.at_mut(pos);
        rec.name.ep |= TS_BIT;
        rec.ts_recent = ts_recent;
    }

    /// Moves TIME-WAIT entry `pos` to the tail with a new expiry (its timer
    /// restarted, `inet_twsk_reschedule`), keeping its entry stamp if
    /// `keep_entry` (beside the ring), else starting it afresh too. The old
    /// slot goes stale. Returns the new position.
    pub(crate) fn restart_time_wait(&mut self, pos: u64, expires_ms: u32, keep_entry: bool) -> u64 {
        let mut e = self.time_wait(pos);
        let name = self.e.tw.at(pos).name;
        self.e.take_tw_rare(pos);
        e.expires_ms = expires_ms;
        if !keep_entry {
            e.entry_ms = self.time_wait_start(expires_ms);
        }
        let new_pos = self.push_time_wait(name, &e);
        let old = Self::tw_ref(pos);
        if let Some(r) = self.map.find_mut(e.tuple.hash(self.key), |r| r == old) {
            *r = Self::tw_ref(new_pos);
        }
        self.stale += 1;
        new_pos
    }

    /// Removes TIME-WAIT entry `pos`, named `tuple`, before its expiry (RST,
    /// reuse by a new SYN, eviction); its ring slot goes stale. The caller
    /// holds the entry unpacked, so its tuple is not read back from the ring.
    pub(crate) fn remove_time_wait(&mut self, pos: u64, tuple: &Tuple) {
        self.remove_time_wait_hashed(pos, tuple, tuple.hash(self.key));
    }

    /// [`Table::remove_time_wait`] given the tuple's [`Table::hash`] (the
    /// lookup that found the entry took it).
    pub(crate) fn remove_time_wait_hashed(&mut self, pos: u64, tuple: &Tuple, hash: u64) {
        debug_assert_eq!(*tuple, self.e.tw_tuple(self.e.tw.at(pos)));
        debug_assert_eq!(hash, self.hash(tuple));
        self.e.take_tw_rare(pos);
        let old = Self::tw_ref(pos);
        if self.map.remove(hash, |r| r == old).is_some() {
            self.tw_len -= 1;
        }
        self.stale += 1;
    }

    /// Rewrites the ring without its stale slots once they outnumber the live
    /// ones, keeping expiry order: heavy SYN-into-TIME-WAIT reuse or restarts
    /// otherwise leave up to one 24-byte slot per entry of the last TIME-WAIT
    /// period. Amortised O(1) per stale slot. Ring positions change, so this runs
    /// only between segments (from `Host::handle_timeout`).
    pub(crate) fn compact_time_wait(&mut self) {
        if self.stale < 1024 || self.stale < self.tw_len {
            return;
        }
        // New positions continue after the old tail, so no live reference can
        // equal another entry's new one while they are being rewritten. A
        // record moves whole: its close() offset counts from its expiry,
        // which does not change.
        let mut ring = TwRing::starting_at(self.e.tw.tail());
        let mut rare = Rare::with_capacity(self.e.tw_rare.len());
        while let Some((pos, rec, expires_ms)) = self.e.tw.front() {
            let rec = *rec;
            let old = Self::tw_ref(pos);
            let hash = self.e.tw_tuple(&rec).hash(self.key);
            if let Some(r) = self.map.find_mut(hash, |x| x == old) {
                let new_pos = ring.push(rec, expires_ms);
                *r = Self::tw_ref(new_pos);
                if rec.name.has_rare() {
                    rare.put(new_pos, self.e.tw_rare(pos, &rec));
                }
            }
            self.e.tw.pop_front();
        }
        self.e.tw = ring;
        self.e.tw_rare = rare;
        self.stale = 0;
    }

    /// The oldest live TIME-WAIT entry, skipping (and dropping) stale ring slots.
    pub(crate) fn oldest_time_wait(&mut self) -> Option<(u64, TwEntry)> {
        while let Some((pos, rec, _)) = self.e.tw.front() {
            let r = Self::tw_ref(pos);
            let hash = self.e.tw_tuple(rec).hash(self.key);
            if self.map.find(hash, |x| x == r).is_some() {
                return Some((pos, self.time_wait(pos)));
            }
            self.e.tw.pop_front();
        }
        None
    }

    /// The expiry of the oldest ring slot, possibly stale: a lower bound on
    /// the earliest live expiry, since slots are appended in expiry order.
    pub(crate) fn time_wait_front_expiry(&self) -> Option<u32> {
        self.e.tw.front().map(|(_, _, expires_ms)| expires_ms)
    }

    /// Whether the oldest ring slot (live or stale) is due at `now_ms`: when
    /// it is not, no entry is, since slots are appended in expiry order.
    #[inline]
    pub(crate) fn time_wait_due(&self, now_ms: u32) -> bool {
        self.time_wait_front_expiry()
            .is_some_and(|expires_ms| expired(now_ms, expires_ms))
    }

    /// Removes the oldest TIME-WAIT entry if it expired at `now_ms`, dropping
    /// the stale ring slots before it.
    #[cfg(any(test, feature = "bench-hooks"))]
    pub(crate) fn pop_expired_time_wait(&mut self, now_ms: u32) -> Option<TwExpired> {
        let mut one = None;
        self.expire_time_wait(now_ms, 1, |e| one = Some(e));
        one
    }

    /// Asks for the index buckets of the entries `skip` to `skip + n` from
    /// the ring's front that have expired at `now_ms`, as far as the front
    /// chunk goes: the removals [`Table::expire_time_wait`] makes next. The
    /// ring is in expiry order and their buckets lie anywhere in the index,
    /// so with a table larger than the cache each is a miss. Changes nothing
    /// but the cache.
    pub(crate) fn prefetch_expiring(&self, now_ms: u32, skip: usize, n: usize) {
        let Some(slots) = self.e.tw.front_slots() else {
            return;
        };
        for (_, rec, expires_ms) in slots.skipping(skip).take(n) {
            if !expired(now_ms, expires_ms) {
                break;
            }
            self.map.prefetch(self.e.tw_tuple(rec).hash(self.key));
        }
    }

    /// Removes up to `max` TIME-WAIT entries expired at `now_ms`, oldest
    /// first, handing each to `each` as it leaves; returns how many. Stale
    /// ring slots among and after them are dropped up to the first live
    /// entry that has not expired, exactly as that many single pops would.
    /// The host accounts for each entry inside this loop (`each`, inlined):
    /// filled into a batch and read back after, the entries cost the stores,
    /// the loads and a second loop (0.27 % of the one-shard-at-a-time run's
    /// instructions). The slots passed in a chunk are popped at once. One
    /// probe per slot: an expired entry leaves the index by the probe that
    /// tells it is live (a stale slot's probe finds nothing to remove).
    #[inline(always)]
    pub(crate) fn expire_time_wait(
        &mut self,
        now_ms: u32,
        max: usize,
        mut each: impl FnMut(TwExpired),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Some(slots) = self.e.tw.front_slots() else {
                break;
            };
            let (mut passed, mut live_front) = (0, false);
            for (pos, rec, expires_ms) in slots {
                if n == max {
                    break;
                }
                let r = Self::tw_ref(pos);
                let tuple = self.e.tw_tuple(rec);
                let hash = tuple.hash(self.key);
                if !expired(now_ms, expires_ms) {
                    if self.map.find(hash, |x| x == r).is_some() {
                        live_front = true;
                        break;
                    }
                } else if self.map.remove(hash, |x| x == r).is_some() {
                    // Live: unpacked from the record in hand (a stale slot
                    // is not), its rare fields taken out as they are read
                    // (the slot is popped, so its flag is left as it is).
                    let rare = if rec.name.has_rare() {
                        self.e.tw_rare.take(pos).unwrap_or_default()
                    } else {
                        TwRare::default()
                    };
                    each(TwExpired {
                        tuple,
                        expires_ms,
                        close_ms: self.close_ms(rec, expires_ms, &rare),
                    });
                    n += 1;
                }
                passed += 1;
            }
            self.e.tw.pop_front_n(passed);
            if live_front {
                break;
            }
        }
        self.tw_len -= n;
        n
    }
}

/// Whether a 32-bit millisecond stamp `expires_ms` has come at `now_ms`
/// (compared by difference, so across the stamp's wrap).
#[inline(always)]
fn expired(now_ms: u32, expires_ms: u32) -> bool {
    (now_ms.wrapping_sub(expires_ms) as i32) >= 0
}

#[cfg(test)]
mod tests;
