//! The writer's table of live blocks by address, for naming each free by its block's number.
//!
//! Most frees in allocation-heavy code free one of the last few blocks made (a temporary:
//! churn frees every block right after making it). So the newest blocks wait in a small ring
//! and reach the hash map only when pushed out by newer ones; a free that finds its block in
//! the ring never touches the map, which is where the writer spent most of its time per free
//! (a hash, a probe, a cache miss on large live sets).
//!
//! The answers are exactly those of one map from address to block where an allocation at an
//! address already present replaces the older block (which stays live but can no longer be
//! found: its free was never recorded). Two cases need care:
//!
//! - an allocation at an address already in the ring drops the older ring entry;
//! - an address in the ring may also be in the map (an older block whose free was not
//!   recorded): when its ring entry is freed, the map entry goes too, as it would have been
//!   replaced. A per-bucket count of the map's addresses says when the map cannot hold it,
//!   so the common case skips the map.
//!
//! Map entries are 16 bytes: the block's number and size packed in one word when they fit
//! (numbers below 2^40, sizes below 2^24 − 1), else in a side map. The map is an open-addressing
//! table of its own ([`AddrTable`]) so that the writer can prefetch the slot of a free a few
//! events before it gets there: on a large live set (python3) each lookup otherwise waits for
//! a cache miss.

use rustc_hash::FxHashMap;

/// Blocks kept in the ring.
const RING: usize = 8;
/// How many allocations ahead a block's move from the ring to the map is prefetched.
const PREFETCH_RING: usize = 7;
/// Buckets of the map's address counts (a power of two).
const FILTER: usize = 1 << 12;
/// Bits of a packed entry's size.
const SIZE_BITS: u32 = 24;
/// Packed size meaning "look in the side map".
const SIZE_ESCAPE: u64 = (1 << SIZE_BITS) - 1;

/// A live block: its number in the stream and its requested size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Its number in the stream.
    pub n: u64,
    /// Requested bytes.
    pub size: u64,
}

/// See the module documentation.
pub struct LiveBlocks {
    /// Ring of the newest blocks: `(address, block)`, the newest at `head - 1`; address 0 marks
    /// an empty slot (no block is ever recorded at address 0).
    ring: [(u64, Block); RING],
    head: usize,
    /// Older blocks: address → number and size packed (see [`pack`]).
    map: AddrTable,
    /// Blocks whose number or size do not fit a packed entry.
    wide: FxHashMap<u64, Block>,
    /// Per bucket of addresses, how many the map holds.
    counts: Box<[u32; FILTER]>,
}

impl Default for LiveBlocks {
    fn default() -> Self {
        LiveBlocks {
            ring: [(0, Block { n: 0, size: 0 }); RING],
            head: 0,
            map: AddrTable::default(),
            wide: FxHashMap::default(),
            counts: Box::new([0; FILTER]),
        }
    }
}

/// The filter bucket of an address (blocks are at least 8-byte aligned: skip those bits).
#[inline(always)]
fn bucket(addr: u64) -> usize {
    ((addr >> 4) ^ (addr >> 16)) as usize & (FILTER - 1)
}

/// A block as one word, or `None` when it does not fit.
#[inline(always)]
fn pack(b: Block) -> Option<u64> {
    (b.size < SIZE_ESCAPE && b.n < 1 << (64 - SIZE_BITS)).then_some((b.n << SIZE_BITS) | b.size)
}

impl LiveBlocks {
    /// Starts loading what a later [`LiveBlocks::remove`] of `addr` reads.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        self.map.prefetch(addr);
    }

    /// Adds the block at `addr` (the newest), replacing any block found there.
    #[inline]
    pub fn insert(&mut self, addr: u64, b: Block) {
        if addr == 0 {
            // Never a real block; kept out of the ring, whose empty slots are address 0.
            self.map_insert(addr, b);
            return;
        }
        for slot in &mut self.ring {
            if slot.0 == addr {
                // Replaced, as a map insert would.
                slot.0 = 0;
            }
        }
        let old = self.ring[self.head];
        self.ring[self.head] = (addr, b);
        self.head = (self.head + 1) % RING;
        if old.0 != 0 {
            self.map_insert(old.0, old.1);
        }
        // The block that moves to the map a few allocations from now (unless freed first): its
        // slot starts loading now. A large live set (millions of blocks allocated before they
        // are freed) otherwise waits for a cache miss at each of those inserts.
        let soon = self.ring[(self.head + PREFETCH_RING - 1) % RING].0;
        if soon != 0 {
            self.map.prefetch(soon);
        }
    }

    /// Removes and returns the block at `addr`.
    #[inline]
    pub fn remove(&mut self, addr: u64) -> Option<Block> {
        if addr != 0 {
            if let Some(slot) = self.ring.iter_mut().find(|s| s.0 == addr) {
                slot.0 = 0;
                let b = slot.1;
                if self.counts[bucket(addr)] != 0 {
                    // An older block at the same address, never freed: this one replaced it.
                    self.map_remove(addr);
                }
                return Some(b);
            }
        }
        self.map_remove(addr)
    }

    fn map_insert(&mut self, addr: u64, b: Block) {
        let v = match pack(b) {
            Some(v) => v,
            None => {
                self.wide.insert(addr, b);
                u64::MAX
            }
        };
        match self.map.insert(addr, v) {
            None => self.counts[bucket(addr)] += 1,
            Some(old) => {
                if old == u64::MAX && v != u64::MAX {
                    self.wide.remove(&addr);
                }
            }
        }
    }

    fn map_remove(&mut self, addr: u64) -> Option<Block> {
        let v = self.map.remove(addr)?;
        self.counts[bucket(addr)] -= 1;
        if v == u64::MAX {
            return self.wide.remove(&addr);
        }
        Some(Block {
            n: v >> SIZE_BITS,
            size: v & SIZE_ESCAPE,
        })
    }
}

