//! What a population costs: in this engine (from its data structures) and in the
//! Linux kernel (slab objects).
//!
//! Engine, per table shard with `n` entries (`engine/src/table/`, `timewait.rs`, `endpoint.rs`):
//! * the index (`engine/src/index.rs`): 64-byte buckets of 12 references, a
//!   power of two of them with at most 10.5 entries each ([`buckets`]); it
//!   has no tombstones, so churn does not grow it: 6.1 to 12.2 bytes per entry;
//! * TIME-WAIT entries: 24-byte records in a ring of 512-entry chunks, plus one
//!   stale slot per restart (a retransmitted FIN appends a fresh copy), the
//!   partly consumed head chunk and one spare chunk;
//! * full connections: 56-byte records in a slab of 512-entry chunks (a chunk
//!   whose last entry leaves is returned) plus a 2-byte free-list slot each;
//! * the listening bitmap of each host (32 B for port 80, `Host::listen`);
//! * the timer wheel ([`engine_bytes`]): its fixed list heads and a node per
//!   pending timer, for full connections only; TIME-WAIT entries need no timer
//!   (the ring is their timer).

use serde::Serialize;

use super::model::{Times, MODELLED};
use crate::kernel::slabinfo::{self, Slabinfo};
use teardown_engine::state::State;

const TW_RECORD: f64 = teardown_engine::table::TIME_WAIT_BYTES as f64;
const CONN_RECORD: f64 = teardown_engine::table::CONN_BYTES as f64;
/// A slab chunk's free list holds `u16` slot numbers.
const FREE_SLOT: f64 = std::mem::size_of::<u16>() as f64;
/// The wheel's fixed list heads (`size_of::<[u32; LISTS]>()` in wheel.rs) and one
/// node per pending timer.
const WHEEL_HEADS: f64 = 24_640.0;
const WHEEL_NODE: f64 = 24.0;
const CHUNK: f64 = 512.0;
/// One index bucket: 12 tags, an overflow count and 12 references.
const BUCKET: f64 = 64.0;
/// The listening bitmap of a host listening on port 80: `Host::listen` grows a
/// `Vec<u64>` to the port's word, and a fresh `Vec` of 8-byte items reserves 4.
const LISTENING: f64 = 4.0 * 8.0;

/// Index buckets of a table holding `n` entries: the index doubles when an
/// insert would take it past 21/2 entries per bucket (`Index::insert_unique`),
/// and removals free slots outright, so a churned table stays at the smallest
/// power of two with n <= 10.5 per bucket.
pub fn buckets(n: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0f64;
    while n > b * 10.5 {
        b *= 2.0;
    }
    b
}

/// Table heap bytes (hash buckets, TIME-WAIT ring, connection slab) of one host
/// whose populations are `pop`, spread evenly over `tables` table shards, with
/// `restarts` stale ring slots per TIME-WAIT entry.
pub fn table_bytes(pop: &Times, tables: u32, restarts: f64) -> f64 {
    let tables = tables.max(1) as f64;
    let tw = pop.time_wait / tables;
    let conns = MODELLED
        .iter()
        .filter(|s| **s != State::TimeWait)
        .map(|s| pop.get(*s))
        .sum::<f64>()
        / tables;
    let map = match buckets(tw + conns) {
        0.0 => 0.0,
        b => b * BUCKET,
    };
    let slots = tw * (1.0 + restarts);
    let ring = if slots > 0.0 {
        (slots / CHUNK + 2.0) * CHUNK * TW_RECORD
    } else {
        0.0
    };
    // Every entry starts as a full connection: at least one slab chunk stays
    // (chunks go back when they empty, one is kept as a spare against churn).
    let slab = if conns + tw > 0.0 {
        (conns / CHUNK).ceil().max(1.0) * CHUNK * CONN_RECORD + conns * FREE_SLOT
    } else {
        0.0
    };
    tables * (map + ring + slab)
}

