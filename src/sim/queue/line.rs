//! A first-in first-out line of values: a `Vec` read from a head that moves
//! on, cleared whenever it drains. A link queue drains at the end of nearly
//! every burst, so it rarely has to move what is left to the front; a
//! `VecDeque` paid for wrapping its indices around on every push and pop
//! (some 50 instructions a segment through both ends).
//!
//! Invariant: `head < buf.len()`, or `head == 0` with `buf` empty.

/// Values in the order they were pushed; the owner makes room before a push
/// to a full line ([`Line::compact`], or a bigger buffer), else it grows.
pub(super) struct Line<T> {
    buf: Vec<T>,
    head: usize,
}

impl<T> Default for Line<T> {
    fn default() -> Line<T> {
        Line {
            buf: Vec::new(),
            head: 0,
        }
    }
}

impl<T: Copy> Line<T> {
    /// A line of `buf`'s values, front first.
    pub(super) fn from_vec(buf: Vec<T>) -> Line<T> {
        Line { buf, head: 0 }
    }

    #[inline(always)]
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether a push would grow the buffer (unless room is made first).
    #[inline(always)]
    pub(super) fn is_full(&self) -> bool {
        self.buf.len() == self.buf.capacity()
    }

    #[inline(always)]
    pub(super) fn push(&mut self, x: T) {
        self.buf.push(x);
    }

    /// Drops the front value (none: a no-op), read first by [`Line::front`];
    /// returns whether the line is empty now, which its owner acts on. An
    /// empty line needs no test of its own: its head passes its length and
    /// is cleared back to 0.
    #[inline(always)]
    pub(super) fn advance(&mut self) -> bool {
        self.head += 1;
        if self.head < self.buf.len() {
            return false;
        }
        self.clear();
        true
    }

    /// [`Line::advance`] `k` times (`k` at most the length): true when
    /// that drained it.
    #[inline(always)]
    pub(super) fn advance_by(&mut self, k: usize) -> bool {
        debug_assert!(self.head + k <= self.buf.len());
        self.head += k;
        if self.head < self.buf.len() {
            return false;
        }
        self.clear();
        true
    }

    #[cfg(test)]
    pub(super) fn pop(&mut self) -> Option<T> {
        let x = *self.front()?;
        let drained = self.advance();
        assert_eq!(drained, self.is_empty());
        Some(x)
    }

    #[inline(always)]
    pub(super) fn front(&self) -> Option<&T> {
        self.buf.get(self.head)
    }

    #[inline(always)]
    pub(super) fn front_mut(&mut self) -> Option<&mut T> {
        self.buf.get_mut(self.head)
    }

    /// The `i`-th value from the front.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.buf.get(self.head + i)
    }

    /// Grows a full line as a push to it would (`Vec`'s amortized
    /// doubling), so that its owner can choose whose the memory is.
    pub(super) fn grow(&mut self) {
        self.buf.reserve(1);
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    /// Moves the values to the front when at least half the buffer's used
    /// part lies behind the head (so each value moves at most once per
    /// doubling of its line's traffic); returns whether that made room.
    #[cold]
    #[inline(never)]
    pub(super) fn compact(&mut self) -> bool {
        if self.head == 0 || self.head < self.buf.len() / 2 {
            return false;
        }
        self.buf.drain(..self.head);
        self.head = 0;
        true
    }

    /// The values, front first.
    pub(super) fn as_slice(&self) -> &[T] {
        &self.buf[self.head..]
    }

    /// The buffer, for the next line to take (empty when the line is).
    pub(super) fn into_vec(mut self) -> Vec<T> {
        self.buf.drain(..self.head);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values leave in the order they came through compactions, growth and
    /// drains, a drained line starts again at the front of its buffer, and
    /// the buffer stays within four times the most values waiting at once.
    #[test]
    fn a_line_is_first_in_first_out_through_compaction() {
        let mut line = Line::from_vec(Vec::with_capacity(8));
        let (mut next_in, mut next_out, mut most) = (0u32, 0u32, 0u32);
        for round in 0..200u32 {
            for _ in 0..(round * 7) % 13 {
                if line.is_full() {
                    line.compact();
                }
                line.push(next_in);
                next_in += 1;
                most = most.max(next_in - next_out);
            }
            for _ in 0..(round * 3) % 17 {
                match line.pop() {
                    Some(x) => {
                        assert_eq!(x, next_out);
                        next_out += 1;
                    }
                    None => assert_eq!(next_in, next_out),
                }
            }
            assert_eq!(line.as_slice().len() as u32, next_in - next_out);
            assert_eq!(
                line.front().copied(),
                (next_in > next_out).then_some(next_out)
            );
            if line.is_empty() {
                assert_eq!(line.head, 0);
            }
        }
        // It doubles only when more than half of it is waiting.
        let bound = (4 * most as usize).max(8);
        assert!(line.capacity() <= bound, "{} for {most}", line.capacity());
    }

    /// Compaction waits until half the used part lies behind the head.
    #[test]
    fn compaction_moves_only_a_mostly_read_buffer() {
        let mut line = Line::from_vec(Vec::with_capacity(8));
        (0..8).for_each(|x| line.push(x));
        line.pop();
        assert!(!line.compact() && line.is_full());
        (0..3).for_each(|_| {
            line.pop();
        });
        assert!(line.compact() && !line.is_full());
        assert_eq!(line.as_slice(), [4, 5, 6, 7]);
        assert_eq!(line.get(1), Some(&5));
    }
}
