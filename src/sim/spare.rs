//! A drained link buffer kept for the next burst, in either direction.
//!
//! Bursts alternate directions (a wave's SYNs, then its SYN-ACKs, ...): a
//! buffer one direction drains serves the other's next burst, where freed
//! and allocated again it would be faulted in (zeroed by the kernel) afresh.
//! Only a buffer the allocator maps on its own ([`MAPPED_FROM`]) is kept: a
//! smaller one's memory malloc reuses anyway; nor one over [`KEPT_UP_TO`].
//! At most one is held, the
//! bigger, and none once the link is idle ([`Spare::idle`]), so that a pause
//! between waves (the established connections of `--workload tw-fill`)
//! holds no buffer.

use teardown_engine::segment::Segment;

use crate::alloc::MAPPED_FROM;

/// The biggest buffer kept: a burst that fills more than this takes long
/// enough that faulting its buffer in again is a small part of it, while a
/// held buffer beside the other direction's grown one adds to the peak (one
/// table through `tw-fill --connections 10000000` kept 671 MB: peak RSS
/// 2.88 to 3.14 GB). The million-connection waves' 40 MiB buffers are kept.
const KEPT_UP_TO: usize = 128 << 20;

/// The drained buffer both directions of a shard's link share.
#[derive(Default)]
pub(super) struct Spare(Option<Vec<Segment>>);

impl Spare {
    /// Keeps the drained `buf` when it is a mapped one, at most
    /// [`KEPT_UP_TO`], and bigger than the one held (which is freed); else
    /// frees `buf`.
    pub(super) fn give(&mut self, buf: Vec<Segment>) {
        debug_assert!(buf.is_empty());
        let bytes = buf.capacity() * std::mem::size_of::<Segment>();
        let kept = (MAPPED_FROM..=KEPT_UP_TO).contains(&bytes);
        if kept && self.capacity().is_none_or(|c| c < buf.capacity()) {
            self.0 = Some(buf);
        }
    }

    /// The buffer held, when it holds more than `capacity` segments.
    pub(super) fn take_bigger(&mut self, capacity: usize) -> Option<Vec<Segment>> {
        self.0.take_if(|b| b.capacity() > capacity)
    }

    /// Frees the buffer held when no segment is in flight either way.
    #[inline]
    pub(super) fn idle(&mut self, nothing_in_flight: bool) {
        if nothing_in_flight {
            self.0 = None;
        }
    }

    /// The held buffer's capacity, in segments.
    pub(super) fn capacity(&self) -> Option<usize> {
        self.0.as_ref().map(Vec::capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(segments: usize) -> Vec<Segment> {
        Vec::with_capacity(segments)
    }

    /// Only a mapped buffer is kept, the bigger of two, taken only by a
    /// queue it would grow, and dropped when the link idles.
    #[test]
    fn keeps_the_bigger_mapped_buffer_until_the_link_idles() {
        let big = MAPPED_FROM / std::mem::size_of::<Segment>() + 1;
        let mut spare = Spare::default();
        spare.give(drained(big / 2));
        assert_eq!(spare.capacity(), None, "malloc's to reuse");
        spare.give(drained(big));
        let held = spare.capacity().expect("a mapped buffer");
        spare.give(drained(big + 1));
        let bigger = spare.capacity().expect("the bigger");
        assert!(bigger > held);
        spare.give(drained(big));
        assert_eq!(spare.capacity(), Some(bigger));
        assert!(spare.take_bigger(bigger).is_none());
        assert_eq!(spare.capacity(), Some(bigger));
        spare.idle(false);
        assert_eq!(spare.capacity(), Some(bigger));
        spare.idle(true);
        assert_eq!(spare.capacity(), None);
        spare.give(drained(big));
        assert!(spare.take_bigger(0).is_some());
        assert_eq!(spare.capacity(), None);
        spare.give(drained(KEPT_UP_TO / std::mem::size_of::<Segment>() + 1));
        assert_eq!(spare.capacity(), None, "too big to hold");
    }
}
