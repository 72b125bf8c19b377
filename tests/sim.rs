//! The simulator end to end: every connection accounted for, every seed case
//! exercised, the same report for the same seed whatever the thread count, bad
//! flags rejected with exit 2, and the pcap capture readable.

use std::process::Command;

use teardown::sim::{self, AttackKind, CloseMode, SimArgs, SimConfig, SimReport, Workload};

fn args(connections: u64) -> SimArgs {
    SimArgs {
        connections,
        concurrency: 2_000,
        shards: 8,
        quiet: true,
        ..SimArgs::default()
    }
}

fn run(a: &SimArgs) -> SimReport {
    let cfg = SimConfig::from_args(a).expect("valid flags");
    sim::run(&cfg, false)
}

#[test]
fn lossy_run_with_runaways_exercises_every_seed_case_and_leaks_nothing() {
    let server_first = run(&SimArgs {
        loss: 0.05,
        runaway_client: 0.05,
        ..args(40_000)
    });
    assert_eq!(server_first.leaked, 0);
    assert_eq!(server_first.completed, 40_000);
    let c = &server_first.cases;
    assert!(c.case1_first_fin_lost > 0, "{c:?}");
    assert!(c.case2_ack_of_fin_lost > 0, "{c:?}");
    assert!(c.case3_passive_fin_lost > 0, "{c:?}");
    assert!(c.case4_final_ack_lost > 0, "{c:?}");
    // Runaway passive closers leave the server in FIN-WAIT-2 (case 5).
    assert!(c.case5_fin_wait_2_timeout > 0, "{c:?}");
    assert!(c.vanished_ends > 0);
    assert!(server_first.peak["time_wait"] > 0);
    assert!(server_first.segments.retransmitted > 0);
    // Passive close is an RTT plus retransmissions; active close includes TIME-WAIT.
    assert!(server_first.latency_ms.active_close.p99 >= 60_000.0);
    assert!(server_first.latency_ms.passive_close.p50 < 1_000.0);

    // Runaway active closers leave the server in LAST-ACK (case 6); reused ports
    // bring new SYNs that end it by RST.
    let client_first = run(&SimArgs {
        close: CloseMode::Client,
        runaway_client: 0.3,
        client_ips: Some(1),
        port_range: "40000-41999".into(),
        concurrency: 500,
        shards: 1,
        ..args(20_000)
    });
    assert_eq!(client_first.leaked, 0);
    assert!(
        client_first.cases.case6_last_ack_reset > 0,
        "{:?}",
        client_first.cases
    );
    assert!(client_first.peak["last_ack"] > 0);
    assert!(client_first.peak_clients["time_wait"] > 0);
}

#[test]
fn port_reuse_sends_syns_into_time_wait() {
    let r = run(&SimArgs {
        loss: 0.0,
        client_ips: Some(1),
        port_range: "40000-40999".into(),
        concurrency: 200,
        shards: 1,
        ..args(10_000)
    });
    assert_eq!(r.leaked, 0);
    assert!(r.cases.syn_into_time_wait > 0);
}

#[test]
fn same_seed_same_report_whatever_the_threads() {
    let a = SimArgs {
        loss: 0.02,
        jitter: std::time::Duration::from_millis(3),
        runaway_client: 0.02,
        ..args(20_000)
    };
    let strip = |r: SimReport| {
        let mut v = serde_json::to_value(&r).expect("serializes");
        for k in ["wall_seconds", "teardowns_per_sec", "threads", "resident"] {
            v.as_object_mut().expect("object").remove(k);
        }
        v["memory"]
            .as_object_mut()
            .expect("object")
            .remove("peak_heap_bytes");
        v
    };
    let one = strip(run(&SimArgs {
        threads: Some(1),
        ..a.clone()
    }));
    let two = strip(run(&SimArgs {
        threads: Some(2),
        ..a.clone()
    }));
    let again = strip(run(&SimArgs {
        threads: Some(2),
        ..a.clone()
    }));
    assert_eq!(one, two);
    assert_eq!(two, again);
    let other_seed = strip(run(&SimArgs {
        seed: 2,
        threads: Some(2),
        ..a
    }));
    assert_ne!(two, other_seed);
}

