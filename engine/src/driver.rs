//! The driver loop every caller of [`Host`] needs: move the clock to the next
//! timer deadline, fire it, drain what it produced, repeat until a target time.
//!
//! Written once here because its rules are easy to get subtly wrong:
//!
//! - **Never early.** A timer fires at an instant no earlier than its deadline;
//!   one whose deadline has already passed fires at the driver's current time
//!   (late, as a real clock makes it), never back in the past.
//! - **Time order.** Each due instant is fired on its own, so the driver can take
//!   the transmits and events of one instant before the clock moves on (a
//!   retransmission is stamped with the instant it left, not the target time).
//! - **Progress.** [`Host::poll_timeout`] may answer earlier than the real next
//!   deadline (a wheel slot boundary, or the host's own latest time): firing
//!   there only advances the wheel. If it then answers the instant just fired
//!   again, nothing more is due at that instant and the walk stops, rather than
//!   spinning.
//!
//! [`Advance`] steps rather than takes a callback: each driver drains into its
//! own state (link queues, accept queues, an application), which it could not
//! lend to a closure while its host is borrowed. The shape is the engine's own
//! `poll_*` style: call [`Advance::fire`] until it says `None`, handling each
//! instant in between, then [`Advance::finish`].
//!
//! ```
//! # use teardown_engine::{driver::Advance, Config, Host, Time, Tuple};
//! let mut host = Host::new(Config::default());
//! let t = Tuple::new([10, 0, 0, 2], 40_000, [10, 0, 0, 1], 80);
//! host.connect(Time::ZERO, t).unwrap();
//! host.transmits().for_each(drop); // the SYN
//! let mut clock = Advance::new(Time::ZERO, Time::from_millis(2_500));
//! let mut fired = Vec::new();
//! while let Some(at) = clock.fire(&mut [&mut host]) {
//!     // Drain each instant's batch (empty where the wheel only advanced).
//!     let sent = host.transmits().count();
//!     if sent > 0 {
//!         fired.push((at, sent));
//!     }
//! }
//! assert_eq!(clock.finish(&mut [&mut host]), Time::from_millis(2_500));
//! // The SYN went again after 1 s, then 1 s later (Linux's
//! // tcp_syn_linear_timeouts: four retransmissions before the RTO doubles).
//! assert_eq!(fired, [(Time::from_millis(1_000), 1), (Time::from_millis(2_000), 1)]);
//! ```

use crate::host::{Host, Prefetch};
use crate::segment::Segment;
use crate::time::Time;
use crate::tuple::Tuple;

/// How far ahead of the segment being handled a driver that sees its queue
/// asks for the index bucket ([`Prefetch::Bucket`]) and then the entry
/// ([`Prefetch::Entry`]) of a segment to come: far enough that a miss
/// (~100 ns) overlaps a segment's work, near enough that the lines are still
/// in L1 when it is handled.
pub const BUCKET_AHEAD: usize = 4;
/// See [`BUCKET_AHEAD`].
pub const ENTRY_AHEAD: usize = 2;

/// Asks for the cache line of `p`, the driver's own state for a segment or
/// call to come (a flags byte, a counter), when it prefetches the host's with
/// [`Host::prefetch`]: with a million connections such per-connection arrays
/// outgrow the cache as the table does. Changes nothing but the cache.
#[inline]
pub fn prefetch<T>(p: &T) {
    crate::index::prefetch_line(p);
}

/// Handles `segs`, which all arrived at `now` (one datagram's records), in
/// order, as DPDK's `rte_hash_lookup_bulk` and VPP's vectors do: while one
/// segment is processed, the index bucket of the one [`BUCKET_AHEAD`] places
/// on and the entry of the one [`ENTRY_AHEAD`] on are already on their way.
/// With a million entries resident those two misses are most of a segment's
/// cost. The result is exactly that of `handle` on each in turn.
pub fn handle_burst(host: &mut Host, now: Time, segs: &[Segment]) {
    for seg in segs.iter().take(BUCKET_AHEAD) {
        host.prefetch(seg, Prefetch::Bucket);
    }
    for (i, seg) in segs.iter().enumerate() {
        prefetch_segments(host, |k| segs.get(i + k));
        host.handle(now, seg);
    }
}

