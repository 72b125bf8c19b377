//! The command line: the text report, bad input, the JSON and the plots.

use super::teardown;

/// The text report gives one answer for the buckets, Linux's: with one client
/// address the usable 4-tuples bind at 14,116, not the engine table's 60,000.
#[test]
fn text_report_gives_one_tw_buckets_answer() {
    let out = teardown(&["plan", "--close-rate", "1000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tcp_max_tw_buckets ok: 14,116 of 131,072"),
        "{text}"
    );
    assert!(!text.contains("60,000 of 131,072"), "{text}");
    // The table's 60,000 is rate x 60 s: it assumes no 4-tuple comes back.
    assert!(
        text.contains("the table above assumes no 4-tuple comes back while its entry lasts, so it says 60,000"),
        "{text}"
    );
    let out = teardown(&["plan", "--close-rate", "3000", "--clients", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tcp_max_tw_buckets OVERFLOWS: full at 131,072"),
        "{text}"
    );
    assert!(text.contains("overflows above 2184.5 closes/s"), "{text}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["plan", "--close-rate", "-5"][..],
        &["plan", "--close-rate", "fast"],
        &["plan", "--close-rate", "100", "--loss", "1"],
        &["plan", "--close-rate", "100", "--loss", "-0.5"],
        &["plan", "--close-rate", "100", "--profile", "solaris"],
        &["plan", "--close-rate", "100", "--close", "both"],
        &["plan", "--close-rate", "100", "--runaway", "2"],
        &["plan", "--close-rate", "100", "--rtt", "0s"],
        &["plan", "--close-rate", "100", "--syn-linear-timeouts", "9"],
        &["plan", "--close-rate", "100", "--synack-retries", "7"],
    ] {
        let out = teardown(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("teardown: "), "{args:?}: {err}");
    }
}

#[test]
fn json_and_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("plan.json");
    let plots = dir.path().join("plots");
    let out = teardown(&[
        "plan",
        "--close-rate",
        "5000",
        "--clients",
        "100",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--plot",
        plots.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("valid json");
    for key in [
        "time_wait",
        "fin_wait_2",
        "last_ack",
        "close_wait",
        "fin_wait_1",
        "memory_bytes",
    ] {
        assert!(v["predicted"][key].is_number(), "predicted.{key}");
    }
    assert_eq!(v["predicted"]["time_wait"], 131_072.0);
    assert!(v["linux"]["memory_bytes"].is_number());
    assert_eq!(v["limits"]["tw_buckets_overflow"], true);
    assert!(v["limits"]["ports_per_destination_needed"].is_number());
    assert_eq!(v["limits"]["port_exhaustion"], false);
    let png = std::fs::read(plots.join("populations.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000);
    let svg = std::fs::read_to_string(plots.join("populations.svg")).expect("svg");
    assert!(svg.contains("Predicted population vs close rate"));
    assert!(svg.contains("tcp_max_tw_buckets = 131,072"));
}
