//! The corpus in tests/scripts: every script the seed cases and engine rules
//! need is there, and every one passes on the engine.

use std::path::{Path, PathBuf};

use teardown::script::{self, Options};

use crate::common;

/// Scripts the corpus must hold, one per seed case and per engine rule
/// (docs/scripts.md); like every corpus script they must pass on the engine,
/// and tests/script_kernel.rs runs them on Linux too.
const REQUIRED: &[&str] = &[
    "normal-close-active.pkt",
    "normal-close-passive.pkt",
    "case1-first-fin-lost.pkt",
    "case2-ack-of-fin-lost.pkt",
    "case3-passive-fin-lost.pkt",
    "case4-final-ack-lost.pkt",
    "case5-passive-closer-runs-away.pkt",
    "case6-active-closer-runs-away.pkt",
    "simultaneous-close.pkt",
    "rst-fin-wait-1.pkt",
    "rst-fin-wait-2.pkt",
    "rst-closing.pkt",
    "rst-time-wait.pkt",
    "rst-close-wait.pkt",
    "rst-last-ack.pkt",
    "syn-time-wait-new-incarnation.pkt",
    "syn-time-wait-old-duplicate.pkt",
    "syn-last-ack.pkt",
    "time-wait-duplicate-fin.pkt",
    "fin-wait-2-timeout.pkt",
    "fin-retransmit-give-up.pkt",
    "data-after-close.pkt",
    "so-linger-abort.pkt",
    "fin-wait-2-orphan-rst-out-of-window.pkt",
    "fin-wait-2-orphan-rst-in-window.pkt",
    "time-wait-ack-restarts-timer.pkt",
    "time-wait-oow-ack-rate-limit.pkt",
    "fin-retransmit-after-partial-ack.pkt",
    "challenge-ack-beyond-snd-nxt.pkt",
    "abort-in-last-ack.pkt",
    "fin-held-behind-retransmission.pkt",
    "read-after-fin-and-reset.pkt",
    "rto-after-falling-rtt.pkt",
    "fin-wait-2-timeout-sysctl.pkt",
    "tw-reuse-after-the-delay.pkt",
    "tw-reuse-needs-timestamps.pkt",
    "bind-takes-time-wait-at-once.pkt",
    "eaddrnotavail-range-spent.pkt",
    "close-wait-text-after-fin.pkt",
    "ts-paws-old-ack.pkt",
    "ts-syn-sent-echo-out-of-range.pkt",
    "rto-fallback-after-resent-syn.pkt",
    "rto-fallback-after-resent-syn-ack.pkt",
    "rto-fallback-after-syn-ack-resent-for-a-duplicate-syn.pkt",
    "syn-retransmit-give-up.pkt",
    "syn-retries-give-up-by-time.pkt",
    "syn-linear-timeouts-off.pkt",
];

fn corpus() -> Vec<PathBuf> {
    common::pkt_files("tests/scripts")
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[test]
fn every_corpus_script_passes() {
    let files = corpus();
    for name in REQUIRED {
        assert!(
            files.iter().any(|f| file_name(f) == *name),
            "tests/scripts/{name} is missing"
        );
    }
    let mut failures = Vec::new();
    for f in &files {
        let name = file_name(f);
        let r = script::run_file(f, &Options::default());
        if let Some(e) = &r.error {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
