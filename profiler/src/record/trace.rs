//! The live trace (`TIDEMARK_TRACE=1`): once a second, one line on stderr, like Go's gctrace.
//!
//! ```text
//! tm @3.0s heap 212MiB (+38.1MiB/s) rss 240MiB limit 41% allocs 1.2M/s p99 alloc 3.1µs
//! ```
//!
//! - `heap`: jemalloc's `stats.allocated` when the timeline carries it (jemalloc serves the
//!   process), else glibc's `mallinfo2()` in-use bytes (`uordblks + hblkhd`), which include the
//!   recorder's own buffers; the growth is over the last line's interval.
//! - `limit`: heap / limit (the design's *pressure*), shown when `TIDEMARK_LIMIT_BYTES` or the
//!   cgroup's `memory.max` sets a limit.
//! - `allocs`: recorded allocation calls (reallocs included) per second; `p99 alloc`: p99 of the
//!   timed allocator calls since the previous line.
//!
//! Runs on the writer thread and formats into a stack buffer written with one `write(2)`, so
//! it allocates nothing.

use super::latency::Interval;
use crate::format::sample_key as key;
use std::fmt::{self, Write};

/// Nanoseconds between lines.
const PERIOD_NS: u64 = 1_000_000_000;

/// A reading the rates are computed from.
#[derive(Clone, Copy)]
struct Point {
    t_ns: u64,
    heap: Option<u64>,
    calls: u64,
}

/// The trace state (writer thread).
pub struct Trace {
    limit_bytes: u64,
    last: Option<Point>,
    latency: Interval,
}

/// What one line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Time since start, ns.
    pub t_ns: u64,
    /// Heap bytes, when known.
    pub heap: Option<u64>,
    /// Heap growth, bytes per second.
    pub growth_per_s: Option<f64>,
    /// Resident set, bytes.
    pub rss: Option<u64>,
    /// Heap / limit, percent.
    pub limit_pct: Option<f64>,
    /// Allocation calls per second.
    pub allocs_per_s: f64,
    /// p99 allocator latency, ns.
    pub p99_ns: Option<u64>,
}

fn get(values: &[(u64, u64)], k: u64) -> Option<u64> {
    values.iter().find(|p| p.0 == k).map(|p| p.1)
}

impl Trace {
    /// A trace for a session with `limit_bytes` (0 = take the cgroup's).
    pub fn new(limit_bytes: u64) -> Trace {
        Trace {
            limit_bytes,
            last: None,
            latency: Interval::default(),
        }
    }

    /// Called at every timeline sample with its values and the interval's latency; prints a
    /// line when a second has passed since the previous one.
    pub fn on_sample(
        &mut self,
        t_ns: u64,
        values: &[(u64, u64)],
        latency: &Interval,
        ticks_per_ns: f64,
    ) {
        self.latency.merge(latency);
        let due = self
            .last
            .is_none_or(|l| t_ns.saturating_sub(l.t_ns) >= PERIOD_NS);
        if !due {
            return;
        }
        let heap = get(values, key::JEMALLOC_ALLOCATED).or_else(glibc_heap);
        if let Some(line) = self.line(t_ns, heap, values, ticks_per_ns) {
            let mut buf = StackBuf::new();
            if write_line(&mut buf, &line).is_ok() {
                buf.push_newline();
                super::outfile::to_stderr(buf.bytes());
            }
        }
    }

    /// Turns the current readings into a line (none for the first reading, which only sets
    /// the starting point), and starts the next period.
    fn line(
        &mut self,
        t_ns: u64,
        heap: Option<u64>,
        values: &[(u64, u64)],
        ticks_per_ns: f64,
    ) -> Option<Line> {
        let now = Point {
            t_ns,
            heap,
            calls: get(values, key::ALLOC_CALLS).unwrap_or(0),
        };
        let last = self.last.replace(now)?;
        let secs = (t_ns.saturating_sub(last.t_ns)).max(1) as f64 / 1e9;
        let limit = match self.limit_bytes {
            0 => get(values, key::CGROUP_MAX_BYTES),
            n => Some(n),
        };
        let line = Line {
            t_ns,
            heap,
            growth_per_s: match (heap, last.heap) {
                (Some(h), Some(l)) => Some((h as f64 - l as f64) / secs),
                _ => None,
            },
            rss: get(values, key::RSS_BYTES),
            limit_pct: match (heap, limit) {
                (Some(h), Some(l)) if l > 0 => Some(h as f64 * 100.0 / l as f64),
                _ => None,
            },
            allocs_per_s: now.calls.saturating_sub(last.calls) as f64 / secs,
            p99_ns: self
                .latency
                .quantile(0.99)
                .map(|t| (t as f64 / ticks_per_ns).round() as u64),
        };
        self.latency.clear();
        Some(line)
    }
}

