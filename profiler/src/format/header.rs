//! The profile header: its keys (TLV) and the [`Header`] they encode (docs/format.md §2).

use super::{put_bytes, put_uvarint, Cursor, DecodeError, MAGIC, VERSION};

/// Header keys (TLV). Unknown keys are skipped by readers.
pub mod header_key {
    /// Process id (uvarint).
    pub const PID: u64 = 1;
    /// Executable path (string).
    pub const EXE: u64 = 2;
    /// Command line, arguments separated by NUL (bytes).
    pub const CMDLINE: u64 = 3;
    /// Wall clock at start, ns since the Unix epoch (uvarint).
    pub const START_UNIX_NS: u64 = 4;
    /// CLOCK_MONOTONIC at start, ns (uvarint); sample times are relative to it.
    pub const START_MONO_NS: u64 = 5;
    /// Page size in bytes (uvarint).
    pub const PAGE_SIZE: u64 = 6;
    /// Mean bytes between samples; 0 records every allocation (uvarint).
    pub const SAMPLING_RATE: u64 = 7;
    /// Timeline interval in ms (uvarint).
    pub const INTERVAL_MS: u64 = 8;
    /// Recorder kind: "preload" or "in-process" (string).
    pub const SOURCE: u64 = 9;
    /// Memory limit in bytes given to the recorder, 0 when none (uvarint).
    pub const LIMIT_BYTES: u64 = 10;
    /// Allocator that serves the program: "glibc", "jemalloc", or the wrapped type (string).
    pub const ALLOCATOR: u64 = 11;
    /// Unwinding mode: "dwarf" or "fp" (string).
    pub const UNWIND: u64 = 12;
    /// The allocator asked for, when the recorder was told which to use (`tidemark run
    /// --allocator system|jemalloc`): "system" (the program's own) or "jemalloc" (the bundled
    /// one); absent otherwise (string). `ALLOCATOR` says what served.
    pub const ALLOCATOR_REQUESTED: u64 = 20;
    /// 1 when the recorder writes frame addresses after every allocation and free
    /// (`EVENT_FRAMES`, `tidemark run --escape`); absent otherwise (number).
    pub const ESCAPE: u64 = 21;
}

/// Profile header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Format version of the file.
    pub version: u16,
    /// Process id.
    pub pid: u32,
    /// Executable path.
    pub exe: String,
    /// Command line arguments.
    pub cmdline: Vec<String>,
    /// Wall clock at start, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// CLOCK_MONOTONIC at start, ns.
    pub start_mono_ns: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Mean bytes between samples; 0 means every allocation was recorded.
    pub sampling_rate: u64,
    /// Timeline interval in ms.
    pub interval_ms: u64,
    /// "preload" or "in-process".
    pub source: String,
    /// Memory limit in bytes, 0 when none.
    pub limit_bytes: u64,
    /// Allocator serving the program.
    pub allocator: String,
    /// Unwinding mode.
    pub unwind: String,
    /// The allocator asked for (`"system"`, `"jemalloc"`), empty when none was
    /// ([`header_key::ALLOCATOR_REQUESTED`]).
    pub allocator_requested: String,
    /// Frame addresses follow every allocation and free (`--escape`,
    /// [`header_key::ESCAPE`]).
    pub escape: bool,
}

impl Header {
    /// Encodes the complete header (magic to checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut kv = |k: u64, v: &[u8]| {
            put_uvarint(&mut body, k);
            put_bytes(&mut body, v);
        };
        let num = |k: u64, n: u64, kv: &mut dyn FnMut(u64, &[u8])| {
            let mut b = Vec::new();
            put_uvarint(&mut b, n);
            kv(k, &b);
        };
        num(header_key::PID, u64::from(self.pid), &mut kv);
        kv(header_key::EXE, self.exe.as_bytes());
        kv(header_key::CMDLINE, self.cmdline.join("\0").as_bytes());
        num(header_key::START_UNIX_NS, self.start_unix_ns, &mut kv);
        num(header_key::START_MONO_NS, self.start_mono_ns, &mut kv);
        num(header_key::PAGE_SIZE, self.page_size, &mut kv);
        num(header_key::SAMPLING_RATE, self.sampling_rate, &mut kv);
        num(header_key::INTERVAL_MS, self.interval_ms, &mut kv);
        kv(header_key::SOURCE, self.source.as_bytes());
        num(header_key::LIMIT_BYTES, self.limit_bytes, &mut kv);
        kv(header_key::ALLOCATOR, self.allocator.as_bytes());
        kv(header_key::UNWIND, self.unwind.as_bytes());
        if !self.allocator_requested.is_empty() {
            kv(
                header_key::ALLOCATOR_REQUESTED,
                self.allocator_requested.as_bytes(),
            );
        }
        if self.escape {
            num(header_key::ESCAPE, 1, &mut kv);
        }
        let mut out = Vec::with_capacity(body.len() + 20);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out
    }

    /// Decodes a header body (TLV part only).
    pub fn decode_body(version: u16, body: &[u8]) -> Result<Header, DecodeError> {
        let mut h = Header {
            version,
            ..Header::default()
        };
        let mut c = Cursor::new(body);
        while !c.is_empty() {
            let key = c.uvarint()?;
            let val = c.bytes()?;
            let num = || Cursor::new(val).uvarint();
            let text = || String::from_utf8_lossy(val).into_owned();
            match key {
                header_key::PID => h.pid = num()? as u32,
                header_key::EXE => h.exe = text(),
                header_key::CMDLINE => {
                    h.cmdline = if val.is_empty() {
                        Vec::new()
                    } else {
                        text().split('\0').map(str::to_owned).collect()
                    }
                }
                header_key::START_UNIX_NS => h.start_unix_ns = num()?,
                header_key::START_MONO_NS => h.start_mono_ns = num()?,
                header_key::PAGE_SIZE => h.page_size = num()?,
                header_key::SAMPLING_RATE => h.sampling_rate = num()?,
                header_key::INTERVAL_MS => h.interval_ms = num()?,
                header_key::SOURCE => h.source = text(),
                header_key::LIMIT_BYTES => h.limit_bytes = num()?,
                header_key::ALLOCATOR => h.allocator = text(),
                header_key::UNWIND => h.unwind = text(),
                header_key::ALLOCATOR_REQUESTED => h.allocator_requested = text(),
                header_key::ESCAPE => h.escape = num()? != 0,
                _ => {}
            }
        }
        Ok(h)
    }
}
