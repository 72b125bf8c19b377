//! What a driver, a script or a test may ask about one tuple: its state,
//! sequence numbers, a pending delayed ACK, its RTO. Lookups only; nothing
//! here changes the host.

use std::time::Duration;

use super::Host;
use crate::state::State;
use crate::table::Found;
use crate::tuple::Tuple;

impl Host {
    /// The state of `tuple`; CLOSED when there is no entry.
    #[must_use]
    pub fn state(&self, tuple: &Tuple) -> State {
        match self.table.find(tuple) {
            Some(Found::Conn(i)) => self.table.conn(i).state,
            Some(Found::TimeWait(_)) => State::TimeWait,
            None => State::Closed,
        }
    }

    /// (snd_nxt, rcv_nxt) of `tuple` as wire numbers, for tests, scripts and
    /// the drivers' attack models.
    #[must_use]
    pub fn sequence(&self, tuple: &Tuple) -> Option<(u32, u32)> {
        match self.table.find(tuple)? {
            Found::Conn(i) => {
                let c = self.table.conn(i);
                Some((c.snd_nxt.into(), c.rcv_nxt.into()))
            }
            Found::TimeWait(p) => {
                let e = self.table.time_wait(p);
                Some((e.snd_nxt.into(), e.rcv_nxt.into()))
            }
        }
    }

    /// Whether `tuple` holds a delayed ACK not yet sent (Linux's
    /// `ICSK_ACK_TIMER` pending): a driver whose end vanishes after ACKing
    /// a FIN waits for this to clear.
    #[must_use]
    pub fn ack_pending(&self, tuple: &Tuple) -> bool {
        match self.table.find(tuple) {
            Some(Found::Conn(i)) => self.table.conn(i).bit(crate::conn::bits::DELACK),
            _ => false,
        }
    }

    /// The current RTO of `tuple` after backoff; in SYN-SENT and
    /// SYN-RECEIVED, the handshake's own timer.
    #[must_use]
    pub fn rto(&self, tuple: &Tuple) -> Option<Duration> {
        match self.table.find(tuple)? {
            Found::Conn(i) => {
                let c = self.table.conn(i);
                Some(if c.state.is_synchronized() {
                    c.backed_off_rto(&self.timeouts)
                } else {
                    Duration::from_micros(self.syn_rto_us(&c))
                })
            }
            Found::TimeWait(_) => None,
        }
    }
}
