//! `teardown script --record OUT IN`: runs a script's inbound packets and
//! system calls against the engine and writes the script that says what the
//! engine did: every packet it sent as a `>` line at its time, every system
//! call with the result it gave. Run the output with `--kernel` and Linux is
//! held to the engine's behaviour line by line; `tests/script_diff.rs` does
//! that for generated scenarios.

use std::fmt::Write as _;
use std::time::Duration;

use super::parse::{Direction, EventKind, Script};
use super::run::{call_line, packet_line, record, Options, Outcome, Recorded};
use teardown_engine::segment::Flags;
use teardown_engine::time::Time;

/// Linux may delay the ACK of a FIN by its delayed-ACK timeout, which starts
/// at 40 ms (`TCP_DELACK_MIN`) and may grow to 200 ms (`TCP_DELACK_MAX`);
/// the engine ACKs at once.
const DELAYABLE_ACK: &str = "+0~+.2";

/// How late Linux may fire a timer the engine fires exactly, as a share of
/// the timer's interval: the timer wheel's 12.5 % (1/8) plus the RTO rounded
/// up to whole jiffies (300 ms is 304 ms at HZ 250: 1/64 covers it), plus a
/// jiffy.
fn linux_timer_slack(interval: Duration) -> Duration {
    interval / 8 + interval / 64 + Duration::from_millis(4)
}

/// The recorded script for `script`, and the run. Time
/// columns are rewritten relative to the line before, so that on a slower
/// stack each line waits for the one before it, as in a hand-written script.
pub fn record_script(script: &Script, opts: &Options) -> (String, Outcome) {
    let (outcome, log) = record(script, opts);
    let mut out = String::from(
        "// Recorded by `teardown script --record`: the engine's packets as `>` lines\n\
         // and its system call results, for `teardown script --kernel`.\n",
    );
    // The options the runner honours, as parsed (others were ignored).
    if let Some(us) = script.tolerance_usecs {
        let _ = writeln!(out, "--tolerance_usecs={us}");
    }
    if let Some(pct) = script.tolerance_percent {
        let _ = writeln!(out, "--tolerance_percent={pct}");
    }
    if script.bind_port_zero {
        let _ = writeln!(out, "--bind_port=0");
    }
    if let Some(tick) = script.ts_tick_usecs {
        let _ = writeln!(out, "--tcp_ts_tick_usecs={tick}");
    }
    // The sysctls, which come first (the runner's rule).
    for ev in &script.events {
        if let EventKind::Sysctl(settings) = &ev.kind {
            let cmds: Vec<String> = settings.iter().map(|s| format!("sysctl -q {s}")).collect();
            let _ = writeln!(out, "0          `{}`", cmds.join("; "));
        }
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
            Recorded::Event {
                index, result, ts, ..
            } => {
                let ev = &script.events[*index];
                // Rebuilt from the parsed event, not copied from the source:
                // the source's spacing and its expected results are not ours,
                // nor its TSecrs (the recording echoes the engine's TSvals).
                let text = match (&ev.kind, result) {
                    (EventKind::Packet(p), _) => {
                        let mut p = p.clone();
                        p.options.ts = *ts;
                        packet_line(&p)
                    }
                    (EventKind::Syscall(c), Some(r)) => call_line(c, r),
                    (EventKind::Syscall(c), None) => call_line(c, &c.ret.to_string()),
                    (EventKind::Sysctl(_), _) => continue,
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
                let opts = match seg.ts {
                    // The engine's TSvals as they are: the first fixes the
                    // offset to the replaying stack's clock.
                    Some(ts) => format!(" <nop,nop,TS val {} ecr {}>", ts.val, ts.ecr),
                    None if seg.flags.syn() => " <...>".to_string(),
                    None => String::new(),
                };
                let _ = writeln!(out, "{when:<10} > {text}{opts}");
                after_fin = false;
            }
        }
    }
    (out, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse;

    #[test]
    fn lines_are_rebuilt_from_the_parse_not_the_source() {
        // No space after the time, and spacing of its own: the recording
        // writes the event as the parser read it.
        let src = "0 `echo 5 > /proc/sys/net/ipv4/tcp_fin_timeout`\n\
                   0socket(..., SOCK_STREAM, IPPROTO_TCP)=3\n+0 bind(3,...,...)=0\n\
                   +0 listen(3, 1)=0\n+0<S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 7>\n";
        let script = parse(src).unwrap();
        let (text, outcome) = record_script(&script, &Options::default());
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert!(
            text.contains("0          socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"),
            "{text}"
        );
        assert!(text.contains("bind(3, ..., ...) = 0\n"), "{text}");
        assert!(
            text.contains("0          `sysctl -q net.ipv4.tcp_fin_timeout=5`\n"),
            "{text}"
        );
        assert!(
            text.contains("< S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 7>\n"),
            "{text}"
        );
        parse(&text).unwrap();
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
        let (text, outcome) = record_script(&script, &Options::default());
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
        assert!(text.contains("+0~+.2     > . 2:2(0) ack 2\n"), "{text}");
        assert!(text.contains("read(4, ..., 10) = 0\n"), "{text}");
        // And it passes as a script of its own.
        let replay = parse(&text).unwrap();
        let out = crate::script::run(&replay, &Options::default());
        assert!(out.failure.is_none(), "{:?}\n{text}", out.failure);
    }
}
