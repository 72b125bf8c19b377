//! A shard's client application opening connections: when the workload
//! lets the next one open (a closed model at `--concurrency`, or an open
//! model at `--rate`), and one connect() with its slot's marks (who closes,
//! runaways, capture) and the hints for the connects to come.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;

use teardown_engine::host::Prefetch;
use teardown_engine::state::State;
use teardown_engine::time::Time;

use super::deliver::Sending;
use super::shard::{Shard, Side, SERVER_IP, SERVER_PORT};
use super::slots::{slot, HELD};
use super::{CloseMode, RunawayAt, SimConfig, Workload};

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

/// The marks every slot a run opens takes, when no random draw decides
/// them (no `--close mixed`, no runaways): worked out once a shard, not at
/// every open.
pub(super) fn fixed_flags(cfg: &SimConfig) -> Option<u8> {
    let draws = matches!(cfg.close, CloseMode::Mixed(_))
        || cfg.runaway_client > 0.0
        || cfg.runaway_server > 0.0;
    (!draws).then(|| closer_marks(cfg, false))
}

/// A slot's closer marks under the run's `--close`, where `mixed_server`
/// is what the draw said for `--close mixed` (the server closes). None (0)
/// in tw-fill: nobody closes on establishment; close_all() closes every
/// server end.
fn closer_marks(cfg: &SimConfig, mixed_server: bool) -> u8 {
    if cfg.workload == Workload::TwFill {
        return 0;
    }
    match cfg.close {
        CloseMode::Server => slot::CLOSER_SERVER,
        CloseMode::Client => slot::CLOSER_CLIENT,
        CloseMode::Both => slot::CLOSER_SERVER | slot::CLOSER_CLIENT,
        CloseMode::Mixed(_) if mixed_server => slot::CLOSER_SERVER,
        CloseMode::Mixed(_) => slot::CLOSER_CLIENT,
    }
}

