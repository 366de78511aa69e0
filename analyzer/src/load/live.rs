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
    /// Stack slot (index of its aggregates).
    pub stack: u32,
    /// The thread (in the live table: the replay's index of it, see [`Blocks`]).
    pub tid: u32,
}

/// Ring slots: block numbers this far behind the newest are found without hashing (the
/// default; see [`ring_for`]).
pub(super) const RING: usize = 1 << 16;
/// The most ring slots [`ring_for`] gives.
pub(super) const MAX_RING: usize = 1 << 18;

/// Ring slots for a profile whose trailer says `peak_blocks` blocks were live at once: [`RING`],
/// more (up to [`MAX_RING`]) for a profile with more live blocks than that. A program that
/// keeps many blocks frees many of them long after making them (perl's hash teardown frees
/// blocks 64,000–78,000 allocations back, just beyond [`RING`]), and a block freed from the
/// ring costs a slot's arithmetic where one that outlived it costs the look-up in `evicted`; a
/// larger ring for every profile cost the profiles of churning programs (C churn 1.05×, cc1plus
/// 1.07× in `summary`: their short-lived blocks cycled through 4 MiB of slots instead of 1).
pub(super) fn ring_for(peak_blocks: Option<u64>) -> usize {
    peak_blocks.map_or(RING, |n| {
        (n.min(MAX_RING as u64) as usize)
            .next_power_of_two()
            .clamp(RING, MAX_RING)
    })
}
/// What a [`LiveTable`] holds per block: the block ([`Packed`]), or what the replay keeps beside
/// it ([`super::replay`]'s `Extra`), with a value that marks a vacant ring slot.
pub(super) trait Slot: Copy + std::fmt::Debug {
    /// The vacant slot.
    const VACANT: Self;
    /// True for [`Slot::VACANT`] (never for a stored value).
    fn is_vacant(&self) -> bool;
}

/// Whole blocks in a table, for the tests of the table itself.
#[cfg(test)]
impl Slot for Block {
    const VACANT: Block = Block {
        size_bytes: 0,
        stack: u32::MAX,
        tid: 0,
    };
    fn is_vacant(&self) -> bool {
        self.stack == u32::MAX
    }
}

/// A live block in one word: its size (32 bits), stack slot (22) and thread index (10). A
/// block whose numbers do not fit is [`Packed::WIDE`] in the table and whole in
/// [`Blocks`]' side map. Half a [`Block`]'s 16 bytes: a program that keeps 3 M blocks live
/// (`liveset`) needs 24 MB for them instead of 48, and the ring of young blocks 512 KiB instead
/// of 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Packed(u64);

/// Bits of a packed block's stack slot and thread index.
const STACK_BITS: u32 = 22;
const THREAD_BITS: u32 = 10;

impl Packed {
    /// The block is in the side map (its size field all ones, the rest zero).
    const WIDE: Packed = Packed(u32::MAX as u64);

    /// `block` (whose `tid` is a thread index) in one word, when its numbers fit.
    #[inline(always)]
    fn pack(block: &Block) -> Option<Packed> {
        (block.size_bytes < u64::from(u32::MAX)
            && block.stack < 1 << STACK_BITS
            && block.tid < (1 << THREAD_BITS) - 1)
            .then(|| {
                Packed(
                    block.size_bytes
                        | u64::from(block.stack) << 32
                        | u64::from(block.tid) << (32 + STACK_BITS),
                )
            })
    }

    /// The block (its `tid` a thread index); `None` for [`Packed::WIDE`].
    #[inline(always)]
    fn unpack(self) -> Option<Block> {
        (self != Packed::WIDE).then_some(Block {
            size_bytes: self.0 & u64::from(u32::MAX),
            stack: (self.0 >> 32) as u32 & ((1 << STACK_BITS) - 1),
            tid: (self.0 >> (32 + STACK_BITS)) as u32,
        })
    }
}

impl Slot for Packed {
    /// All ones: its thread index is beyond any a packed block holds.
    const VACANT: Packed = Packed(u64::MAX);
    #[inline(always)]
    fn is_vacant(&self) -> bool {
        self.0 == u64::MAX
    }
}

/// The replay's live blocks: a [`LiveTable`] of [`Packed`] words, and the blocks that do not fit
/// one (larger than 4 GiB, a stack slot beyond 4 M, a thread beyond the 1,022nd) beside it. The
/// `tid` of the blocks it takes and gives is the replay's index of the thread.
#[derive(Debug, Default)]
pub(super) struct Blocks {
    table: LiveTable<Packed>,
    wide: HashMap<u64, Block>,
}

