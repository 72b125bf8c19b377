//! Property tests of the engine: two hosts joined by a lossy link (any loss
//! pattern below 100 %, random delay, jitter and runaway peers). Every connection
//! reaches CLOSED on both ends within the bound its profile implies, and the
//! timers the driver can observe fire neither early nor more than one tick late.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use teardown_engine::{
    Advance, CloseReason, Config, Event, Host, Profile, Segment, State, Time, Tuple,
};

const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
struct Scenario {
    conns: usize,
    loss: f64,
    delay_ms: u64,
    jitter_ms: u64,
    /// 0: server closes first, 1: client, 2: both at once.
    close: u8,
    runaway: f64,
    profile: Profile,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..12,
        prop_oneof![Just(0.0), 0.0f64..0.5, 0.5f64..0.95],
        1u64..150,
        prop_oneof![Just(0u64), 0u64..40],
        0u8..3,
        prop_oneof![Just(0.0), 0.0f64..1.0],
        prop_oneof![
            Just(Profile::Linux),
            Just(Profile::Rfc9293),
            Just(Profile::FreeBsd)
        ],
        any::<u64>(),
    )
        .prop_map(
            |(conns, loss, delay_ms, jitter_ms, close, runaway, profile, seed)| Scenario {
                conns,
                loss,
                delay_ms,
                jitter_ms,
                close,
                runaway,
                profile,
                seed,
            },
        )
}

#[derive(Default, Debug)]
struct Watch {
    /// When this end last entered or restarted TIME-WAIT, by the rules it follows.
    tw_since: Option<Time>,
    /// When this end entered an orphaned FIN-WAIT-2, the timeout it implies,
    /// and over how many timers.
    fw2: Option<(Time, Duration, u32)>,
    /// Last transmission of a FIN and the RTO armed for it.
    last_fin: Option<(Time, Duration)>,
}

struct World {
    now: Time,
    hosts: [Host; 2],
    wire: BinaryHeap<Reverse<(Time, u64, usize, SegKey)>>,
    order: u64,
    rng: ChaCha8Rng,
    sc: Scenario,
    cfg: Config,
    watch: HashMap<(usize, Tuple), Watch>,
    runaway: HashMap<Tuple, bool>,
    vanished: Vec<Tuple>,
    last_app_action: Time,
    /// Application read timeouts: each end closes 10 s after establishment if the
    /// connection is still open (an idle non-orphan has no TCP timer).
    app_timeouts: BinaryHeap<Reverse<(Time, usize, Tuple)>>,
    client_closed: usize,
}

const APP_TIMEOUT: Duration = Duration::from_secs(10);

/// Segment with an order so it can sit in a heap.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SegKey(Segment);
impl PartialOrd for SegKey {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for SegKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl World {
    fn new(sc: Scenario) -> World {
        let cfg = Config::profile(sc.profile);
        let mut server = Host::new(Config {
            secret: sc.seed,
            ..cfg.clone()
        });
        server.listen(80);
        let client = Host::new(Config {
            secret: !sc.seed,
            ..cfg.clone()
        });
        World {
            now: Time::ZERO,
            hosts: [server, client],
            wire: BinaryHeap::new(),
            order: 0,
            rng: ChaCha8Rng::seed_from_u64(sc.seed),
            sc,
            cfg,
            watch: HashMap::new(),
            runaway: HashMap::new(),
            vanished: Vec::new(),
            last_app_action: Time::ZERO,
            app_timeouts: BinaryHeap::new(),
            client_closed: 0,
        }
    }

    fn tuple(i: usize) -> Tuple {
        Tuple::new([10, 0, 0, 2], 40_000 + i as u16, [10, 0, 0, 1], 80)
    }

