//! Applying a handler's verdict to the table (Linux's handlers return one too:
//! `tcp_rcv_state_process` returns "reset or drop", `tcp_timewait_state_process`
//! a `tcp_tw_status`): keep the entry, move it to TIME-WAIT, or close it, with
//! the population counts and the events that go with each.

use std::time::Duration;

use super::{CloseReason, Event, Host, Role};
use crate::conn::{flag, Conn};
use crate::push::push_with;
use crate::state::State;
use crate::time::Time;
use crate::tuple::Tuple;

/// What segment processing (or an application call, or a timer) decided for a
/// full entry; [`Host::commit`] acts on it.
pub(super) enum Next {
    /// The entry stays (in whatever state the handler moved it to).
    Keep,
    /// Enter TIME-WAIT (`tcp_time_wait`).
    TimeWait,
    /// CLOSED: the entry goes.
    Close(CloseReason),
}

impl Host {
    /// Applies a processing decision to entry `idx`, whose working copy is `c`.
    /// Inlined: most segments keep their entry, which costs a write-back and
    /// at most a population move, while a call (with the 48-byte copy going
    /// in) cost as much again. Leaving the table is out of line.
    #[inline(always)]
    pub(super) fn commit(&mut self, now: Time, idx: u32, mut c: Conn, before: State, next: Next) {
        self.commit_hashed(now, idx, &mut c, before, next, None);
    }

    /// [`Host::commit`] on the working copy where it lies (by value, LLVM
    /// copied its 64 bytes once more on every segment), with the table hash
    /// of `c`'s tuple if the caller has it (`handle`'s lookup): leaving the
    /// index then takes no second hash.
    #[inline(always)]
    pub(super) fn commit_hashed(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        before: State,
        next: Next,
        hash: Option<u64>,
    ) {
        match next {
            Next::Keep => self.keep(idx, c, before),
            Next::TimeWait => self.commit_time_wait(now, idx, c, before, hash),
            Next::Close(reason) => self.commit_close(now, idx, c, before, reason, hash),
        }
    }

    /// The `Keep` arm of [`Host::commit_hashed`].
    #[inline(always)]
    pub(super) fn keep(&mut self, idx: u32, c: &mut Conn, before: State) {
        debug_assert!(c.state == State::FinWait2 || !c.has(flag::FW2_COUNTED));
        if c.state != before {
            self.entered(c, before);
        }
        self.table.set_conn(idx, c);
    }

    /// [`Host::commit`] for an application's call on entry `idx`, found by
    /// [`crate::table::Table::find_conn`]: an entry that stays is written
    /// back without being put in the table's recent slots again. Its `Keep`
    /// arm repeats [`Host::commit_hashed`]'s on purpose: the two shared as one
    /// function cost 0.5 % more instructions (LLVM then laid `handle` out worse).
    #[inline(always)]
    pub(super) fn commit_found(
        &mut self,
        now: Time,
        idx: u32,
        mut c: Conn,
        before: State,
        next: Next,
    ) {
        let Next::Keep = next else {
            return self.commit_hashed(now, idx, &mut c, before, next, None);
        };
        debug_assert!(c.state == State::FinWait2 || !c.has(flag::FW2_COUNTED));
        if c.state != before {
            self.entered(&c, before);
        }
        self.table.set_found_conn(idx, c);
    }

    /// Keeps `fw2_orphans` (the orphaned FIN-WAIT-2 mini-sockets, which count
    /// against `tcp_max_tw_buckets`) in step with `c` being one or not.
    #[inline(always)]
    pub(super) fn count_fw2_orphan(&mut self, c: &mut Conn, orphan_fw2: bool) {
        if orphan_fw2 != c.has(flag::FW2_COUNTED) {
            if orphan_fw2 {
                self.fw2_orphans += 1;
                c.flags |= flag::FW2_COUNTED;
            } else {
                self.fw2_orphans -= 1;
                c.flags &= !flag::FW2_COUNTED;
            }
        }
    }

    /// [`Host::commit`] for an entry that enters TIME-WAIT (`tcp_time_wait`).
    /// The working copy is passed by reference, where it lies in the
    /// caller's frame: by value, the call copied its 64 bytes first.
    #[inline(never)]
    fn commit_time_wait(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        before: State,
        hash: Option<u64>,
    ) {
        // An orphan's FIN-WAIT-2 mini-socket turns into TIME-WAIT in place
        // and keeps its out-of-window rate limit; a full socket's
        // tcp_time_wait() makes a new mini-socket with none.
        if !c.has(flag::FW2_COUNTED) {
            c.last_oow_ms = 0;
        }
        self.count_fw2_orphan(c, false);
        self.disarm_inline(c);
        let hash = hash.unwrap_or_else(|| self.table.hash(&c.tuple));
        self.enter_time_wait(now, idx, c, before, hash);
    }

