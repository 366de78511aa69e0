//! Which debug package would name a module's unnamed frames (`sort+0x6e8d`): computed once per
//! module, shown as one hint line in the summary's warnings rather than in every frame.
//!
//! Debian ships the DWARF of a package `P` in `P-dbgsym` (the `debian-debug` archive) — glibc's
//! in `libc6-dbg` — installed under `/usr/lib/debug/.build-id/`, where the symbolizer looks
//! ([`super::debuginfo::DEBUG_ROOT`]). The package owning a file is the one whose dpkg file list names it (what `dpkg -S` says).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rustc_hash::FxHashMap;

/// Where dpkg lists the files of each installed package (`<package>[:<arch>].list`).
const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// The Debian package that installed `path`, as `dpkg -S` says (architecture qualifier
/// dropped); `None` when there is no dpkg database or no package owns the file. A merged-`/usr`
/// file is looked up under both of its names (`/lib/…` and `/usr/lib/…`). The package lists are
/// read directly: one pass over them costs ≈ 10 ms, where each `dpkg -S` took ≈ 60 ms.
pub fn owning_package(path: &str) -> Option<String> {
    owning_packages(&[path]).pop().flatten()
}

/// [`owning_package`] of each of `paths`, with one pass over the package lists for all those
/// not looked up before.
pub fn owning_packages(paths: &[&str]) -> Vec<Option<String>> {
    let keys: Vec<String> = paths.iter().map(|p| canonical(p)).collect();
    let unknown: Vec<usize> = {
        let owners = lock(&OWNERS);
        (0..paths.len())
            .filter(|&i| !owners.contains_key(&keys[i]))
            .collect()
    };
    if !unknown.is_empty() {
        let wanted: Vec<&str> = unknown.iter().map(|&i| paths[i]).collect();
        let found = scan_lists(&wanted);
        let mut owners = lock(&OWNERS);
        for (&i, owner) in unknown.iter().zip(found) {
            owners.insert(keys[i].clone(), owner);
        }
    }
    let owners = lock(&OWNERS);
    keys.iter()
        .map(|k| owners.get(k).cloned().flatten())
        .collect()
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_owned())
}

/// Owners already looked up (by canonical path): `tidemark run` looks up the program's while
/// it runs ([`super::prewarm`]), so the finish does not scan the lists again.
static OWNERS: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The names a file may be listed under: as given, resolved, and with or without the `/usr`
/// prefix (merged `/usr`).
fn names_of(path: &str) -> Vec<String> {
    let mut names = vec![path.to_owned()];
    if let Ok(real) = std::fs::canonicalize(path) {
        names.push(real.display().to_string());
    }
    for c in names.clone() {
        if let Some(rest) = c.strip_prefix("/usr") {
            names.push(rest.to_owned());
        } else {
            names.push(format!("/usr{c}"));
        }
    }
    names.dedup();
    names
}

