//! Synthetic thread buffers for the orderer's tests: several threads' events interleaved in
//! sequence order as the hooks number them, cut into buffers as the recorder cuts them.

use super::super::wire;
use crate::format::{self, AllocKind};

/// A small deterministic generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One thread's buffer being filled.
struct Open {
    tid: u32,
    bytes: Vec<u8>,
    /// Sequence number the context's deltas are relative to.
    seq: u64,
    /// Its live blocks (kept pool).
    pool: Vec<u64>,
    next_addr: u64,
}

/// Buffers of `threads` threads with about `events` events in all, each at most `buf_bytes`
/// long, listed in the order they filled (the last ones partly full), and the events in global
/// order as the ordered stream must hold them (see [`summary`]). `escape`: some events carry
/// frame records.
pub fn buffers(
    seed: u64,
    threads: u32,
    events: u64,
    buf_bytes: usize,
    escape: bool,
) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut expect = Vec::new();
    let mut rng = Rng(seed);
    let mut open: Vec<Open> = (0..threads)
        .map(|t| Open {
            tid: 1000 + t,
            bytes: Vec::new(),
            seq: 0,
            pool: Vec::new(),
            next_addr: 0x5555_0000_0000 + u64::from(t) * 0x1_0000_0000,
        })
        .collect();
    let mut done = Vec::new();
    // The counter: the number the next allocation takes (frees read it without advancing it).
    let mut seq = 1u64;
    let mut t = 0usize;
    let mut n = 0u64;
    while n < events {
        // Threads take turns in bursts of a few events.
        if rng.below(4) == 0 {
            t = rng.below(u64::from(threads)) as usize;
        }
        let o = &mut open[t];
        if o.bytes.is_empty() {
            format::put_context(&mut o.bytes, o.tid, seq);
            o.seq = seq;
        }
        let stack = match rng.below(100) {
            0 => 0,
            1 => (1 << 33) + rng.below(5),
            _ => 1 + rng.below(40),
        };
        let size = match rng.below(50) {
            0 => (1 << 33) + rng.below(1000),
            1 => (1 << 24) + rng.below(1000),
            _ => 16 + rng.below(500),
        };
        let mut addr = || {
            o.next_addr += 64;
            o.next_addr
        };
        match rng.below(20) {
            // A temporary: made and freed at once.
            0..=9 => {
                let a = addr();
                wire::put_alloc(
                    &mut o.bytes,
                    seq - o.seq,
                    a,
                    size,
                    stack,
                    AllocKind::Malloc,
                    0,
                );
                o.seq = seq;
                seq += 1;
                expect.push(format!(
                    "alloc {} {size} {stack} Malloc 0 @{}",
                    o.tid, o.seq
                ));
                if escape && rng.below(3) == 0 {
                    format::put_event_frames(
                        &mut o.bytes,
                        0x7ff0_0000,
                        &[0x7ff0_0040, 0x7ff0_0100],
                    );
                    expect.push(format!("frames {} {:?}", o.tid, [0x40, 0x100]));
                }
                wire::put_free(&mut o.bytes, seq - o.seq, a);
                o.seq = seq;
                expect.push(format!("free {} @{}", o.tid, seq));
                n += 2;
            }
            // Replace a block of the kept pool.
            10..=15 => {
                let a = addr();
                let kind = if rng.below(10) == 0 {
                    AllocKind::Calloc
                } else {
                    AllocKind::Malloc
                };
                let align = if rng.below(30) == 0 { 64 } else { 0 };
                let kind = if align != 0 {
                    AllocKind::PosixMemalign
                } else {
                    kind
                };
                wire::put_alloc(&mut o.bytes, seq - o.seq, a, size, stack, kind, align);
                o.seq = seq;
                seq += 1;
                expect.push(format!(
                    "alloc {} {size} {stack} {kind:?} {align} @{}",
                    o.tid, o.seq
                ));
                if escape && rng.below(5) == 0 {
                    format::put_event_returns(&mut o.bytes, &[0x4000_1234, 0x4000_2000]);
                    expect.push(format!(
                        "returns {} {:?}",
                        o.tid,
                        [0x4000_1234, 0x4000_2000]
                    ));
                }
                if o.pool.len() < 200 {
                    o.pool.push(a);
                } else {
                    let i = rng.below(o.pool.len() as u64) as usize;
                    let old = std::mem::replace(&mut o.pool[i], a);
                    wire::put_free(&mut o.bytes, seq - o.seq, old);
                    o.seq = seq;
                    expect.push(format!("free {} @{}", o.tid, seq));
                    n += 1;
                }
                n += 1;
            }
            // A realloc of a kept block.
            16..=17 if !o.pool.is_empty() => {
                let i = rng.below(o.pool.len() as u64) as usize;
                let a = addr();
                let old = std::mem::replace(&mut o.pool[i], a);
                // Both halves take a number.
                let free_seq = seq;
                seq += 2;
                wire::put_realloc(
                    &mut o.bytes,
                    free_seq - o.seq,
                    1,
                    old,
                    a,
                    size,
                    stack,
                    AllocKind::Realloc,
                );
                o.seq = seq - 1;
                expect.push(format!("realloc {} {size} {stack} Realloc", o.tid));
                n += 2;
            }
            // A free of a block never seen allocated.
            18 => {
                wire::put_free(
                    &mut o.bytes,
                    seq - o.seq,
                    0x1234_5678_0000 + rng.below(1 << 20) * 16,
                );
                o.seq = seq;
                expect.push(format!("free {} @{}", o.tid, seq));
                n += 1;
            }
            _ => {
                // A thread's record without a number.
                format::put_thread(&mut o.bytes, o.tid, b"worker", 1, 2);
            }
        }
        if o.bytes.len() >= buf_bytes {
            done.push(std::mem::take(&mut o.bytes));
        }
    }
    for o in open {
        if !o.bytes.is_empty() {
            done.push(o.bytes);
        }
    }
    (done, expect)
}

