//! Linux's limits on the populations [`super::model`] predicts: the ones the
//! published planners ("ports / 60 s") miss. Pure formulas, each checked against
//! a hand-computed case in the tests (`bounds/tests.rs`).
//!
//! * TIME-WAIT is bounded by the smallest of rate × lifetime, the usable
//!   4-tuples and `tcp_max_tw_buckets`: a SYN on a 4-tuple still in the server's
//!   TIME-WAIT with a newer timestamp reopens it and the old entry goes with no
//!   counter (`tcp_timewait_state_process`, RFC 6191), so a population cannot
//!   exceed the tuples that carry the load.
//! * connect() (`__inet_hash_connect`) starts at an even offset and steps by 2:
//!   the even half of `ip_local_port_range` carries the load, odd ports are
//!   searched only once every even one is taken. Measured (linux-measured.md §2):
//!   one client address to one port plateaued at ~14,587 TIME-WAIT of 28,232
//!   ports, and with `tcp_tw_reuse=0` connects collapsed to ~510/s at ~16.6 k.
//! * `tcp_max_tw_buckets` counts TIME-WAIT *and* orphaned FIN-WAIT-2
//!   mini-sockets (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`, linux-rules.md), per
//!   network namespace (`net->ipv4.tcp_death_row`): both ends count when they
//!   share one.
//! * `tcp_tw_reuse` lets connect() take a TIME-WAIT 4-tuple only when the entry
//!   carries timestamps (`tcp_twsk_unique` needs `tw_ts_recent_stamp`), i.e.
//!   `tcp_timestamps` is on at both ends; 2 (the default) is loopback only.

use std::net::IpAddr;

use serde::Serialize;

/// Which of the three bounds sets the TIME-WAIT population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Close rate × lifetime (Little's law): nothing else binds.
    Rate,
    /// The usable 4-tuples: each reopened tuple ends its old TIME-WAIT early.
    Tuples,
    /// `tcp_max_tw_buckets`: the excess skips TIME-WAIT (`TCPTimeWaitOverflow`).
    Buckets,
}

impl Bound {
    pub fn describe(self) -> &'static str {
        match self {
            Bound::Rate => "close rate x lifetime",
            Bound::Tuples => "the usable 4-tuples",
            Bound::Buckets => "tcp_max_tw_buckets",
        }
    }
}

/// Ports of one pool (one client address towards one server address and port)
/// that carry the load before connect() has to search the odd half.
pub fn even_ports(range: u32) -> f64 {
    (f64::from(range) / 2.0).ceil()
}

/// Ports of one pool that connect() searches (`__inet_hash_connect` scans the
/// range rounded down to even, `remaining &= ~1`): what the clients' own
/// TIME-WAIT can hold when `tcp_tw_reuse` does not apply.
pub fn scanned_ports(range: u32) -> f64 {
    f64::from(if range > 1 { range & !1 } else { range })
}

/// One destination's connect() calls against its ports, as the engine's
/// `Host::connect_ephemeral` (Linux's `__inet_hash_connect`) makes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Connects {
    /// Ports held at once (every client state, TIME-WAIT included).
    pub in_use: f64,
    /// connect() calls per second that find no port (EADDRNOTAVAIL).
    pub eaddrnotavail_per_sec: f64,
}

/// `rate` connects per second to one destination whose connections hold their
/// port `hold` seconds, over `ports` ports, and with `tcp_tw_reuse` in force
/// `reuse_hold`: how long a port is held before a connect() may take it over.
///
/// Without reuse a port is free only when its holder leaves: at most
/// `ports / hold` connects a second succeed, the rest fail. With reuse the
/// search walks the even ports from a start that moves past each port it takes
/// (`table_perturb`), so once `rate * hold` outgrows them every even port is
/// held (in TIME-WAIT until the walk comes back to it); the odd half is
/// needed only when `rate * reuse_hold` outgrows the even ports. The search
/// scans the range rounded down to even (`remaining &= ~1`).
pub fn connects(rate: f64, ports: u32, hold: f64, reuse_hold: Option<f64>) -> Connects {
    let scanned = scanned_ports(ports);
    let even = (scanned / 2.0).ceil();
    let needed = rate * hold;
    let (in_use, served) = match reuse_hold {
        None => (needed.min(scanned), rate.min(scanned / hold)),
        Some(h) if needed <= even => (needed, rate.min(scanned / h)),
        Some(h) if rate * h <= even => (even, rate),
        Some(h) => (needed.min(scanned), rate.min(scanned / h)),
    };
    Connects {
        in_use,
        eaddrnotavail_per_sec: rate - served,
    }
}

impl Transient {
    /// Closes that skip in the first `secs` from an empty table at `rate` entries
    /// per second (before the first expiry): all beyond the first `cap`, less
    /// the reopened tuples.
    pub fn skipped_in(&self, secs: f64) -> f64 {
        let secs = secs.min(self.until_s);
        (secs - self.fill_s).max(0.0) * self.rate * self.skipped_fraction
    }
}

/// One pool of 4-tuples feeding TIME-WAIT: the server's side (its clients'
/// addresses towards its listeners) or one destination of this host as a client.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Pool {
    /// TIME-WAIT entries per second.
    pub rate: f64,
    /// Seconds each lives (60 s plus restarts).
    pub lifetime: f64,
    /// Usable 4-tuples; infinite when nothing is known of them (`null` in JSON).
    pub tuples: f64,
}

impl Pool {
    /// The TIME-WAIT it holds at `growth` times its rate, before the buckets.
    pub fn open(&self, growth: f64) -> f64 {
        (growth * self.rate * self.lifetime).min(self.tuples)
    }
}

