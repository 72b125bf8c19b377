//! A runner that falls behind the script's schedule is told apart from a
//! stack that answers late or wrongly.

use std::path::Path;

use teardown::script::{self, parse, run, Options};

use super::probe::Probe;
use super::HANDSHAKE;

#[test]
fn a_late_runner_is_told_apart_from_a_late_stack() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/normal-close-passive.pkt"),
    )
    .unwrap();
    let s = parse(&src).unwrap();
    // 3 ms behind is within the 4 ms tolerance; 10 ms is not.
    for (lag_ms, late) in [(3, false), (10, true)] {
        let mut stack = Probe::lagging(lag_ms, 0);
        let o = script::run_on(&mut stack, &s, &Options::default());
        match (&o.failure, late) {
            (None, false) => {}
            (Some(f), true) => {
                assert!(f.runner_late, "{f}");
                assert!(f.msg.contains("could only run at"), "{f}");
            }
            (f, _) => panic!("{lag_ms} ms behind: {f:?}"),
        }
    }
    // A stack that answers wrongly is the stack's fault, not the runner's.
    let wrong = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/wrong/fin-retransmit-early.pkt"),
    )
    .unwrap();
    let f = run(&parse(&wrong).unwrap(), &Options::default())
        .failure
        .unwrap();
    assert!(!f.runner_late, "{f}");
}

/// Time the runner lost injecting one packet shows only at the next line
/// (two duplicate ACKs in the same instant, as recorded by script_diff's
/// seed 51): that is still the runner falling behind, run again on Linux.
#[test]
fn time_lost_injecting_is_the_runner_being_late() {
    let src = format!(
        "{HANDSHAKE}\
+1  < . 1:1(0) ack 1 win 65535
+0  < . 1:1(0) ack 1 win 65535
+.5 read(4, ..., 1000) = -1 EAGAIN
"
    );
    let s = parse(&src).unwrap();
    for (lag_ms, late) in [(0, false), (10, true)] {
        let mut stack = Probe::lagging(0, lag_ms);
        let o = script::run_on(&mut stack, &s, &Options::default());
        match (&o.failure, late) {
            (None, false) => {}
            (Some(f), true) => {
                assert!(f.msg.contains("could only run at"), "{f}");
                assert!(f.runner_late, "{f}");
            }
            (f, _) => panic!("{lag_ms} ms lost injecting: {f:?}"),
        }
    }
}

/// A line whose time an earlier line already took the clock past (here, a
/// retransmission waited for with `*`) fails as the script's doing, not as a
/// runner that fell behind: the kernel backend would run it again for nothing.
#[test]
fn a_line_already_passed_is_not_the_runner_being_late() {
    let src = "\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0  connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0  > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0  > . 1:1(0) ack 1
+0  close(3) = 0
+0  > F. 1:1(0) ack 1
*   > F. 1:1(0) ack 1
0.15 < . 1:1(0) ack 2 win 65535
";
    let f = run(&parse(src).unwrap(), &Options::default())
        .failure
        .expect("0.15 s has passed when the retransmission comes");
    assert_eq!(f.line, 10, "{f}");
    assert!(f.msg.contains("could only run at"), "{f}");
    assert!(!f.runner_late, "{f}");
}
