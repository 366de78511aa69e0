//! Allocation sites behind Rust's allocator machinery, with exact ground truth.
//!
//! Each `#[inline(never)]` function below allocates through a different piece of machinery (Box,
//! Vec growth, `<[T]>::to_vec`, String growth, `format!`, HashMap growth, `BTreeMap`). A counting
//! global allocator (itself machinery: an implementation of `GlobalAlloc`) measures how many
//! allocation calls each makes; the program prints `site <function> <calls>` for each, and the
//! test checks that the profile attributes exactly those calls to that function as the site.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[inline(never)]
fn boxes() -> Vec<Box<[u64; 4]>> {
    let mut v = Vec::with_capacity(100);
    for i in 0..100u64 {
        v.push(Box::new([i; 4]));
    }
    v
}

#[inline(never)]
fn vec_growth() -> Vec<u64> {
    let mut v = Vec::new();
    for i in 0..5000u64 {
        v.push(black_box(i));
    }
    v
}

#[inline(never)]
fn slice_copies(src: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(50);
    for _ in 0..50 {
        out.push(black_box(src).to_vec());
    }
    out
}

#[inline(never)]
fn string_growth() -> String {
    let mut s = String::new();
    for i in 0..3000u32 {
        s.push(char::from(b'a' + (black_box(i) % 26) as u8));
    }
    s
}

#[inline(never)]
fn formatted() -> Vec<String> {
    let mut out = Vec::with_capacity(40);
    for i in 0..40u32 {
        out.push(format!("item number {} of {}", black_box(i), 40));
    }
    out
}

#[inline(never)]
fn hash_growth() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for i in 0..3000u64 {
        m.insert(black_box(i), i);
    }
    m
}

#[inline(never)]
fn btree_nodes() -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for i in 0..2000u64 {
        m.insert(black_box(i), i);
    }
    m
}

fn measure<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let before = CALLS.load(Ordering::Relaxed);
    let v = f();
    let after = CALLS.load(Ordering::Relaxed);
    // The counts are printed after the measurement, so printing does not count.
    println!("site {name} {}", after - before);
    v
}

fn main() {
    let src = vec![7u8; 300];
    let a = measure("boxes", boxes);
    let b = measure("vec_growth", vec_growth);
    let c = measure("slice_copies", || slice_copies(&src));
    let d = measure("string_growth", string_growth);
    let e = measure("formatted", formatted);
    let f = measure("hash_growth", hash_growth);
    let g = measure("btree_nodes", btree_nodes);
    black_box((a, b, c, d, e, f, g));
}
