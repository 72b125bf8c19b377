//! `--verify`: the model against the simulator on TIME-WAIT, memory, every
//! state under loss, and EADDRNOTAVAIL.

use teardown::plan::memory::Slab;
use teardown::plan::{evaluate, simulate};

use super::{close, plan};

/// `--verify`: the model and the simulator agree on TIME-WAIT within 10 %.
fn verify(loss: &str) -> (teardown::plan::Outcome, teardown::plan::Simulated) {
    verify_at(loss, "300", 4)
}

fn verify_at(
    loss: &str,
    rate: &str,
    shards: u32,
) -> (teardown::plan::Outcome, teardown::plan::Simulated) {
    let mut p = plan(&[
        "--close-rate",
        rate,
        "--loss",
        loss,
        "--tables",
        &shards.to_string(),
    ]);
    let o = evaluate(&p, &Slab::defaults());
    let s = simulate(&p, shards, Some(2), 1, &o.prediction).expect("sim runs");
    p.tables = shards;
    (evaluate(&p, &Slab::defaults()), s)
}

#[test]
fn verify_agrees_on_time_wait_at_0_1_and_10_percent_loss() {
    for loss in ["0", "0.01", "0.1"] {
        let (o, s) = verify(loss);
        let (pred, sim) = (o.prediction.server.time_wait, s.server.time_wait);
        assert!(
            close(pred, sim, 0.10),
            "loss {loss}: TIME-WAIT predicted {pred} simulated {sim}"
        );
    }
}

/// Memory at the planner's default scale (1,000 closes/s over 8 table shards):
/// at a few thousand entries per shard the fixed per-shard costs (wheel heads,
/// spare chunks, hash doubling) are too coarse for 10 %.
#[test]
fn verify_agrees_on_engine_memory() {
    for loss in ["0", "0.01", "0.1"] {
        let (o, s) = verify_at(loss, "1000", 8);
        assert!(
            close(o.engine_bytes, s.server_bytes, 0.10),
            "loss {loss}: memory predicted {} simulated {}",
            o.engine_bytes,
            s.server_bytes
        );
    }
}

/// `--verify` with timestamps on (Linux's default) at 5 and 10 % loss with 1 %
/// runaway peers, each closer: every state the simulator holds at least 100
/// entries of is predicted within 5 %. With timestamps an ACK of a
/// retransmitted segment still samples the RTT (`tcp_rtt_tsopt_us`) and clears
/// the backoff; before the model followed that, server FIN-WAIT-1 was +12.8 %,
/// client LAST-ACK -19.6 % and client ESTABLISHED +16.7 % at 5 % loss, and
/// +17.5 %, -19.4 % and +28.1 % at 10 %. Each against the mean of three seeds.
///
/// Server closes run at 3,000/s: at 2,000/s server FIN-WAIT-1 holds ~170
/// entries, and its simulated mean moves by +-5 % from seed to seed (runaways
/// whose ACK was lost sit there ~100 s each). Client closes stay below
/// 2,184/s: the simulator's clients are one host whose tcp_max_tw_buckets
/// their own TIME-WAIT fills above that, which the model does not apply.
/// They come from 16 addresses (the simulator's default before it chose ports
/// as Linux does): the table assumes the clients' ports suffice, and one
/// address holds 28,232 ports for 60 s, 470 closes/s, far below 2,000.
#[test]
fn verify_within_five_percent_with_timestamps() {
    for (closer, rate) in [("server", "3000"), ("client", "2000")] {
        for loss in ["0.05", "0.1"] {
            let p = plan(&[
                "--close-rate",
                rate,
                "--loss",
                loss,
                "--runaway",
                "0.01",
                "--close",
                closer,
                "--clients",
                "16",
            ]);
            assert!(p.workload.host.timestamps, "the default");
            let o = evaluate(&p, &Slab::defaults());
            assert!(!o.limits.port_exhaustion, "{closer}: ports suffice");
            // The mean of three seeds: one seed's server FIN-WAIT-1 at 10 %
            // loss moves by +-5 % with any change in what the loss draws fall
            // on (seed 1: +5.1 %, seeds 2 and 3: -0.2 %, once SYNs went on
            // tcp_syn_linear_timeouts).
            let seeds = [1, 2, 3];
            let runs: Vec<_> = seeds
                .iter()
                .map(|&seed| simulate(&p, 8, Some(2), seed, &o.prediction).expect("sim runs"))
                .collect();
            let mean = |f: &dyn Fn(&teardown::plan::Simulated) -> f64| {
                runs.iter().map(f).sum::<f64>() / runs.len() as f64
            };
            let pr = &o.prediction;
            let mut checked = 0;
            for st in teardown::plan::model::MODELLED {
                for (side, model, sim) in [
                    ("server", pr.server.get(st), mean(&|s| s.server.get(st))),
                    ("clients", pr.clients.get(st), mean(&|s| s.clients.get(st))),
                ] {
                    if sim >= 100.0 {
                        checked += 1;
                        assert!(
                            close(model, sim, 0.05),
                            "{closer} closes, loss {loss}: {side} {st}: model {model:.1} simulated {sim:.1}"
                        );
                    }
                }
            }
            assert!(
                checked >= 5,
                "{closer} {loss}: only {checked} states of 100+"
            );
        }
    }
}

