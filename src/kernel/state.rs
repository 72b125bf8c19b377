//! The kernel's TCP states as sock_diag reports them (`include/net/tcp_states.h`),
//! keyed by the same snake_case names as the engine's [`State`] so that an
//! observation and a model's populations line up.

use std::fmt;

use teardown_engine::state::State;

/// `TCP_ESTABLISHED` (1) to `TCP_CLOSING` (11). Request sockets are dumped as
/// `TCP_SYN_RECV` (`inet_req_diag_fill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// A state of the connection's own life, in the engine's terms.
    Conn(State),
    /// `TCP_LISTEN`: a listener, which the engine does not hold as an entry.
    Listen,
}

impl TcpState {
    /// The state of a `tcp_states.h` number; `None` for a number this code does
    /// not know (a newer kernel's, such as `TCP_BOUND_INACTIVE`).
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        use State::*;
        Some(TcpState::Conn(match n {
            1 => Established,
            2 => SynSent,
            3 => SynReceived,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Closed,
            8 => CloseWait,
            9 => LastAck,
            10 => return Some(TcpState::Listen),
            11 => Closing,
            _ => return None,
        }))
    }

    /// snake_case name used in JSON reports (the engine's [`State::key`]).
    pub fn key(self) -> &'static str {
        match self {
            TcpState::Conn(s) => s.key(),
            TcpState::Listen => "listen",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpState::Conn(s) => s.fmt(f),
            TcpState::Listen => f.write_str("LISTEN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers() {
        assert_eq!(
            TcpState::from_kernel(6),
            Some(TcpState::Conn(State::TimeWait))
        );
        assert_eq!(TcpState::from_kernel(10), Some(TcpState::Listen));
        assert_eq!(TcpState::from_kernel(11).map(|s| s.key()), Some("closing"));
        assert_eq!(
            TcpState::from_kernel(3).map(|s| s.to_string()).as_deref(),
            Some("SYN-RECEIVED")
        );
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(13), None);
    }
}