impl Shard<'_> {
    /// The client's application lets go of the connection in `slot`: it
    /// closed it, or its end vanished. Its place in `--concurrency` frees at
    /// once, as a load generator's pool refills at close(): the TIME-WAIT or
    /// LAST-ACK that follows is the kernel's, and holds its port, not the
    /// application's place. A connection lets go once: a later end or close
    /// of it finds nothing held. The next opens go ahead even then, as a
    /// vanished end frees its port (no Closed event follows a forget).
    pub(super) fn let_go(&mut self, slot: usize) {
        self.unhold(slot);
        self.open_next();
    }

    /// The client end of a connection in `slot` reached CLOSED, and its port
    /// is free. An application that never closed it (`unclosed`: a reset,
    /// retries exhausted) lets go of it only now, and by count: a connect
    /// made while the events before this one were handled may have taken
    /// the freed port, and with it the slot, whose place is then its own.
    #[inline]
    pub(super) fn client_ended(&mut self, slot: usize, unclosed: bool) {
        if unclosed {
            if self.client.state(&self.tuple(slot as u32)) == State::Closed {
                self.slots[slot].open &= !HELD;
            }
            self.count_let_go();
        }
        // A freed port may let a connect that found none (EADDRNOTAVAIL) go
        // ahead, also when the place was freed at close().
        self.open_next();
    }

    /// Takes `slot` off the live count if its application held it.
    fn unhold(&mut self, slot: usize) {
        let open = &mut self.slots[slot].open;
        if *open & HELD != 0 {
            *open &= !HELD;
            self.count_let_go();
        }
    }

    /// One connection fewer held by the application.
    fn count_let_go(&mut self) {
        debug_assert!(self.live > 0, "a place let go twice");
        self.live -= 1;
        self.unreported += 1;
        if self.unreported == 1024 {
            self.progress.fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
    }

    /// Opens what the workload allows now. Once every connect is made (a
    /// run whose concurrency covers its connections opens them all at
    /// once), nothing: tested here, not in a call per teardown.
    fn open_next(&mut self) {
        if self.attempts != self.to_open {
            self.open_more();
        }
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
    ///
    /// Within a run of the client host's calls ([`Shard::in_run`]; an open
    /// after a close or a freed port is, in the burst, timers, sweep or
    /// delayed close that made it): the
    /// connects of a wave (a whole shard's at its start) go straight in,
    /// and what each open reads of the instant is read once for all.
    pub(super) fn open_more(&mut self) {
        if self.opens_done() {
            return;
        }
        if self.now < self.opens_from {
            self.apps.set_open(Some(self.opens_from));
            return;
        }
        let (sending, stamp) = (self.sending(), self.now.stamp_ms());
        loop {
            if let Some(rate) = self.cfg.rate {
                let due = nth_at_rate(self.attempts, rate, self.cfg.shards, self.index);
                if due > self.now {
                    self.apps.set_open(Some(due));
                    return;
                }
            }
            if !self.open(sending, stamp) && self.cfg.rate.is_none() {
                self.apps.set_open(Some(self.now + CONNECT_RETRY));
                return;
            }
            if self.opens_done() {
                return;
            }
        }
    }

    /// Whether the workload opens nothing now: every connect was made, or
    /// the live connections are at the cap.
    #[inline(always)]
    fn opens_done(&self) -> bool {
        self.attempts == self.to_open || self.live >= self.live_cap
    }

    /// The marks of the next slot opened, drawn from the shard's stream
    /// where the run's mix asks for a draw (`--close mixed`, runaways);
    /// else they are the same every time ([`fixed_flags`]).
    #[inline(never)]
    fn draw_flags(&mut self) -> u8 {
        // A mixed run draws whether the server closes, in tw-fill too.
        let mixed_server = match self.cfg.close {
            CloseMode::Mixed(f) => self.rng.gen::<f64>() < f,
            _ => false,
        };
        let mut flags = closer_marks(self.cfg, mixed_server);
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
        flags
    }

    /// One connect() from the shard's next client address (round robin),
    /// at the instant `sending` and the ms `stamp` read; false when it
    /// found no port.
    #[inline(always)]
    fn open(&mut self, sending: Sending, stamp: u32) -> bool {
        let mut flags = match self.fixed_flags {
            Some(f) => f,
            None => self.draw_flags(),
        };
        if self.capture_left > 0 {
            self.capture_left -= 1;
            flags |= slot::CAPTURED;
        }
        debug_assert!(
            self.marks
                || flags & (slot::CAPTURED | slot::RUNAWAY_CLIENT | slot::RUNAWAY_SERVER) == 0,
            "a marked slot in a run whose deliveries skip the slot's lookup"
        );
        let ip = self.next_ip;
        // Round robin without a division: `client_ips` is at least 1.
        self.next_ip = if ip + 1 == self.client_ips { 0 } else { ip + 1 };
        let local_ip = self.slot_map.client_ip(ip);
        let mode = self.cfg.bind;
        let r = self.call(Side::Client, |h, now| {
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
            self.transmit_with(Side::Client, sending);
            return false;
        };
        self.res.probed.record(u64::from(c.probed));
        self.slots[s].flags = flags;
        self.slots[s].open |= HELD;
        self.opened_ms[s] = stamp;
        self.attempted();
        self.opened += 1;
        self.live += 1;
        let (now, quarter) = (self.now, self.cfg.app_timeout / 4);
        self.apps.arm_sweep(|| now + quarter);
        self.transmit_with(Side::Client, sending);
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::sim::reuse::Reuse;
    use crate::sim::SimArgs;

    /// Where no draw decides a slot's marks, the fixed ones are those the
    /// draw gives, and the draw takes nothing from the shard's stream;
    /// where one does, there are none.
    #[test]
    fn fixed_marks_are_the_drawn_ones_where_nothing_is_drawn() {
        let closes = [
            CloseMode::Server,
            CloseMode::Client,
            CloseMode::Both,
            CloseMode::Mixed(0.5),
        ];
        for workload in [Workload::Standard, Workload::TwFill] {
            for close in closes {
                for runaway in [0.0, 0.1] {
                    let args = SimArgs {
                        connections: 10,
                        close,
                        workload,
                        runaway_server: runaway,
                        ..SimArgs::default()
                    };
                    let cfg = SimConfig::from_args(&args).expect("a valid config");
                    let done = AtomicU64::new(0);
                    let base = crate::alloc::reserve_scopes(2 * cfg.shards as u16);
                    let mut shard = Shard::new(&cfg, 0, base, &done, Reuse::none());
                    let case = format!("{workload:?} {close:?} {runaway}");
                    let fixed = fixed_flags(&cfg);
                    let draws = runaway > 0.0 || matches!(close, CloseMode::Mixed(_));
                    assert_eq!(fixed.is_none(), draws, "{case}");
                    let next = shard.rng.clone().gen::<u64>();
                    let drawn = shard.draw_flags();
                    if let Some(f) = fixed {
                        assert_eq!(f, drawn, "{case}");
                        assert_eq!(shard.rng.gen::<u64>(), next, "{case}: no draw");
                    }
                }
            }
        }
    }
}
