//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses its own subset

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

/// The number at JSON pointer `p` (an integer, or a float cut to one).
pub fn n(v: &Value, p: &str) -> u64 {
    v.pointer(p)
        .and_then(|x| x.as_u64().or_else(|| x.as_f64().map(|f| f as u64)))
        .unwrap_or_else(|| panic!("{p} missing in {v:#}"))
}

/// Asserts a finished command succeeded, showing its stderr if not.
pub fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `program arg` (a version query) runs and succeeds.
pub fn installed(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cmd` (nginx, or nginx run inside a namespace) set up to serve `GET /` with
/// 6 bytes on `listen`, in the foreground, from a config written into `dir`
/// (pid, logs and temp paths there too).
pub fn nginx(
    mut cmd: std::process::Command,
    dir: &std::path::Path,
    listen: &str,
    keepalive_timeout: &str,
) -> std::process::Command {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         keepalive_timeout {keepalive_timeout};\n\
         server {{ listen {listen}; location / {{ return 200 \"hello\\n\"; }} }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("writing nginx.conf");
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}
