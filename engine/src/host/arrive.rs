//! SEGMENT ARRIVES (RFC 9293 §3.10.7): a segment routed by the state of its
//! entry, and the states before synchronization: CLOSED (no entry), LISTEN
//! and SYN-SENT. Every other state goes through `synchronized.rs` in RFC 9293
//! §3.10.7.4's order of checks.

use super::{CloseReason, Event, Host, Next};
use crate::conn::{flag, Conn};
use crate::push::push_with;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::state::State;
use crate::table::Hit;
use crate::time::Time;
use crate::tuple::Tuple;

/// The two steps of [`Host::prefetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// The index bucket the lookup reads first, and for a segment that may
    /// end the entry the bucket of its local port, which the end releases.
    Bucket,
    /// The entry the bucket points to (the bucket must be in cache by then
    /// or this step waits for it).
    Entry,
}

impl Host {
    /// A hint that `seg` will arrive soon, in two steps a few segments apart
    /// ([`Prefetch::Bucket`] first, [`Prefetch::Entry`] later): a driver
    /// that sees its queue ahead overlaps the cache misses of the lookups to
    /// come with the work of this one, as DPDK's bulk lookup and VPP's vectors
    /// do. It changes nothing but the cache, and does nothing for a table
    /// small enough to stay in cache, where it would only cost the hashing.
    /// Always inlined, so that a small table's early return costs a compare
    /// and no call.
    #[inline(always)]
    pub fn prefetch(&self, seg: &Segment, step: Prefetch) {
        if !self.hinted() {
            return;
        }
        let tuple = seg.receiver_tuple();
        match step {
            Prefetch::Bucket => {
                self.table.prefetch_bucket(&tuple);
                // Only a segment with no SYN, FIN or data (LAST-ACK's final
                // ACK, an RST) can end an entry and release its port.
                let f = seg.flags;
                if !f.syn() && !f.fin() && seg.len == 0 {
                    self.prefetch_port(&tuple);
                }
            }
            Prefetch::Entry => self.table.prefetch_entry(&tuple),
        }
    }

    /// Processes one arriving segment.
    pub fn handle(&mut self, now: Time, seg: &Segment) {
        let now = self.begin(now);
        self.stats.segments_received += 1;
        let tuple = seg.receiver_tuple();
        let hash = self.table.hash(&tuple);
        match self.table.find_named(&tuple, hash) {
            Some(Hit::Conn(idx, rec)) => {
                let mut c = self.table.conn_found(idx, rec, tuple);
                let before = c.state;
                let next = if c.state == State::SynSent {
                    self.on_syn_sent(now, idx, &mut c, seg)
                } else {
                    self.on_segment(now, idx, &mut c, seg)
                };
                self.commit_hashed(now, idx, &mut c, before, next, Some(hash));
            }
            Some(Hit::TimeWait(pos)) => self.on_time_wait_entry(now, pos, tuple, hash, seg),
            None => self.on_closed(now, tuple, hash, seg),
        }
    }

    /// TIME-WAIT entry `pos`, named `tuple` (`hash`: its hash), takes `seg`.
    /// Out of line, as [`Host::on_closed`] is: the two in `handle`, which
    /// most segments pass by, cost the simulator 0.4 % more instructions.
    #[inline(never)]
    fn on_time_wait_entry(&mut self, now: Time, pos: u64, tuple: Tuple, hash: u64, seg: &Segment) {
        let e = self.table.time_wait_named(pos, tuple);
        let verdict = self.on_time_wait(now, pos, &e, seg);
        self.act_on_time_wait(now, pos, hash, &e, seg, verdict);
    }