/// The owner of each of `paths` (the first of its names, in [`names_of`]'s order, that some
/// list has). The lists of the packages named like the files (`python3.11-minimal` for
/// `python3.11`: a package whose name holds the file name's leading letters) are read first; a
/// path whose own name is listed there has its owner, and only the others take a pass over all
/// the lists (≈ 750 files, 8 MB).
fn scan_lists(paths: &[&str]) -> Vec<Option<String>> {
    let names: Vec<Vec<String>> = paths.iter().map(|p| names_of(p)).collect();
    let Ok(dir) = std::fs::read_dir(DPKG_INFO) else {
        return vec![None; paths.len()];
    };
    let lists: Vec<(String, std::path::PathBuf)> = dir
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".list")?.to_owned();
            Some((stem, entry.path()))
        })
        .collect();
    let keys: Vec<String> = paths
        .iter()
        .map(|p| {
            let file = Path::new(p).file_name().and_then(|n| n.to_str());
            let key: String = file
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            key
        })
        .collect();
    let likely: Vec<&(String, std::path::PathBuf)> = lists
        .iter()
        .filter(|(stem, _)| {
            let package = stem.split(':').next().unwrap_or(stem);
            // A short name (jq) only by the package of that very name.
            keys.iter().any(|k| {
                (k.len() >= 3 && stem.contains(k.as_str())) || (k.len() >= 2 && package == k)
            })
        })
        .collect();
    let first = scan(likely.into_iter(), &names, |_| false);
    // Taken from the likely lists only when the path's own name is there, as given or with or
    // without `/usr` (a merged-`/usr` system maps `/lib/…/libjq.so.1`, which its package lists
    // as `/usr/lib/…/libjq.so.1`; the same file either way).
    let own = |p: usize, found: &[Option<String>]| {
        names[p]
            .iter()
            .zip(found)
            .find(|(n, f)| f.is_some() && same_but_usr(n, paths[p]))
            .and_then(|(_, f)| f.clone())
    };
    let settled: Vec<Option<String>> = first.iter().enumerate().map(|(p, f)| own(p, f)).collect();
    if settled.iter().all(Option::is_some) {
        return settled;
    }
    // Then every list, those of packages whose name shares words with the paths first
    // (`g++-12` for `/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus`): the pass ends once each path
    // is found under its first name, which one package owns (a file without an owner still
    // takes the whole pass).
    let words = path_words(paths);
    let mut ordered: Vec<(usize, &(String, std::path::PathBuf))> = lists
        .iter()
        .map(|l| (shared_words(&l.0, &words), l))
        .collect();
    ordered.sort_by_key(|&(shared, _)| std::cmp::Reverse(shared));
    scan(ordered.into_iter().map(|(_, l)| l), &names, |found| {
        found.iter().all(|f| f.first().is_some_and(Option::is_some))
    })
    .into_iter()
    .map(|f| f.into_iter().flatten().next())
    .collect()
}

/// The words of `paths` (their directories' and file names' parts between `/`, `-`, `.`, `_`
/// and `+`), less those every package's files share.
fn path_words(paths: &[&str]) -> Vec<String> {
    const COMMON: [&str; 8] = ["", "usr", "lib", "bin", "sbin", "share", "local", "so"];
    let mut words: Vec<String> = paths
        .iter()
        .flat_map(|p| p.split(['/', '-', '.', '_', '+']))
        .filter(|w| !COMMON.contains(w))
        .map(str::to_owned)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// How many of `words` a package list's name (`g++-12`, `libc6:amd64`) has among its parts.
fn shared_words(stem: &str, words: &[String]) -> usize {
    let package = stem.split(':').next().unwrap_or(stem);
    package
        .split(['-', '.', '_', '+'])
        .filter(|part| words.iter().any(|w| w == part))
        .count()
}

/// True when `a` and `b` are the same path but for a leading `/usr`.
fn same_but_usr(a: &str, b: &str) -> bool {
    fn bare(p: &str) -> &str {
        p.strip_prefix("/usr")
            .filter(|r| r.starts_with('/'))
            .unwrap_or(p)
    }
    bare(a) == bare(b)
}

/// For each path's names, the first package (in `lists` order) whose list names it; the
/// lists after one with which `done` holds for what was found are not read.
fn scan<'a>(
    lists: impl Iterator<Item = &'a (String, std::path::PathBuf)>,
    names: &[Vec<String>],
    done: impl Fn(&[Vec<Option<String>>]) -> bool,
) -> Vec<Vec<Option<String>>> {
    // name -> (path, rank of the name among the path's names)
    let mut lookup: FxHashMap<&[u8], Vec<(usize, usize)>> = FxHashMap::default();
    for (p, ns) in names.iter().enumerate() {
        for (rank, n) in ns.iter().enumerate() {
            lookup.entry(n.as_bytes()).or_default().push((p, rank));
        }
    }
    let mut found: Vec<Vec<Option<String>>> = names.iter().map(|ns| vec![None; ns.len()]).collect();
    // A list can name a path only if it holds the path's file name: most lists are passed over
    // with a vectorized search for those few names instead of being cut into lines.
    let mut file_names: Vec<&[u8]> = names
        .iter()
        .flatten()
        .map(|n| n.rsplit('/').next().unwrap_or(n).as_bytes())
        .collect();
    file_names.sort_unstable();
    file_names.dedup();
    let finders: Vec<memchr::memmem::Finder> =
        file_names.iter().map(memchr::memmem::Finder::new).collect();
    for (stem, list_path) in lists {
        let Ok(list) = std::fs::read(list_path) else {
            continue;
        };
        if !finders.iter().any(|f| f.find(&list).is_some()) {
            continue;
        }
        for line in list.split(|&b| b == b'\n') {
            let Some(hits) = lookup.get(line) else {
                continue;
            };
            for &(p, rank) in hits {
                if found[p][rank].is_none() {
                    let pkg = stem.split(':').next().unwrap_or(stem);
                    found[p][rank] = Some(pkg.to_owned());
                }
            }
        }
        if done(&found) {
            break;
        }
    }
    found
}

