//! Chunk framing: every chunk is checksummed and self-delimiting; in version 2 its payload says
//! what it holds (so a reader can skip event chunks without decompressing them) and how it is
//! stored (plain, or one zstd frame).
//!
//! ```text
//! chunk   := "TMCK" payload_len:u32le crc32(payload):u32le payload
//! payload := kind:u8 codec:u8 raw_len:uvarint data     -- raw_len: bytes of records once decoded
//! ```

use super::columns::Columns;
use super::varint::put_uvarint;
use super::{CHUNK_HEADER_LEN, CHUNK_MAGIC, MAX_CHUNK_PAYLOAD};
use std::io;

/// What a version-2 chunk holds. Readers treat an unknown kind like [`ChunkKind::Meta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkKind {
    /// Thread buffers: context, allocation, free, realloc, thread and thread-exit records,
    /// event frames.
    Events = 0,
    /// Stack definitions and module snapshots, written before the events that use them.
    Definitions = 1,
    /// Timeline samples, CPU samples, messages, watermarks.
    Meta = 2,
    /// The trailer alone: the recorder's last chunk.
    Trailer = 3,
    /// Data appended after the trailer (embedded symbols).
    Appendix = 4,
}

impl ChunkKind {
    /// Decodes a kind byte; unknown values read as [`ChunkKind::Meta`] (records only).
    pub fn from_u8(b: u8) -> ChunkKind {
        match b {
            0 => ChunkKind::Events,
            1 => ChunkKind::Definitions,
            3 => ChunkKind::Trailer,
            4 => ChunkKind::Appendix,
            _ => ChunkKind::Meta,
        }
    }
}

/// How a version-2 chunk's records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkCodec {
    /// As is.
    Stored = 0,
    /// One zstd frame.
    Zstd = 1,
    /// Event chunks only: the records rewritten as streams ([`super::columns`]), then one zstd
    /// frame: `columns_len:uvarint zstd_frame(columns)`. Version 3.
    Columns = 2,
    /// Event chunks only: as [`ChunkCodec::Columns`], with each thread's ops, sizes, stacks and
    /// kinds in a lane of their own. Version 4; what the recorder writes.
    ColumnsByThread = 3,
}

