//! What the table's index references point into: the slab of full
//! connections, the TIME-WAIT ring, their rare fields and the interned
//! endpoints, and how a reference's tuple is read back through them.

use super::recent::Recent;
use super::TW_BIT;
use crate::conn::{Conn, ConnRecord};
use crate::endpoint::{Endpoints, Packed};
use crate::index::Probe;
use crate::rare::Rare;
use crate::slab::Slab;
use crate::timewait::{TwRecord, TwRing};
use crate::tuple::Tuple;

/// A full connection's rare fields ([`crate::rare`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ConnRare {
    pub(super) last_oow_ms: u32,
    /// The tuple, when its endpoint could not be interned ([`crate::endpoint::Packed::spilled`]).
    pub(super) tuple: Tuple,
}

/// A TIME-WAIT entry's rare fields.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TwRare {
    pub(super) last_oow_ms: u32,
    /// The close() stamp, when [`TwRecord::close_off`] is [`crate::timewait::FAR`].
    pub(super) close_ms: u32,
    /// The entry stamp of an entry whose timer restarted, no longer its
    /// expiry less the TIME-WAIT length, where a takeover could read it. It
    /// makes the map's slot 24 bytes, not 16: a few bytes on the few
    /// entries that have one.
    pub(super) entry_ms: Option<u32>,
}

/// The index probe that looks for tuple `t`'s entry ([`Entries::is`]).
pub(super) struct Named<'a> {
    e: &'a Entries,
    t: &'a Tuple,
}

impl Probe for Named<'_> {
    #[inline(always)]
    fn is(&mut self, r: u32) -> bool {
        self.e.is(r, self.t)
    }
}

/// What the index's references point into.
#[derive(Default)]
pub(super) struct Entries {
    pub(super) conns: Slab<ConnRecord>,
    pub(super) conn_rare: Rare<ConnRare>,
    pub(super) tw: TwRing,
    pub(super) tw_rare: Rare<TwRare>,
    pub(super) eps: Endpoints,
    /// The connections last stored or inserted, for [`super::Table::find_conn`].
    pub(super) recent: Recent,
}

impl Entries {
    /// Whether entry `r` is `t`'s: the peer's address first, from the record
    /// already in hand, then the interned end.
    /// Always inlined into the probe: as a call it saved and restored
    /// registers around a two-field compare.
    #[inline(always)]
    pub(super) fn is(&self, r: u32, t: &Tuple) -> bool {
        let name = if r & TW_BIT != 0 {
            self.tw.at(self.tw.resolve(r & !TW_BIT)).name
        } else {
            self.conns.get(r).name
        };
        self.names(r, name, t)
    }

    /// Whether `name`, entry `r`'s, names `t`: the compare of [`Entries::is`].
    #[inline(always)]
    fn names(&self, r: u32, name: Packed, t: &Tuple) -> bool {
        name.remote_ip == t.remote_ip
            && match self.eps.tuple(&name) {
                Some(u) => u == *t,
                None => self.is_spilled(r, t),
            }
    }

    /// A probe for `t`'s entry, for the index's lookups.
    #[inline(always)]
    pub(super) fn named<'a>(&'a self, t: &'a Tuple) -> Named<'a> {
        Named { e: self, t }
    }

    /// [`Entries::is`] that also leaves the record of a full connection it
    /// accepts in `found`, so that the caller copies it from where the probe
    /// read its name instead of finding it in the slab again.
    #[inline(always)]
    pub(super) fn is_keeping<'a>(
        &'a self,
        r: u32,
        t: &Tuple,
        found: &mut Option<&'a ConnRecord>,
    ) -> bool {
        if r & TW_BIT != 0 {
            return self.is(r, t);
        }
        let rec = self.conns.get(r);
        let is = self.names(r, rec.name, t);
        if is {
            *found = Some(rec);
        }
        is
    }

    /// [`Entries::is`] for the rare entry whose tuple is kept aside.
    #[cold]
    #[inline(never)]
    fn is_spilled(&self, r: u32, t: &Tuple) -> bool {
        self.tuple_of(r) == *t
    }

    /// The tuple of the entry `r` names.
    #[inline]
    pub(super) fn tuple_of(&self, r: u32) -> Tuple {
        if r & TW_BIT != 0 {
            self.tw_tuple(self.tw.at(self.tw.resolve(r & !TW_BIT)))
        } else {
            self.conn_tuple(r, self.conns.get(r))
        }
    }

    #[inline]
    pub(super) fn conn_tuple(&self, idx: u32, rec: &ConnRecord) -> Tuple {
        match self.eps.tuple(&rec.name) {
            Some(t) => t,
            None => self.spilled_tuple(idx),
        }
    }

    #[cold]
    fn spilled_tuple(&self, idx: u32) -> Tuple {
        self.conn_rare.get(idx as u64).unwrap_or_default().tuple
    }

    /// A TIME-WAIT record's tuple. Records are never spilled (a spilled
    /// connection does not enter TIME-WAIT); the ring's dead padding slots,
    /// which nothing references, read as the default tuple.
    #[inline]
    pub(super) fn tw_tuple(&self, rec: &TwRecord) -> Tuple {
        self.eps.tuple(&rec.name).unwrap_or_default()
    }

    #[inline]
    pub(super) fn conn_rare(&self, idx: u32, rec: &ConnRecord) -> ConnRare {
        if !rec.name.has_rare() {
            return ConnRare::default();
        }
        self.conn_rare.get(idx as u64).unwrap_or_default()
    }

    /// The rare fields of `rec`, at ring position `pos`.
    #[inline]
    pub(super) fn tw_rare(&self, pos: u64, rec: &TwRecord) -> TwRare {
        if !rec.name.has_rare() {
            return TwRare::default();
        }
        self.tw_rare.get(pos).unwrap_or_default()
    }

    /// Takes slot `pos`'s rare fields out, clearing its flag.
    #[inline]
    pub(super) fn take_tw_rare(&mut self, pos: u64) -> TwRare {
        let rec = self.tw.at_mut(pos);
        if !rec.name.has_rare() {
            return TwRare::default();
        }
        rec.name.set_rare(false);
        self.tw_rare.take(pos).unwrap_or_default()
    }

    /// Removes full connection `idx` from the slab and its rare fields.
    pub(super) fn remove_conn(&mut self, idx: u32) -> Conn {
        let rec = self.conns.remove(idx);
        let rare = if rec.name.has_rare() {
            self.conn_rare.take(idx as u64).unwrap_or_default()
        } else {
            ConnRare::default()
        };
        let tuple = self.eps.tuple(&rec.name).unwrap_or(rare.tuple);
        self.recent.forget(&tuple, idx);
        rec.conn(tuple, rare.last_oow_ms)
    }

    /// [`Entries::remove_conn`] for a caller that holds the connection's
    /// `tuple` and wants nothing back: the tuple is not unpacked again, nor
    /// the record copied out. Always inlined: LLVM left it a call from both
    /// of its callers (close, TIME-WAIT), 55 instructions a removal; inlined,
    /// 9 fewer. While no connection has rare fields (the common case) the
    /// record's flag is not read: there is nothing to take either way.
    #[inline(always)]
    pub(super) fn drop_conn(&mut self, idx: u32, tuple: &Tuple) {
        debug_assert_eq!(self.conn_tuple(idx, self.conns.get(idx)), *tuple);
        if self.conn_rare.len() != 0 && self.conns.get(idx).name.has_rare() {
            self.conn_rare.take(idx as u64);
        }
        self.conns.free(idx);
        self.recent.forget(tuple, idx);
    }
}