/// Engine heap bytes of one host: its tables (as [`table_bytes`]), plus per
/// shard the timer wheel (fixed list heads, and a node per pending timer: every
/// full connection in teardown has one, in a vector that doubles as it grows)
/// and the listening bitmap.
pub fn engine_bytes(pop: &Times, tables: u32, restarts: f64) -> f64 {
    let shards = tables.max(1) as f64;
    let conns = MODELLED
        .iter()
        .filter(|s| **s != State::TimeWait)
        .map(|s| pop.get(*s))
        .sum::<f64>()
        / shards;
    let wheel = WHEEL_HEADS + conns.max(1.0).log2().ceil().exp2() * WHEEL_NODE;
    table_bytes(pop, tables, restarts) + shards * (wheel + LISTENING)
}

/// Linux slab object sizes, from /proc/slabinfo when it is readable.
#[derive(Clone, Debug, Serialize)]
pub struct Slab {
    /// `tw_sock_TCP`: a TIME-WAIT (or orphaned FIN-WAIT-2) mini-socket.
    pub tw_sock_bytes: f64,
    /// `TCP`: a full socket.
    pub tcp_sock_bytes: f64,
    /// `request_sock_TCP`: a SYN-RECEIVED request socket.
    pub request_sock_bytes: f64,
    /// `tcp_bind_bucket` and `tcp_bind2_bucket` (a port; an address and port):
    /// 128-byte slots each, in a merged cache that /proc/slabinfo names after
    /// another (linux-measured.md). A client's connection on a port of its own
    /// holds them beside its socket, TIME-WAIT too (`tw_tb`, `tw_tb2`); a
    /// server's share the listener's.
    pub bind_bucket_bytes: f64,
    /// `slabinfo` or `defaults`.
    pub source: String,
}

impl Slab {
    /// The sizes measured on the reference machine (linux-measured.md).
    pub fn defaults() -> Slab {
        Slab {
            tw_sock_bytes: 256.0,
            tcp_sock_bytes: 2368.0,
            request_sock_bytes: 320.0,
            bind_bucket_bytes: 128.0,
            source: "defaults".into(),
        }
    }

    /// Reads `objsize` of the three caches from /proc/slabinfo; any that is missing
    /// keeps its default, and the source says so.
    pub fn read() -> Slab {
        match Slabinfo::read(std::path::Path::new(slabinfo::PATH)) {
            Ok(info) => Slab::from_slabinfo(&info),
            Err(_) => Slab::defaults(),
        }
    }

    /// Parses slabinfo text; unreadable text gives the defaults.
    pub fn parse(text: &str) -> Slab {
        Slabinfo::parse(text)
            .map(|info| Slab::from_slabinfo(&info))
            .unwrap_or_else(|_| Slab::defaults())
    }

    /// The three caches' object sizes from a parsed slabinfo.
    pub fn from_slabinfo(info: &Slabinfo) -> Slab {
        let mut s = Slab::defaults();
        let mut found = 0;
        for name in slabinfo::TCP_CACHES {
            let Some(cache) = info.get(name) else {
                continue;
            };
            let slot = match name {
                "tw_sock_TCP" => &mut s.tw_sock_bytes,
                "TCP" => &mut s.tcp_sock_bytes,
                _ => &mut s.request_sock_bytes,
            };
            *slot = cache.objsize as f64;
            found += 1;
        }
        s.source = match found {
            0 => "defaults".into(),
            3 => "/proc/slabinfo".into(),
            _ => "/proc/slabinfo (partly; defaults for the rest)".into(),
        };
        s
    }

    /// Bind buckets of `conns` client connections spread over `clients`
    /// addresses with `range` ephemeral ports each: a `tcp_bind2_bucket` per
    /// (address, port) in use, a `tcp_bind_bucket` per port in use of a
    /// namespace (one per address when each is its own host, or one for all
    /// in a `shared` namespace). Measured on one namespace of 32 addresses:
    /// 418.5 B a client TIME-WAIT against 255.7 B a server's.
    pub fn client_bind_bytes(&self, conns: f64, clients: f64, range: f64, shared: bool) -> f64 {
        if clients <= 0.0 {
            return 0.0;
        }
        let per_address = (conns / clients).min(range);
        let bind2 = clients * per_address;
        let bind = if shared { conns.min(range) } else { bind2 };
        (bind + bind2) * self.bind_bucket_bytes
    }