fn frame(out: &mut [u8], payload_start: usize) {
    let len = (out.len() - payload_start) as u32;
    let crc = crc32fast::hash(&out[payload_start..]);
    let head = payload_start - CHUNK_HEADER_LEN;
    out[head..head + 4].copy_from_slice(&CHUNK_MAGIC);
    out[head + 4..head + 8].copy_from_slice(&len.to_le_bytes());
    out[head + 8..head + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Appends `records` to `out` as a version-2 chunk of `kind`, stored uncompressed.
pub fn put_chunk(out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) {
    let start = out.len() + CHUNK_HEADER_LEN;
    out.resize(start, 0);
    out.push(kind as u8);
    out.push(ChunkCodec::Stored as u8);
    put_uvarint(out, records.len() as u64);
    out.extend_from_slice(records);
    frame(out, start);
}

/// Frames `payload` as a chunk as it is: the records of a version-1 chunk, or a whole
/// version-2 payload (kind, codec, length, data). For test data and copying chunks.
pub fn put_chunk_raw(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len() + CHUNK_HEADER_LEN;
    out.resize(start, 0);
    out.extend_from_slice(payload);
    frame(out, start);
}

/// Appends `records` to `out` as a chunk of `kind` compressed in one shot at
/// [`SMALL_CHUNK_LEVEL`] (stored when that is not smaller): for the few small chunks written
/// outside the writer thread (the first module map).
pub fn put_chunk_small(out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) {
    match zstd::bulk::compress(records, SMALL_CHUNK_LEVEL) {
        Ok(z) if z.len() < records.len() => {
            let start = out.len() + CHUNK_HEADER_LEN;
            out.resize(start, 0);
            out.push(kind as u8);
            out.push(ChunkCodec::Zstd as u8);
            put_uvarint(out, records.len() as u64);
            out.extend_from_slice(&z);
            frame(out, start);
        }
        _ => put_chunk(out, kind, records),
    }
}

/// Compresses chunks (zstd) for the recorder's writer thread; reuses its context across chunks.
///
/// Each chunk is compressed as a stream whose size zstd is not told in advance. Told the size
/// (one-shot compression), zstd picks its parameters for that size, and for inputs under 256 KiB
/// its level-1 and level-3 choices miss the long, regular repetition of an event stream: the
/// last, partly filled chunk of a churn loop (a 14-byte pattern repeated 150 KB long) came out
/// at 3.7 KB, against 118 bytes compressed as a stream, and level 3 did the same on 1 MiB
/// chunks (3.7 KB against 122 bytes at level 1). As a stream the frame omits its content size;
/// the chunk's `raw_len` says it, and readers decode with that capacity.
///
/// Very regular records (a loop's events) are compressed a second time at
/// [`REGULAR_DATA_LEVEL`]: at level 1 zstd's fast match finder loses the period of some of them
/// (a 40-deep recursion cycling through 16 call sites: 5.2 KB for 1 MiB that level 7 stores in
/// 400 bytes), and on such data the stronger level is as fast. Ordinary records (a Python
/// program's: 39:1 at level 1) are not: level 7 would cost several times the CPU for 5% less.
pub struct ChunkWriter {
    fast: ZstdStream,
    /// Made on first use: event chunks as streams (see [`COLUMNS_LEVEL`]).
    columns_z: Option<ZstdStream>,
    columns: Columns,
    columns_buf: Vec<u8>,
    /// Made on first use: small chunks other than events (see [`SMALL_CHUNK_LEVEL`]).
    small: Option<zstd::bulk::Compressor<'static>>,
    /// Made on first use: the second try for very regular records.
    strong: Option<ZstdStream>,
    level: i32,
    scratch: Vec<u8>,
    /// The second attempt's output.
    strong_out: Vec<u8>,
}

/// The level very regular records are compressed at again (see [`ChunkWriter`]).
pub const REGULAR_DATA_LEVEL: i32 = 7;
/// Records that compress more than this many times at the writer's level get the second try.
const REGULAR_DATA_RATIO: usize = 64;
/// The second try's window: 1 MiB, an event chunk's size, instead of level 7's 2 MiB default for
/// a stream of unknown size (less memory in the profiled process, nothing lost on a chunk).
const REGULAR_DATA_WINDOW_LOG: i32 = 20;

/// zstd level of event chunks written as streams (codecs 2 and 3). Level 3 finds more of the
/// repetition in a drifting free stream (python3's events: 94 KB at level 1, 86 KB at level 3),
/// but the writer's time matters more: on a Rust program's random sizes and frees, splitting the
/// records into streams already costs the writer about as much as compressing them.
pub const COLUMNS_LEVEL: i32 = 1;
/// Its window: 1 MiB, a writer piece's size (less memory than zstd's default for a stream).
const COLUMNS_WINDOW_LOG: i32 = 20;

/// Chunks other than events up to this size are compressed in one shot at
/// [`SMALL_CHUNK_LEVEL`]: stack definitions and module maps, written once each, are a large
/// part of a short run's profile (a C churn's: 0.8 KB of 5 KB), and zstd told their size does
/// better on them than as a stream (python3's definitions: 57.6 KB stored as a level-1 stream,
/// 48.9 KB at level 9 in one shot, ≈ 1 ms per 20 KB).
const SMALL_CHUNK_BYTES: usize = 64 << 10;
/// The level of those chunks.
pub const SMALL_CHUNK_LEVEL: i32 = 9;

/// Event records shorter than this are stored: a zstd frame would not pay for its framing.
const MIN_COMPRESS: usize = 256;

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
}

/// One zstd context with fixed parameters. One per level: changing a context's level between
/// frames made zstd resize its tables every chunk (page faults: +50–100% system time on a
/// churn loop).
struct ZstdStream {
    cctx: zstd::zstd_safe::CCtx<'static>,
}

impl ZstdStream {
    fn new(level: i32, window_log: Option<i32>) -> io::Result<ZstdStream> {
        use zstd::zstd_safe::CParameter;
        let mut cctx = zstd::zstd_safe::CCtx::try_create()
            .ok_or_else(|| io::Error::other("zstd: cannot create a compression context"))?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(zstd_error)?;
        if let Some(w) = window_log {
            cctx.set_parameter(CParameter::WindowLog(w as u32))
                .map_err(zstd_error)?;
        }
        Ok(ZstdStream { cctx })
    }

    /// `records` as one zstd frame in `out`, compressed as a stream (see [`ChunkWriter`]).
    fn compress(&mut self, records: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        use zstd::zstd_safe::{zstd_sys::ZSTD_EndDirective, InBuffer, OutBuffer, ResetDirective};
        self.cctx
            .reset(ResetDirective::SessionOnly)
            .map_err(zstd_error)?;
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(records.len()) + 64);
        let mut input = InBuffer::around(records);
        let mut output = OutBuffer::around(out);
        // The first call takes the input without ending the frame, so zstd does not learn its
        // size; the next calls end the frame.
        self.cctx
            .compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_continue)
            .map_err(zstd_error)?;
        loop {
            let left = self
                .cctx
                .compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_end)
                .map_err(zstd_error)?;
            if left == 0 {
                return Ok(());
            }
            if output.pos() == output.capacity() {
                return Err(io::Error::other("zstd: output larger than its bound"));
            }
        }
    }
}