impl Blocks {
    /// See [`LiveTable::with_ring`].
    pub(super) fn with_ring(slots: usize) -> Self {
        Blocks {
            table: LiveTable::with_ring(slots),
            wide: HashMap::default(),
        }
    }

    /// The block a table entry taken out stands for (a wide one leaves the side map).
    #[inline(always)]
    fn whole(&mut self, key: u64, p: Packed) -> Block {
        p.unpack().unwrap_or_else(|| {
            self.wide
                .remove(&key)
                .expect("a wide entry has its block beside the table")
        })
    }

    /// Adds a block; returns the one that was live under the same key.
    #[inline(always)]
    pub(super) fn insert(&mut self, key: u64, block: Block) -> Option<Block> {
        let p = Packed::pack(&block);
        let old = self.table.insert(key, p.unwrap_or(Packed::WIDE));
        let old = old.map(|o| self.whole(key, o));
        if p.is_none() {
            self.wide.insert(key, block);
        }
        old
    }

    /// Takes the block live under `key` out.
    #[inline(always)]
    pub(super) fn remove(&mut self, key: u64) -> Option<Block> {
        let p = self.table.remove(key)?;
        Some(self.whole(key, p))
    }

    /// Every live block and its key.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.table
            .iter()
            .map(|(k, p)| (k, p.unpack().unwrap_or_else(|| self.wide[&k])))
    }
}

/// Live blocks by key (address, or [`BLOCK_ID`] and number).
#[derive(Debug)]
pub(super) struct LiveTable<V> {
    /// Blocks numbered `hi - RING .. hi`, at `number % RING`; empty unless asked for.
    ring: Vec<V>,
    /// One past the highest block number the ring has seen.
    hi: u64,
    /// Blocks named by address (no ring, or frees of blocks never seen allocated).
    map: HashMap<u64, V>,
    /// Blocks that outlived the ring, by number.
    evicted: Evicted<V>,
    /// The newest block, not stored yet (only with the ring).
    newest: Option<(u64, V)>,
}

impl<V> Default for LiveTable<V> {
    fn default() -> Self {
        LiveTable {
            ring: Vec::new(),
            hi: 0,
            map: HashMap::default(),
            evicted: Evicted::default(),
            newest: None,
        }
    }
}

impl<V: Slot> LiveTable<V> {
    /// A table with a ring of `slots` (a power of two), for keys that are block numbers given
    /// out in increasing order.
    pub(super) fn with_ring(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        LiveTable {
            ring: vec![V::VACANT; slots],
            ..LiveTable::default()
        }
    }

    /// True when `key` is a block number this table keeps by number (ring or `evicted`).
    #[inline]
    fn numbered(&self, key: u64) -> bool {
        !self.ring.is_empty() && key & BLOCK_ID != 0
    }

    /// The ring slot of `key` when it is a block number inside the ring's window.
    #[inline]
    fn slot(&self, key: u64) -> Option<usize> {
        if !self.numbered(key) {
            return None;
        }
        let n = key & !BLOCK_ID;
        let len = self.ring.len();
        (n < self.hi && n + len as u64 >= self.hi).then_some(n as usize & (len - 1))
    }

    /// Moves the window so that it ends after block number `n`: blocks leaving it that are still
    /// live go to `evicted`.
    fn advance(&mut self, n: u64) {
        // The ring holds numbers `base..hi`; after the move it holds `n + 1 - RING..=n`. The
        // blocks leaving it go to `evicted` in increasing order.
        let len = self.ring.len();
        let base = self.hi.saturating_sub(len as u64);
        let leaving = self.hi.min((n + 1).saturating_sub(len as u64));
        for old_n in base..leaving {
            let s = &mut self.ring[old_n as usize & (len - 1)];
            if !s.is_vacant() {
                let old = std::mem::replace(s, V::VACANT);
                self.evicted.insert(BLOCK_ID | old_n, old);
            }
        }
        self.hi = n + 1;
    }

    /// Adds a block; returns the one that was live under the same key.
    #[inline]
    pub(super) fn insert(&mut self, key: u64, block: V) -> Option<V> {
        debug_assert!(!block.is_vacant());
        if self.ring.is_empty() {
            return self.map.insert(key, block);
        }
        if let Some((k, b)) = self.newest.replace((key, block)) {
            if k == key {
                return Some(b);
            }
            self.store(k, b);
        }
        self.take_stored(key)
    }

