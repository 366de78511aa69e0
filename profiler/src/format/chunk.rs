//! Chunk framing: every chunk is checksummed and self-delimiting; in version 2 its payload says
//! what it holds (so a reader can skip event chunks without decompressing them) and how it is
//! stored (plain, or one zstd frame).
//!
//! ```text
//! chunk   := "TMCK" payload_len:u32le crc32(payload):u32le payload
//! payload := kind:u8 codec:u8 raw_len:uvarint data     -- raw_len: bytes of records once decoded
//! ```

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

/// Compresses chunks (zstd) for the recorder's writer thread; reuses its context across chunks.
pub struct ChunkWriter {
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

/// Records shorter than this are stored: a zstd frame would not pay for its framing.
const MIN_COMPRESS: usize = 256;

impl ChunkWriter {
    /// A writer compressing at `level` (1 is fast; the recorder's default, 3, keeps up with
    /// several million events per second on one core).
    pub fn new(level: i32) -> io::Result<ChunkWriter> {
        Ok(ChunkWriter {
            zstd: zstd::bulk::Compressor::new(level)?,
            scratch: Vec::new(),
        })
    }

    /// Appends `records` to `out` as a chunk of `kind`, compressed when that makes it smaller.
    /// `records` may hold at most [`MAX_CHUNK_PAYLOAD`] bytes.
    pub fn put(&mut self, out: &mut Vec<u8>, kind: ChunkKind, records: &[u8]) -> io::Result<()> {
        debug_assert!(records.len() <= MAX_CHUNK_PAYLOAD);
        if records.len() < MIN_COMPRESS {
            put_chunk(out, kind, records);
            return Ok(());
        }
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(records.len()));
        let n = self.zstd.compress_to_buffer(records, &mut self.scratch)?;
        if n >= records.len() {
            put_chunk(out, kind, records);
            return Ok(());
        }
        let start = out.len() + CHUNK_HEADER_LEN;
        out.resize(start, 0);
        out.push(kind as u8);
        out.push(ChunkCodec::Zstd as u8);
        put_uvarint(out, records.len() as u64);
        out.extend_from_slice(&self.scratch);
        frame(out, start);
        Ok(())
    }
}
