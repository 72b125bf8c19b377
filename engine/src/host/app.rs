//! The application's side: `connect`, `send`, `close`, `shutdown`, `abort`, and
//! `forget` for a host that vanishes (RFC 9293 §3.10.1-§3.10.5).

use super::{CloseReason, Error, Host, Next};
use crate::conn::{flag, Conn};
use crate::segment::{Flags, MAX_LEN};
use crate::seq::Seq;
use crate::state::State;
use crate::table::{Found, Removed};
use crate::time::Time;
use crate::tuple::Tuple;

/// Our FIN as [`Host::close_found`] finds it.
#[derive(Clone, Copy)]
enum Fin {
    /// To send ([`Host::send_fin_inline`]).
    Send,
    /// Out already, on the data [`Host::send_close`] sent.
    Sent,
}

impl Host {
    /// Active open on a port the caller chose (bind(port) with SO_REUSEADDR,
    /// then connect()): send a SYN and enter SYN-SENT. A TIME-WAIT entry on
    /// the 4-tuple is taken over when `tcp_twsk_unique` allows it; for a bound
    /// port `__inet_hash_connect` passes no `twp`, so only the peer's
    /// timestamps are needed, not `tcp_tw_reuse`.
    pub fn connect(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        let now = self.begin(now);
        let mut reused = None;
        match self.table.find(&tuple) {
            None => {}
            Some(Found::TimeWait(pos)) => {
                let e = self.table.time_wait(pos);
                if !self.twsk_unique(now, &e, false) {
                    return Err(Error::Exists(tuple));
                }
                reused = Some((pos, e));
            }
            Some(Found::Conn(_)) => return Err(Error::Exists(tuple)),
        }
        if reused.is_none() && self.table.len() >= self.cfg.max_connections {
            return Err(Error::TableFull(self.table.len()));
        }
        let iss = match reused {
            Some((pos, e)) => self.take_over_time_wait(now, pos, &e),
            None => self.isn(now, &tuple),
        };
        let ts_recent = reused.and_then(|(_, e)| e.ts_recent);
        if !self.is_listening(tuple.local_port) {
            self.ports.acquire(&tuple, true);
        }
        self.open_active(now, tuple, iss, ts_recent);
        Ok(())
    }

    /// Inserts the SYN-SENT entry and sends its SYN (`tcp_connect`). The
    /// caller has taken its port (`Ports::acquire`): a port bind() took
    /// (`bound`) connect() must not share. Always inlined: a call of its
    /// own saved and restored the registers its caller had just saved.
    #[inline(always)]
    pub(super) fn open_active(
        &mut self,
        now: Time,
        tuple: Tuple,
        iss: Seq,
        ts_recent: Option<u32>,
    ) {
        let mut c = Conn::new(tuple, State::SynSent, iss, &self.timeouts);
        if self.cfg.timestamps {
            // Offered in the SYN; kept only if the SYN-ACK answers. The TSecr
            // is 0, or the ts_recent a reused TIME-WAIT passed on
            // (tcp_twsk_unique, tcp_syn_options).
            c.flags |= flag::TS_OK;
            c.ts_recent = ts_recent.unwrap_or(0);
        }
        // Stored once, after the SYN went out, as in `accept_syn`.
        let idx = self.table.reserve_conn(&c);
        self.send_new_inline(now, idx, &mut c, Flags::SYN, 0);
        let hash = self.table.hash(&tuple);
        self.table.insert_reserved(idx, &c, hash);
        self.stats.opened_active += 1;
        self.entered(&c, State::Closed);
    }

    /// The application sends `len` bytes (modelled by length only).
    pub fn send(&mut self, now: Time, tuple: Tuple, len: u32) -> Result<(), Error> {
        Self::may_write(len)?;
        let now = self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = self.table.conn_named(idx, tuple);
        Self::may_send(&c)?;
        self.write(now, idx, &mut c, len);
        self.table.set_found_conn(idx, c);
        Ok(())
    }