/// `--verify` at 30 % loss with `tcp_synack_retries` 2 and 0 (none resent,
/// the request dropped at 1 s): the requests the server drops, and those it
/// opens again for a later SYN, put SYN-RECEIVED within 5 % of the
/// simulator's (+38 % and +281 % before the model dropped them), and
/// SYN-SENT with it. The clients those drops strand ESTABLISHED close at
/// their application's timeout: their ESTABLISHED within 10 % (+31 % and
/// +18 % before the model closed them, and a window that ended before
/// they did), and their FIN-WAIT-1 after it, tens of entries, within 25 %
/// (none before). At 300 closes/s, a few seconds each in a debug build.
#[test]
fn verify_agrees_on_the_handshake_with_few_synack_retries() {
    for retries in ["2", "0"] {
        let p = plan(&[
            "--close-rate",
            "300",
            "--loss",
            "0.3",
            "--synack-retries",
            retries,
        ]);
        let o = evaluate(&p, &Slab::defaults());
        let s = simulate(&p, 8, Some(2), 1, &o.prediction).expect("sim runs");
        let pr = &o.prediction;
        for (state, model, sim) in [
            (
                "SYN-RECEIVED",
                pr.server.syn_received,
                s.server.syn_received,
            ),
            ("SYN-SENT", pr.clients.syn_sent, s.clients.syn_sent),
        ] {
            assert!(
                close(model, sim, 0.05),
                "synack_retries {retries}: {state} model {model:.1} simulated {sim:.1}"
            );
        }
        for (state, model, sim, within) in [
            (
                "ESTABLISHED",
                pr.clients.established,
                s.clients.established,
                0.10,
            ),
            (
                "FIN-WAIT-1",
                pr.clients.fin_wait_1,
                s.clients.fin_wait_1,
                0.25,
            ),
        ] {
            assert!(
                close(model, sim, within),
                "synack_retries {retries}: client {state} model {model:.1} simulated {sim:.1}"
            );
        }
    }
}

/// `--verify --close client --clients 1 --port-range 40000-40999`: the
/// simulator's clients (Linux's port choice in the engine) and the plan agree
/// on EADDRNOTAVAIL and ports in use within 5 %, at tcp_tw_reuse 0 and 1.
#[test]
fn verify_agrees_on_eaddrnotavail_and_ports_in_use() {
    for (rate, reuse) in [("100", "0"), ("100", "1"), ("1500", "1")] {
        let p = plan(&[
            "--close-rate",
            rate,
            "--close",
            "client",
            "--clients",
            "1",
            "--port-range",
            "40000-40999",
            "--tw-reuse",
            reuse,
        ]);
        let o = evaluate(&p, &Slab::defaults());
        let s = simulate(&p, 8, Some(2), 1, &o.prediction).expect("sim runs");
        let c = &o.limits.connects;
        let failed = c.eaddrnotavail_per_sec / o.limits.rate_per_destination;
        let what = format!(
            "{rate}/s, tw_reuse {reuse}: ports {} vs simulated {}, EADDRNOTAVAIL {failed} vs {}",
            c.in_use, s.ports_in_use, s.eaddrnotavail_share
        );
        assert!(close(c.in_use, s.ports_in_use, 0.05), "{what}");
        if failed == 0.0 {
            assert_eq!(s.eaddrnotavail_share, 0.0, "{what}");
        } else {
            assert!(close(failed, s.eaddrnotavail_share, 0.05), "{what}");
        }
    }
}
