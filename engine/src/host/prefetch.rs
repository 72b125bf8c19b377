//! Hints for an application's calls to come. A driver that knows what it
//! will ask of the host next names it early, and the lines that call would
//! miss are on their way while the driver does other work, as
//! [`Host::prefetch`] does for segments still in a queue.
//!
//! A hint changes nothing but the cache: a wrong guess costs its hashing,
//! and a table small enough to stay in cache is not hinted at all, unless
//! the driver says its thread's working set (many such tables) is not.

use super::{Host, Prefetch};
use crate::index::prefetch_line;
use crate::ports::BindMode;
use crate::tuple::Tuple;

/// Entries from which a table's slab (64 B each) outgrows a 2 MiB L2: below
/// this, hints only cost their hashing.
pub(super) const FROM: usize = 1 << 15;

impl Host {
    /// Whether hints are taken whatever this table's size (`true`), or only
    /// from `FROM` entries (`false`, the default). A table is the wrong
    /// unit when one thread holds many: the simulator's 64 shards of 31 k
    /// connections each fit in cache alone but not together, and only the
    /// driver knows that.
    pub fn set_prefetch(&mut self, always: bool) {
        self.prefetch_from = if always { 0 } else { FROM };
    }

    /// Whether [`Host::set_prefetch`] turned hints on whatever the size (for
    /// a driver's tests: the simulator's gate checks its hosts with it).
    pub fn prefetches_always(&self) -> bool {
        self.prefetch_from == 0
    }

    /// Whether this host takes hints now: its table or its driver's working
    /// set outgrows the cache.
    #[inline(always)]
    pub(super) fn hinted(&self) -> bool {
        self.table.len() >= self.prefetch_from
    }

    /// A hint that `connect_ephemeral(_, local_ip, remote_ip, remote_port,
    /// mode)` comes soon from `local_ip`, in two steps a connect or so apart,
    /// as [`Host::prefetch`] takes for a segment: [`Prefetch::Bucket`] asks
    /// for the line of port buckets where its search starts;
    /// [`Prefetch::Entry`] then walks those buckets to the port the search
    /// will take (`Host::guess_port`) and asks for the index bucket the
    /// new entry goes in. With a million entries both are cold lines of each
    /// connect, which no segment names ahead (the tuple is the port search's
    /// result); a walk without the first step waited for its line (81 % of
    /// its samples on that load), and a guess of the scan's first port
    /// missed most connects once ports filled up. Only `BindMode::NoPort`
    /// is guessed.
    #[inline]
    pub fn prefetch_connect(
        &self,
        local_ip: u32,
        remote_ip: u32,
        remote_port: u16,
        mode: BindMode,
        step: Prefetch,
    ) {
        if mode != BindMode::NoPort || !self.hinted() {
            return;
        }
        match step {
            Prefetch::Bucket => {
                if let Some(offset) = self.ports.peek_start(local_ip, remote_ip, remote_port) {
                    let local_port = self.ports.low() + offset as u16;
                    self.prefetch_port(&Tuple {
                        local_ip,
                        remote_ip,
                        local_port,
                        remote_port,
                    });
                }
            }
            Prefetch::Entry => {
                if let Some(local_port) = self.guess_port(local_ip, remote_ip, remote_port) {
                    self.table.prefetch_bucket(&Tuple {
                        local_ip,
                        remote_ip,
                        local_port,
                        remote_port,
                    });
                }
            }
        }
    }

    /// A hint that an application's call on `tuple` (close, send, abort)
    /// comes a few calls from now: the two steps [`Host::prefetch`] takes for
    /// a segment still in a queue, for a driver that knows its calls ahead
    /// (a server closing the oldest of the connections it keeps).
    #[inline]
    pub fn prefetch_call(&self, tuple: &Tuple, step: Prefetch) {
        if !self.hinted() {
            return;
        }
        match step {
            Prefetch::Bucket => self.table.prefetch_bucket(tuple),
            Prefetch::Entry => self.table.prefetch_entry(tuple),
        }
    }

    /// The bucket of `tuple`'s local port when it is an ephemeral one: the
    /// port search reads it, and the close that ends the entry writes it
    /// (`Ports::release`), on a client with a million connections as cold
    /// a line as the entry. Nothing for a listener's port, below the range.
    #[inline]
    pub(super) fn prefetch_port(&self, tuple: &Tuple) {
        let Some(port) = tuple.local_port.checked_sub(self.ports.low()) else {
            return;
        };
        let buckets = self.ports.buckets(tuple.local_ip);
        if let Some(bucket) = buckets.and_then(|b| b.get(usize::from(port))) {
            prefetch_line(bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Flags, Segment, Time};

    const LOCAL: u32 = 0x0a00_0002;
    const SERVER: u32 = 0x0a00_0001;

    /// The guessed port is the one the next connect to the first destination
    /// takes, also once ports are taken (none before a destination's first search),
    /// and a hint leaves the host as it was: the same connects follow, from
    /// the first (hints forced on) to past the size hinted by default.
    #[test]
    fn the_guess_is_the_next_connects_port_and_changes_nothing() {
        let (mut hinted, mut plain) = (Host::new(Config::default()), Host::new(Config::default()));
        // Hinted from the first entry, as a driver with many tables asks.
        hinted.set_prefetch(true);
        assert!(hinted.prefetches_always() && !plain.prefetches_always());
        for n in 0..FROM as u32 + 200 {
            let (local, port) = (LOCAL + n % 3, 80 + (n % 2) as u16);
            let guess = hinted.guess_port(local, SERVER, port);
            for step in [Prefetch::Bucket, Prefetch::Entry] {
                hinted.prefetch_connect(local, SERVER, port, BindMode::NoPort, step);
            }
            let now = Time::from_millis(u64::from(n));
            let got = hinted.connect_ephemeral(now, local, SERVER, port, BindMode::NoPort);
            let want = plain.connect_ephemeral(now, local, SERVER, port, BindMode::NoPort);
            let (got, want) = (got.expect("a port"), want.expect("a port"));
            assert_eq!((got.tuple, got.probed), (want.tuple, want.probed));
            if n < 6 {
                assert_eq!(guess, None, "no search to this destination yet");
            } else if port == 80 {
                // The first destination: its walk needs no table lookup.
                assert_eq!(guess, Some(got.tuple.local_port), "connect {n}");
            }
            assert_eq!(hinted.transmits().next(), plain.transmits().next());
        }
        assert_eq!(hinted.len(), plain.len());
        assert!(hinted.len() > FROM);
        // A pure ACK's hint also names its port's bucket; it too changes
        // nothing, for a tuple held or not, nor does a call's.
        let held = Tuple::new([10, 0, 0, 2], 40_000, [10, 0, 0, 1], 80);
        for local_port in [40_000, 33_333] {
            let t = Tuple { local_port, ..held };
            let ack = Segment::new(&t.reversed(), Flags::ACK, 1, 1, 0, 1000);
            let before = hinted.state(&t);
            hinted.prefetch(&ack, Prefetch::Bucket);
            hinted.prefetch(&ack, Prefetch::Entry);
            hinted.prefetch_call(&t, Prefetch::Bucket);
            hinted.prefetch_call(&t, Prefetch::Entry);
            assert_eq!(hinted.state(&t), before);
        }
        assert_eq!(hinted.len(), plain.len());
    }
}
