//! Fast retransmit on duplicate ACKs, for a peer without SACK (the engine
//! offers none), as Linux 6.18's NewReno path does it: `tcp_ack` counts a
//! duplicate, `tcp_fastretrans_alert` adds it to `sacked_out`
//! (`tcp_add_reno_sack`), and `tcp_newreno_mark_lost` marks the head lost once
//! `sacked_out` reaches `tp->reordering`, which `tcp_time_to_recover` turns
//! into fast recovery and a retransmission.
//!
//! The threshold is 3 (`sysctl_tcp_reordering`) only until more duplicates
//! come than segments are out: `tcp_limit_reno_sacked` then caps `sacked_out`
//! and `tcp_check_reno_reordering` lowers `reordering` to `packets_out`. So a
//! duplicate ACK while one segment is out makes the next connection event
//! with three segments out retransmit on the second duplicate (differential
//! seed 1004; fast-retransmit-after-reordering.pkt).
//!
//! Left out: window updates (the engine models no send window, so an ACK is
//! never a window update), and what fast recovery does beyond the one
//! retransmission (PRR's sending of new data: the engine holds new data until
//! everything is acknowledged, as after an RTO).

use super::Host;
use crate::conn::{rec, Conn};
use crate::seq::Seq;
use crate::time::Time;

impl Host {
    /// A duplicate ACK: it acknowledges nothing new, carries no data or FIN,
    /// and finds segments in flight (`tcp_ack`'s `num_dupack`).
    pub(super) fn on_dup_ack(&mut self, now: Time, idx: u32, c: &mut Conn) {
        // After an RTO (TCP_CA_Loss) Reno counts no duplicates for what
        // was sent before it, which is all the engine sends then.
        if c.rto_fired() {
            return;
        }
        let p = c.pkts();
        if p == 0 {
            return;
        }
        if c.fast_recovery() {
            // The collapsed retransmission is the one segment out
            // (sacked_out 0, one hole): each duplicate is one too many.
            c.set_reordering(p);
            return;
        }
        // tcp_add_reno_sack -> tcp_check_reno_reordering.
        let holes = p.min(1);
        let mut d = c.dupacks() + 1;
        if d + holes > p && p < rec::PKTS_MAX {
            d = p - holes;
            c.set_reordering(p);
        }
        if d < c.reordering() {
            c.set_dupacks(d.min(rec::FAST - 1));
            return;
        }
        // tcp_newreno_mark_lost, tcp_enter_recovery, tcp_xmit_retransmit_queue:
        // the head goes again (collapsed with what follows) and the RTO is
        // re-armed from now, not backed off.
        c.set_dupacks(rec::FAST);
        self.stats.fast_retransmits += 1;
        self.resend(c);
        let rto_us = c.backed_off_rto_us(&self.timeouts);
        self.arm_us(now, idx, c, rto_us);
    }

    /// snd_una moves to `ack`: the segments it frees leave the flight, Reno's
    /// duplicates with them (`tcp_remove_reno_sacks`, which may move
    /// `reordering` again), and the count starts over (`tcp_reset_reno_sack`).
    /// Fast recovery ends once everything is acknowledged. Always inlined,
    /// for the common case alone: `on_new_ack` is inlined into `handle`,
    /// where a call here cost 0.3 % of the simulation's instructions.
    #[inline(always)]
    pub(super) fn on_snd_una_advanced(&mut self, c: &mut Conn, ack: Seq) {
        // Everything acknowledged with no duplicate counted (nearly every
        // ACK of a teardown): the flight empties and nothing else moves.
        if ack == c.snd_nxt && c.dupacks() == 0 {
            c.set_pkts(0);
            return;
        }
        Self::snd_una_advanced_partly(c, ack);
    }

    /// [`Host::on_snd_una_advanced`] when something stays in flight or
    /// duplicates were counted.
    #[inline(never)]
    fn snd_una_advanced_partly(c: &mut Conn, ack: Seq) {
        let p = c.pkts();
        // Segment boundaries are not kept: all acknowledged, our FIN alone
        // left (or the one segment it rides on), else at least one freed.
        let left = if ack == c.snd_nxt {
            0
        } else if c.fin_out() && ack + 1 == c.snd_nxt {
            1
        } else {
            p.saturating_sub(1).max(1)
        };
        let acked = p.saturating_sub(left);
        c.set_pkts(left);
        if c.fast_recovery() {
            if left == 0 {
                c.set_dupacks(0);
            }
            return;
        }
        let d = c.dupacks();
        if d > 0 && acked > 0 && p < rec::PKTS_MAX {
            let d = d.saturating_sub(acked - 1);
            if d + left.min(1) > left {
                c.set_reordering(left + acked);
            }
        }
        c.set_dupacks(0);
    }
}
