//! Loaded modules of the current process, from `dl_iterate_phdr`.
//!
//! One enumeration serves two consumers: the module map written into the profile
//! ([`crate::format::Module`]) and the DWARF unwinder (text range and `.eh_frame_hdr` location).

use crate::format::{Module, Segment};
use std::ffi::CStr;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
const PF_X: u32 = 1;
const NT_GNU_BUILD_ID: u32 = 3;

/// One module as the dynamic loader sees it, with what the unwinder needs.
#[derive(Debug, Clone, Default)]
pub struct LoadedModule {
    /// Path, build-id, load bias and segments, as written into profiles.
    pub module: Module,
    /// Runtime range covering the executable segments (empty when none).
    pub text: (u64, u64),
    /// Runtime address and size of `.eh_frame_hdr` (PT_GNU_EH_FRAME), when present.
    pub eh_frame_hdr: Option<(u64, u64)>,
    /// The first bytes of `.eh_frame_hdr` (up to [`EH_FRAME_HDR_HEAD`], as many as its segment
    /// holds), read during the enumeration: the loader's lock keeps the module mapped then, where
    /// a `dlclose` on another thread may unmap it as soon as the enumeration returns.
    pub eh_frame_hdr_head: Vec<u8>,
}

/// Bytes of `.eh_frame_hdr` the unwinder needs to find `.eh_frame`: version, encodings and
/// `eh_frame_ptr` (4 or 8 bytes).
pub const EH_FRAME_HDR_HEAD: u64 = 12;

/// Result of one enumeration.
#[derive(Debug, Clone, Default)]
pub struct ModuleList {
    /// The modules in loader order (the executable first).
    pub modules: Vec<LoadedModule>,
    /// Cumulative count of modules the loader added (`dlpi_adds`).
    pub adds: u64,
    /// Cumulative count of modules the loader removed (`dlpi_subs`).
    pub subs: u64,
}

impl ModuleList {
    /// The `format::Module` list for a module map record.
    pub fn format_modules(&self) -> Vec<Module> {
        self.modules.iter().map(|m| m.module.clone()).collect()
    }
}

/// Path of the main executable (`/proc/self/exe`), empty when unreadable.
pub fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Enumerates the loaded modules. Allocates; takes the loader's lock for the duration.
pub fn enumerate() -> ModuleList {
    let mut list = ModuleList::default();
    let exe = exe_path();
    let mut ctx = (&mut list, exe);
    // SAFETY: the callback only reads the `dl_phdr_info` the loader passes it and pushes into the
    // `ModuleList` behind `data`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect),
            (&mut ctx as *mut (&mut ModuleList, String)).cast(),
        );
    }
    list
}

/// Reads only the loader's add/remove counters (stops at the first module).
pub fn load_counts() -> (u64, u64) {
    let mut counts = (0u64, 0u64);
    // SAFETY: the callback writes the two counters into `counts`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(counts_only), (&mut counts as *mut (u64, u64)).cast());
    }
    counts
}

