//! Synthetic profiles for unit tests, written with the format's own encoders in version 1's
//! sequenced layout (events numbered explicitly, per-thread batches in any order, watermarks),
//! which exercises the reader's reordering. Version-2 files come from the real recorder.

use tidemark::format::{
    put_chunk_raw, put_context, put_modules, put_sample, put_trailer, put_watermark, AllocKind,
    Header, Module, Segment, SymbolFrame,
};

/// Symbols of one address for [`Builder::symbols`]: `(ip, [(function, file, line)])`.
pub(crate) type SymbolEntry<'a> = (u64, &'a [(&'a str, &'a str, u32)]);

/// Builds a profile chunk by chunk.
pub(crate) struct Builder {
    out: Vec<u8>,
}

impl Builder {
    /// A profile with a plain header (pid 42, exe /bin/app).
    pub(crate) fn new() -> Self {
        let h = Header {
            version: 1,
            pid: 42,
            exe: "/bin/app".into(),
            cmdline: vec!["app".into()],
            page_size: 4096,
            interval_ms: 10,
            source: "preload".into(),
            allocator: "glibc".into(),
            unwind: "dwarf".into(),
            ..Header::default()
        };
        let mut out = h.encode();
        out[8..10].copy_from_slice(&1u16.to_le_bytes());
        Builder { out }
    }

    /// Appends one chunk whose records `f` writes.
    pub(crate) fn chunk(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let mut p = Vec::new();
        f(&mut p);
        put_chunk_raw(&mut self.out, &p);
        self
    }

    /// Appends a stack-definitions chunk.
    pub(crate) fn stacks(&mut self, stacks: &[(u64, &[u64])]) -> &mut Self {
        self.chunk(|p| {
            for (id, frames) in stacks {
                tidemark::format::put_stack_v1(p, *id, frames);
            }
        })
    }

    /// Appends a chunk holding one thread's batch of events, given with absolute sequence numbers.
    pub(crate) fn batch(&mut self, tid: u32, events: &[Ev]) -> &mut Self {
        self.chunk(|p| batch(p, tid, events))
    }

    /// Appends a watermark chunk.
    pub(crate) fn watermark(&mut self, seq: u64) -> &mut Self {
        self.chunk(|p| put_watermark(p, seq))
    }

    /// Appends a sample chunk.
    pub(crate) fn sample(&mut self, seq: u64, t_ns: u64, values: &[(u64, u64)]) -> &mut Self {
        self.chunk(|p| put_sample(p, seq, t_ns, values))
    }

    /// Appends a module map snapshot with one module per `(path, start, size)`, loaded at bias
    /// `start`.
    pub(crate) fn modules(&mut self, generation: u64, mods: &[(&str, u64, u64)]) -> &mut Self {
        let modules: Vec<Module> = mods
            .iter()
            .map(|&(path, start, size)| Module {
                path: path.into(),
                build_id: vec![],
                base: start,
                segments: vec![Segment {
                    start,
                    size,
                    flags: 5,
                }],
            })
            .collect();
        self.chunk(|p| put_modules(p, generation, &modules))
    }

    /// Appends a symbols chunk: `(ip, [(function, file, line)])`, innermost first.
    pub(crate) fn symbols(&mut self, entries: &[SymbolEntry<'_>]) -> &mut Self {
        let entries: Vec<(u64, Vec<SymbolFrame>)> = entries
            .iter()
            .map(|(ip, frames)| {
                (
                    *ip,
                    frames
                        .iter()
                        .map(|&(function, file, line)| SymbolFrame {
                            function: function.into(),
                            file: file.into(),
                            line,
                        })
                        .collect(),
                )
            })
            .collect();
        tidemark::format::put_symbols_chunk(&mut self.out, 1, 0, &entries);
        self
    }

    /// Appends the trailer chunk.
    pub(crate) fn trailer(&mut self, values: &[(u64, u64)]) -> &mut Self {
        self.chunk(|p| put_trailer(p, values))
    }

    /// The bytes so far.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.out.clone()
    }
}

/// An event with an absolute sequence number.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ev {
    /// `seq, addr, size, stack`.
    Alloc(u64, u64, u64, u64),
    /// `seq, addr`.
    Free(u64, u64),
    /// `free_seq, seq, old, new, size, stack`.
    Realloc(u64, u64, u64, u64, u64, u64),
}

/// Encodes a thread's batch: a context at the first sequence number, then deltas.
pub(crate) fn batch(p: &mut Vec<u8>, tid: u32, events: &[Ev]) {
    let first = match events.first() {
        Some(Ev::Alloc(s, ..)) | Some(Ev::Free(s, ..)) | Some(Ev::Realloc(s, ..)) => *s,
        None => return,
    };
    put_context(p, tid, first);
    let mut prev = first;
    for e in events {
        match *e {
            Ev::Alloc(seq, addr, size, stack) => {
                tidemark::format::put_alloc(p, seq - prev, addr, size, stack, AllocKind::Malloc, 0);
                prev = seq;
            }
            Ev::Free(seq, addr) => {
                tidemark::format::put_free(p, seq - prev, addr);
                prev = seq;
            }
            Ev::Realloc(free_seq, seq, old, new, size, stack) => {
                tidemark::format::put_realloc(
                    p,
                    free_seq - prev,
                    seq - free_seq,
                    old,
                    new,
                    size,
                    stack,
                    AllocKind::Realloc,
                );
                prev = seq;
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so robustness tests need no extra crate.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
