//! Heap accounting for the benchmarks: a global allocator that tracks the live bytes of the
//! whole process and their high-water mark, and on request those of one thread.
//!
//! Include it with `#[path = "common/alloc.rs"] mod alloc;`; it installs itself as the
//! `#[global_allocator]`. [`heap_high_water`] measures the whole process (right when one
//! thread does the work); [`thread_high_water`] only the calling thread, for benches where
//! other threads (an in-process server) allocate at the same time.

#![allow(dead_code)] // each bench uses a different part

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Set once any thread measures itself; until then the per-thread path costs one load.
static PER_THREAD: AtomicBool = AtomicBool::new(false);

/// One thread's live bytes since its measurement began (negative when it frees memory that
/// was allocated before) and their high-water mark.
struct ThreadHeap {
    on: Cell<bool>,
    current: Cell<isize>,
    peak: Cell<isize>,
}

thread_local! {
    // Const-initialized and without Drop: safe to touch from inside the allocator.
    static THREAD: ThreadHeap = const {
        ThreadHeap {
            on: Cell::new(false),
            current: Cell::new(0),
            peak: Cell::new(0),
        }
    };
}

fn thread_delta(delta: isize) {
    if !PER_THREAD.load(Ordering::Relaxed) {
        return;
    }
    let _ = THREAD.try_with(|t| {
        if t.on.get() {
            let now = t.current.get() + delta;
            t.current.set(now);
            if now > t.peak.get() {
                t.peak.set(now);
            }
        }
    });
}

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
    thread_delta(n as isize);
}

fn shrank(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
    thread_delta(-(n as isize));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the most heap bytes that were live during it, over
/// what was live when it started (the whole process: every thread counts).
pub fn heap_high_water<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

/// Like [`heap_high_water`], counting only what the calling thread allocates and frees while
/// `f` runs. Calls nest: an outer measurement still sees the inner one's peak.
pub fn thread_high_water<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PER_THREAD.store(true, Ordering::SeqCst);
    let (was_on, base, outer_peak) = THREAD.with(|t| {
        let saved = (t.on.get(), t.current.get(), t.peak.get());
        t.on.set(true);
        t.peak.set(t.current.get());
        saved
    });
    let out = f();
    let peak = THREAD.with(|t| {
        let peak = t.peak.get();
        t.on.set(was_on);
        t.peak.set(peak.max(outer_peak));
        peak
    });
    (out, (peak - base).max(0) as usize)
}
