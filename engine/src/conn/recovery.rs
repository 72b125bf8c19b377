//! Loss recovery's state, packed in one byte of the [`Tcb`]: Linux's
//! NewReno path for a peer without SACK (RTO fired, segments in flight,
//! duplicate ACKs, the reordering threshold).

use super::Tcb;

/// Loss recovery state in [`Tcb::rec`], for a peer without SACK (the engine
/// offers none), as Linux's NewReno path keeps it: `tcp_add_reno_sack`,
/// `tcp_limit_reno_sacked`, `tcp_check_reno_reordering`, `tcp_newreno_mark_lost`.
pub(crate) mod rec {
    /// The retransmission timer has fired for the oldest segment
    /// (`icsk_retransmits` above 0, which is all the engine reads of it).
    pub const RTO: u8 = 0x01;
    /// `packets_out`: segments in flight, seven standing for seven or more.
    /// The engine keeps no segment boundaries; a teardown has a response
    /// and a FIN or two in flight, each counted as it is sent.
    pub(in crate::conn) const PKTS_SHIFT: u8 = 1;
    pub const PKTS_MAX: u8 = 7;
    /// Reno's `sacked_out`: duplicate ACKs counted, below `reordering`;
    /// [`FAST`] once they reached it (Linux's `TCP_CA_Recovery`).
    pub(in crate::conn) const DUPS_SHIFT: u8 = 4;
    pub const FAST: u8 = 3;
    /// `tp->reordering`, the duplicate-ACK threshold: `sysctl_tcp_reordering`
    /// (3) at first, lowered to `packets_out` when more duplicates come than
    /// segments are out. Three also stands for more: dupthresh above three
    /// needs four segments out.
    pub(in crate::conn) const REORD_SHIFT: u8 = 6;
    pub const REORDERING_DEFAULT: u8 = 3;
}

impl Tcb {
    /// The retransmission timer fired for the oldest segment (`icsk_retransmits`).
    #[inline]
    pub fn rto_fired(&self) -> bool {
        self.rec & rec::RTO != 0
    }

    #[inline]
    pub fn set_rto_fired(&mut self, on: bool) {
        self.rec = (self.rec & !rec::RTO) | on as u8;
    }

    /// Segments in flight (`packets_out`, saturating at [`rec::PKTS_MAX`]).
    #[inline]
    pub fn pkts(&self) -> u8 {
        (self.rec >> rec::PKTS_SHIFT) & 0x7
    }

    #[inline]
    pub fn set_pkts(&mut self, n: u8) {
        let n = n.min(rec::PKTS_MAX);
        self.rec = (self.rec & !(0x7 << rec::PKTS_SHIFT)) | n << rec::PKTS_SHIFT;
    }

    /// One more segment in flight, as `tcp_event_new_data_sent` counts it:
    /// [`Tcb::set_pkts`] of one more, as one add to the byte (every segment
    /// sent new takes this).
    #[inline]
    pub fn add_pkt(&mut self) {
        if self.pkts() < rec::PKTS_MAX {
            self.rec += 1 << rec::PKTS_SHIFT;
        }
    }

    /// Duplicate ACKs counted (`sacked_out`), or [`rec::FAST`] in fast recovery.
    #[inline]
    pub fn dupacks(&self) -> u8 {
        (self.rec >> rec::DUPS_SHIFT) & 0x3
    }

    #[inline]
    pub fn set_dupacks(&mut self, n: u8) {
        debug_assert!(n <= rec::FAST);
        self.rec = (self.rec & !(0x3 << rec::DUPS_SHIFT)) | n << rec::DUPS_SHIFT;
    }

    /// In fast recovery: a fast retransmission is outstanding.
    #[inline]
    pub fn fast_recovery(&self) -> bool {
        self.dupacks() == rec::FAST
    }

    /// The duplicate-ACK threshold (`tp->reordering`), 1 to 3.
    #[inline]
    pub fn reordering(&self) -> u8 {
        self.rec >> rec::REORD_SHIFT
    }

    #[inline]
    pub fn set_reordering(&mut self, n: u8) {
        let n = n.clamp(1, rec::REORDERING_DEFAULT);
        self.rec = (self.rec & !(0x3 << rec::REORD_SHIFT)) | n << rec::REORD_SHIFT;
    }

    /// A retransmitted segment is unacknowledged: Linux is in loss recovery
    /// (after an RTO with a congestion window of one; in fast recovery the
    /// engine holds new data alike), and sends no new sequence space.
    #[inline]
    pub fn in_recovery(&self) -> bool {
        (self.rto_fired() || self.fast_recovery()) && self.snd_una != self.snd_nxt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Conn, TimeoutsUs};
    use crate::seq::Seq;
    use crate::state::State;
    use crate::tuple::Tuple;

    fn conn() -> Conn {
        let t = TimeoutsUs::new(&crate::Config::default());
        Conn::new(Tuple::default(), State::Established, Seq(0), &t)
    }

    #[test]
    fn recovery_fields_share_a_byte_without_meeting() {
        let mut c = conn();
        assert_eq!((c.pkts(), c.dupacks(), c.reordering()), (0, 0, 3));
        assert!(!c.rto_fired() && !c.fast_recovery());
        c.set_pkts(9);
        c.set_dupacks(2);
        c.set_reordering(1);
        c.set_rto_fired(true);
        assert_eq!((c.pkts(), c.dupacks(), c.reordering()), (7, 2, 1));
        assert!(c.rto_fired());
        c.set_reordering(5);
        c.set_dupacks(rec::FAST);
        c.set_rto_fired(false);
        assert_eq!((c.pkts(), c.reordering()), (7, 3));
        assert!(c.fast_recovery() && !c.rto_fired());
    }

    /// Adding a segment is `set_pkts` of one more, saturating, whatever
    /// the other fields hold.
    #[test]
    fn add_pkt_is_set_pkts_of_one_more() {
        for byte in 0..=u8::MAX {
            let mut added = conn();
            added.rec = byte;
            let mut set = added;
            added.add_pkt();
            let more = set.pkts() + 1;
            set.set_pkts(more);
            assert_eq!(added.rec, set.rec, "{byte:#04x}");
        }
    }
}
