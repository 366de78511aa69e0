//! Record decoding: one chunk's records, for every format version.

use super::varint::{Cursor, DecodeError};
use super::{tag, AllocKind, FormatError, Module, Record, Segment, SymbolFrame};

/// Deepest stack a reader accepts.
pub const MAX_STACK_FRAMES: u64 = 4096;

/// Iterator over the records of one chunk.
pub struct RecordIter<'a> {
    cursor: Cursor<'a>,
    version: u16,
    tid: u32,
    prev_seq: u64,
    /// Version 2's ordered event stream: block and sequence counters across chunks.
    ordered: Option<&'a mut OrderedState>,
    chunk_offset: u64,
    failed: bool,
}

/// What version-3 records refer to in earlier records (of earlier chunks too): stacks'
/// frames, the previous timeline sample.
#[derive(Debug, Default, Clone)]
pub(crate) struct Carried {
    stacks: StackFrames,
    sample: super::SampleDeltas,
}

/// What readers keep of every stack defined so far (version 3 files, whose `STACK_TAIL` records
/// name an earlier stack's outer frames): each stack's own frames, back to back, and its base.
/// A stack's outer frames are rebuilt by following bases, so the memory is one word per tree
/// node instead of one per frame of every stack (a deep program's 77,000 stacks of ≈ 60 frames:
/// 3.7 MB instead of 37 MB).
#[derive(Debug, Default, Clone)]
pub(crate) struct StackFrames {
    own: Vec<u64>,
    at: rustc_hash::FxHashMap<u64, Shape>,
}

/// Where a stack's own frames are, and the base its outer `keep` frames come from.
#[derive(Debug, Clone, Copy)]
struct Shape {
    start: usize,
    len: u32,
    keep: u32,
    base: u64,
    generation: u64,
}

impl StackFrames {
    /// Defines stack `id` of module generation `generation` as `own` (innermost first) inside
    /// the outer `keep` frames of `base`.
    fn define(&mut self, id: u64, own: &[u64], base: u64, keep: u32, generation: u64) {
        let start = self.own.len();
        self.own.extend_from_slice(own);
        let shape = Shape {
            start,
            len: own.len() as u32,
            keep,
            base,
            generation,
        };
        self.at.insert(id, shape);
    }

    /// The depth of stack `id`, when it is defined.
    fn depth(&self, id: u64) -> Option<usize> {
        self.at.get(&id).map(|s| s.len as usize + s.keep as usize)
    }

    /// The module generation of stack `id`, when it is defined.
    fn generation(&self, id: u64) -> Option<u64> {
        self.at.get(&id).map(|s| s.generation)
    }

    /// The innermost of the outermost `keep` frames of stack `id`: what a `STACK_TAIL` keeping
    /// them writes its own frames as differences from, found without rebuilding the others.
    fn innermost_kept(&self, mut id: u64, keep: usize) -> Result<u64, DecodeError> {
        for _ in 0..self.at.len() + 1 {
            let s = *self.at.get(&id).ok_or(DecodeError(
                "a stack names a base stack not defined before it",
            ))?;
            if keep == 0 || keep as u64 > u64::from(s.len) + u64::from(s.keep) {
                return Err(DecodeError("a stack keeps more frames than its base has"));
            }
            if keep > s.keep as usize {
                // Among its own frames: the stack is own ++ outer, `len + keep'` deep.
                return Ok(self.own[s.start + s.len as usize + s.keep as usize - keep]);
            }
            id = s.base;
        }
        Err(DecodeError(
            "stack definitions refer to each other in a loop",
        ))
    }

    /// Writes the outermost `out.len()` frames of stack `id` (innermost first) into `out`.
    fn outer(&self, mut id: u64, out: &mut [u64]) -> Result<(), DecodeError> {
        let mut n = out.len();
        // Each step takes frames or moves to the base; a walk longer than the stacks defined
        // plus the frames wanted has visited a stack twice (a file whose redefinitions loop).
        for _ in 0..self.at.len() + n + 1 {
            if n == 0 {
                return Ok(());
            }
            let s = *self.at.get(&id).ok_or(DecodeError(
                "a stack names a base stack not defined before it",
            ))?;
            if n as u64 > u64::from(s.len) + u64::from(s.keep) {
                return Err(DecodeError("a stack keeps more frames than its base has"));
            }
            if n > s.keep as usize {
                let from_own = n - s.keep as usize;
                let end = s.start + s.len as usize;
                let at = out.len() - n;
                out[at..at + from_own].copy_from_slice(&self.own[end - from_own..end]);
                n = s.keep as usize;
            }
            id = s.base;
        }
        Err(DecodeError(
            "stack definitions refer to each other in a loop",
        ))
    }
}

