//! `teardown script --record OUT IN`: runs a script's inbound packets and
//! system calls against the engine and writes the script that says what the
//! engine did: every packet it sent as a `>` line at its time, every system
//! call with the result it gave. Run the output with `--kernel` and Linux is
//! held to the engine's behaviour line by line; `tests/script_diff.rs` does
//! that for generated scenarios.

use std::fmt::Write as _;
use std::time::Duration;

use super::parse::{Direction, EventKind, Script};
use super::run::{record, Options, Outcome, Recorded};
use crate::segment::Flags;
use crate::time::Time;

/// Linux may delay the ACK of a FIN by up to its delayed-ACK timeout (40 ms,
/// `TCP_DELACK_MIN`); the engine ACKs at once.
const DELAYABLE_ACK: &str = "+0~+.04";

/// How late Linux may fire a timer the engine fires exactly, as a share of
/// the timer's interval: the timer wheel's 12.5 % (1/8) plus the RTO rounded
/// up to whole jiffies (300 ms is 304 ms at HZ 250: 1/64 covers it), plus a
/// jiffy.
fn linux_timer_slack(interval: Duration) -> Duration {
    interval / 8 + interval / 64 + Duration::from_millis(4)
}

/// The recorded script for `script` (parsed from `src`), and the run. Time
/// columns are rewritten relative to the line before, so that on a slower
/// stack each line waits for the one before it, as in a hand-written script.
pub fn record_script(src: &str, script: &Script, opts: &Options) -> (String, Outcome) {
    let (outcome, log) = record(script, opts);
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::from(
        "// Recorded by `teardown script --record`: the engine's packets as `>` lines\n\
         // and its system call results, for `teardown script --kernel`.\n",
    );
    for l in lines.iter().filter(|l| l.trim_start().starts_with("--")) {
        out += l;
        out.push('\n');
    }
    let mut prev = Time::ZERO;
    let mut first = true;
    let mut after_fin = false;
    for entry in &log {
        let t = match entry {
            Recorded::Event { t, .. } | Recorded::Sent { t, .. } => *t,
        };
        let delta = t.saturating_sub(prev);
        let when = if first {
            "0".to_string()
        } else if delta.is_zero() {
            "+0".to_string()
        } else {
            format!("+{}", Time::ZERO + delta)
        };
        first = false;
        prev = t;
        match entry {
            Recorded::Event { index, result, .. } => {
                let ev = &script.events[*index];
                let text = lines.get(ev.line - 1).map_or("", |l| strip_time(l));
                let text = match result {
                    Some(r) => with_result(text, r),
                    None => text.to_string(),
                };
                after_fin = matches!(&ev.kind,
                    EventKind::Packet(p) if p.dir == Direction::Inbound && p.flags.fin());
                let _ = writeln!(out, "{when:<10} {text}");
            }
            Recorded::Sent {
                seg, text, timer, ..
            } => {
                let pure_ack = seg.flags == Flags::ACK && seg.len == 0;
                let when = if pure_ack && after_fin && delta.is_zero() {
                    DELAYABLE_ACK.to_string()
                } else if !delta.is_zero() {
                    // Sent on a timer, not in answer to the line before: a
                    // range for Linux's timer slack over the timer's interval.
                    let hi = delta + linux_timer_slack(timer.unwrap_or(delta));
                    format!("+{}~+{}", Time::ZERO + delta, Time::ZERO + hi)
                } else {
                    when
                };
                let opts = if seg.flags.syn() { " <...>" } else { "" };
                let _ = writeln!(out, "{when:<10} > {text}{opts}");
                after_fin = false;
            }
        }
    }
    (out, outcome)
}

/// A script line without its time column.
fn strip_time(line: &str) -> &str {
    let line = line.trim_start();
    line.split_once(char::is_whitespace)
        .map_or(line, |(_, rest)| rest.trim_start())
}

/// A system call line with its `= ...` replaced by `= result`.
fn with_result(call: &str, result: &str) -> String {
    // The call's own closing parenthesis comes before the last top-level '='.
    let body = call.rfind(") =").map_or(call, |i| &call[..=i]);
    format!("{body} = {result}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse;

    #[test]
    fn lines_lose_their_time_and_calls_take_their_result() {
        assert_eq!(strip_time("+.1~+.2  close(4) = 0"), "close(4) = 0");
        assert_eq!(
            strip_time("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3"),
            "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3"
        );
        assert_eq!(
            with_result("read(4, ..., 10) = 10", "-1 ECONNRESET"),
            "read(4, ..., 10) = -1 ECONNRESET"
        );
        assert_eq!(
            with_result(
                "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0",
                "0"
            ),
            "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0"
        );
    }

    #[test]
    fn a_recording_replays_and_says_what_the_engine_sent() {
        let src = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
                   +0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n\
                   +0 < S 0:0(0) win 65535 <mss 1460>\n\
                   +.1 < . 1:1(0) ack 1 win 65535\n+0 accept(3, ..., ...) = 4\n\
                   +0 shutdown(4, SHUT_WR) = 0\n+.5 < F. 1:1(0) ack 2 win 65535\n\
                   +0 read(4, ..., 10) = 99\n";
        let script = parse(src).unwrap();
        let (text, outcome) = record_script(src, &script, &Options::default());
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        // The SYN-ACK, the FIN and its first retransmission after 300 ms, the
        // ACK of the peer's FIN; the read's real result (end of stream).
        assert!(text.contains("> S. 0:0(0) ack 1 <...>"), "{text}");
        assert!(text.contains("+0         > F. 1:1(0) ack 1\n"), "{text}");
        // 300 ms after the FIN, up to 12.5 % + 1/64 + 4 ms late on Linux.
        assert!(
            text.contains("+0.300000~+0.346187 > F. 1:1(0) ack 1\n"),
            "{text}"
        );
        assert!(text.contains("+0~+.04    > . 2:2(0) ack 2\n"), "{text}");
        assert!(text.contains("read(4, ..., 10) = 0\n"), "{text}");
        // And it passes as a script of its own.
        let replay = parse(&text).unwrap();
        let out = crate::script::run(&replay, &Options::default());
        assert!(out.failure.is_none(), "{:?}\n{text}", out.failure);
    }
}
