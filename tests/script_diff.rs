#![cfg(target_os = "linux")]
//! Differential testing against Linux: seeded random teardown scenarios
//! (application calls and peer segments after a handshake), recorded on the
//! engine with `teardown script --record`'s machinery, then replayed on the
//! running kernel with `--kernel`. A replay that fails is a divergence between
//! the engine and Linux; the recorded script is left in the test's temporary
//! directory, ready for `teardown script --kernel -v`.
//!
//! Needs what tests/script_kernel.rs needs (root, /dev/net/tun), and skips
//! the kernel side the same way (TEARDOWN_KERNEL_TESTS=skip).

use std::fmt::Write as _;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
mod common;

use common::{kernel_available, print_retries};
use teardown::script::{self, parse, record::record_script, Backend, Options};

/// Scenarios per run (`TEARDOWN_DIFF_SCENARIOS` to change); each takes a few
/// seconds of real time on the kernel, and they run side by side, this many at
/// a time.
const SCENARIOS: u64 = 300;
const AT_ONCE: usize = 100;

/// Seeds beyond the default run that once diverged and agree now (fast
/// retransmit, the held FIN, the FIN-WAIT-2 mini-socket's rate limit): every
/// run replays them too.
const ONCE_DIVERGENT: [u64; 4] = [1004, 1962, 2533, 2634];

fn scenarios() -> u64 {
    std::env::var("TEARDOWN_DIFF_SCENARIOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SCENARIOS)
}

/// Seeds 0 to `scenarios()`, and [`ONCE_DIVERGENT`] beyond them.
fn seeds() -> impl Iterator<Item = u64> {
    let n = scenarios();
    (0..n).chain(ONCE_DIVERGENT.into_iter().filter(move |&s| s >= n))
}

const PROLOGUE: &str = "\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0  accept(3, ..., ...) = 4
+0  setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0
";

/// The prologue with timestamps: the peer's clock starts at 100 (ms ticks).
const PROLOGUE_TS: &str = "\
--tcp_ts_tick_usecs=1000
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460,nop,nop,TS val 100 ecr 0>
+.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 200 ecr 0>
+0  accept(3, ..., ...) = 4
+0  setsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0
";

/// One scenario: after a passive open (with TCP_NODELAY: the engine has no
/// Nagle), a few application calls and peer segments in random order with
/// random gaps. Sequence and ACK numbers are
/// drawn around what the connection has done, so most segments are plausible
/// and some are not (old, in-window, out of window, beyond snd_nxt). With
/// `ts`, the connection uses timestamps: the peer's TSval follows its clock
/// (ms since the SYN, from 100) except that one segment in six carries an
/// older one (an old duplicate to PAWS); the recording writes the TSecrs.
fn scenario(seed: u64, ts: bool) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = String::from(if ts { PROLOGUE_TS } else { PROLOGUE });
    let (mut written, mut fin_out, mut closed, mut peer_fin) = (0u32, false, false, false);
    let mut clock_ms = 200u32;
    let mut after_fin = false;
    for _ in 0..rng.gen_range(3..=7) {
        let gap = [0.0, 0.0, 0.05, 0.2, 0.5, 1.0][rng.gen_range(0..6)];
        // The ACK of a FIN that moves to CLOSE-WAIT waits for Linux's next
        // timer tick: whether what comes in the same instant beats it is a
        // race on Linux, so nothing does here (fin-ack-rides-on-the-fin.pkt
        // holds the engine to that case).
        let gap = if after_fin && gap == 0.0 { 0.01 } else { gap };
        let when = format!("+{gap}");
        clock_ms += (gap * 1000.0) as u32;
        let opt = if !ts {
            String::new()
        } else if rng.gen_ratio(1, 6) {
            format!(" <nop,nop,TS val {} ecr 0>", clock_ms - 150)
        } else {
            format!(" <nop,nop,TS val {clock_ms} ecr 0>")
        };
        let peer_seq = 1 + peer_fin as u32;
        // What the peer may acknowledge: nothing new, the data, the FIN, or
        // more than was ever sent.
        let acks = [1, 1 + written, 1 + written + fin_out as u32, 1001 + written];
        let ack = acks[rng.gen_range(0..acks.len())];
        let choice = rng.gen_range(0..9);
        let prev_fin = std::mem::take(&mut after_fin);
        match choice {
            0 if !closed && !fin_out && written < 200 => {
                written += 100;
                let _ = writeln!(s, "{when} write(4, ..., 100) = 100");
            }
            1 if !closed => {
                if rng.gen_bool(0.15) {
                    let _ = writeln!(
                        s,
                        "{when} setsockopt(4, SOL_SOCKET, SO_LINGER, {{onoff=1, linger=0}}, 8) = 0"
                    );
                }
                let at = if prev_fin { when.as_str() } else { "+0" };
                let _ = writeln!(s, "{at} close(4) = 0");
                (closed, fin_out) = (true, true);
            }
            2 if !closed && !fin_out => {
                let _ = writeln!(s, "{when} shutdown(4, SHUT_WR) = 0");
                fin_out = true;
            }
            3 if !closed => {
                let _ = writeln!(s, "{when} read(4, ..., 1000) = 0");
            }
            4 | 5 => {
                let _ = writeln!(
                    s,
                    "{when} < . {peer_seq}:{peer_seq}(0) ack {ack} win 65535{opt}"
                );
            }
            6 => {
                // The peer's FIN, or a retransmission of it.
                let _ = writeln!(s, "{when} < F. 1:1(0) ack {ack} win 65535{opt}");
                peer_fin = true;
                after_fin = true;
            }
            7 => {
                let seq = [peer_seq, peer_seq - 1, peer_seq + 100, 100_000][rng.gen_range(0..4)];
                let _ = writeln!(s, "{when} < R {seq}:{seq}(0) win 0{opt}");
            }
            _ => {
                let seq = [peer_seq, 100_000][rng.gen_range(0..2)];
                let _ = writeln!(s, "{when} < . {seq}:{seq}(0) ack {ack} win 65535{opt}");
            }
        }
    }
    s
}

