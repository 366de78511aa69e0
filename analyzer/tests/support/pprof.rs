//! `go tool pprof` as the export tests read it: `-raw` parsed into sample types, samples and
//! the functions of each location; `-top` rows. `scripts/setup.sh` installs golang-go.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use tidemark_fixtures::truth::last_segment;

use super::{path_str, Scratch};

/// What `go tool pprof -raw` printed: sample types, samples and the functions of each location.
#[derive(Debug, Default)]
pub struct Raw {
    /// `PeriodType:` and `Period:` as printed.
    pub period_type: String,
    pub period: String,
    pub types: Vec<String>,
    /// `(values, location ids leaf first)`.
    pub samples: Vec<(Vec<i64>, Vec<u64>)>,
    /// Location id → function names, innermost (inlined) first.
    pub functions: HashMap<u64, Vec<String>>,
}

impl Raw {
    pub fn column(&self, ty: &str) -> usize {
        self.types
            .iter()
            .position(|t| t.split('/').next() == Some(ty))
            .unwrap_or_else(|| panic!("no sample type {ty} in {:?}", self.types))
    }

    pub fn sum(&self, ty: &str) -> i64 {
        let c = self.column(ty);
        self.samples.iter().map(|(v, _)| v[c]).sum()
    }

    /// Sum of `ty` over the samples whose stack holds a function named `site` (last path
    /// segment), each sample counted once.
    pub fn site_sum(&self, ty: &str, site: &str) -> i64 {
        let c = self.column(ty);
        self.samples
            .iter()
            .filter(|(_, locs)| {
                locs.iter().any(|l| {
                    self.functions
                        .get(l)
                        .is_some_and(|fs| fs.iter().any(|f| last_segment(f) == site))
                })
            })
            .map(|(v, _)| v[c])
            .sum()
    }
}

pub fn go_pprof(scratch: &Scratch, args: &[&str]) -> String {
    let mut cmd = Command::new("go");
    cmd.arg("tool")
        .arg("pprof")
        .args(args)
        .env("HOME", scratch.path())
        .env("GOCACHE", scratch.join("gocache"))
        .env("PPROF_TMPDIR", scratch.path());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go tool pprof` ({e}): run scripts/setup.sh"));
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parses `go tool pprof -raw`.
pub fn pprof_raw(scratch: &Scratch, file: &Path) -> Raw {
    let text = go_pprof(scratch, &["-raw", path_str(file)]);
    let mut raw = Raw::default();
    let mut section = "";
    let mut current: Option<u64> = None;
    for line in text.lines() {
        match line.trim_end() {
            "Samples:" | "Locations" | "Mappings" => {
                section = line.trim_end();
                continue;
            }
            _ => {}
        }
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(v) = t.strip_prefix("PeriodType:") {
            raw.period_type = v.trim().to_owned();
        } else if let Some(v) = t.strip_prefix("Period:") {
            raw.period = v.trim().to_owned();
        }
        match section {
            "Samples:" if raw.types.is_empty() => {
                raw.types = t
                    .split_whitespace()
                    .map(|s| s.trim_end_matches("[dflt]").to_owned())
                    .collect();
            }
            "Samples:" => {
                if let Some((values, locs)) = t.split_once(':') {
                    if let Ok(values) = values
                        .split_whitespace()
                        .map(str::parse)
                        .collect::<Result<Vec<i64>, _>>()
                    {
                        let locs = locs
                            .split_whitespace()
                            .map(|l| l.parse().unwrap())
                            .collect();
                        raw.samples.push((values, locs));
                    }
                }
            }
            "Locations" => {
                // `  N: 0xADDR M=K function file:line s=0`, then one line per caller it was
                // inlined into: `function file:line s=0`.
                let first = t.split_once(": 0x").and_then(|(id, rest)| {
                    let id: u64 = id.trim().parse().ok()?;
                    let mut words = rest.split_whitespace().skip(1);
                    let mut name = words.next()?;
                    if name.starts_with("M=") {
                        name = words.next()?;
                    }
                    Some((id, name))
                });
                match first {
                    Some((id, name)) => {
                        current = Some(id);
                        raw.functions.insert(id, vec![name.to_owned()]);
                    }
                    None => {
                        if let (Some(id), Some(name)) = (current, t.split_whitespace().next()) {
                            raw.functions.get_mut(&id).unwrap().push(name.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert!(!raw.samples.is_empty(), "no samples in:\n{text}");
    raw
}

/// `go tool pprof -top` rows: function → (flat, cum).
pub fn pprof_top(scratch: &Scratch, file: &Path, index: &str) -> BTreeMap<String, (u64, u64)> {
    let text = go_pprof(
        scratch,
        &[
            "-top",
            "-nodecount=500",
            &format!("-sample_index={index}"),
            "-unit=B",
            path_str(file),
        ],
    );
    let num = |s: &str| s.trim_end_matches('B').parse::<u64>().ok();
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 6 {
                return None;
            }
            Some((w[5..].join(" "), (num(w[0])?, num(w[3])?)))
        })
        .collect()
}
