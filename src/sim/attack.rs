//! Attack traffic: an off-path attacker who knows the 4-tuples of the server's
//! connections (they are visible in the clear) but not, except where stated,
//! their sequence numbers. Segments go straight to the server; its replies go to
//! the legitimate clients over the link, as they would on a real network.

use clap::ValueEnum;
use rand::Rng;
use serde::Serialize;

use teardown_engine::segment::{Flags, Segment};
use teardown_engine::state::State;
use teardown_engine::tuple::Tuple;

use super::open::nth_at_rate;
use super::record::Call;
use super::shard::{Shard, Side, SERVER_IP, SERVER_PORT};

/// What the attacker sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum AttackKind {
    /// RST with a random sequence number at a live connection (RFC 5961 §3).
    BlindRst,
    /// RST somewhere in the receive window (the attacker guessed the window).
    InwindowRst,
    /// SYN with a random sequence number at a TIME-WAIT entry (RFC 6191 reuse).
    SynTimewait,
    /// SYN with a random sequence number at a LAST-ACK connection (RFC 5961 §4).
    SynLastack,
    /// FIN/ACK for 4-tuples the server does not know (draws RSTs).
    FinUnknown,
    /// A stale segment of an old incarnation: FIN/ACK far below rcv_nxt.
    OldDuplicate,
}

impl AttackKind {
    pub fn key(self) -> &'static str {
        match self {
            AttackKind::BlindRst => "blind-rst",
            AttackKind::InwindowRst => "inwindow-rst",
            AttackKind::SynTimewait => "syn-timewait",
            AttackKind::SynLastack => "syn-lastack",
            AttackKind::FinUnknown => "fin-unknown",
            AttackKind::OldDuplicate => "old-duplicate",
        }
    }

    /// The segment this attack sends on `client` (the 4-tuple as the legitimate
    /// client names it), given the server's view of that connection (its
    /// `snd_nxt` and `rcv_nxt`, zero when it has none), its receive window and a
    /// random word. Only `inwindow-rst` and `old-duplicate` use the sequence
    /// numbers: the first is an attacker who guessed the window, the second a
    /// stale segment of an earlier incarnation.
    pub fn segment(self, client: &Tuple, snd_nxt: u32, rcv_nxt: u32, wnd: u32, r: u32) -> Segment {
        match self {
            AttackKind::BlindRst => Segment::new(client, Flags::RST, r, 0, 0, 0),
            AttackKind::InwindowRst => Segment::new(
                client,
                Flags::RST,
                rcv_nxt.wrapping_add(r % wnd.max(1)),
                0,
                0,
                0,
            ),
            AttackKind::SynTimewait | AttackKind::SynLastack => {
                Segment::new(client, Flags::SYN, r, 0, 0, 65_535)
            }
            AttackKind::FinUnknown => Segment::new(
                client,
                Flags::FIN | Flags::ACK,
                r,
                r.rotate_left(7),
                0,
                65_535,
            ),
            AttackKind::OldDuplicate => Segment::new(
                client,
                Flags::FIN | Flags::ACK,
                rcv_nxt.wrapping_sub(1 + (r >> 12)),
                snd_nxt.wrapping_sub(1 + (r & 0xfff)),
                0,
                65_535,
            ),
        }
    }

    /// The odds that one segment that found its target kills it: RFC 5961 lets a
    /// blind RST kill only at exactly rcv_nxt (1 in 2^32) and one in the window 1
    /// in the window size; a random SYN reopens TIME-WAIT when its sequence
    /// number is above rcv_nxt (half the space, RFC 6191).
    pub fn kill_odds(self, wnd: u32) -> f64 {
        match self {
            AttackKind::BlindRst => 1.0 / 4_294_967_296.0,
            AttackKind::InwindowRst => 1.0 / wnd.max(1) as f64,
            AttackKind::SynTimewait => 0.5,
            _ => 0.0,
        }
    }
}

