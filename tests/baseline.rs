//! The committed sim baselines (`results/baseline/<name>.json`) are this
//! build's: rerun with the flags their sidecar records, every deterministic
//! field is the same. A change to what the simulator does must come with
//! `results/refresh.sh --no-bench`, or `teardown compare` against the
//! baseline reports the change as a regression in the user's build.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The fields that vary with the machine, the threads or the repeat count.
/// (`resident` counts the shards each thread holds at once, so it follows the
/// thread count, which is the machine's by default.)
fn deterministic(mut v: Value) -> Value {
    let top = v.as_object_mut().expect("a sim report is an object");
    for k in [
        "wall_seconds",
        "teardowns_per_sec",
        "threads",
        "resident",
        "repeat",
    ] {
        top.remove(k);
    }
    if let Some(m) = v["memory"].as_object_mut() {
        m.remove("peak_heap_bytes");
    }
    v
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn committed_baselines_match_this_build() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/baseline");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let meta = entry.unwrap().path();
        let Some(name) = meta
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".meta.json"))
        else {
            continue;
        };
        // "teardown sim FLAGS --repeat K --quiet --json PATH" (results/refresh.sh).
        let command = read(&meta)["command"].as_str().unwrap().to_string();
        let words: Vec<&str> = command.split_whitespace().collect();
        let flags = words
            .strip_prefix(&["teardown", "sim"])
            .and_then(|w| w.get(..w.len().checked_sub(5)?))
            .unwrap_or_else(|| panic!("{meta:?}: {command}"));
        let tail = &words[2 + flags.len()..];
        assert!(
            tail[0] == "--repeat" && tail[2..4] == ["--quiet", "--json"],
            "{meta:?}: {command}"
        );
        let json = tmp.path().join(format!("{name}.json"));
        let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
            .arg("sim")
            .args(flags)
            .args(["--quiet", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (old, new) = (
            deterministic(read(&dir.join(format!("{name}.json")))),
            deterministic(read(&json)),
        );
        assert!(
            old == new,
            "results/baseline/{name}.json is not this build's ({command}); \
             if the change is meant, run results/refresh.sh --no-bench"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "the four scenarios of results/README.md");
}
