//! connect() without a port: Linux's ephemeral port search
//! (`__inet_hash_connect`, `inet_csk_find_open_port`) and its test of a
//! 4-tuple held by TIME-WAIT (`__inet_check_established`, `tcp_twsk_unique`).

use super::{listening_on, CloseReason, Error, Host};
use crate::ports::{BindMode, Connected, LocalAt, PerturbSlot, Ports, Taken};
use crate::seq::Seq;
use crate::table::Found;
use crate::time::Time;
use crate::timewait::TwEntry;
use crate::tuple::Tuple;

/// What a port search found.
struct Pick {
    tuple: Tuple,
    probed: u32,
    /// The ring position of the TIME-WAIT entry to take over, read again
    /// there: carrying the entry out of the search cost a copy of it on
    /// every connect, for the few that take one over.
    tw: Option<u64>,
    /// The local address's buckets, None before its first entry: the new
    /// entry takes its port without looking the address up again.
    local: Option<LocalAt>,
}

/// The other-parity pass of `__inet_hash_connect` after an even start
/// (`offset++; if (offset & 1) goto other_parity_scan`).
fn other_parity(offset: u32) -> Option<u32> {
    Some(offset + 1).filter(|o| o & 1 == 1)
}

/// `ipv4_is_loopback`: 127.0.0.0/8.
fn is_loopback(ip: u32) -> bool {
    ip >> 24 == 127
}

impl Host {
    /// Active open from `local_ip` to `remote_ip:remote_port` on a port Linux
    /// would choose. `NoPort` searches as `__inet_hash_connect` does (even
    /// ports first from a keyed per-destination offset, a port shared with
    /// other destinations, a TIME-WAIT 4-tuple taken under `tcp_tw_reuse`);
    /// `BeforeConnect` as bind(0) does (`inet_csk_find_open_port`: odd ports
    /// first, only a port nobody holds). With no port left the call fails with
    /// [`Error::AddrNotAvail`] (EADDRNOTAVAIL), counted in
    /// `Stats::connect_eaddrnotavail`.
    pub fn connect_ephemeral(
        &mut self,
        now: Time,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
        mode: BindMode,
    ) -> Result<Connected, Error> {
        let now = self.begin(now);
        match mode {
            BindMode::NoPort => self.hash_connect(now, local_ip, remote_ip, remote_port),
            BindMode::BeforeConnect => self.connect_bound(now, local_ip, remote_ip, remote_port),
        }
    }

    /// [`Host::connect_ephemeral`] after bind(0): out of line, so that
    /// most connects' search result is not merged with this one's (a copy).
    #[inline(never)]
    fn connect_bound(
        &mut self,
        now: Time,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
    ) -> Result<Connected, Error> {
        let pick = self.find_open_port(local_ip, remote_ip, remote_port);
        self.connect_picked(now, pick, true)
    }

    /// The rest of [`Host::connect_ephemeral`] once a search picked a port
    /// (`bound`: by bind(0)), or probed `Err` ports in vain.
    #[inline(always)]
    fn connect_picked(
        &mut self,
        now: Time,
        pick: Result<Pick, u32>,
        bound: bool,
    ) -> Result<Connected, Error> {
        let pick = match pick {
            Ok(p) => p,
            Err(probed) => {
                self.stats.connect_eaddrnotavail += 1;
                return Err(Error::AddrNotAvail { probed });
            }
        };
        // The search leaves the table as it was: whether it is full is
        // asked only of a search that takes no TIME-WAIT entry over.
        if pick.tw.is_none() && self.table.len() >= self.cfg.max_connections {
            return Err(Error::TableFull(self.table.len()));
        }
        let (iss, ts_recent) = match pick.tw {
            Some(pos) => {
                let e = self.table.time_wait(pos);
                (self.take_over_time_wait(now, pos, &e), e.ts_recent)
            }
            None => (self.isn(now, &pick.tuple), None),
        };
        // Both searches skip a listener's port, so the entry counts on its
        // bucket (`Host::port_released` takes it off).
        match pick.local {
            Some(at) => self.ports.acquire_at(at, &pick.tuple, bound),
            None => self.ports.acquire(&pick.tuple, bound),
        }
        self.open_active(now, pick.tuple, iss, ts_recent);
        Ok(Connected {
            tuple: pick.tuple,
            probed: pick.probed,
            tw_reused: pick.tw.is_some(),
        })
    }