/// The counters of [`OrderedState`], copied while an event is decoded.
#[derive(Clone, Copy)]
struct Counters {
    next_block: u64,
    next_seq: u64,
}

/// Bit set in the `addr` of events decoded from a version-2 file: the rest is the block's number
/// in the profile (its identity), not its address. Frees of blocks the profile never saw
/// allocated carry their real address (bit clear).
pub const BLOCK_ID: u64 = 1 << 63;

/// What version 2's ordered event stream carries from chunk to chunk: its counters and, from
/// version 3 on, what records refer to in earlier chunks.
#[derive(Debug, Clone, Default)]
pub struct OrderedState {
    /// Number of the next block allocated.
    pub next_block: u64,
    /// Sequence number of the next event (its position in the stream).
    pub next_seq: u64,
    /// The thread of the last context record: where a piece of a chunk (see
    /// [`ChunkBytes`]) that continues the one before starts.
    tid: u32,
    /// Version 3: stacks' frames and the last sample.
    carried: Carried,
    /// A `STACK_TAIL`'s record holds its own frames only when its base has the same module
    /// generation (`Record::Stack`'s `outer_omitted`): for a reader that finds the outer
    /// frames from the base itself (the analyzer's tree of stacks) or needs return addresses
    /// only (embedding symbols), they are not rebuilt.
    pub own_frames_only: bool,
}

impl<'a> RecordIter<'a> {
    /// Records of a chunk in the sequenced layout (version-1 files, the recorder's thread
    /// buffers), starting from `data`; `chunk_offset` (the chunk's position in the file) is
    /// named in errors.
    pub fn new(data: &'a [u8], version: u16, chunk_offset: u64) -> RecordIter<'a> {
        RecordIter {
            cursor: Cursor::new(data),
            version,
            tid: 0,
            prev_seq: 0,
            ordered: None,
            chunk_offset,
            failed: false,
        }
    }

    /// Records of a chunk of a version-2 (or later) file; events continue the stream `state`
    /// describes (and, version 3, refer to what earlier chunks defined in it).
    pub(crate) fn ordered(
        data: &'a [u8],
        version: u16,
        state: &'a mut OrderedState,
        chunk_offset: u64,
    ) -> RecordIter<'a> {
        RecordIter {
            cursor: Cursor::new(data),
            version,
            tid: 0,
            prev_seq: 0,
            ordered: Some(state),
            chunk_offset,
            failed: false,
        }
    }

    /// Version 3: what records refer to in earlier chunks.
    fn carried(&mut self) -> Option<&mut Carried> {
        if self.version < 3 {
            return None;
        }
        self.ordered.as_deref_mut().map(|o| &mut o.carried)
    }

    /// A `STACK_TAIL` record (version 3): the outer frames of its base, and its own inside
    /// them.
    fn stack_tail(&mut self) -> Result<Record, DecodeError> {
        let c = &mut self.cursor;
        let id = c.uvarint()?;
        let generation = c.uvarint()?;
        let flags = c.uvarint()?;
        let base = c.uvarint()?;
        let keep = c.uvarint()?;
        let n = c.uvarint()?;
        if n.saturating_add(keep) > MAX_STACK_FRAMES {
            return Err(DecodeError("stack deeper than 4096 frames"));
        }
        let (n, keep) = (n as usize, keep as usize);
        let own_only = self.ordered.as_ref().is_some_and(|o| o.own_frames_only);
        let (mut frames, mut prev, outer_omitted) = {
            let stacks = &self
                .carried()
                .ok_or(DecodeError("unknown record tag"))?
                .stacks;
            let len = stacks.depth(base).ok_or(DecodeError(
                "a stack names a base stack not defined before it",
            ))?;
            if keep == 0 || keep > len {
                return Err(DecodeError("a stack keeps more frames than its base has"));
            }
            // A base of another generation: its addresses are other return addresses of this
            // one's, which a reader of addresses needs too.
            if own_only && stacks.generation(base) == Some(generation) {
                (vec![0u64; n], stacks.innermost_kept(base, keep)?, true)
            } else {
                let mut frames = vec![0u64; n + keep];
                stacks.outer(base, &mut frames[n..])?;
                let innermost_kept = frames[n];
                (frames, innermost_kept, false)
            }
        };
        for i in (0..n).rev() {
            prev = prev.wrapping_add(self.cursor.ivarint()? as u64);
            frames[i] = prev;
        }
        if let Some(c) = self.carried() {
            c.stacks
                .define(id, &frames[..n], base, keep as u32, generation);
        }
        Ok(Record::Stack {
            id,
            generation,
            truncated: flags & super::stack_flag::TRUNCATED != 0,
            frames,
            base,
            keep: keep as u32,
            outer_omitted,
        })
    }