/// The package with the debug symbols of package `pkg`.
pub fn debug_package(pkg: &str) -> String {
    match pkg {
        // glibc ships its debug information as a regular package.
        "libc6" => "libc6-dbg".to_owned(),
        _ => format!("{pkg}-dbgsym"),
    }
}

/// The hint line for a module whose `addresses` return addresses have no name.
pub fn hint(path: &str, build_id: &[u8], addresses: usize) -> String {
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned());
    let id: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    let id_text = if id.is_empty() {
        String::new()
    } else {
        format!(", build-id {id}")
    };
    let what = format!(
        "hint: {addresses} return address(es) in {path} have no symbols (frames read \
         {name}+0x…)"
    );
    match owning_package(path) {
        Some(pkg) => format!(
            "{what}: install {} (the debug symbols of package {pkg}{id_text}, from Debian's \
             debian-debug archive) and load the profile again",
            debug_package(&pkg)
        ),
        None => format!(
            "{what}: no package owns the file; put its debug information under \
             /usr/lib/debug/.build-id/ (named by its build-id{id_text}) and load the profile \
             again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_same_with_or_without_usr() {
        assert!(same_but_usr("/lib/x/libjq.so.1", "/usr/lib/x/libjq.so.1"));
        assert!(same_but_usr("/usr/bin/jq", "/usr/bin/jq"));
        assert!(!same_but_usr(
            "/usr/lib/x/libjq.so.1.0.4",
            "/lib/x/libjq.so.1"
        ));
    }

    #[test]
    fn lists_sharing_words_with_the_path_come_first() {
        let words = path_words(&["/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"]);
        assert_eq!(words, ["12", "64", "cc1plus", "gcc", "gnu", "linux", "x86"]);
        assert_eq!(shared_words("g++-12", &words), 1);
        assert_eq!(shared_words("gcc-12:amd64", &words), 2);
        assert_eq!(shared_words("libc6", &words), 0);
    }

    #[test]
    fn owners_are_found_in_the_package_lists() {
        // The machine's own dpkg database, when it has one (Debian: scripts/setup.sh).
        if !Path::new(DPKG_INFO).is_dir() {
            return;
        }
        let Some((stem, files)) = std::fs::read_dir(DPKG_INFO)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let stem = e.file_name().to_str()?.strip_suffix(".list")?.to_owned();
                Some((stem, std::fs::read_to_string(e.path()).ok()?))
            })
            .find(|(stem, _)| stem.starts_with("libc6"))
        else {
            return;
        };
        let file = files
            .lines()
            .find(|l| Path::new(l).is_file() && !Path::new(l).is_symlink())
            .expect("libc6 installs files")
            .to_owned();
        let package = stem.split(':').next().unwrap().to_owned();
        assert_eq!(scan_lists(&[&file]), [Some(package)], "{file}");
        assert_eq!(scan_lists(&["/nonexistent/tidemark-no-owner"]), [None]);
    }

    #[test]
    fn debug_packages_follow_debian_naming() {
        assert_eq!(debug_package("coreutils"), "coreutils-dbgsym");
        assert_eq!(debug_package("libc6"), "libc6-dbg");
    }
}