/// The recorded script of `seed`, or None when the scenario is not one the
/// runner takes (a call on a socket the script no longer has, say).
fn recorded(seed: u64, ts: bool) -> Option<String> {
    let src = scenario(seed, ts);
    let script = parse(&src).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{src}"));
    let (text, outcome) = record_script(&script, &Options::default());
    outcome.failure.is_none().then_some(text)
}

fn replay_on_the_engine_itself(ts: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    let n = seeds().count() as u64;
    for seed in seeds() {
        let Some(text) = recorded(seed, ts) else {
            continue;
        };
        let path = dir.path().join(format!("seed-{seed}.pkt"));
        std::fs::write(&path, &text).unwrap();
        let r = script::run_file(&path, &Options::default());
        assert!(r.passed(), "seed {seed}: {:?}\n{text}", r.error);
        replayed += 1;
    }
    assert!(
        replayed >= n * 9 / 10,
        "only {replayed} of {n} scenarios ran"
    );
}

#[test]
fn recordings_replay_on_the_engine_itself() {
    replay_on_the_engine_itself(false);
}

#[test]
fn recordings_with_timestamps_replay_on_the_engine_itself() {
    replay_on_the_engine_itself(true);
}

fn replay_on_linux(ts: bool) {
    if !kernel_available() {
        return;
    }
    let name = if ts { "script_diff_ts" } else { "script_diff" };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let n = seeds().count();
    let (seeds, files): (Vec<u64>, Vec<PathBuf>) = seeds()
        .filter_map(|seed| {
            let text = recorded(seed, ts)?;
            let path = dir.join(format!("seed-{seed}.pkt"));
            std::fs::write(&path, text).unwrap();
            Some((seed, path))
        })
        .unzip();
    // As on the engine: an empty set of scenarios would agree with anything.
    assert!(
        files.len() >= n * 9 / 10,
        "only {} of {n} scenarios recorded",
        files.len()
    );
    let mut results = script::run_files(&files, &Options::default(), Backend::Kernel, AT_ONCE);
    print_retries(&files, &results);
    // Linux's own choices here follow real time (its delayed-ACK estimate of
    // the peer's pace, the TSval of the moment it sends), and a hundred
    // scenarios side by side on a loaded 2-vCPU VM can push one off by
    // milliseconds without the runner falling behind. A scenario that
    // fails runs once more, alone: a divergence fails both times.
    for (path, r) in files.iter().zip(&mut results) {
        let Some(first) = r.error.clone() else {
            continue;
        };
        *r = script::run_file_on(path, &Options::default(), Backend::Kernel);
        if r.passed() {
            eprintln!(
                "{}: passed alone after failing side by side ({first})",
                path.display()
            );
        }
    }
    let failures: Vec<String> = seeds
        .iter()
        .zip(results)
        .filter_map(|(seed, r)| r.error.map(|e| format!("seed {seed}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} recorded scenarios fail on Linux (scripts in {}):\n{}",
        failures.len(),
        files.len(),
        dir.display(),
        failures.join("\n")
    );
}

#[test]
fn the_engine_and_linux_agree_on_random_teardowns() {
    replay_on_linux(false);
}

#[test]
fn the_engine_and_linux_agree_on_random_teardowns_with_timestamps() {
    replay_on_linux(true);
}