/// The look-ahead of [`handle_burst`], for a driver whose segments to come
/// lie elsewhere (a replay's recorded inputs): the index bucket of the
/// segment [`BUCKET_AHEAD`] on and the entry of the one [`ENTRY_AHEAD`] on,
/// `seg_at(k)` naming the segment `k` on (None: no segment there). Changes
/// nothing but the cache.
#[inline(always)]
pub fn prefetch_segments<'s>(host: &Host, seg_at: impl Fn(usize) -> Option<&'s Segment>) {
    if let Some(seg) = seg_at(BUCKET_AHEAD) {
        host.prefetch(seg, Prefetch::Bucket);
    }
    if let Some(seg) = seg_at(ENTRY_AHEAD) {
        host.prefetch(seg, Prefetch::Entry);
    }
}

/// Asks `host` ahead for what the application calls to come will touch, as
/// [`handle_burst`] does for segments: the index bucket of the call
/// [`BUCKET_AHEAD`] calls from now and the entry of the one [`ENTRY_AHEAD`]
/// from now. `tuple_at(k)` names the tuple of the call `k` calls from now
/// (1: the next), None past the calls known. For a driver that knows its
/// calls ahead (a server closing the oldest connections it holds, or all
/// of them in turn). Changes nothing but the cache.
#[inline]
pub fn prefetch_calls(host: &Host, tuple_at: impl Fn(usize) -> Option<Tuple>) {
    if let Some(t) = tuple_at(BUCKET_AHEAD) {
        host.prefetch_call(&t, Prefetch::Bucket);
    }
    if let Some(t) = tuple_at(ENTRY_AHEAD) {
        host.prefetch_call(&t, Prefetch::Entry);
    }
}

/// A walk of one or more hosts' timers from `now` to `until`.
///
/// Hosts driven together (two ends of a link) share one walk so that their
/// timers fire in one time order. Give every call the same hosts.
///
/// A walk with `until == now` fires at most once: whatever is due, at `now`.
/// That is one step of an event loop that interleaves other sources (the
/// simulator's link, a property test's wire) and a real-time driver's tick.
#[derive(Debug, Clone, Copy)]
#[must_use = "an Advance fires nothing until `fire` or `finish` is called"]
pub struct Advance {
    now: Time,
    until: Time,
    /// The instant the last `fire` fired at.
    fired: Option<Time>,
}

impl Advance {
    /// A walk from the driver's clock `now` to `until`. A target already
    /// passed is `now`: time never goes back.
    pub fn new(now: Time, until: Time) -> Advance {
        Advance {
            now,
            until: until.max(now),
            fired: None,
        }
    }

    /// The instant the walk has reached.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Fires the hosts' earliest due timer instant, if there is one by the
    /// target: every host with work by then gets `handle_timeout` at that
    /// instant (its deadline, or the walk's clock if that has passed it).
    /// Returns the instant, for the caller to drain the hosts' transmits and
    /// events at (nothing, where a host's wheel only advanced); `None` once
    /// nothing more is due by the target, or nothing more at the instant just
    /// fired.
    #[must_use = "drain the hosts after each instant fired, or call `finish`"]
    pub fn fire(&mut self, hosts: &mut [&mut Host]) -> Option<Time> {
        let at = hosts
            .iter()
            .filter_map(|h| h.poll_timeout())
            .min()
            .filter(|d| *d <= self.until)?
            .max(self.now);
        if self.fired == Some(at) {
            return None;
        }
        for host in hosts.iter_mut() {
            if host.poll_timeout().is_some_and(|d| d <= at) {
                host.handle_timeout(at);
            }
        }
        self.now = at;
        self.fired = Some(at);
        Some(at)
    }