unsafe extern "C" fn counts_only(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `(u64, u64)` passed by `load_counts`; `info` is valid for the call.
    unsafe {
        let counts = &mut *(data as *mut (u64, u64));
        *counts = ((*info).dlpi_adds, (*info).dlpi_subs);
    }
    1
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the context passed by `enumerate`; `info` and the program headers it
    // points to are valid for the duration of the callback.
    let (ctx, info) = unsafe { (&mut *(data as *mut (&mut ModuleList, String)), &*info) };
    ctx.0.adds = info.dlpi_adds;
    ctx.0.subs = info.dlpi_subs;
    let bias = info.dlpi_addr;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: the loader passes a NUL-terminated name.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let path = if name.is_empty() && ctx.0.modules.is_empty() {
        ctx.1.clone()
    } else if !name.is_empty() && !name.starts_with('/') {
        // `dlopen("./plugin.so")`: the loader keeps the name as given, relative to the working
        // directory of the moment, which the finish (and the analyzer) reading the file later
        // may not share.
        std::path::absolute(&name).map_or(name, |p| p.to_string_lossy().into_owned())
    } else {
        name
    };
    let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: the loader guarantees `dlpi_phnum` headers at `dlpi_phdr`.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let mut m = LoadedModule {
        module: Module {
            path,
            base: bias,
            ..Module::default()
        },
        ..LoadedModule::default()
    };
    let mut text = (u64::MAX, 0u64);
    for ph in phdrs {
        let start = bias.wrapping_add(ph.p_vaddr);
        match ph.p_type {
            PT_LOAD => {
                m.module.segments.push(Segment {
                    start,
                    size: ph.p_memsz,
                    flags: ph.p_flags,
                });
                if ph.p_flags & PF_X != 0 {
                    text.0 = text.0.min(start);
                    text.1 = text.1.max(start + ph.p_memsz);
                }
            }
            PT_NOTE if m.module.build_id.is_empty() => {
                // SAFETY: a PT_NOTE segment of a loaded module is mapped (it lies inside a
                // PT_LOAD segment) for `p_memsz` bytes.
                let notes =
                    unsafe { std::slice::from_raw_parts(start as *const u8, ph.p_memsz as usize) };
                if let Some(id) = find_build_id(notes) {
                    m.module.build_id = id.to_vec();
                }
            }
            PT_GNU_EH_FRAME => m.eh_frame_hdr = Some((start, ph.p_memsz)),
            _ => {}
        }
    }
    if text.0 < text.1 {
        m.text = text;
    }
    if let Some((hdr, _)) = m.eh_frame_hdr {
        if let Some(seg) = m.module.segment_at(hdr) {
            let n = (seg.start + seg.size - hdr).min(EH_FRAME_HDR_HEAD) as usize;
            // SAFETY: `hdr..hdr + n` lies inside a PT_LOAD segment of a module the loader holds
            // mapped for the duration of the callback.
            let head = unsafe { std::slice::from_raw_parts(hdr as *const u8, n) };
            m.eh_frame_hdr_head = head.to_vec();
        }
    }
    // Modules without a loaded segment (some loaders report an empty entry) are not useful.
    if !m.module.segments.is_empty() {
        ctx.0.modules.push(m);
    }
    0
}

/// Finds the GNU build-id in the bytes of a PT_NOTE segment.
pub fn find_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let word =
            |i: usize| u32::from_ne_bytes([notes[i], notes[i + 1], notes[i + 2], notes[i + 3]]);
        let (namesz, descsz, ntype) = (word(0) as usize, word(4) as usize, word(8));
        let name_end = 12usize.checked_add(align4(namesz))?;
        let desc_end = name_end.checked_add(align4(descsz))?;
        if notes.len() < 12 + namesz || notes.len() < name_end + descsz {
            return None;
        }
        if ntype == NT_GNU_BUILD_ID && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerates_this_test_binary() {
        let list = enumerate();
        assert!(list.adds >= list.modules.len() as u64);
        let exe = &list.modules[0];
        assert_eq!(exe.module.path, exe_path());
        let here = enumerates_this_test_binary as *const () as usize as u64;
        assert!(
            list.modules
                .iter()
                .any(|m| m.text.0 <= here && here < m.text.1),
            "no module contains this function"
        );
        assert!(list.modules.iter().any(|m| m.eh_frame_hdr.is_some()));
        assert_eq!(load_counts(), (list.adds, list.subs));
    }

    #[test]
    fn build_id_note_parsing() {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_ne_bytes());
        note.extend_from_slice(&2u32.to_ne_bytes());
        note.extend_from_slice(&1u32.to_ne_bytes()); // some other note
        note.extend_from_slice(b"ABC\0\x01\x02\0\0");
        note.extend_from_slice(&4u32.to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(&NT_GNU_BUILD_ID.to_ne_bytes());
        note.extend_from_slice(b"GNU\0\xaa\xbb\xcc\0");
        assert_eq!(find_build_id(&note), Some(&[0xaa, 0xbb, 0xcc][..]));
        assert_eq!(find_build_id(&note[..20]), None);
    }
}
