//! A shard's applications once a connection is open: the request and
//! response, the closes (or runaways), and the idle timeout, driven by the
//! hosts' events. Opening connections is `open.rs`.

use teardown_engine::driver::prefetch_calls;
use teardown_engine::host::{CloseReason, Event, Role};
use teardown_engine::state::State;
use teardown_engine::tuple::Tuple;

use super::record::Call;
use super::shard::{Shard, Side};
use super::slots::{next_open, open_bit, slot, CLIENT_OPEN, SERVER_OPEN};
use crate::alloc;

impl Shard<'_> {
    /// The runaways on `side` whose delayed ACK has gone out vanish now.
    pub(super) fn vanish_acked(&mut self, side: Side) {
        let mut i = 0;
        while i < self.vanish_after_ack.len() {
            let (s, tuple, slot) = self.vanish_after_ack[i];
            let host = self.host(s);
            if s != side || host.ack_pending(&tuple) {
                i += 1;
            } else if host.state(&tuple) == State::Closed {
                // Closed meanwhile (a reset): its Closed event did the accounting.
                self.vanish_after_ack.swap_remove(i);
            } else {
                self.vanish_after_ack.swap_remove(i);
                self.vanish(side, tuple, slot);
            }
        }
    }

    /// Inlined into `after`: seven events a teardown, and a call of its own
    /// each cost some 20 instructions (146 a teardown).
    ///
    /// In a burst of an unmarked run (`unmarked`) a slot's flags carry no
    /// runaway, and the handlers below drop those tests.
    #[inline(always)]
    pub(super) fn on_event(&mut self, side: Side, ev: Event, unmarked: bool) {
        let end = open_bit(side);
        // Each arm looks its connection's slot up itself: the tuple lies at
        // a place of its own in each kind of event.
        match ev {
            Event::Established { tuple } => {
                let (slot, flags) = self.slot_flags(side, &tuple, unmarked);
                if let Some(s) = slot {
                    self.slots[s].open |= end;
                }
                // HTTP/1.0 style: the client sends its request; the server answers
                // (and, as the first closer, closes) when the request arrives. With
                // no request, the first closer closes at once.
                if self.cfg.request_bytes > 0 {
                    if side == Side::Client {
                        let n = self.cfg.request_bytes;
                        self.call(side, |h, now| h.send(now, tuple, n)).ok();
                    }
                } else if self.closes_first(side, flags) {
                    if side == Side::Server && self.cfg.response_bytes > 0 {
                        self.app_send_close(side, tuple, flags, slot, self.cfg.response_bytes);
                    } else {
                        self.app_close(side, tuple, flags, slot);
                    }
                }
            }
            Event::Received { tuple, .. } => {
                let (slot, flags) = self.slot_flags(side, &tuple, unmarked);
                if side == Side::Server {
                    let n = self.cfg.response_bytes;
                    if flags & slot::CLOSER_SERVER == 0 {
                        if n > 0 {
                            self.note(side, || Call::Send(tuple, n));
                            self.call(side, |h, now| h.send(now, tuple, n)).ok();
                        }
                    } else if n > 0 {
                        self.app_send_close(side, tuple, flags, slot, n);
                    } else {
                        self.app_close(side, tuple, flags, slot);
                    }
                } else if flags & slot::CLOSER_CLIENT != 0 && flags & slot::CLOSER_SERVER == 0 {
                    self.app_close(side, tuple, flags, slot);
                }
            }
            Event::PeerClosed { tuple } => {
                let (slot, flags) = self.slot_flags(side, &tuple, unmarked);
                // The passive closer's application closes at once, unless its end
                // runs away right after ACKing the FIN: once that ACK, delayed
                // as Linux delays it, has gone out.
                let runaway = match side {
                    Side::Server => slot::RUNAWAY_SERVER,
                    Side::Client => slot::RUNAWAY_CLIENT,
                };
                match slot {
                    Some(s) if flags & runaway != 0 && flags & slot::AT_FIN_SENT == 0 => {
                        if self.host(side).ack_pending(&tuple) {
                            let waiting = &mut self.vanish_after_ack;
                            alloc::outside(|| waiting.push((side, tuple, s)));
                        } else {
                            self.vanish(side, tuple, s);
                        }
                    }
                    _ if self.cfg.close_delay.is_zero() => self.app_close(side, tuple, flags, slot),
                    _ => self.delay_close(side, tuple),
                }
            }
            Event::Closed {
                tuple,
                from,
                reason,
                role,
                since_close,
            } => {
                let slot = self.slot_for(side, &tuple);
                self.reasons[reason.index()] += 1;
                if let Some(s) = slot {
                    self.slots[s].open &= !end;
                }
                if from == State::LastAck {
                    match reason {
                        CloseReason::Reset => self.res.cases.last_ack_reset += 1,
                        CloseReason::RetriesExhausted => self.res.cases.last_ack_gave_up += 1,
                        _ => {}
                    }
                }
                if let Some(d) = since_close {
                    let us = d.as_micros() as u64;
                    let h = match role {
                        Role::Passive => &mut self.res.passive,
                        _ => &mut self.res.active,
                    };
                    h.record(us);
                }
                if let (Side::Client, Some(s)) = (side, slot) {
                    self.client_ended(s, since_close.is_none());
                }
            }
            Event::StateChanged { .. } => {}
        }
    }

    /// The application on `side` will close `tuple` after `--close-delay`:
    /// this incarnation of it, named by its rcv_nxt (the peer's FIN + 1,
    /// fixed in CLOSE-WAIT).
    fn delay_close(&mut self, side: Side, tuple: Tuple) {
        let at = self.now + self.cfg.close_delay;
        let Some((_, rcv_nxt)) = self.host(side).sequence(&tuple) else {
            return;
        };
        if self.delayed_closes.is_empty() {
            self.apps.set_close(Some(at));
        }
        let closes = &mut self.delayed_closes;
        alloc::outside(|| closes.push_back((at, side, tuple, rcv_nxt)));
    }

    /// The delayed closes now due. A connection no longer in CLOSE-WAIT
    /// (reset, or its peer's orphan gone and answered with an RST) has
    /// nothing left to close, and a newer connection on its 4-tuple (one
    /// that reopened it after a reset) is not the one to close.
    pub(super) fn close_delayed(&mut self) {
        while let Some(&(at, side, tuple, rcv_nxt)) = self.delayed_closes.front() {
            if at > self.now {
                break;
            }
            self.delayed_closes.pop_front();
            let host = self.host(side);
            if host.state(&tuple) == State::CloseWait
                && host.sequence(&tuple).map(|s| s.1) == Some(rcv_nxt)
            {
                let (slot, flags) = self.slot_flags(side, &tuple, false);
                let sending = self.sending();
                self.in_run(side, |s| {
                    s.app_close(side, tuple, flags, slot);
                    s.after_with(side, sending);
                });
            }
        }
        let next = self.delayed_closes.front().map(|c| c.0);
        self.apps.set_close(next);
    }

    /// The slot of a connection (in `side`'s view) and its flags. Connections
    /// an attacker opened have no slot, and no flags: nobody's application
    /// acts on them beyond closing when the peer does.
    /// In an unmarked run (`unmarked`) only the closer marks can be set,
    /// and the flags say so: the tests of the others fold away.
    #[inline(always)]
    pub(super) fn slot_flags(
        &self,
        side: Side,
        tuple: &Tuple,
        unmarked: bool,
    ) -> (Option<usize>, u8) {
        let slot = self.slot_for(side, tuple);
        let flags = slot.map_or(0, |s| self.slots[s].flags);
        let closers = slot::CLOSER_SERVER | slot::CLOSER_CLIENT;
        (slot, if unmarked { flags & closers } else { flags })
    }

    pub(super) fn slot_for(&self, side: Side, tuple: &Tuple) -> Option<usize> {
        match side {
            Side::Server => self.slot_of(&tuple.reversed()),
            Side::Client => self.slot_of(tuple),
        }
    }

    pub(super) fn closes_first(&self, side: Side, flags: u8) -> bool {
        match side {
            Side::Server => flags & slot::CLOSER_SERVER != 0,
            Side::Client => flags & slot::CLOSER_CLIENT != 0,
        }
    }

    /// The application on `side` closes the connection in `slot` (None: one
    /// an attacker opened), within a run of that host's calls
    /// ([`Shard::in_run`]). Inlined: from the event handlers, once a teardown
    /// beside `app_send_close`'s once.
    #[inline(always)]
    pub(super) fn app_close(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>) {
        self.note(side, || Call::Close(tuple));
        if self.call(side, |h, now| h.close(now, tuple)).is_ok() {
            self.app_closed(side, tuple, flags, slot);
        }
    }

    /// The application on `side` sends `n` bytes and closes, in one engine
    /// call (`send_close`: send() then close()). Where the send is refused,
    /// the connection is as it was and close() alone goes ahead, as it did
    /// after a refused send().
    #[inline(always)]
    fn app_send_close(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>, n: u32) {
        self.note(side, || Call::SendClose(tuple, n));
        if self
            .call(side, |h, now| h.send_close(now, tuple, n))
            .is_ok()
        {
            self.app_closed(side, tuple, flags, slot);
        } else {
            self.app_close(side, tuple, flags, slot);
        }
    }

    /// What the simulator notes once the application on `side` has closed.
    #[inline(always)]
    fn app_closed(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>) {
        let Some(slot) = slot else {
            return;
        };
        // Closed, so never ESTABLISHED again: nothing for the sweep, which
        // visited every server end through its TIME-WAIT until Closed.
        self.slots[slot].open &= !open_bit(side);
        let runaway = match side {
            Side::Server => slot::RUNAWAY_SERVER,
            Side::Client => slot::RUNAWAY_CLIENT,
        };
        if flags & runaway != 0 && flags & slot::AT_FIN_SENT != 0 {
            // Let the FIN go out, then vanish (which lets go of the place).
            // Before any open: a close() that ended the entry at once (too
            // many orphans) freed its port, and a connect could take it.
            self.vanish(side, tuple, slot);
        } else if side == Side::Client {
            self.let_go(slot);
        }
    }

    /// The end on `side` of this connection vanishes: it forgets the connection and
    /// its host answers nothing more on the 4-tuple (seed cases 5 and 6). What it
    /// queued before vanishing still goes out.
    pub(super) fn vanish(&mut self, side: Side, tuple: Tuple, slot: usize) {
        self.transmit(side);
        self.res.cases.vanished += 1;
        self.slots[slot].open &= !open_bit(side);
        match side {
            Side::Server => {
                self.note(side, || Call::Forget(tuple));
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot].flags |= slot::SERVER_GONE;
            }
            Side::Client => {
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot].flags |= slot::CLIENT_GONE;
                self.let_go(slot);
            }
        }
    }

    /// The applications' idle timeout (`--app-timeout`): a connection still
    /// ESTABLISHED that long after it opened is closed by whichever end holds it.
    /// TCP has no timer for an idle connection whose peer silently gave up (a
    /// server whose response and FIN were all lost), so without this such a
    /// half-open connection would stay forever, as it would on a real host with
    /// an application that never times out. Runs every quarter of the timeout
    /// while connections are live.
    pub(super) fn sweep(&mut self) {
        let timeout = self.cfg.app_timeout.as_millis() as u32;
        let now_ms = self.now.stamp_ms();
        // Before the clock passes the timeout no connection is that old
        // (each open end's stamp lies in 0..=now, which has not wrapped):
        // the scan of every slot, most of a shard's sweeps (all of a
        // 120 s timeout's past a 60 s TIME-WAIT), would close none.
        let mut from = if self.now.as_millis() < u64::from(timeout) {
            self.slots.len()
        } else {
            0
        };
        // The next open slot from `from` on, read afresh after each close
        // (which may open new connections in other slots).
        while let Some(s) = next_open(&self.slots, from) {
            from = s + 1;
            if now_ms.wrapping_sub(self.opened_ms[s]) < timeout {
                continue;
            }
            let open = self.slots[s].open;
            let client = self.tuple(s as u32);
            let server = client.reversed();
            let flags = self.slots[s].flags;
            if open & CLIENT_OPEN != 0 && self.client.state(&client) == State::Established {
                self.in_run(Side::Client, |sh| {
                    sh.app_close(Side::Client, client, flags, Some(s));
                });
                self.transmit(Side::Client);
            }
            if open & SERVER_OPEN != 0 && self.server.state(&server) == State::Established {
                self.in_run(Side::Server, |sh| {
                    sh.app_close(Side::Server, server, flags, Some(s));
                });
                self.transmit(Side::Server);
            }
        }
        // Every open end has an entry in its host. With none, nothing is
        // swept until open() arms the sweep again: a low --rate leaves long idle
        // stretches that need no visits.
        let busy = !(self.client.is_empty() && self.server.is_empty());
        self.apps
            .set_sweep(busy.then(|| self.now + self.cfg.app_timeout / 4));
    }

    /// `--workload tw-fill`: the server closes every connection at once.
    /// The slots go in order, their entries in hash order: each close asks
    /// ahead for the lines of the closes to come ([`prefetch_calls`]; a
    /// hint the host declines while its table fits in cache).
    pub(super) fn close_all(&mut self) {
        let slots = self.slots.len() as u32;
        for s in 0..slots {
            prefetch_calls(&self.server, |k| {
                let a = s + k as u32;
                (a < slots).then(|| self.tuple(a).reversed())
            });
            let tuple = self.tuple(s).reversed();
            if self.server.state(&tuple) == State::Established {
                self.slots[s as usize].flags |= slot::CLOSER_SERVER;
                self.note(Side::Server, || Call::Close(tuple));
                self.with(Side::Server, |h, now| h.close(now, tuple)).ok();
                // Each FIN onto the link at once: left in the host's output
                // buffer, a shard's FINs would all be held twice, and the
                // buffer would keep that size for the rest of the run.
                self.transmit(Side::Server);
            }
        }
    }
}