/// What one kind of attack achieved.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct AttackCounts {
    pub sent: u64,
    /// Segments that found a connection in the state the attack aims at.
    pub on_target: u64,
    /// Legitimate connections (or TIME-WAIT entries) the attack ended.
    pub killed: u64,
    /// Connections whose state it changed without ending them.
    pub disturbed: u64,
    /// Challenge ACKs the server sent in reply.
    pub challenge_acks: u64,
    /// RSTs the server sent in reply.
    pub rst_replies: u64,
    /// What RFC 5961 predicts for `killed`, given the segments on target.
    pub expected_killed: f64,
}

impl AttackCounts {
    pub fn add(&mut self, o: &AttackCounts) {
        self.sent += o.sent;
        self.on_target += o.on_target;
        self.killed += o.killed;
        self.disturbed += o.disturbed;
        self.challenge_acks += o.challenge_acks;
        self.rst_replies += o.rst_replies;
        self.expected_killed += o.expected_killed;
    }
}

impl Shard<'_> {
    /// Injects one attack segment at the server and books what it did. Attacks
    /// go on while the workload runs: they stop once every connection is opened
    /// and every client end is done.
    pub(super) fn attack(&mut self) {
        let kinds = &self.cfg.attacks;
        let k = (self.attacks_sent % kinds.len() as u64) as usize;
        let kind = kinds[k];
        self.attacks_sent += 1;
        let next = nth_at_rate(
            self.attacks_sent,
            self.cfg.attack_rate,
            self.cfg.shards,
            self.index,
        );
        self.apps.set_attack(
            (self.attempts < self.to_open || !self.client.is_empty()).then_some(next.max(self.now)),
        );

        // Find a target: a connection in the state this attack aims at.
        let wanted = |st: State| match kind {
            AttackKind::BlindRst | AttackKind::InwindowRst | AttackKind::OldDuplicate => {
                st.is_synchronized() && st != State::TimeWait
            }
            AttackKind::SynTimewait => st == State::TimeWait,
            AttackKind::SynLastack => st == State::LastAck,
            AttackKind::FinUnknown => st == State::Closed,
        };
        let mut target = None;
        for _ in 0..16 {
            let slot = self.rng.gen_range(0..self.slots.len() as u32);
            let client = self.tuple(slot);
            if wanted(self.server.state(&client.reversed())) {
                target = Some(client);
                break;
            }
        }
        let on_target = target.is_some();
        let client = match target {
            Some(t) => t,
            // No target found (and fin-unknown's by design): a 4-tuple from an
            // address no client uses.
            None => Tuple {
                local_ip: u32::from_be_bytes([172, 16, 0, 0]) | self.rng.gen_range(0..0xffff),
                remote_ip: SERVER_IP,
                local_port: self.rng.gen_range(1024..65535),
                remote_port: SERVER_PORT,
            },
        };
        let server_view = client.reversed();
        let (snd_nxt, rcv_nxt) = self.server.sequence(&server_view).unwrap_or((0, 0));
        let wnd = self.cfg.host.rcv_wnd as u32;
        let r: u32 = self.rng.gen();
        let seg = kind.segment(&client, snd_nxt, rcv_nxt, wnd, r);
        let before = self.server.state(&server_view);
        let stats0 = *self.server.stats();
        self.note(Side::Server, || Call::Segment(seg));
        self.with(Side::Server, |h, now| h.handle(now, &seg));
        let stats1 = *self.server.stats();
        let after = self.server.state(&server_view);
        self.after(Side::Server);
        let c = &mut self.res.attacks[k].1;
        c.sent += 1;
        c.on_target += on_target as u64;
        let killed = on_target
            && before != State::Closed
            && (after == State::Closed
                || (before == State::TimeWait && after == State::SynReceived));
        c.killed += killed as u64;
        c.disturbed += (on_target && !killed && after != before) as u64;
        c.challenge_acks += stats1.challenge_acks - stats0.challenge_acks;
        c.rst_replies += stats1.rst_sent - stats0.rst_sent;
        if on_target {
            c.expected_killed += kind.kill_odds(wnd);
        }
    }
}