/// Open-addressing table from address to one word: linear probing, removal by shifting the
/// following entries back (no tombstones), at most 3/4 full (5/8 took twice the memory for 3 M
/// live blocks, and was no faster: docs/performance.md, speed round 10). Address 0 (the
/// empty-slot mark) is held beside the slots.
struct AddrTable {
    slots: Vec<(u64, u64)>,
    /// `64 - log2(slots.len())`: a slot index is the top bits of the address's hash.
    shift: u32,
    len: usize,
    zero: Option<u64>,
}

impl Default for AddrTable {
    fn default() -> Self {
        AddrTable {
            slots: crate::sys::mem::zeroed_vec(1 << 10, (0, 0)),
            shift: 64 - 10,
            len: 0,
            zero: None,
        }
    }
}

impl AddrTable {
    /// Home slot of `addr` (Fibonacci hashing of the address without its alignment bits).
    #[inline(always)]
    fn home(&self, addr: u64) -> usize {
        ((addr >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.slots.as_ptr().wrapping_add(self.home(addr));
            // SAFETY: a prefetch is a hint that never faults, and `p` points into `slots`.
            unsafe {
                core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
            };
        }
    }

    /// Sets the word of `addr`; returns the one it replaces.
    fn insert(&mut self, addr: u64, v: u64) -> Option<u64> {
        if addr == 0 {
            let old = self.zero.replace(v);
            self.len += usize::from(old.is_none());
            return old;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let slot = &mut self.slots[i];
            if slot.0 == addr {
                return Some(std::mem::replace(&mut slot.1, v));
            }
            if slot.0 == 0 {
                *slot = (addr, v);
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `addr`; returns its word.
    fn remove(&mut self, addr: u64) -> Option<u64> {
        if addr == 0 {
            let old = self.zero.take();
            self.len -= usize::from(old.is_some());
            return old;
        }
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let k = self.slots[i].0;
            if k == addr {
                break;
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
        let v = self.slots[i].1;
        self.len -= 1;
        // Shift back the entries after the hole whose home is not between the hole and them.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let (k, w) = self.slots[j];
            if k == 0 {
                break;
            }
            let h = self.home(k);
            // Movable when its home lies cyclically outside (hole, j].
            if (j.wrapping_sub(h) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = (k, w);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = (0, 0);
        Some(v)
    }

    /// Doubles the slots.
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        // Mapped writable now: the probes below read a slot before writing it, and a page first
        // mapped by a read costs a TLB flush on every CPU of the process when written.
        let old = std::mem::replace(&mut self.slots, crate::sys::mem::zeroed_vec(n, (0, 0)));
        self.shift -= 1;
        let mask = self.mask();
        for (k, v) in old {
            if k != 0 {
                let mut i = self.home(k);
                while self.slots[i].0 != 0 {
                    i = (i + 1) & mask;
                }
                self.slots[i] = (k, v);
            }
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The reference: one map, an insert replacing what is there.
    #[test]
    fn answers_like_one_map() {
        let mut live = LiveBlocks::default();
        let mut reference: HashMap<u64, Block> = HashMap::new();
        // A deterministic mix of temporaries, long-lived blocks, reused addresses whose frees
        // were lost, frees of unknown blocks, huge sizes and numbers, and address 0.
        let mut x: u64 = 0x1234_5678;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = match x % 7 {
                0 => 0,
                1..=3 => 0x1000 + (x >> 8) % 64 * 16,
                _ => 0x10_0000 + (x >> 8) % 4096 * 32,
            };
            let n = if x.is_multiple_of(97) {
                (1 << 41) + i
            } else {
                i
            };
            let size = if x.is_multiple_of(89) {
                1 << 30
            } else {
                (x >> 20) % 512
            };
            if (x >> 3).is_multiple_of(3) {
                assert_eq!(live.remove(addr), reference.remove(&addr), "step {i}");
            } else {
                let b = Block { n, size };
                live.insert(addr, b);
                reference.insert(addr, b);
            }
        }
        let mut left: Vec<u64> = reference.keys().copied().collect();
        left.sort_unstable();
        for a in left {
            assert_eq!(live.remove(a), reference.remove(&a));
        }
        assert!(live.map.is_empty() && live.wide.is_empty());
        assert!(live.counts.iter().all(|&c| c == 0));
        assert!(live.ring.iter().all(|s| s.0 == 0));
    }

    #[test]
    fn address_table_answers_like_a_map() {
        let mut t = AddrTable::default();
        let mut reference: HashMap<u64, u64> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9;
        for i in 0..400_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Dense runs of neighbours, pages apart, and 0: long probe runs and wrap-around.
            let addr = match x % 5 {
                0 => 0,
                1 | 2 => 0x7f00_0000_0000 + (x >> 12) % 20_000 * 16,
                _ => 0x5000_0000 + (x >> 12) % 3_000 * 4096 + 16,
            };
            if (x >> 5) % 5 < 2 {
                assert_eq!(t.remove(addr), reference.remove(&addr), "step {i}");
            } else {
                assert_eq!(t.insert(addr, i), reference.insert(addr, i), "step {i}");
            }
            assert_eq!(t.len, reference.len());
        }
        for (&a, &v) in &reference {
            assert_eq!(t.remove(a), Some(v));
        }
        assert!(t.is_empty());
        assert!(t.slots.iter().all(|s| s.0 == 0));
    }
}
