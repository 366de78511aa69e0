//! A map from kernel thread id to one word, with room for every thread id the kernel can hand
//! out and no allocator call: the recursion guard and thread-exit bookkeeping use it from inside
//! malloc hooks, where neither a lock nor an allocation is allowed.
//!
//! ```text
//!  tid (< 2^22, the kernel's PID_MAX_LIMIT on 64-bit)
//!   ├─ tid >> 12 ─► root[1024]: AtomicPtr to a leaf, mapped with mmap on first use (32 KiB)
//!   └─ tid & 4095 ─► leaf[4096]: AtomicUsize, 0 = absent
//! ```
//!
//! Thread ids are dense (the kernel hands out the lowest free ids above the last one), so a
//! process touches a few leaves. Leaves are never unmapped. A fixed-size set failed silently
//! once more threads than its slots registered or exited at the same time (issue 9): this
//! structure cannot fill up; the only failure left is `mmap` refusing a leaf, which callers
//! count as a dropped event.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Thread ids are below this (`PID_MAX_LIMIT` for 64-bit kernels, `include/linux/threads.h`).
const TID_LIMIT: usize = 1 << 22;
const LEAF_BITS: u32 = 12;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const ROOT_LEN: usize = TID_LIMIT >> LEAF_BITS;
const LEAF_BYTES: usize = LEAF_LEN * std::mem::size_of::<AtomicUsize>();

/// See the module documentation.
pub struct TidMap {
    root: [AtomicPtr<AtomicUsize>; ROOT_LEN],
}

impl TidMap {
    /// An empty map (all in `.bss`: 8 KiB of leaf pointers).
    pub const fn new() -> TidMap {
        TidMap {
            root: [const { AtomicPtr::new(std::ptr::null_mut()) }; ROOT_LEN],
        }
    }

    /// The word of `tid`; with `create`, maps its leaf when needed. `None` for an impossible tid,
    /// an absent leaf (without `create`) or when the system refuses memory.
    fn slot(&self, tid: u32, create: bool) -> Option<&AtomicUsize> {
        let tid = tid as usize;
        if tid >= TID_LIMIT {
            return None;
        }
        let root = &self.root[tid >> LEAF_BITS];
        let mut leaf = root.load(Ordering::Acquire);
        if leaf.is_null() {
            if !create {
                return None;
            }
            leaf = map_leaf()?;
            if let Err(other) = root.compare_exchange(
                std::ptr::null_mut(),
                leaf,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: `leaf` was mapped just above and never published.
                unsafe { libc::munmap(leaf.cast(), LEAF_BYTES) };
                leaf = other;
            }
        }
        // SAFETY: a published leaf has LEAF_LEN words and is never unmapped; the index is in
        // range.
        Some(unsafe { &*leaf.add(tid & (LEAF_LEN - 1)) })
    }

    /// The word stored for `tid` (0 when absent).
    #[inline]
    pub fn get(&self, tid: u32) -> usize {
        self.slot(tid, false)
            .map_or(0, |s| s.load(Ordering::Acquire))
    }

    /// Stores `value` for `tid`; false when the system refused the memory for it.
    pub fn set(&self, tid: u32, value: usize) -> bool {
        match self.slot(tid, true) {
            Some(s) => {
                s.store(value, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Clears `tid`'s word if it still holds `value`.
    pub fn clear_if(&self, tid: u32, value: usize) {
        if let Some(s) = self.slot(tid, false) {
            let _ = s.compare_exchange(value, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

impl Default for TidMap {
    fn default() -> Self {
        TidMap::new()
    }
}

/// A zeroed leaf from the kernel (never from malloc: this runs inside malloc hooks).
fn map_leaf() -> Option<*mut AtomicUsize> {
    // SAFETY: an anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEAF_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_possible_tid_and_clears_only_its_own_value() {
        let m = Box::new(TidMap::new());
        assert_eq!(m.get(5), 0);
        for tid in (1..TID_LIMIT as u32)
            .step_by(997)
            .chain([TID_LIMIT as u32 - 1])
        {
            assert!(m.set(tid, tid as usize + 7));
        }
        for tid in (1..TID_LIMIT as u32).step_by(997) {
            assert_eq!(m.get(tid), tid as usize + 7);
        }
        assert!(!m.set(TID_LIMIT as u32, 1));
        assert_eq!(m.get(TID_LIMIT as u32), 0);
        m.clear_if(1, 99);
        assert_eq!(m.get(1), 8);
        m.clear_if(1, 8);
        assert_eq!(m.get(1), 0);
    }

    #[test]
    fn concurrent_first_use_of_a_leaf_publishes_one_leaf() {
        let m: &'static TidMap = Box::leak(Box::new(TidMap::new()));
        let threads: Vec<_> = (0..8u32)
            .map(|i| std::thread::spawn(move || (0..512).all(|j| m.set(i * 512 + j, 1))))
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        assert!((0..4096).all(|tid| m.get(tid) == 1));
    }
}
