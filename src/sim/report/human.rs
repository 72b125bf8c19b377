//! The report for people: the text `teardown sim` prints, one section per
//! block of the JSON (same figures, fixed-width columns).

use std::fmt::Write as _;

use super::{peak_states, SimReport};

impl SimReport {
    /// The report for people.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(
            w,
            "teardown sim: {} connections, {} concurrent, close={}, loss {:.2}%/{:.2}% (to server/to clients), profile {}, seed {}, {} thread(s)",
            self.connections,
            self.concurrency,
            self.close,
            self.loss_to_server * 100.0,
            self.loss_to_client * 100.0,
            self.profile,
            self.seed,
            self.threads
        );
        let _ =
            writeln!(
            w,
            "  completed {} / leaked {}   simulated {:.1} s in {:.2} s wall   {:.0} teardowns/s",
            self.completed, self.leaked, self.sim_seconds, self.wall_seconds, self.teardowns_per_sec
        );
        let r = &self.resident;
        let _ = writeln!(
            w,
            "  resident: {} entries at peak ({}), process heap {:.1} MiB",
            r.peak_entries,
            match r.mode {
                "all-shards" => "all shards live at once",
                _ => "one shard per thread at a time: the table is --shards times smaller",
            },
            r.peak_heap_bytes as f64 / 1048576.0
        );
        let _ = writeln!(
            w,
            "\npeak population (server host | all clients), sampled every {} s",
            sample_secs(self.sample_interval_s)
        );
        for &st in peak_states() {
            let _ = writeln!(
                w,
                "  {:<13} {:>12} | {:>12}",
                st.to_string(),
                self.peak[st.key()],
                self.peak_clients[st.key()]
            );
        }
        let m = &self.memory;
        let _ = writeln!(
            w,
            "\nmemory ({} engine heap, counted by the allocator)",
            m.side
        );
        for (name, bytes, share, entries, linux) in [
            (
                "TIME-WAIT entry",
                m.bytes_per_time_wait,
                m.time_wait_share,
                m.time_wait_entries,
                "256 B tw_sock_TCP",
            ),
            (
                "ESTABLISHED",
                m.bytes_per_established,
                m.established_share,
                m.established_entries,
                "2,368 B TCP socket",
            ),
        ] {
            if let Some(bytes) = bytes {
                let _ = writeln!(
                    w,
                    "  per {name:<16} {bytes:>7.1} B  (all-in, at {entries} entries, {:.0}% of them in that state; Linux: {linux})",
                    share * 100.0
                );
            } else {
                // The share where the state held at least half its peak (see
                // `memory`); under 1 % with two decimals: "0%" would read as none.
                let pct = share * 100.0;
                let digits = if pct < 1.0 { 2 } else { 1 };
                let _ = writeln!(
                    w,
                    "  per {name:<16}       -    (at most {pct:.digits$}% of the entries around its peak, so not measured; --workload tw-fill measures it)",
                );
            }
        }
        let _ = writeln!(
            w,
            "  peak engine heap {:.1} MiB (server and clients), process heap {:.1} MiB",
            m.peak_engine_bytes as f64 / 1048576.0,
            m.peak_heap_bytes as f64 / 1048576.0
        );
        let s = &self.segments;
        let _ = writeln!(
            w,
            "\nsegments: {} sent, {} dropped, {} retransmitted, {} RST, {} challenge ACKs, {} to vanished ends",
            s.sent, s.dropped, s.retransmitted, s.rst, s.challenge_acks, s.blackholed
        );
        let t = &self.timeouts;
        let _ = writeln!(
            w,
            "timeouts: {} FIN-WAIT-2, {} retries exhausted, {} TIME-WAIT expired; {} TIME-WAIT overflows (tcp_max_tw_buckets), {} too many orphans (tcp_max_orphans)",
            t.fin_wait_2, t.retries_exhausted, t.time_wait, self.time_wait_overflow, self.orphan_overflow
        );
        let _ = writeln!(
            w,
            "\nteardown latency, close() to CLOSED (ms)       p50       p99     p99.9       max"
        );
        for (name, p) in [
            ("active closer", &self.latency_ms.active_close),
            ("passive closer", &self.latency_ms.passive_close),
        ] {
            let _ = writeln!(
                w,
                "  {:<15} ({:>9} conns)       {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, p.count, p.p50, p.p99, p.p999, p.max
            );
        }
        let c = &self.cases;
        let _ = writeln!(
            w,
            "\nseed cases of the four-way close exercised (tests/cases/seed.rs)"
        );
        let _ = writeln!(
            w,
            "  1 first FIN lost            {:>10}",
            c.case1_first_fin_lost
        );
        let _ = writeln!(
            w,
            "  2 ACK of FIN lost           {:>10}",
            c.case2_ack_of_fin_lost
        );
        let _ = writeln!(
            w,
            "  3 passive FIN lost          {:>10}",
            c.case3_passive_fin_lost
        );
        let _ = writeln!(
            w,
            "  4 final ACK lost            {:>10}",
            c.case4_final_ack_lost
        );
        let _ = writeln!(
            w,
            "  5 FIN-WAIT-2 timeouts       {:>10}",
            c.case5_fin_wait_2_timeout
        );
        let _ = writeln!(
            w,
            "  6 LAST-ACK reset by RST     {:>10}  (gave up: {})",
            c.case6_last_ack_reset, c.last_ack_gave_up
        );
        let _ = writeln!(
            w,
            "  SYN into TIME-WAIT (reuse)  {:>10}",
            c.syn_into_time_wait
        );
        let _ = writeln!(
            w,
            "  TIME-WAIT killed by RST     {:>10}",
            c.time_wait_assassinated
        );
        let _ = writeln!(w, "  runaway ends vanished       {:>10}", c.vanished_ends);
        if !self.attacks.is_empty() {
            let _ = writeln!(
                w,
                "\nattacks            sent  on target     killed  (RFC 5961 odds)  disturbed  challenge ACKs  RSTs"
            );
            for (k, a) in &self.attacks {
                let _ = writeln!(
                    w,
                    "  {:<13} {:>9} {:>10} {:>10}  ({:>13.3})  {:>9} {:>15} {:>5}",
                    k,
                    a.sent,
                    a.on_target,
                    a.killed,
                    a.expected_killed,
                    a.disturbed,
                    a.challenge_acks,
                    a.rst_replies
                );
            }
            let _ = writeln!(
                w,
                "  SYNs dropped at --max-connections: {}",
                self.syn_dropped
            );
        }
        let c = &self.connect;
        let _ = writeln!(
            w,
            "\nconnect(): {} EADDRNOTAVAIL, {} TIME-WAIT 4-tuples reused, ports probed p50 {} p99 {} max {}",
            c.eaddrnotavail, c.tw_reused, c.ports_probed.p50, c.ports_probed.p99, c.ports_probed.max
        );
        o
    }
}

/// A sample interval for people: 0.1, 0.8, 419430.4.
fn sample_secs(s: f64) -> String {
    let t = format!("{s:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}
