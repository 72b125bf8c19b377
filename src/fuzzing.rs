//! Harnesses shared by the cargo-fuzz targets (`fuzz/`) and the proptests: each
//! takes arbitrary bytes, drives one part of teardown with them, and asserts the
//! invariants that must hold whatever the input.

use std::time::Duration;

use teardown_engine::config::Config;
use teardown_engine::host::{Event, Host};
use teardown_engine::segment::{Flags, Segment};
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::Tuple;

/// A tiny cursor over the fuzzer's bytes; reads past the end give zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
}

/// Feeds one host arbitrary segments on a handful of 4-tuples, arbitrary
/// application calls and arbitrary time steps. Invariants: no panic; the
/// per-state populations always add up to the table's size; the orphans are
/// within the states that hold them; every event names
/// one of the connections the input used; and once the application has closed every
/// connection and the profile's bounds have passed, the table is empty.
pub fn engine(data: &[u8]) {
    let mut b = Bytes(data);
    let max_tw_buckets = 1 + b.u8() as usize % 4;
    // One byte for three: bit 0, the two above it, and bit 3 (a FIN-WAIT-2
    // long enough to start as a full socket).
    let knobs = b.u8();
    let mut h = Host::new(Config {
        max_tw_buckets,
        rfc1337: knobs & 1 == 1,
        max_orphans: 1 + (knobs >> 1) as usize % 4,
        fin_timeout: Duration::from_secs(if knobs & 8 == 0 { 60 } else { 90 }),
        ..Config::default()
    });
    h.listen(80);
    let tuples: Vec<Tuple> = (0..4)
        .map(|i| Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000 + i))
        .collect();
    let mut now = Time::ZERO;
    while !b.0.is_empty() {
        let op = b.u8();
        let t = tuples[(op >> 4) as usize % tuples.len()];
        match op % 8 {
            0..=3 => {
                // A segment from the peer: mostly what a real peer would send next
                // (so that connections get through the handshake and the close),
                // with small offsets, and now and then any bits at all.
                let (snd, rcv) = h.sequence(&t).unwrap_or((0, 1000));
                let kind = b.u8();
                let flags = match kind % 8 {
                    0 => Flags::SYN,
                    1 | 2 => Flags::ACK,
                    3 | 4 => Flags::FIN | Flags::ACK,
                    5 => Flags::RST,
                    6 => Flags::ACK | Flags::PSH,
                    _ => Flags(b.u8() & 0x1f),
                };
                let off = |x: u8| match x % 8 {
                    0 => u32::MAX,
                    1..=5 => 0,
                    6 => 1,
                    _ => x as u32 * 0x0101_0101,
                };
                let seq = rcv.wrapping_add(off(b.u8()));
                let ack = snd.wrapping_add(off(b.u8()));
                // Any length with arbitrary flags: up to u32::MAX, past what a
                // segment may model, which the engine must survive.
                let len = match kind % 8 {
                    6 => 100,
                    7 => u32::from_le_bytes([b.u8(), b.u8(), b.u8(), b.u8()]),
                    _ => 0,
                };
                h.handle(
                    now,
                    &Segment::new(&t.reversed(), flags, seq, ack, len, 65_535),
                );
            }
            4 => {
                let _ = h.connect(now, t);
            }
            5 => {
                let _ = match b.u8() % 4 {
                    0 => h.close(now, t),
                    1 => h.shutdown(now, t),
                    2 => h.abort(now, t),
                    _ => h.send(now, t, 100),
                };
            }
            6 => {
                now = now + Duration::from_millis(b.u8() as u64 * 37);
                h.handle_timeout(now);
            }
            _ => {
                now = now + Duration::from_secs(b.u8() as u64);
                h.handle_timeout(now);
            }
        }
        check(&mut h, &tuples);
    }
    // The application closes everything it still has; every entry must then go
    // within the bounds the profile implies.
    for t in &tuples {
        let _ = h.close(now, *t);
    }
    let bound = h.config().open_bound() + h.config().close_bound();
    let end = now + bound;
    while let Some(t) = h.poll_timeout() {
        if t > end {
            break;
        }
        now = t.max(now);
        h.handle_timeout(now);
        h.transmits().for_each(drop);
        check(&mut h, &tuples);
        for t in &tuples {
            if h.state(t) == State::Established || h.state(t) == State::CloseWait {
                let _ = h.close(now, *t);
            }
        }
    }
    assert!(h.is_empty(), "{} entries outlive the bounds", h.len());
    assert_eq!(h.orphans(), 0, "orphans counted with an empty table");
}

