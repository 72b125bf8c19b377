//! What a [`Host`](super::Host) reports: events, close reasons, counters and
//! the application calls' errors.

use std::time::Duration;

use crate::state::State;
use crate::tuple::Tuple;

/// Why a connection reached CLOSED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// TIME-WAIT ran its full course.
    TimeWaitExpired,
    /// LAST-ACK received the ACK of its FIN (passive close done).
    LastAckAcked,
    /// An orphaned FIN-WAIT-2 timed out (`tcp_fin_timeout`; seed case 5).
    FinWait2Timeout,
    /// Retransmissions ran out (`tcp_orphan_retries`, `tcp_syn_retries`, ...), silently.
    RetriesExhausted,
    /// An acceptable RST arrived.
    Reset,
    /// The application aborted (SO_LINGER {1,0}), closed before the handshake
    /// completed, or data arrived after close() (Linux answers RST).
    Aborted,
    /// TIME-WAIT was skipped because `max_tw_buckets` was reached.
    TimeWaitOverflow,
    /// A TIME-WAIT entry was evicted to make room (FreeBSD policy).
    TimeWaitEvicted,
    /// A new SYN reopened the 4-tuple from TIME-WAIT (RFC 6191).
    Reused,
    /// Too many orphans, as counted at the last 100 ms tick against
    /// `max_orphans`: at close() the FIN went out and an RST after it
    /// (`tcp_close` -> `tcp_check_oom`), or an orphan's retransmission
    /// timeout ended it (`tcp_out_of_resources`); TCPAbortOnMemory.
    TooManyOrphans,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 10] = [
        CloseReason::TimeWaitExpired,
        CloseReason::LastAckAcked,
        CloseReason::FinWait2Timeout,
        CloseReason::RetriesExhausted,
        CloseReason::Reset,
        CloseReason::Aborted,
        CloseReason::TimeWaitOverflow,
        CloseReason::TimeWaitEvicted,
        CloseReason::Reused,
        CloseReason::TooManyOrphans,
    ];

    /// A dense index, for per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// snake_case name for reports and metrics.
    pub fn key(self) -> &'static str {
        match self {
            CloseReason::TimeWaitExpired => "time_wait_expired",
            CloseReason::LastAckAcked => "last_ack_acked",
            CloseReason::FinWait2Timeout => "fin_wait_2_timeout",
            CloseReason::RetriesExhausted => "retries_exhausted",
            CloseReason::Reset => "reset",
            CloseReason::Aborted => "aborted",
            CloseReason::TimeWaitOverflow => "time_wait_overflow",
            CloseReason::TimeWaitEvicted => "time_wait_evicted",
            CloseReason::Reused => "reused",
            CloseReason::TooManyOrphans => "too_many_orphans",
        }
    }
}

/// Which side of the teardown the application was on when it called close().
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the first FIN.
    Active,
    /// Closed after the peer's FIN (from CLOSE-WAIT).
    Passive,
    /// Never called close().
    None,
}

/// What the engine tells its driver.
///
/// The variant has no tag byte of its own: the compiler keeps it in a niche
/// of `Closed::since_close` (nanosecond values no `Duration` holds), and a
/// dispatch decodes it in some three instructions more than a tag byte would
/// take. That is deliberate: a `#[repr(u8)]` tag (c7bde8e) cut 0.48 % of the
/// simulator's instructions but took 1.04x its time, and was reverted
/// (docs/performance.md, session 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed (either side).
    Established { tuple: Tuple },
    /// In-order data arrived (rcv_nxt moved by `len`): the application read it.
    Received { tuple: Tuple, len: u32 },
    /// The peer's FIN arrived: the connection is in CLOSE-WAIT and the application
    /// should close it.
    PeerClosed { tuple: Tuple },
    /// A state transition (only with `Config::trace_states`).
    StateChanged {
        tuple: Tuple,
        from: State,
        to: State,
    },
    /// The connection reached CLOSED and its entry is gone.
    Closed {
        tuple: Tuple,
        from: State,
        reason: CloseReason,
        role: Role,
        /// Time from the application's close() to CLOSED.
        since_close: Option<Duration>,
    },
}

