//! Nonsense flags exit 2 with one line, never a panic.

use std::process::Command;

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
