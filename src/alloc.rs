//! A counting global allocator: memory figures are measured, not estimated.
//!
//! Binaries and tests install it with `#[global_allocator]`; it forwards to the
//! system allocator and keeps the live and peak heap bytes of the process, plus
//! the net bytes allocated by the current thread (what a shard's thread owns).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // No destructor and const-initialised, so it is safe to touch from the allocator.
    static THREAD_NET: Cell<isize> = const { Cell::new(0) };
}

/// The counting allocator.
pub struct Counting;

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
    let _ = THREAD_NET.try_with(|c| c.set(c.get() + n as isize));
}

fn shrank(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
    let _ = THREAD_NET.try_with(|c| c.set(c.get() - n as isize));
}

// SAFETY: every method forwards to `System` with the caller's layout unchanged and
// only adds bookkeeping on atomics and a destructor-free thread-local, which
// neither allocates nor unwinds. Tested in `tests/memory.rs`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Heap bytes live in the process now (0 unless [`Counting`] is installed).
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Highest [`live_bytes`] seen since the start or the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Relaxed)
}

pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Bytes allocated minus bytes freed by the calling thread.
pub fn thread_net_bytes() -> isize {
    THREAD_NET.with(|c| c.get())
}

/// Whether the counting allocator is the global allocator of this process.
pub fn installed() -> bool {
    let before = thread_net_bytes();
    let probe = std::hint::black_box(Box::new(0u64));
    let counted = thread_net_bytes() != before;
    drop(probe);
    counted
}
