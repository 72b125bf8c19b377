//! When a packet is on time: the timing error, packetdrill's tolerances, and
//! a script that runs past the end of time.

use teardown::script::{parse, run, Options};

use super::run_str;

#[test]
fn wrong_timing_fails_with_a_timing_error() {
    // The first retransmission comes after 300 ms, not 200 ms.
    let err =
        run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:10: error handling packet: timing error"),
        "{err}"
    );
    assert!(
        err.contains("expected outbound packet at 0.300000 sec but happened at 0.400000 sec"),
        "{err}"
    );
    // Within the tolerance it passes; a wider one is honoured.
    run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.303 > F. 1:1(0) ack 1\n").unwrap();
    run_str(
        "--tolerance_usecs=150000\n+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n",
    )
    .unwrap();
}

#[test]
fn the_relative_tolerance_is_packetdrills() {
    // The retransmission comes 300 ms after the FIN. Expected 330 ms after:
    // 12.5 % of 330 ms is 41 ms, so it passes by default, as under packetdrill.
    let body = "+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.33 > F. 1:1(0) ack 1\n";
    run_str(body).unwrap();
    // Without the relative tolerance only the fixed 4 ms applies.
    let err = run_str(&format!("--tolerance_percent=0\n{body}")).unwrap_err();
    assert!(
        err.contains(
            "expected outbound packet at 0.430000 sec but happened at 0.400000 sec; \
             tolerance 0.004000 sec"
        ),
        "{err}"
    );
    // 12.5 % of 200 ms is 25 ms: 100 ms early still fails, naming the tolerance used.
    let err =
        run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(err.contains("tolerance 0.025000 sec"), "{err}");
}

#[test]
fn a_script_running_past_the_end_of_time_fails_cleanly() {
    let mut src = String::from("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
    // 2^53 usec is the longest time a line may give; 2,100 of them pass 2^64.
    for _ in 0..2_100 {
        src.push_str("+9000000000 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n");
    }
    let f = run(&parse(&src).unwrap(), &Options::default())
        .failure
        .expect("it cannot pass");
    assert!(f.msg.contains("time overflows"), "{f}");
    assert!(f.line > 2_000, "{f}");
}
