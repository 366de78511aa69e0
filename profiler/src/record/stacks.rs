//! Stack interning: 128-bit hash → small id; each definition is written once.
//!
//! A per-thread direct-mapped cache answers most lookups without a lock; a miss goes to the
//! session's table (a mutex), which appends the definition of a new stack to the definitions
//! buffer. The writer takes that buffer *after* the thread buffers of the same pass and writes
//! it *before* them, so every id in the file is defined no later than its first use.

use crate::format;
use crate::unwind::hash;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Entries of the per-thread cache.
const CACHE_SLOTS: usize = 1024;
/// A definitions segment is closed at this size so no chunk grows unbounded.
const SEGMENT_BYTES: usize = 4 << 20;

/// Keys are already uniform 128-bit hashes: use their low bits.
#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// The session-wide table.
#[derive(Default)]
pub struct StackTable {
    ids: HashMap<u128, u64, BuildHasherDefault<PassThroughHasher>>,
    /// For every outer part (suffix) of a defined stack, by its hash: a stack that ends with it.
    /// A new stack is written as its own inner frames plus the longest outer part it shares with
    /// an earlier one (`STACK_TAIL`), the way heaptrack writes a tree of (parent, ip) nodes.
    suffixes: HashMap<u128, u64, BuildHasherDefault<PassThroughHasher>>,
    next_id: u64,
    /// Encoded definitions not yet written, in segments of at most [`SEGMENT_BYTES`].
    segments: Vec<Vec<u8>>,
    /// Ids of stacks cut at the frame limit defined since the last [`Self::take_truncated`].
    truncated: Vec<u64>,
}

impl StackTable {
    /// An empty table; ids start at 1.
    pub fn new() -> StackTable {
        StackTable {
            next_id: 1,
            ..StackTable::default()
        }
    }

    /// The id of the stack with this hash, defining it when new (with the module generation its
    /// addresses belong to, and whether the walk was cut at the frame limit).
    pub fn intern(&mut self, hash: u128, frames: &[u64], generation: u64, truncated: bool) -> u64 {
        if let Some(&id) = self.ids.get(&hash) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(hash, id);
        // The longest outer part an earlier stack ends with; every outer part of this one is
        // remembered (those not known yet) for later stacks.
        let (mut base, mut keep) = (0, 0);
        let mut h = hash::EMPTY;
        let mut known = true;
        for (k, &f) in frames.iter().rev().enumerate() {
            h = hash::push(h, f);
            let key = hash::finish(h, k + 1);
            // Once an outer part is new, so is every longer one.
            match known.then(|| self.suffixes.get(&key)).flatten() {
                Some(&b) => (base, keep) = (b, k + 1),
                None => {
                    known = false;
                    self.suffixes.insert(key, id);
                }
            }
        }
        if keep == 0 {
            format::put_stack(self.segment(), id, generation, truncated, frames);
        } else {
            format::put_stack_tail(
                self.segment(),
                id,
                generation,
                truncated,
                base,
                keep,
                frames,
            );
        }
        if truncated {
            self.truncated.push(id);
        }
        id
    }

    /// Queues a module snapshot: it is written before the events of the same writer pass, and
    /// so before every stack of its generation.
    pub fn define_modules(&mut self, generation: u64, modules: &[format::Module]) {
        format::put_modules(self.segment(), generation, modules);
    }

    /// The open definitions segment.
    fn segment(&mut self) -> &mut Vec<u8> {
        if self
            .segments
            .last()
            .is_none_or(|s| s.len() >= SEGMENT_BYTES)
        {
            self.segments.push(Vec::with_capacity(16 << 10));
        }
        self.segments
            .last_mut()
            .expect("a segment was just ensured")
    }

    /// Takes the definitions written since the last call.
    pub fn take_definitions(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.segments)
    }

    /// The ids of the cut stacks defined since the last call (the writer counts their
    /// allocations for the trailer).
    pub fn take_truncated(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.truncated)
    }

    /// Distinct stacks so far.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Per-thread cache in front of the table.
pub struct StackCache {
    slots: [(u128, u64); CACHE_SLOTS],
}

impl StackCache {
    /// An empty cache (id 0 marks an empty slot).
    pub fn new_boxed() -> Box<StackCache> {
        // SAFETY: all-zero is a valid (empty) cache.
        unsafe { crate::sys::mem::boxed_zeroed() }
    }

    /// The cached id for `hash`, if any.
    #[inline]
    pub fn get(&self, hash: u128) -> Option<u64> {
        let (h, id) = self.slots[hash as usize % CACHE_SLOTS];
        (id != 0 && h == hash).then_some(id)
    }

    /// Remembers an id.
    #[inline]
    pub fn put(&mut self, hash: u128, id: u64) {
        self.slots[hash as usize % CACHE_SLOTS] = (hash, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Record;
    use crate::unwind::hash::hash_frames;

    #[test]
    fn interning_defines_each_stack_once() {
        let mut t = StackTable::new();
        let a = [0x10u64, 0x20, 0x30];
        let b = [0x10u64, 0x20];
        // Shares a's two outer frames (0x20, 0x30).
        let c = [0x7u64, 0x5, 0x20, 0x30];
        let ia = t.intern(hash_frames(&a), &a, 1, false);
        let ib = t.intern(hash_frames(&b), &b, 2, true);
        let ic = t.intern(hash_frames(&c), &c, 1, false);
        assert_eq!((ia, ib, ic), (1, 2, 3));
        assert_eq!(t.intern(hash_frames(&a), &a, 1, false), 1);
        assert_eq!(t.len(), 3);
        let defs = t.take_definitions().concat();
        assert!(t.take_definitions().is_empty());
        // Decode through a chunk to check the encoding.
        let mut file = crate::format::Header::default().encode();
        crate::format::put_chunk(&mut file, crate::format::ChunkKind::Definitions, &defs);
        let mut r = crate::format::Reader::new(&file[..]).unwrap();
        let mut got = Vec::new();
        r.for_each_record(|rec| {
            got.push(rec);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                Record::Stack {
                    id: 1,
                    generation: 1,
                    truncated: false,
                    frames: a.to_vec(),
                    base: 0,
                    keep: 0,
                    outer_omitted: false,
                },
                Record::Stack {
                    id: 2,
                    generation: 2,
                    truncated: true,
                    frames: b.to_vec(),
                    base: 0,
                    keep: 0,
                    outer_omitted: false,
                },
                Record::Stack {
                    id: 3,
                    generation: 1,
                    truncated: false,
                    frames: c.to_vec(),
                    base: 1,
                    keep: 2,
                    outer_omitted: false,
                }
            ]
        );
        // c was written as its two own frames on top of a's outer two.
        let mut want = Vec::new();
        crate::format::put_stack(&mut want, 1, 1, false, &a);
        crate::format::put_stack(&mut want, 2, 2, true, &b);
        crate::format::put_stack_tail(&mut want, 3, 1, false, 1, 2, &c);
        assert_eq!(defs, want);
    }

    #[test]
    fn cache_hits_and_replaces() {
        let mut c = StackCache::new_boxed();
        assert_eq!(c.get(5), None);
        c.put(5, 9);
        assert_eq!(c.get(5), Some(9));
        c.put(5 + CACHE_SLOTS as u128, 10);
        assert_eq!(c.get(5), None);
        assert_eq!(c.get(5 + CACHE_SLOTS as u128), Some(10));
    }
}