    /// Kernel bytes for one host's populations: an orphaned FIN-WAIT-2 lives in a
    /// TIME-WAIT mini-socket (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`), a
    /// SYN-RECEIVED in a request socket, every other state in a full socket.
    pub fn bytes(&self, pop: &Times) -> f64 {
        MODELLED
            .iter()
            .map(|&st| {
                let each = match st {
                    State::TimeWait | State::FinWait2 => self.tw_sock_bytes,
                    State::SynReceived => self.request_sock_bytes,
                    _ => self.tcp_sock_bytes,
                };
                pop.get(st) * each
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teardown_engine::table::Table;
    use teardown_engine::tuple::Tuple;

    /// Churns a real table at a steady TIME-WAIT population of `rate * life` (every
    /// tick `rate` connections open, go to TIME-WAIT for `life` ticks, expire) plus
    /// `conns` long-lived full connections, and returns its heap once steady.
    fn churned_table_bytes(rate: u32, life: u32, conns: u32) -> usize {
        let mut t = Table::new(7);
        let mut next = 0u32;
        let mut tuple = || {
            next += 1;
            // A server: one local address (TIME-WAIT records intern it), many peers.
            Tuple {
                local_ip: 1,
                remote_ip: next,
                local_port: 80,
                remote_port: 40_000,
            }
        };
        for _ in 0..conns {
            t.bench_insert(tuple());
        }
        for tick in 0..3 * life {
            for _ in 0..rate {
                t.bench_time_wait(tuple(), tick + life);
            }
            t.bench_expire(tick);
        }
        assert_eq!(t.time_wait_len(), (rate * life) as usize);
        t.heap_bytes()
    }

    /// The formula against the table's own accounting of a churned table (the
    /// counting allocator checks that accounting), across load factors.
    #[test]
    fn engine_formula_matches_a_churned_table() {
        for (rate, life, conns) in [
            (50, 60, 0),
            (125, 60, 0),
            (200, 60, 300),
            (700, 60, 2000),
            (1000, 60, 0),
            (1300, 60, 0),
            (1400, 60, 0),
            (2000, 60, 0),
        ] {
            let measured = churned_table_bytes(rate, life, conns) as f64;
            let pop = Times {
                time_wait: (rate * life) as f64,
                established: conns as f64,
                ..Times::default()
            };
            // The table alone: the host's listening bitmap is not in it.
            let predicted = table_bytes(&pop, 1, 0.0);
            let err = (predicted - measured) / measured;
            assert!(
                err.abs() < 0.10,
                "rate {rate} conns {conns}: predicted {predicted} measured {measured} ({err:+.3})"
            );
        }
    }

    #[test]
    fn buckets_hold_ten_and_a_half_entries_each() {
        assert_eq!(buckets(0.0), 0.0);
        assert_eq!(buckets(7.0), 1.0);
        assert_eq!(buckets(11.0), 2.0);
        assert_eq!(buckets(60_000.0), 8_192.0);
        assert_eq!(buckets(86_016.0), 8_192.0);
        assert_eq!(buckets(86_017.0), 16_384.0);
    }

    #[test]
    fn slabinfo_is_parsed() {
        let text = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\n\
                    tw_sock_TCP 32 32 256 16 1 : tunables 0 0 0 : slabdata 2 2 0\n\
                    TCP 26 26 2432 13 8 : tunables 0 0 0 : slabdata 2 2 0\n";
        let s = Slab::parse(text);
        assert_eq!(s.tw_sock_bytes, 256.0);
        assert_eq!(s.tcp_sock_bytes, 2432.0);
        assert_eq!(s.request_sock_bytes, 320.0);
        assert!(s.source.contains("partly"));
        assert_eq!(Slab::parse("").source, "defaults");
    }
}