    /// `__inet_hash_connect` for an unbound socket: scan the even offsets
    /// from the keyed start, then the odd ones, step 2. A port nobody holds is
    /// taken at once; a port bind() holds (or a listener) is skipped; a port
    /// only connect() holds is taken when our 4-tuple is unique on it
    /// (`__inet_check_established`).
    fn hash_connect(
        &mut self,
        now: Time,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
    ) -> Result<Connected, Error> {
        let (slot, offset) = self.ports.start(local_ip, remote_ip, remote_port);
        let local = self.ports.local_at(local_ip);
        let first = self.ports.low() + offset as u16;
        let bucket = local.map_or(0, |at| self.ports.buckets_at(at)[offset as usize]);
        // The scan's first port, when nobody holds it (most connects: the
        // perturbation moves each search past the port the last one took):
        // taken at once, the walk's `i` 0, without setting the walk up, and
        // with no TIME-WAIT entry to take over.
        if !self.port_fresh(first, bucket) {
            let dest = (local_ip, remote_ip, remote_port);
            return self.hash_connect_next(now, dest, slot, offset, local);
        }
        self.advance_start(slot, 0);
        let tuple = Tuple {
            local_ip,
            remote_ip,
            local_port: first,
            remote_port,
        };
        let pick = Pick {
            tuple,
            probed: 1,
            tw: None,
            local,
        };
        self.connect_picked(now, Ok(pick), false)
    }

    /// A little randomness in the next start of the search from `slot`, whose
    /// walk took the port at `i` (`max(i, get_random_u32_below(8) * step)`).
    #[inline(always)]
    fn advance_start(&mut self, slot: PerturbSlot, i: u32) {
        let noise = self.ports.draw();
        self.ports.advance(slot, i, noise);
    }

    /// [`Host::hash_connect`] past a scan's first port that someone holds,
    /// when the ports up to the next one nobody holds are known taken (a
    /// client's one server): that port, found from the [`Taken`] bits
    /// without setting up the walk, then the connect on it. Else the walk.
    /// Out of line, as the walk is.
    #[inline(never)]
    fn hash_connect_next(
        &mut self,
        now: Time,
        dest: (u32, u32, u16),
        slot: PerturbSlot,
        offset: u32,
        local: Option<LocalAt>,
    ) -> Result<Connected, Error> {
        let Some((local_port, k)) = local.and_then(|at| self.next_fresh(at, offset, dest)) else {
            return self.hash_connect_walk(now, dest, slot, offset, local);
        };
        // The walk's `i` for the port `k` steps on, in its even pass. The
        // rest is `hash_connect`'s first-port tail (k 0) again: one inlined
        // helper for both cost 0.18 % more instructions (607.2 M).
        self.advance_start(slot, 2 * k);
        let (local_ip, remote_ip, remote_port) = dest;
        let tuple = Tuple {
            local_ip,
            remote_ip,
            local_port,
            remote_port,
        };
        let pick = Pick {
            tuple,
            probed: k + 1,
            tw: None,
            local,
        };
        self.connect_picked(now, Ok(pick), false)
    }

    /// The end of [`Host::hash_connect_walk`]'s even pass from even `offset`
    /// when it takes a port nobody holds: the first port of the pass that
    /// [`Taken`] does not refuse, when nobody holds it either, and the steps
    /// `k` to it. None when the walk must look further (a port held only to
    /// other destinations or a listener there, no such port in the pass, or
    /// no [`Taken`] to skip by), or when `walk_ports` would not skip.
    #[inline(always)]
    fn next_fresh(
        &self,
        at: LocalAt,
        offset: u32,
        (local_ip, remote_ip, remote_port): (u32, u32, u16),
    ) -> Option<(u16, u32)> {
        if !self.ports.range_len().is_multiple_of(2)
            || !self.known_taken(local_ip, remote_ip, remote_port)
        {
            return None;
        }
        let npos = self.ports.even_remaining() / 2;
        let pos0 = offset / 2;
        let k = self
            .ports
            .taken_at(at)
            .next_clear(0, npos as usize, pos0 as usize, 0) as u32;
        if k == npos {
            return None;
        }
        let pos = if pos0 + k >= npos {
            pos0 + k - npos
        } else {
            pos0 + k
        };
        let port = self.ports.low() + (2 * pos) as u16;
        let bucket = self.ports.buckets_at(at)[2 * pos as usize];
        self.port_fresh(port, bucket).then_some((port, k))
    }