/// glibc's in-use heap bytes (`mallinfo2`: `uordblks + hblkhd`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_heap() -> Option<u64> {
    // SAFETY: mallinfo2 takes glibc's arena locks and returns a plain struct; it does not
    // allocate.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_heap() -> Option<u64> {
    None
}

/// `v` with one decimal below 100, none above: `38.1`, `212`.
fn scaled(f: &mut dyn Write, v: f64, unit: &str) -> fmt::Result {
    if v.abs() >= 99.95 {
        write!(f, "{v:.0}{unit}")
    } else {
        write!(f, "{v:.1}{unit}")
    }
}

/// Bytes in binary units: `980B`, `38.1MiB`, `212MiB`, `1.5GiB`.
pub fn bytes(f: &mut dyn Write, n: f64) -> fmt::Result {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        write!(f, "{v:.0}B")
    } else {
        scaled(f, v, UNITS[u])
    }
}

/// A count in SI units: `950`, `1.2k`, `38M`.
pub fn count(f: &mut dyn Write, n: f64) -> fmt::Result {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        write!(f, "{v:.0}")
    } else {
        scaled(f, v, UNITS[u])
    }
}

/// A duration: `850ns`, `3.1µs`, `12ms`, `1.5s`.
pub fn duration(f: &mut dyn Write, ns: u64) -> fmt::Result {
    let v = ns as f64;
    if ns < 1000 {
        write!(f, "{ns}ns")
    } else if ns < 1_000_000 {
        scaled(f, v / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        scaled(f, v / 1e6, "ms")
    } else {
        scaled(f, v / 1e9, "s")
    }
}

/// Formats a line (without the newline).
pub fn write_line(f: &mut dyn Write, l: &Line) -> fmt::Result {
    write!(f, "tm @{:.1}s heap ", l.t_ns as f64 / 1e9)?;
    match l.heap {
        Some(h) => bytes(f, h as f64)?,
        None => f.write_str("?")?,
    }
    if let Some(g) = l.growth_per_s {
        f.write_str(if g < 0.0 { " (-" } else { " (+" })?;
        bytes(f, g.abs())?;
        f.write_str("/s)")?;
    }
    if let Some(r) = l.rss {
        f.write_str(" rss ")?;
        bytes(f, r as f64)?;
    }
    if let Some(p) = l.limit_pct {
        write!(f, " limit {p:.0}%")?;
    }
    f.write_str(" allocs ")?;
    count(f, l.allocs_per_s)?;
    f.write_str("/s p99 alloc ")?;
    match l.p99_ns {
        Some(ns) => duration(f, ns),
        None => f.write_str("-"),
    }
}

/// A fixed buffer implementing `fmt::Write`; output beyond its size is cut.
struct StackBuf {
    buf: [u8; 256],
    len: usize,
}

impl StackBuf {
    fn new() -> StackBuf {
        StackBuf {
            buf: [0; 256],
            len: 0,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn push_newline(&mut self) {
        let at = self.len.min(self.buf.len() - 1);
        self.buf[at] = b'\n';
        self.len = at + 1;
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the newline.
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> String {
        let mut b = StackBuf::new();
        write_line(&mut b, l).unwrap();
        String::from_utf8(b.bytes().to_vec()).unwrap()
    }

    #[test]
    fn formats_like_the_design() {
        let l = Line {
            t_ns: 3_000_000_000,
            heap: Some(212 << 20),
            growth_per_s: Some(38.1 * 1024.0 * 1024.0),
            rss: Some(240 << 20),
            limit_pct: Some(41.2),
            allocs_per_s: 1.2e6,
            p99_ns: Some(3100),
        };
        assert_eq!(
            text(&l),
            "tm @3.0s heap 212MiB (+38.1MiB/s) rss 240MiB limit 41% allocs 1.2M/s p99 alloc 3.1µs"
        );
        let l = Line {
            t_ns: 1_049_000_000,
            heap: None,
            growth_per_s: None,
            rss: None,
            limit_pct: None,
            allocs_per_s: 12.0,
            p99_ns: None,
        };
        assert_eq!(text(&l), "tm @1.0s heap ? allocs 12/s p99 alloc -");
    }

    #[test]
    fn human_units() {
        let f = |g: &dyn Fn(&mut String) -> fmt::Result| {
            let mut s = String::new();
            g(&mut s).unwrap();
            s
        };
        assert_eq!(f(&|s| bytes(s, 980.0)), "980B");
        assert_eq!(f(&|s| bytes(s, 1536.0)), "1.5KiB");
        assert_eq!(f(&|s| bytes(s, 5.0 * (1u64 << 30) as f64)), "5.0GiB");
        assert_eq!(f(&|s| count(s, 999.0)), "999");
        assert_eq!(f(&|s| count(s, 38_400_000.0)), "38.4M");
        assert_eq!(f(&|s| duration(s, 850)), "850ns");
        assert_eq!(f(&|s| duration(s, 12_300_000)), "12.3ms");
        assert_eq!(f(&|s| duration(s, 250_000_000)), "250ms");
        assert_eq!(f(&|s| duration(s, 1_500_000_000)), "1.5s");
    }

    #[test]
    fn rates_and_limit_from_consecutive_samples() {
        let mut t = Trace::new(1000 << 20);
        let lat = Interval::default();
        let v0 = [(key::ALLOC_CALLS, 100), (key::RSS_BYTES, 50 << 20)];
        assert!(t.line(0, Some(100 << 20), &v0, 1.0).is_none());
        let mut slow = Interval::default();
        slow.add(2000, 100);
        t.latency.merge(&slow);
        t.latency.merge(&lat);
        let v1 = [(key::ALLOC_CALLS, 2_100), (key::RSS_BYTES, 300 << 20)];
        let l = t.line(2_000_000_000, Some(300 << 20), &v1, 2.0).unwrap();
        assert_eq!(l.growth_per_s, Some((100 << 20) as f64));
        assert_eq!(l.allocs_per_s, 1000.0);
        assert_eq!(l.limit_pct, Some(30.0));
        assert_eq!(l.rss, Some(300 << 20));
        assert!((950..=1050).contains(&l.p99_ns.unwrap()), "{:?}", l.p99_ns);
        // The latency of a printed period is not carried into the next one.
        assert_eq!(t.latency.calls, 0);
        // Without a configured limit, the cgroup's applies; without either, none.
        let mut t = Trace::new(0);
        t.line(0, Some(10), &[], 1.0);
        let l = t
            .line(
                1_000_000_000,
                Some(10),
                &[(key::CGROUP_MAX_BYTES, 100)],
                1.0,
            )
            .unwrap();
        assert_eq!(l.limit_pct, Some(10.0));
        assert_eq!(l.growth_per_s, Some(0.0));
        let l = t.line(2_000_000_000, Some(10), &[], 1.0).unwrap();
        assert_eq!(l.limit_pct, None);
    }

    #[test]
    fn long_lines_are_cut_not_overflowed() {
        let mut b = StackBuf::new();
        for _ in 0..100 {
            let _ = b.write_str("0123456789");
        }
        b.push_newline();
        assert_eq!(b.bytes().len(), 256);
        assert_eq!(b.bytes()[255], b'\n');
    }

    #[test]
    fn glibc_heap_is_read() {
        let v = std::hint::black_box(vec![1u8; 4 << 20]);
        let during = glibc_heap().unwrap();
        drop(v);
        assert!(during >= 4 << 20, "{during}");
    }
}
