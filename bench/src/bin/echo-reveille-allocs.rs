//! The reveille echo server with a counting global allocator, for the
//! allocations-per-message figure.
//!
//! Each line on standard input asks for a snapshot: the server answers with
//! `allocations N` on standard output (the number of heap allocations since
//! start). The runner takes one when the load generator's warm-up ends and
//! one when its measurement ends, and divides the difference by the messages
//! echoed in between.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every call to the system allocator unchanged; counting is
// a relaxed atomic increment with no other effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    std::thread::spawn(|| {
        // One buffer for every line, so that answering allocates nothing
        // after the first snapshot.
        let mut line = String::with_capacity(64);
        loop {
            line.clear();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let count = ALLOCATIONS.load(Ordering::Relaxed);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "allocations {count}");
            let _ = out.flush();
        }
    });
    bench::servers::reveille::run(bench::ServerArgs::from_env());
}