    /// Where the next record starts, in bytes from the start of the chunk's (decoded) records.
    /// For tools that measure what each record costs.
    pub fn position(&self) -> usize {
        self.cursor.position()
    }

    /// Passes every remaining record to `f`, in order; stops at the first that cannot be
    /// decoded. The same records as iterating, faster: the loop is compiled into the caller
    /// with `f`, so a version-2 event goes from its bytes to what `f` makes of it without being
    /// returned through the iterator (the analyzer's replay reads millions of them).
    #[inline]
    pub fn visit(&mut self, mut f: impl FnMut(Record)) -> Result<(), FormatError> {
        if self.failed {
            return Ok(());
        }
        loop {
            let rec = match self.cursor.peek() {
                Some(t @ (tag::ALLOC | tag::FREE | tag::REALLOC)) if self.ordered.is_some() => {
                    self.cursor.skip(1);
                    self.ordered_event(t)
                }
                // A thread switch, here rather than in `decode`: the burst of 300 threads has one
                // every few events.
                Some(tag::CONTEXT) if self.ordered.is_some() => {
                    self.cursor.skip(1);
                    match self.context() {
                        Ok(()) => continue,
                        Err(e) => Err(e),
                    }
                }
                _ => match self.decode() {
                    Ok(Some(rec)) => Ok(rec),
                    Ok(None) => return Ok(()),
                    Err(e) => Err(e),
                },
            };
            match rec {
                Ok(rec) => f(rec),
                Err(e) => {
                    self.failed = true;
                    return Err(FormatError::BadRecord {
                        offset: self.chunk_offset,
                        reason: e.0,
                    });
                }
            }
        }
    }

    /// Version 2: the block a free names (`back`, and the address when `back` is 0).
    #[inline(always)]
    fn freed_block(&mut self, next_block: u64) -> Result<u64, DecodeError> {
        let back = self.cursor.uvarint()?;
        if back == 0 {
            return self.cursor.uvarint();
        }
        if back > next_block {
            return Err(DecodeError("a free names a block before the first"));
        }
        Ok(BLOCK_ID | (next_block - back))
    }

    /// Decodes an event of version 2's ordered layout.
    #[inline]
    fn ordered_event(&mut self, t: u8) -> Result<Record, DecodeError> {
        let Some(o) = self.ordered.as_deref() else {
            return Err(DecodeError("unknown record tag"));
        };
        let st = Counters {
            next_block: o.next_block,
            next_seq: o.next_seq,
        };
        let mut next = st;
        let rec = match t {
            tag::ALLOC => {
                let c = &mut self.cursor;
                let size = c.uvarint()?;
                let stack = c.uvarint()?;
                let kind =
                    AllocKind::from_u8(c.u8()?).ok_or(DecodeError("unknown allocation kind"))?;
                let align = c.uvarint()?;
                next.next_block += 1;
                next.next_seq += 1;
                Record::Alloc {
                    tid: self.tid,
                    seq: st.next_seq,
                    addr: BLOCK_ID | st.next_block,
                    size,
                    stack,
                    kind,
                    align,
                }
            }
            tag::FREE => {
                let addr = self.freed_block(st.next_block)?;
                next.next_seq += 1;
                Record::Free {
                    tid: self.tid,
                    seq: st.next_seq,
                    addr,
                }
            }
            _ => {
                let old_addr = self.freed_block(st.next_block)?;
                let c = &mut self.cursor;
                let size = c.uvarint()?;
                let stack = c.uvarint()?;
                let kind =
                    AllocKind::from_u8(c.u8()?).ok_or(DecodeError("unknown allocation kind"))?;
                next.next_block += 1;
                next.next_seq += 2;
                Record::Realloc {
                    tid: self.tid,
                    free_seq: st.next_seq,
                    seq: st.next_seq + 1,
                    old_addr,
                    new_addr: BLOCK_ID | st.next_block,
                    size,
                    stack,
                    kind,
                }
            }
        };
        if let Some(s) = self.ordered.as_deref_mut() {
            (s.next_block, s.next_seq) = (next.next_block, next.next_seq);
        }
        Ok(rec)
    }