    /// After a host acted: record what its timers must do, put its segments on the wire.
    fn flush(&mut self, h: usize) {
        let events: Vec<Event> = self.hosts[h].events().collect();
        for e in events {
            self.on_event(h, e);
        }
        let out: Vec<Segment> = self.hosts[h].transmits().collect();
        for seg in out {
            let t = seg.sender_tuple();
            if seg.flags.fin() {
                let rto = self.hosts[h].rto(&t).unwrap_or_default();
                if let Some(w) = self.watch.get_mut(&(h, t)) {
                    if let Some((prev, prev_rto)) = w.last_fin {
                        if seg.seq_len() > 0 && self.now > prev {
                            // A retransmission: exactly one backed-off RTO after the last
                            // send, rounded up to the tick.
                            let gap = self.now - prev;
                            assert!(
                                gap >= prev_rto,
                                "FIN retransmitted early: {gap:?} < {prev_rto:?}"
                            );
                            assert!(
                                gap <= prev_rto + TICK,
                                "FIN retransmitted late: {gap:?} > {prev_rto:?}"
                            );
                        }
                    }
                }
                let state = self.hosts[h].state(&t);
                if matches!(state, State::FinWait1 | State::Closing | State::LastAck) {
                    self.watch.entry((h, t)).or_default().last_fin = Some((self.now, rto));
                }
            }
            let lost = self.rng.gen::<f64>() < self.sc.loss;
            if lost {
                continue;
            }
            let jitter = if self.sc.jitter_ms > 0 {
                self.rng.gen_range(0..=self.sc.jitter_ms * 1000)
            } else {
                0
            };
            let at =
                self.now + Duration::from_millis(self.sc.delay_ms) + Duration::from_micros(jitter);
            self.order += 1;
            self.wire
                .push(Reverse((at, self.order, 1 - h, SegKey(seg))));
        }
    }

    fn close(&mut self, h: usize, t: Tuple) {
        self.last_app_action = self.now;
        if self.hosts[h].close(self.now, t).is_ok() {
            self.flush(h);
        }
    }

