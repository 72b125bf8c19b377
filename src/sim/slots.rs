//! A shard's connection slots: where a client 4-tuple's slot lies, and the
//! per-slot bytes the simulator keeps beside the hosts' tables (the workload's
//! flags, which ends are still open).

use teardown_engine::tuple::Tuple;

use super::shard::{Side, SERVER_IP, SERVER_PORT};

/// Per-slot workload flags.
pub(super) mod slot {
    pub const CLOSER_SERVER: u8 = 0x01;
    pub const CLOSER_CLIENT: u8 = 0x02;
    pub const RUNAWAY_CLIENT: u8 = 0x04;
    pub const RUNAWAY_SERVER: u8 = 0x08;
    /// The client end vanished: segments to it are lost until the slot is reused.
    pub const CLIENT_GONE: u8 = 0x10;
    pub const SERVER_GONE: u8 = 0x20;
    /// The runaway end vanishes at fin-sent rather than fin-acked.
    pub const AT_FIN_SENT: u8 = 0x40;
    /// This incarnation's segments to the server are captured by --pcap, or
    /// recorded by --replay-server (every slot then).
    pub const CAPTURED: u8 = 0x80;
}

/// A slot's two bytes, side by side: a delivered segment reads both (its
/// flags in `deliver`, its open ends in `on_event`), and with a million slots
/// each was a cold line of its own to ask for ahead ([`Shard::prefetch_slot`]).
///
/// [`Shard::prefetch_slot`]: super::shard::Shard::prefetch_slot
#[derive(Clone, Copy, Default)]
pub(super) struct Slot {
    /// The workload's flags ([`slot`]).
    pub flags: u8,
    /// Which ends of the slot's connection are ESTABLISHED and not yet
    /// closed ([`CLIENT_OPEN`], [`SERVER_OPEN`]): the sweep looks only at
    /// those; and whether the client's application holds it ([`HELD`]).
    pub open: u8,
}

/// Bits of [`Slot::open`].
pub(super) const CLIENT_OPEN: u8 = 0x01;
pub(super) const SERVER_OPEN: u8 = 0x02;
/// The client's application holds the slot's connection: from its connect()
/// to its close(), or to the connection's end when that comes first. What
/// `--concurrency` counts ([`Shard::let_go`]). A bit of [`Slot::open`], so
/// that a slot stays two bytes.
///
/// [`Shard::let_go`]: super::shard::Shard::let_go
pub(super) const HELD: u8 = 0x04;
/// The bits of [`Slot::open`] that name an open end.
const ENDS: u8 = CLIENT_OPEN | SERVER_OPEN;

/// The [`Slot::open`] bit of `side`'s end.
pub(super) fn open_bit(side: Side) -> u8 {
    match side {
        Side::Server => SERVER_OPEN,
        Side::Client => CLIENT_OPEN,
    }
}

/// Slots from which the per-slot arrays (a byte each) outgrow a 32 KiB L1d
/// and `Shard::prefetch_slot` asks for their lines: below it, asking would
/// only cost.
pub(super) const PREFETCH_SLOTS_FROM: usize = 1 << 15;

/// Where a client-side 4-tuple's slot lies, worked out once in
/// [`Shard::new`](super::shard::Shard::new): the lookup runs for every segment delivered and every
/// host event, and read from the config it reloaded the port range and
/// recomputed the shard's address prefix each time.
#[derive(Clone, Copy)]
pub(super) struct SlotMap {
    /// The shard's first client address, `10.<shard>.0.0`.
    base: u32,
    port_lo: u16,
    /// hi - lo: a port is in the range when `port - lo` (wrapping) is at most this.
    port_span: u16,
    /// Slots per client address (its ports).
    stride: usize,
    slots: usize,
}

impl SlotMap {
    /// Shard `index`'s `slots` slots over the ports `lo..=hi` of each address.
    pub(super) fn new(index: u32, (lo, hi): (u16, u16), slots: usize) -> SlotMap {
        SlotMap {
            base: ((10 << 8) | index) << 16,
            port_lo: lo,
            port_span: hi - lo,
            stride: usize::from(hi - lo) + 1,
            slots,
        }
    }

    /// The shard's `n`-th client address, `10.<shard>.<n>`.
    #[inline]
    pub(super) fn client_ip(&self, n: u32) -> u32 {
        self.base | n
    }

    /// The client's view of slot `s`'s 4-tuple: the inverse of [`SlotMap::get`].
    pub(super) fn tuple(&self, s: usize) -> Tuple {
        Tuple {
            local_ip: self.client_ip((s / self.stride) as u32),
            remote_ip: SERVER_IP,
            local_port: self.port_lo + (s % self.stride) as u16,
            remote_port: SERVER_PORT,
        }
    }

