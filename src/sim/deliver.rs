//! A shard's link: what a host sends goes onto the other direction's queue
//! through loss and delay (`transmit`), and what a queue delivers now goes
//! into its host, whose events and replies are handled at once (`deliver_all`).

use rand_chacha::ChaCha8Rng;

use crate::alloc;
use crate::link::Delay;
use teardown_engine::driver::prefetch;
use teardown_engine::host::Host;
use teardown_engine::segment::Segment;
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

use super::record::{DRAIN_EVENTS, DRAIN_TRANSMITS};
use super::result::Cases;
use super::shard::{Change, Shard, Side};
use super::slots::slot;

/// A segment's arrival time with `--jitter`. Kept out of line: inlined,
/// the compiler sets up the jitter's random range on every transmit, also
/// in runs without jitter.
#[inline(never)]
fn jittered(now: Time, delay: &Delay, rng: &mut ChaCha8Rng) -> Time {
    now + delay.sample(rng)
}

/// Counts a segment lost on the link under its seed case, from its
/// sender's state.
fn classify_drop(c: &mut Cases, sender: &Host, seg: &Segment) {
    let state = sender.state(&seg.sender_tuple());
    let pure_ack = seg.flags.ack() && seg.seq_len() == 0 && !seg.flags.rst();
    match state {
        State::FinWait1 | State::Closing if seg.flags.fin() => c.first_fin_lost += 1,
        State::LastAck if seg.flags.fin() => c.passive_fin_lost += 1,
        State::CloseWait | State::LastAck if pure_ack => c.ack_of_fin_lost += 1,
        State::TimeWait if pure_ack => c.final_ack_lost += 1,
        _ => {}
    }
}

/// What every transmit of a step reads from the shard, read once: a burst
/// passes it down its loop, where after each host call the shard's fields
/// were read again and spilled, at every segment.
#[derive(Clone, Copy)]
pub(super) struct Sending {
    now: Time,
    /// When a segment sent now arrives without jitter: every segment of
    /// the step.
    fixed: Time,
    jitter: bool,
    /// `--pcap-sample`: the server's segments are looked at.
    capturing: bool,
    /// None of those, nor a recording: every segment sent goes through the
    /// loss to arrive at `fixed`, and nobody notes the drain. One test a
    /// transmit, where its loop tested jitter and capture at every segment.
    plain: bool,
    /// A burst of an unmarked run ([`Shard::deliver_all`]): no runaway
    /// waits to vanish after its ACK. A constant where it is read.
    unmarked: bool,
}

