//! Attack traffic: an off-path attacker who knows the 4-tuples of the server's
//! connections (they are visible in the clear) but not, except where stated,
//! their sequence numbers. Segments go straight to the server; its replies go to
//! the legitimate clients over the link, as they would on a real network.

use clap::ValueEnum;
use serde::Serialize;

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