impl ChunkWriter {
    /// A writer compressing at `level` (1 is fast; the recorder's default, 3, keeps up with
    /// several million events per second on one core).
    pub fn new(level: i32) -> io::Result<ChunkWriter> {
        Ok(ChunkWriter {
            fast: ZstdStream::new(level, None)?,
            columns_z: None,
            columns: Columns::laned(),
            columns_buf: Vec::new(),
            small: None,
            strong: None,
            level,
            scratch: Vec::new(),
            strong_out: Vec::new(),
        })
    }

    /// `records` as one zstd frame in `self.scratch`; a second try for very regular records.
    fn compress(&mut self, records: &[u8]) -> io::Result<()> {
        self.fast.compress(records, &mut self.scratch)?;
        if self.level < REGULAR_DATA_LEVEL
            && self.scratch.len() * REGULAR_DATA_RATIO < records.len()
        {
            let strong = match &mut self.strong {
                Some(s) => s,
                None => self.strong.insert(ZstdStream::new(
                    REGULAR_DATA_LEVEL,
                    Some(REGULAR_DATA_WINDOW_LOG),
                )?),
            };
            strong.compress(records, &mut self.strong_out)?;
            if self.strong_out.len() < self.scratch.len() {
                std::mem::swap(&mut self.scratch, &mut self.strong_out);
            }
        }
        Ok(())
    }

    /// Appends `records` to `out` as a chunk of `kind`, compressed when that makes it smaller.
    /// `records` may hold at most [`MAX_CHUNK_PAYLOAD`] bytes.
    pub fn put(&mut self, out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) -> io::Result<()> {
        debug_assert!(records.len() <= MAX_CHUNK_PAYLOAD);
        if records.len() < MIN_COMPRESS && kind == ChunkKind::Events {
            put_chunk(out, kind, records);
            return Ok(());
        }
        if kind == ChunkKind::Events {
            // Events gathered before these go first.
            self.finish_events(out)?;
            if self.put_columns(out, records)? {
                return Ok(());
            }
        }
        if kind != ChunkKind::Events && records.len() <= SMALL_CHUNK_BYTES {
            return self.put_small(out, kind, records);
        }
        self.compress(records)?;
        self.put_scratch(out, kind, records);
        Ok(())
    }
}

/// Most decoded bytes of event records one chunk gathers ([`ChunkWriter::put_events`]): what a
/// reader holds at once. A loop's events, a few bytes as streams, would otherwise fill a chunk
/// per MiB, each with its framing, zstd frame and the thread it starts with (a C churn of 0.2 s:
/// 17 chunks, ≈ 35 bytes each before any event).
pub const EVENTS_RAW_MAX: usize = 8 << 20;
/// Most bytes of streams one chunk gathers before it is compressed and written.
const EVENTS_COLUMNS_MAX: usize = 1 << 20;

impl ChunkWriter {
    /// Gathers the records of an event chunk (whole records) into the chunk being built as
    /// streams; writes it to `out` once it holds [`EVENTS_RAW_MAX`] decoded bytes or 1 MiB of
    /// streams. The caller writes the rest with [`Self::finish_events`] when its flush interval
    /// is up, so no event waits longer than that. Records the streams cannot hold are written
    /// at once as a chunk of their own, after the ones gathered.
    pub fn put_events(&mut self, out: &mut Vec<u8>, records: &[u8]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.columns.raw_len() + records.len() > EVENTS_RAW_MAX {
            self.finish_events(out)?;
        }
        if self.columns.is_empty() {
            self.columns.begin();
        }
        if self.columns.append(records).is_none() {
            return self.put(out, ChunkKind::Events, records);
        }
        if self.columns.len() >= EVENTS_COLUMNS_MAX {
            self.finish_events(out)?;
        }
        Ok(())
    }