    /// Stores a block under a key that has none (ring only).
    fn store(&mut self, key: u64, block: V) {
        if key & BLOCK_ID != 0 && (key & !BLOCK_ID) >= self.hi {
            self.advance(key & !BLOCK_ID);
        }
        match self.slot(key) {
            Some(i) => {
                let old = std::mem::replace(&mut self.ring[i], block);
                debug_assert!(old.is_vacant(), "a stored key had a block");
            }
            None if key & BLOCK_ID != 0 => {
                let old = self.evicted.insert(key, block);
                debug_assert!(old.is_none(), "a stored key had a block");
            }
            None => {
                let old = self.map.insert(key, block);
                debug_assert!(old.is_none(), "a stored key had a block");
            }
        }
    }

    /// Takes the stored block under `key` (ring or map) out of the table.
    #[inline]
    fn take_stored(&mut self, key: u64) -> Option<V> {
        match self.slot(key) {
            Some(i) => {
                // Checked before it is emptied: emptying first and returning the old value if
                // it was not vacant compiled to a stall with 16-byte blocks (a wide load of two
                // narrower stores), 1.17× the python3 summary.
                let slot = &mut self.ring[i];
                if slot.is_vacant() {
                    return None;
                }
                Some(std::mem::replace(slot, V::VACANT))
            }
            // A number the ring has not reached yet was never stored.
            None if self.numbered(key) && (key & !BLOCK_ID) >= self.hi => None,
            None if self.numbered(key) => self.evicted.remove(key),
            None => self.map.remove(&key),
        }
    }

    /// Takes the block live under `key` out of the table.
    #[inline]
    pub(super) fn remove(&mut self, key: u64) -> Option<V> {
        if self.newest.is_some_and(|(k, _)| k == key) {
            return self.newest.take().map(|(_, b)| b);
        }
        self.take_stored(key)
    }

    /// The block live under `key`, left in the table.
    pub(super) fn get(&self, key: u64) -> Option<&V> {
        if let Some((k, b)) = &self.newest {
            if *k == key {
                return Some(b);
            }
        }
        match self.slot(key) {
            Some(i) => Some(&self.ring[i]).filter(|b| !b.is_vacant()),
            None if self.numbered(key) => self.evicted.get(key),
            None => self.map.get(&key),
        }
    }

    /// Every live block and its key: the map's, the ring's, the newest.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let len = self.ring.len().max(1);
        let base = self.hi.saturating_sub(len as u64);
        let ring = (base..self.hi).filter_map(move |n| {
            let b = &self.ring[n as usize & (len - 1)];
            (!b.is_vacant()).then_some((BLOCK_ID | n, b))
        });
        // Without a ring `hi` stays 0 and the range is empty.
        let newest = self.newest.iter().map(|(k, b)| (*k, b));
        self.map
            .iter()
            .map(|(&k, b)| (k, b))
            .chain(self.evicted.iter())
            .chain(ring)
            .chain(newest)
    }
}

/// Blocks that outlived the ring, by number. The ring hands them over in increasing order, so
/// they are appended to an array, and a page per 64 numbers (the array index of its first block
/// and a bit per number present) finds a block's entry with one population count: two cache lines
/// per free, none per insertion, where a hash map touched a random line for each insertion and
/// removal and grew by rehashing. A program that builds a large structure and frees it in about
/// the order it was made (a parser's tree, a compiler's) touches neighbouring entries. Freed
/// entries are marked, and swept out once they are the majority. A number arriving out of order
/// (not from the ring: only unusual streams) goes to a small ordered map beside them.
#[derive(Debug)]
struct Evicted<V> {
    /// The page (block number / 64) of `pages[0]`.
    first_page: u64,
    /// One past the highest number appended: numbers from it on are appended (in order).
    end: u64,
    pages: Vec<Page>,
    blocks: Vec<V>,
    /// Freed entries still in `blocks`.
    dead: usize,
    late: std::collections::BTreeMap<u64, V>,
}

impl<V> Default for Evicted<V> {
    fn default() -> Self {
        Evicted {
            first_page: 0,
            end: 0,
            pages: Vec::new(),
            blocks: Vec::new(),
            dead: 0,
            late: std::collections::BTreeMap::new(),
        }
    }
}

/// 64 block numbers: which of them have an entry, and where the first of those is.
#[derive(Debug, Clone, Copy)]
struct Page {
    at: u32,
    bits: u64,
}

/// Freed entries are swept once they are more than this and more than the live ones.
const SWEEP_AFTER: usize = 4096;

impl<V: Slot> Evicted<V> {
    /// The page index and bit of block number `n`, when its page is in `pages`.
    #[inline]
    fn place(&self, n: u64) -> Option<(usize, u32)> {
        let p = (n / 64).checked_sub(self.first_page)? as usize;
        (p < self.pages.len()).then_some((p, (n % 64) as u32))
    }