    /// [`Host::hash_connect`] past a scan's first port that someone holds:
    /// the walk from `offset`, then the connect on the port it found, if
    /// any. Out of line, so that a connect that takes the first port sets
    /// none of it up, and its pick (with no TIME-WAIT entry) is not merged
    /// with this one's.
    #[inline(never)]
    fn hash_connect_walk(
        &mut self,
        now: Time,
        (local_ip, remote_ip, remote_port): (u32, u32, u16),
        slot: PerturbSlot,
        offset: u32,
        local: Option<LocalAt>,
    ) -> Result<Connected, Error> {
        let buckets = local.map(|at| self.ports.buckets_at(at));
        let low = self.ports.low();
        let known_taken = self.known_taken(local_ip, remote_ip, remote_port);
        let skip = self.skip(local, known_taken);
        let walked = self.walk_ports(offset, other_parity(offset), skip, |h, port| {
            let tuple = Tuple {
                local_ip,
                remote_ip,
                local_port: port,
                remote_port,
            };
            let bucket = buckets.map_or(0, |b| b[usize::from(port - low)]);
            h.port_usable(now, &tuple, bucket, known_taken)
                .map(|tw| (port, tw))
        });
        let pick = walked.map(|((local_port, tw), i, probed)| {
            self.advance_start(slot, i);
            let tuple = Tuple {
                local_ip,
                remote_ip,
                local_port,
                remote_port,
            };
            Pick {
                tuple,
                probed,
                tw,
                local,
            }
        });
        self.connect_picked(now, pick, false)
    }

    /// The port `hash_connect` will take for this destination as far as the
    /// port buckets tell: its walk, without making the destination's
    /// `table_perturb` slot (None before its first search) and without the
    /// table lookups (a port that would need one is the guess). Exact for
    /// the first destination while `known_taken` holds, as on a client with
    /// one server; for a prefetch, which may be wrong. Once most ports are
    /// held the scan's first port is seldom the one taken (at a million
    /// connections over 71 addresses, 24 % of the last 100 k connects).
    pub(super) fn guess_port(
        &self,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
    ) -> Option<u16> {
        let offset = self.ports.peek_start(local_ip, remote_ip, remote_port)?;
        let known_taken = self.known_taken(local_ip, remote_ip, remote_port);
        let local = self.ports.local_at(local_ip);
        let buckets = local.map(|at| self.ports.buckets_at(at));
        let skip = self.skip(local, known_taken);
        let low = self.ports.low();
        let found = self.walk_ports(offset, other_parity(offset), skip, |h, port| {
            let bucket = buckets.map_or(0, |b| b[usize::from(port - low)]);
            let taken = h.is_listening(port)
                || Ports::is_bound(bucket)
                || (known_taken && Ports::holds_first_dest(bucket));
            (!taken).then_some(port)
        });
        found.ok().map(|(port, _, _)| port)
    }

    /// With no tcp_tw_reuse for these addresses, a port whose bucket marks
    /// an entry to this destination fails `__inet_check_established` whether
    /// that entry is a connection or TIME-WAIT: skipped unlooked.
    fn known_taken(&self, local_ip: u32, remote_ip: u32, remote_port: u16) -> bool {
        self.ports.is_first_dest(remote_ip, remote_port)
            && !self.tw_reuse_allowed(local_ip, remote_ip)
    }

    /// The ports of address `local` a walk passes unlooked, when
    /// `known_taken` lets it ([`Taken`]); None walks them one by one.
    fn skip(&self, local: Option<LocalAt>, known_taken: bool) -> Option<&Taken> {
        local
            .filter(|_| known_taken)
            .map(|at| self.ports.taken_at(at))
    }

    /// Whether `port`, whose bucket is `bucket`, is free for any tuple: no
    /// bucket yet (`inet_bind_bucket_create` makes a fresh one) and no
    /// listener on it.
    #[inline(always)]
    fn port_fresh(&self, port: u16, bucket: u32) -> bool {
        bucket == 0 && !self.is_listening(port)
    }