impl Shard<'_> {
    /// The step's [`Sending`].
    #[inline(always)]
    pub(super) fn sending(&self) -> Sending {
        Sending {
            now: self.now,
            fixed: self.arrival,
            jitter: self.jitter,
            capturing: self.capturing,
            plain: !(self.jitter || self.capturing || self.record.is_some()),
            unmarked: false,
        }
    }

    /// Asks for the slot (its flags and open ends, which `on_event` reads,
    /// and `deliver` in a run with marks, one line) while its segment is
    /// still a few back in the queue: with a million slots it is a cold
    /// line, as the host's entries are.
    #[inline]
    pub(super) fn prefetch_slot(&self, client_view: &Tuple) {
        if let Some(s) = self.slot_of(client_view) {
            prefetch(&self.slots[s]);
        }
    }

    /// Delivers the segments arriving at `to` now, one after another, as
    /// long as each would be [`Shard::next_event`]'s next: a burst of an
    /// instant is one step, not one round of the event loop per segment.
    /// Nothing a delivery sets off comes earlier than now (its host's timers
    /// are not due before now, its replies and the opens it makes arrive
    /// after the link's delay), and the link wins ties, the server's
    /// direction first: so the next event is the same queue's next segment
    /// while that arrives now, unless a client's delivery put a segment
    /// towards the server at this instant (a zero delay). Nor does a
    /// delivery queue anything in its own direction: the segments that
    /// arrive now, the queue's front run, are taken as one batch
    /// ([`Queue::front_run_segments`]), their run settled once at its end.
    ///
    /// Inlined into `step`'s two calls, each with its side a constant: the
    /// handlers inlined below (`deliver`, `after_with`, `on_event`,
    /// `transmit_with`)
    /// then lose their many `match side`s.
    ///
    /// A run without marks ([`Shard::marks`]), jitter or a recording, on a
    /// link with a delay, takes a burst of its own: no slot is looked up,
    /// no runaway waits to vanish, every transmit is plain and no reply
    /// arrives at this instant, each a test at every segment the other
    /// burst makes (some 7 instructions a segment); and its look-ahead
    /// ([`Shard::ahead`]) is a constant of its own copy. The other burst is
    /// out of line ([`Shard::marked_burst`]), so `step` holds no more code.
    ///
    /// [`Queue::front_run_segments`]: super::queue::Queue::front_run_segments
    #[inline(always)]
    pub(super) fn deliver_all(&mut self, to: Side) -> Change {
        if !(self.marks || self.jitter || self.record.is_some()) && self.delay_us > 0 {
            if self.ahead {
                self.burst::<true, true>(to)
            } else {
                self.burst::<true, false>(to)
            }
        } else {
            self.marked_burst(to)
        }
    }

    /// [`Shard::deliver_all`] for any run, each side's burst inlined with
    /// its side a constant.
    #[inline(never)]
    fn marked_burst(&mut self, to: Side) -> Change {
        match to {
            Side::Server => self.burst::<false, false>(Side::Server),
            Side::Client => self.burst::<false, false>(Side::Client),
        }
    }

    /// [`Shard::deliver_all`], for an unmarked run (`UNMARKED`), whose
    /// look-ahead is `AHEAD` (a constant, where its test cost two
    /// instructions a segment), or any.
    #[inline(always)]
    fn burst<const UNMARKED: bool, const AHEAD: bool>(&mut self, to: Side) -> Change {
        let now = self.now.as_micros();
        // The host-wide peak is taken after every segment, as when each was
        // a step of its own: the most entries seen, and the change at the end.
        // A burst calls into its own host alone, so the other's entries stay
        // as they are and only the receiving host's are read a segment.
        let before = self.entries_then;
        let other = self.entries() - self.host(to).len() as u64;
        let mut high_to = 0;
        // When the thread's shards fit in cache (`Shard::ahead` off), so do
        // the per-slot arrays and the hosts' tables, and the hosts decline
        // every hint: such a burst skips the look-ahead, which would only
        // cost, segment after segment.
        let ahead = if UNMARKED { AHEAD } else { self.ahead };
        // The host's allocator scope is entered once for the burst, not
        // around each segment's call: what the simulator allocates or frees
        // meanwhile (a queue's growth, a capture) it charges to its own
        // scope ([`alloc::outside`]). The host's deadline is refreshed below.
        let scope = match to {
            Side::Server => self.server_scope,
            Side::Client => self.client_scope,
        };
        let outer = alloc::enter_engine_scope(scope);
        self.stale[to as usize] = true;
        let mut sending = self.sending();
        if UNMARKED {
            // No jitter, capture (a mark) or recording.
            sending.plain = true;
            sending.unmarked = true;
        }
        'burst: loop {
            // The queue is out while its front run is delivered, so that
            // the run is read in place as a slice, a pointer's step a
            // segment, where the queue's kind, its head against its length
            // and the head's store were each a test or a write at every
            // segment; it is settled once, as it is put back.
            let q = match to {
                Side::Server => self.to_server.take_out(),
                Side::Client => self.to_client.take_out(),
            };
            let run = q.front_run_segments();
            // What is taken is where the slice's iterator stands: no count
            // of its own to keep a segment.
            let mut segs = run.iter();
            let mut echo = false;
            while let Some(seg) = segs.next() {
                let at = || run.len() - segs.len() - 1;
                match to {
                    _ if !ahead => {}
                    Side::Server => {
                        let slot = |s: &Segment| self.prefetch_slot(&s.sender_tuple());
                        q.prefetch_ahead(at(), &self.server, slot);
                    }
                    Side::Client => {
                        let slot = |s: &Segment| self.prefetch_slot(&s.receiver_tuple());
                        q.prefetch_ahead(at(), &self.client, slot);
                    }
                }
                self.deliver::<UNMARKED>(to, seg, sending);
                high_to = high_to.max(self.host(to).len());
                // Not with a delay (an unmarked run's): a reply arrives later.
                if !UNMARKED && to == Side::Client && self.to_server.next_us() == now {
                    echo = true;
                    break;
                }
            }
            let (whole, taken) = (run.len(), run.len() - segs.len());
            let queue = match to {
                Side::Server => &mut self.to_server,
                Side::Client => &mut self.to_client,
            };
            queue.put_back(q, taken, &mut self.spare);
            if echo || whole == 0 || queue.next_us() != now {
                break 'burst;
            }
        }
        alloc::enter_scope(outer);
        let high = before.max(other + high_to as u64);
        // With nothing in flight, no burst follows at once to take a buffer.
        // (A buffer handed over while both queues were empty waits for the
        // end of the next step: bounded, one buffer.)
        let in_flight = self.to_server.next_us().min(self.to_client.next_us());
        self.spare.idle(in_flight == u64::MAX);
        self.refresh_deadlines();
        self.res.peak_entries = self.res.peak_entries.max(high);
        Change {
            net: self.note_entries(),
            high: (high - before) as i64,
        }
    }

    /// Delivers `seg`, the next of its queue's front run, to `to`; the
    /// queue, out meanwhile, drops it afterwards (nothing queues in that
    /// direction meanwhile, above), so that the host reads it where it
    /// lies: a copy of its 40 bytes to the stack cost six instructions a
    /// segment. A queue this drains hands its buffer to the spare pool at
    /// that drop, after the delivery's own transmits (it did before them),
    /// which can move a heap peak, not a segment. Inlined into a burst's
    /// loop, each of its forms (it was, by the compiler's choice; pinned,
    /// the loop also takes in `Loss::drops`).
    #[inline(always)]
    pub(super) fn deliver<const UNMARKED: bool>(
        &mut self,
        to: Side,
        seg: &Segment,
        sending: Sending,
    ) {
        // The slot of a runaway end to watch: it may vanish on this segment.
        let mut watch = None;
        if !UNMARKED && self.marks {
            let slot = match to {
                Side::Server => self.slot_of(&seg.sender_tuple()),
                Side::Client => self.slot_of(&seg.receiver_tuple()),
            };
            let Some(slot) = slot else {
                // A reply to an attacker's spoofed address: it leaves the simulation.
                self.res.to_attacker += 1;
                return;
            };
            let flags = self.slots[slot].flags;
            let (gone, captured, runaway) = match to {
                Side::Server => (slot::SERVER_GONE, slot::CAPTURED, slot::RUNAWAY_SERVER),
                Side::Client => (slot::CLIENT_GONE, 0, slot::RUNAWAY_CLIENT),
            };
            // Most slots carry none of these marks: one test for all three.
            if flags & (gone | captured | runaway) != 0 {
                if flags & gone != 0 {
                    self.res.blackholed += 1;
                    return;
                }
                if flags & captured != 0 {
                    let (capture, now) = (&mut self.res.capture, self.now);
                    alloc::outside(|| capture.push((now, *seg)));
                }
                if flags & runaway != 0 && flags & slot::AT_FIN_SENT == 0 {
                    watch = Some(slot);
                }
            }
        }
        // The tuple is made where a runaway needs it, from the segment:
        // made up front, it was stored for every segment.
        let state = |s: &Self| s.host(to).state(&seg.receiver_tuple());
        let before = if watch.is_some() {
            state(self)
        } else {
            State::Closed
        };
        // In the host's allocator scope, entered for the burst.
        let now = self.now;
        match to {
            Side::Server => self.server.handle(now, seg),
            Side::Client => self.client.handle(now, seg),
        }
        // A runaway active closer vanishes on the segment that acknowledges its
        // FIN, answering nothing (when the peer's FIN rides on that ACK, the
        // peer is left in LAST-ACK: seed case 6).
        if let Some(slot) = watch {
            if before == State::FinWait1 && matches!(state(self), State::FinWait2 | State::TimeWait)
            {
                let tuple = seg.receiver_tuple();
                match to {
                    Side::Server => self.server.transmits().for_each(drop),
                    Side::Client => self.client.transmits().for_each(drop),
                }
                self.note_drained(to, DRAIN_TRANSMITS);
                self.vanish(to, tuple, slot);
            }
        }
        self.after_with(to, sending);
    }

    /// Handles a host's events, then puts what it sent on the link: a run
    /// of that host's calls ([`Shard::in_run`]).
    #[inline(always)]
    pub(super) fn after(&mut self, side: Side) {
        let sending = self.sending();
        self.in_run(side, |s| s.after_with(side, sending));
    }

    /// [`Shard::after`] with the step's [`Sending`] read already, within a
    /// run of the host's calls (a burst, or [`Shard::in_run`]): the event
    /// handlers call into it so. Inlined: a call of its own saved and
    /// restored six registers per segment.
    #[inline(always)]
    pub(super) fn after_with(&mut self, side: Side, sending: Sending) {
        let host = match side {
            Side::Server => &mut self.server,
            Side::Client => &mut self.client,
        };
        if host.has_events() {
            // Read where they lie (no handler takes events from a host), and
            // left there until the next swap clears them.
            host.swap_events(&mut self.events);
            if !sending.unmarked {
                self.note_drained(side, DRAIN_EVENTS);
            }
            // One test a turn for the end and the index both (no handler
            // changes `events`): a range and an index tested each apart.
            let mut i = 0;
            while let Some(&ev) = self.events.get(i) {
                self.on_event(side, ev, sending.unmarked);
                i += 1;
            }
        }
        self.transmit_with(side, sending);
        if !sending.unmarked && !self.vanish_after_ack.is_empty() {
            self.vanish_acked(side);
        }
    }

    /// Puts what `from` sent on the link, through its loss and delay.
    #[inline(always)]
    pub(super) fn transmit(&mut self, from: Side) {
        self.transmit_with(from, self.sending());
    }

    /// [`Shard::transmit`] with the step's [`Sending`] read already.
    /// Inlined: it runs after every host call, mostly for one segment, and
    /// as a call of its own it cost some 15 % more (110 instructions a
    /// teardown).
    #[inline(always)]
    pub(super) fn transmit_with(&mut self, from: Side, sending: Sending) {
        let (host, queue, loss) = match from {
            Side::Server => (&self.server, &mut self.to_client, &mut self.loss_to_client),
            Side::Client => (&self.client, &mut self.to_server, &mut self.loss_to_server),
        };
        // Nothing queued: its drain would only reset the ACKs-sent count,
        // which is 0 then.
        let out = host.pending_transmits();
        if out.is_empty() {
            return;
        }
        let rng = &mut self.rng;
        let Sending {
            now,
            fixed,
            jitter,
            capturing,
            plain,
            ..
        } = sending;
        let capturing = from == Side::Server && capturing;
        self.res.sent += out.len() as u64;
        if plain {
            for seg in out {
                if loss.drops(rng, seg) {
                    self.res.dropped += 1;
                    classify_drop(&mut self.res.cases, host, seg);
                } else {
                    queue.push(fixed, seg, &mut self.spare);
                }
            }
            match from {
                Side::Server => drop(self.server.transmits()),
                Side::Client => drop(self.client.transmits()),
            }
            return;
        }
        // Read in place and cleared after (`transmits`), not moved out one by
        // one; a lost one is classified at once, from its sender's state.
        for seg in out {
            if capturing {
                let slot = self.slot_map.get(&seg.receiver_tuple());
                if slot.is_some_and(|s| self.slots[s].flags & slot::CAPTURED != 0) {
                    let capture = &mut self.res.capture;
                    alloc::outside(|| capture.push((now, *seg)));
                }
            }
            if loss.drops(rng, seg) {
                self.res.dropped += 1;
                classify_drop(&mut self.res.cases, host, seg);
            } else {
                let at = if jitter {
                    jittered(now, &self.cfg.delay, rng)
                } else {
                    fixed
                };
                queue.push(at, seg, &mut self.spare);
            }
        }
        match from {
            Side::Server => drop(self.server.transmits()),
            Side::Client => drop(self.client.transmits()),
        }
        self.note_drained(from, DRAIN_TRANSMITS);
    }
}
