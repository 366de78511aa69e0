//! The replay's table of live blocks.
//!
//! A version-2 profile names its blocks by number ([`BLOCK_ID`] and the count of allocations
//! before it), and most blocks die young. There the table is a ring of the last [`RING`] block
//! numbers, indexed by number, with a hash map for the blocks that outlive the ring: an
//! allocation writes the slot after the previous one and a free of a young block finds its slot
//! by arithmetic, where a hash map would touch a random cache line for each (the replay's largest
//! cost on a profile with many live blocks). A block still live when the ring wraps around to its
//! slot moves to the map, so memory stays the ring plus the live blocks. Blocks named by address
//! (version 1, or frees of blocks the profile never saw allocated) use the map only.
//!
//! With the ring, the newest block waits beside the table until the next allocation: a block
//! freed before then (a churn loop's, a temporary's) never touches the ring at all.

use rustc_hash::FxHashMap as HashMap;
use tidemark::format::BLOCK_ID;

/// A live block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    /// Requested bytes (in a sampled profile: the estimated bytes this sample stands for).
    pub size_bytes: u64,
    /// Stack slot (index of its aggregates); [`EMPTY`] marks a free ring slot.
    pub stack: u32,
    pub tid: u32,
}

/// Ring slots: block numbers this far behind the newest are found without hashing.
pub(super) const RING: usize = 1 << 16;
/// The stack of a free ring slot (no stack slot reaches it).
const EMPTY: u32 = u32::MAX;
const VACANT: Block = Block {
    size_bytes: 0,
    stack: EMPTY,
    tid: 0,
};

/// Live blocks by key (address, or [`BLOCK_ID`] and number).
#[derive(Debug, Default)]
pub(super) struct LiveTable {
    /// Blocks numbered `hi - RING .. hi`, at `number % RING`; empty unless asked for.
    ring: Vec<Block>,
    /// One past the highest block number the ring has seen.
    hi: u64,
    /// Blocks outside the ring.
    map: HashMap<u64, Block>,
    /// The newest block, not stored yet (only with the ring).
    newest: Option<(u64, Block)>,
}

impl LiveTable {
    /// A table with the ring, for keys that are block numbers given out in increasing order.
    pub(super) fn with_ring() -> Self {
        LiveTable {
            ring: vec![VACANT; RING],
            ..LiveTable::default()
        }
    }

    /// The ring slot of `key` when it is a block number inside the ring's window.
    #[inline]
    fn slot(&self, key: u64) -> Option<usize> {
        if self.ring.is_empty() || key & BLOCK_ID == 0 {
            return None;
        }
        let n = key & !BLOCK_ID;
        (n < self.hi && n + RING as u64 >= self.hi).then_some(n as usize % RING)
    }

    /// Moves the window so that it ends after block number `n`: blocks leaving it that are still
    /// live go to the map.
    fn advance(&mut self, n: u64) {
        let base = self.hi.saturating_sub(RING as u64);
        let from = self.hi.max((n + 1).saturating_sub(RING as u64));
        for m in from..=n {
            let s = &mut self.ring[m as usize % RING];
            if s.stack != EMPTY {
                // The one number of the old window that shares this slot.
                let old_n = base + (m - base) % RING as u64;
                let old = std::mem::replace(s, VACANT);
                self.map.insert(BLOCK_ID | old_n, old);
            }
        }
        self.hi = n + 1;
    }

    /// Adds a block; returns the one that was live under the same key.
    #[inline]
    pub(super) fn insert(&mut self, key: u64, block: Block) -> Option<Block> {
        debug_assert_ne!(block.stack, EMPTY);
        if self.ring.is_empty() {
            return self.map.insert(key, block);
        }
        if let Some((k, b)) = self.newest.take() {
            if k == key {
                self.newest = Some((key, block));
                return Some(b);
            }
            self.store(k, b);
        }
        let old = self.take_stored(key);
        self.newest = Some((key, block));
        old
    }

    /// Stores a block under a key that has none (ring only).
    fn store(&mut self, key: u64, block: Block) {
        if key & BLOCK_ID != 0 && (key & !BLOCK_ID) >= self.hi {
            self.advance(key & !BLOCK_ID);
        }
        match self.slot(key) {
            Some(i) => {
                let old = std::mem::replace(&mut self.ring[i], block);
                debug_assert_eq!(old.stack, EMPTY, "a stored key had a block");
            }
            None => {
                let old = self.map.insert(key, block);
                debug_assert!(old.is_none(), "a stored key had a block");
            }
        }
    }

