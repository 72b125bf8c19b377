//! A shard's applications: the workload that opens connections, sends the
//! request and response, closes (or runs away), and times out idle
//! connections, driven by the hosts' events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;

use teardown_engine::host::{CloseReason, Event, Prefetch, Role};
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

use super::shard::{Shard, Side, SERVER_IP, SERVER_PORT};
use super::slots::{next_open, open_bit, slot, CLIENT_OPEN, SERVER_OPEN};
use super::{CloseMode, RunawayAt, Workload};

/// How long a closed-model client waits to retry a connect() that found no
/// port (EADDRNOTAVAIL), unless a port frees up first.
const CONNECT_RETRY: Duration = Duration::from_millis(10);

/// When shard `index`'s `n`-th event of a schedule at `rate` per second
/// (host-wide) is due. The shards take turns, event `n * shards + index` of
/// the whole schedule falling to this one, so the host sees one even schedule
/// and not every shard's first event at once.
pub(super) fn nth_at_rate(n: u64, rate: f64, shards: u32, index: u32) -> Time {
    Time::from_secs_f64((n as f64 * shards as f64 + index as f64) / rate)
}

impl Shard<'_> {
    /// The runaways on `side` whose delayed ACK has gone out vanish now.
    pub(super) fn vanish_acked(&mut self, side: Side) {
        let mut i = 0;
        while i < self.vanish_after_ack.len() {
            let (s, tuple, slot) = self.vanish_after_ack[i];
            let host = match s {
                Side::Server => &self.server,
                Side::Client => &self.client,
            };
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
    #[inline(always)]
    pub(super) fn on_event(&mut self, side: Side, ev: Event) {
        let end = open_bit(side);
        // Each arm looks its connection's slot up itself: the tuple lies at
        // a place of its own in each kind of event.
        match ev {
            Event::Established { tuple } => {
                let (slot, flags) = self.slot_flags(side, &tuple);
                if let Some(s) = slot {
                    self.slots[s].open |= end;
                }
                // HTTP/1.0 style: the client sends its request; the server answers
                // (and, as the first closer, closes) when the request arrives. With
                // no request, the first closer closes at once.
                if self.cfg.request_bytes > 0 {
                    if side == Side::Client {
                        let n = self.cfg.request_bytes;
                        self.with(side, |h, now| h.send(now, tuple, n)).ok();
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
                let (slot, flags) = self.slot_flags(side, &tuple);
                if side == Side::Server {
                    let n = self.cfg.response_bytes;
                    if flags & slot::CLOSER_SERVER == 0 {
                        if n > 0 {
                            self.with(side, |h, now| h.send(now, tuple, n)).ok();
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
                let (slot, flags) = self.slot_flags(side, &tuple);
                // The passive closer's application closes at once, unless its end
                // runs away right after ACKing the FIN: once that ACK, delayed
                // as Linux delays it, has gone out.
                let runaway = match side {
                    Side::Server => slot::RUNAWAY_SERVER,
                    Side::Client => slot::RUNAWAY_CLIENT,
                };
                match slot {
                    Some(s) if flags & runaway != 0 && flags & slot::AT_FIN_SENT == 0 => {
                        let pending = match side {
                            Side::Server => self.server.ack_pending(&tuple),
                            Side::Client => self.client.ack_pending(&tuple),
                        };
                        if pending {
                            self.vanish_after_ack.push((side, tuple, s));
                        } else {
                            self.vanish(side, tuple, s);
                        }
                    }
                    _ => self.app_close(side, tuple, flags, slot),
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
                if let (Side::Client, Some(_)) = (side, slot) {
                    self.release();
                }
            }
            Event::StateChanged { .. } => {}
        }
    }

    /// The slot of a connection (in `side`'s view) and its flags. Connections
    /// an attacker opened have no slot, and no flags: nobody's application
    /// acts on them beyond closing when the peer does.
    #[inline(always)]
    pub(super) fn slot_flags(&self, side: Side, tuple: &Tuple) -> (Option<usize>, u8) {
        let slot = self.slot_for(side, tuple);
        (slot, slot.map_or(0, |s| self.slots[s].flags))
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
    /// an attacker opened). Inlined: from the event handlers, once a teardown
    /// beside `app_send_close`'s once.
    #[inline(always)]
    pub(super) fn app_close(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>) {
        if self.with(side, |h, now| h.close(now, tuple)).is_ok() {
            self.app_closed(side, tuple, flags, slot);
        }
    }

    /// The application on `side` sends `n` bytes and closes, in one engine
    /// call (`send_close`: send() then close()). Where the send is refused,
    /// the connection is as it was and close() alone goes ahead, as it did
    /// after a refused send().
    #[inline(always)]
    fn app_send_close(&mut self, side: Side, tuple: Tuple, flags: u8, slot: Option<usize>, n: u32) {
        if self
            .with(side, |h, now| h.send_close(now, tuple, n))
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
            // Let the FIN go out, then vanish.
            self.vanish(side, tuple, slot);
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
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot].flags |= slot::SERVER_GONE;
            }
            Side::Client => {
                self.with(side, |h, _| h.forget(&tuple));
                self.slots[slot].flags |= slot::CLIENT_GONE;
                self.release();
            }
        }
    }

    /// The client end of a connection is gone (the engine frees its port).
    pub(super) fn release(&mut self) {
        self.live -= 1;
        self.unreported += 1;
        if self.unreported == 1024 {
            self.progress.fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
        self.open_more();
    }

    /// Counts a connect attempt. After the last one only the closes of the
    /// last wave are left: the queues need not keep their buffers for
    /// further bursts, and give them back as they drain, before the run's
    /// TIME-WAIT entries pile up to the peak heap.
    pub(super) fn attempted(&mut self) {
        self.attempts += 1;
        if self.attempts == self.to_open {
            self.to_server.release(&mut self.spare);
            self.to_client.release(&mut self.spare);
        }
    }

    /// Opens connections while the workload allows. A connect() that finds
    /// no port (EADDRNOTAVAIL) is counted; with `--rate` (an open model) that
    /// attempt is lost and the schedule goes on; without (a closed model, a
    /// client that must open its next connection) it is retried after
    /// [`CONNECT_RETRY`], or sooner when a port frees up, never in a busy loop.
    pub(super) fn open_more(&mut self) {
        loop {
            if self.attempts == self.to_open || self.live >= self.cfg.concurrency_per_shard {
                return;
            }
            if self.now < self.opens_from {
                self.apps.set_open(Some(self.opens_from));
                return;
            }
            if let Some(rate) = self.cfg.rate {
                let due = nth_at_rate(self.attempts, rate, self.cfg.shards, self.index);
                if due > self.now {
                    self.apps.set_open(Some(due));
                    return;
                }
            }
            if !self.open() && self.cfg.rate.is_none() {
                self.apps.set_open(Some(self.now + CONNECT_RETRY));
                return;
            }
        }
    }

    /// One connect() from the shard's next client address (round robin);
    /// false when it found no port.
    pub(super) fn open(&mut self) -> bool {
        let mut flags = match self.cfg.close {
            CloseMode::Server => slot::CLOSER_SERVER,
            CloseMode::Client => slot::CLOSER_CLIENT,
            CloseMode::Both => slot::CLOSER_SERVER | slot::CLOSER_CLIENT,
            CloseMode::Mixed(f) => {
                if self.rng.gen::<f64>() < f {
                    slot::CLOSER_SERVER
                } else {
                    slot::CLOSER_CLIENT
                }
            }
        };
        if self.cfg.workload == Workload::TwFill {
            // Nobody closes on establishment; close_all() closes every server end.
            flags = 0;
        }
        if self.cfg.runaway_client > 0.0 && self.rng.gen::<f64>() < self.cfg.runaway_client {
            flags |= slot::RUNAWAY_CLIENT;
        }
        if self.cfg.runaway_server > 0.0 && self.rng.gen::<f64>() < self.cfg.runaway_server {
            flags |= slot::RUNAWAY_SERVER;
        }
        if flags & (slot::RUNAWAY_CLIENT | slot::RUNAWAY_SERVER) != 0 {
            let at_fin_sent = match self.cfg.runaway_at {
                RunawayAt::FinAcked => false,
                RunawayAt::FinSent => true,
                RunawayAt::Any => self.rng.gen::<bool>(),
            };
            if at_fin_sent {
                flags |= slot::AT_FIN_SENT;
            }
        }
        if self.capture_left > 0 {
            self.capture_left -= 1;
            flags |= slot::CAPTURED;
        }
        let ip = self.next_ip;
        self.next_ip = (ip + 1) % self.client_ips;
        let local_ip = self.slot_map.client_ip(ip);
        let mode = self.cfg.bind;
        let r = self.with(Side::Client, |h, now| {
            h.connect_ephemeral(now, local_ip, SERVER_IP, SERVER_PORT, mode)
        });
        // The cold lines of the connects to come, while this one's SYN and
        // the teardowns before them go on: the index bucket of the one after
        // next (its port buckets were asked for by the last connect), then
        // the port buckets of the third from now; in that order, so that
        // each destination is hashed once for its two hints (the host keeps
        // the last one looked up). Not when the thread's shards fit in
        // cache, where the host would not take the hints.
        if self.ahead {
            let ip = |n: u32| self.slot_map.client_ip(n % self.client_ips);
            let (second, third) = (ip(self.next_ip + 1), ip(self.next_ip + 2));
            let c = &self.client;
            c.prefetch_connect(second, SERVER_IP, SERVER_PORT, mode, Prefetch::Entry);
            c.prefetch_connect(third, SERVER_IP, SERVER_PORT, mode, Prefetch::Bucket);
        }
        let slot = r.as_ref().ok().and_then(|c| self.slot_of(&c.tuple));
        let (Ok(c), Some(s)) = (r, slot) else {
            // EADDRNOTAVAIL (counted by the client host), or the table is full.
            if self.cfg.rate.is_some() {
                self.attempted();
            }
            self.transmit(Side::Client);
            return false;
        };
        self.res.probed.record(u64::from(c.probed));
        self.slots[s].flags = flags;
        self.opened_ms[s] = self.now.stamp_ms();
        self.attempted();
        self.opened += 1;
        self.live += 1;
        let (now, quarter) = (self.now, self.cfg.app_timeout / 4);
        self.apps.arm_sweep(|| now + quarter);
        self.transmit(Side::Client);
        if self.cfg.workload == Workload::TwFill && self.opened == self.to_open {
            // All opened: close them all once every shard's handshakes have
            // surely finished, one shard after another (`SimConfig::stagger`).
            let all_open = self.cfg.stagger * self.cfg.shards;
            self.apps.set_close_all(Some(
                self.now + all_open + self.cfg.delay.base * 4 + Duration::from_millis(500),
            ));
        }
        true
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
        let mut from = 0;
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
                self.app_close(Side::Client, client, flags, Some(s));
                self.transmit(Side::Client);
            }
            if open & SERVER_OPEN != 0 && self.server.state(&server) == State::Established {
                self.app_close(Side::Server, server, flags, Some(s));
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
    pub(super) fn close_all(&mut self) {
        for s in 0..self.slots.len() as u32 {
            let tuple = self.tuple(s).reversed();
            if self.server.state(&tuple) == State::Established {
                self.slots[s as usize].flags |= slot::CLOSER_SERVER;
                self.with(Side::Server, |h, now| h.close(now, tuple)).ok();
                // Each FIN onto the link at once: left in the host's output
                // buffer, a shard's FINs would all be held twice, and the
                // buffer would keep that size for the rest of the run.
                self.transmit(Side::Server);
            }
        }
    }
}
