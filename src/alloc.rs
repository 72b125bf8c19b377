//! A counting global allocator: memory figures are measured, not estimated.
//!
//! Binaries and tests install it with `#[global_allocator]`; it forwards to the
//! system allocator (blocks of 2 MiB or more it maps itself) and keeps the live
//! and peak heap bytes of the process, plus the net bytes allocated by the
//! current thread (what a shard's thread owns). All of it is advised for
//! transparent huge pages before it is first touched: a table of millions of
//! entries is probed at random, and on 4 KiB pages nearly every probe also
//! misses the TLB.

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
    // The last engine run's scope (high half) and the scope it was entered
    // from (low half): `enter_engine_scope`, read by `outside`.
    static OUTSIDE: Cell<u32> = const { Cell::new(0) };
}

/// The counting allocator.
pub struct Counting;

/// A transparent huge page: a 2 MiB-aligned granule, backed by one page
/// only if the whole granule lies in one advised mapping when it is first
/// touched.
const HUGE: usize = 2 << 20;

/// Blocks from this size on are mappings of their own: freed, they go back
/// to the kernel, and a block mapped again in their place is faulted in
/// (zeroed) afresh, where malloc would have reused a smaller block's memory.
pub const MAPPED_FROM: usize = HUGE;

/// The base page: a mapped block's alignment, and the smallest block whose
/// heap region is advised.
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

/// Whether a block is a mapping of our own ([`map`]) rather than malloc's: a
/// block of 2 MiB or more (an index, the wheel's nodes, a link queue). Both
/// ends of its life see the same layout, so the choice needs no record.
fn mapped(size: usize, align: usize) -> bool {
    cfg!(target_os = "linux") && size >= HUGE && align <= PAGE
}

/// A mapped block's length: whole granules, so that Linux places the mapping
/// on a 2 MiB boundary (since 6.7 it does for anonymous mappings of whole
/// granules; an older kernel, or an `mremap` that moves the block, may not,
/// and then its first and last granules stay on 4 KiB pages) and every
/// granule of the block can be one huge page, and so that `mremap` moves them
/// as whole page-table entries instead of splitting them. The price: touching
/// a block's last, partly used granule can fault in all 2 MiB of it, so the
/// process's RSS may exceed the live bytes counted here by up to 2 MiB per
/// big block.
fn span(size: usize) -> usize {
    size.next_multiple_of(HUGE)
}

/// Maps a big block, advised for huge pages before anyone touches it (see
/// [`advise_huge`]). Mapping big blocks ourselves rather than through malloc
/// is what glibc's `glibc.malloc.hugetlb=1` does in effect, without the
/// variable: malloc carves big blocks out of its heaps' top (64 MiB of
/// `M_TOP_PAD`) and, when a heap is full, `realloc` copies such a block into
/// a fresh mapping before we could advise it, faulting it in on 4 KiB pages.
#[cfg(target_os = "linux")]
fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory changes.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span(size),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    // SAFETY: the mapping just made; MADV_HUGEPAGE changes only how its
    // pages are backed, never their contents or whether they are mapped.
    unsafe {
        libc::madvise(p, span(size), libc::MADV_HUGEPAGE);
    }
    p.cast()
}

/// Moves or grows a mapped block in place of copying it: `mremap` moves page
/// table entries, and the advice moves with the mapping.
#[cfg(target_os = "linux")]
fn remap(p: *mut u8, size: usize, new_size: usize) -> *mut u8 {
    // SAFETY: `p` is a mapping of `span(size)` bytes made by `map` and still
    // owned by the caller, who gives it up here.
    let q = unsafe { libc::mremap(p.cast(), span(size), span(new_size), libc::MREMAP_MAYMOVE) };
    if q == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    q.cast()
}

#[cfg(target_os = "linux")]
fn unmap(p: *mut u8, size: usize) {
    // SAFETY: `p` is a mapping of `span(size)` bytes made by `map`, given up
    // by its owner.
    unsafe {
        libc::munmap(p.cast(), span(size));
    }
}

