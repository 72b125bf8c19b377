//! The client application on the host's events: close on ESTABLISHED or on the
//! server's FIN (giving the connection's slot back), runaway clients that
//! vanish mid-teardown, and the accounting of each connection once CLOSED or
//! vanished.

use rand::Rng;
use teardown::service::CloseMode;
use teardown_engine::time::pop_due;
use teardown_engine::{CloseReason, Event, Role, State, Time, Tuple};

use super::{Plan, Serial, Worker};

impl Worker {
    /// The client application.
    pub(super) fn app(&mut self, now: Time) {
        loop {
            // Events the handlers cause come in the next round.
            self.host.swap_events(&mut self.scratch);
            if self.scratch.is_empty() {
                return;
            }
            for i in 0..self.scratch.len() {
                let ev = self.scratch[i];
                match ev {
                    Event::Established { tuple } if self.plan.close == CloseMode::Client => {
                        if self.plan.hold.is_zero() {
                            self.close(now, tuple);
                        } else {
                            if let Some(serial) = self.holder(&tuple) {
                                self.held.push_back((now + self.plan.hold, (tuple, serial)));
                            }
                        }
                    }
                    Event::PeerClosed { tuple } => {
                        // Vanish right after ACKing the server's FIN: at once if
                        // the ACK is queued, else once the delayed ACK leaves.
                        if self.plan.close == CloseMode::Server && self.runs_away() {
                            if self.host.ack_pending(&tuple) {
                                self.vanish_after_ack.push(tuple);
                            } else {
                                self.vanish(now, tuple);
                            }
                        } else {
                            self.close(now, tuple);
                        }
                    }
                    Event::StateChanged {
                        tuple,
                        to: State::FinWait2,
                        ..
                    } if self.plan.close == CloseMode::Client && self.runs_away() => {
                        // Vanish right after our FIN was acknowledged.
                        self.vanish(now, tuple);
                    }
                    Event::Closed {
                        tuple,
                        from,
                        reason,
                        role,
                        since_close,
                    } => {
                        self.out.closed[reason.index()] += 1;
                        // Taken first, whatever the rest: it clears the
                        // tuple's flag for the next connection on it.
                        let through = self.take_fin_through(&tuple);
                        if !through
                            && from == State::FinWait1
                            && reason == CloseReason::RetriesExhausted
                        {
                            self.fin_abandoned(&tuple);
                        }
                        if let Some(t) = &mut self.app_timeout {
                            t.ended(&self.plan, &tuple);
                        }
                        if let Some(a) = &mut self.attacker {
                            a.closed(now, tuple, from, reason);
                        }
                        self.give_back(&tuple);
                        self.account();
                        // TIME-WAIT's end (expired, reset, reused) is not
                        // the teardown's: that was stamped when it began.
                        if from != State::TimeWait {
                            self.out.last_close = Some(self.at);
                        }
                        self.released.push_back(tuple);
                        if let Some(d) = since_close {
                            let us = (self.plan.clock.to_real(d).as_micros() as u64).max(1);
                            match role {
                                Role::Active => self.out.active_us.saturating_record(us),
                                Role::Passive => self.out.passive_us.saturating_record(us),
                                Role::None => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Whether a FIN of the connection on `tuple` got through the link (as
    /// any does on a link without loss), forgotten now that it is over.
    fn take_fin_through(&mut self, tuple: &Tuple) -> bool {
        if !self.plan.tracks_fins() {
            return true;
        }
        let place = self.plan.own_place(tuple);
        let flag = place.and_then(|p| self.fins_through.get_mut(p));
        flag.is_some_and(|f| std::mem::take(f) == fin::THROUGH)
    }

    /// Counts the connection on `tuple` as given up in FIN-WAIT-1 with
    /// every FIN lost ([`Outcome::fin_abandoned`]), and marks its place so
    /// that the count drops when the tuple opens again
    /// ([`Worker::reopened`]).
    ///
    /// [`Outcome::fin_abandoned`]: super::Outcome::fin_abandoned
    fn fin_abandoned(&mut self, tuple: &Tuple) {
        self.out.fin_abandoned += 1;
        if let Some(place) = self.plan.own_place(tuple) {
            mark(&mut self.fins_through, place, fin::ABANDONED);
        }
    }

    /// A new connection on the tuple at `place`: if its last one was given
    /// up with every FIN lost, the server's half-open entry ends now (its
    /// answer to the new SYN is a challenge ACK, which the SYN-SENT client
    /// resets), so it no longer excuses an ESTABLISHED entry.
    pub(super) fn reopened(&mut self, place: usize) {
        if let Some(f) = self.fins_through.get_mut(place) {
            if std::mem::take(f) == fin::ABANDONED {
                self.out.fin_abandoned -= 1;
            }
        }
    }

    pub(super) fn runs_away(&mut self) -> bool {
        self.plan.runaway > 0.0 && self.rng.gen::<f64>() < self.plan.runaway
    }

    /// The runaways whose delayed ACK has gone out (queued) vanish now; one
    /// closed meanwhile was accounted for by its Closed event.
    pub(super) fn vanish_acked(&mut self, now: Time) {
        let mut i = 0;
        while i < self.vanish_after_ack.len() {
            let tuple = self.vanish_after_ack[i];
            if self.host.ack_pending(&tuple) {
                i += 1;
                continue;
            }
            self.vanish_after_ack.swap_remove(i);
            if self.host.state(&tuple) != State::Closed {
                self.vanish(now, tuple);
            }
        }
    }

    pub(super) fn vanish(&mut self, now: Time, tuple: Tuple) {
        self.host.forget(&tuple);
        self.take_fin_through(&tuple);
        if let Some(t) = &mut self.app_timeout {
            t.ended(&self.plan, &tuple);
        }
        if let Some(a) = &mut self.attacker {
            a.vanished(&tuple);
        }
        self.vanished.insert(tuple);
        self.quarantine
            .push_back((now + self.quarantine_for, tuple));
        self.out.runaway += 1;
        self.give_back(&tuple);
        self.account();
        self.out.last_close = Some(self.at);
    }

    /// The application closes `tuple`, and gives its slot back: the host
    /// sees the teardown through.
    pub(super) fn close(&mut self, now: Time, tuple: Tuple) {
        let _ = self.host.close(now, tuple);
        self.give_back(&tuple);
    }

    /// Closes the connections whose `--hold` is over, if the application
    /// still holds them: not one that ended meanwhile, nor a newer
    /// connection on its reused tuple.
    pub(super) fn close_held(&mut self, now: Time) {
        while let Some((tuple, serial)) = pop_due(&mut self.held, now) {
            if self.holder(&tuple) == Some(serial) {
                self.close(now, tuple);
            }
        }
    }

    /// The connection the application holds on `tuple` (its serial), if any.
    pub(super) fn holder(&self, tuple: &Tuple) -> Option<Serial> {
        self.slots.holder(self.plan.place(tuple))
    }

    /// `tuple`'s slot is free for the next open, if it still held one.
    fn give_back(&mut self, tuple: &Tuple) {
        if self.slots.give_back(self.plan.place(tuple)) {
            self.freed += 1;
        }
    }

    /// The connection is CLOSED or vanished: out of the table, and counted.
    pub(super) fn account(&mut self) {
        self.live -= 1;
        self.out.accounted += 1;
    }
}

/// The states of a tuple place in [`Worker`]'s `fins_through`.
pub(super) mod fin {
    /// A FIN of the connection there got through the link.
    pub const THROUGH: u8 = 1;
    /// The connection there gave up in FIN-WAIT-1 with every FIN lost.
    pub const ABANDONED: u8 = 2;
}

/// Marks in `fins_through` ([`Worker`]'s, by place) that a FIN of the
/// connection on `tuple` got through the link. Apart from the worker, for
/// its send loop, which holds the host's queue.
pub(super) fn fin_went_through(plan: &Plan, fins_through: &mut Vec<u8>, tuple: &Tuple) {
    if let Some(place) = plan.own_place(tuple) {
        mark(fins_through, place, fin::THROUGH);
    }
}

fn mark(flags: &mut Vec<u8>, place: usize, flag: u8) {
    if place >= flags.len() {
        flags.resize(place + 1, 0);
    }
    flags[place] = flag;
}
