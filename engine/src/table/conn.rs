//! The table's full-connection half: a working copy out of the slab and
//! back, the rare fields beside it, and removal at CLOSED.

use super::{ConnRare, Table, TW_BIT};
use crate::conn::{Conn, ConnRecord};
use crate::tuple::Tuple;

/// What [`Table::find_named`] found.
pub(crate) enum Hit<'a> {
    /// A full connection: its slab index and record, for
    /// [`Table::conn_found`].
    Conn(u32, &'a ConnRecord),
    /// A TIME-WAIT entry, by ring position.
    TimeWait(u64),
}

impl Table {
    /// [`Table::find_hashed`] for a segment, which then copies the
    /// connection it finds out ([`Table::conn_found`]) from the record whose
    /// name the lookup compared, not from the slab found a second time.
    /// `hash`: `tuple`'s [`Table::hash`].
    #[inline(always)]
    pub(crate) fn find_named(&self, tuple: &Tuple, hash: u64) -> Option<Hit<'_>> {
        debug_assert_eq!(hash, self.hash(tuple));
        let e = &self.e;
        let mut found = None;
        let r = self
            .map
            .find(hash, |r| e.is_keeping(r, tuple, &mut found))?;
        Some(match found {
            Some(rec) => Hit::Conn(r, rec),
            None => Hit::TimeWait(e.tw.resolve(r & !TW_BIT)),
        })
    }

    /// [`Table::conn_named`] for connection `idx` whose record `rec`
    /// [`Table::find_named`] found.
    #[inline(always)]
    pub(crate) fn conn_found(&self, idx: u32, rec: &ConnRecord, tuple: Tuple) -> Conn {
        debug_assert!(std::ptr::eq(rec, self.e.conns.get(idx)));
        if !rec.name.has_rare() {
            return rec.conn(tuple, 0);
        }
        self.rare_conn(idx)
    }

    /// A copy of full connection `idx`, to work on and [`Table::set_conn`] back.
    /// Always inlined: out of line, the call costs as much as the copy.
    #[inline(always)]
    pub(crate) fn conn(&self, idx: u32) -> Conn {
        let rec = self.e.conns.get(idx);
        if !rec.name.has_rare() {
            if let Some(tuple) = self.e.eps.tuple(&rec.name) {
                return rec.conn(tuple, 0);
            }
        }
        self.rare_conn(idx)
    }

    /// [`Table::conn`] for a caller that found `idx` by `tuple`: the tuple
    /// is not unpacked again.
    #[inline(always)]
    pub(crate) fn conn_named(&self, idx: u32, tuple: Tuple) -> Conn {
        let rec = self.e.conns.get(idx);
        debug_assert_eq!(self.e.conn_tuple(idx, rec), tuple);
        if !rec.name.has_rare() {
            return rec.conn(tuple, 0);
        }
        self.rare_conn(idx)
    }

    /// [`Table::conn`] for a connection with rare fields.
    #[cold]
    #[inline(never)]
    fn rare_conn(&self, idx: u32) -> Conn {
        let rec = self.e.conns.get(idx);
        let rare = self.e.conn_rare(idx, rec);
        rec.conn(self.e.conn_tuple(idx, rec), rare.last_oow_ms)
    }

    /// Stores the working copy `c` of full connection `idx` (its tuple
    /// unchanged).
    #[inline]
    pub(crate) fn set_conn(&mut self, idx: u32, c: &Conn) {
        let rec = self.e.conns.get_mut(idx);
        rec.update(c);
        self.e.recent.put(&c.tuple, idx);
        if rec.name.has_rare() || c.last_oow_ms != 0 {
            self.update_conn_oow(idx, c.last_oow_ms);
        }
        debug_assert_eq!(self.conn(idx).tuple, c.tuple);
    }

    /// [`Table::set_conn`] for a connection [`Table::find_conn`] found, which
    /// left it in its recent slot: only the record (and any rare field) is
    /// written. Nothing between the two may insert into the table.
    #[inline]
    pub(crate) fn set_found_conn(&mut self, idx: u32, c: Conn) {
        debug_assert_eq!(self.e.recent.get(&c.tuple), Some(idx));
        let rec = self.e.conns.get_mut(idx);
        rec.update(&c);
        if rec.name.has_rare() || c.last_oow_ms != 0 {
            self.update_conn_oow(idx, c.last_oow_ms);
        }
    }

    #[cold]
    fn update_conn_oow(&mut self, idx: u32, last_oow_ms: u32) {
        let rare = self.e.conn_rare(idx, self.e.conns.get(idx));
        if rare.last_oow_ms != last_oow_ms {
            self.put_conn_rare(idx, last_oow_ms, rare.tuple);
        }
    }

    /// Keeps connection `idx`'s rare fields, or drops them once they hold
    /// nothing.
    #[cold]
    #[inline(never)]
    pub(super) fn put_conn_rare(&mut self, idx: u32, last_oow_ms: u32, tuple: Tuple) {
        let rec = self.e.conns.get_mut(idx);
        if last_oow_ms == 0 && !rec.name.spilled() {
            rec.name.set_rare(false);
            self.e.conn_rare.take(idx as u64);
        } else {
            rec.name.set_rare(true);
            let rare = ConnRare { last_oow_ms, tuple };
            self.e.conn_rare.put(idx as u64, rare);
        }
    }

    /// Removes a full connection (it reached CLOSED).
    #[cfg(test)]
    pub(crate) fn remove_conn(&mut self, idx: u32) -> Conn {
        let c = self.conn(idx);
        self.remove_conn_hashed(idx, &c.tuple, self.hash(&c.tuple));
        c
    }

    /// Removes full connection `idx` (it reached CLOSED) given its tuple and
    /// the tuple's hash, which the caller's lookup took.
    pub(crate) fn remove_conn_hashed(&mut self, idx: u32, tuple: &Tuple, hash: u64) {
        debug_assert_eq!(hash, self.hash(tuple));
        self.e.drop_conn(idx, tuple);
        self.map.remove(hash, |r| r == idx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{conn, tuple, tw};
    use super::super::{Found, Removed};
    use super::*;

    #[test]
    fn connections_keep_last_oow_beside_the_slab() {
        let mut t = Table::new(13);
        let idx: Vec<u32> = (0..100).map(|p| t.insert_conn(conn(p))).collect();
        for (p, &i) in idx.iter().enumerate() {
            let mut c = t.conn(i);
            c.last_oow_ms = if p % 10 == 0 { 1_000 + p as u32 } else { 0 };
            c.snd_nxt = crate::seq::Seq(7);
            t.set_conn(i, &c);
        }
        assert_eq!(t.e.conn_rare.len(), 10);
        for (p, &i) in idx.iter().enumerate() {
            let c = t.conn(i);
            let want = if p % 10 == 0 { 1_000 + p as u32 } else { 0 };
            assert_eq!(
                (c.tuple, c.snd_nxt, c.last_oow_ms),
                (tuple(p as u16), crate::seq::Seq(7), want)
            );
        }
        // Cleared, it leaves the side table; removed, it goes with its entry.
        let mut c = t.conn(idx[0]);
        c.last_oow_ms = 0;
        t.set_conn(idx[0], &c);
        assert_eq!(t.e.conn_rare.len(), 9);
        assert_eq!(t.remove_conn(idx[10]).last_oow_ms, 1_010);
        match t.remove(&tuple(20)) {
            Some(Removed::Conn(c)) => assert_eq!(c.last_oow_ms, 1_020),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.e.conn_rare.len(), 7);
        // A slot reused by a new connection starts with none.
        let j = t.insert_conn(conn(500));
        assert_eq!(t.conn(j).last_oow_ms, 0);
    }

    /// `find_named` then `conn_found` give what `find` then `conn` do: the
    /// copy of a full connection (with its rare field), a TIME-WAIT entry's
    /// position, or nothing.
    #[test]
    fn find_named_finds_what_find_does() {
        let mut t = Table::new(5);
        let idx: Vec<u32> = (0..2_000).map(|p| t.insert_conn(conn(p))).collect();
        let mut c = t.conn(idx[7]);
        c.last_oow_ms = 77;
        t.set_conn(idx[7], &c);
        for p in (0..2_000u16).step_by(3) {
            t.conn_to_time_wait(idx[p as usize], tw(p, 1_000))
                .expect("room");
        }
        for p in 0..2_100u16 {
            let u = tuple(p);
            let named = match t.find_named(&u, t.hash(&u)) {
                Some(Hit::Conn(i, rec)) => {
                    let c = t.conn_found(i, rec, u);
                    Some((Found::Conn(i), Some((c.tuple, c.snd_nxt, c.last_oow_ms))))
                }
                Some(Hit::TimeWait(pos)) => Some((Found::TimeWait(pos), None)),
                None => None,
            };
            let want = t.find(&u).map(|f| match f {
                Found::Conn(i) => {
                    let c = t.conn(i);
                    (f, Some((c.tuple, c.snd_nxt, c.last_oow_ms)))
                }
                Found::TimeWait(_) => (f, None),
            });
            assert_eq!(named, want, "port {p}");
        }
        let c = match t.find_named(&tuple(7), t.hash(&tuple(7))) {
            Some(Hit::Conn(i, rec)) => t.conn_found(i, rec, tuple(7)),
            _ => panic!("port 7 is a full connection"),
        };
        assert_eq!(c.last_oow_ms, 77);
    }

    #[test]
    fn find_conn_leaves_what_it_found_in_the_recent_slots() {
        let mut t = Table::new(21);
        let a = t.insert_conn(conn(1));
        // Port 17 shares port 1's recent slot ((port ^ 80) % 16 is 1 for
        // both); an insert puts neither there.
        let b = t.insert_conn(conn(17));
        assert_eq!(t.e.recent.get(&tuple(1)), None);
        assert_eq!(t.find_conn(&tuple(1)), Some(Found::Conn(a)));
        assert_eq!(t.e.recent.get(&tuple(1)), Some(a));
        // So the write-back that skips the recent slots keeps them right.
        let mut c = t.conn(a);
        c.snd_nxt = crate::seq::Seq(9);
        t.set_found_conn(a, c);
        assert_eq!(t.find_conn(&tuple(1)), Some(Found::Conn(a)));
        assert_eq!(t.conn(a).snd_nxt, crate::seq::Seq(9));
        assert_eq!(t.find_conn(&tuple(17)), Some(Found::Conn(b)));
        assert_eq!(t.e.recent.get(&tuple(1)), None);
    }
}
