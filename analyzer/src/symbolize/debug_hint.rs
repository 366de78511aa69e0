//! Which debug package would name a module's unnamed frames (`sort+0x6e8d`): computed once per
//! module, shown as one hint line in the summary's warnings rather than in every frame.
//!
//! Debian ships the DWARF of a package `P` in `P-dbgsym` (the `debian-debug` archive) — glibc's
//! in `libc6-dbg` — installed under `/usr/lib/debug/.build-id/`, where the symbolizer looks
//! ([`super::debuginfo::DEBUG_ROOT`]). The package owning a file is the one whose dpkg file list names it (what `dpkg -S` says).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Where dpkg lists the files of each installed package (`<package>[:<arch>].list`).
const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// The Debian package that installed `path`, as `dpkg -S` says (architecture qualifier
/// dropped); `None` when there is no dpkg database or no package owns the file. A merged-`/usr`
/// file is looked up under both of its names (`/lib/…` and `/usr/lib/…`). The package lists are
/// read directly (each `dpkg -S` took ≈ 60 ms): first those of the packages named like the file
/// (`python3.11-minimal` for `python3.11`), where the file usually is, then, when it is not
/// there, all of them (≈ 750 files, 8 MB, ≈ 10–20 ms). Each file is looked up once per
/// process.
pub fn owning_package(path: &str) -> Option<String> {
    let key = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_owned());
    if let Some(known) = lock(&OWNERS).get(&key) {
        return known.clone();
    }
    let owner = scan_lists(path);
    lock(&OWNERS).insert(key, owner.clone());
    owner
}

/// Owners already looked up (by canonical path): `tidemark run` looks up the program's while
/// it runs ([`super::prewarm`]), so the finish does not scan the lists again.
static OWNERS: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn scan_lists(path: &str) -> Option<String> {
    let mut candidates = vec![path.to_owned()];
    if let Ok(real) = std::fs::canonicalize(path) {
        candidates.push(real.display().to_string());
    }
    for c in candidates.clone() {
        if let Some(rest) = c.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{c}"));
        }
    }
    candidates.dedup();
    let lists: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(DPKG_INFO)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".list")?.to_owned();
            Some((stem, entry.path()))
        })
        .collect();
    // The file name's leading letters (`python`, `libc`): a package named with them likely
    // holds it. Only the path itself found there is taken; anything else takes the full scan.
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let key: String = name
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if key.len() >= 3 {
        let likely: Vec<_> = lists
            .iter()
            .filter(|(stem, _)| stem.contains(&key))
            .collect();
        if let Some(pkg) = scan(likely.into_iter(), &candidates[..1])
            .into_iter()
            .next()
            .flatten()
        {
            return Some(pkg);
        }
    }
    scan(lists.iter(), &candidates).into_iter().flatten().next()
}

/// For each candidate path, the first package whose list (`(package, list file)`) names it.
fn scan<'a>(
    lists: impl Iterator<Item = &'a (String, std::path::PathBuf)>,
    candidates: &[String],
) -> Vec<Option<String>> {
    let mut found: Vec<Option<String>> = vec![None; candidates.len()];
    for (stem, list_path) in lists {
        let Ok(list) = std::fs::read_to_string(list_path) else {
            continue;
        };
        for line in list.lines() {
            if let Some(i) = candidates.iter().position(|c| c == line) {
                if found[i].is_none() {
                    let pkg = stem.split(':').next().unwrap_or(stem);
                    found[i] = Some(pkg.to_owned());
                }
            }
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
    fn debug_packages_follow_debian_naming() {
        assert_eq!(debug_package("coreutils"), "coreutils-dbgsym");
        assert_eq!(debug_package("libc6"), "libc6-dbg");
    }
}
