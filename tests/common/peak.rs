//! Counts the bytes each thread holds allocated and their peak, so that a
//! stage's memory can be asserted exactly (not timed). Shared by the tests
//! that assert the SPEC's memory bound (tests/cost.rs, tests/parse_cost.rs):
//! including this module installs the counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Tracks the bytes allocated by this thread and their peak, so that a
/// stage's memory can be asserted exactly (not timed): the tests run on
/// several threads, and each measures its own.
struct Peak;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(by: isize) {
    // `try_with`: nothing to count while the thread is being torn down.
    let _ = LIVE.try_with(|l| {
        let now = l.get() + by;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping (two thread-local counters) neither allocates nor touches
// the memory.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Runs `f` and returns its result and the most bytes it held allocated
/// at once on this thread (beyond what was live before).
pub fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// The SPEC's memory bound for an input of `bytes`: 100 bytes per byte,
/// and never more than 256 MB below 1 MB.
pub fn memory_bound(bytes: usize) -> usize {
    if bytes < 1_000_000 {
        256_000_000
    } else {
        100 * bytes
    }
}
