//! The server application a worker runs on its host: `--close server`
//! closes once the handshake is done, at once, after `--hold`, or once
//! `--keep` newer connections are held; a peer's FIN is answered with a
//! close; and every connection's end is counted by its reason.

use teardown_engine::driver::prefetch_calls;
use teardown_engine::host::Event;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

use super::Worker;
use crate::service::CloseMode;

impl Worker {
    /// The server application: close first after the handshake (`--close
    /// server`), close on the peer's FIN, count how connections ended.
    pub(super) fn app(&mut self, now: Time) {
        loop {
            // Events the handlers cause come in the next round.
            self.host.swap_events(&mut self.scratch);
            if self.scratch.is_empty() {
                return;
            }
            for i in 0..self.scratch.len() {
                match self.scratch[i] {
                    Event::Established { tuple } if self.close == CloseMode::Server => {
                        self.hold_or_close(now, tuple)
                    }
                    Event::PeerClosed { tuple } => {
                        let _ = self.host.close(now, tuple);
                    }
                    Event::Closed { reason, .. } => self.closed[reason.index()] += 1,
                    _ => {}
                }
            }
        }
    }

    /// When the oldest held connection is due to close: `--hold` after it was
    /// established; never while `--keep` alone holds it.
    pub(super) fn next_held_close(&self) -> Option<Time> {
        let (since, _) = self.held.front()?;
        (self.keep.is_none() || !self.hold.is_zero()).then(|| *since + self.hold)
    }

    /// `--close server`: closes at once, or holds for `--hold`, or keeps it
    /// and closes the oldest held one past `--keep`. After the release, one
    /// established late (its handshake retransmitted) is no part of the
    /// backlog being paced out, and without `--hold` closes at once: held
    /// for the pace, it only lengthened the run's tail.
    fn hold_or_close(&mut self, now: Time, tuple: Tuple) {
        if self.hold_flag.is_zero() && self.keep.is_none() {
            let _ = self.host.close(now, tuple);
            return;
        }
        self.held.push_back((now, tuple));
        // One in, so at most one out.
        if self.held.len() > self.keep.unwrap_or(usize::MAX) {
            if let Some((since, oldest)) = self.held.pop_front() {
                self.kept_for = now.saturating_sub(since);
                self.prefetch_held();
                // It may have closed meanwhile (an RST).
                let _ = self.host.close(now, oldest);
            }
        }
    }

    /// Hints the table that the held connections next in line are about to
    /// be closed. They were established up to a million connections ago, so
    /// each close would otherwise wait on two cache misses (index bucket,
    /// then entry); asked for a few closes ahead, as `handle_burst` does for
    /// arriving segments, the misses overlap the closes before them.
    pub(super) fn prefetch_held(&self) {
        // The front is closed next: index k is k + 1 closes away.
        prefetch_calls(&self.host, |k| self.held.get(k - 1).map(|h| h.1));
    }
}
