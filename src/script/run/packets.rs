//! Segments: an inbound line injected with its sequence numbers and TSecr
//! mapped to the live connection, an outbound line matched field by field
//! (and in time) against the next segment the stack sent.

use std::time::Duration;

use super::notation::{notation, spec_string};
use super::{secs, Recorded, Runner, Traced};
use crate::script::parse::{Direction, Event, PacketSpec};
use crate::script::stack::{fail, Failure, Stack};
use teardown_engine::segment::{Flags, Segment, Ts};
use teardown_engine::time::Time;

impl<S: Stack> Runner<'_, S> {
    pub(super) fn inbound(&mut self, line: usize, p: &PacketSpec) -> Result<(), Failure> {
        let syn = p.flags.syn();
        if syn {
            self.remote_isn.get_or_insert(p.seq);
        }
        let seq = if syn {
            p.seq
        } else {
            p.seq.wrapping_add(self.remote_isn.unwrap_or(0))
        };
        let ack = p.ack.map_or(0, |a| match self.local_isn {
            Some((live, script)) if syn => a.wrapping_add(live.wrapping_sub(script)),
            Some((live, _)) => a.wrapping_add(live),
            None => a,
        });
        let t = self.tuple;
        let seg = Segment {
            src_ip: t.remote_ip,
            dst_ip: t.local_ip,
            src_port: t.remote_port,
            dst_port: t.local_port,
            seq,
            ack,
            len: p.len,
            wnd: p.win.unwrap_or(0),
            flags: p.flags,
            // TSval is the script's peer clock, as written; TSecr echoes ours.
            ts: p.options.ts.map(|ts| Ts {
                val: ts.val,
                ecr: match self.last_ts_sent {
                    Some(latest) if self.record.is_some() && !syn => latest,
                    _ => self.live_echo(ts.ecr),
                },
            }),
        };
        if let Some(Some(Recorded::Event { ts, .. })) =
            self.record.as_deref_mut().map(|log| log.last_mut())
        {
            *ts = seg.ts;
        }
        let now = self.now();
        if self.opts.verbose {
            println!("{}", self.dump(now, Direction::Inbound, &seg));
        }
        self.trace.push(Traced {
            t: now,
            dir: Direction::Inbound,
            seg,
        });
        self.stack
            .inject(&seg, &p.options)
            .map_err(|e| fail(line, format!("error injecting packet: {e}")))?;
        self.advance(now, false);
        Ok(())
    }

    pub(super) fn outbound(
        &mut self,
        ev: &Event,
        p: &PacketSpec,
    ) -> Result<Option<(Time, Time)>, Failure> {
        let window = self.window(ev)?;
        let tol = window.map_or(Duration::ZERO, |(lo, _)| self.tolerance(lo));
        let late = self.stack.late_search();
        if self.queue.is_empty() {
            let until = window.map_or(self.now() + late, |(_, hi)| hi + tol);
            self.advance(until, true);
        }
        if self.queue.is_empty() {
            // Look further, to say when the packet did come, if ever.
            let until = self.now() + late;
            self.advance(until, true);
        }
        let Some((te, seg)) = self.queue.pop_front() else {
            return Err(fail(
                ev.line,
                format!(
                    "error handling packet: expected outbound packet {} but the host sent \
                     nothing (looked {} s past the expected time)\nscript packet: {}",
                    window.map_or("at any time".to_string(), |(lo, _)| format!(
                        "at {} sec",
                        secs(lo)
                    )),
                    late.as_secs_f64(),
                    spec_string(p)
                ),
            ));
        };
        if seg.flags.syn() && self.local_isn.is_none() {
            self.local_isn = Some((seg.seq, p.seq));
        }
        if self.opts.verbose {
            println!("{}", self.dump(te, Direction::Outbound, &seg));
        }
        let (seq, ack) = self.outbound_to_script(&seg);
        let fields = [
            ("tcp_fin", p.flags.fin() as u32, seg.flags.fin() as u32),
            ("tcp_syn", p.flags.syn() as u32, seg.flags.syn() as u32),
            ("tcp_rst", p.flags.rst() as u32, seg.flags.rst() as u32),
            (
                "tcp_psh",
                p.flags.contains(Flags::PSH) as u32,
                seg.flags.contains(Flags::PSH) as u32,
            ),
            ("tcp_ack", p.flags.ack() as u32, seg.flags.ack() as u32),
            ("tcp_seq", p.seq, seq),
            ("tcp_payload_len", p.len, seg.len),
            (
                "tcp_ack_seq",
                p.ack.unwrap_or(0),
                if seg.flags.ack() { ack } else { 0 },
            ),
        ];
        let mismatch = fields
            .into_iter()
            .chain(p.win.map(|w| ("tcp_window", w as u32, seg.wnd as u32)))
            .find(|(_, want, got)| want != got);
        let width = window.map_or(Duration::ZERO, |(lo, hi)| hi - lo);
        let ts_mismatch = self.check_ts(p, &seg, tol, width);
        let detail = |msg: String| {
            format!(
                "error handling packet: {msg}\nscript packet: {:>10} {}\nactual packet: {}",
                window.map_or("*".to_string(), |(lo, _)| secs(lo)),
                spec_string(p),
                self.dump(te, Direction::Outbound, &seg)
            )
        };
        if let Some((name, want, got)) = mismatch {
            return Err(fail(
                ev.line,
                detail(format!(
                    "live packet field {name}: expected: {want} vs actual: {got}"
                )),
            ));
        }
        if let Some(msg) = ts_mismatch {
            return Err(fail(ev.line, detail(msg)));
        }
        if let Some((lo, hi)) = window {
            let early = te + tol < lo;
            let late = te > hi + tol;
            if early || late {
                let expected = if lo == hi {
                    format!("at {} sec", secs(lo))
                } else {
                    format!("in time range {}~{} sec", secs(lo), secs(hi))
                };
                return Err(fail(
                    ev.line,
                    detail(format!(
                        "timing error: expected outbound packet {expected} but happened at {} sec; \
                         tolerance {} sec",
                        secs(te),
                        secs(Time::ZERO + tol)
                    )),
                ));
            }
        }
        Ok(window)
    }

    /// The timestamps option of an outbound segment against the script's
    /// (unless it wrote `<...>`): present on both or neither; TSecr equal
    /// (packetdrill does not check it); TSval, mapped to script time by the
    /// previous one, within the timing tolerance when `--tcp_ts_tick_usecs`
    /// is given (packetdrill's rule, but packetdrill maps by the first one
    /// only; here a line with a time range `lo~hi` also takes the TSval of any
    /// time in it, `width`).
    fn check_ts(
        &mut self,
        p: &PacketSpec,
        seg: &Segment,
        tol: Duration,
        width: Duration,
    ) -> Option<String> {
        if p.options.unchecked {
            if let (Some(live), Some(script), None) = (seg.ts, p.options.ts, self.ts_offset) {
                self.ts_offset = Some(live.val.wrapping_sub(script.val));
                self.ts_sent.push((script.val, live.val));
            }
            return None;
        }
        let (live, script) = match (seg.ts, p.options.ts) {
            (None, None) => return None,
            (Some(live), Some(script)) => (live, script),
            (live, script) => {
                return Some(format!(
                    "live packet TCP timestamps option: expected: {} vs actual: {}",
                    if script.is_some() {
                        "present"
                    } else {
                        "absent"
                    },
                    if live.is_some() { "present" } else { "absent" },
                ))
            }
        };
        let offset = *self
            .ts_offset
            .get_or_insert(live.val.wrapping_sub(script.val));
        // Inbound TSvals go in as written, so the echo of one is unmapped.
        if live.ecr != script.ecr {
            return Some(format!(
                "live packet field tcp_ts_ecr: expected: {} vs actual: {}",
                script.ecr, live.ecr
            ));
        }
        let mapped = live.val.wrapping_sub(offset);
        let ahead = mapped.wrapping_sub(script.val) as i32 as i64;
        // The next lines are timed from when this one happened, and so are
        // their TSvals: re-anchor (packetdrill keeps the first offset, so
        // that lateness within tolerances adds up). Events that ran late
        // since then (an injection on a busy machine) make TSvals late too.
        self.ts_offset = Some(live.val.wrapping_sub(script.val));
        self.ts_sent.push((script.val, live.val));
        let late = std::mem::take(&mut self.ts_slack);
        match self.ts_tick_usecs {
            Some(tick)
                if ahead * (tick as i64) < -(tol.as_micros() as i64)
                    || ahead * (tick as i64) > (tol + width + late).as_micros() as i64 =>
            {
                Some(format!(
                    "bad outbound TCP timestamp value: expected: {} vs actual: {mapped}",
                    script.val
                ))
            }
            _ => None,
        }
    }

    /// The live TSecr of an inbound segment whose script TSecr is `ecr`:
    /// the live TSval of the latest outbound segment the script gave that
    /// TSval, else `ecr` shifted by the latest offset (a value the host
    /// never sent, as a script that tests the echo's range writes).
    fn live_echo(&self, ecr: u32) -> u32 {
        match self
            .ts_sent
            .iter()
            .rev()
            .find(|&&(script, _)| script == ecr)
        {
            Some(&(_, live)) => live,
            None => ecr.wrapping_add(self.ts_offset.unwrap_or(0)),
        }
    }

    /// Live to script sequence space: packetdrill's mapping (SYNs absolute,
    /// everything else relative to the ISNs).
    fn outbound_to_script(&self, seg: &Segment) -> (u32, u32) {
        let syn = seg.flags.syn();
        let seq = match self.local_isn {
            Some((live, script)) if syn => seg.seq.wrapping_sub(live).wrapping_add(script),
            Some((live, _)) => seg.seq.wrapping_sub(live),
            None => seg.seq,
        };
        let ack = if syn {
            seg.ack
        } else {
            seg.ack.wrapping_sub(self.remote_isn.unwrap_or(0))
        };
        (seq, ack)
    }

    /// A segment in script notation, with its time and direction.
    pub(super) fn dump(&self, t: Time, dir: Direction, seg: &Segment) -> String {
        let syn = seg.flags.syn();
        let (seq, ack) = match dir {
            Direction::Outbound => self.outbound_to_script(seg),
            Direction::Inbound => {
                let seq = if syn {
                    seg.seq
                } else {
                    seg.seq.wrapping_sub(self.remote_isn.unwrap_or(0))
                };
                let ack = match self.local_isn {
                    Some((live, script)) if syn => seg.ack.wrapping_sub(live.wrapping_sub(script)),
                    Some((live, _)) => seg.ack.wrapping_sub(live),
                    None => seg.ack,
                };
                (seq, ack)
            }
        };
        let arrow = if dir == Direction::Inbound { '<' } else { '>' };
        format!(
            "{:>10} {arrow} {} win {}",
            secs(t),
            notation(seg, seq, ack),
            seg.wnd
        )
    }

    /// An outbound segment in script notation, without time or window.
    pub(super) fn packet_text(&self, seg: &Segment) -> String {
        let (seq, ack) = self.outbound_to_script(seg);
        notation(seg, seq, ack)
    }
}
