//! `teardown script`'s exit codes: 0 passed, 1 failed or missing, 2 usage.

use std::path::Path;
use std::process::Command;

#[test]
fn cli_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_teardown");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let pass = Command::new(bin)
        .arg("script")
        .arg(scripts.join("so-linger-abort.pkt"))
        .output()
        .unwrap();
    assert_eq!(pass.status.code(), Some(0), "{pass:?}");
    // A script that expects a FIN where Linux (and the engine) sends an RST.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-linger.pkt");
    let src = std::fs::read_to_string(scripts.join("so-linger-abort.pkt")).unwrap();
    std::fs::write(&wrong, src.replace("> R.", "> F.")).unwrap();
    let fail = Command::new(bin)
        .arg("script")
        .arg(scripts.join("so-linger-abort.pkt"))
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(fail.status.code(), Some(1), "{fail:?}");
    assert!(String::from_utf8_lossy(&fail.stderr).contains("wrong-linger.pkt"));
    let missing = Command::new(bin)
        .args(["script", "/nonexistent.pkt"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    let usage = Command::new(bin).arg("script").output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}