    /// Fires whatever is still due by the target, then brings every host to
    /// the target itself, so that each one's clock reads it (unless the last
    /// instant fired was the target). Returns the target. What the hosts
    /// produced stays queued for the caller to drain.
    ///
    /// One host and one instant (an event loop's step: `new(now, now)`) is
    /// one `handle_timeout(now)`, and taken as that: a due deadline fires at
    /// `now`, and with none due the host is brought to `now`, either way one
    /// call; the walk would first ask `poll_timeout` three times.
    pub fn finish(mut self, hosts: &mut [&mut Host]) -> Time {
        if let ([host], None) = (&mut *hosts, self.fired) {
            if self.now == self.until {
                host.handle_timeout(self.until);
                return self.until;
            }
        }
        while self.fire(hosts).is_some() {}
        if self.fired != Some(self.until) {
            for host in hosts.iter_mut() {
                host.handle_timeout(self.until);
            }
        }
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Flags, Segment, State, Tuple};

    fn tuple(port: u16) -> Tuple {
        Tuple::new([10, 0, 0, 2], port, [10, 0, 0, 1], 80)
    }

    /// A client whose SYN to `tuple(port)` left at `at` (RTO 1 s).
    fn connecting(host: &mut Host, port: u16, at: Time) {
        host.connect(at, tuple(port)).unwrap();
        assert_eq!(host.transmits().count(), 1, "the SYN");
    }

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    /// Walks `h` from `now` to `until`, noting the instants that sent something.
    fn sends(h: &mut Host, now: Time, until: Time) -> Vec<(Time, usize)> {
        let mut walk = Advance::new(now, until);
        let mut seen = Vec::new();
        while let Some(at) = walk.fire(&mut [&mut *h]) {
            match h.transmits().count() {
                0 => {}
                n => seen.push((at, n)),
            }
        }
        seen
    }

    /// A burst is handled as its segments one by one: every one, in order
    /// (the second SYN-ACK of a pair finds the state the first left).
    #[test]
    fn a_burst_is_its_segments_in_order() {
        let (mut one, mut burst) = (Host::new(Config::default()), Host::new(Config::default()));
        let mut segs = Vec::new();
        for port in 40_000..40_100 {
            connecting(&mut one, port, Time::ZERO);
            connecting(&mut burst, port, Time::ZERO);
            // The server's SYN-ACK acknowledges the SYN (snd_nxt = ISS + 1).
            let (snd_nxt, _) = one.sequence(&tuple(port)).unwrap();
            let t = tuple(port).reversed();
            segs.push(Segment::new(
                &t,
                Flags::SYN | Flags::ACK,
                7,
                snd_nxt,
                0,
                1000,
            ));
            // Every third one comes twice: the copy meets ESTABLISHED.
            if port % 3 == 0 {
                segs.push(*segs.last().unwrap());
            }
        }
        for seg in &segs {
            one.handle(ms(5), seg);
        }
        handle_burst(&mut burst, ms(5), &segs);
        let sent = |h: &mut Host| h.transmits().collect::<Vec<_>>();
        assert_eq!(sent(&mut one), sent(&mut burst));
        assert_eq!(one.population(State::Established), 100);
        assert_eq!(burst.population(State::Established), 100);
    }

    #[test]
    fn never_fires_before_a_deadline() {
        let mut h = Host::new(Config::default());
        connecting(&mut h, 40_000, Time::ZERO);
        assert_eq!(sends(&mut h, Time::ZERO, Time::from_micros(999_999)), []);
        assert_eq!(
            sends(&mut h, Time::from_micros(999_999), ms(1_000)),
            [(ms(1_000), 1)]
        );
    }

    #[test]
    fn fires_each_instant_in_order_across_hosts() {
        let (mut a, mut b) = (Host::new(Config::default()), Host::new(Config::default()));
        connecting(&mut a, 40_000, Time::ZERO);
        connecting(&mut b, 40_001, ms(100));
        connecting(&mut a, 40_002, ms(200));
        let mut walk = Advance::new(ms(200), ms(1_500));
        let mut seen = Vec::new();
        while let Some(at) = walk.fire(&mut [&mut a, &mut b]) {
            let ports = |h: &mut Host| -> Vec<u16> { h.transmits().map(|s| s.src_port).collect() };
            let (pa, pb) = (ports(&mut a), ports(&mut b));
            if !pa.is_empty() || !pb.is_empty() {
                seen.push((at, pa, pb));
            }
        }
        assert_eq!(
            seen,
            [
                (ms(1_000), vec![40_000], vec![]),
                (ms(1_100), vec![], vec![40_001]),
                (ms(1_200), vec![40_002], vec![]),
            ]
        );
        assert_eq!(walk.fire(&mut [&mut a, &mut b]), None, "stays done");
    }

