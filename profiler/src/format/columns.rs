//! The columns transform of event chunks (codecs 2 and 3, `docs/format.md` §2.3): an event
//! chunk's records rewritten as separate streams (which record, sizes, stacks, kinds, freed
//! blocks, the rest), with runs of records that repeat earlier ones replaced by copies, before
//! zstd; codec 3 (format versions 4 and 5, what the recorder writes) keeps each thread's ops,
//! sizes, stacks and kinds in a lane of their own, and in version 5 names a freed block by its
//! rank among its thread's latest blocks when it is one of them.
//!
//! Why: zstd compresses a stream of one kind of value far better than the same values
//! interleaved (a two-thread Rust churn's random sizes and pool frees: 3.55 MB as records, 2.67 MB
//! as streams, both at level 1); a loop's events repeat exactly, and a copy of 100,000 records
//! costs a few bytes where zstd still spends a block per 128 KiB of input; and a program that
//! frees its blocks in about the order it made them (a cache, a ring, a dict being refilled)
//! frees blocks whose distance back drifts (49316, 49311, 49313, 49308, …): written as the
//! difference to the previous such block's number, they repeat (python3: the free stream 156 KB →
//! 47 KB).
//!
//! The transform is exact: decoding gives back the record bytes the writer had, byte for byte,
//! so the records themselves keep the layout of §3. It needs nothing from earlier chunks.

use super::tag;
use super::varint::{put_uvarint, unzigzag, zigzag, Cursor, DecodeError};
use std::hash::{Hash, Hasher};

/// Streams, in the order they are stored.
const OPS: usize = 0;
const SIZES: usize = 1;
const STACKS: usize = 2;
const KINDS: usize = 3;
const FREES: usize = 4;
const COPIES: usize = 5;
const REST: usize = 6;
const PLACES: usize = 7;
const OTHERS: usize = 8;
/// Number of streams.
pub const STREAMS: usize = 9;
/// The streams a thread's events fill a lane of, in codec 3 (`docs/format.md` §2.3): ops,
/// sizes, stacks and kinds, in this order; their index in a lane is the stream's number.
const LANED: usize = 4;

/// The op of a copy in the op stream (no record has tag 0).
const COPY_OP: u8 = 0;
/// Fewest records a copy stands for.
const MIN_COPY_RECORDS: usize = 8;
/// Records per window of the copy search (see [`Columns::encode_records`]).
const COPY_WINDOW: usize = 4096;
/// Farthest back (in records) a copy reaches.
const MAX_COPY_DISTANCE: usize = 1 << 16;
/// Frees at most this many blocks back are written as `back` in the modeled free stream; farther
/// ones as the difference to the previous far block's number.
const NEAR_BACK: u64 = 32;

/// How the free stream is written (its first byte).
const FREES_PLAIN: u8 = 0;
/// Format versions 3 and 4 (and codec 2): near frees by `back`, far ones from the last far block.
const FREES_MODELED: u8 = 1;
/// Format version 5 (codec 3 as the recorder writes it): frees of the thread's own latest blocks
/// by their rank in its lane, near ones by `back`, far ones from either of the last two far
/// blocks (`docs/format.md` §2.3).
const FREES_BY_THREAD: u8 = 2;
/// Latest blocks of each lane a free of the thread form may name by rank.
const OWN_BLOCKS: usize = 32;

