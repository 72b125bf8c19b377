//! Wrong scripts fail naming the line: a sysctl line too late, a wrong flag,
//! sequence number, ACK, return value, and packets unexpected or missing.

use std::path::Path;

use teardown::script::{parse, run, Options};

use super::run_str;

#[test]
fn a_sysctl_line_comes_before_the_script_starts() {
    let e = run_str("+0 `sysctl -q net.ipv4.tcp_fin_timeout=5`\n").unwrap_err();
    assert!(
        e.contains("must come before the script's first packet"),
        "{e}"
    );
    // The same line first configures the engine: a 5 s orphaned FIN-WAIT-2.
    let src = "0 `sysctl -q net.ipv4.tcp_fin_timeout=5`\n".to_string()
        + &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/fin-wait-2-timeout.pkt"),
        )
        .unwrap();
    let out = run(&parse(&src).unwrap(), &Options::default());
    let f = out.failure.expect("the orphan is gone after 5 s, not 60");
    // At 59 s the 60 s script expects an ACK; the orphan is gone: RST.
    assert_eq!(f.line, 21, "{f}");
    assert!(f.msg.contains("tcp_rst: expected: 0 vs actual: 1"), "{f}");
}

#[test]
fn a_wrong_flag_fails_naming_the_line_and_field() {
    let err = run_str("+0 close(4) = 0\n+0 > . 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.starts_with(
            "t.pkt:9: error handling packet: live packet field tcp_fin: expected: 0 vs actual: 1"
        ),
        "{err}"
    );
    assert!(
        err.contains("script packet:") && err.contains("actual packet:"),
        "{err}"
    );
    assert!(err.contains("> F. 1:1(0) ack 1"), "{err}");
}

#[test]
fn a_wrong_sequence_number_or_ack_fails() {
    let err = run_str("+0 close(4) = 0\n+0 > F. 2:2(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:9: ") && err.contains("tcp_seq: expected: 2 vs actual: 1"),
        "{err}"
    );
    let err = run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 7\n").unwrap_err();
    assert!(
        err.contains("tcp_ack_seq: expected: 7 vs actual: 1"),
        "{err}"
    );
}

#[test]
fn unexpected_and_missing_packets_fail() {
    // close() sends a FIN the script does not expect before its next inbound packet.
    let err = run_str("+0 close(4) = 0\n+.1 < . 1:1(0) ack 2 win 65535\n").unwrap_err();
    assert!(
        err.contains("t.pkt:9: error: unexpected outbound packet"),
        "{err}"
    );
    // A packet the host never sends.
    let err = run_str("+.1 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:8: ") && err.contains("sent nothing"),
        "{err}"
    );
    // A packet left over at the end.
    let err = run_str("+0 close(4) = 0\n").unwrap_err();
    assert!(err.contains("after the last line"), "{err}");
}

#[test]
fn a_wrong_return_value_fails() {
    let err =
        run_str("+0 shutdown(4, SHUT_WR) = 0\n+0 > F. 1:1(0) ack 1\n+0 write(4, ..., 10) = 10\n")
            .unwrap_err();
    assert!(err.contains("t.pkt:10: write() returned -1"), "{err}");
    let err = run_str("+0 accept(3, ..., ...) = 5\n").unwrap_err();
    assert!(err.contains("accept() would block"), "{err}");
}