    /// The application's last write and its close() in one call: [`Host::send`]
    /// of `len` bytes, then [`Host::close`], with one table find and one
    /// write-back, as an HTTP/1.0 server answers and closes (quinn's `write`
    /// then `finish`). The segments, events and timers are the two calls'
    /// (our FIN rides on the data when the data goes at once). Where send()
    /// would fail (no connection, or a state that cannot send) nothing
    /// happens and its error comes back: the caller may still close().
    pub fn send_close(&mut self, now: Time, tuple: Tuple, len: u32) -> Result<(), Error> {
        Self::may_write(len)?;
        let now = self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = self.table.conn_named(idx, tuple);
        Self::may_send(&c)?;
        // Data that goes at once carries our FIN (`tcp_send_fin` sets FIN on
        // the write queue's tail) unless the FIN would wait behind it (after
        // an RTO or in fast recovery, `Conn::must_hold` once the data is
        // out): built as one segment, not the data's with the FIN merged in
        // by `send_fin_inline`, which tested the queue's last segment.
        let fin = if len > 0 && c.held() == 0 && !c.rto_fired() && !c.fast_recovery() {
            let flags = Flags::ACK | Flags::PSH | Flags::FIN;
            self.send_new_inline(now, idx, &mut c, flags, len);
            c.flags |= flag::FIN_WITH_DATA;
            self.stats.fins_on_data += 1;
            Fin::Sent
        } else {
            self.write(now, idx, &mut c, len);
            Fin::Send
        };
        self.close_found(now, idx, &mut c, true, fin)
    }

    /// A write the model can carry: its bytes go out as one segment, which
    /// [`MAX_LEN`] bounds.
    #[inline(always)]
    fn may_write(len: u32) -> Result<(), Error> {
        if len <= MAX_LEN {
            Ok(())
        } else {
            Err(Self::too_long(len))
        }
    }

    /// Out of line and cold: built where it is tested, the error tipped
    /// LLVM into calling the timer's arming out of line in every send
    /// (+22 instructions a teardown).
    #[cold]
    #[inline(never)]
    fn too_long(len: u32) -> Error {
        Error::TooLong(len)
    }

    /// Only ESTABLISHED and CLOSE-WAIT take the application's data
    /// (`tcp_sendmsg` refuses it in the other states).
    #[inline(always)]
    fn may_send(c: &Conn) -> Result<(), Error> {
        if matches!(c.state, State::Established | State::CloseWait) {
            Ok(())
        } else {
            Err(Error::InvalidState(c.tuple, c.state))
        }
    }

    /// send()'s `len` bytes on `c`, which may send: out now, or held while
    /// `c` must hold its data back.
    #[inline(always)]
    fn write(&mut self, now: Time, idx: u32, c: &mut Conn, len: u32) {
        if len > 0 {
            if c.must_hold() {
                c.hold(len);
            } else {
                self.send_new_inline(now, idx, c, Flags::ACK | Flags::PSH, len);
            }
        }
    }

    /// `close()`: the application is done with the socket (it becomes an orphan).
    /// RFC 9293 §3.10.4: in ESTABLISHED or SYN-RECEIVED send FIN and enter
    /// FIN-WAIT-1; in CLOSE-WAIT send FIN and enter LAST-ACK; in SYN-SENT delete
    /// the TCB.
    pub fn close(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.app_close(now, tuple, true)
    }

    /// `shutdown(SHUT_WR)`: send FIN but keep the socket (not an orphan, so no
    /// FIN-WAIT-2 timeout applies).
    pub fn shutdown(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        self.app_close(now, tuple, false)
    }

    fn app_close(&mut self, now: Time, tuple: Tuple, orphan: bool) -> Result<(), Error> {
        let now = self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = self.table.conn_named(idx, tuple);
        self.close_found(now, idx, &mut c, orphan, Fin::Send)
    }

    /// close() (`orphan`) or shutdown() of `c`, copied out of the table at
    /// `idx`, which this writes back or removes; `fin`: whether our FIN is
    /// out already. By reference: taken by value, LLVM copied the 64 bytes
    /// once more on every call.
    #[inline(always)]
    fn close_found(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        orphan: bool,
        fin: Fin,
    ) -> Result<(), Error> {
        let tuple = c.tuple;
        let before = c.state;
        c.stamp_close(self.now_ms);
        // tcp_close counts the orphan (tcp_orphan_count) before it looks at
        // the state, and checks the limit after; a second close() of an
        // orphan (EBADF to Linux's application) does neither.
        let newly = orphan && !c.has(flag::ORPHAN);
        if newly {
            c.flags |= flag::ORPHAN;
            self.orphaned += 1;
        }
        let next = match c.state {
            State::SynSent => Next::Close(CloseReason::Aborted),
            State::SynReceived | State::Established | State::CloseWait => {
                let passive = c.state == State::CloseWait;
                if passive {
                    c.flags |= flag::PASSIVE_CLOSE;
                }
                if let Fin::Send = fin {
                    self.send_fin_inline(now, idx, c);
                }
                c.state = if passive {
                    State::LastAck
                } else {
                    State::FinWait1
                };
                // Neither this state nor the one before is an orphaned
                // FIN-WAIT-2, so `commit_found`'s Keep arm comes down to the
                // state's count and the write-back; taken here, `c` goes to
                // the table without the copy that passing it on made.
                debug_assert!(!c.has(flag::FW2_COUNTED));
                self.entered(c, before);
                if newly && self.too_many_orphans(false) {
                    self.abort_on_memory(now, idx, c);
                    return Ok(());
                }
                self.table.set_found_conn(idx, *c);
                return Ok(());
            }
            State::FinWait2 if orphan && c.timer.is_none() => {
                // shutdown() then close(): tcp_close starts the orphan's
                // FIN-WAIT-2 now; a full socket that stays is then held to
                // the orphan limit (`tcp_check_oom`), a mini-socket is not.
                match self.orphan_fin_wait_2(now, idx, c) {
                    Some(next) => next,
                    // `newly` holds here: an orphan's FIN-WAIT-2 has its timer.
                    None if !c.has(flag::FW2_COUNTED) && self.too_many_orphans(false) => {
                        self.abort_on_memory(now, idx, c);
                        return Ok(());
                    }
                    None => Next::Keep,
                }
            }
            // After shutdown(): FIN-WAIT-1, CLOSING or LAST-ACK, an orphan now.
            _ if newly && self.too_many_orphans(false) => {
                self.abort_on_memory(now, idx, c);
                return Ok(());
            }
            _ if orphan => Next::Keep,
            s => return Err(Error::InvalidState(tuple, s)),
        };
        self.commit_found(now, idx, *c, before, next);
        Ok(())
    }

