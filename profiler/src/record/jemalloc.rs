//! jemalloc's own statistics in the timeline (feature `jemalloc`).

use crate::format::sample_key as key;
use tikv_jemalloc_ctl::{epoch, stats};

/// Appends jemalloc's `stats.allocated`, `active`, `resident`, `mapped` and `retained` (bytes)
/// as `JEMALLOC_ALLOCATED` … `JEMALLOC_RETAINED`, after advancing the statistics epoch
/// (≈ 7–24 µs). A reading jemalloc refuses (built without statistics) is left out.
///
/// Install it when jemalloc serves the program, so timeline samples carry these keys:
///
/// ```no_run
/// let cfg = tidemark::record::Config {
///     extra_sampler: Some(tidemark::record::jemalloc_sampler),
///     allocator: "jemalloc".to_owned(),
///     ..tidemark::record::Config::from_env()
/// };
/// ```
///
/// It reads the jemalloc linked through `tikv-jemalloc-sys`, the one `tikv-jemallocator`'s
/// `Jemalloc` and the preload library's `TIDEMARK_ALLOCATOR=jemalloc` use.
pub fn jemalloc_sampler(out: &mut Vec<(u64, u64)>) {
    if epoch::advance().is_err() {
        return;
    }
    let readings = [
        (key::JEMALLOC_ALLOCATED, stats::allocated::read()),
        (key::JEMALLOC_ACTIVE, stats::active::read()),
        (key::JEMALLOC_RESIDENT, stats::resident::read()),
        (key::JEMALLOC_MAPPED, stats::mapped::read()),
        (key::JEMALLOC_RETAINED, stats::retained::read()),
    ];
    for (k, v) in readings {
        if let Ok(v) = v {
            out.push((k, v as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_statistic() {
        // jemalloc initialises itself in a constructor, so its metadata is mapped and resident
        // even though this test binary allocates through glibc.
        let mut v = Vec::new();
        jemalloc_sampler(&mut v);
        let keys: Vec<u64> = v.iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                key::JEMALLOC_ALLOCATED,
                key::JEMALLOC_ACTIVE,
                key::JEMALLOC_RESIDENT,
                key::JEMALLOC_MAPPED,
                key::JEMALLOC_RETAINED
            ]
        );
        let get = |k| v.iter().find(|p| p.0 == k).unwrap().1;
        assert!(get(key::JEMALLOC_ACTIVE) >= get(key::JEMALLOC_ALLOCATED));
        assert!(get(key::JEMALLOC_MAPPED) >= get(key::JEMALLOC_ACTIVE));
        assert!(get(key::JEMALLOC_RESIDENT) > 0);
    }
}
