//! The connection states of RFC 9293 §3.3.2.

use std::fmt;

/// A connection's state. CLOSED is the absence of an entry; it appears here so
/// that events can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    Closed = 0,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
}

impl State {
    pub const COUNT: usize = 10;

    pub const ALL: [State; State::COUNT] = [
        State::Closed,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::TimeWait,
        State::CloseWait,
        State::LastAck,
    ];

    /// The states a connection passes through from establishment to CLOSED, in
    /// the order reports list them.
    pub const TEARDOWN: [State; 7] = [
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::TimeWait,
        State::CloseWait,
        State::LastAck,
    ];

    /// RFC 9293: "synchronized" states, where RFC 5961's challenge ACK rules apply.
    #[inline]
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }

    /// States in which our FIN has been sent.
    #[inline]
    pub fn fin_sent(self) -> bool {
        matches!(
            self,
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait | State::LastAck
        )
    }

    /// States in which the peer's FIN has been received.
    #[inline]
    pub fn fin_received(self) -> bool {
        matches!(
            self,
            State::Closing | State::TimeWait | State::CloseWait | State::LastAck
        )
    }

    /// snake_case name used in JSON reports.
    pub fn key(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::SynSent => "syn_sent",
            State::SynReceived => "syn_received",
            State::Established => "established",
            State::FinWait1 => "fin_wait_1",
            State::FinWait2 => "fin_wait_2",
            State::Closing => "closing",
            State::TimeWait => "time_wait",
            State::CloseWait => "close_wait",
            State::LastAck => "last_ack",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::Closing => "CLOSING",
            State::TimeWait => "TIME-WAIT",
            State::CloseWait => "CLOSE-WAIT",
            State::LastAck => "LAST-ACK",
        })
    }
}
