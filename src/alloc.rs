//! A counting global allocator: memory figures are measured, not estimated.
//!
//! Binaries and tests install it with `#[global_allocator]`; it forwards to the
//! system allocator and keeps the live and peak heap bytes of the process, plus
//! the net bytes allocated by the current thread (what a shard's thread owns).
//! The heap is advised for transparent huge pages, granule by granule as
//! blocks land in it: a table of millions of entries is probed at random, and
//! on 4 KiB pages nearly every probe also misses the TLB.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Number of accounting scopes; scope 0 means "not in a scope".
pub const SCOPES: usize = 512;
static SCOPE_NET: [AtomicIsize; SCOPES] = [const { AtomicIsize::new(0) }; SCOPES];

thread_local! {
    // No destructor and const-initialised, so it is safe to touch from the allocator.
    static THREAD_NET: Cell<isize> = const { Cell::new(0) };
    static SCOPE: Cell<u16> = const { Cell::new(0) };
}

/// The counting allocator.
pub struct Counting;

/// A transparent huge page: a 2 MiB-aligned granule, backed by one page
/// only if the whole granule lies in one advised mapping when it is first
/// touched.
const HUGE: usize = 2 << 20;

/// The base page, madvise's unit. On a kernel with larger pages the advice
/// for a big block fails (`EINVAL`), which only costs TLB misses.
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

/// The span advised at once for small blocks: malloc reserves each thread's
/// heap as one 64 MiB-aligned region (glibc's `HEAP_MAX_SIZE`).
const REGION: usize = 64 << 20;

/// Regions already advised, one bit each over the 47-bit user address space.
#[cfg(target_os = "linux")]
static ADVISED: [AtomicU64; 1 << 15] = [const { AtomicU64::new(0) }; 1 << 15];

/// Whether malloc has been told to map its heaps whole ([`heaps_whole`]).
#[cfg(target_os = "linux")]
static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes malloc map each new thread heap whole at once (`M_TOP_PAD` of a
/// whole region) instead of growing it a few pages at a time: a granule the
/// heap's mapping only partly covers when it is first touched stays on 4 KiB
/// pages for good. Setting it also fixes malloc's mmap threshold at 128 KiB.
#[cfg(target_os = "linux")]
fn heaps_whole() {
    if !TOLD.load(Relaxed) && !TOLD.swap(true, Relaxed) {
        // SAFETY: mallopt only sets a malloc parameter; called outside any
        // malloc call, from the first allocation on.
        unsafe {
            libc::mallopt(libc::M_TOP_PAD, REGION as libc::c_int);
        }
    }
}

/// Asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`): a table of
/// millions of entries is probed at random, and on 4 KiB pages nearly every
/// probe also misses the TLB. Linux backs memory with 2 MiB pages only where
/// asked (`transparent_hugepage` is `madvise` by default); a refusal only
/// costs TLB misses.
/// - A block of 2 MiB or more (an index, the wheel's nodes, a link queue) is
///   usually a mapping of its own: its pages are advised whole, each time it
///   is made or moved. Whole, not just its aligned granules: advising part of
///   a mapping splits it into several VMAs, and `mremap` (glibc's `realloc`
///   of a mapped block) refuses to move a range that spans VMAs (`EFAULT`),
///   so malloc would fall back to malloc+copy+free, and the copy would fault
///   the new block in on 4 KiB pages before we could advise it. glibc's own
///   `glibc.malloc.hugetlb=1` advises the same span (`madvise_thp`).
/// - A smaller block of a page or more (the slab's 28 KiB chunks, the
///   TIME-WAIT ring's 12 KiB ones) lives in one of malloc's heaps: the whole
///   region it lands in is advised, once.
#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, size: usize) {
    if size >= HUGE {
        // The block's pages: from the page holding malloc's header (the
        // mapping's first) to the page holding its last byte (the mapping's
        // last), so never past the mapping.
        let start = p as usize & !(PAGE - 1);
        let end = (p as usize + size).next_multiple_of(PAGE);
        // SAFETY: [start, end) lies inside the pages of the block the system
        // allocator just returned to us; MADV_HUGEPAGE changes only how they
        // are backed, never their contents or whether they are mapped.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
        return;
    }
    if size < PAGE {
        return;
    }
    let r = p as usize / REGION;
    let Some(word) = ADVISED.get(r / 64) else {
        return;
    };
    let bit = 1u64 << (r % 64);
    if word.load(Relaxed) & bit != 0 || word.fetch_or(bit, Relaxed) & bit != 0 {
        return;
    }
    // SAFETY: MADV_HUGEPAGE changes only how pages are backed, never their
    // contents or whether they are mapped; on the parts of the region that
    // are not mapped it fails with ENOMEM and does nothing.
    unsafe {
        libc::madvise(
            (r * REGION) as *mut libc::c_void,
            REGION,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {}

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
    account(n as isize);
}

fn shrank(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
    account(-(n as isize));
}

fn account(n: isize) {
    let _ = THREAD_NET.try_with(|c| c.set(c.get() + n));
    if let Ok(scope) = SCOPE.try_with(|s| s.get()) {
        if scope != 0 {
            SCOPE_NET[scope as usize].fetch_add(n, Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's layout unchanged and
// only adds bookkeeping on atomics and a destructor-free thread-local, and for
// large blocks an madvise(2) inside the block, none of which allocates or
// unwinds. Tested in `tests/memory.rs`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        heaps_whole();
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
            advise_huge(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        heaps_whole();
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
            advise_huge(p, layout.size());
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
            advise_huge(p, new_size);
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

/// Charges this thread's allocations and frees to `scope` (1..SCOPES) until the
/// next call; 0 stops charging. A driver wraps each call into one engine in that
/// engine's scope, so the engine's heap is measured exactly, apart from the
/// driver's own queues. Returns the previous scope.
pub fn enter_scope(scope: u16) -> u16 {
    debug_assert!((scope as usize) < SCOPES);
    SCOPE.with(|s| s.replace(scope))
}

/// Reserves `n` consecutive scopes for one measurement (a simulation reserves
/// two per shard), so that measurements running at the same time in one process
/// (tests in parallel) do not charge each other's counters. Ranges are handed out
/// round-robin over the scope space; their counters start at zero.
pub fn reserve_scopes(n: u16) -> u16 {
    static NEXT: std::sync::Mutex<u16> = std::sync::Mutex::new(1);
    let n = n.clamp(1, SCOPES as u16 - 1);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    if *next as usize + n as usize > SCOPES {
        *next = 1;
    }
    let base = *next;
    *next += n;
    for s in base..base + n {
        SCOPE_NET[s as usize].store(0, Relaxed);
    }
    base
}

/// Net heap bytes charged to `scope`.
pub fn scope_bytes(scope: u16) -> isize {
    SCOPE_NET[scope as usize].load(Relaxed)
}

/// Whether the counting allocator is the global allocator of this process.
pub fn installed() -> bool {
    let before = thread_net_bytes();
    let probe = std::hint::black_box(Box::new(0u64));
    let counted = thread_net_bytes() != before;
    drop(probe);
    counted
}