    /// [`Host::commit`] for an entry that reaches CLOSED (by reference, as
    /// [`Host::commit_time_wait`]).
    #[inline(never)]
    pub(super) fn commit_close(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        before: State,
        reason: CloseReason,
        hash: Option<u64>,
    ) {
        self.count_fw2_orphan(c, false);
        self.orphan_gone(c);
        self.disarm_inline(c);
        let hash = hash.unwrap_or_else(|| self.table.hash(&c.tuple));
        self.table.remove_conn_hashed(idx, &c.tuple, hash);
        self.port_released(&c.tuple);
        self.population[before as usize] -= 1;
        let role = if !c.has(flag::CLOSE_STAMPED) {
            Role::None
        } else if c.has(flag::PASSIVE_CLOSE) {
            Role::Passive
        } else {
            Role::Active
        };
        let since_close = c
            .has(flag::CLOSE_STAMPED)
            .then(|| Duration::from_millis(now.stamp_ms().wrapping_sub(c.close_ms) as u64));
        let trace = self.cfg.trace_states;
        closed_into(
            &mut self.events,
            trace,
            &c.tuple,
            before,
            reason,
            role,
            since_close,
        );
    }

    /// `c` leaves the table as a full entry (to CLOSED or TIME-WAIT): if the
    /// application had closed it, one orphan fewer (`inet_csk_destroy_sock`).
    #[inline(always)]
    pub(super) fn orphan_gone(&mut self, c: &Conn) {
        if c.has(flag::ORPHAN) {
            self.orphaned -= 1;
        }
    }

    pub(super) fn enter(&mut self, tuple: Tuple, from: State, to: State) {
        self.count_move(from, to);
        trace_into(&mut self.events, self.cfg.trace_states, tuple, from, to);
    }

    /// [`Host::enter`] for `c`, now in its new state, from `from`: the
    /// connection passed by reference, its tuple copied for the event only
    /// when states are traced, not for the call at every state change.
    pub(super) fn entered(&mut self, c: &Conn, from: State) {
        self.count_move(from, c.state);
        if self.cfg.trace_states {
            trace_into(&mut self.events, true, c.tuple, from, c.state);
        }
    }

    /// The population counts of a move `from` -> `to` (CLOSED is not counted).
    #[inline(always)]
    fn count_move(&mut self, from: State, to: State) {
        if from != State::Closed {
            self.population[from as usize] -= 1;
        }
        self.population[to as usize] += 1;
    }
}

/// A state change's event, when states are traced (`on`): on the host's
/// events, or for a caller that holds the table apart from them
/// ([`super::time_wait::TwEnd`]).
#[inline(always)]
pub(super) fn trace_into(events: &mut Vec<Event>, on: bool, tuple: Tuple, from: State, to: State) {
    if on {
        push_with(events, || Event::StateChanged { tuple, from, to });
    }
}

/// The events of an entry's end from `from` ([`Host::commit_close`],
/// [`super::time_wait::TwEnd::closed`]): its state change when traced, then
/// `Event::Closed`. The tuple goes in as four scalars: copied whole, the
/// compiler moves it with the padding after the event's `Option<Duration>`
/// as 16 bytes through the stack, and that load spans the narrower stores
/// just made there (a failed store-to-load forwarding, 42 % of
/// `commit_close`'s samples; docs/performance.md, session 32).
#[inline(always)]
pub(super) fn closed_into(
    events: &mut Vec<Event>,
    trace: bool,
    tuple: &Tuple,
    from: State,
    reason: CloseReason,
    role: Role,
    since_close: Option<Duration>,
) {
    trace_into(events, trace, *tuple, from, State::Closed);
    let (local_ip, remote_ip) = (tuple.local_ip, tuple.remote_ip);
    let (local_port, remote_port) = (tuple.local_port, tuple.remote_port);
    push_with(events, || Event::Closed {
        tuple: Tuple {
            local_ip,
            remote_ip,
            local_port,
            remote_port,
        },
        from,
        reason,
        role,
        since_close,
    });
}
