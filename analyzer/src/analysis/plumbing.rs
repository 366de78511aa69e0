//! Allocator plumbing: frames skipped when looking for an allocation's site.
//!
//! The list is documented in `docs/metrics.md` ("Site"); keep the two in step.

/// Name prefixes of allocator plumbing (demangled names).
pub const PLUMBING_PREFIXES: &[&str] = &[
    // Rust's allocator shims and the default global allocator.
    "__rust_alloc",
    "__rust_realloc",
    "__rust_dealloc",
    "__rust_no_alloc_shim_is_unstable",
    "__rdl_",
    "__rg_",
    // The `alloc` crate: Box, Vec, String, RawVec growth, formatting into a String, collections.
    "alloc::",
    "<alloc::",
    "std::alloc::",
    "<std::alloc::",
    "core::alloc::",
    "<core::alloc::",
    "std::sys::alloc::",
    // Formatting machinery between `format!` and the String it grows.
    "core::fmt::",
    // hashbrown's table allocation (std's HashMap).
    "hashbrown::raw::alloc::",
    // tidemark itself (Tracking<A> and the preload library).
    "tidemark::",
    "<tidemark::",
    "tidemark_preload::",
    "<tidemark_preload::",
    // C++ allocation.
    "operator new",
    "operator delete",
    "__gnu_cxx::new_allocator<",
    "__gnu_cxx::__new_allocator<",
    "std::__new_allocator<",
    "std::allocator<",
    "std::allocator_traits<",
];

/// Exact names of allocator plumbing: the malloc family and thin wrappers around it.
pub const PLUMBING_NAMES: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "strdup",
    "strndup",
    "__strdup",
    "__strndup",
    "xmalloc",
    "xcalloc",
    "xrealloc",
    "xstrdup",
];

/// Substrings that mark an implementation of Rust's allocator traits (any crate's).
pub const PLUMBING_TRAIT_IMPLS: &[&str] = &[
    "core::alloc::global::GlobalAlloc",
    "core::alloc::Allocator",
    " as GlobalAlloc>",
    " as Allocator>",
];

/// Source paths of allocator plumbing, for inlined frames: with `debug = "line-tables-only"`
/// an inlined function is named without its path (`push`, `new`), but its file still says where
/// it comes from (`/rustc/<hash>/library/alloc/src/vec/mod.rs`).
pub const PLUMBING_FILES: &[&str] = &[
    "/library/alloc/src/",
    "/library/core/src/alloc/",
    "/library/core/src/fmt/",
    "/library/std/src/alloc.rs",
    "/library/std/src/sys/alloc/",
];

/// True when a frame is allocator plumbing by its name ([`is_allocator_plumbing`]) or, for
/// frames named without a path, by its source file ([`PLUMBING_FILES`], hashbrown's
/// `raw/alloc.rs`).
pub fn is_plumbing_frame(function: &str, file: &str) -> bool {
    if is_allocator_plumbing(function) {
        return true;
    }
    !crate::symbolize::is_qualified(function)
        && (PLUMBING_FILES.iter().any(|m| file.contains(m))
            || (file.contains("hashbrown") && file.ends_with("raw/alloc.rs")))
}

/// Self types whose trait impls are library plumbing (`<str as alloc::string::ToString>`,
/// `<&T as core::fmt::Display>`, `<[T] as alloc::borrow::ToOwned>`).
const PLUMBING_SELF_TYPES: &[&str] = &["str ", "&", "[", "alloc::", "core::", "std::"];

/// True when `function` (demangled) is allocator plumbing rather than the code that asked for
/// memory.
///
/// ```
/// use tidemark_analyzer::analysis::is_allocator_plumbing;
/// assert!(is_allocator_plumbing("alloc::raw_vec::finish_grow"));
/// assert!(is_allocator_plumbing("__rust_alloc"));
/// assert!(is_allocator_plumbing("<alloc::alloc::Global as core::alloc::Allocator>::allocate"));
/// assert!(is_allocator_plumbing("operator new(unsigned long)"));
/// assert!(!is_allocator_plumbing("myapp::parse"));
/// assert!(!is_allocator_plumbing("main"));
/// ```
pub fn is_allocator_plumbing(function: &str) -> bool {
    // glibc's internal aliases: `__GI___strdup` is `__strdup`, `__GI___libc_malloc` is
    // `__libc_malloc`.
    let function = function.strip_prefix("__GI_").unwrap_or(function);
    if PLUMBING_NAMES.contains(&function) {
        return true;
    }
    if PLUMBING_PREFIXES.iter().any(|p| function.starts_with(p)) {
        return true;
    }
    if PLUMBING_TRAIT_IMPLS.iter().any(|p| function.contains(p)) {
        return true;
    }
    if let Some(rest) = function.strip_prefix('<') {
        let is_impl = rest.contains(" as alloc::") || rest.contains(" as core::");
        if is_impl && PLUMBING_SELF_TYPES.iter().any(|t| rest.starts_with(t)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlined_library_frames_are_plumbing_by_file() {
        assert!(is_plumbing_frame(
            "push",
            "/rustc/abc/library/alloc/src/vec/mod.rs"
        ));
        assert!(is_plumbing_frame(
            "new",
            "/rustc/abc/library/alloc/src/boxed.rs"
        ));
        assert!(!is_plumbing_frame(
            "churn_keep",
            "fixtures/src/bin/tm-churn.rs"
        ));
        // A qualified user function defined in a file that happens to match stays user code.
        assert!(!is_plumbing_frame(
            "myapp::push",
            "/home/u/library/alloc/src/x.rs"
        ));
    }

    #[test]
    fn user_code_is_not_plumbing() {
        for f in [
            "tm_churn::churn_keep",
            "<myapp::Foo as core::fmt::Display>::fmt",
            "core::iter::traits::iterator::Iterator::collect",
            "std::thread::spawn",
            "main",
            "ep_malloc",
        ] {
            assert!(!is_allocator_plumbing(f), "{f}");
        }
    }

    #[test]
    fn library_plumbing_is() {
        for f in [
            "__rdl_alloc",
            "__rust_alloc_zeroed",
            "alloc::fmt::format::format_inner",
            "<alloc::string::String as core::fmt::Write>::write_str",
            "<str as alloc::string::ToString>::to_string",
            "<&T as core::fmt::Display>::fmt",
            "std::sys::alloc::unix::<impl core::alloc::global::GlobalAlloc for std::alloc::System>::alloc",
            "<tidemark::Tracking<A> as core::alloc::global::GlobalAlloc>::alloc",
            "<tikv_jemallocator::Jemalloc as core::alloc::global::GlobalAlloc>::alloc",
            "core::fmt::write",
            "malloc",
            "__GI___strdup",
            "std::allocator_traits<std::allocator<int> >::allocate(std::allocator<int>&, unsigned long)",
        ] {
            assert!(is_allocator_plumbing(f), "{f}");
        }
    }
}
