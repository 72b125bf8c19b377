//! A shard's construction: its random stream and the hosts' secrets from the
//! run's seed, its share of the connections and client ports, two hosts sized
//! for its share of the live connections, and the buffers an earlier shard on
//! the thread left ([`Reuse`]).

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alloc;
use teardown_engine::host::{CloseReason, Host};
use teardown_engine::time::Time;

use super::{Shard, Side, SERVER_PORT};
use crate::sim::app_timers::AppTimers;
use crate::sim::open::{fixed_flags, nth_at_rate};
use crate::sim::result::ShardResult;
use crate::sim::reuse::Reuse;
use crate::sim::slots::{SlotMap, PREFETCH_SLOTS_FROM};
use crate::sim::spare::Spare;
use crate::sim::SimConfig;

impl<'a> Shard<'a> {
    /// Shard `index` of a run whose allocator scopes start at `scope_base`,
    /// in the buffers `reuse` holds, if any.
    pub fn new(
        cfg: &'a SimConfig,
        index: u32,
        scope_base: u16,
        progress: &'a AtomicU64,
        mut reuse: Reuse,
    ) -> Shard<'a> {
        let shards = cfg.shards as u64;
        let share = |total: u64| total / shards + ((index as u64) < total % shards) as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(index as u64 + 1);
        let secret = rng.gen::<u64>();
        let mut server_cfg = cfg.host.clone();
        server_cfg.secret = secret;
        let mut client_cfg = cfg.host.clone();
        client_cfg.secret = secret.rotate_left(17) ^ 0x5555;
        // The shard's client holds its share of the client addresses' ports:
        // whole addresses, or the first `slots_per_shard` ports of one (the
        // 4-tuple space the slots gave before Linux's port choice).
        let (lo, hi) = cfg.port_range;
        let range = u32::from(hi - lo) + 1;
        let (client_ips, slots) = if cfg.slots_per_shard < range {
            let last = lo + (cfg.slots_per_shard.max(1) - 1) as u16;
            client_cfg.ip_local_port_range = (lo, last);
            (1, cfg.slots_per_shard.max(1))
        } else {
            let ips = cfg.slots_per_shard.div_ceil(range);
            (ips, ips * range)
        };
        let server_scope = scope_base + 2 * index as u16;
        let client_scope = server_scope + 1;
        let prev = alloc::enter_scope(server_scope);
        // Tables sized for the shard's share of the live connections up front, so
        // the opening burst does not rehash them step by step.
        let to_open = share(cfg.connections);
        let live_cap = share(cfg.concurrency).min(to_open);
        let live = live_cap as usize;
        let mut server = Host::with_capacity(server_cfg, live);
        server.listen(SERVER_PORT);
        alloc::enter_scope(client_scope);
        let client = Host::with_capacity(client_cfg, live);
        alloc::enter_scope(prev);
        let rate = cfg.rate.map(|r| r / shards as f64);
        let jitter = !cfg.delay.jitter.is_zero();
        let delay_us = cfg.delay.base.as_micros().min(u64::MAX as u128) as u64;
        Shard {
            cfg,
            index,
            rng,
            now: Time::ZERO,
            server,
            client,
            server_scope,
            client_scope,
            to_server: reuse.queue(Side::Server, jitter, live),
            to_client: reuse.queue(Side::Client, jitter, live),
            spare: Spare::default(),
            loss_to_server: cfg.loss_to_server.clone(),
            loss_to_client: cfg.loss_to_client.clone(),
            slots: reuse.slots(slots as usize),
            slot_map: SlotMap::new(index, (lo, hi), slots as usize),
            marks: cfg.runaway_client > 0.0
                || cfg.runaway_server > 0.0
                || cfg.pcap_sample > 0
                || !cfg.attacks.is_empty(),
            ahead: slots as usize >= PREFETCH_SLOTS_FROM,
            client_ips,
            next_ip: 0,
            fixed_flags: fixed_flags(cfg),
            events: Vec::new(),
            delay_us,
            arrival: Time::from_micros(delay_us),
            jitter,
            capturing: cfg.pcap_sample > 0,
            server_deadline: u64::MAX,
            client_deadline: u64::MAX,
            stale: [false; 2],
            to_open,
            live_cap,
            attempts: 0,
            opened: 0,
            live: 0,
            apps: AppTimers::new(
                rate.map(|_| Time::ZERO),
                // Event 0 of this shard's turn in the attack schedule (nth_at_rate).
                (!cfg.attacks.is_empty())
                    .then(|| nth_at_rate(0, cfg.attack_rate, cfg.shards, index)),
                Some(Time::ZERO + cfg.app_timeout / 4),
            ),
            opens_from: Time::ZERO + cfg.stagger * index,
            opened_ms: reuse.opened_ms(slots as usize),
            vanish_after_ack: Vec::new(),
            delayed_closes: VecDeque::new(),
            attacks_sent: 0,
            capture_left: if index == 0 { cfg.pcap_sample } else { 0 },
            progress,
            unreported: 0,
            res: ShardResult::new(cfg),
            entries_then: 0,
            reasons: [0; CloseReason::ALL.len()],
            hands_on: reuse.on,
            record: None,
        }
    }
}
