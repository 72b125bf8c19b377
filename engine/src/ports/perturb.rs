//! Where connect()'s port search starts: Linux's keyed offset per
//! destination (`secure_ipv4_port_ephemeral`, net/core/secure_seq.c) plus
//! `table_perturb` (RFC 6056 algorithm 4), which `__inet_hash_connect`
//! advances past the port a search took.

use super::{mix, Ports};
use crate::tuple::Tuple;

/// `INET_TABLE_PERTURB_SIZE` with the default `CONFIG_INET_TABLE_PERTURB_ORDER` 16.
pub(super) const PERTURB_MASK: u64 = (1 << 16) - 1;

/// A destination's `table_perturb` slot, from [`Ports::start`]: slots are
/// only added, so it stays valid for the [`Ports::advance`] after the search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PerturbSlot(pub(super) usize);

/// A destination's port offset and `table_perturb` slot, as a search
/// ([`Ports::start`]) or a connect hint ([`Ports::peek_start`]) looked them up.
#[derive(Clone, Copy)]
pub(super) struct Peeked {
    /// (saddr, daddr, dport).
    pub(super) dest: (u32, u32, u16),
    pub(super) port_offset: u64,
    pub(super) slot: u32,
}

impl Ports {
    /// `secure_ipv4_port_ephemeral(saddr, daddr, dport)`: a keyed 64-bit hash
    /// of the destination and our address (siphash with `net_secret` in Linux).
    pub(super) fn port_offset(&self, saddr: u32, daddr: u32, dport: u16) -> u64 {
        let t = Tuple {
            local_ip: saddr,
            remote_ip: daddr,
            local_port: 0,
            remote_port: dport,
        };
        t.hash(self.secret ^ 0x706f_7274_5f6f_6666)
    }

    fn perturb_slot(&mut self, port_offset: u64) -> usize {
        let index = (port_offset & PERTURB_MASK) as u16;
        if let Some(i) = self.find_perturb(index) {
            return i;
        }
        // get_random_sleepable_once(): the table starts random; here keyed.
        let start = mix(index as u64 ^ self.secret) as u32;
        let i = self.perturb.len();
        self.perturb.push((index, start));
        let perturb = &self.perturb;
        self.perturb_at
            .insert_unique(mix(index as u64), i as u32, |&j| {
                mix(perturb[j as usize].0 as u64)
            });
        i
    }

    /// The `table_perturb` slot made for `index`, if a search made it.
    fn find_perturb(&self, index: u16) -> Option<usize> {
        let perturb = &self.perturb;
        self.perturb_at
            .find(mix(index as u64), |&i| perturb[i as usize].0 == index)
            .map(|&i| i as usize)
    }

    /// The scan's first offset into the range from `slot`'s perturbation:
    /// `(table_perturb[index] + (port_offset >> 32)) % remaining`, made even.
    fn scan_offset(&self, slot: usize, port_offset: u64) -> u32 {
        let offset = self.perturb[slot]
            .1
            .wrapping_add((port_offset >> 32) as u32)
            % self.even_remaining();
        offset & !1
    }

    /// Where the even-port scan of `__inet_hash_connect` from `saddr` to
    /// `daddr:dport` starts, as an offset into the range:
    /// `(table_perturb[index] + (port_offset >> 32)) % remaining`, made even
    /// (`remaining` is the range rounded down to even); with the
    /// `table_perturb` slot for [`Ports::advance`]. The destination searched
    /// for last is not hashed again.
    pub(crate) fn start(&mut self, saddr: u32, daddr: u32, dport: u16) -> (PerturbSlot, u32) {
        let dest = (saddr, daddr, dport);
        let p = match self.searched {
            Some(p) if p.dest == dest => p,
            _ => {
                let port_offset = self.port_offset(saddr, daddr, dport);
                let slot = self.perturb_slot(port_offset) as u32;
                let p = Peeked {
                    dest,
                    port_offset,
                    slot,
                };
                self.searched = Some(p);
                p
            }
        };
        let slot = p.slot as usize;
        (PerturbSlot(slot), self.scan_offset(slot, p.port_offset))
    }

    /// Where the next even-port scan from `saddr` to `daddr:dport` starts
    /// ([`Ports::start`] without making its `table_perturb` slot): None
    /// before the first search made it. For a guess ahead of the search;
    /// the destination asked for last is looked up without hashing.
    pub(crate) fn peek_start(&self, saddr: u32, daddr: u32, dport: u16) -> Option<u32> {
        let dest = (saddr, daddr, dport);
        let p = match self.peeked.get() {
            Some(p) if p.dest == dest => p,
            _ => {
                let port_offset = self.port_offset(saddr, daddr, dport);
                let slot = self.find_perturb((port_offset & PERTURB_MASK) as u16)?;
                let p = Peeked {
                    dest,
                    port_offset,
                    slot: slot as u32,
                };
                self.peeked.set(Some(p));
                p
            }
        };
        // The slot's value read now: a search since may have advanced it.
        Some(self.scan_offset(p.slot as usize, p.port_offset))
    }

    /// `remaining` of `__inet_hash_connect`: the range, rounded down to even
    /// when above one port.
    #[inline]
    pub(crate) fn even_remaining(&self) -> u32 {
        self.remaining
    }

    /// After a success at loop index `i` (`i += step` per port probed):
    /// `table_perturb[index] += max(i, random_below(8) * step) + step`, so
    /// that the next search for this destination starts past this port. The
    /// random draw is `noise` (a keyed hash from the caller; the engine has no
    /// random source).
    pub(crate) fn advance(&mut self, slot: PerturbSlot, i: u32, noise: u64) {
        const STEP: u32 = 2;
        let i = i.max((noise % 8) as u32 * STEP);
        let p = &mut self.perturb[slot.0].1;
        *p = p.wrapping_add(i + STEP);
    }

    /// The next keyed pseudo-random draw, where Linux calls
    /// `get_random_u32_below` (the engine has no random source).
    pub(crate) fn draw(&mut self) -> u64 {
        self.draws += 1;
        mix(self.draws ^ self.secret.rotate_left(29))
    }
}