    /// The slot of a tuple seen from the client (local = client); None for an
    /// address that is not one of this shard's clients (an attacker's spoofed one).
    /// The port range is tested as one unsigned difference, the address with the slot count.
    #[inline(always)]
    pub(super) fn get(&self, client_view: &Tuple) -> Option<usize> {
        self.unbounded(client_view).filter(|&s| s < self.slots)
    }

    /// [`SlotMap::get`] but for the test against the slot count, which the
    /// caller makes against its per-slot array instead: the compiler then
    /// drops the bounds check of the index into that array. That test also
    /// turns away an address outside the shard's /16, whose offset from
    /// `base` (wrapping, in 64 bits) is 2^16 or more: its index is then
    /// at least 2^16 strides, past any shard's slots (at most 2^16 addresses'
    /// worth). Only the port needs a test of its own.
    #[inline(always)]
    pub(super) fn unbounded(&self, client_view: &Tuple) -> Option<usize> {
        let ip = u64::from(client_view.local_ip.wrapping_sub(self.base));
        let port = client_view.local_port.wrapping_sub(self.port_lo);
        if port > self.port_span {
            return None;
        }
        usize::try_from(ip * self.stride as u64 + u64::from(port)).ok()
    }
}

/// The first slot at or after `from` with an open end (an [`ENDS`] bit of
/// [`Slot::open`]). The sweep visits every slot of the shard, and most are
/// empty: so they are tested eight at a time.
pub(super) fn next_open(slots: &[Slot], from: usize) -> Option<usize> {
    let open = |s: &Slot| s.open & ENDS != 0;
    let rest = slots.get(from..)?;
    let (eights, tail) = rest.as_chunks::<8>();
    // Their `open` bytes in one word: one test for eight slots.
    let any = |e: &[Slot; 8]| u64::from_ne_bytes(e.map(|s| s.open & ENDS)) != 0;
    let k = match eights.iter().position(any) {
        Some(e) => e * 8 + eights[e].iter().position(open)?,
        None => eights.len() * 8 + tail.iter().position(open)?,
    };
    Some(from + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise scan finds what a byte-wise one finds: every nonzero
    /// byte from every start, in a word, across words and in the tail.
    #[test]
    fn next_open_is_the_first_nonzero_byte_from_there() {
        let mut slots = vec![Slot::default(); 29];
        for (i, b) in [(3, 1), (8, 2), (9, 3), (23, 1), (27, 2)] {
            slots[i].open = b;
        }
        // Flags alone, or a connection held before it is ESTABLISHED, do
        // not make a slot open.
        slots[5].flags = 0xff;
        slots[6].open = HELD;
        for from in 0..=slots.len() + 1 {
            let want = (from..slots.len()).find(|&i| slots[i].open & ENDS != 0);
            assert_eq!(next_open(&slots, from), want, "from {from}");
        }
        let flagged = Slot {
            flags: 0xff,
            open: HELD,
        };
        assert_eq!(next_open(&[flagged; 16], 0), None);
    }

    /// Every slot's tuple maps back to that slot (and is the one `tuple`
    /// makes); addresses and ports
    /// outside the shard's (another shard, below or above the port range,
    /// past the last slot) map to none.
    #[test]
    fn slot_map_inverts_the_slot_tuples() {
        let (lo, hi) = (1000u16, 1009u16);
        let map = SlotMap::new(3, (lo, hi), 25);
        let tuple = |ip: u32, port: u16| Tuple {
            local_ip: (10 << 24) | ip,
            remote_ip: SERVER_IP,
            local_port: port,
            remote_port: SERVER_PORT,
        };
        for s in 0..25u32 {
            let t = tuple((3 << 16) | (s / 10), lo + (s % 10) as u16);
            assert_eq!(map.get(&t), Some(s as usize));
            assert_eq!(map.tuple(s as usize), t);
        }
        assert_eq!(
            map.get(&tuple((3 << 16) | 2, lo + 5)),
            None,
            "past the last slot"
        );
        assert_eq!(map.get(&tuple(3 << 16, lo - 1)), None);
        assert_eq!(map.get(&tuple(3 << 16, hi + 1)), None);
        assert_eq!(map.get(&tuple(4 << 16, lo)), None, "another shard");
        // Offsets of a whole /16 and more, whose index passes the last slot
        // only as a multiple of the stride; and one below the shard's base.
        assert_eq!(map.get(&tuple(0xffff << 16, lo)), None, "the last /16");
        assert_eq!(map.get(&tuple((3 << 16) - 1, lo)), None, "just below");
    }
}
