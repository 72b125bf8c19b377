//! What a shard hands back: its counters, the seed cases it saw, its
//! samples and latencies, and the connections it leaked.

use std::sync::atomic::Ordering;

use crate::alloc;
use teardown_engine::host::CloseReason;
use teardown_engine::segment::Segment;
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::Stats;

use super::attack::{AttackCounts, AttackKind};
use super::reuse::Reuse;
use super::series::{Sample, Series};
use super::shard::Shard;
use super::tally::Tally;
use super::SimConfig;

/// Seed-case counters (the six of `tests/cases/seed.rs`), seen from the link and the hosts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cases {
    /// 1: the active closer's FIN lost.
    pub first_fin_lost: u64,
    /// 2: the passive closer's ACK of that FIN lost.
    pub ack_of_fin_lost: u64,
    /// 3: the passive closer's FIN lost.
    pub passive_fin_lost: u64,
    /// 4: the active closer's final ACK lost.
    pub final_ack_lost: u64,
    /// 4 and 6: LAST-ACK ended by an RST.
    pub last_ack_reset: u64,
    /// 4 and 6: LAST-ACK gave up retransmitting.
    pub last_ack_gave_up: u64,
    /// Runaway ends that vanished.
    pub vanished: u64,
}

impl Cases {
    pub fn add(&mut self, o: &Cases) {
        self.first_fin_lost += o.first_fin_lost;
        self.ack_of_fin_lost += o.ack_of_fin_lost;
        self.passive_fin_lost += o.passive_fin_lost;
        self.final_ack_lost += o.final_ack_lost;
        self.last_ack_reset += o.last_ack_reset;
        self.last_ack_gave_up += o.last_ack_gave_up;
        self.vanished += o.vanished;
    }
}

/// What a shard hands back.
#[derive(Debug)]
pub struct ShardResult {
    pub opened: u64,
    pub leaked: u64,
    pub series: Series,
    pub end: Time,
    pub server: Stats,
    pub client: Stats,
    pub sent: u64,
    pub dropped: u64,
    pub blackholed: u64,
    pub to_attacker: u64,
    pub cases: Cases,
    pub reasons: Vec<(CloseReason, u64)>,
    /// Close-to-CLOSED latency in µs, by role.
    pub active: Tally,
    pub passive: Tally,
    pub attacks: Vec<(AttackKind, AttackCounts)>,
    /// Segments in and out of the server for the captured connections (--pcap).
    pub capture: Vec<(Time, Segment)>,
    /// Most entries the shard's two tables held at once.
    pub peak_entries: u64,
    /// Ports the client's connect() probed, per successful connect.
    pub probed: Tally,
}

impl ShardResult {
    /// A shard's result before it ran: nothing counted yet.
    pub(super) fn new(cfg: &SimConfig) -> ShardResult {
        ShardResult {
            opened: 0,
            leaked: 0,
            series: Series::new(cfg.sample_interval),
            end: Time::ZERO,
            server: Stats::default(),
            client: Stats::default(),
            sent: 0,
            dropped: 0,
            blackholed: 0,
            to_attacker: 0,
            cases: Cases::default(),
            reasons: Vec::new(),
            active: Tally::default(),
            passive: Tally::default(),
            attacks: cfg
                .attacks
                .iter()
                .map(|k| (*k, AttackCounts::default()))
                .collect(),
            capture: Vec::new(),
            peak_entries: 0,
            probed: Tally::default(),
        }
    }
}

impl Shard<'_> {
    /// The last sample, and the shard's result.
    pub fn end(self) -> ShardResult {
        self.end_reusing().0
    }

    /// [`Shard::end`], and the buffers the shard hands on ([`Reuse`]).
    pub fn end_reusing(mut self) -> (ShardResult, Reuse) {
        let s = self.sample();
        self.res.series.push(s);
        self.finish()
    }

    pub(super) fn sample(&self) -> Sample {
        let mut s = Sample {
            server_bytes: alloc::scope_bytes(self.server_scope) as i64,
            client_bytes: alloc::scope_bytes(self.client_scope) as i64,
            connects: self.client.stats().opened_active + self.client.stats().connect_eaddrnotavail,
            connects_failed: self.client.stats().connect_eaddrnotavail,
            ..Sample::default()
        };
        for st in State::ALL {
            s.server[st as usize] = self.server.population(st) as u32;
            s.client[st as usize] = self.client.population(st) as u32;
        }
        s
    }

    pub(super) fn finish(mut self) -> (ShardResult, Reuse) {
        self.progress.fetch_add(self.unreported, Ordering::Relaxed);
        // Connections not CLOSED on both ends: count each slot whose 4-tuple either
        // host still holds.
        if !(self.server.is_empty() && self.client.is_empty()) {
            for s in 0..self.slots.len() as u32 {
                let t = self.tuple(s);
                if self.client.state(&t) != State::Closed
                    || self.server.state(&t.reversed()) != State::Closed
                {
                    self.res.leaked += 1;
                }
            }
        }
        // Every place is let go by the time the clients hold no entry.
        debug_assert!(
            !self.client.is_empty() || self.live == 0,
            "{} held",
            self.live
        );
        self.res.opened = self.opened;
        self.res.end = self.now;
        self.res.server = *self.server.stats();
        self.res.client = *self.client.stats();
        self.res.reasons = CloseReason::ALL
            .iter()
            .zip(self.reasons)
            .map(|(r, n)| (*r, n))
            .collect();
        // Drop the hosts inside their scopes so the counters return to zero.
        let (server, client) = (self.server, self.client);
        let prev = alloc::enter_scope(self.server_scope);
        drop(server);
        alloc::enter_scope(self.client_scope);
        drop(client);
        alloc::enter_scope(prev);
        let reuse = if self.hands_on {
            Reuse {
                on: true,
                to_server: Some(self.to_server),
                to_client: Some(self.to_client),
                slots: self.slots,
                opened_ms: self.opened_ms,
            }
        } else {
            Reuse::none()
        };
        (self.res, reuse)
    }
}
