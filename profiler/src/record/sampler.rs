//! Timeline readings from `/proc` and cgroup files (writer thread only).
//!
//! The files are opened once, when recording starts, and read again at every sample
//! ([`ReadFile`]: out of the program's way).

use super::outfile::ReadFile;
use crate::format::sample_key as key;
use std::io::Read;

/// Reads a small file into `buf`, returning the bytes read.
fn read_small<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    Some(&buf[..n])
}

/// [`ReadFile::read`] of a file that may not have opened.
fn read_held<'a>(f: &mut Option<ReadFile>, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    f.as_mut()?.read(buf)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

/// `VmRSS`, `RssAnon`, `RssFile` from a `/proc/<pid>/status` text, in bytes.
pub fn parse_status(text: &[u8], out: &mut Vec<(u64, u64)>) {
    for line in text.split(|&b| b == b'\n') {
        let k = if line.starts_with(b"VmRSS:") {
            key::RSS_BYTES
        } else if line.starts_with(b"RssAnon:") {
            key::RSS_ANON_BYTES
        } else if line.starts_with(b"RssFile:") {
            key::RSS_FILE_BYTES
        } else {
            continue;
        };
        let rest = &line[line.iter().position(|&b| b == b':').unwrap_or(0) + 1..];
        let digits: Vec<u8> = rest.iter().copied().filter(u8::is_ascii_digit).collect();
        if let Some(kb) = parse_u64(&digits) {
            out.push((k, kb * 1024));
        }
    }
}

/// Minor/major faults and thread count from a `/proc/<pid>/stat` text.
pub fn parse_stat(text: &[u8], out: &mut Vec<(u64, u64)>) {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return;
    };
    let fields: Vec<&[u8]> = text[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| parse_u64(f));
    if let Some(v) = field(10) {
        out.push((key::MINOR_FAULTS, v));
    }
    if let Some(v) = field(12) {
        out.push((key::MAJOR_FAULTS, v));
    }
    if let Some(v) = field(20) {
        out.push((key::THREADS, v));
    }
}

/// `some`/`full` avg10 of a PSI file, in hundredths of a percent.
pub fn parse_psi(text: &[u8], out: &mut Vec<(u64, u64)>) {
    for line in text.split(|&b| b == b'\n') {
        let k = if line.starts_with(b"some ") {
            key::PSI_SOME_AVG10_CENTI
        } else if line.starts_with(b"full ") {
            key::PSI_FULL_AVG10_CENTI
        } else {
            continue;
        };
        let Some(pos) = line.windows(6).position(|w| w == b"avg10=") else {
            continue;
        };
        let v = &line[pos + 6..];
        let v = &v[..v.iter().position(|&b| b == b' ').unwrap_or(v.len())];
        if let Ok(f) = std::str::from_utf8(v).unwrap_or("").parse::<f64>() {
            out.push((k, (f * 100.0).round() as u64));
        }
    }
}

/// The files read at every sample: this process's `/proc` files and its cgroup's (v2) memory
/// files, opened once per session.
#[derive(Debug, Default)]
pub struct Sources {
    status: Option<ReadFile>,
    stat: Option<ReadFile>,
    /// The cgroup's `memory.current`, `memory.max` and `memory.pressure` (cgroup v2), else
    /// the system's memory pressure only.
    cgroup: Option<[Option<ReadFile>; 3]>,
    pressure: Option<ReadFile>,
}

impl Sources {
    /// Opens the files read at every sample: this process's, and its cgroup v2 directory's.
    pub fn discover() -> Sources {
        let mut buf = [0u8; 4096];
        let dir = read_small("/proc/self/cgroup", &mut buf).and_then(|t| {
            let t = std::str::from_utf8(t).ok()?;
            let line = t.lines().find(|l| l.starts_with("0::"))?;
            let dir = format!("/sys/fs/cgroup{}", line[3..].trim_end_matches('/'));
            std::path::Path::new(&format!("{dir}/memory.current"))
                .exists()
                .then_some(dir)
        });
        let cgroup = dir.map(|dir| {
            ["memory.current", "memory.max", "memory.pressure"]
                .map(|f| ReadFile::open(&format!("{dir}/{f}")))
        });
        Sources {
            status: ReadFile::open("/proc/self/status"),
            stat: ReadFile::open("/proc/self/stat"),
            pressure: cgroup
                .is_none()
                .then(|| ReadFile::open("/proc/pressure/memory"))
                .flatten(),
            cgroup,
        }
    }

    /// Appends every reading available now.
    pub fn read(&mut self, out: &mut Vec<(u64, u64)>) {
        let mut buf = [0u8; 4096];
        if let Some(t) = read_held(&mut self.status, &mut buf) {
            parse_status(t, out);
        }
        if let Some(t) = read_held(&mut self.stat, &mut buf) {
            parse_stat(t, out);
        }
        if let Some([current, max, pressure]) = &mut self.cgroup {
            if let Some(v) = read_held(current, &mut buf).and_then(parse_u64) {
                out.push((key::CGROUP_CURRENT_BYTES, v));
            }
            if let Some(v) = read_held(max, &mut buf).and_then(parse_u64) {
                out.push((key::CGROUP_MAX_BYTES, v));
            }
            if let Some(t) = read_held(pressure, &mut buf) {
                parse_psi(t, out);
            }
        } else if let Some(t) = read_held(&mut self.pressure, &mut buf) {
            parse_psi(t, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        let mut v = Vec::new();
        parse_status(
            b"Name:\tx\nVmRSS:\t  2048 kB\nRssAnon:\t    1024 kB\nRssFile:\t 1000 kB\n",
            &mut v,
        );
        assert_eq!(
            v,
            [
                (key::RSS_BYTES, 2048 * 1024),
                (key::RSS_ANON_BYTES, 1024 * 1024),
                (key::RSS_FILE_BYTES, 1000 * 1024)
            ]
        );
        v.clear();
        let stat = b"77 (a b) c) S 1 77 77 0 -1 4194560 150 0 3 0 1 2 0 0 20 0 5 0 100 0 0";
        parse_stat(stat, &mut v);
        assert_eq!(
            v,
            [
                (key::MINOR_FAULTS, 150),
                (key::MAJOR_FAULTS, 3),
                (key::THREADS, 5)
            ]
        );
        v.clear();
        parse_psi(
            b"some avg10=1.25 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.50 avg60=0 total=0\n",
            &mut v,
        );
        assert_eq!(
            v,
            [
                (key::PSI_SOME_AVG10_CENTI, 125),
                (key::PSI_FULL_AVG10_CENTI, 50)
            ]
        );
    }

    #[test]
    fn reads_this_process() {
        let mut v = Vec::new();
        Sources::discover().read(&mut v);
        let get = |k| v.iter().find(|(kk, _)| *kk == k).map(|p| p.1);
        assert!(get(key::RSS_BYTES).unwrap() > 0);
        assert!(get(key::THREADS).unwrap() >= 1);
    }
}
