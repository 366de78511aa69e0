//! Address → module, over every module map snapshot of the profile.

use tidemark::format::Module;

use crate::model::ModuleSnapshot;

/// One snapshot's segments, sorted by start address.
#[derive(Debug, Default)]
struct Generation {
    /// The snapshot's generation number.
    number: u64,
    /// `(start, end, module index)`.
    ranges: Vec<(u64, u64, usize)>,
    modules: Vec<Module>,
}

/// Finds the module of an address: the latest snapshot whose segments contain it, so modules
/// unloaded with `dlclose` (gone from later snapshots) still resolve.
#[derive(Debug, Default)]
pub(crate) struct ModuleMap {
    /// Latest first.
    generations: Vec<Generation>,
}

impl ModuleMap {
    pub(crate) fn new(snapshots: &[ModuleSnapshot]) -> Self {
        let mut sorted: Vec<&ModuleSnapshot> = snapshots.iter().collect();
        // Stable: equal generation numbers keep file order (later wins below).
        sorted.sort_by_key(|s| s.generation);
        let generations = sorted
            .into_iter()
            .rev()
            .map(|s| {
                let mut ranges = Vec::new();
                for (i, m) in s.modules.iter().enumerate() {
                    for seg in &m.segments {
                        if seg.size > 0 {
                            ranges.push((seg.start, seg.start.saturating_add(seg.size), i));
                        }
                    }
                }
                ranges.sort_unstable();
                Generation {
                    number: s.generation,
                    ranges,
                    modules: s.modules.clone(),
                }
            })
            .collect();
        ModuleMap { generations }
    }

    /// True when the profile had no module map at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.iter().all(|g| g.ranges.is_empty())
    }

    /// The module containing `addr`, in the latest snapshot that has one.
    pub(crate) fn find(&self, addr: u64) -> Option<&Module> {
        self.find_at(addr, 0)
    }

    /// The module containing `addr` as of module generation `generation`: the latest snapshot
    /// of that generation or an earlier one that has it (0: any generation).
    pub(crate) fn find_at(&self, addr: u64, generation: u64) -> Option<&Module> {
        for g in &self.generations {
            if generation != 0 && g.number > generation {
                continue;
            }
            let i = g.ranges.partition_point(|r| r.0 <= addr);
            if i > 0 {
                let (start, end, m) = g.ranges[i - 1];
                if start <= addr && addr < end {
                    return g.modules.get(m);
                }
            }
        }
        None
    }
}

/// The file name of a module path (`/usr/lib/libc.so.6` → `libc.so.6`).
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark::format::Segment;

    fn module(path: &str, start: u64, size: u64) -> Module {
        Module {
            path: path.into(),
            build_id: vec![],
            base: start,
            segments: vec![Segment {
                start,
                size,
                flags: 5,
            }],
        }
    }

    #[test]
    fn latest_generation_wins_and_old_ones_remain() {
        let snaps = vec![
            ModuleSnapshot {
                generation: 1,
                modules: vec![
                    module("/a", 0x1000, 0x1000),
                    module("/plugin", 0x5000, 0x100),
                ],
            },
            ModuleSnapshot {
                generation: 2,
                modules: vec![module("/a", 0x1000, 0x1000), module("/b", 0x5000, 0x80)],
            },
        ];
        let map = ModuleMap::new(&snaps);
        assert_eq!(map.find(0x1800).unwrap().path, "/a");
        assert_eq!(map.find(0x5010).unwrap().path, "/b");
        // Past /b's end but inside the dlclose'd plugin of generation 1.
        assert_eq!(map.find(0x50f0).unwrap().path, "/plugin");
        assert!(map.find(0x9000).is_none());
        assert!(map.find(0x2000).is_none());
        // As of generation 1, /b did not exist yet and the plugin did.
        assert_eq!(map.find_at(0x50f0, 1).unwrap().path, "/plugin");
        assert_eq!(map.find_at(0x5010, 1).unwrap().path, "/plugin");
        assert_eq!(map.find_at(0x5010, 2).unwrap().path, "/b");
    }
}
