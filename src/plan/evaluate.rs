//! What the model's populations mean for one host: the limits it runs into
//! (`tcp_max_tw_buckets`, the clients' ephemeral ports) and what they cost in
//! this engine and in Linux.

use super::bounds;
use super::memory::{self, Slab};
use super::model::{self, Closer, Prediction, Times};
use super::Plan;

/// The limits a workload runs into.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linux's buckets overflow in steady state ([`Outcome::buckets`]).
    pub tw_buckets_overflow: bool,
    /// Per-destination close rate.
    pub rate_per_destination: f64,
    /// Seconds a client holds its port: every client-side state, TIME-WAIT included
    /// when the client closes first.
    pub port_hold: f64,
    pub port_hold_with_reuse: f64,
    pub ports_per_destination_needed: f64,
    pub ports_per_destination_needed_with_reuse: f64,
    pub port_exhaustion: bool,
    pub port_exhaustion_with_reuse: bool,
    /// Highest close rate per destination before its ports run out.
    pub max_rate_per_destination: f64,
    pub max_rate_per_destination_with_reuse: f64,
    /// 4-tuples per destination held in the server's TIME-WAIT (server closes):
    /// reopening them relies on the SYN being newer (RFC 6191).
    pub server_tw_tuples_per_destination: f64,
    /// `tcp_tw_reuse` takes effect: 1, or 2 on loopback (--shared-netns),
    /// with timestamps (`tcp_twsk_unique`).
    pub tw_reuse: bool,
    /// connect() per destination under the host's `tcp_tw_reuse`.
    pub connects: bounds::Connects,
    /// Orphans on the server's host (FIN-WAIT-1, CLOSING, LAST-ACK after close()) against `tcp_max_orphans`.
    pub orphans: f64,
    /// `None` where the profile has no such limit.
    pub max_orphans: Option<f64>,
    /// Close rate at which the orphans reach `tcp_max_orphans`.
    pub orphans_full_rate: Option<f64>,
}

/// Everything `teardown plan` computes for one workload.
pub struct Outcome {
    pub prediction: Prediction,
    /// The server's `tcp_max_tw_buckets` under Linux's bounds (the engine does not
    /// model port choice yet): TIME-WAIT bounded by its clients' usable 4-tuples,
    /// orphaned FIN-WAIT-2 in the buckets.
    pub buckets: bounds::Buckets,
    /// Ports of each (client IP, server IP, port) pool that the TIME-WAIT in
    /// the buckets can hold: the even half, or the whole scanned range when
    /// the clients close first without `tcp_tw_reuse`.
    pub usable_ports: f64,
    /// The populations Linux holds: the table's, with TIME-WAIT within the
    /// buckets and the 4-tuples, and the clients' within their ports. What
    /// [`Outcome::linux_bytes`] prices.
    pub linux_server: Times,
    pub linux_clients: Times,
    /// Close rate at which Linux's buckets fill (TIME-WAIT within its 4-tuples
    /// plus orphaned FIN-WAIT-2); `None` without a limit.
    pub tw_buckets_overflow_rate: Option<f64>,
    pub limits: Limits,
    pub engine_bytes: f64,
    pub clients_engine_bytes: f64,
    pub linux: Slab,
    pub linux_bytes: f64,
    pub clients_linux_bytes: f64,
}