/// `tcp_max_tw_buckets` of one network namespace and what fills it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Buckets {
    /// Sum of rate x lifetime: what the published planners predict.
    pub time_wait_by_rate: f64,
    /// Sum over pools of min(rate x lifetime, tuples).
    pub time_wait: f64,
    /// Orphaned FIN-WAIT-2 mini-sockets: they take buckets too.
    pub orphan_fin_wait_2: f64,
    /// `time_wait + orphan_fin_wait_2`.
    pub demand: f64,
    pub cap: f64,
    /// What the namespace holds: `min(demand, cap)`.
    pub population: f64,
    pub binds: Bound,
    /// Share of TIME-WAIT entries that skip it in steady state.
    pub skipped_fraction: f64,
    pub overflow_per_sec: f64,
    /// Start-up from an empty table, when the buckets bind.
    pub transient: Option<Transient>,
}

/// What the first lifetime after a step to today's rate looks like when the
/// buckets bind: nothing expires before `until_s`, so once the table is full
/// only reopened tuples free slots.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transient {
    /// TIME-WAIT entries per second.
    pub rate: f64,
    /// Seconds until the table is first full: `cap / rate`; over a window of
    /// `t` seconds from empty, `rate x t - cap` closes skip.
    pub fill_s: f64,
    /// Share of closes that skip from then until the first expiry: `1 - cap/tuples`,
    /// all of them when no tuple is reopened. At least the steady share.
    pub skipped_fraction: f64,
    /// First expiry (the lifetime): from then on the steady state.
    pub until_s: f64,
}

/// The buckets of a namespace fed by `pools`, with `orphans` orphaned FIN-WAIT-2
/// sharing them, under `cap` (`tcp_max_tw_buckets`).
///
/// Overflow: a close finds a free bucket only when an entry expired or its own
/// tuple's old entry was just reopened. With the table full, holding `cap` of the
/// `demand` entries it would hold, the share that gets in is `cap / demand`, so
/// the skipped fraction is `1 - cap / demand`: `1 - cap / tuples` when the tuples
/// bind (not the planners' `(R - cap/60) / R`, 41 % high at a 4,096 cap in
/// issue 14), `1 - cap / (R x 60)` when they do not.
pub fn buckets(pools: &[Pool], orphans: f64, cap: f64) -> Buckets {
    let by_rate: f64 = pools.iter().map(|p| p.rate * p.lifetime).sum();
    let time_wait: f64 = pools.iter().map(|p| p.open(1.0)).sum();
    let rate: f64 = pools.iter().map(|p| p.rate).sum();
    let tuples: f64 = pools.iter().map(|p| p.tuples).sum();
    let cap = cap.max(0.0);
    let demand = time_wait + orphans;
    let binds = if demand > cap {
        Bound::Buckets
    } else if pools.iter().any(|p| p.tuples < p.rate * p.lifetime) {
        Bound::Tuples
    } else {
        Bound::Rate
    };
    let skipped_fraction = if binds == Bound::Buckets {
        1.0 - cap / demand
    } else {
        0.0
    };
    let transient = (binds == Bound::Buckets && rate > 0.0).then(|| Transient {
        rate,
        fill_s: cap / rate,
        skipped_fraction: if tuples.is_finite() && tuples > 0.0 {
            (1.0 - cap / tuples).max(skipped_fraction)
        } else {
            1.0
        },
        until_s: pools.iter().map(|p| p.lifetime).fold(0.0, f64::max),
    });
    Buckets {
        time_wait_by_rate: by_rate,
        time_wait,
        orphan_fin_wait_2: orphans,
        demand,
        cap,
        population: demand.min(cap),
        binds,
        skipped_fraction,
        overflow_per_sec: rate * skipped_fraction,
        transient,
    }
}

/// One pool alone (one side, no orphans): the CLI plan's case.
pub fn time_wait(rate: f64, lifetime: f64, tuples: f64, cap: f64) -> Buckets {
    buckets(
        &[Pool {
            rate,
            lifetime,
            tuples,
        }],
        0.0,
        cap,
    )
}

/// Why `tcp_tw_reuse` does or does not shorten a client's hold on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    Applies,
    Off,
    /// `tcp_tw_reuse = 2` and the destination is not loopback.
    NotLoopback,
    /// `tcp_twsk_unique` needs the TIME-WAIT's timestamp.
    NoTimestamps,
}

impl Reuse {
    pub fn describe(self) -> &'static str {
        match self {
            Reuse::Applies => "applies",
            Reuse::Off => "off",
            Reuse::NotLoopback => "2 = loopback only: not here",
            Reuse::NoTimestamps => "needs tcp_timestamps: off",
        }
    }
}

/// Whether connect() may reuse this destination's TIME-WAIT 4-tuples.
pub fn reuse(tcp_tw_reuse: u8, tcp_timestamps: u8, destination: Option<IpAddr>) -> Reuse {
    let loopback = destination.is_some_and(|ip| ip.is_loopback());
    match tcp_tw_reuse {
        0 => Reuse::Off,
        2 if !loopback => Reuse::NotLoopback,
        _ if tcp_timestamps == 0 => Reuse::NoTimestamps,
        _ => Reuse::Applies,
    }
}

/// The multiple of today's rate at which `demand(g)` (non-decreasing in `g`)
/// reaches `limit`; `None` when it never does. Bisection, to 1e-9 relative.
pub fn headroom(limit: f64, demand: impl Fn(f64) -> f64) -> Option<f64> {
    const HUGE: f64 = 1e12;
    if demand(HUGE) <= limit {
        return None;
    }
    if demand(0.0) >= limit {
        return Some(0.0);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while demand(hi) < limit {
        lo = hi;
        hi *= 2.0;
    }
    while hi - lo > 1e-9 * hi {
        let mid = 0.5 * (lo + hi);
        if demand(mid) < limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests;