    /// One port of `hash_connect`, whose bucket is `bucket`: None when it
    /// cannot carry `tuple`, else the ring position of the TIME-WAIT entry
    /// to take over if any.
    /// `known_taken`: a bucket that holds an entry to this destination is
    /// refused without the lookup.
    fn port_usable(
        &self,
        now: Time,
        tuple: &Tuple,
        bucket: u32,
        known_taken: bool,
    ) -> Option<Option<u64>> {
        if self.port_fresh(tuple.local_port, bucket) {
            return Some(None);
        }
        // A listener's bucket has fastreuse >= 0: skipped like a bound port.
        if self.is_listening(tuple.local_port) {
            return None;
        }
        if Ports::is_bound(bucket) {
            return None; // tb->fastreuse >= 0
        }
        if known_taken && Ports::holds_first_dest(bucket) {
            return None;
        }
        match self.table.find(tuple) {
            None => Some(None),
            Some(Found::Conn(_)) => None,
            Some(Found::TimeWait(pos)) => {
                let e = self.table.time_wait(pos);
                self.twsk_unique(now, &e, true).then_some(Some(pos))
            }
        }
    }

    /// bind(addr, 0) (`inet_csk_find_open_port`, no SO_REUSEADDR): a random
    /// odd offset, the odd ports first (the opposite parity of connect's, "to
    /// not pollute connect() users"), then the even ones; only a port with no
    /// bucket on this address will do. connect() then finds the 4-tuple unique.
    fn find_open_port(
        &mut self,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
    ) -> Result<Pick, u32> {
        let remaining = self.ports.even_remaining();
        let offset = ((self.ports.draw() % u64::from(remaining)) as u32) | 1;
        // offset--; if (!(offset & 1)) goto other_parity_scan
        let other = Some(offset.wrapping_sub(1)).filter(|o| o & 1 == 0);
        let local = self.ports.local_at(local_ip);
        let buckets = local.map(|at| self.ports.buckets_at(at));
        let (port, _, probed) = self.walk_ports(offset, other, None, |h, port| {
            h.port_open(buckets, port).then_some(port)
        })?;
        let tuple = Tuple {
            local_ip,
            remote_ip,
            local_port: port,
            remote_port,
        };
        Ok(Pick {
            tuple,
            probed,
            tw: None,
            local,
        })
    }

    /// Ports bind(addr, 0) could take on `local_ip` now: those
    /// `find_open_port` walks (the even-sized head of
    /// `ip_local_port_range`) that no socket holds.
    pub fn open_ports(&self, local_ip: u32) -> u32 {
        let buckets = self.ports.buckets(local_ip);
        let low = self.ports.low();
        (0..self.ports.even_remaining())
            .filter(|&i| self.port_open(buckets, low + i as u16))
            .count() as u32
    }

    /// Whether bind(0) may take `port`, whose address has `buckets`: no
    /// bucket for it, and no listener on it.
    #[inline]
    fn port_open(&self, buckets: Option<&[u32]>, port: u16) -> bool {
        let free = buckets.is_none_or(|b| b[usize::from(port - self.ports.low())] == 0);
        free && !self.is_listening(port)
    }

    /// `tcp_twsk_unique`: may a new connection take over TIME-WAIT entry `e`?
    /// It needs the peer's timestamps on the old connection
    /// (`tw_ts_recent_stamp`). From the ephemeral search (`twp` set) it also
    /// needs `tcp_tw_reuse` (2: only with a loopback address at either end)
    /// and `tcp_tw_reuse_delay` since the entry began (`tw_entry_stamp`,
    /// which a restart does not move). For a port bound beforehand
    /// (`twp` NULL) the timestamps alone suffice. An orphaned FIN-WAIT-2
    /// (`TCP_FIN_WAIT2` substate, never reused) is a full entry here, so it
    /// never reaches this test.
    pub(super) fn twsk_unique(&self, now: Time, e: &TwEntry, twp: bool) -> bool {
        if e.ts_recent.is_none() {
            return false;
        }
        if !twp {
            return true;
        }
        let reuse = self.tw_reuse_allowed(e.tuple.local_ip, e.tuple.remote_ip);
        let thresh = e
            .entry_ms
            .wrapping_add(self.cfg.tw_reuse_delay.as_millis() as u32);
        // time_after32(tcp_clock_ms(), reuse_thresh)
        reuse && (thresh.wrapping_sub(now.stamp_ms()) as i32) < 0
    }