/// All shards live at once (the default) or one at a time: the same simulation,
/// but in the first the tables really hold the whole population together.
#[test]
fn resident_and_one_shard_at_a_time_simulate_the_same_and_differ_in_working_set() {
    let a = SimArgs {
        loss: 0.02,
        threads: Some(1),
        ..args(20_000)
    };
    let resident = run(&a);
    let sequential = run(&SimArgs {
        sequential_shards: true,
        ..a
    });
    assert_eq!(resident.resident.mode, "all-shards");
    assert_eq!(sequential.resident.mode, "one-shard-per-thread");
    let simulated = |r: &SimReport| {
        let mut v = serde_json::to_value(r).expect("serializes");
        for k in ["wall_seconds", "teardowns_per_sec", "resident"] {
            v.as_object_mut().expect("object").remove(k);
        }
        v["memory"]
            .as_object_mut()
            .expect("object")
            .remove("peak_heap_bytes");
        v
    };
    assert_eq!(simulated(&resident), simulated(&sequential));
    // Every connection's TIME-WAIT outlives the run's opening minute, so at the
    // end all 20,000 are held together when the 8 shards are live at once.
    let held = resident.resident.peak_entries;
    assert!(held >= resident.peak["time_wait"], "{held}");
    assert!(resident.peak["time_wait"] >= 19_000, "{:?}", resident.peak);
    // One shard at a time, the thread never holds more than one shard's share.
    let one = sequential.resident.peak_entries;
    assert!(one * 4 < held, "one shard {one}, all shards {held}");
    assert!(one * 8 >= resident.peak["time_wait"], "{one}");
}

/// tw-fill holds every connection at once, ESTABLISHED at one moment and in
/// TIME-WAIT at another, while its shards take turns on the link: the clients
/// never have more than one shard's handshakes under way, where opening all N
/// at once would put N SYNs, and their timers, in flight together.
#[test]
fn tw_fill_holds_every_entry_at_once_with_one_shard_on_the_link_at_a_time() {
    let n = 8_000;
    let r = run(&SimArgs {
        workload: Workload::TwFill,
        ..args(n)
    });
    assert_eq!((r.completed, r.leaked), (n, 0));
    assert_eq!(r.peak["established"], n, "{:?}", r.peak);
    assert_eq!(r.peak["time_wait"], n, "{:?}", r.peak);
    assert_eq!(r.memory.established_share, 1.0);
    assert_eq!(r.memory.time_wait_share, 1.0);
    let one_shard = n / 8;
    assert!(
        r.peak_clients["syn_sent"] <= one_shard,
        "{:?}",
        r.peak_clients
    );
    assert!(r.peak["fin_wait_1"] <= one_shard, "{:?}", r.peak);
    // Each connection still sees one TIME-WAIT and one round trip of close.
    assert!(r.latency_ms.active_close.p50 >= 60_000.0);
    assert!(r.latency_ms.passive_close.max <= 10.0 + 1.0);
}