#[cfg(not(target_os = "linux"))]
fn map(_: usize) -> *mut u8 {
    unreachable!("big blocks are mapped only on Linux")
}
#[cfg(not(target_os = "linux"))]
fn remap(_: *mut u8, _: usize, _: usize) -> *mut u8 {
    unreachable!("big blocks are mapped only on Linux")
}
#[cfg(not(target_os = "linux"))]
fn unmap(_: *mut u8, _: usize) {
    unreachable!("big blocks are mapped only on Linux")
}

/// Asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`) where a block
/// of malloc's lands: a table of millions of entries is probed at random, and
/// on 4 KiB pages nearly every probe also misses the TLB. Linux backs memory
/// with 2 MiB pages only where asked (`transparent_hugepage` is `madvise` by
/// default); a refusal only costs TLB misses. A block of a page or more (the
/// slab's 28 KiB chunks, the TIME-WAIT ring's 12 KiB ones) lives in one of
/// malloc's heaps: the whole region it lands in is advised, once. Blocks of
/// 2 MiB or more are [`map`]ped by us, advised whole.
#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, size: usize) {
    if !(PAGE..HUGE).contains(&size) {
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

// SAFETY: a block of 2 MiB or more (`mapped`, decided by the layout, which
// is the same at each end of the block's life) is a private anonymous mapping
// of its own, made, moved and unmapped only here; every other block goes to
// `System` with the caller's layout unchanged. Only bookkeeping on atomics and
// a destructor-free thread-local is added, and madvise(2) on the heap, none
// of which allocates or unwinds. Tested in `tests/memory.rs`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        heaps_whole();
        let p = if mapped(layout.size(), layout.align()) {
            map(layout.size())
        } else {
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        };
        if !p.is_null() {
            grew(layout.size());
            advise_huge(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            // A fresh mapping reads as zeroes.
            // SAFETY: same contract as ours.
            return unsafe { self.alloc(layout) };
        }
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
        if mapped(layout.size(), layout.align()) {
            unmap(ptr, layout.size());
        } else {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) };
        }
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let p = match (mapped(layout.size(), align), mapped(new_size, align)) {
            (true, true) => remap(ptr, layout.size(), new_size),
            (false, false) => {
                // SAFETY: same contract as ours.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            // Across the 2 MiB line the block moves between malloc and us.
            _ => {
                // SAFETY: `align` is a valid alignment (it is `layout`'s) and
                // the caller guarantees `new_size` rounded to it fits isize.
                let new = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: same contract as ours; `new` is not zero-sized.
                let q = unsafe { self.alloc(new) };
                if !q.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least
                    // this long; `alloc` counted the new one, and `dealloc`
                    // uncounts the old one.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                return q;
            }
        };
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

/// Enters an engine's `scope` for a run of calls into it that the driver's
/// own work comes between (a burst of segments, each handled and its events
/// and replies acted on), where a scope entered and left around each call
/// cost four thread-local accesses a call. The driver charges what it
/// allocates or frees in that run to the scope it entered from through
/// [`outside`], and enters the returned scope again at the run's end.
pub fn enter_engine_scope(scope: u16) -> u16 {
    let from = enter_scope(scope);
    OUTSIDE.with(|o| o.set(u32::from(scope) << 16 | u32::from(from)));
    from
}

/// Runs `f`, an allocation or free of the driver's own: within an engine's
/// run of calls ([`enter_engine_scope`]), charged to the scope the run was
/// entered from; otherwise to the scope the thread is in. A run is known by
/// its scope: the thread is in one while it is in the last run's engine
/// scope, which nothing but that engine's calls enter, so the run's end
/// needs no bookkeeping. Meant for cold paths (a buffer that grows or is
/// given back): it costs up to four thread-local accesses.
#[inline]
pub fn outside<R>(f: impl FnOnce() -> R) -> R {
    let run = OUTSIDE.with(Cell::get);
    let here = SCOPE.with(Cell::get);
    if here == 0 || u32::from(here) != run >> 16 {
        return f();
    }
    enter_scope(run as u16);
    let r = f();
    enter_scope(here);
    r
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