    /// Whether the orphans, counted as of the last 100 ms tick and doubled
    /// if `shift`, pass `max_orphans` (`tcp_too_many_orphans`, from
    /// `tcp_check_oom`): so a burst of closes within one tick may overshoot
    /// the limit, as on Linux >= 5.16, and the orphans past it then reset at
    /// their next retransmission timeout.
    pub(super) fn too_many_orphans(&self, shift: bool) -> bool {
        self.orphan_cache.saturating_mul(1 + usize::from(shift)) > self.cfg.max_orphans
    }

    /// The orphan `c` (just closed, its FIN queued) is one too many: it goes
    /// to CLOSED with an RST after its FIN (`tcp_close`:
    /// `tcp_send_active_reset`, TCPAbortOnMemory), no TIME-WAIT.
    #[cold]
    fn abort_on_memory(&mut self, now: Time, idx: u32, c: &Conn) {
        self.send_active_reset(c);
        self.stats.abort_on_memory += 1;
        let reason = Next::Close(CloseReason::TooManyOrphans);
        self.commit_found(now, idx, *c, c.state, reason);
    }

    /// Abort (SO_LINGER {1,0}): send RST and drop the connection at once.
    pub fn abort(&mut self, now: Time, tuple: Tuple) -> Result<(), Error> {
        let now = self.begin(now);
        let idx = self.conn_index(&tuple)?;
        let mut c = self.table.conn_named(idx, tuple);
        let before = c.state;
        c.stamp_close(self.now_ms);
        // tcp_disconnect: RST where tcp_need_reset() (ESTABLISHED, CLOSE-WAIT,
        // FIN-WAIT-1/2, SYN-RECEIVED), and in CLOSING or LAST-ACK only while
        // something is unsent; otherwise the socket goes silently.
        let reset = match c.state {
            State::SynSent => false,
            State::Closing | State::LastAck => c.holds_back(),
            _ => true,
        };
        if reset {
            self.send_active_reset(&c);
        }
        self.commit(now, idx, c, before, Next::Close(CloseReason::Aborted));
        Ok(())
    }

    /// A crashed or vanished host: drop the entry silently, sending nothing. For
    /// drivers modelling peers that run away (seed cases 5 and 6).
    pub fn forget(&mut self, tuple: &Tuple) -> bool {
        match self.table.remove(tuple) {
            Some(Removed::Conn(mut c)) => {
                self.port_released(tuple);
                self.disarm(&mut c);
                self.population[c.state as usize] -= 1;
                if c.has(flag::FW2_COUNTED) {
                    self.fw2_orphans -= 1;
                }
                self.orphan_gone(&c);
                true
            }
            Some(Removed::TimeWait) => {
                self.port_released(tuple);
                self.population[State::TimeWait as usize] -= 1;
                true
            }
            None => false,
        }
    }

    /// Always inlined: with the lookup mostly a hit in the table's recent
    /// slots, the call and its `Result` through memory cost as much again.
    #[inline(always)]
    fn conn_index(&mut self, tuple: &Tuple) -> Result<u32, Error> {
        match self.table.find_conn(tuple) {
            Some(Found::Conn(i)) => Ok(i),
            Some(Found::TimeWait(_)) => Err(Error::InvalidState(*tuple, State::TimeWait)),
            None => Err(Error::NotFound(*tuple)),
        }
    }
}
