//! Where the bytes of a profile go: per chunk kind (as stored, compressed, and decoded) and per
//! record kind (decoded bytes, and what the records of that kind alone compress to, chunk by
//! chunk), and per stream of the event chunks stored as columns. A developer tool for work on the
//! format's size, not a user command.
//!
//! ```text
//! cargo run --release -p tidemark --example profile_bytes -- app.tmk [more.tmk …]
//! ```
//!
//! "alone" compresses each chunk's records of one kind on their own (zstd level 3) and sums the
//! chunks: an estimate of that kind's share of the stored bytes, not an exact split (zstd does
//! not compress the kinds separately).

use std::collections::BTreeMap;
use std::process::ExitCode;
use tidemark::format::{columns, Cursor, Reader, Record, CHUNK_HEADER_LEN};

/// Bytes of one kind of thing.
#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    /// As stored in the file (chunk framing included for chunk kinds).
    stored: u64,
    /// Decoded.
    raw: u64,
    /// Compressed alone (record kinds only).
    alone: u64,
}

fn chunk_kind_name(k: u8) -> &'static str {
    match k {
        0 => "events",
        1 => "definitions",
        2 => "meta",
        3 => "trailer",
        4 => "appendix",
        _ => "other",
    }
}

fn record_name(r: &Record) -> &'static str {
    match r {
        Record::Alloc { .. } => "ALLOC",
        Record::Free { .. } => "FREE",
        Record::Realloc { .. } => "REALLOC",
        Record::Stack { .. } => "STACK",
        Record::Thread { .. } => "THREAD",
        Record::ThreadExit { .. } => "THREAD_EXIT",
        Record::Modules { .. } => "MODULES",
        Record::Sample { .. } => "SAMPLE",
        Record::Watermark { .. } => "WATERMARK",
        Record::Trailer { .. } => "TRAILER",
        Record::Message { .. } => "MESSAGE",
        Record::CpuSample { .. } => "CPU_SAMPLE",
        Record::EventFrames { .. } => "EVENT_FRAMES",
        Record::EventReturns { .. } => "EVENT_RETURNS",
        Record::Symbols { .. } => "SYMBOLS",
    }
}

/// One chunk as stored: kind, stored size (framing included), and its decoded records.
struct RawChunk {
    kind: u8,
    stored: u64,
    records: Vec<u8>,
    /// An event chunk stored as columns: each stream's bytes.
    streams: Vec<Vec<u8>>,
}

/// The streams of a columns transform, in stored order (`columns.rs`).
const STREAM_NAMES: [&str; columns::STREAMS] = [
    "ops", "sizes", "stacks", "kinds", "frees", "copies", "rest", "places", "others",
];

/// Splits decompressed columns into their streams (lengths first, then the streams).
fn split_streams(cols: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut c = Cursor::new(cols);
    let lens: Vec<usize> = (0..columns::STREAMS)
        .map(|_| c.uvarint().ok().map(|n| n as usize))
        .collect::<Option<_>>()?;
    let mut at = c.position();
    let mut out = Vec::new();
    for n in lens {
        out.push(cols.get(at..at + n)?.to_vec());
        at += n;
    }
    Some(out)
}