/// Runs the model for `plan`, pricing Linux with `slab`.
pub fn evaluate(plan: &Plan, slab: &Slab) -> Outcome {
    let w = &plan.workload;
    let pr = model::predict(w);
    let per_dest = w.rate / plan.destinations();
    let client_hold = pr.client_times.total();
    let tw_client = pr.client_times.time_wait;
    let reuse_tw = if w.close == Closer::Client {
        pr.tw_share * plan.tw_reuse_delay.as_secs_f64().min(pr.tw_time)
    } else {
        tw_client
    };
    let hold_reuse = client_hold - tw_client + reuse_tw;
    let ports = plan.ports as f64;
    let tw_reuse =
        w.host.timestamps && (w.host.tw_reuse == 1 || (w.host.tw_reuse == 2 && plan.shared_netns));
    let usable_ports = usable_ports(plan, tw_reuse);
    let buckets = server_buckets(plan, &pr, usable_ports, 1.0);
    let connects = bounds::connects(
        per_dest,
        plan.ports,
        client_hold,
        tw_reuse.then_some(hold_reuse),
    );
    let (linux_server, linux_clients) = linux_held(plan, &pr, per_dest, &connects, &buckets);
    let orphans = orphans(plan, &pr, &linux_server, &linux_clients);
    let max_orphans = plan.max_orphans.map(|n| n as f64);
    let limits = Limits {
        tw_buckets_overflow: buckets.overflow_per_sec > 0.0,
        rate_per_destination: per_dest,
        port_hold: client_hold,
        port_hold_with_reuse: hold_reuse,
        ports_per_destination_needed: per_dest * client_hold,
        ports_per_destination_needed_with_reuse: per_dest * hold_reuse,
        port_exhaustion: per_dest * client_hold > ports,
        port_exhaustion_with_reuse: per_dest * hold_reuse > ports,
        max_rate_per_destination: ports / client_hold,
        max_rate_per_destination_with_reuse: ports / hold_reuse,
        server_tw_tuples_per_destination: if w.close == Closer::Server {
            pr.server.time_wait / plan.destinations()
        } else {
            0.0
        },
        tw_reuse,
        connects,
        orphans,
        max_orphans,
        // The orphans grow with the rate: the limit is reached at rate x max / orphans.
        orphans_full_rate: max_orphans
            .filter(|_| orphans > 0.0)
            .map(|max| w.rate * max / orphans),
    };
    let cap = w.host.max_tw_buckets as f64;
    let tw_buckets_overflow_rate =
        bounds::headroom(cap, |g| server_buckets(plan, &pr, usable_ports, g).demand)
            .map(|g| g * w.rate);
    let engine_bytes = memory::engine_bytes(
        &pr.server,
        plan.tables,
        at_closer(pr.tw_restarts, w.close, Closer::Server),
    );
    let clients_engine_bytes = memory::engine_bytes(
        &pr.clients,
        plan.tables,
        at_closer(pr.tw_restarts, w.close, Closer::Client),
    );
    Outcome {
        // A lingering close's FIN-WAIT-2 keeps its full socket, and so does
        // the first part of one past 60 s.
        linux_bytes: slab.bytes(&linux_server)
            + w.rate
                * (at_closer(
                    pr.fin_wait_2_held + pr.fin_wait_2_full,
                    w.close,
                    Closer::Server,
                ))
                * (slab.tcp_sock_bytes - slab.tw_sock_bytes),
        clients_linux_bytes: slab.bytes(&linux_clients)
            + w.rate
                * at_closer(pr.fin_wait_2_full, w.close, Closer::Client)
                * (slab.tcp_sock_bytes - slab.tw_sock_bytes)
            + slab.client_bind_bytes(
                linux_clients.total(),
                f64::from(plan.clients),
                f64::from(plan.ports),
                plan.shared_netns,
            ),
        linux_server,
        linux_clients,
        usable_ports,
        linux: slab.clone(),
        prediction: pr,
        buckets,
        tw_buckets_overflow_rate,
        limits,
        engine_bytes,
        clients_engine_bytes,
    }
}

/// Ports of each (client IP, server IP, port) pool that TIME-WAIT can hold.
/// When the server closes first its clients' ports are free after LAST-ACK,
/// so connect() keeps to the even half ([`bounds::even_ports`]) and a newer SYN
/// reopens the server's TIME-WAIT; so does `tcp_tw_reuse` the clients' own.
/// When the clients close first without it, a port in TIME-WAIT is passed
/// over and the search goes on through the whole range.
fn usable_ports(plan: &Plan, tw_reuse: bool) -> f64 {
    if plan.workload.close == Closer::Client && !tw_reuse {
        bounds::scanned_ports(plan.ports)
    } else {
        bounds::even_ports(plan.ports)
    }
}

