//! A shard's application timers: the next scheduled open, tw-fill's
//! close-all, the next delayed close, the next attack segment and the idle
//! sweep.
//!
//! The shard asks for its next event after every event it handles, and these
//! timers are part of that minimum, but they change only a few times a
//! connection at most: so the earliest of them is worked out when one is set,
//! not on every ask.

use teardown_engine::time::Time;

use super::micros_or_never as us;

#[derive(Debug)]
pub(super) struct AppTimers {
    open: Option<Time>,
    close_all: Option<Time>,
    /// The first of the passive closers' delayed closes (`--close-delay`).
    close: Option<Time>,
    attack: Option<Time>,
    sweep: Option<Time>,
    /// µs of the open (or, with none, the close-all) and the attack, whichever
    /// is earlier: the timers whose absence can end a shard.
    work_us: u64,
    sweep_us: u64,
}

impl AppTimers {
    pub(super) fn new(open: Option<Time>, attack: Option<Time>, sweep: Option<Time>) -> Self {
        let mut a = AppTimers {
            open,
            close_all: None,
            close: None,
            attack,
            sweep,
            work_us: 0,
            sweep_us: 0,
        };
        a.update();
        a
    }

    fn update(&mut self) {
        self.work_us = us(self.open.or(self.close_all))
            .min(us(self.attack))
            .min(us(self.close));
        self.sweep_us = us(self.sweep);
    }

    /// µs of the earliest open, close-all, delayed close or attack
    /// (`u64::MAX`: none).
    #[inline]
    pub(super) fn work_us(&self) -> u64 {
        self.work_us
    }

    /// µs of the next sweep (`u64::MAX`: none).
    #[inline]
    pub(super) fn sweep_us(&self) -> u64 {
        self.sweep_us
    }

    pub(super) fn open(&self) -> Option<Time> {
        self.open
    }

    pub(super) fn attack(&self) -> Option<Time> {
        self.attack
    }

    pub(super) fn close(&self) -> Option<Time> {
        self.close
    }

    pub(super) fn set_close(&mut self, t: Option<Time>) {
        self.close = t;
        self.update();
    }

    pub(super) fn set_open(&mut self, t: Option<Time>) {
        self.open = t;
        self.update();
    }

    pub(super) fn set_close_all(&mut self, t: Option<Time>) {
        self.close_all = t;
        self.update();
    }

    pub(super) fn set_attack(&mut self, t: Option<Time>) {
        self.attack = t;
        self.update();
    }

    pub(super) fn set_sweep(&mut self, t: Option<Time>) {
        self.sweep = t;
        self.update();
    }

    /// Arms the sweep at `t` unless it is armed already.
    #[inline]
    pub(super) fn arm_sweep(&mut self, t: impl FnOnce() -> Time) {
        if self.sweep.is_none() {
            self.set_sweep(Some(t()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Option<Time> {
        Some(Time::from_micros(us))
    }

    /// The cached minima follow every setter; an open hides the close-all,
    /// as `next_event` always read them.
    #[test]
    fn the_minima_follow_every_change() {
        let mut a = AppTimers::new(None, None, None);
        assert_eq!((a.work_us(), a.sweep_us()), (u64::MAX, u64::MAX));
        a.set_close_all(at(50));
        assert_eq!(a.work_us(), 50);
        a.set_open(at(70));
        assert_eq!(a.work_us(), 70, "an open hides the close-all");
        a.set_attack(at(60));
        assert_eq!(a.work_us(), 60);
        a.set_close(at(55));
        assert_eq!(a.work_us(), 55);
        a.set_open(None);
        a.set_attack(None);
        assert_eq!(a.work_us(), 50);
        a.set_close(at(40));
        assert_eq!(a.work_us(), 40, "a delayed close is never hidden");
        a.set_close(None);
        a.arm_sweep(|| Time::from_micros(9));
        a.arm_sweep(|| Time::from_micros(5));
        assert_eq!(a.sweep_us(), 9, "an armed sweep stays");
        a.set_sweep(None);
        assert_eq!(a.sweep_us(), u64::MAX);
        assert_eq!((a.open(), a.attack()), (None, None));
    }
}