/// End of the uvarint starting at `pos` (at most 10 bytes).
#[inline(always)]
fn varint_end(data: &[u8], pos: usize) -> Option<usize> {
    // Most fields are one byte.
    if *data.get(pos)? < 0x80 {
        return Some(pos + 1);
    }
    let mut i = pos + 1;
    while i < data.len() && i < pos + 10 {
        if data[i] & 0x80 == 0 {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The uvarint starting at `pos`, and where it ends.
#[inline(always)]
fn uvarint_at(data: &[u8], pos: usize) -> Option<(u64, usize)> {
    let b = *data.get(pos)?;
    if b < 0x80 {
        return Some((u64::from(b), pos + 1));
    }
    let mut c = Cursor::new(&data[pos..]);
    let v = c.uvarint().ok()?;
    Some((v, pos + c.position()))
}

fn uvarint_len(v: u64) -> usize {
    ((64 - (v | 1).leading_zeros()) as usize).div_ceil(7)
}

/// Length of the fields of a record with tag `t` (not alloc, free or realloc) starting at `pos`,
/// for the record kinds an event chunk holds; `None` for anything else.
fn body_end(t: u8, data: &[u8], pos: usize) -> Option<usize> {
    let uv = |p: usize| varint_end(data, p);
    let bytes = |p: usize| {
        let (n, p) = uvarint_at(data, p)?;
        let end = p.checked_add(usize::try_from(n).ok()?)?;
        (end <= data.len()).then_some(end)
    };
    match t {
        tag::CONTEXT | tag::WATERMARK => uv(pos),
        tag::THREAD => uv(uv(bytes(uv(pos)?)?)?),
        tag::THREAD_EXIT => uv(uv(pos)?),
        tag::SAMPLE => {
            let mut p = uv(uv(pos)?)?;
            let (n, q) = uvarint_at(data, p)?;
            p = q;
            for _ in 0..n.checked_mul(2)? {
                p = uv(p)?;
            }
            Some(p)
        }
        tag::SAMPLE_DELTA => {
            // `2n + 1`: n values; `2n`: n (key, value) pairs.
            let (m, mut p) = uvarint_at(data, uv(pos)?)?;
            for _ in 0..(m / 2).checked_mul(2 - m % 2)? {
                p = uv(p)?;
            }
            Some(p)
        }
        tag::MESSAGE => bytes((pos < data.len()).then_some(pos + 1)?),
        tag::CPU_SAMPLE => uv(uv(uv(uv(pos)?)?)?),
        tag::EVENT_FRAMES => {
            let (n, mut p) = uvarint_at(data, uv(pos)?)?;
            for _ in 0..n {
                p = uv(p)?;
            }
            Some(p)
        }
        t if t >= 64 => bytes(pos),
        _ => None,
    }
}

/// The chunk-local numbering the free model needs: allocations made so far in the chunk, the
/// numbers of the last blocks freed far back, and (the thread form, format version 5) each
/// lane's latest blocks.
#[derive(Default, Clone)]
struct FreeModel {
    next: u64,
    /// The last far block named (`far[0]`); the thread form also keeps the one before it
    /// (`far[1]`), which a far free may name its block from instead.
    far: [u64; 2],
    /// The thread form ([`FREES_BY_THREAD`]): frees of a lane's own latest blocks, two far
    /// cursors. Otherwise the form of format versions 3 and 4 ([`FREES_MODELED`]).
    by_thread: bool,
    /// The thread form: per lane, the latest blocks its record ops made.
    own: Vec<OwnBlocks>,
    /// The thread form: lanes whose record ops made blocks (the writer names blocks by rank in
    /// their lane once there are two: with one thread, ranks and `back` are the same numbers
    /// but for blocks copies made, and the two ways mixed compress worse than one).
    lanes_made: u32,
}

/// The latest [`OWN_BLOCKS`] blocks a lane's record ops made, by number (increasing).
#[derive(Clone, Copy, Default)]
struct OwnBlocks {
    ids: [u64; OWN_BLOCKS],
    made: u64,
}

impl OwnBlocks {
    #[inline]
    fn push(&mut self, id: u64) {
        self.ids[(self.made as usize) % OWN_BLOCKS] = id;
        self.made += 1;
    }

    /// The `k`-th latest (1: the latest), if the lane made that many.
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        (k >= 1 && k <= self.made.min(OWN_BLOCKS as u64))
            .then(|| self.ids[(self.made - k) as usize % OWN_BLOCKS])
    }

    /// Which latest block `id` is (1: the latest), if it is one of them.
    #[inline]
    fn find(&self, id: u64) -> Option<u64> {
        let n = self.made.min(OWN_BLOCKS as u64);
        // Newest first, numbers decrease: stop at the first one below `id`.
        if n == 0 || id < self.ids[(self.made - n) as usize % OWN_BLOCKS] {
            return None;
        }
        for k in 1..=n {
            let v = self.ids[(self.made - k) as usize % OWN_BLOCKS];
            if v <= id {
                return (v == id).then_some(k);
            }
        }
        None
    }
}

impl FreeModel {
    fn new(by_thread: bool) -> Self {
        FreeModel {
            by_thread,
            ..FreeModel::default()
        }
    }

    /// A record op of `lane` made the next block.
    #[inline]
    fn made(&mut self, lane: usize) {
        if self.by_thread {
            if self.own.len() <= lane {
                self.own.resize(lane + 1, OwnBlocks::default());
            }
            let own = &mut self.own[lane];
            self.lanes_made += u32::from(own.made == 0);
            own.push(self.next);
        }
        self.next += 1;
    }

    /// Appends `back` (≥ 1), freed by an event of `lane`, as the modeled value.
    fn put(&mut self, out: &mut Vec<u8>, back: u64, lane: usize) {
        let id = self.next.wrapping_sub(back);
        if self.by_thread {
            let ranked = self.lanes_made >= 2;
            if let Some(k) = (self.own.get(lane).filter(|_| ranked)).and_then(|o| o.find(id)) {
                put_uvarint(out, k * 4);
                return;
            }
            if back <= NEAR_BACK {
                put_uvarint(out, (back - 1) * 4 + 2);
                return;
            }
            let d0 = id.wrapping_sub(self.far[0]) as i64;
            let d1 = id.wrapping_sub(self.far[1]) as i64;
            let (j, d) = if d1.unsigned_abs() < d0.unsigned_abs() {
                (1, d1)
            } else {
                (0, d0)
            };
            if j == 1 {
                self.far[1] = self.far[0];
            }
            self.far[0] = id;
            put_uvarint(out, (zigzag(d) << 2) | (j << 1) | 1);
            return;
        }
        if back <= NEAR_BACK {
            put_uvarint(out, back * 2);
            return;
        }
        let d = id.wrapping_sub(self.far[0]) as i64;
        self.far[0] = id;
        put_uvarint(out, zigzag(d) * 2 + 1);
    }

    /// The `back` a modeled value (not 0) of an event of `lane` stands for.
    #[inline]
    fn get(&mut self, v: u64, lane: usize) -> Result<u64, DecodeError> {
        if self.by_thread {
            if v & 1 == 0 {
                let k = v >> 2;
                if v & 2 != 0 {
                    if k >= NEAR_BACK {
                        return Err(DecodeError("a modeled free names a far block as near"));
                    }
                    return Ok(k + 1);
                }
                let id = (self.own.get(lane).and_then(|o| o.get(k))).ok_or(DecodeError(
                    "a free names more of its thread's blocks than it made",
                ))?;
                return Ok(self.next - id);
            }
            let j = ((v >> 1) & 1) as usize;
            let id = self.far[j].wrapping_add(unzigzag(v >> 2) as u64);
            if j == 1 {
                self.far[1] = self.far[0];
            }
            self.far[0] = id;
            return self.far_back(id);
        }
        if v & 1 == 0 {
            return Ok(v / 2);
        }
        let id = self.far[0].wrapping_add(unzigzag(v >> 1) as u64);
        self.far[0] = id;
        self.far_back(id)
    }

    /// The `back` of far block `id`.
    #[inline]
    fn far_back(&self, id: u64) -> Result<u64, DecodeError> {
        let back = self.next.wrapping_sub(id);
        if back <= NEAR_BACK {
            return Err(DecodeError("a modeled free names a near block"));
        }
        Ok(back)
    }
}

/// Reusable buffers of the transform (the writer keeps one across chunks).
#[derive(Default)]
pub struct Columns {
    /// Codec 3: the ops, sizes, stacks and kinds of each thread's events in a lane of their own.
    laned: bool,
    /// The streams after [`LANED`] (the first ones are in `lanes`).
    streams: [Vec<u8>; STREAMS],
    /// Per lane, its ops, sizes, stacks and kinds; lane 0 holds the events before the chunk's
    /// first thread switch (all of them without lanes), lane `i ≥ 1` the events of the `i`-th
    /// thread switched to in the chunk. Buffers are kept across chunks: `nlanes` are in use.
    lanes: Vec<[Vec<u8>; LANED]>,
    nlanes: usize,
    /// The lane the next event goes to.
    lane: usize,
    /// Lane of each thread switched to in the chunk.
    lane_of: rustc_hash::FxHashMap<u64, usize>,
    /// A piece's thread switches: (event index in the piece, lane).
    switches: Vec<(usize, usize)>,
    /// The free stream written the other way (plain `back` values).
    plain_frees: Vec<u8>,
    /// Where the chunk's event records are (start, end): the sequence copies are found in.
    starts: Vec<(usize, usize)>,
    /// Latest record index (plus one; 0: none) and the high half of its content hash, by
    /// content hash, direct-mapped: a collision only costs a missed copy. The hash half spares
    /// loading a record that cannot match (a cache miss on a large chunk).
    seen: Vec<(u32, u32)>,
    /// The free model's state, carried from piece to piece of one chunk.
    model: FreeModel,
    /// Events in the streams so far, and when the last other record was placed.
    events: usize,
    placed: usize,
    /// Decoded bytes in the streams so far.
    raw_len: usize,
    /// The copy search's window (see [`Columns::encode_records`]).
    window: Window,
}

/// Where the copy search stands: windows of [`COPY_WINDOW`] records.
#[derive(Default, Clone, Copy)]
struct Window {
    /// Records left in the current window.
    left: usize,
    /// Windows so far.
    index: usize,
    /// Records copies stood for in the current window.
    copied: usize,
    /// Whether the current window looks for copies.
    look: bool,
}

/// Slots of [`Columns::seen`].
const SEEN_SLOTS: usize = 1 << 12;

/// The slot and check value of a record.
fn record_slot(bytes: &[u8]) -> (usize, u32) {
    let mut h = rustc_hash::FxHasher::default();
    bytes.hash(&mut h);
    let h = h.finish();
    ((h >> 20) as usize % SEEN_SLOTS, (h >> 32) as u32)
}

impl Columns {
    /// The transform of codec 3 as format version 5 writes it: each thread's ops, sizes, stacks
    /// and kinds in a lane of their own (a thread's loop stays regular when other threads'
    /// events come between its own), frees in the thread form when it is the shorter one.
    /// [`Columns::default`] is codec 2's, without lanes, frees as format version 3 writes them.
    pub fn laned() -> Self {
        Columns {
            laned: true,
            ..Columns::default()
        }
    }

    /// Writes `records` (an event chunk's records, §3) transformed into `out` (cleared first).
    /// `None` when the records hold a kind an event chunk does not (the caller stores the chunk
    /// the plain way).
    pub fn encode(&mut self, records: &[u8], out: &mut Vec<u8>) -> Option<()> {
        self.begin();
        self.append(records)?;
        self.finish(out);
        Some(())
    }

    /// Starts a chunk: empty streams.
    pub fn begin(&mut self) {
        for s in &mut self.streams {
            s.clear();
        }
        if self.lanes.is_empty() {
            self.lanes.push(Default::default());
        }
        for l in &mut self.lanes[..self.nlanes.max(1)] {
            l.iter_mut().for_each(Vec::clear);
        }
        (self.nlanes, self.lane) = (1, 0);
        self.lane_of.clear();
        self.plain_frees.clear();
        self.plain_frees.push(FREES_PLAIN);
        // Codec 3 is what the recorder writes (format version 5): frees in the thread form.
        self.streams[FREES].push(if self.laned {
            FREES_BY_THREAD
        } else {
            FREES_MODELED
        });
        self.model = FreeModel::new(self.laned);
        (self.events, self.placed, self.raw_len) = (0, 0, 0);
    }

    /// Decoded bytes of the records appended since [`Self::begin`].
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// Bytes of the streams so far.
    pub fn len(&self) -> usize {
        let laned: usize = self.lanes[..self.nlanes]
            .iter()
            .flat_map(|l| l.iter().map(Vec::len))
            .sum();
        self.streams.iter().map(Vec::len).sum::<usize>() + laned
    }

    /// True when no record was appended since [`Self::begin`].
    pub fn is_empty(&self) -> bool {
        self.raw_len == 0
    }

    /// Appends the records of one piece of the chunk (whole records; copies stay within the
    /// piece). `None` (and nothing appended) when they hold a kind an event chunk does not.
    pub fn append(&mut self, records: &[u8]) -> Option<()> {
        let lens = self.streams.each_ref().map(Vec::len);
        let (plain, model, events, placed) = (
            self.plain_frees.len(),
            self.model.clone(),
            self.events,
            self.placed,
        );
        let (nlanes, lane) = (self.nlanes, self.lane);
        let lane_lens: Vec<[usize; LANED]> = self.lanes[..nlanes]
            .iter()
            .map(|l| l.each_ref().map(Vec::len))
            .collect();
        let mut starts = std::mem::take(&mut self.starts);
        let done = self.encode_records(records, &mut starts);
        self.starts = starts;
        if done.is_none() {
            for (s, l) in self.streams.iter_mut().zip(lens) {
                s.truncate(l);
            }
            for (lane, lens) in self.lanes.iter_mut().zip(&lane_lens) {
                for (s, &l) in lane.iter_mut().zip(lens) {
                    s.truncate(l);
                }
            }
            for lane in &mut self.lanes[nlanes..self.nlanes] {
                lane.iter_mut().for_each(Vec::clear);
            }
            self.lane_of.retain(|_, l| *l < nlanes);
            (self.nlanes, self.lane) = (nlanes, lane);
            self.plain_frees.truncate(plain);
            (self.model, self.events, self.placed) = (model, events, placed);
            return None;
        }
        self.raw_len += records.len();
        Some(())
    }

    /// Writes the streams appended since [`Self::begin`] to `out` (cleared first).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.clear();
        // The free stream the shorter way.
        if self.plain_frees.len() < self.streams[FREES].len() {
            std::mem::swap(&mut self.plain_frees, &mut self.streams[FREES]);
        }
        let lanes = &self.lanes[..self.nlanes];
        if !self.laned {
            let l = &lanes[0];
            for (i, s) in self.streams.iter().enumerate() {
                put_uvarint(out, l.get(i).unwrap_or(s).len() as u64);
            }
            for (i, s) in self.streams.iter().enumerate() {
                out.extend_from_slice(l.get(i).unwrap_or(s));
            }
            return;
        }
        // A laned stream: the number of lanes, each lane's length, then the lanes in order.
        let mut heads: [Vec<u8>; LANED] = Default::default();
        for (i, h) in heads.iter_mut().enumerate() {
            put_uvarint(h, lanes.len() as u64);
            for l in lanes {
                put_uvarint(h, l[i].len() as u64);
            }
        }
        for (i, s) in self.streams.iter().enumerate() {
            let len = match heads.get(i) {
                Some(h) => h.len() + lanes.iter().map(|l| l[i].len()).sum::<usize>(),
                None => s.len(),
            };
            put_uvarint(out, len as u64);
        }
        for (i, s) in self.streams.iter().enumerate() {
            match heads.get(i) {
                Some(h) => {
                    out.extend_from_slice(h);
                    for l in lanes {
                        out.extend_from_slice(&l[i]);
                    }
                }
                None => out.extend_from_slice(s),
            }
        }
    }

    /// The lane of the thread a `CONTEXT` record at `pos` switches to (a new one for a thread
    /// not seen in the chunk yet).
    fn lane_for(&mut self, records: &[u8], pos: usize) -> Option<usize> {
        let (tid, _) = uvarint_at(records, pos + 1)?;
        let next = self.nlanes;
        let lane = *self.lane_of.entry(tid).or_insert(next);
        if lane == next {
            if self.lanes.len() == next {
                self.lanes.push(Default::default());
            }
            self.nlanes += 1;
        }
        Some(lane)
    }

    /// The records into the streams, copies found.
    fn encode_records(&mut self, records: &[u8], starts: &mut Vec<(usize, usize)>) -> Option<()> {
        // Events (with the records attached to them) form one sequence, in which copies are
        // found; every other record (thread switches, samples, watermarks) goes whole to the
        // others stream with its place in that sequence, so that it does not break a copy.
        starts.clear();
        let mut switches = std::mem::take(&mut self.switches);
        switches.clear();
        let mut pos = 0;
        while pos < records.len() {
            let end = record_end(records, pos)?;
            if is_event(records[pos]) {
                starts.push((pos, end));
            } else {
                let at = self.events + starts.len();
                put_uvarint(&mut self.streams[PLACES], (at - self.placed) as u64);
                self.placed = at;
                self.streams[OTHERS].extend_from_slice(&records[pos..end]);
                if self.laned && records[pos] == tag::CONTEXT {
                    switches.push((starts.len(), self.lane_for(records, pos)?));
                }
            }
            pos = end;
        }
        let done = self.encode_events(records, starts, &switches);
        self.switches = switches;
        done
    }

    /// The event records (at `starts`) into the streams, copies found; `switches`: where the
    /// lane changes (the others stream holds the records themselves).
    fn encode_events(
        &mut self,
        records: &[u8],
        starts: &[(usize, usize)],
        switches: &[(usize, usize)],
    ) -> Option<()> {
        let mut switch = switches.iter().peekable();
        let n = starts.len();
        self.events += n;
        let rec = |i: usize| &records[starts[i].0..starts[i].1];
        self.seen.clear();
        self.seen.resize(SEEN_SLOTS, (0, 0));
        let mut model = std::mem::take(&mut self.model);
        let mut i = 0;
        // Looking for copies costs a hash per record and, in records that rarely repeat (a
        // program's random sizes), a cache miss per false lead: a window of records that copies
        // paid little in is followed by ones that do not look (every eighth window looks). The
        // windows run on from piece to piece.
        let mut w = self.window;
        while i < n {
            while let Some(&(_, lane)) = switch.next_if(|&&(at, _)| at <= i) {
                self.lane = lane;
            }
            if w.left == 0 {
                w.look = w.index.is_multiple_of(8) || w.copied * 4 >= COPY_WINDOW;
                w.index += 1;
                w.left = COPY_WINDOW;
                w.copied = 0;
            }
            w.left -= 1;
            if !w.look {
                self.literal(rec(i), &mut model)?;
                i += 1;
                continue;
            }
            let (slot, check) = record_slot(rec(i));
            let (seen, seen_check) = self.seen[slot];
            if let Some(j) = (seen as usize)
                .checked_sub(1)
                .filter(|_| seen_check == check)
            {
                let dist = i - j;
                if dist <= MAX_COPY_DISTANCE && rec(j) == rec(i) {
                    let mut k = i;
                    while k < n && rec(k) == rec(k - dist) {
                        k += 1;
                    }
                    if k - i >= MIN_COPY_RECORDS {
                        self.lanes[self.lane][OPS].push(COPY_OP);
                        let s = &mut self.streams;
                        put_uvarint(&mut s[COPIES], dist as u64);
                        put_uvarint(&mut s[COPIES], (k - i) as u64);
                        for r in i..k {
                            if makes_block(records[starts[r].0]) {
                                model.next += 1;
                            }
                        }
                        // The latest copies are the ones later records are likeliest to meet.
                        for r in k.saturating_sub(dist).max(i)..k {
                            let (slot, check) = record_slot(rec(r));
                            self.seen[slot] = (r as u32 + 1, check);
                        }
                        w.copied += k - i;
                        w.left = w.left.saturating_sub(k - i - 1);
                        i = k;
                        continue;
                    }
                }
            }
            self.seen[slot] = (i as u32 + 1, check);
            self.literal(rec(i), &mut model)?;
            i += 1;
        }
        if let Some(&(_, lane)) = switches.last() {
            self.lane = lane;
        }
        self.model = model;
        self.window = w;
        Some(())
    }

    /// One record into the streams.
    #[inline]
    fn literal(&mut self, r: &[u8], model: &mut FreeModel) -> Option<()> {
        let lane = self.lane;
        let s = &mut self.streams;
        let l = &mut self.lanes[self.lane];
        let t = r[0];
        l[OPS].push(t);
        let mut p = 1;
        // Byte by byte: fields are one to three bytes, shorter than a copy call.
        let field = |s: &mut Vec<u8>, p: &mut usize| -> Option<()> {
            let end = varint_end(r, *p)?;
            for &b in &r[*p..end] {
                s.push(b);
            }
            *p = end;
            Some(())
        };
        if matches!(t, tag::FREE | tag::REALLOC) {
            let (back, q) = uvarint_at(r, p)?;
            if q - p != uvarint_len(back) {
                return None; // not the shortest encoding: would not come back byte for byte
            }
            self.plain_frees.extend_from_slice(&r[p..q]);
            p = q;
            if back == 0 {
                s[FREES].push(0);
                let end = varint_end(r, p)?;
                s[FREES].extend_from_slice(&r[p..end]);
                self.plain_frees.extend_from_slice(&r[p..end]);
                p = end;
            } else {
                model.put(&mut s[FREES], back, lane);
            }
        }
        match t {
            tag::ALLOC => {
                field(&mut l[SIZES], &mut p)?;
                field(&mut l[STACKS], &mut p)?;
                l[KINDS].push(*r.get(p)?);
                p += 1;
                field(&mut l[KINDS], &mut p)?;
                model.made(lane);
            }
            tag::REALLOC => {
                field(&mut l[SIZES], &mut p)?;
                field(&mut l[STACKS], &mut p)?;
                l[KINDS].push(*r.get(p)?);
                p += 1;
                model.made(lane);
            }
            tag::FREE => {}
            _ => {
                // Records attached to an event: kept whole.
                s[REST].extend_from_slice(&r[1..]);
                p = r.len();
            }
        }
        (p == r.len()).then_some(())
    }
}

/// Records of the event sequence: events, and the records attached to them.
fn is_event(t: u8) -> bool {
    matches!(
        t,
        tag::ALLOC | tag::FREE | tag::REALLOC | tag::EVENT_FRAMES | tag::EVENT_RETURNS
    )
}

/// Records that make a block (the free model counts them).
fn makes_block(t: u8) -> bool {
    matches!(t, tag::ALLOC | tag::REALLOC)
}

/// End of the record starting at `pos`.
#[inline]
fn record_end(data: &[u8], pos: usize) -> Option<usize> {
    let t = *data.get(pos)?;
    let p = pos + 1;
    let uv = |p: usize| varint_end(data, p);
    let freed = |p: usize| {
        let (back, q) = uvarint_at(data, p)?;
        if back == 0 {
            uv(q)
        } else {
            Some(q)
        }
    };
    let byte = |p: usize| (p < data.len()).then_some(p + 1);
    match t {
        tag::ALLOC => uv(byte(uv(uv(p)?)?)?),
        tag::FREE => freed(p),
        tag::REALLOC => byte(uv(uv(freed(p)?)?)?),
        _ => body_end(t, data, p),
    }
}

#[path = "columns_read.rs"]
mod read;
pub use read::{decode, decode_pieces, decode_with};

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
