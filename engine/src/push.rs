//! A push that builds the value where it goes.
//!
//! `Vec::push(v)` takes a value the caller has built, and when the value is a
//! struct whose fields were computed one by one (a segment, an event), the
//! compiler builds it on the stack, field by field, then copies it into the
//! vector 16 bytes at a time. Each 16-byte load spans several of those narrow
//! stores, and a load that needs bytes from more than one store cannot take
//! them from the store buffer: it waits until they reach the cache (a failed
//! store-to-load forwarding, about a dozen cycles). `perf record -e cpu-clock`
//! put 9 % of `Host::handle`'s samples and 42 % of `commit_close`'s on such
//! copies (docs/performance.md, session 32). [`push_with`] checks the
//! capacity first, so the value is built straight into its slot.

/// Pushes `make()` onto `v`, building it in `v`'s spare capacity rather than
/// on the stack. The same as `v.push(make())`.
#[inline(always)]
pub(crate) fn push_with<T>(v: &mut Vec<T>, make: impl FnOnce() -> T) {
    if v.len() == v.capacity() {
        grow(v);
    }
    let len = v.len();
    debug_assert!(len < v.capacity());
    // SAFETY: `grow` leaves room for one more (`reserve(1)` panics or
    // allocates), so `len < capacity` and the slot at `len` lies inside the
    // allocation; it is written before `set_len` makes it part of the vector,
    // and the elements before it already were. If `make` panics, nothing was
    // written and the length is unchanged.
    unsafe {
        v.as_mut_ptr().add(len).write(make());
        v.set_len(len + 1);
    }
}

/// Room for one more element: seldom (the vectors pushed to keep their
/// capacity between drains), so out of line.
#[cold]
#[inline(never)]
fn grow<T>(v: &mut Vec<T>) {
    v.reserve(1);
}

#[cfg(test)]
mod tests {
    use super::push_with;

    /// Every push lands, in order, across growth from nothing and with
    /// capacity to spare, and values that own heap memory arrive whole (a
    /// slot written outside the allocation, or a length set past it, would
    /// show here as a wrong value or a crash).
    #[test]
    fn pushes_in_order_across_growth() {
        let mut v: Vec<String> = Vec::new();
        let mut want = Vec::new();
        for i in 0..1000 {
            push_with(&mut v, || i.to_string());
            want.push(i.to_string());
            assert_eq!(v.len(), i + 1);
        }
        assert_eq!(v, want);
        v.clear();
        let cap = v.capacity();
        push_with(&mut v, || "again".to_string());
        assert_eq!((v.len(), v.capacity(), v[0].as_str()), (1, cap, "again"));
        let mut exact = Vec::with_capacity(3);
        let at = exact.as_ptr();
        for i in 0..3u64 {
            push_with(&mut exact, || i * 7);
        }
        // Within the capacity asked for: no reallocation.
        assert_eq!((exact.as_slice(), exact.as_ptr()), (&[0, 7, 14][..], at));
        push_with(&mut exact, || 21);
        assert_eq!(exact, [0, 7, 14, 21]);
    }
}