/// Walks the chunk framing of a version-2 file (the reader does not expose chunk kinds).
fn chunks(bytes: &[u8]) -> Result<(u64, Vec<RawChunk>), String> {
    if bytes.len() < 16 || &bytes[..8] != b"TIDEMARK" {
        return Err("not a tidemark profile".into());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version < 2 {
        return Err(format!(
            "format version {version}: this tool reads version 2 files"
        ));
    }
    let body_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let header = (16 + body_len + 4) as u64;
    let mut at = header as usize;
    let mut out = Vec::new();
    while at + CHUNK_HEADER_LEN <= bytes.len() && &bytes[at..at + 4] == b"TMCK" {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let Some(payload) = bytes.get(at + CHUNK_HEADER_LEN..at + CHUNK_HEADER_LEN + len) else {
            break;
        };
        let mut c = Cursor::new(payload);
        let (kind, codec, raw_len) = match (c.u8(), c.u8(), c.uvarint()) {
            (Ok(k), Ok(codec), Ok(n)) => (k, codec, n as usize),
            _ => return Err(format!("chunk at byte {at}: framing cut short")),
        };
        let data = &payload[c.position()..];
        let mut streams = Vec::new();
        let records = match codec {
            0 => data.to_vec(),
            1 => zstd::bulk::decompress(data, raw_len)
                .map_err(|e| format!("chunk at byte {at}: {e}"))?,
            2 | 3 => {
                // Event chunk as columns (3: with lanes per thread): `columns_len, zstd(columns)`.
                let mut c = Cursor::new(data);
                let n = c
                    .uvarint()
                    .map_err(|e| format!("chunk at byte {at}: {}", e.0))?;
                let cols = zstd::bulk::decompress(&data[c.position()..], n as usize)
                    .map_err(|e| format!("chunk at byte {at}: {e}"))?;
                let mut records = Vec::new();
                columns::decode(&cols, codec == 3, raw_len, &mut records)
                    .map_err(|e| format!("chunk at byte {at}: {}", e.0))?;
                streams = split_streams(&cols).unwrap_or_default();
                records
            }
            _ => return Err(format!("chunk at byte {at}: unknown codec {codec}")),
        };
        out.push(RawChunk {
            kind,
            stored: (CHUNK_HEADER_LEN + len) as u64,
            records,
            streams,
        });
        at += CHUNK_HEADER_LEN + len;
    }
    Ok((header, out))
}

fn zstd_len(data: &[u8]) -> u64 {
    if data.is_empty() {
        return 0;
    }
    zstd::bulk::compress(data, 3).map_or(data.len(), |c| c.len()) as u64
}

fn report(path: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let (header_bytes, raw_chunks) = chunks(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let mut by_chunk: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut by_record: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut reader = Reader::new(&bytes[..]).map_err(|e| format!("{path}: {e}"))?;
    let mut by_stream = [Tally::default(); columns::STREAMS];
    for ch in &raw_chunks {
        for (t, s) in by_stream.iter_mut().zip(&ch.streams) {
            t.count += 1;
            t.raw += s.len() as u64;
            t.alone += zstd_len(s);
        }
    }
    let mut i = 0;
    while let Some(mut it) = reader.next_chunk().map_err(|e| format!("{path}: {e}"))? {
        let Some(ch) = raw_chunks.get(i) else {
            return Err(format!(
                "{path}: the reader saw more chunks than the framing"
            ));
        };
        i += 1;
        let t = by_chunk.entry(chunk_kind_name(ch.kind)).or_default();
        t.count += 1;
        t.stored += ch.stored;
        t.raw += ch.records.len() as u64;
        // Each record's bytes, by kind, in this chunk.
        let mut parts: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
        let mut start = it.position();
        while let Some(r) = it.next() {
            let r = r.map_err(|e| format!("{path}: {e}"))?;
            let end = it.position();
            let mut span = &ch.records[start..end];
            // Thread switches are folded into the event after them: count them apart.
            while span.first() == Some(&tidemark::format::tag::CONTEXT) {
                let mut c = Cursor::new(&span[1..]);
                if c.uvarint().is_err() {
                    break;
                }
                let n = 1 + c.position();
                parts
                    .entry("CONTEXT")
                    .or_default()
                    .extend_from_slice(&span[..n]);
                by_record.entry("CONTEXT").or_default().count += 1;
                span = &span[n..];
            }
            let name = record_name(&r);
            by_record.entry(name).or_default().count += 1;
            parts.entry(name).or_default().extend_from_slice(span);
            start = end;
        }
        for (name, data) in parts {
            let t = by_record.entry(name).or_default();
            t.raw += data.len() as u64;
            t.alone += zstd_len(&data);
        }
    }
    let total = bytes.len() as u64;
    println!("## {path}: {total} bytes (header {header_bytes})\n");
    println!("| chunk kind | chunks | stored bytes (framing incl.) | share | decoded bytes |");
    println!("|---|---:|---:|---:|---:|");
    for (name, t) in &by_chunk {
        println!(
            "| {name} | {} | {} | {:.1}% | {} |",
            t.count,
            t.stored,
            100.0 * t.stored as f64 / total as f64,
            t.raw
        );
    }
    let framing: u64 = by_chunk.values().map(|t| t.count).sum::<u64>() * CHUNK_HEADER_LEN as u64;
    println!("\nchunk framing (12 bytes a chunk): {framing} bytes\n");
    println!("| record kind | records | decoded bytes | alone, zstd -3 per chunk |");
    println!("|---|---:|---:|---:|");
    for (name, t) in &by_record {
        println!("| {name} | {} | {} | {} |", t.count, t.raw, t.alone);
    }
    if by_stream.iter().any(|t| t.count > 0) {
        println!("\n| event stream (columns) | decoded bytes | alone, zstd -3 per chunk |");
        println!("|---|---:|---:|");
        for (name, t) in STREAM_NAMES.iter().zip(&by_stream) {
            println!("| {name} | {} | {} |", t.raw, t.alone);
        }
    }
    println!();
    Ok(())
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: profile_bytes PROFILE.tmk [...]");
        return ExitCode::from(2);
    }
    let mut ok = true;
    for p in &paths {
        if let Err(e) = report(p) {
            eprintln!("profile_bytes: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
