//! Stack interning: 128-bit hash → small id; each definition is written once.
//!
//! A per-thread direct-mapped cache answers most lookups without a lock; a miss goes to the
//! session's table (a mutex), which numbers a new stack and keeps its frames, in order with the
//! module snapshots, until the writer takes them. The writer encodes them ([`Definitions`]: a
//! stack as its own frames on top of the longest outer part an earlier stack ends with), takes
//! them *after* the thread buffers of the same pass and writes them *before* them, so every id in
//! the file is defined no later than its first use. Finding that outer part hashes every outer
//! part of a new stack (a deep program's stacks: sixty parts each), so it is the writer's work,
//! not the allocating thread's: a compiler defines stacks all along its run.

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

type HashTable = HashMap<u128, u64, BuildHasherDefault<PassThroughHasher>>;

/// The session-wide table.
#[derive(Default)]
pub struct StackTable {
    ids: HashTable,
    next_id: u64,
    /// Definitions not taken by the writer yet.
    pending: Pending,
}

/// Definitions not written yet, in the order they were made: new stacks (their frames in
/// `frames`) and module snapshots (encoded).
#[derive(Default)]
pub struct Pending {
    items: Vec<Def>,
    frames: Vec<u64>,
}

enum Def {
    Stack {
        id: u64,
        generation: u64,
        truncated: bool,
        /// Its frames: `frames[at..at + len]`, innermost first.
        at: usize,
        len: usize,
    },
    Modules(Vec<u8>),
}

impl Pending {
    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.items.clear();
        self.frames.clear();
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
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
        let p = &mut self.pending;
        p.items.push(Def::Stack {
            id,
            generation,
            truncated,
            at: p.frames.len(),
            len: frames.len(),
        });
        p.frames.extend_from_slice(frames);
        id
    }

    /// Queues a module snapshot: it is written before the events of the same writer pass, and
    /// so before every stack of its generation.
    pub fn define_modules(&mut self, generation: u64, modules: &[format::Module]) {
        let mut rec = Vec::new();
        format::put_modules(&mut rec, generation, modules);
        self.pending.items.push(Def::Modules(rec));
    }

    /// Takes the definitions made since the last call, leaving `spare` (emptied) in their place.
    pub fn take_pending(&mut self, mut spare: Pending) -> Pending {
        spare.clear();
        std::mem::replace(&mut self.pending, spare)
    }

    /// Distinct stacks so far.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The writer's side: encodes the definitions it takes, in order, keeping what later stacks
/// refer to.
#[derive(Default)]
pub struct Definitions {
    /// For every outer part (suffix) of a defined stack, by its hash: a stack that ends with it.
    /// A new stack is written as its own inner frames plus the longest outer part it shares with
    /// an earlier one (`STACK_TAIL`), the way heaptrack writes a tree of (parent, ip) nodes.
    suffixes: HashTable,
}

impl Definitions {
    /// Appends the records of `p` to `segments` (each closed at about [`SEGMENT_BYTES`]); the
    /// ids of the stacks cut at the frame limit to `truncated`.
    pub fn encode(&mut self, p: &Pending, segments: &mut Vec<Vec<u8>>, truncated: &mut Vec<u64>) {
        if p.is_empty() {
            return;
        }
        for d in &p.items {
            if segments.last().is_none_or(|s| s.len() >= SEGMENT_BYTES) {
                segments.push(Vec::with_capacity(16 << 10));
            }
            let seg = segments.last_mut().expect("a segment was just ensured");
            match *d {
                Def::Modules(ref rec) => seg.extend_from_slice(rec),
                Def::Stack {
                    id,
                    generation,
                    truncated: cut,
                    at,
                    len,
                } => {
                    let frames = &p.frames[at..at + len];
                    match self.longest_known_outer_part(id, frames) {
                        None => format::put_stack(seg, id, generation, cut, frames),
                        Some((base, keep)) => {
                            format::put_stack_tail(seg, id, generation, cut, base, keep, frames)
                        }
                    }
                    if cut {
                        truncated.push(id);
                    }
                }
            }
        }
    }

    /// The longest outer part of stack `id` (its `frames`) an earlier stack ends with, as (that
    /// stack, frames); every outer part of this one not known yet is remembered for later ones.
    fn longest_known_outer_part(&mut self, id: u64, frames: &[u64]) -> Option<(u64, usize)> {
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
        (keep > 0).then_some((base, keep))
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
        let mut encoder = Definitions::default();
        let (mut segments, mut truncated) = (Vec::new(), Vec::new());
        let p = t.take_pending(Pending::default());
        encoder.encode(&p, &mut segments, &mut truncated);
        assert_eq!(truncated, [2]);
        let defs = segments.concat();
        let p = t.take_pending(p);
        assert!(p.is_empty());
        segments.clear();
        encoder.encode(&p, &mut segments, &mut truncated);
        assert!(segments.is_empty());
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