    /// A `CONTEXT` record's fields, its tag read: the thread of the events after it (and, in
    /// version 1, the sequence number they count from).
    #[inline(always)]
    fn context(&mut self) -> Result<(), DecodeError> {
        self.tid = self.cursor.uvarint()? as u32;
        match self.ordered.as_deref_mut() {
            Some(o) => o.tid = self.tid,
            None => self.prev_seq = self.cursor.uvarint()?,
        }
        Ok(())
    }

    #[inline(never)]
    fn decode(&mut self) -> Result<Option<Record>, DecodeError> {
        loop {
            if self.cursor.is_empty() {
                return Ok(None);
            }
            let c = &mut self.cursor;
            let t = c.u8()?;
            let rec = match t {
                tag::CONTEXT => {
                    self.context()?;
                    continue;
                }
                tag::ALLOC | tag::FREE | tag::REALLOC if self.ordered.is_some() => {
                    self.ordered_event(t)?
                }
                tag::ALLOC => {
                    let seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    let addr = c.uvarint()?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = AllocKind::from_u8(c.u8()?)
                        .ok_or(DecodeError("unknown allocation kind"))?;
                    let align = c.uvarint()?;
                    Record::Alloc {
                        tid: self.tid,
                        seq,
                        addr,
                        size,
                        stack,
                        kind,
                        align,
                    }
                }
                tag::FREE => {
                    let seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    Record::Free {
                        tid: self.tid,
                        seq,
                        addr: c.uvarint()?,
                    }
                }
                tag::REALLOC => {
                    let free_seq = self.prev_seq.wrapping_add(c.uvarint()?);
                    let seq = free_seq.wrapping_add(c.uvarint()?);
                    self.prev_seq = seq;
                    let old_addr = c.uvarint()?;
                    let new_addr = c.uvarint()?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = AllocKind::from_u8(c.u8()?)
                        .ok_or(DecodeError("unknown allocation kind"))?;
                    Record::Realloc {
                        tid: self.tid,
                        free_seq,
                        seq,
                        old_addr,
                        new_addr,
                        size,
                        stack,
                        kind,
                    }
                }
                tag::STACK => {
                    let id = c.uvarint()?;
                    let (generation, flags) = if self.version >= 2 {
                        (c.uvarint()?, c.uvarint()?)
                    } else {
                        (0, 0)
                    };
                    let n = c.uvarint()?;
                    if n > MAX_STACK_FRAMES {
                        return Err(DecodeError("stack deeper than 4096 frames"));
                    }
                    let mut frames = Vec::with_capacity(n as usize);
                    let mut prev = 0u64;
                    for _ in 0..n {
                        prev = prev.wrapping_add(c.ivarint()? as u64);
                        frames.push(prev);
                    }
                    if let Some(st) = self.carried() {
                        st.stacks.define(id, &frames, 0, 0, generation);
                    }
                    Record::Stack {
                        id,
                        generation,
                        truncated: flags & super::stack_flag::TRUNCATED != 0,
                        frames,
                        base: 0,
                        keep: 0,
                        outer_omitted: false,
                    }
                }
                tag::STACK_TAIL if self.version >= 3 && self.ordered.is_some() => {
                    self.stack_tail()?
                }
                tag::SAMPLE_DELTA if self.version >= 3 && self.ordered.is_some() => {
                    let o = self.ordered.as_deref_mut().expect("checked");
                    let seq = o.next_seq;
                    o.carried.sample.read(&mut self.cursor, seq)?
                }
                tag::CPU_SAMPLE if self.version >= 2 => Record::CpuSample {
                    tid: c.uvarint()? as u32,
                    t_ns: c.uvarint()?,
                    stack: c.uvarint()?,
                    weight_ns: c.uvarint()?,
                },
                tag::EVENT_FRAMES if self.version >= 2 => {
                    let sp = c.uvarint()?;
                    let n = c.uvarint()?;
                    if n > MAX_STACK_FRAMES {
                        return Err(DecodeError("more frame addresses than frames"));
                    }
                    let mut cfas = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        cfas.push(sp.wrapping_add(c.uvarint()?));
                    }
                    Record::EventFrames {
                        tid: self.tid,
                        sp,
                        cfas,
                    }
                }
                tag::THREAD => Record::Thread {
                    tid: c.uvarint()? as u32,
                    name: c.string()?,
                    stack_lo: c.uvarint()?,
                    stack_hi: c.uvarint()?,
                },
                tag::THREAD_EXIT => Record::ThreadExit {
                    tid: c.uvarint()? as u32,
                    stack_high_water_bytes: c.uvarint()?,
                },
                tag::MODULES => {
                    let generation = c.uvarint()?;
                    let n = c.uvarint()?;
                    let mut modules = Vec::new();
                    for _ in 0..n {
                        let path = c.string()?;
                        let build_id = c.bytes()?.to_vec();
                        let base = c.uvarint()?;
                        let ns = c.uvarint()?;
                        let mut segments = Vec::new();
                        for _ in 0..ns {
                            segments.push(Segment {
                                start: c.uvarint()?,
                                size: c.uvarint()?,
                                flags: c.uvarint()? as u32,
                            });
                        }
                        modules.push(Module {
                            path,
                            build_id,
                            base,
                            segments,
                        });
                    }
                    Record::Modules {
                        generation,
                        modules,
                    }
                }
                tag::SAMPLE => {
                    let seq = c.uvarint()?;
                    let t_ns = c.uvarint()?;
                    let values = read_pairs(c)?;
                    Record::Sample { seq, t_ns, values }
                }
                tag::WATERMARK => Record::Watermark { seq: c.uvarint()? },
                tag::TRAILER => Record::Trailer {
                    values: read_pairs(c)?,
                },
                tag::MESSAGE => Record::Message {
                    level: c.u8()?,
                    text: c.string()?,
                },
                tag::SYMBOLS => {
                    let body = c.bytes()?;
                    let mut b = Cursor::new(body);
                    let generation = if self.version >= 2 { b.uvarint()? } else { 0 };
                    let n = b.uvarint()?;
                    let mut entries = Vec::new();
                    for _ in 0..n {
                        let ip = b.uvarint()?;
                        let m = b.uvarint()?;
                        let mut frames = Vec::new();
                        for _ in 0..m {
                            frames.push(SymbolFrame {
                                function: b.string()?,
                                file: b.string()?,
                                line: b.uvarint()? as u32,
                            });
                        }
                        entries.push((ip, frames));
                    }
                    Record::Symbols {
                        generation,
                        entries,
                    }
                }
                tag::EVENT_RETURNS => {
                    let body = c.bytes()?;
                    let mut b = Cursor::new(body);
                    let n = b.uvarint()?;
                    if n > MAX_STACK_FRAMES {
                        return Err(DecodeError("more return addresses than frames"));
                    }
                    let mut ips = Vec::with_capacity(n as usize);
                    for i in 0..n {
                        let ip = if i == 0 {
                            b.uvarint()?
                        } else {
                            let prev: u64 = ips[ips.len() - 1];
                            prev.wrapping_add(b.ivarint()? as u64)
                        };
                        ips.push(ip);
                    }
                    Record::EventReturns { tid: self.tid, ips }
                }
                t if t >= 64 => {
                    // Extensible record this version does not know: skip it.
                    c.bytes()?;
                    continue;
                }
                _ => return Err(DecodeError("unknown record tag")),
            };
            return Ok(Some(rec));
        }
    }
}