    /// True when event records gathered by [`Self::put_events`] wait to be written.
    pub fn events_pending(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Writes the event records gathered by [`Self::put_events`], if any, as one chunk.
    pub fn finish_events(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.columns.is_empty() {
            return Ok(());
        }
        let raw_len = self.columns.raw_len();
        self.columns.finish(&mut self.columns_buf);
        self.columns.begin();
        self.put_columns_buf(out, raw_len)
    }

    /// A small chunk of definitions, messages or CPU samples: compressed in one shot at
    /// [`SMALL_CHUNK_LEVEL`] (or the writer's level when higher), zstd told its size (which fits
    /// its tables to it), or stored when
    /// that is not smaller.
    fn put_small(&mut self, out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) -> io::Result<()> {
        let small = match &mut self.small {
            Some(z) => z,
            None => self.small.insert(zstd::bulk::Compressor::new(
                self.level.max(SMALL_CHUNK_LEVEL),
            )?),
        };
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(records.len()));
        small.compress_to_buffer(records, &mut self.scratch)?;
        self.put_scratch(out, kind, records);
        Ok(())
    }

    /// Writes a chunk of `kind` holding `records`: their zstd frame (in `self.scratch`) when
    /// it is smaller, else the records stored.
    fn put_scratch(&self, out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) {
        if self.scratch.len() >= records.len() {
            put_chunk(out, kind, records);
            return;
        }
        let start = out.len() + CHUNK_HEADER_LEN;
        out.resize(start, 0);
        out.push(kind as u8);
        out.push(ChunkCodec::Zstd as u8);
        put_uvarint(out, records.len() as u64);
        out.extend_from_slice(&self.scratch);
        frame(out, start);
    }

    /// An event chunk as streams (codec 3), when its records can be split and that is smaller
    /// than storing them; false otherwise (nothing written).
    fn put_columns(&mut self, out: &mut Vec<u8>, records: &[u8]) -> io::Result<bool> {
        if self
            .columns
            .encode(records, &mut self.columns_buf)
            .is_none()
        {
            return Ok(false);
        }
        self.columns.begin();
        if self.columns_buf.len() >= records.len() {
            return Ok(false);
        }
        self.put_columns_buf(out, records.len())?;
        Ok(true)
    }