    /// Takes the stored block under `key` (ring or map) out of the table.
    #[inline]
    fn take_stored(&mut self, key: u64) -> Option<Block> {
        match self.slot(key) {
            Some(i) => {
                let old = std::mem::replace(&mut self.ring[i], VACANT);
                (old.stack != EMPTY).then_some(old)
            }
            // A number the ring has not reached yet was never stored.
            None if !self.ring.is_empty()
                && key & BLOCK_ID != 0
                && (key & !BLOCK_ID) >= self.hi =>
            {
                None
            }
            None => self.map.remove(&key),
        }
    }

    /// Takes the block live under `key` out of the table.
    #[inline]
    pub(super) fn remove(&mut self, key: u64) -> Option<Block> {
        if let Some((k, b)) = self.newest {
            if k == key {
                self.newest = None;
                return Some(b);
            }
        }
        self.take_stored(key)
    }

    /// Every live block and its key: the map's, the ring's, the newest.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Block)> {
        let base = self.hi.saturating_sub(RING as u64);
        let ring = (base..self.hi).filter_map(move |n| {
            let b = &self.ring[n as usize % RING];
            (b.stack != EMPTY).then_some((BLOCK_ID | n, b))
        });
        // Without a ring `hi` stays 0 and the range is empty.
        let newest = self.newest.iter().map(|(k, b)| (*k, b));
        self.map
            .iter()
            .map(|(&k, b)| (k, b))
            .chain(ring)
            .chain(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(size: u64) -> Block {
        Block {
            size_bytes: size,
            stack: 0,
            tid: 1,
        }
    }

    /// The ring and the map hold the same blocks a plain map would, whatever their age.
    #[test]
    fn ring_agrees_with_a_map() {
        let mut t = LiveTable::with_ring();
        let mut m: HashMap<u64, Block> = HashMap::default();
        let n = 3 * RING as u64 + 17;
        for i in 0..n {
            let key = BLOCK_ID | i;
            assert_eq!(t.insert(key, block(i)), m.insert(key, block(i)));
            // Free some young blocks and some older than the ring.
            for back in [1, 7, RING as u64 + 5] {
                if i % 3 == 0 && i >= back {
                    let k = BLOCK_ID | (i - back);
                    assert_eq!(t.remove(k), m.remove(&k), "block {}", i - back);
                }
            }
        }
        // A jump far ahead moves every block of the old window to the map.
        let far = n + 5 * RING as u64 + 3;
        assert_eq!(t.insert(BLOCK_ID | far, block(far)), None);
        m.insert(BLOCK_ID | far, block(far));
        // A key that is an address, not a number, and a free of an unknown block.
        assert_eq!(t.insert(0x1000, block(1)), m.insert(0x1000, block(1)));
        assert_eq!(t.remove(0x2000), None);
        assert_eq!(t.remove(BLOCK_ID | (n + 5)), None);
        assert_eq!(t.remove(BLOCK_ID | (far + 1)), None);
        let mut a: Vec<(u64, Block)> = t.iter().map(|(k, b)| (k, *b)).collect();
        let mut b: Vec<(u64, Block)> = m.into_iter().collect();
        a.sort_by_key(|e| e.0);
        b.sort_by_key(|e| e.0);
        assert_eq!(a.len(), b.len());
        assert_eq!(a, b);
        // The blocks that left the ring live in the map only.
        assert!(t.map.len() < a.len());
    }

    /// Without the ring (block groups and time buckets keep the plain map), block numbers are
    /// keys like any other.
    #[test]
    fn without_the_ring_numbers_are_plain_keys() {
        let mut t = LiveTable::default();
        for i in 0..10 {
            assert_eq!(t.insert(BLOCK_ID | i, block(i)), None);
        }
        assert_eq!(t.remove(BLOCK_ID | 9), Some(block(9)));
        assert_eq!(t.remove(BLOCK_ID | 3), Some(block(3)));
        assert_eq!(t.insert(BLOCK_ID | 4, block(40)), Some(block(4)));
        assert_eq!(t.remove(BLOCK_ID | 3), None);
        assert_eq!(t.iter().count(), 8);
    }

    #[test]
    fn reinserting_a_live_number_returns_the_old_block() {
        let mut t = LiveTable::with_ring();
        assert_eq!(t.insert(BLOCK_ID | 5, block(1)), None);
        assert_eq!(t.insert(BLOCK_ID | 5, block(2)), Some(block(1)));
        assert_eq!(t.remove(BLOCK_ID | 5), Some(block(2)));
        assert_eq!(t.remove(BLOCK_ID | 5), None);
    }
}
