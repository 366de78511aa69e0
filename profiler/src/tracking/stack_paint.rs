//! The stack peak of a closure ([`super::measure`]): paint the unused stack below the current
//! stack pointer with a pattern before the call, and find after it the lowest word that no
//! longer holds the pattern.
//!
//! ```text
//!  hi (stack top) ┌──────────────┐
//!                 │ callers      │
//!  measure's sp ──┤              │ ◄─ peak measured from here
//!                 │ paint frame  │    (≈ 0.5–1 KiB unpainted: the resolution)
//!  painted.hi ────┤··pattern·····│ ◄─ f's frames overwrite the pattern…
//!                 │··pattern·····│ ◄─ …down to its deepest point
//!  painted.lo ────┴──────────────┘    (at most PAINT_MAX_BYTES below, above the guard)
//! ```
//!
//! Painting writes only below the stack pointer, inside the thread's stack mapping (the main
//! thread's grows on demand up to its rlimit); nothing live is there.

use crate::unwind::StackBounds;

/// Most bytes painted (and scanned): a deeper closure reports this much.
const PAINT_MAX_BYTES: u64 = 1 << 20;
/// Left unpainted right below the painting frame (red zone and the callee frames of `paint`).
const RED_ZONE_BYTES: u64 = 512;
/// Kept unpainted above the lowest address of the stack mapping.
const GUARD_BYTES: u64 = 16 << 10;
/// The pattern ("tidemark" in ASCII).
const PATTERN: u64 = 0x6b72_616d_6564_6974;

/// A painted range `[lo, hi)` below the stack pointer `top` of the caller of [`paint`].
#[derive(Debug, Clone, Copy)]
pub struct Painted {
    top: u64,
    lo: u64,
    hi: u64,
}

/// Paints the stack below the caller's frame; `None` when the stack's bounds are unknown.
#[inline(never)]
pub fn paint(top: u64) -> Option<Painted> {
    let sp = crate::unwind::stack_pointer();
    let b = StackBounds::current();
    if b.lo == 0 || sp < b.lo + GUARD_BYTES + RED_ZONE_BYTES || sp > b.hi || top < sp {
        return None;
    }
    let hi = (sp - RED_ZONE_BYTES) & !7;
    let lo = hi.saturating_sub(PAINT_MAX_BYTES).max(b.lo + GUARD_BYTES) & !7;
    let mut a = lo;
    while a < hi {
        // SAFETY: `a` is an aligned word of this thread's stack mapping, below the stack pointer
        // (unused: nothing live lies below the stack pointer beyond the red zone kept above).
        unsafe { std::ptr::write_volatile(a as *mut u64, PATTERN) };
        a += 8;
    }
    Some(Painted { top, lo, hi })
}

/// The deepest stack use since [`paint`], bytes below its `top`.
#[inline(never)]
pub fn scan(p: Painted) -> u64 {
    let mut a = p.lo;
    while a < p.hi {
        // SAFETY: the painted range lies in this thread's stack mapping (see `paint`).
        if unsafe { std::ptr::read_volatile(a as *const u64) } != PATTERN {
            break;
        }
        a += 8;
    }
    p.top.saturating_sub(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn use_stack(bytes: usize) -> u64 {
        let mut a = [0u8; 32 << 10];
        let a = std::hint::black_box(&mut a[..bytes]);
        a.fill(1);
        a.iter().map(|&b| u64::from(b)).sum()
    }

    #[test]
    fn a_closure_using_32_kib_of_stack_peaks_near_32_kib() {
        let top = crate::unwind::stack_pointer();
        let p = paint(top).expect("bounds of the test thread");
        assert_eq!(std::hint::black_box(use_stack(32 << 10)), 32 << 10);
        let peak = scan(p);
        assert!((32 << 10..(32 << 10) + 4096).contains(&peak), "{peak}");
    }
}