    fn on_event(&mut self, h: usize, e: Event) {
        match e {
            Event::Established { tuple } => {
                self.app_timeouts
                    .push(Reverse((self.now + APP_TIMEOUT, h, tuple)));
                let first = match self.sc.close {
                    0 => h == 0,
                    1 => h == 1,
                    _ => true,
                };
                if first {
                    self.close(h, tuple);
                }
            }
            Event::PeerClosed { tuple } => {
                if h == 1 && self.runaway.get(&tuple).copied().unwrap_or(false) {
                    // The client runs away after ACKing the FIN (seed case 5).
                    self.flush_only_transmits(h);
                    self.hosts[h].forget(&tuple);
                    self.vanished.push(tuple);
                } else {
                    self.close(h, tuple);
                }
            }
            Event::Closed { tuple, reason, .. } => {
                if h == 1 {
                    self.client_closed += 1;
                }
                let w = self.watch.remove(&(h, tuple)).unwrap_or_default();
                match reason {
                    CloseReason::TimeWaitExpired => {
                        let since = w.tw_since.expect("TIME-WAIT was entered");
                        let lasted = self.now - since;
                        assert!(
                            lasted >= self.cfg.time_wait,
                            "TIME-WAIT expired early: {lasted:?}"
                        );
                        assert!(
                            lasted <= self.cfg.time_wait + TICK,
                            "TIME-WAIT expired late: {lasted:?}"
                        );
                    }
                    CloseReason::FinWait2Timeout => {
                        let (since, tmo, timers) = w.fw2.expect("FIN-WAIT-2 was entered");
                        let lasted = self.now - since;
                        assert!(
                            lasted >= tmo,
                            "FIN-WAIT-2 timed out early: {lasted:?} < {tmo:?}"
                        );
                        assert!(
                            lasted <= tmo + TICK * timers,
                            "FIN-WAIT-2 timed out late: {lasted:?} > {tmo:?}"
                        );
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn flush_only_transmits(&mut self, h: usize) {
        let out: Vec<Segment> = self.hosts[h].transmits().collect();
        for seg in out {
            if self.rng.gen::<f64>() >= self.sc.loss {
                self.order += 1;
                let at = self.now + Duration::from_millis(self.sc.delay_ms);
                self.wire
                    .push(Reverse((at, self.order, 1 - h, SegKey(seg))));
            }
        }
    }

    fn deliver(&mut self, h: usize, seg: Segment) {
        let t = seg.receiver_tuple();
        if h == 1 && self.vanished.contains(&t) {
            return; // a vanished end answers nothing
        }
        let before = self.hosts[h].state(&t);
        self.hosts[h].handle(self.now, &seg);
        let after = self.hosts[h].state(&t);
        let w = self.watch.entry((h, t)).or_default();
        // TIME-WAIT starts on entry and restarts on any non-RST segment with ACK or a
        // zero-length one at rcv_nxt (tcp_timewait_state_process).
        if after == State::TimeWait
            && (before != State::TimeWait || (!seg.flags.rst() && seg.flags.ack()))
        {
            w.tw_since = Some(self.now);
        }
        if after == State::FinWait2 && before == State::FinWait1 {
            let rto = self.hosts[h].rto(&t).unwrap_or_default();
            // 3.5 RTO to the whole microsecond below, as the engine arms it
            // (`fin_wait2_timeout_us`): an odd RTO gives half a microsecond more.
            let tmo = self.cfg.fin_timeout.max(rto * 7 / 2);
            let tmo = Duration::from_micros(tmo.as_micros() as u64);
            // Past TIME-WAIT's length on Linux: the excess on the full
            // socket, then the excess again (at least 3.5 RTO) on the
            // mini-socket, two timers that may each fire a tick late.
            let excess = tmo.saturating_sub(self.cfg.time_wait);
            let (tmo, timers) = if self.cfg.fin_wait2_keepalive && !excess.is_zero() {
                let mini = Duration::from_micros((rto * 7 / 2).as_micros() as u64);
                (excess + excess.max(mini), 2)
            } else {
                (tmo, 1)
            };
            w.fw2 = Some((self.now, tmo, timers));
        }
        if after != before && after != State::FinWait1 {
            w.last_fin = None;
        }
        self.flush(h);
    }

    fn run(mut self) -> Result<(), TestCaseError> {
        let mut opens: Vec<(Time, usize)> = (0..self.sc.conns)
            .map(|i| (Time::from_millis(self.rng.gen_range(0..1000)), i))
            .collect();
        opens.sort();
        opens.reverse();
        let bound = self.cfg.open_bound() + self.cfg.close_bound();
        loop {
            let wire = self.wire.peek().map(|r| r.0 .0);
            let timers = [self.hosts[0].poll_timeout(), self.hosts[1].poll_timeout()];
            let open = opens.last().map(|o| o.0);
            let app = self.app_timeouts.peek().map(|r| r.0 .0);
            let next = [open, app, wire, timers[0], timers[1]]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = next else { break };
            prop_assert!(t >= self.now, "time went backwards");
            self.now = t;
            if open == Some(t) {
                let Some((_, i)) = opens.pop() else { break };
                let tuple = Self::tuple(i);
                self.runaway
                    .insert(tuple, self.rng.gen::<f64>() < self.sc.runaway);
                self.last_app_action = t;
                self.hosts[1]
                    .connect(t, tuple)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                self.flush(1);
            } else if app == Some(t) {
                if let Some(Reverse((_, h, tuple))) = self.app_timeouts.pop() {
                    if !(h == 1 && self.vanished.contains(&tuple)) {
                        self.close(h, tuple);
                    }
                }
            } else if wire == Some(t) {
                if let Some(Reverse((_, _, h, SegKey(seg)))) = self.wire.pop() {
                    self.deliver(h, seg);
                }
            } else {
                // A host's timers are next: each host with work fires now and is
                // flushed before the other fires.
                for h in 0..self.hosts.len() {
                    if Advance::new(t, t).fire(&mut [&mut self.hosts[h]]).is_some() {
                        self.flush(h);
                    }
                }
            }
            prop_assert!(
                self.now <= self.last_app_action + bound,
                "still open at {} (last application call {}, bound {:?}): server {} client {}",
                self.now,
                self.last_app_action,
                bound,
                self.hosts[0].len(),
                self.hosts[1].len()
            );
        }
        // Every client connection reached CLOSED exactly once, or vanished.
        prop_assert_eq!(self.client_closed + self.vanished.len(), self.sc.conns);
        prop_assert!(
            self.hosts[0].is_empty(),
            "server still holds {}",
            self.hosts[0].len()
        );
        prop_assert!(
            self.hosts[1].is_empty(),
            "client still holds {}",
            self.hosts[1].len()
        );
        for st in State::ALL {
            prop_assert_eq!(self.hosts[0].population(st), 0);
            prop_assert_eq!(self.hosts[1].population(st), 0);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_connection_closes_in_bound_and_timers_are_exact(sc in scenario()) {
        World::new(sc).run()?;
    }
}
