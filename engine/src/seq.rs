//! Sequence numbers: 32-bit counters compared modulo 2^32 (RFC 9293 §3.4).
//!
//! [`Seq`] is the state machine's type for SND.UNA, SND.NXT, RCV.NXT and ISS, so
//! that `<` and `+` wrap as the RFC's arithmetic does (smoltcp's
//! `TcpSeqNumber`). Wire-level structs ([`crate::Segment`]) keep plain `u32`
//! and convert at the boundary.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A sequence number. `a < b` is Linux's `before(a, b)`: `(a - b) as i32 < 0`.
///
/// RFC 1982 leaves two numbers exactly 2^31 apart incomparable; here, as with
/// Linux's `before()`, each is "less" than the other, and `a > b` (which is
/// `partial_cmp`) is then false both ways. The state machine therefore writes
/// Linux's `after(a, b)` as `b < a`, so that it answers as Linux does at that
/// one distance too.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Seq(pub u32);

impl Seq {
    /// Whether `lo <= self < lo + len`.
    #[inline]
    pub fn in_window(self, lo: Seq, len: u32) -> bool {
        self.0.wrapping_sub(lo.0) < len
    }
}

impl PartialOrd for Seq {
    #[inline]
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some((self.0.wrapping_sub(other.0) as i32).cmp(&0))
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for Seq {
    #[inline]
    fn add_assign(&mut self, n: u32) {
        *self = *self + n;
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    #[inline]
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

impl Sub<Seq> for Seq {
    /// How far `self` is ahead of `rhs`, modulo 2^32: the length of
    /// `[rhs, self)`, for callers that know `rhs <= self` (bytes in flight,
    /// new bytes received).
    type Output = u32;
    #[inline]
    fn sub(self, rhs: Seq) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl From<u32> for Seq {
    #[inline]
    fn from(n: u32) -> Seq {
        Seq(n)
    }
}

impl From<Seq> for u32 {
    #[inline]
    fn from(s: Seq) -> u32 {
        s.0
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap() {
        assert!(Seq(u32::MAX) < Seq(0));
        assert!(Seq(u32::MAX) < Seq(1));
        assert!(Seq(1) > Seq(u32::MAX));
        assert!(Seq(5) <= Seq(5));
        assert!(Seq(5) >= Seq(5));
        assert!(Seq(6) > Seq(5));
        assert!(Seq(0x7fff_ffff) > Seq(0));
        assert!(Seq(0x8000_0001) < Seq(0));
    }

    #[test]
    fn half_the_space_apart_is_before_both_ways_as_in_linux() {
        // Linux: before(a, b) = (s32)(a - b) < 0, true both ways at 2^31.
        let (a, b) = (Seq(0), Seq(0x8000_0000));
        assert!(a < b && b < a);
        assert!(!a.gt(&b) && !b.gt(&a));
    }

    #[test]
    fn arithmetic_wraps() {
        assert_eq!(Seq(u32::MAX) + 2, Seq(1));
        assert_eq!(Seq(0) - 1, Seq(u32::MAX));
        assert_eq!(Seq(1) - Seq(u32::MAX), 2);
        let mut s = Seq(u32::MAX);
        s += 1;
        assert_eq!(s, Seq(0));
    }

    #[test]
    fn in_window_wraps() {
        assert!(Seq(2).in_window(Seq(u32::MAX - 1), 10));
        assert!(Seq(u32::MAX - 1).in_window(Seq(u32::MAX - 1), 10));
        assert!(!Seq(8).in_window(Seq(u32::MAX - 1), 10));
        assert!(!Seq(0).in_window(Seq(0), 0));
    }

    #[test]
    fn costs_nothing_in_size() {
        assert_eq!(std::mem::size_of::<Seq>(), 4);
        assert_eq!(std::mem::align_of::<Seq>(), 4);
    }
}