    #[test]
    fn a_passed_deadline_fires_late_at_the_clock() {
        let mut h = Host::new(Config::default());
        connecting(&mut h, 40_000, Time::ZERO);
        // The driver looks only at 5 s: the 1 s retransmission goes then, and
        // the next RTO counts from when it left: the next goes 1 s later (a
        // SYN keeps the initial RTO for tcp_syn_linear_timeouts), not at 2 s.
        assert_eq!(sends(&mut h, ms(5_000), ms(5_000)), [(ms(5_000), 1)]);
        assert_eq!(sends(&mut h, ms(5_000), ms(6_500)), [(ms(6_000), 1)]);
    }

    #[test]
    fn a_target_in_the_past_is_the_clock() {
        let mut h = Host::new(Config::default());
        connecting(&mut h, 40_000, Time::ZERO);
        assert_eq!(
            Advance::new(ms(2_500), ms(10)).finish(&mut [&mut h]),
            ms(2_500)
        );
        assert_eq!(h.transmits().count(), 1);
    }

    /// A host stepped one instant at a time (`finish` from t to t) sends
    /// what a walk through the same instants with `fire` sends, at the same
    /// instants: due deadlines fire once, and instants with none send nothing.
    #[test]
    fn one_instant_steps_are_the_walk() {
        let (mut stepped, mut walked) =
            (Host::new(Config::default()), Host::new(Config::default()));
        connecting(&mut stepped, 40_000, Time::ZERO);
        connecting(&mut walked, 40_000, Time::ZERO);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut prev = Time::ZERO;
        for t in (1..=32).map(|n| ms(n * 250)) {
            assert_eq!(Advance::new(t, t).finish(&mut [&mut stepped]), t);
            a.extend(stepped.transmits().map(|s| (t, s)));
            let mut walk = Advance::new(prev, t);
            while let Some(at) = walk.fire(&mut [&mut walked]) {
                b.extend(walked.transmits().map(|s| (at, s)));
            }
            assert_eq!(walk.finish(&mut [&mut walked]), t);
            prev = t;
        }
        // The SYN again a second after each of the first five
        // (tcp_syn_linear_timeouts 4: the backoff starts once four
        // retransmissions are past), then doubling: 1, 2, 3, 4, 5 and 7 s.
        let at: Vec<Time> = a.iter().map(|(t, _)| *t).collect();
        assert_eq!(at, [1_000, 2_000, 3_000, 4_000, 5_000, 7_000].map(ms));
        assert_eq!(a, b);
        assert_eq!(stepped.poll_timeout(), walked.poll_timeout());
    }

    #[test]
    fn finish_fires_the_rest_and_brings_hosts_to_the_target() {
        let mut h = Host::new(Config::default());
        h.listen(80);
        let syn = Segment::new(&tuple(40_000), Flags::SYN, 7, 0, 0, 65_535);
        h.handle(Time::ZERO, &syn);
        assert_eq!(h.transmits().count(), 1, "the SYN-ACK");
        // Nothing answers: the SYN-ACK goes again at 1 s and 3 s.
        let end = Advance::new(Time::ZERO, ms(3_500)).finish(&mut [&mut h]);
        assert_eq!(end, ms(3_500));
        assert_eq!(h.transmits().count(), 2);
        assert_eq!(h.state(&tuple(40_000).reversed()), State::SynReceived);
        // The host's clock reads the target: it never answers earlier.
        assert!(h.poll_timeout().is_some_and(|t| t >= end));
    }
}
