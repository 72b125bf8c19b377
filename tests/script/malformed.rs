//! Malformed scripts give a parse error with line and column.

use teardown::script::{self, parse, Options};

#[test]
fn malformed_syntax_gives_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pkt");
    std::fs::write(
        &path,
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 65535 <mss 1460\n",
    )
    .unwrap();
    let err = script::run_file(&path, &Options::default()).error.unwrap();
    assert!(err.contains("bad.pkt:2:"), "{err}");
    assert!(err.contains("parse error"), "{err}");
    let cases = [
        ("+0 < X 0:0(0) win 1\n", "1:6:", "not a TCP flag"),
        ("+0 < S 0:0 win 1\n", "1:12:", "expected '('"),
        ("+0 > S. 0:0(0) ack\n", "1:19:", "expected an ACK number"),
        ("+0 frobnicate(3) = 0\n", "1:4:", "not supported"),
        ("+x close(3) = 0\n", "1:2:", "expected a time"),
        ("+0 < S 0:0(0) win 99999\n", "1:19:", "out of range"),
        // A string escapes no line end: it would have run on uncounted.
        (
            "+0 write(3, \"a\\\nb\", 1) = 1\n",
            "1:13:",
            "unterminated string",
        ),
    ];
    for (src, at, what) in cases {
        let e = parse(src).unwrap_err().to_string();
        assert!(e.starts_with(at) && e.contains(what), "{src:?}: {e}");
    }
}

/// Lengths no segment or system call of a script can carry are refused at
/// their line: a payload past 2^30 bytes or arguments nested past 32 when
/// parsed, a write() or read() of more than 1 MiB when run (the kernel's
/// runner would allocate it).
#[test]
fn absurd_lengths_are_refused_at_their_line() {
    let e = parse("+0 < P. 1:1073741826(1073741825) ack 1 win 1000\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("1:") && e.contains("out of range"), "{e}");
    // Nesting is bounded too: a line of brackets overflowed the stack.
    let deep = format!(
        "+0 close({}{}) = 0\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = parse(&deep).unwrap_err().to_string();
    assert!(e.contains("nested more than 32 deep"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    for call in ["write", "read"] {
        let path = dir.path().join(format!("{call}.pkt"));
        std::fs::write(
            &path,
            format!(
                "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
                 +0 {call}(3, ..., 9223372036854775807) = -1\n"
            ),
        )
        .unwrap();
        let err = script::run_file(&path, &Options::default()).error.unwrap();
        assert!(
            err.contains(&format!("{call}.pkt:2")) && err.contains("outside 0 to 1048576"),
            "{err}"
        );
    }
}
