//! Blocks the program's allocator handed out before the library chose the bundled jemalloc or
//! not (used only to send their frees back to it; recording them is [`crate::earlylog`]'s job).
//!
//! The exported `malloc` is interposed from the moment the dynamic loader relocates the
//! program, but the allocator is chosen in the constructor, after the loader, libc and the
//! libraries initialised before this one (libstdc++'s exception pool, for one) have allocated.
//! Those blocks are glibc's. Until the choice is made every glibc block is listed here; when
//! jemalloc is chosen, a `free`, `realloc` or `malloc_usable_size` of a listed block goes back
//! to glibc. Lookups only happen while the table is non-empty.
//!
//! A fixed open-addressing table of atomics (never allocates): inserts happen only before the
//! choice, lookups and removals at any time. Removed entries become tombstones, so probe
//! chains stay intact.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Slots; the table refuses entries beyond three quarters of them.
const CAP: usize = 4096;
const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

/// The table.
pub struct EarlyBlocks {
    slots: [AtomicUsize; CAP],
    live: AtomicUsize,
    overflowed: AtomicBool,
}

#[inline(always)]
fn home(addr: usize) -> usize {
    // Fibonacci hashing of the address without its always-zero low bits.
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CAP.trailing_zeros())) as usize
}

impl EarlyBlocks {
    /// An empty table.
    pub const fn new() -> EarlyBlocks {
        EarlyBlocks {
            slots: [const { AtomicUsize::new(EMPTY) }; CAP],
            live: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Lists a block. False (and [`EarlyBlocks::overflowed`] from then on) when the table is
    /// full.
    pub fn insert(&self, addr: usize) -> bool {
        if addr <= TOMBSTONE {
            return true;
        }
        if self.live.load(Ordering::Relaxed) >= CAP / 4 * 3 {
            self.overflowed.store(true, Ordering::Release);
            return false;
        }
        let h = home(addr);
        for n in 0..CAP {
            let i = (h + n) % CAP;
            let slot = &self.slots[i];
            let cur = slot.load(Ordering::Acquire);
            if (cur == EMPTY || cur == TOMBSTONE)
                && slot
                    .compare_exchange(cur, addr, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.live.fetch_add(1, Ordering::AcqRel);
                return true;
            }
        }
        self.overflowed.store(true, Ordering::Release);
        false
    }

    /// The slot holding `addr`, if listed.
    #[inline]
    fn find(&self, addr: usize) -> Option<&AtomicUsize> {
        if addr <= TOMBSTONE {
            return None;
        }
        let h = home(addr);
        for n in 0..CAP {
            let slot = &self.slots[(h + n) % CAP];
            match slot.load(Ordering::Acquire) {
                EMPTY => return None,
                a if a == addr => return Some(slot),
                _ => {}
            }
        }
        None
    }

    /// True when `addr` is listed.
    pub fn contains(&self, addr: usize) -> bool {
        !self.is_empty() && self.find(addr).is_some()
    }

    /// Unlists `addr`; true when it was listed.
    #[inline]
    pub fn remove(&self, addr: usize) -> bool {
        if self.is_empty() {
            return false;
        }
        match self.find(addr) {
            Some(slot)
                if slot
                    .compare_exchange(addr, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok() =>
            {
                self.live.fetch_sub(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    /// True when nothing is listed.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.live.load(Ordering::Acquire) == 0
    }

    /// Listed blocks.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// True once a block could not be listed: such a block would be unknown later, so the
    /// library must stay on glibc.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove() {
        let t = Box::new(EarlyBlocks::new());
        assert!(t.is_empty());
        assert!(!t.remove(0x1000));
        let addrs: Vec<usize> = (0..1000).map(|i| 0x7f00_0000_0000 + i * 48).collect();
        for &a in &addrs {
            assert!(t.insert(a));
        }
        assert_eq!(t.len(), 1000);
        assert!(addrs.iter().all(|&a| t.contains(a)));
        assert!(!t.contains(0x7f00_0000_0008));
        for &a in addrs.iter().step_by(2) {
            assert!(t.remove(a));
            assert!(!t.remove(a));
        }
        assert_eq!(t.len(), 500);
        // Entries behind tombstones are still found.
        assert!(addrs.iter().skip(1).step_by(2).all(|&a| t.contains(a)));
        assert!(addrs.iter().step_by(2).all(|&a| !t.contains(a)));
        // Re-inserting reuses tombstones.
        for &a in addrs.iter().step_by(2) {
            assert!(t.insert(a));
        }
        assert_eq!(t.len(), 1000);
        for &a in &addrs {
            assert!(t.remove(a));
        }
        assert!(t.is_empty());
        assert!(!t.overflowed());
        assert!(!t.contains(0) && !t.remove(1));
    }

    #[test]
    fn refuses_beyond_three_quarters() {
        let t = Box::new(EarlyBlocks::new());
        let mut n = 0;
        while t.insert(0x10_0000 + n * 16) {
            n += 1;
        }
        assert_eq!(n, CAP / 4 * 3);
        assert!(t.overflowed());
        assert!(t.contains(0x10_0000 + (n - 1) * 16));
    }
}