    /// The entry of `n`, when it has one.
    #[inline]
    fn entry(&self, n: u64) -> Option<usize> {
        let (p, bit) = self.place(n)?;
        let page = self.pages[p];
        (page.bits >> bit & 1 == 1)
            .then(|| page.at as usize + (page.bits & ((1u64 << bit) - 1)).count_ones() as usize)
    }

    /// Adds a block; returns the one that was live under the same key.
    fn insert(&mut self, key: u64, block: V) -> Option<V> {
        let n = key & !BLOCK_ID;
        if let Some(i) = self.entry(n) {
            let old = std::mem::replace(&mut self.blocks[i], block);
            if old.is_vacant() {
                self.dead -= 1;
                return None;
            }
            return Some(old);
        }
        if n < self.end || self.blocks.len() >= u32::MAX as usize {
            return self.late.insert(key, block);
        }
        if self.pages.is_empty() {
            self.first_page = n / 64;
        }
        self.end = n + 1;
        let p = (n / 64 - self.first_page) as usize;
        if p >= self.pages.len() {
            let at = self.blocks.len() as u32;
            self.pages.resize(p + 1, Page { at, bits: 0 });
        }
        self.pages[p].bits |= 1 << (n % 64);
        self.blocks.push(block);
        None
    }

    /// The block under `key`, left in place.
    fn get(&self, key: u64) -> Option<&V> {
        match self.entry(key & !BLOCK_ID) {
            Some(i) => Some(&self.blocks[i]).filter(|b| !b.is_vacant()),
            None => self.late.get(&key),
        }
    }

    /// Takes the block under `key` out.
    fn remove(&mut self, key: u64) -> Option<V> {
        let Some(i) = self.entry(key & !BLOCK_ID) else {
            if self.late.is_empty() {
                return None;
            }
            return self.late.remove(&key);
        };
        let old = std::mem::replace(&mut self.blocks[i], V::VACANT);
        if old.is_vacant() {
            return None;
        }
        self.dead += 1;
        if self.dead > SWEEP_AFTER && self.dead * 2 > self.blocks.len() {
            self.sweep();
        }
        Some(old)
    }