/// `--sweep`: one point per size and mode, placed at the entries really held,
/// with the kernel's report and the table bench's medians beside them.
#[test]
fn sweep_reports_throughput_against_the_entries_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("kernel.json");
    std::fs::write(
        &kernel,
        r#"{"completed_per_sec": 9000.5, "live_peak": 400,
            "kernel": {"sockstat": {"inuse_peak": 800, "tw_peak": 9000}}}"#,
    )
    .expect("write");
    let bench = dir.path().join("criterion");
    for group in ["table_insert", "table_lookup_hit", "table_remove"] {
        for (store, ns) in [("teardown", 20.0), ("std_hashmap", 60.0)] {
            let d = bench.join(group).join(store).join("10k").join("new");
            std::fs::create_dir_all(&d).expect("mkdir");
            let est = format!(r#"{{"median": {{"point_estimate": {ns}}}}}"#);
            std::fs::write(d.join("estimates.json"), est).expect("write");
        }
    }
    let plots = dir.path().join("plots");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--sweep", "1000,8000", "--connections", "8000"])
        .args(["--shards", "4", "--threads", "1", "--json", "-"])
        .arg("--kernel-report")
        .arg(&kernel)
        .arg("--table-bench")
        .arg(&bench)
        .arg("--plot")
        .arg(&plots)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sweep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let points = sweep["runs"].as_array().expect("an array of runs");
    let key = |p: &serde_json::Value| {
        (
            p["concurrency"].as_u64().unwrap(),
            p["mode"].as_str().unwrap().to_string(),
        )
    };
    let keys: Vec<_> = points.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            (1000, "all-shards".to_string()),
            (1000, "one-shard-per-thread".to_string()),
            (8000, "all-shards".to_string()),
            (8000, "one-shard-per-thread".to_string()),
        ]
    );
    let held = |i: usize| points[i]["peak_entries"].as_u64().unwrap();
    for p in points {
        assert_eq!(p["leaked"], 0);
        assert_eq!(p["connections"], 8000);
        assert!(p["teardowns_per_sec"].as_f64().unwrap() > 0.0);
    }
    // The 8,000 connections' TIME-WAIT outlives the run: all held at once,
    // in four shard-sized pieces one at a time.
    assert!(held(2) >= 8000, "{}", held(2));
    assert!(held(3) * 3 < held(2), "{} vs {}", held(3), held(2));
    assert!(held(0) <= held(2));
    // The peers, as their files said: the kernel's sockets at its peaks, and
    // one insert + lookup + remove per second from the bench's medians.
    assert_eq!(sweep["kernel"][0]["peak_entries"], 9800);
    assert_eq!(sweep["kernel"][0]["teardowns_per_sec"], 9000.5);
    let table = sweep["table"].as_array().expect("table points");
    let cycles = |store: &str| {
        table.iter().find(|t| t["store"] == store).expect(store)["cycles_per_sec"]
            .as_f64()
            .unwrap()
    };
    assert!((cycles("teardown") - 1e9 / 60.0).abs() < 1e-3);
    assert!((cycles("std_hashmap") - 1e9 / 180.0).abs() < 1e-3);
    for f in ["sweep.png", "sweep.svg"] {
        assert!(
            std::fs::metadata(plots.join(f)).expect(f).len() > 1000,
            "{f}"
        );
    }
}

/// A peer file that is not what it claims is refused before any run starts.
#[test]
fn sweep_refuses_a_report_that_is_not_the_kernels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("sim.json");
    std::fs::write(&bogus, r#"{"teardowns_per_sec": 1.0}"#).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--sweep", "1000", "--kernel-report"])
        .arg(&bogus)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a `loadgen --kernel` report"), "{err}");
}

#[test]
fn attacks_follow_rfc_5961_odds() {
    let r = run(&SimArgs {
        attack: vec![
            AttackKind::BlindRst,
            AttackKind::InwindowRst,
            AttackKind::FinUnknown,
        ],
        attack_rate: 20_000.0,
        ..args(20_000)
    });
    assert_eq!(r.leaked, 0);
    let blind = &r.attacks["blind-rst"];
    assert!(blind.sent > 0 && blind.on_target > 0);
    // 1 in 2^32 per segment: none of these kill.
    assert_eq!(blind.killed, 0);
    let inwin = &r.attacks["inwindow-rst"];
    // In the window: challenge ACKs (per-connection rate limit permitting), kills
    // only at 1 in 65535.
    assert!(inwin.challenge_acks > 0);
    assert!((inwin.killed as f64) <= inwin.expected_killed * 5.0 + 3.0);
    let unknown = &r.attacks["fin-unknown"];
    assert_eq!(unknown.rst_replies, unknown.sent);
}

#[test]
fn pcap_capture_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sim.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args([
            "sim",
            "--connections",
            "2000",
            "--shards",
            "2",
            "--quiet",
            "--pcap-sample",
            "3",
            "--pcap",
        ])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&path).expect("pcap written");
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("pcap header");
    let mut flags = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("packet");
        let ip = etherparse::SlicedPacket::from_ip(&pkt.data).expect("IPv4/TCP");
        if let Some(etherparse::TransportSlice::Tcp(tcp)) = ip.transport {
            flags.push((tcp.syn(), tcp.fin(), tcp.rst()));
        }
    }
    // Three connections, each at least SYN, request and FIN in; SYN-ACK,
    // response with FIN and the final ACK out; SYNs and FINs both ways.
    assert!(flags.len() >= 3 * 6, "{} packets", flags.len());
    assert!(flags.iter().filter(|f| f.0).count() >= 6);
    assert!(flags.iter().filter(|f| f.1).count() >= 6);
    assert!(flags[0].0, "the capture starts with a SYN");
}

