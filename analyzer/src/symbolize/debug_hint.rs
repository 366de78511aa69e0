//! Which debug package would name a module's unnamed frames (`sort+0x6e8d`): computed once per
//! module, shown as one hint line in the summary's warnings rather than in every frame.
//!
//! Debian ships the DWARF of a package `P` in `P-dbgsym` (the `debian-debug` archive) — glibc's
//! in `libc6-dbg` — installed under `/usr/lib/debug/.build-id/`, where the symbolizer looks
//! ([`super::debuginfo::DEBUG_ROOT`]). The package owning a file is the one whose dpkg file list names it (what `dpkg -S` says).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

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

/// One pass over dpkg's file lists for all of `paths`: the owner of each (the first of its
/// names, in [`names_of`]'s order, that some list has).
fn scan_lists(paths: &[&str]) -> Vec<Option<String>> {
    let names: Vec<Vec<String>> = paths.iter().map(|p| names_of(p)).collect();
    // name -> (path, rank of the name among the path's names)
    let mut lookup: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (p, ns) in names.iter().enumerate() {
        for (rank, n) in ns.iter().enumerate() {
            lookup.entry(n.as_str()).or_default().push((p, rank));
        }
    }
    let mut found: Vec<Vec<Option<String>>> = names.iter().map(|ns| vec![None; ns.len()]).collect();
    let Ok(dir) = std::fs::read_dir(DPKG_INFO) else {
        return vec![None; paths.len()];
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".list")) else {
            continue;
        };
        let Ok(list) = std::fs::read(entry.path()) else {
            continue;
        };
        for line in list.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
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
    }
    found
        .into_iter()
        .map(|f| f.into_iter().flatten().next())
        .collect()
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
    fn debug_packages_follow_debian_naming() {
        assert_eq!(debug_package("coreutils"), "coreutils-dbgsym");
        assert_eq!(debug_package("libc6"), "libc6-dbg");
    }
}