/// One chunk's records as bytes, or a piece of an event chunk's, from
/// [`super::Reader::next_chunk_pieces`].
#[derive(Debug)]
pub struct ChunkBytes {
    data: Vec<u8>,
    from: usize,
    version: u16,
    offset: u64,
    /// A piece after the first of its chunk: its records are in the thread of the previous
    /// piece's last context record, where a chunk's start in none.
    continues: bool,
}

impl ChunkBytes {
    pub(crate) fn new(data: Vec<u8>, from: usize, version: u16, offset: u64) -> ChunkBytes {
        ChunkBytes {
            data,
            from,
            version,
            offset,
            continues: false,
        }
    }

    /// A piece of a chunk: whole records, the first piece of its chunk unless `continues`.
    pub(crate) fn piece(data: Vec<u8>, version: u16, offset: u64, continues: bool) -> ChunkBytes {
        ChunkBytes {
            data,
            from: 0,
            version,
            offset,
            continues,
        }
    }

    /// The chunk's records. `state` carries version 2's event numbering from chunk to chunk:
    /// one state per profile, given every chunk (or piece) in file order.
    pub fn records<'a>(&'a self, state: &'a mut OrderedState) -> RecordIter<'a> {
        let data = &self.data[self.from..];
        if self.version < 2 {
            RecordIter::new(data, self.version, self.offset)
        } else {
            let tid = if self.continues { state.tid } else { 0 };
            let mut it = RecordIter::ordered(data, self.version, state, self.offset);
            it.tid = tid;
            it
        }
    }

