//! The client application's read timeout (`--app-timeout`): a connection still
//! ESTABLISHED that long after it opened is closed, as the simulator's
//! applications do (`src/sim/app.rs`, `sweep`). TCP has no timer for an idle
//! connection whose peer gave up silently: a server that reset an orphan
//! (`--max-orphans`) whose FIN and RST were both lost. Its close() sends a
//! FIN, the server's listener answers it with an RST (RFC 9293 §3.10.7.2,
//! `tcp_v4_send_reset`), and the connection is CLOSED and accounted for
//! instead of leaked at `--timeout`.

use std::time::Duration;

use teardown_engine::{State, Time, Tuple};

use super::{Plan, Worker};

/// When each live connection opened, by its tuple's place in the worker's
/// (ip, port) range ([`Plan::tuple`]): a store at each open and close and no
/// map, 4 bytes per tuple used (at most the range), read whole once a sweep;
/// a reused tuple's stamp is its newest connection's.
pub(super) struct AppTimeout {
    timeout: Duration,
    /// [`Time::stamp_ms`] of each tuple's open (at least 1); 0 where none is live.
    opened_ms: Vec<u32>,
    /// The next sweep: every quarter of the timeout while connections are
    /// live, so a half-open one closes between 1 and 1.25 timeouts after it opened.
    pub(super) next_sweep: Option<Time>,
}

impl AppTimeout {
    pub(super) fn new(timeout: Duration) -> AppTimeout {
        AppTimeout {
            timeout,
            opened_ms: Vec::new(),
            next_sweep: None,
        }
    }

    /// `tuple` was opened at `now`.
    pub(super) fn opened(&mut self, plan: &Plan, tuple: &Tuple, now: Time) {
        let at = plan.place(tuple);
        if at >= self.opened_ms.len() {
            self.opened_ms.resize(at + 1, 0);
        }
        self.opened_ms[at] = now.stamp_ms().max(1);
        self.next_sweep
            .get_or_insert_with(|| now + self.timeout / 4);
    }

    /// `tuple` is closed or vanished: nothing for the sweep.
    pub(super) fn ended(&mut self, plan: &Plan, tuple: &Tuple) {
        if let Some(at) = self.opened_ms.get_mut(plan.place(tuple)) {
            *at = 0;
        }
    }
}

impl Worker {
    /// Closes the connections still ESTABLISHED a timeout after they opened,
    /// once the sweep is due; their events and FINs follow in `app` and `send`.
    pub(super) fn sweep(&mut self, now: Time) {
        let Some(t) = &mut self.app_timeout else {
            return;
        };
        if t.next_sweep.is_none_or(|at| now < at) {
            return;
        }
        let (timeout, now_ms) = (t.timeout.as_millis() as u32, now.stamp_ms());
        let mut due = Vec::new();
        for (k, at) in t.opened_ms.iter_mut().enumerate() {
            if *at == 0 || now_ms.wrapping_sub(*at) < timeout {
                continue;
            }
            // Not yet ESTABLISHED (SYN-SENT has its own timer) or already
            // closing: its Closed event ends it.
            let tuple = self.plan.tuple(k as u64);
            if self.host.state(&tuple) == State::Established {
                *at = 0;
                due.push(tuple);
            }
        }
        t.next_sweep = (self.live > 0).then(|| now + t.timeout / 4);
        self.out.app_timeouts += due.len() as u64;
        for tuple in due {
            self.close(now, tuple);
        }
    }
}
