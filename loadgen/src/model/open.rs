//! Opening connections: as many as the rate, the application's free slots
//! and the quota allow, on tuples from a fresh (ip, port) cursor or reused
//! once released; an open that finds none waits, and the wait is reported.

use std::time::Instant;

use teardown::service::{SERVER_IP, SERVER_PORT};
use teardown_engine::driver::BUCKET_AHEAD;
use teardown_engine::host::Prefetch;
use teardown_engine::{Flags, Segment, Time, Tuple};

use super::slots::serial;
use super::{Plan, Worker};

/// New opens per loop iteration at most, beyond refilling the slots freed since
/// the last, so that a burst of opens cannot starve receiving.
const OPEN_BATCH: u64 = 2048;
/// The first simulated client IP, 10.128.0.0.
const CLIENT_NET: u32 = 0x0a80_0000;

impl Worker {
    /// Opens as many connections as the rate, the free slots and the quota allow.
    pub(super) fn open(&mut self, now: Time) {
        let allowed = if self.plan.rate > 0.0 {
            let due = crate::due_at_rate(self.started, self.plan.rate);
            due.min(self.plan.connections)
        } else {
            self.plan.connections
        };
        let mut budget = OPEN_BATCH + std::mem::take(&mut self.freed);
        while self.out.opened < allowed && self.slots.count() < self.plan.concurrency && budget > 0
        {
            let Some(tuple) = self.take_tuple() else {
                self.waiting_since.get_or_insert(self.at);
                return;
            };
            self.stop_waiting();
            budget -= 1;
            if self.host.connect(now, tuple).is_err() {
                // Still in the table (cannot happen for released tuples); try later.
                self.released.push_back(tuple);
                return;
            }
            if let Some(t) = &mut self.app_timeout {
                t.opened(&self.plan, &tuple, now);
            }
            self.out.first_open.get_or_insert_with(Instant::now);
            let place = self.plan.place(&tuple);
            self.reopened(place);
            self.slots.take(place, serial(self.out.opened));
            self.out.opened += 1;
            self.live += 1;
            if self.slots.count() == self.plan.concurrency && self.out.full_at.is_none() {
                self.out.full_at = Some(Instant::now());
                self.out.completed_at_full = self.completed();
            }
            if let Some(a) = &mut self.attacker {
                a.opened(tuple);
            }
            if self.out.opened == self.plan.connections {
                self.out.last_open = Some(Instant::now());
                self.out.completed_at_last_open = self.completed();
            }
        }
    }

    /// An open that waited for a tuple has one: the wait counts in the report.
    pub(super) fn stop_waiting(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.out.tuple_wait += self.at.saturating_duration_since(since);
        }
    }

    /// The next tuple to open. With a million connections resident the
    /// connect's lookup of a tuple not in the table misses the cache on its
    /// index bucket, and that miss was most of the connect; the tuples are
    /// known in advance, so each one's bucket is asked for a few opens before
    /// its connect, as `handle_burst` does for arriving segments. The order
    /// of the tuples is unchanged.
    pub(super) fn take_tuple(&mut self) -> Option<Tuple> {
        while self.upcoming.len() <= BUCKET_AHEAD {
            let Some(tuple) = self.next_tuple() else {
                break;
            };
            // A segment from the server names the tuple as the table keys it.
            let from_server = Segment::new(&tuple.reversed(), Flags::SYN, 0, 0, 0, 0);
            self.host.prefetch(&from_server, Prefetch::Bucket);
            self.upcoming.push_back(tuple);
        }
        self.upcoming.pop_front()
    }

    pub(super) fn next_tuple(&mut self) -> Option<Tuple> {
        let (lo, hi) = self.plan.ports;
        let span = (hi - lo) as u64 + 1;
        if self.next_fresh < span * self.plan.ips as u64 {
            let k = self.next_fresh;
            self.next_fresh += 1;
            return Some(self.plan.tuple(k));
        }
        self.released.pop_front()
    }
}

impl Plan {
    /// The `k`-th tuple of this worker's (ip, port) range, port-major:
    /// consecutive opens use different IPs and ports.
    pub(super) fn tuple(&self, k: u64) -> Tuple {
        Tuple {
            local_ip: self.first_ip() + (k % self.ips as u64) as u32,
            remote_ip: u32::from_be_bytes(SERVER_IP),
            local_port: self.ports.0 + (k / self.ips as u64) as u16,
            remote_port: SERVER_PORT,
        }
    }

    /// The place of one of this worker's tuples in its range: the `k` that
    /// [`Plan::tuple`] takes.
    pub(super) fn place(&self, tuple: &Tuple) -> usize {
        let ip = tuple.local_ip.wrapping_sub(self.first_ip()) as usize;
        let port = tuple.local_port.wrapping_sub(self.ports.0) as usize;
        port * self.ips as usize + ip
    }

    /// Whether the link toward the server loses segments: only then do
    /// the worker's FINs through it need keeping (`app::fin`); on a
    /// lossless link every FIN gets through.
    pub(super) fn tracks_fins(&self) -> bool {
        self.loss_to_server.rate() > 0.0
    }

    /// [`Plan::place`] for any tuple: `None` unless it is one of this
    /// worker's (an address and port in its range, to the server), so that
    /// no other tuple aliases one of them or stands for a place far past
    /// the range.
    pub(super) fn own_place(&self, tuple: &Tuple) -> Option<usize> {
        let ip = tuple.local_ip.wrapping_sub(self.first_ip());
        let port = tuple.local_port.wrapping_sub(self.ports.0);
        let ours = ip < self.ips
            && port <= self.ports.1.wrapping_sub(self.ports.0)
            && tuple.remote_ip == u32::from_be_bytes(SERVER_IP)
            && tuple.remote_port == SERVER_PORT;
        ours.then(|| port as usize * self.ips as usize + ip as usize)
    }

    fn first_ip(&self) -> u32 {
        CLIENT_NET + self.index as u32 * self.ips
    }
}
