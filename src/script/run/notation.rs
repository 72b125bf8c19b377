//! Segments and script lines written back in packetdrill's notation, for
//! failures, `--verbose` and recordings.

use crate::script::parse::{Direction, PacketSpec, Syscall};
use teardown_engine::segment::Segment;

/// `F. 1:1(0) ack 1`: flags, sequence range, and the ACK when it has one.
pub(super) fn notation(seg: &Segment, seq: u32, ack: u32) -> String {
    let mut s = format!(
        "{:?} {seq}:{}({})",
        seg.flags,
        seq.wrapping_add(seg.len),
        seg.len
    );
    if seg.flags.ack() {
        s += &format!(" ack {ack}");
    }
    s
}

/// A script packet line without its time, options included, as a recording
/// writes it: `< S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,TS val 1 ecr 0,nop,wscale 7>`.
pub fn packet_line(p: &PacketSpec) -> String {
    let o = &p.options;
    let mut opts = Vec::new();
    if let Some(m) = o.mss {
        opts.push(format!("mss {m}"));
    }
    if o.sack_ok {
        opts.push("sackOK".to_string());
    }
    if let Some(ts) = o.ts {
        opts.push(format!("nop,nop,TS val {} ecr {}", ts.val, ts.ecr));
    }
    if let Some(w) = o.wscale {
        opts.push(format!("nop,wscale {w}"));
    }
    let mut s = spec_string(p);
    if o.unchecked {
        s += " <...>";
    } else if !opts.is_empty() {
        s += &format!(" <{}>", opts.join(","));
    }
    s
}

/// A system call line without its time, with `result` as its value:
/// `close(4) = 0`, `read(4, ..., 1000) = -1 ECONNRESET`.
pub fn call_line(c: &Syscall, result: &str) -> String {
    let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
    format!("{}({}) = {result}", c.name, args.join(", "))
}

/// A script packet in packetdrill's notation.
pub(super) fn spec_string(p: &PacketSpec) -> String {
    let mut s = format!(
        "{} {:?} {}:{}({})",
        if p.dir == Direction::Inbound {
            '<'
        } else {
            '>'
        },
        p.flags,
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        s += &format!(" ack {a}");
    }
    if let Some(w) = p.win {
        s += &format!(" win {w}");
    }
    s
}
