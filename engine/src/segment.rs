//! TCP segments as the engine exchanges them: headers only, payload as a length.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::seq::Seq;
use crate::tuple::Tuple;

/// The longest payload a segment may model (send() takes no more, and the
/// drivers' decoders refuse more). Sequence numbers compare modulo 2^32
/// (RFC 9293 §3.4), which orders two of them only within 2^31 of each other,
/// and no window is above 2^30 (RFC 7323 §2.3): a longer "segment" is not
/// one TCP could send. [`Segment::seq_len`] stays defined for any length.
pub const MAX_LEN: u32 = 1 << 30;

/// TCP control bits (RFC 9293 §3.1), in their header bit positions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const NONE: Flags = Flags(0);

    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    pub const fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    #[inline]
    pub const fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    #[inline]
    pub const fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    #[inline]
    pub const fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    /// packetdrill's notation: `S`, `.`, `F.`, `R.`, `P.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, c) in [
            (Flags::SYN, 'S'),
            (Flags::FIN, 'F'),
            (Flags::RST, 'R'),
            (Flags::PSH, 'P'),
            (Flags::ACK, '.'),
        ] {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The timestamps option (RFC 7323 §3): TSval, the sender's clock, and TSecr,
/// the latest TSval it took from the peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ts {
    pub val: u32,
    pub ecr: u32,
}

/// One segment. `len` counts payload bytes only; SYN and FIN add to the sequence
/// space through [`Segment::seq_len`].
///
/// In declaration order (`repr(C)`), 40 bytes as before: the addresses at 0
/// and the ports at 8 lie in the first 16 bytes of the copy a driver makes of
/// a queued segment, which it writes 16 bytes at a time. The lookup's hash
/// reads them first, and everything after waits on it. In Rust's own order
/// the addresses straddled two of those stores, and a load that spans two
/// stores cannot take its bytes from the store buffer: it waits for both to
/// reach the cache (a failed store-to-load forwarding). That wait was 7 % of
/// the simulator's time (docs/performance.md, session 22).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Segment {
    pub src_ip: u32,
    pub dst_ip: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub wnd: u16,
    pub flags: Flags,
    /// The timestamps option, when the segment carries one.
    pub ts: Option<Ts>,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Segment>() == 40);
    assert!(offset_of!(Segment, src_ip) == 0 && offset_of!(Segment, dst_port) == 10);
};

impl Segment {
    /// A segment sent on `tuple` (seen from the sender: local = source).
    pub fn new(tuple: &Tuple, flags: Flags, seq: u32, ack: u32, len: u32, wnd: u16) -> Segment {
        Segment {
            src_ip: tuple.local_ip,
            dst_ip: tuple.remote_ip,
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq,
            ack,
            len,
            wnd,
            flags,
            ts: None,
        }
    }

    /// The 4-tuple as the receiver sees it (local = destination).
    #[inline]
    pub fn receiver_tuple(&self) -> Tuple {
        Tuple {
            local_ip: self.dst_ip,
            remote_ip: self.src_ip,
            local_port: self.dst_port,
            remote_port: self.src_port,
        }
    }

    /// The 4-tuple as the sender sees it.
    #[inline]
    pub fn sender_tuple(&self) -> Tuple {
        Tuple {
            local_ip: self.src_ip,
            remote_ip: self.dst_ip,
            local_port: self.src_port,
            remote_port: self.dst_port,
        }
    }

    /// Whether the segment was sent on `tuple` (`sender_tuple() == *tuple`),
    /// compared as a word of addresses and one of ports: the field-by-field
    /// comparison became vector compares and shuffles, twice the
    /// instructions, on every segment queued behind one of its connection's.
    #[inline]
    pub fn sent_on(&self, tuple: &Tuple) -> bool {
        let ips = |a: u32, b: u32| u64::from(a) | u64::from(b) << 32;
        let ports = |a: u16, b: u16| u32::from(a) | u32::from(b) << 16;
        let ips_differ = ips(self.src_ip, self.dst_ip) ^ ips(tuple.local_ip, tuple.remote_ip);
        let ports_differ =
            ports(self.src_port, self.dst_port) ^ ports(tuple.local_port, tuple.remote_port);
        ips_differ | u64::from(ports_differ) == 0
    }

    /// SEG.LEN of RFC 9293: payload plus one for SYN and one for FIN, in
    /// sequence space (modulo 2^32): a `len` past [`MAX_LEN`], which only a
    /// malformed input carries, wraps instead of overflowing.
    #[inline]
    pub fn seq_len(&self) -> u32 {
        self.len
            .wrapping_add(self.flags.syn() as u32)
            .wrapping_add(self.flags.fin() as u32)
    }

    /// SEG.SEQ as a sequence number.
    #[inline]
    pub fn seq_num(&self) -> Seq {
        Seq(self.seq)
    }

    /// SEG.ACK as a sequence number.
    #[inline]
    pub fn ack_num(&self) -> Seq {
        Seq(self.ack)
    }

    /// SEG.SEQ + SEG.LEN: the first sequence number after the segment.
    #[inline]
    pub fn seq_end(&self) -> Seq {
        self.seq_num() + self.seq_len()
    }

    pub fn src(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.src_ip), self.src_port)
    }

    pub fn dst(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.dst_ip), self.dst_port)
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} {:?} seq {}",
            self.src(),
            self.dst(),
            self.flags,
            self.seq
        )?;
        if self.flags.ack() {
            write!(f, " ack {}", self.ack)?;
        }
        write!(f, " win {} len {}", self.wnd, self.len)?;
        if let Some(ts) = self.ts {
            write!(f, " <TS val {} ecr {}>", ts.val, ts.ecr)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_len_counts_syn_and_fin() {
        let t = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40000);
        let s = Segment::new(&t, Flags::SYN | Flags::FIN, 0, 0, 3, 0);
        assert_eq!(s.seq_len(), 5);
        assert_eq!(format!("{:?}", s.flags), "SF");
        assert_eq!(s.receiver_tuple().local_port, 40000);
    }

    /// `sent_on` is `sender_tuple() ==`, for a tuple differing in any one field.
    #[test]
    fn sent_on_is_the_sender_tuple() {
        let t = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40000);
        let s = Segment::new(&t, Flags::ACK, 0, 0, 0, 0);
        assert!(s.sent_on(&t));
        let others = [
            Tuple { local_ip: 7, ..t },
            Tuple { remote_ip: 7, ..t },
            Tuple { local_port: 7, ..t },
            Tuple {
                remote_port: 7,
                ..t
            },
            t.reversed(),
        ];
        for o in others {
            assert_eq!(s.sent_on(&o), s.sender_tuple() == o, "{o:?}");
            assert!(!s.sent_on(&o));
        }
    }
}