/// The populations Linux holds of the table's: the TIME-WAIT that fits the
/// 4-tuples and the buckets (the buckets' share of each entry kept), and no
/// more connections than the clients' ports serve: connect() fails with
/// EADDRNOTAVAIL past them, so both ends' states scale with the connects to
/// one destination (`rate` a second) that succeed, and the clients' TIME-WAIT holds at most the ports in use less
/// their other states (with `tcp_tw_reuse` a connect takes an entry over).
fn linux_held(
    plan: &Plan,
    pr: &Prediction,
    rate: f64,
    connects: &bounds::Connects,
    b: &bounds::Buckets,
) -> (Times, Times) {
    let (mut server, mut clients) = (pr.server.clone(), pr.clients.clone());
    if rate > 0.0 && connects.eaddrnotavail_per_sec > 0.0 {
        let served = 1.0 - connects.eaddrnotavail_per_sec / rate;
        for st in model::MODELLED {
            server.set(st, server.get(st) * served);
            clients.set(st, clients.get(st) * served);
        }
    }
    if plan.workload.close == Closer::Client {
        let others = clients.total() - clients.time_wait;
        let ports = connects.in_use * plan.destinations();
        clients.time_wait = clients.time_wait.min((ports - others).max(0.0));
    }
    let kept = if b.demand > 0.0 {
        b.population / b.demand
    } else {
        1.0
    };
    match plan.workload.close {
        Closer::Server => server.time_wait = b.time_wait * kept,
        Closer::Client if plan.shared_netns => {
            clients.time_wait = clients.time_wait.min(b.time_wait * kept)
        }
        Closer::Client => {}
    }
    (server, clients)
}

/// Orphans of the server's host: connections its application closed that
/// still hold a full socket (FIN-WAIT-1, CLOSING, LAST-ACK, and the first
/// part of a FIN-WAIT-2 past 60 s; the rest of it is a mini-socket), the
/// clients' too when they share the
/// host. Past `tcp_max_orphans` a close() sends an RST and the connection is
/// gone (`tcp_close` -> `tcp_check_oom`, TCPAbortOnMemory); an orphan's RTO
/// checks it too, against twice the count once the RTO has reached rto_max
/// and the retries are spent (`tcp_out_of_resources`).
fn orphans(plan: &Plan, pr: &Prediction, server: &Times, clients: &Times) -> f64 {
    let w = &plan.workload;
    let of = |t: &Times, side| {
        t.fin_wait_1
            + t.closing
            + t.last_ack
            + w.rate * at_closer(pr.fin_wait_2_full, w.close, side)
    };
    of(server, Closer::Server)
        + if plan.shared_netns {
            of(clients, Closer::Client)
        } else {
            0.0
        }
}

/// The server's buckets: the TIME-WAIT of the first closer's pools, each
/// pool holding at most `usable_ports` 4-tuples ([`usable_ports`]); the
/// first closer's orphaned FIN-WAIT-2 mini-sockets take buckets too.
/// `growth` scales the close rate (the 4-tuples stay).
fn server_buckets(plan: &Plan, pr: &Prediction, usable_ports: f64, growth: f64) -> bounds::Buckets {
    let w = &plan.workload;
    let rate = w.rate * growth;
    let tuples = plan.destinations() * usable_ports;
    let pool = bounds::Pool {
        rate: rate * pr.tw_share,
        lifetime: pr.tw_time,
        tuples,
    };
    // With the clients in the same namespace their side counts too (the
    // clients' TIME-WAIT on loopback is reused from the even ports as well:
    // tcp_tw_reuse=2 with timestamps).
    let (server_closes, clients_here) = (w.close == Closer::Server, plan.shared_netns);
    let pools: Vec<bounds::Pool> = if server_closes || clients_here {
        vec![pool]
    } else {
        Vec::new()
    };
    // Less what holds a full socket: a lingering close's descriptor, and
    // the first part of a FIN-WAIT-2 past 60 s.
    let mut orphans = rate * pr.server_times.fin_wait_2;
    if server_closes {
        orphans -= rate * (pr.fin_wait_2_held + pr.fin_wait_2_full);
    }
    if clients_here {
        orphans += rate
            * (pr.client_times.fin_wait_2 - at_closer(pr.fin_wait_2_full, w.close, Closer::Client));
    }
    bounds::buckets(&pools, orphans, w.host.max_tw_buckets as f64)
}

/// `value`, a figure of the first closer's, for `side`: none unless it closes.
fn at_closer(value: f64, close: Closer, side: Closer) -> f64 {
    if close == side {
        value
    } else {
        0.0
    }
}