    /// Whether `tcp_tw_reuse` lets connect() take over a TIME-WAIT between
    /// these addresses (2: only with a loopback address at either end).
    pub(super) fn tw_reuse_allowed(&self, local_ip: u32, remote_ip: u32) -> bool {
        match self.cfg.tw_reuse {
            2 => is_loopback(local_ip) || is_loopback(remote_ip),
            r => r != 0,
        }
    }

    /// Removes TIME-WAIT entry `e` at `pos` for a new connection on its
    /// 4-tuple (`inet_twsk_deschedule_put`; `TWRecycled`) and returns the new
    /// ISS: `tw_snd_nxt + 65535 + 2`, 0 made 1 (`tcp_twsk_unique`).
    pub(super) fn take_over_time_wait(&mut self, now: Time, pos: u64, e: &TwEntry) -> Seq {
        self.table.remove_time_wait(pos, &e.tuple);
        self.stats.tw_reused += 1;
        // Releases the port once (closed_time_wait does it): releasing it
        // here too took a second user off a port another destination shares.
        self.closed_time_wait(now, &e.tuple, e.close_ms, CloseReason::Reused);
        let iss = e.snd_nxt + 65_537u32;
        if u32::from(iss) == 0 {
            Seq(1)
        } else {
            iss
        }
    }

    /// An entry left the table: its port's bucket loses a user. Passive
    /// entries (on a listening port) were never counted.
    pub(super) fn port_released(&mut self, tuple: &Tuple) {
        release_port(&mut self.ports, &self.listening, tuple);
    }
}

/// [`Host::port_released`] on the host's parts, for a caller that holds the
/// table apart from them ([`super::time_wait::TwEnd`]).
#[inline(always)]
pub(super) fn release_port(ports: &mut Ports, listening: &[u64], tuple: &Tuple) {
    if !listening_on(listening, tuple.local_port) {
        ports.release(tuple);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    const LOCAL: u32 = 0x0a00_0002;
    const SERVER: u32 = 0x0a00_0001;

    /// [`Host::hash_connect`] by its walk alone, whatever the first port.
    fn walked(h: &mut Host, now: Time, dest: (u32, u32, u16)) -> Result<Connected, Error> {
        let now = h.begin(now);
        let (slot, offset) = h.ports.start(dest.0, dest.1, dest.2);
        let local = h.ports.local_at(dest.0);
        h.hash_connect_walk(now, dest, slot, offset, local)
    }

    /// A connect past a held first port takes the port, `i` and count the
    /// walk takes, whether the [`Taken`] bits find it (the even pass's first
    /// port nobody holds) or the walk must (a port held to another
    /// destination, a listener, a full pass): over a small range that fills
    /// and empties, with a listener in it and a second destination.
    #[test]
    fn a_held_first_port_is_passed_as_the_walk_passes_it() {
        let cfg = Config {
            ip_local_port_range: (40_000, 40_127),
            ..Config::default()
        };
        let (mut fast, mut walk) = (Host::new(cfg.clone()), Host::new(cfg));
        for h in [&mut fast, &mut walk] {
            h.listen(40_010);
        }
        let (mut held, mut x, mut found, mut fell_back) = (Vec::new(), 7u64, 0, 0);
        for n in 0..3_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = Time::from_millis(n);
            let dest = (LOCAL, SERVER, if x % 32 == 0 { 81 } else { 80 });
            if let (Some(at), Some(p)) = (
                fast.ports.local_at(LOCAL),
                fast.ports.peek_start(dest.0, dest.1, dest.2),
            ) {
                let first = fast.ports.buckets_at(at)[p as usize];
                if !fast.port_fresh(fast.ports.low() + p as u16, first) {
                    match fast.next_fresh(at, p, dest) {
                        Some(_) => found += 1,
                        None => fell_back += 1,
                    }
                }
            }
            let got = fast.connect_ephemeral(now, dest.0, dest.1, dest.2, BindMode::NoPort);
            let want = walked(&mut walk, now, dest);
            assert_eq!(got, want, "connect {n}");
            assert_eq!(fast.transmits().next(), walk.transmits().next());
            if let Ok(c) = got {
                held.push(c.tuple);
            }
            // Kept near the even ports' count, which connect() fills first:
            // a port freed at random.
            if held.len() > 56 {
                let t = held.swap_remove((x / 2) as usize % held.len());
                assert!(fast.forget(&t) && walk.forget(&t));
            }
        }
        assert!(
            found > 1000 && fell_back > 100,
            "{found} found, {fell_back} walked"
        );
    }
}