    /// Drops the freed entries, and the empty pages before the first live one.
    fn sweep(&mut self) {
        let mut kept = 0usize;
        let mut i = 0usize;
        for page in &mut self.pages {
            let mut bits = page.bits;
            page.at = kept as u32;
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                if self.blocks[i].is_vacant() {
                    page.bits &= !(1u64 << bit);
                } else {
                    self.blocks[kept] = self.blocks[i];
                    kept += 1;
                }
                i += 1;
            }
        }
        self.blocks.truncate(kept);
        self.dead = 0;
        let empty = self.pages.iter().take_while(|p| p.bits == 0).count();
        if empty == self.pages.len() {
            self.pages.clear();
        } else {
            self.pages.drain(..empty);
            self.first_page += empty as u64;
        }
    }

    /// Live blocks held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.blocks.len() - self.dead + self.late.len()
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let held = self.pages.iter().enumerate().flat_map(move |(p, page)| {
            let n0 = (self.first_page + p as u64) * 64;
            let mut bits = page.bits;
            let mut i = page.at as usize;
            std::iter::from_fn(move || {
                while bits != 0 {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    let b = &self.blocks[i];
                    i += 1;
                    if !b.is_vacant() {
                        return Some((BLOCK_ID | (n0 + u64::from(bit)), b));
                    }
                }
                None
            })
        });
        held.chain(self.late.iter().map(|(&k, b)| (k, b)))
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
        let mut t = LiveTable::with_ring(RING);
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
        // Each is found where it is (newest, ring, evicted), and nothing else.
        for (k, blk) in &b {
            assert_eq!(t.get(*k), Some(blk), "key {k:x}");
        }
        assert_eq!(t.get(BLOCK_ID | (far + 7)), None);
        assert_eq!(t.get(0x2000), None);
        // The blocks that left the ring live beside it, by number; the address map stays empty.
        assert!(t.map.is_empty());
        assert!(t.evicted.len() > 0 && t.evicted.len() < a.len());
    }

    /// Blocks that left the ring, freed in any order: found again after sweeps, numbers that
    /// arrive out of order kept beside, and every one listed once.
    #[test]
    fn evicted_blocks_survive_sweeps_in_any_order() {
        let mut e = Evicted::default();
        let mut m: HashMap<u64, Block> = HashMap::default();
        // Every third number from 1000 on, then a few below and among them (out of order).
        let mut keys: Vec<u64> = (0..30_000u64).map(|i| BLOCK_ID | (1000 + 3 * i)).collect();
        keys.extend([BLOCK_ID | 5, BLOCK_ID | 1001, BLOCK_ID | 64_000]);
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(e.insert(k, block(i as u64)), m.insert(k, block(i as u64)));
        }
        // Free in a scrambled order, checking the table against the map on the way (enough
        // frees to sweep more than once), including keys that were never there.
        let mut x = 0x9e37_79b9u64;
        let mut order = keys.clone();
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (i, &k) in order.iter().enumerate().take(25_000) {
            assert_eq!(e.remove(k), m.remove(&k), "key {k:x}");
            assert_eq!(e.remove(k + 1), m.remove(&(k + 1)));
            if i % 5000 == 0 {
                assert_eq!(e.len(), m.len());
            }
        }
        // A freed number given again is live again.
        let again = order[0];
        assert_eq!(e.insert(again, block(7)), m.insert(again, block(7)));
        let mut a: Vec<(u64, Block)> = e.iter().map(|(k, b)| (k, *b)).collect();
        let mut b: Vec<(u64, Block)> = m.into_iter().collect();
        a.sort_by_key(|e| e.0);
        b.sort_by_key(|e| e.0);
        assert_eq!(a, b);
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

    /// Blocks whose numbers do not fit a word (a size of 4 GiB or more, a stack slot beyond
    /// 4 M, a thread index beyond 1,022) go whole beside the packed table, and come back the
    /// same through insert, remove and iter, also when one replaces another under a key.
    #[test]
    fn blocks_too_wide_for_a_word_come_back_whole() {
        let b = |size_bytes, stack, tid| Block {
            size_bytes,
            stack,
            tid,
        };
        let cases = [
            b(16, 3, 0),
            b(
                u64::from(u32::MAX) - 1,
                (1 << STACK_BITS) - 1,
                (1 << THREAD_BITS) - 2,
            ),
            b(u64::from(u32::MAX), 0, 0),
            b(5 << 32, 1, 1),
            b(16, 1 << STACK_BITS, 0),
            b(16, u32::MAX - 1, 0),
            b(16, 0, (1 << THREAD_BITS) - 1),
            b(0, 0, 70_000),
        ];
        for (i, c) in cases.iter().enumerate() {
            let fits = i < 2;
            assert_eq!(Packed::pack(c).is_some(), fits, "{c:?}");
            if let Some(p) = Packed::pack(c) {
                assert_ne!(p, Packed::WIDE);
                assert!(!p.is_vacant());
                assert_eq!(p.unpack(), Some(*c));
            }
        }
        let mut t = Blocks::with_ring(RING);
        let mut m: HashMap<u64, Block> = HashMap::default();
        let n = 2 * RING as u64 + 9;
        for i in 0..n {
            let key = BLOCK_ID | i;
            let c = cases[i as usize % cases.len()];
            assert_eq!(t.insert(key, c), m.insert(key, c));
            if i % 4 == 1 {
                // Freed at once, and one much older than the ring.
                assert_eq!(t.remove(key), m.remove(&key));
                let old = BLOCK_ID | (i / 2);
                assert_eq!(t.remove(old), m.remove(&old));
            }
        }
        // Replaced under the same key: wide by packed, packed by wide, wide by wide.
        for (k, c) in [
            (7, cases[0]),
            (2, cases[3]),
            (3, cases[4]),
            (0x5000, cases[5]),
        ] {
            let key = if k < 0x1000 { BLOCK_ID | k } else { k };
            assert_eq!(t.insert(key, c), m.insert(key, c));
        }
        let mut a: Vec<(u64, Block)> = t.iter().collect();
        let mut e: Vec<(u64, Block)> = m.into_iter().collect();
        a.sort_by_key(|x| x.0);
        e.sort_by_key(|x| x.0);
        assert_eq!(a, e);
        // Nothing wide is left behind for a block no longer live.
        assert_eq!(
            t.wide.len(),
            a.iter().filter(|(_, b)| Packed::pack(b).is_none()).count()
        );
    }

    #[test]
    fn reinserting_a_live_number_returns_the_old_block() {
        let mut t = LiveTable::with_ring(RING);
        assert_eq!(t.insert(BLOCK_ID | 5, block(1)), None);
        assert_eq!(t.insert(BLOCK_ID | 5, block(2)), Some(block(1)));
        assert_eq!(t.remove(BLOCK_ID | 5), Some(block(2)));
        assert_eq!(t.remove(BLOCK_ID | 5), None);
    }
}