fn check(h: &mut Host, tuples: &[Tuple]) {
    let total: usize = State::ALL.iter().map(|s| h.population(*s)).sum();
    assert_eq!(total, h.len(), "populations do not add up to the table");
    // Orphans hold a full socket in FIN-WAIT-1, CLOSING or LAST-ACK, or in
    // the first part of a long FIN-WAIT-2.
    let full = [
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::LastAck,
    ];
    let may_be_orphans: usize = full.iter().map(|s| h.population(*s)).sum();
    assert!(h.orphans() <= may_be_orphans, "{} orphans", h.orphans());
    for e in h.events() {
        let (Event::Established { tuple }
        | Event::Received { tuple, .. }
        | Event::PeerClosed { tuple }
        | Event::StateChanged { tuple, .. }
        | Event::Closed { tuple, .. }) = e;
        assert!(
            tuples.contains(&tuple),
            "an event for a connection never opened: {tuple}"
        );
    }
    h.transmits().for_each(drop);
}

/// Parses arbitrary text as a packetdrill script and, when it parses, runs it
/// against the engine and records it. Invariants: no panic; a parse error
/// names a line and a column inside the input; a script the engine can record
/// gives a recording that parses and passes on the engine itself.
pub fn script(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match crate::script::parse(src) {
        Ok(script) => {
            let opts = crate::script::Options::default();
            let _ = crate::script::run(&script, &opts);
            let (text, outcome) = crate::script::record::record_script(&script, &opts);
            if outcome.failure.is_none() {
                let replay = crate::script::parse(&text)
                    .unwrap_or_else(|e| panic!("the recording does not parse: {e}\n{text}"));
                let again = crate::script::run(&replay, &opts);
                assert!(
                    again.failure.is_none(),
                    "the recording fails on the engine: {:?}\n{text}",
                    again.failure
                );
            }
        }
        Err(e) => {
            let lines = src.lines().count().max(1);
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of {lines}",
                e.line
            );
        }
    }
}

/// Decodes arbitrary bytes as one datagram. Invariants: no panic; a datagram
/// that decodes has exactly `8 + 36 × count` bytes and hands out `count` records;
/// re-encoding those records gives back the same bytes (the format has one
/// encoding per datagram: every reserved bit must be zero to decode); and a
/// rejected datagram is rejected for the first failing rule of `docs/wire.md`.
pub fn wire(data: &[u8]) {
    use crate::wire::{decode, Encoder, WireError, HEADER_LEN, MAX_RECORDS, RECORD_LEN};
    match decode(data) {
        Ok(records) => {
            let count = u16::from_be_bytes([data[4], data[5]]) as usize;
            assert_eq!(records.len(), count);
            assert_eq!(data.len(), HEADER_LEN + count * RECORD_LEN);
            let mut e = Encoder::new(MAX_RECORDS);
            for s in records {
                assert!(!e.is_full(), "more than {MAX_RECORDS} records");
                e.push(&s);
            }
            assert_eq!(e.len(), count);
            assert_eq!(e.datagram(), data, "re-encoding changed the bytes");
        }
        Err(WireError::Oversized(n) | WireError::Truncated(n)) => assert_eq!(n, data.len()),
        Err(WireError::TooManyRecords(n)) => assert!(n > MAX_RECORDS),
        Err(WireError::CountMismatch { count, body }) => {
            assert_eq!(body, data.len() - HEADER_LEN);
            assert_ne!(body, count * RECORD_LEN);
        }
        Err(WireError::ReservedRecord(i)) => {
            let r = &data[HEADER_LEN + i * RECORD_LEN..][..RECORD_LEN];
            let ts = crate::wire::OPT_TS;
            assert!(
                r[26] & !crate::wire::FLAG_MASK != 0
                    || r[27] & !ts != 0
                    || (r[27] & ts == 0 && r[28..36] != [0; 8])
            );
        }
        Err(WireError::TooLong { record, len }) => {
            let r = &data[HEADER_LEN + record * RECORD_LEN..][..RECORD_LEN];
            assert_eq!(u32::from_be_bytes([r[20], r[21], r[22], r[23]]), len);
            assert!(len > teardown_engine::segment::MAX_LEN);
        }
        Err(WireError::BadMagic(_) | WireError::BadVersion(_) | WireError::ReservedHeader) => {}
    }
}