/// Counters, named after Linux's MIB where one exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub segments_received: u64,
    pub segments_sent: u64,
    pub retransmits: u64,
    /// Of those, fast retransmissions on duplicate ACKs (`TCPRenoRecovery`).
    pub fast_retransmits: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub oow_acks: u64,
    pub oow_acks_suppressed: u64,
    pub rst_suppressed: u64,
    pub timeouts_fin_wait_2: u64,
    pub timeouts_retries: u64,
    pub timeouts_time_wait: u64,
    /// `TCPTimeWaitOverflow`.
    pub time_wait_overflow: u64,
    pub time_wait_evicted: u64,
    /// TIME-WAIT entries reopened by a new SYN (`TWRecycled`).
    pub time_wait_reused: u64,
    /// Retransmitted FINs (or other segments) that restarted a TIME-WAIT timer.
    pub time_wait_restarts: u64,
    /// TIME-WAIT entries killed by an RST (assassination).
    pub time_wait_assassinated: u64,
    /// Old duplicates dropped by PAWS (RFC 7323 §5; `PAWSEstabRejected` and
    /// `PAWS_TW_REJECTED`).
    pub paws_rejected: u64,
    /// Pure ACKs from before rcv_nxt that failed PAWS, dropped without an
    /// ACK (`PAWSOldAck`, Linux >= 6.14): not in `paws_rejected`.
    pub paws_old_ack: u64,
    /// SYN-ACKs (or other acceptable ACKs in SYN-SENT) whose TSecr echoes
    /// no TSval of ours, answered with RST (`PAWSActiveRejected`).
    pub paws_active_rejected: u64,
    /// Segments in SYN-RECEIVED whose TSecr echoes no SYN-ACK of ours,
    /// dropped with an ACK (`TSEcrRejected`, Linux >= 6.15).
    pub tsecr_rejected: u64,
    /// SYNs into TIME-WAIT taken because their timestamp was newer (RFC 6191),
    /// their sequence number being at or below rcv_nxt: part of `time_wait_reused`.
    pub time_wait_reused_by_ts: u64,
    /// SYNs dropped because `max_connections` was reached.
    pub syn_dropped: u64,
    /// `TCPAbortOnData`: data after close() answered with RST.
    pub abort_on_data: u64,
    /// `TCPAbortOnMemory`: connections ended for too many orphans, at
    /// close() or at an orphan's retransmission timeout
    /// ([`CloseReason::TooManyOrphans`]).
    pub abort_on_memory: u64,
    /// Pure ACKs that rode on the application's next segment instead.
    pub acks_coalesced: u64,
    /// FINs set on the application's last queued data segment.
    pub fins_on_data: u64,
    pub opened_active: u64,
    /// TIME-WAIT 4-tuples a connect() took over (`tcp_twsk_unique`; Linux
    /// counts them in `TWRecycled` too).
    pub tw_reused: u64,
    /// connect() calls that found no port (EADDRNOTAVAIL).
    pub connect_eaddrnotavail: u64,
    pub opened_passive: u64,
}

/// Errors of the application-side calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no connection {0}")]
    NotFound(Tuple),
    #[error("connection {0} already exists")]
    Exists(Tuple),
    #[error("connection {0} is in {1}, where this call is not allowed")]
    InvalidState(Tuple, State),
    #[error("connection table full ({0} entries)")]
    TableFull(usize),
    /// EADDRNOTAVAIL: no local port can carry the connection.
    #[error("no free local port (EADDRNOTAVAIL) after probing {probed} ports")]
    AddrNotAvail { probed: u32 },
    /// A send() longer than one modelled segment may be ([`crate::segment::MAX_LEN`]).
    #[error("send of {0} bytes: more than one segment can model ({max})", max = crate::segment::MAX_LEN)]
    TooLong(u32),
}