    /// `self.columns_buf` (streams of `raw_len` bytes of records) as a chunk.
    fn put_columns_buf(&mut self, out: &mut Vec<u8>, raw_len: usize) -> io::Result<()> {
        let z = match &mut self.columns_z {
            Some(z) => z,
            None => self
                .columns_z
                .insert(ZstdStream::new(COLUMNS_LEVEL, Some(COLUMNS_WINDOW_LOG))?),
        };
        z.compress(&self.columns_buf, &mut self.scratch)?;
        let start = out.len() + CHUNK_HEADER_LEN;
        out.resize(start, 0);
        out.push(ChunkKind::Events as u8);
        out.push(ChunkCodec::ColumnsByThread as u8);
        put_uvarint(out, raw_len as u64);
        put_uvarint(out, self.columns_buf.len() as u64);
        out.extend_from_slice(&self.scratch);
        frame(out, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::varint::Cursor;

    /// Payload fields of the one chunk in `out`: (kind, codec, raw_len, data).
    fn parts(out: &[u8]) -> (u8, u8, u64, &[u8]) {
        let payload = &out[CHUNK_HEADER_LEN..];
        let mut c = Cursor::new(&payload[2..]);
        let raw_len = c.uvarint().unwrap();
        let at = 2 + c.position();
        (payload[0], payload[1], raw_len, &payload[at..])
    }

    #[test]
    fn a_short_regular_stream_compresses_like_a_long_one() {
        // A churn loop's events: free(back 1), malloc(33 or 32 bytes, stack 1), 150 KB of it.
        let pattern = [3u8, 1, 2, 0x21, 1, 0, 0, 3, 1, 2, 0x20, 1, 0, 0];
        let records: Vec<u8> = pattern.iter().copied().cycle().take(150_000).collect();
        // (Meta: event chunks are written as columns, tested below.)
        let mut w = ChunkWriter::new(1).unwrap();
        let mut out = Vec::new();
        w.put(&mut out, ChunkKind::Meta, &records).unwrap();
        let (kind, codec, raw_len, data) = parts(&out);
        assert_eq!(
            (kind, codec),
            (ChunkKind::Meta as u8, ChunkCodec::Zstd as u8)
        );
        assert_eq!(raw_len, records.len() as u64);
        // Told the size up front, zstd level 1 made 3.7 KB of this.
        assert!(data.len() < 300, "{} bytes", data.len());
        let back = zstd::bulk::decompress(data, raw_len as usize).unwrap();
        assert_eq!(back, records);
        // The context is reused: a second, different chunk decodes on its own.
        let other: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut out = Vec::new();
        w.put(&mut out, ChunkKind::Meta, &other).unwrap();
        let (_, codec, raw_len, data) = parts(&out);
        assert_eq!(codec, ChunkCodec::Zstd as u8);
        assert_eq!(
            zstd::bulk::decompress(data, raw_len as usize).unwrap(),
            other
        );
    }

    #[test]
    fn a_recursion_cycling_through_call_sites_compresses_well() {
        // 40-deep recursion allocating from 8, then 16 call sites in turn: malloc(32, stack k)
        // then free(back 1), 1 MiB of it. zstd level 1 alone stored this in 5.2 KB.
        let mut records = Vec::new();
        let mut i = 0u64;
        while records.len() < 1 << 20 {
            let sites = if records.len() < 600_000 { 8 } else { 16 };
            records.extend_from_slice(&[2, 0x20, (1 + i % sites) as u8, 0, 0, 3, 1]);
            i += 1;
        }
        let mut w = ChunkWriter::new(1).unwrap();
        let mut out = Vec::new();
        w.put(&mut out, ChunkKind::Meta, &records).unwrap();
        let (_, codec, raw_len, data) = parts(&out);
        assert_eq!(codec, ChunkCodec::Zstd as u8);
        assert!(data.len() < 1000, "{} bytes", data.len());
        assert_eq!(
            zstd::bulk::decompress(data, raw_len as usize).unwrap(),
            records
        );
    }

    #[test]
    fn event_chunks_are_written_as_columns_and_read_back() {
        use crate::format::{
            put_block_alloc, put_block_free, put_thread_switch, AllocKind, FreedBlock, Header,
            Reader, Record, BLOCK_ID,
        };
        // Thread 5: 40,000 rounds of malloc(48, stack 2) then free of that block; thread 6 frees
        // the very first block at the end.
        let mut records = Vec::new();
        put_thread_switch(&mut records, 5);
        for _ in 0..40_000 {
            put_block_alloc(&mut records, 48, 2, AllocKind::Malloc, 0);
            put_block_free(&mut records, FreedBlock::Back(1));
        }
        put_block_alloc(&mut records, 7, 3, AllocKind::Calloc, 16);
        put_thread_switch(&mut records, 6);
        put_block_free(&mut records, FreedBlock::Back(40_001));
        let mut w = ChunkWriter::new(1).unwrap();
        let mut file = Header::default().encode();
        let at = file.len();
        w.put(&mut file, ChunkKind::Events, &records).unwrap();
        let (kind, codec, raw_len, _) = parts(&file[at..]);
        assert_eq!(kind, ChunkKind::Events as u8);
        assert_eq!(codec, ChunkCodec::ColumnsByThread as u8);
        assert_eq!(raw_len, records.len() as u64);
        assert!(file.len() - at < 120, "{} bytes", file.len() - at);
        let mut r = Reader::new(&file[..]).unwrap();
        let mut got = Vec::new();
        r.for_each_record(|rec| {
            got.push(rec);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 80_002);
        for (i, rec) in got[..80_000].iter().enumerate() {
            let block = BLOCK_ID | (i as u64 / 2);
            let want = if i % 2 == 0 {
                Record::Alloc {
                    tid: 5,
                    seq: i as u64,
                    addr: block,
                    size: 48,
                    stack: 2,
                    kind: AllocKind::Malloc,
                    align: 0,
                }
            } else {
                Record::Free {
                    tid: 5,
                    seq: i as u64,
                    addr: block,
                }
            };
            assert_eq!(*rec, want);
        }
        assert_eq!(
            got[80_001],
            Record::Free {
                tid: 6,
                seq: 80_001,
                addr: BLOCK_ID,
            }
        );
    }
}