#[test]
fn nonsense_flags_exit_2_with_one_line() {
    for bad in [
        vec!["--loss", "1.5"],
        vec!["--connections", "0"],
        vec!["--profile", "solaris"],
        vec!["sim", "--close", "sideways"],
        vec!["sim", "--port-range", "6000-5000"],
        vec!["sim", "--concurrency", "100000", "--client-ips", "1"],
        // Schedules past the end of simulated time (they used to panic or hang).
        vec!["sim", "--connections", "1000", "--rate", "1e-20"],
        vec!["sim", "--attack", "syn-timewait", "--attack-rate", "1e-20"],
        vec!["serve", "--time-scale", "1e-18"],
        // The sweep's 32-bit millisecond stamps would wrap.
        vec!["sim", "--app-timeout", "1000h"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
            .args(&bad)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.contains("error") || l.starts_with("teardown:")),
            "{err}"
        );
    }
}

/// Bounded memory under a flood: SYNs that reopen TIME-WAIT entries at a high
/// rate fill the table with attacker SYN-RECEIVED entries, but --max-connections
/// and tcp_max_tw_buckets hold; what does not fit is counted, not allocated.
#[test]
fn table_limits_hold_under_a_syn_flood() {
    let shards = 4u32;
    let limit = 2_500usize;
    let tw_limit = 2_000usize;
    let r = run(&SimArgs {
        attack: vec![AttackKind::SynTimewait],
        attack_rate: 2_000.0,
        max_connections: Some(limit),
        host: teardown::cli::ProfileArgs {
            max_tw_buckets: Some(tw_limit),
            ..SimArgs::default().host
        },
        loss: 0.0,
        shards,
        ..args(20_000)
    });
    // Each shard holds its share of both limits: at no sample does the server
    // hold more entries, of all states together, than the connection limit.
    let entries = r
        .series
        .iter()
        .map(|p| p.server.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    assert!(
        entries > 0 && entries <= limit as u64,
        "{entries} entries, limit {limit}"
    );
    assert!(r.peak["time_wait"] <= tw_limit as u64, "{:?}", r.peak);
    assert!(r.syn_dropped > 0, "the flood was never turned away");
    assert!(r.time_wait_overflow > 0);
    assert!(r.attacks["syn-timewait"].killed > 0);
    assert_eq!(r.leaked, 0);
}

/// A year of simulated time at a low close rate: the population series stays
/// bounded, and the idle stretches between connections cost nothing.
#[test]
fn a_year_at_a_low_rate_runs_in_bounded_memory() {
    let year = 365.0 * 86_400.0;
    let a = SimArgs {
        rate: Some(2_000.0 / year),
        ..args(2_000)
    };
    let r = run(&a);
    assert_eq!(r.leaked, 0);
    assert!(r.sim_seconds > year - 86_400.0, "{}", r.sim_seconds);
    // 8 shards' samples merged on their common grid, at most 4096 (and the
    // last one) of them.
    assert!(r.series.len() <= 4097, "{} samples", r.series.len());
    let step = r.series[1].t - r.series[0].t;
    assert!(step >= r.sim_seconds / 4097.0, "{step}");
    // The report says which interval its peaks come from: 100 ms doubled.
    assert_eq!(r.sample_interval_s, step);
    let doublings = (r.sample_interval_s / 0.1).log2();
    assert!((doublings - doublings.round()).abs() < 1e-9, "{doublings}");
}

/// A host-wide --rate is one even schedule: with 8 shards at one open per
/// 100 s, each connection's 60 s of TIME-WAIT is over before the next opens.
/// (Each shard used to open its first connection at t = 0: 8 at once.)
#[test]
fn the_shards_take_turns_in_the_rate_schedule() {
    let a = SimArgs {
        rate: Some(0.01),
        ..args(8)
    };
    let r = run(&a);
    assert_eq!(r.leaked, 0);
    assert_eq!(r.peak["time_wait"], 1, "{:?}", r.peak);
    assert!(r.sim_seconds > 700.0, "{}", r.sim_seconds);
}