    /// CLOSED (no entry): a SYN to a listening port opens a connection
    /// (RFC 9293 §3.10.7.2); anything else draws a reset. `hash`: the
    /// tuple's, from the lookup that found nothing.
    #[inline(never)]
    fn on_closed(&mut self, now: Time, tuple: Tuple, hash: u64, seg: &Segment) {
        let f = seg.flags;
        if f.syn() && !f.ack() && !f.rst() && !f.fin() && self.is_listening(tuple.local_port) {
            let iss = self.isn(now, &tuple);
            self.accept_syn(now, tuple, hash, seg, iss);
        } else {
            self.reset_for(now, seg);
        }
    }

    /// LISTEN takes a SYN (RFC 9293 §3.10.7.2): SYN-RECEIVED with ISS `iss`, and
    /// our SYN-ACK; dropped silently when the table is full. `hash`: the
    /// tuple's [`crate::table::Table::hash`].
    pub(super) fn accept_syn(
        &mut self,
        now: Time,
        tuple: Tuple,
        hash: u64,
        seg: &Segment,
        iss: Seq,
    ) {
        if self.table.len() >= self.cfg.max_connections {
            self.stats.syn_dropped += 1;
            return;
        }
        let mut c = Conn::new(tuple, State::SynReceived, iss, &self.timeouts);
        c.rcv_nxt = seg.seq_num() + 1;
        // RFC 7323 §3.2: timestamps when both offer them; the SYN's TSval is
        // the first ts_recent (`tcp_openreq_init`).
        if let (true, Some(ts)) = (self.cfg.timestamps, seg.ts) {
            c.flags |= flag::TS_OK;
            c.ts_recent = ts.val;
        }
        // The SYN-ACK goes out first and the connection is stored once, as
        // it is after sending (its slab slot taken in advance).
        let idx = self.table.reserve_conn(&c);
        self.send_new_inline(now, idx, &mut c, Flags::SYN | Flags::ACK, 0);
        self.table.insert_reserved(idx, &c, hash);
        self.stats.opened_passive += 1;
        self.entered(&c, State::Closed);
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    fn on_syn_sent(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit
        // is set) <SEQ=SEG.ACK><CTL=RST>". This is how a new client answers the
        // challenge ACK of an old LAST-ACK incarnation (seed case 6).
        if f.ack() && (seg.ack_num() <= c.snd_una || c.snd_nxt < seg.ack_num()) {
            if !f.rst() {
                self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
                self.stats.rst_sent += 1;
            }
            return Next::Keep;
        }
        // An acceptable ACK whose TSecr echoes no TSval of ours
        // ([`Host::handshake_echo_rejected`]): answered as a bad ACK is,
        // RST <SEQ=SEG.ACK> unless it is an RST, and SYN-SENT stays
        // (`tcp_rcv_synsent_state_process`'s `reset_and_undo`).
        if f.ack() && self.handshake_echo_rejected(c, seg) {
            self.stats.paws_active_rejected += 1;
            if !f.rst() {
                self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
                self.stats.rst_sent += 1;
            }
            return Next::Keep;
        }
        if f.rst() {
            if f.ack() {
                self.stats.rst_received += 1;
                return Next::Close(CloseReason::Reset);
            }
            return Next::Keep;
        }
        if !f.syn() {
            return Next::Keep;
        }
        c.rcv_nxt = seg.seq_num() + 1;
        // Our SYN offered timestamps: kept if the answer has them too.
        // Without them ts_recent goes back to 0 (it may hold the TSval of a
        // reused TIME-WAIT, which the SYN echoed): `paws_discard` counts on it.
        match seg.ts {
            Some(ts) if c.has(flag::TS_OK) => c.ts_recent = ts.val,
            _ => {
                c.flags &= !flag::TS_OK;
                c.ts_recent = 0;
            }
        }
        if f.ack() {
            self.on_new_ack(now, idx, c, seg, State::SynSent);
            c.state = State::Established;
            self.send_ack_inline(c);
            push_with(&mut self.events, || Event::Established { tuple: c.tuple });
        } else {
            // Simultaneous open: SYN-RECEIVED, resend our SYN with an ACK.
            c.state = State::SynReceived;
            self.resend_syn_ack(c);
        }
        Next::Keep
    }
}
