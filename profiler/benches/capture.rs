//! Stack capture cost per call at ~16 frames: DWARF with and without the walk cache, repeated and
//! varying stacks, and frame pointers (which stop where a frame without them is met: this
//! binary, like every Rust release build, has none). A measurement, not an assertion:
//! `cargo bench -p tidemark --bench capture`.

use std::hint::black_box;
use tidemark::unwind::{process, Skip, StackBounds, ThreadUnwinder, UnwindMode, MAX_FRAMES};

#[inline(never)]
fn leaf(t: &mut ThreadUnwinder, mode: UnwindMode) -> usize {
    let mut out = [0u64; MAX_FRAMES];
    black_box(t.capture(mode, Skip::default(), &mut out).len)
}

#[inline(never)]
fn middle(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize) -> usize {
    let r = if depth == 0 {
        leaf(t, mode)
    } else {
        middle(t, mode, depth - 1)
    };
    black_box(r)
}

#[inline(never)]
fn timed(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize, vary: bool) -> (f64, usize) {
    let n = 200_000;
    let t0 = std::time::Instant::now();
    let mut frames = 0;
    for i in 0..n {
        let d = if vary { depth + (i & 7) } else { depth };
        frames = middle(t, mode, d);
    }
    (t0.elapsed().as_nanos() as f64 / n as f64, frames)
}

fn main() {
    process::rebuild();
    let mut t = ThreadUnwinder::new(StackBounds::current());
    for (mode, cache, vary) in [
        (UnwindMode::Dwarf, true, false),
        (UnwindMode::Dwarf, true, true),
        (UnwindMode::Dwarf, false, false),
        (UnwindMode::Fp, true, false),
    ] {
        t.set_walk_cache(cache);
        let (ns, frames) = timed(&mut t, mode, 14, vary);
        println!(
            "{mode:?} walk_cache={cache} vary={vary}: {ns:.1} ns per capture of {frames} frames"
        );
    }
}