/// Runs buffers through an orderer as the writer does: passes of `per_pass` buffers, each pass's
/// buffers in order of their first number, and the watermark below every buffer not taken yet.
/// Returns the chunks written (each flushed at `chunk_bytes`, the rest at the end of a pass).
pub fn run(bufs: &[Vec<u8>], per_pass: usize, chunk_bytes: usize) -> Vec<Vec<u8>> {
    use super::{buffer_start, Orderer};
    let mut o = Orderer::default();
    let mut chunks = Vec::new();
    let mut events = Vec::new();
    let mut at = 0;
    while at < bufs.len() {
        let end = (at + per_pass).min(bufs.len());
        let mut pass: Vec<&Vec<u8>> = bufs[at..end].iter().collect();
        pass.sort_by_key(|b| {
            let (tid, first) = buffer_start(b);
            (first, tid)
        });
        let w = bufs[end..]
            .iter()
            .map(|b| buffer_start(b).1)
            .min()
            .unwrap_or(u64::MAX / 2);
        for b in pass {
            o.take_buffer(b, &mut events);
        }
        o.write_below(w, &mut events, chunk_bytes, |ev| {
            chunks.push(std::mem::take(ev));
            Ok(())
        })
        .unwrap();
        if !events.is_empty() {
            chunks.push(std::mem::take(&mut events));
            o.new_chunk();
        }
        at = end;
    }
    chunks
}

/// The events of the chunks, one line each (thread records and watermarks left out).
pub fn summary(chunks: &[Vec<u8>]) -> Vec<String> {
    use crate::format::{ChunkKind, ChunkWriter, Header, Reader, Record};
    let mut file = Header {
        version: 2,
        ..Header::default()
    }
    .encode();
    let mut w = ChunkWriter::new(1).unwrap();
    for c in chunks {
        w.put(&mut file, ChunkKind::Events, c).unwrap();
    }
    let mut reader = Reader::new(&file[..]).unwrap();
    let mut lines = Vec::new();
    while let Some(chunk) = reader.next_chunk().unwrap() {
        for r in chunk {
            lines.push(match r.unwrap() {
                Record::Alloc {
                    tid,
                    size,
                    stack,
                    kind,
                    align,
                    ..
                } => format!("alloc {tid} {size} {stack} {kind:?} {align}"),
                Record::Realloc {
                    tid,
                    size,
                    stack,
                    kind,
                    ..
                } => format!("realloc {tid} {size} {stack} {kind:?}"),
                Record::Free { tid, .. } => format!("free {tid}"),
                Record::EventFrames { tid, sp, cfas } => format!(
                    "frames {tid} {:?}",
                    cfas.iter().map(|c| c - sp).collect::<Vec<_>>()
                ),
                Record::EventReturns { tid, ips } => format!("returns {tid} {ips:?}"),
                _ => continue,
            });
        }
    }
    lines
}

/// Every event comes out once, in global order, with its size, stack id, kind, alignment and
/// frame records, over passes that leave events waiting: with sizes and stack ids of 32 bits
/// and more, aligned allocations and frame records (the writer's side entries) among them.
#[test]
fn synthetic_threads_come_out_in_global_order() {
    // Many threads: a pass's buffers overlap in their numbers, so what waits piles up in
    // sorted runs that are merged (and, past a few, merged into one).
    for (seed, threads, escape) in [
        (1, 3, true),
        (2, 2, false),
        (3, 1, true),
        (4, 40, false),
        (5, 12, true),
    ] {
        let (bufs, expect) = buffers(seed, threads, 60_000, 2 << 10, escape);
        assert!(bufs.len() > 40, "{} buffers", bufs.len());
        let got = frees_sorted(summary(&run(&bufs, 5, 16 << 10)));
        let expect = frees_sorted(expect);
        assert_eq!(got.len(), expect.len(), "seed {seed}");
        for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
            assert_eq!(g, e, "seed {seed}, event {i}");
        }
    }
}

/// The lines with each run of consecutive frees sorted: frees of different threads that read
/// the same number may come in either order (and the expected lines' ` @number` dropped).
fn frees_sorted(lines: Vec<String>) -> Vec<String> {
    let mut lines: Vec<String> = lines
        .into_iter()
        .map(|l| l.split(" @").next().unwrap_or_default().to_string())
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let n = lines[i..]
            .iter()
            .take_while(|l| l.starts_with("free "))
            .count();
        lines[i..i + n].sort();
        i += n.max(1);
    }
    lines
}