    /// File offset of the chunk (named in errors).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The buffer, for [`super::Reader::next_chunk_pieces`] to reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.data
    }
}

fn read_pairs(c: &mut Cursor<'_>) -> Result<Vec<(u64, u64)>, DecodeError> {
    let n = c.uvarint()?;
    if n > 1 << 16 {
        return Err(DecodeError("implausible number of values"));
    }
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        v.push((c.uvarint()?, c.uvarint()?));
    }
    Ok(v)
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decode() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(FormatError::BadRecord {
                    offset: self.chunk_offset,
                    reason: e.0,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outer frames rebuilt by following bases: from a stack's own frames, from its base's, and
    /// across several bases; a loop of redefinitions is an error, not a hang.
    #[test]
    fn outer_frames_follow_the_bases() {
        let mut s = StackFrames::default();
        // 1 = [c, b, a] (innermost first); 2 = [e, d] + outer 2 of 1 = [e, d, b, a];
        // 3 = [f] + outer 3 of 2 = [f, d, b, a].
        s.define(1, &[0xc, 0xb, 0xa], 0, 0, 1);
        s.define(2, &[0xe, 0xd], 1, 2, 1);
        s.define(3, &[0xf], 2, 3, 1);
        let outer = |s: &StackFrames, id: u64, n: usize| {
            let mut out = vec![0u64; n];
            s.outer(id, &mut out).map(|_| out)
        };
        assert_eq!(s.depth(3), Some(4));
        assert_eq!(outer(&s, 3, 4).unwrap(), [0xf, 0xd, 0xb, 0xa]);
        assert_eq!(outer(&s, 3, 3).unwrap(), [0xd, 0xb, 0xa]);
        assert_eq!(outer(&s, 2, 4).unwrap(), [0xe, 0xd, 0xb, 0xa]);
        assert_eq!(outer(&s, 3, 1).unwrap(), [0xa]);
        assert_eq!(outer(&s, 1, 0).unwrap(), Vec::<u64>::new());
        assert!(outer(&s, 1, 4).is_err());
        assert!(outer(&s, 9, 1).is_err());
        // The innermost of the outermost `keep` frames, without the others: as rebuilt.
        for (id, depth) in [(1, 3), (2, 4), (3, 4)] {
            for keep in 1..=depth {
                assert_eq!(
                    s.innermost_kept(id, keep).unwrap(),
                    outer(&s, id, keep).unwrap()[0],
                    "stack {id}, keep {keep}"
                );
            }
            assert!(s.innermost_kept(id, depth + 1).is_err());
            assert!(s.innermost_kept(id, 0).is_err());
        }
        assert!(s.innermost_kept(9, 1).is_err());
        // Redefinitions that make 4 and 5 each other's base.
        s.define(4, &[], 5, 2, 1);
        s.define(5, &[], 4, 2, 1);
        assert!(outer(&s, 4, 1).is_err());
        assert!(s.innermost_kept(4, 1).is_err());
    }
}
