use super::*;
use std::hint::black_box;

fn fn_addr(f: fn(&mut ThreadUnwinder, UnwindMode, usize) -> (Vec<u64>, u128)) -> u64 {
    f as *const () as usize as u64
}

#[inline(never)]
fn leaf(t: &mut ThreadUnwinder, mode: UnwindMode, _depth: usize) -> (Vec<u64>, u128) {
    let mut out = [0u64; MAX_FRAMES];
    let c = t.capture(mode, Skip::default(), &mut out);
    black_box((out[..c.len].to_vec(), c.hash))
}

#[inline(never)]
fn middle(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize) -> (Vec<u64>, u128) {
    let r = if depth == 0 {
        leaf(t, mode, 0)
    } else {
        middle(t, mode, depth - 1)
    };
    black_box(r)
}

#[inline(never)]
fn outer(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize) -> (Vec<u64>, u128) {
    let r = middle(t, mode, depth);
    black_box(r)
}

fn setup() -> ThreadUnwinder {
    process::rebuild();
    ThreadUnwinder::new(StackBounds::current())
}

fn within(ra: u64, f: u64) -> bool {
    // A return address lies after the function's start, within its (small) body.
    ra > f && ra < f + 4096
}

#[test]
fn dwarf_stack_names_the_callers() {
    let mut t = setup();
    // `capture` is inlined into `leaf`, whose own frame (frame 0) is never recorded: the stack
    // starts at the return address into leaf's caller.
    let (frames, _) = outer(&mut t, UnwindMode::Dwarf, 2);
    assert!(frames.len() >= 5, "{frames:x?}");
    assert!(within(frames[0], fn_addr(middle)), "{frames:x?}");
    assert!(within(frames[1], fn_addr(middle)));
    assert!(within(frames[2], fn_addr(middle)));
    assert!(within(frames[3], fn_addr(outer)));
}

#[test]
fn walk_cache_gives_the_same_stacks_as_fresh_walks() {
    let mut cached = setup();
    let mut fresh = ThreadUnwinder::new(StackBounds::current());
    fresh.set_walk_cache(false);
    for round in 0..3 {
        for depth in [0usize, 3, 1, 1, 7, 0, 2, 2, 2, 9] {
            let a = outer(&mut cached, UnwindMode::Dwarf, depth);
            let b = outer(&mut fresh, UnwindMode::Dwarf, depth);
            // The two calls come from different call sites in this function only at frames
            // above `outer`; compare the part below.
            let n = depth + 2;
            assert_eq!(a.0[..n], b.0[..n], "round {round} depth {depth}");
            let mut same_site = Vec::new();
            for _ in 0..black_box(3) {
                same_site.push(outer(&mut cached, UnwindMode::Dwarf, depth));
            }
            assert_eq!(same_site[0], same_site[1]);
            assert_eq!(same_site[1], same_site[2]);
            assert_eq!(same_site[0].0[..n], a.0[..n]);
            assert_eq!(hash::hash_frames(&a.0), a.1);
        }
    }
}

#[test]
fn fp_mode_starts_at_the_same_frame() {
    let mut t = setup();
    let (frames, h) = outer(&mut t, UnwindMode::Fp, 1);
    assert!(!frames.is_empty());
    assert!(within(frames[0], fn_addr(middle)));
    assert_eq!(hash::hash_frames(&frames), h);
}

#[inline(never)]
fn via(t: &mut ThreadUnwinder, skip: Skip) -> Captured {
    let mut out = [0u64; MAX_FRAMES];
    black_box(t.capture(UnwindMode::Dwarf, skip, &mut out))
}

#[test]
fn skip_by_marker_drops_inner_frames() {
    let mut t = setup();
    let all = via(&mut t, Skip::default());
    // This function plays the allocation function: frames at or below its stack pointer go.
    let sp = stack_pointer();
    let marker = Skip {
        own_module: false,
        marker_sp: sp,
    };
    let some = via(&mut t, marker);
    assert_eq!(some.len + 1, all.len);
    assert!(some.sp > sp);
}
