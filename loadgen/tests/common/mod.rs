//! Helpers shared by the integration tests.

use serde_json::Value;

/// The `teardown` binary, built if need be: `cargo test -p loadgen` on its
/// own does not build it (a no-op under `cargo test --workspace`), and an old
/// one left beside this test would not be the code under test.
pub fn teardown_bin() -> String {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--message-format=json"])
        .args(["-p", "teardown", "--bin", "teardown"])
        // The profile this test was built with, as far as it can tell.
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["executable"].as_str().map(str::to_string))
        .expect("cargo names the teardown executable")
}
