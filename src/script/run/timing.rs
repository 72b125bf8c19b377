//! When an event is due: its window from the script's absolute or relative
//! time, the clock brought to it, and packetdrill's timing tolerance.

use std::time::Duration;

use super::{is_inbound, secs, Runner};
use crate::script::parse::{Event, When};
use crate::script::stack::{fail, Failure, Stack};
use teardown_engine::time::Time;

impl<S: Stack> Runner<'_, S> {
    /// packetdrill's `verify_time`: the larger of the fixed tolerance and
    /// the relative one, a share of the time since the previous event was due.
    pub(super) fn tolerance(&self, due: Time) -> Duration {
        let fixed = Duration::from_micros(self.opts.tolerance_us);
        let Some((last, _)) = self.last_event else {
            return fixed;
        };
        let delta = due.saturating_sub(last).as_micros() as f64;
        let relative = (delta * self.opts.tolerance_percent / 100.0) as u64;
        fixed.max(Duration::from_micros(relative))
    }

    /// The window `[lo, hi]` in which event `ev` is due (None for `*`).
    pub(super) fn window(&mut self, ev: &Event) -> Result<Option<(Time, Time)>, Failure> {
        match ev.when {
            When::Any => Ok(None),
            When::At {
                relative,
                start,
                end,
            } => {
                let base = if relative {
                    match self.last_event {
                        Some((due, true)) if is_inbound(ev) => due.as_micros(),
                        _ => self.now().as_micros(),
                    }
                } else {
                    if start < self.last_absolute {
                        return Err(fail(
                            ev.line,
                            format!(
                                "time goes backward in script from {} usec to {start} usec",
                                self.last_absolute
                            ),
                        ));
                    }
                    self.last_absolute = start;
                    0
                };
                let at = |t: u64| {
                    base.checked_add(t).map(Time::from_micros).ok_or_else(|| {
                        fail(ev.line, "time overflows: the script runs past 2^64 usec")
                    })
                };
                Ok(Some((at(start)?, at(end.unwrap_or(start))?)))
            }
        }
    }

    /// Brings the clock to an inbound packet's or a system call's time; the
    /// stack must send nothing the script did not expect meanwhile.
    pub(super) fn arrive_at(&mut self, ev: &Event) -> Result<Option<(Time, Time)>, Failure> {
        let window = self.window(ev)?;
        let before = self.now();
        // Injecting an inbound packet is the runner's own work: time it took
        // (the runner's thread descheduled mid-write) is the runner falling
        // behind, even when it shows only at the next line.
        let after_inbound = matches!(self.last_event, Some((_, true)));
        let t = window.map_or(before, |(lo, _)| lo.max(before));
        self.unexpected(ev.line)?;
        self.advance(t, true);
        self.unexpected(ev.line)?;
        if let Some((lo, hi)) = window {
            let now = self.now();
            let limit = hi + self.tolerance(lo);
            if now > limit {
                return Err(Failure {
                    // Only if the time was still to come, or the runner took
                    // it past while injecting the line before: an earlier
                    // line that waited (for a packet, or a blocking call)
                    // and took the clock past it is the script's or the
                    // stack's doing.
                    runner_late: before <= limit || after_inbound,
                    ..fail(
                        ev.line,
                        format!(
                            "timing error: expected event at {} sec but it could only run at {} sec",
                            secs(hi),
                            secs(now)
                        ),
                    )
                });
            }
        }
        Ok(window)
    }

    /// How late an event was done after its window opened: the local host's
    /// next TSvals may be that much later than the script's.
    pub(super) fn note_lateness(&mut self, window: Option<(Time, Time)>) {
        if let Some((lo, _)) = window {
            self.ts_slack += self.now().saturating_sub(lo);
        }
    }
}
