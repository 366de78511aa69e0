//! Allocator machinery: the frames skipped when looking for an allocation's site.
//!
//! A site is the first frame, from the innermost, that is not allocator machinery — for C, C++ and
//! Rust alike: `malloc`'s callers such as `strdup` or `operator new`, the C++ containers' growth
//! (`std::vector<…>::_M_realloc_insert`, `std::__cxx11::basic_string<…>::_M_create`), Rust's
//! allocator shims (`__rust_alloc`, `__rustc::__rdl_alloc`), `alloc::raw_vec` growth,
//! `<[T]>::to_vec`, hashbrown's table growth. [`MACHINERY`] is the one table of these rules;
//! `docs/metrics.md` ("Sites and functions") describes it, and the two change together.

/// How a [`Machinery`] entry matches a demangled function name (after glibc's `__GI_` alias
/// prefix is removed, so `__GI___strdup` is `__strdup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// The whole name.
    Exact,
    /// The start of the name.
    Prefix,
    /// Anywhere in the name.
    Contains,
    /// A trait method implemented for a standard-library or built-in type: the name starts with
    /// `<T as alloc::` or `<T as core::` where `T` starts with the pattern (`str `, `&`, `[`,
    /// `alloc::`, `core::`, `std::`), e.g. `<str as alloc::string::ToString>::to_string`.
    LibraryTraitImpl,
}

/// One rule of the allocator-machinery table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machinery {
    /// What is matched.
    pub pattern: &'static str,
    /// How.
    pub matching: Matching,
    /// `"C"`, `"C++"`, `"Rust"` or `"tidemark"`.
    pub language: &'static str,
    /// What the frames are.
    pub what: &'static str,
}

const fn rule(
    pattern: &'static str,
    matching: Matching,
    language: &'static str,
    what: &'static str,
) -> Machinery {
    Machinery {
        pattern,
        matching,
        language,
        what,
    }
}

use Matching::{Contains, Exact, LibraryTraitImpl, Prefix};

/// The malloc family and thin C wrappers around it.
const C_ALLOC: &str = "the malloc family and C wrappers that return new memory";
const RUST_SHIM: &str = "Rust's allocator shims and the default global allocator";
const RUST_ALLOC: &str = "the alloc crate: Box, Vec and RawVec growth, String, collections";
const RUST_SLICE: &str = "slice and str methods that copy into a new allocation";
const RUST_HASH: &str = "hashbrown (std's HashMap/HashSet) table allocation and growth";
const RUST_FMT: &str = "formatting machinery between format! and the String it grows";
const RUST_TRAIT: &str = "implementations of Rust's allocator traits (any crate's)";
const CXX_NEW: &str = "C++ operator new/delete and the standard allocators";
const CXX_CONTAINER: &str = "C++ standard containers' and strings' allocation and growth";
const TIDEMARK: &str = "tidemark's own recorder (Tracking<A>, the preload library)";

/// The allocator-machinery table: a frame whose demangled name matches any entry is not a site.
pub const MACHINERY: &[Machinery] = &[
    // C.
    rule("malloc", Exact, "C", C_ALLOC),
    rule("calloc", Exact, "C", C_ALLOC),
    rule("realloc", Exact, "C", C_ALLOC),
    rule("reallocarray", Exact, "C", C_ALLOC),
    rule("free", Exact, "C", C_ALLOC),
    rule("posix_memalign", Exact, "C", C_ALLOC),
    rule("aligned_alloc", Exact, "C", C_ALLOC),
    rule("memalign", Exact, "C", C_ALLOC),
    rule("valloc", Exact, "C", C_ALLOC),
    rule("pvalloc", Exact, "C", C_ALLOC),
    rule("__libc_malloc", Exact, "C", C_ALLOC),
    rule("__libc_calloc", Exact, "C", C_ALLOC),
    rule("__libc_realloc", Exact, "C", C_ALLOC),
    rule("__libc_memalign", Exact, "C", C_ALLOC),
    rule("strdup", Exact, "C", C_ALLOC),
    rule("strndup", Exact, "C", C_ALLOC),
    rule("__strdup", Exact, "C", C_ALLOC),
    rule("__strndup", Exact, "C", C_ALLOC),
    rule("wcsdup", Exact, "C", C_ALLOC),
    rule("xmalloc", Exact, "C", C_ALLOC),
    rule("xcalloc", Exact, "C", C_ALLOC),
    rule("xrealloc", Exact, "C", C_ALLOC),
    rule("xstrdup", Exact, "C", C_ALLOC),
    // Rust: shims (`__rustc::` is the prefix current toolchains give them).
    rule("__rustc::", Prefix, "Rust", RUST_SHIM),
    rule("__rust_alloc", Prefix, "Rust", RUST_SHIM),
    rule("__rust_realloc", Prefix, "Rust", RUST_SHIM),
    rule("__rust_dealloc", Prefix, "Rust", RUST_SHIM),
    rule(
        "__rust_no_alloc_shim_is_unstable",
        Prefix,
        "Rust",
        RUST_SHIM,
    ),
    rule("__rdl_", Prefix, "Rust", RUST_SHIM),
    rule("__rg_", Prefix, "Rust", RUST_SHIM),
    rule("std::alloc::", Prefix, "Rust", RUST_SHIM),
    rule("<std::alloc::", Prefix, "Rust", RUST_SHIM),
    rule("std::sys::alloc::", Prefix, "Rust", RUST_SHIM),
    rule("core::alloc::", Prefix, "Rust", RUST_SHIM),
    rule("<core::alloc::", Prefix, "Rust", RUST_SHIM),
    // Rust: the alloc crate (`alloc::raw_vec::…`, `alloc::alloc::…`, `alloc::vec::Vec<T>::push`,
    // `alloc::slice::<impl [T]>::to_vec`, `alloc::fmt::format`, collections).
    rule("alloc::", Prefix, "Rust", RUST_ALLOC),
    rule("<alloc::", Prefix, "Rust", RUST_ALLOC),
    // Rust: v0-mangled inherent methods of slices and str (`<[u8]>::to_vec`).
    rule("]>::to_vec", Contains, "Rust", RUST_SLICE),
    rule("]>::into_vec", Contains, "Rust", RUST_SLICE),
    rule("]>::repeat", Contains, "Rust", RUST_SLICE),
    rule("]>::concat", Contains, "Rust", RUST_SLICE),
    rule("]>::join", Contains, "Rust", RUST_SLICE),
    rule("<str>::to_owned", Prefix, "Rust", RUST_SLICE),
    rule("<str>::to_string", Prefix, "Rust", RUST_SLICE),
    rule("<str>::repeat", Prefix, "Rust", RUST_SLICE),
    rule("<str>::replace", Prefix, "Rust", RUST_SLICE),
    rule("<str>::to_lowercase", Prefix, "Rust", RUST_SLICE),
    rule("<str>::to_uppercase", Prefix, "Rust", RUST_SLICE),
    rule("<str>::into_string", Prefix, "Rust", RUST_SLICE),
    // Rust: hash tables.
    rule("hashbrown::", Prefix, "Rust", RUST_HASH),
    rule("<hashbrown::", Prefix, "Rust", RUST_HASH),
    rule("std::collections::hash::", Prefix, "Rust", RUST_HASH),
    rule("<std::collections::hash::", Prefix, "Rust", RUST_HASH),
    // Rust: formatting.
    rule("core::fmt::", Prefix, "Rust", RUST_FMT),
    // Rust: allocator trait implementations.
    rule(
        "core::alloc::global::GlobalAlloc",
        Contains,
        "Rust",
        RUST_TRAIT,
    ),
    rule("core::alloc::Allocator", Contains, "Rust", RUST_TRAIT),
    rule(" as GlobalAlloc>", Contains, "Rust", RUST_TRAIT),
    rule(" as Allocator>", Contains, "Rust", RUST_TRAIT),
    // Rust: std/core trait methods on library types (`<str as alloc::string::ToString>`).
    rule("str ", LibraryTraitImpl, "Rust", RUST_ALLOC),
    rule("&", LibraryTraitImpl, "Rust", RUST_ALLOC),
    rule("[", LibraryTraitImpl, "Rust", RUST_ALLOC),
    rule("alloc::", LibraryTraitImpl, "Rust", RUST_ALLOC),
    rule("core::", LibraryTraitImpl, "Rust", RUST_ALLOC),
    rule("std::", LibraryTraitImpl, "Rust", RUST_ALLOC),
    // C++: operator new and the allocators.
    rule("operator new", Prefix, "C++", CXX_NEW),
    rule("operator delete", Prefix, "C++", CXX_NEW),
    rule("__gnu_cxx::new_allocator<", Prefix, "C++", CXX_NEW),
    rule("__gnu_cxx::__new_allocator<", Prefix, "C++", CXX_NEW),
    rule("std::__new_allocator<", Prefix, "C++", CXX_NEW),
    rule("std::allocator<", Prefix, "C++", CXX_NEW),
    rule("std::allocator_traits<", Prefix, "C++", CXX_NEW),
    rule("std::__1::allocator<", Prefix, "C++", CXX_NEW),
    rule("std::__1::allocator_traits<", Prefix, "C++", CXX_NEW),
    rule("std::__1::__libcpp_allocate", Prefix, "C++", CXX_NEW),
    // C++: containers and strings (libstdc++, then libc++'s `std::__1::`).
    rule("std::__cxx11::basic_string<", Prefix, "C++", CXX_CONTAINER),
    rule("std::basic_string<", Prefix, "C++", CXX_CONTAINER),
    rule("std::vector<", Prefix, "C++", CXX_CONTAINER),
    rule("std::_Vector_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::_Rb_tree<", Prefix, "C++", CXX_CONTAINER),
    rule("std::map<", Prefix, "C++", CXX_CONTAINER),
    rule("std::multimap<", Prefix, "C++", CXX_CONTAINER),
    rule("std::set<", Prefix, "C++", CXX_CONTAINER),
    rule("std::multiset<", Prefix, "C++", CXX_CONTAINER),
    rule("std::_Hashtable<", Prefix, "C++", CXX_CONTAINER),
    rule(
        "std::__detail::_Hashtable_alloc<",
        Prefix,
        "C++",
        CXX_CONTAINER,
    ),
    rule("std::__detail::_Map_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__detail::_Insert_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::unordered_map<", Prefix, "C++", CXX_CONTAINER),
    rule("std::unordered_set<", Prefix, "C++", CXX_CONTAINER),
    rule("std::deque<", Prefix, "C++", CXX_CONTAINER),
    rule("std::_Deque_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__cxx11::list<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__cxx11::_List_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::list<", Prefix, "C++", CXX_CONTAINER),
    rule("std::_List_base<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__shared_count<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__allocate_shared<", Prefix, "C++", CXX_CONTAINER),
    rule("std::allocate_shared<", Prefix, "C++", CXX_CONTAINER),
    rule("std::make_shared<", Prefix, "C++", CXX_CONTAINER),
    rule("std::make_unique<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__allocate_guarded<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__allocated_ptr<", Prefix, "C++", CXX_CONTAINER),
    rule(
        "std::_Sp_counted_ptr_inplace<",
        Prefix,
        "C++",
        CXX_CONTAINER,
    ),
    rule("std::__shared_ptr<", Prefix, "C++", CXX_CONTAINER),
    rule("std::shared_ptr<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::basic_string<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::vector<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::__split_buffer<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::__tree<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::map<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::__hash_table<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::unordered_map<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::deque<", Prefix, "C++", CXX_CONTAINER),
    rule("std::__1::list<", Prefix, "C++", CXX_CONTAINER),
    rule(
        "std::__1::__shared_ptr_emplace<",
        Prefix,
        "C++",
        CXX_CONTAINER,
    ),
    rule("std::__1::make_shared<", Prefix, "C++", CXX_CONTAINER),
    // tidemark itself.
    rule("tidemark::", Prefix, "tidemark", TIDEMARK),
    rule("<tidemark::", Prefix, "tidemark", TIDEMARK),
    rule("tidemark_preload::", Prefix, "tidemark", TIDEMARK),
    rule("<tidemark_preload::", Prefix, "tidemark", TIDEMARK),
];

/// Source paths of allocator machinery, for inlined frames named without a path: with
/// `debug = "line-tables-only"` an inlined function is named `push`, `new`, `reserve_rehash`,
/// but its file still says where it comes from (`/rustc/<hash>/library/alloc/src/vec/mod.rs`,
/// `/usr/include/c++/12/bits/basic_string.tcc`).
pub const MACHINERY_FILES: &[&str] = &[
    "/library/alloc/src/",
    "/library/core/src/alloc/",
    "/library/core/src/fmt/",
    "/library/std/src/alloc.rs",
    "/library/std/src/sys/alloc/",
    "/library/std/src/collections/hash/",
    "/hashbrown-",
    "/include/c++/",
];

/// Name prefixes of Rust's allocator shims, into which the global allocator (any
/// `#[global_allocator]`, the program's own included) is inlined.
pub const ALLOCATOR_SHIMS: &[&str] = &[
    "__rustc::",
    "__rust_alloc",
    "__rust_realloc",
    "__rust_dealloc",
    "__rg_",
    "__rdl_",
];

/// True when `function` is one of Rust's allocator shims ([`ALLOCATOR_SHIMS`]).
pub fn is_allocator_shim(function: &str) -> bool {
    ALLOCATOR_SHIMS.iter().any(|p| function.starts_with(p))
}

/// Source paths of library code (Rust's standard library, crates from a registry, C++ standard
/// headers), as opposed to the program's own sources.
pub const LIBRARY_SOURCES: &[&str] =
    &["/library/", "/rustc/", "/.cargo/registry/", "/include/c++/"];

/// True when `file` is library source ([`LIBRARY_SOURCES`]).
pub fn is_library_source(file: &str) -> bool {
    LIBRARY_SOURCES.iter().any(|p| file.contains(p))
}

/// True when a frame is allocator machinery by its name ([`is_allocator_plumbing`]) or, for
/// frames named without a path, by its source file ([`MACHINERY_FILES`]).
pub fn is_plumbing_frame(function: &str, file: &str) -> bool {
    if is_allocator_plumbing(function) {
        return true;
    }
    !crate::symbolize::is_qualified(function) && MACHINERY_FILES.iter().any(|m| file.contains(m))
}

/// True when `function` (demangled) is allocator machinery rather than the code that asked for
/// memory: it matches an entry of [`MACHINERY`].
///
/// ```
/// use tidemark_analyzer::analysis::is_allocator_plumbing;
/// assert!(is_allocator_plumbing("alloc::raw_vec::finish_grow"));
/// assert!(is_allocator_plumbing("__rust_alloc"));
/// assert!(is_allocator_plumbing("__rustc::__rdl_alloc"));
/// assert!(is_allocator_plumbing("<alloc::alloc::Global as core::alloc::Allocator>::allocate"));
/// assert!(is_allocator_plumbing("operator new(unsigned long)"));
/// assert!(!is_allocator_plumbing("myapp::parse"));
/// assert!(!is_allocator_plumbing("main"));
/// ```
pub fn is_allocator_plumbing(function: &str) -> bool {
    let function = function.strip_prefix("__GI_").unwrap_or(function);
    // C++ function templates are demangled with their return type first
    // (`void std::vector<…>::_M_realloc_insert<…>(…)`): match the name after it.
    matches_machinery(without_return_type(function))
}

/// A C++ demangled name without the return type that precedes function template names:
/// `std::_Rb_tree_node<…>* std::_Rb_tree<…>::_M_create_node<…>(…)` → `std::_Rb_tree<…>::…(…)`.
/// Names without one come back unchanged.
pub fn without_return_type(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut depth = 0usize;
    let mut last_space = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' if depth == 0 && name[i..].starts_with("(anonymous namespace)") => {
                i += "(anonymous namespace)".len();
                continue;
            }
            b'(' if depth == 0 => break,
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            // `operator new`, `operator delete`, `operator bool`: that space is in the name.
            b' ' if depth == 0 && !name[..i].ends_with("operator") => last_space = Some(i),
            _ => {}
        }
        i += 1;
    }
    match last_space {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn matches_machinery(function: &str) -> bool {
    let impl_of = function
        .strip_prefix('<')
        .filter(|rest| rest.contains(" as alloc::") || rest.contains(" as core::"));
    MACHINERY.iter().any(|m| match m.matching {
        Exact => function == m.pattern,
        Prefix => function.starts_with(m.pattern),
        Contains => function.contains(m.pattern),
        LibraryTraitImpl => impl_of.is_some_and(|rest| rest.starts_with(m.pattern)),
    })
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
        assert!(is_plumbing_frame(
            "reserve_rehash<u64>",
            "/root/.cargo/registry/src/x/hashbrown-0.15.2/src/raw/mod.rs"
        ));
        assert!(is_plumbing_frame(
            "_M_create",
            "/usr/include/c++/12/bits/basic_string.tcc"
        ));
        // A qualified user function defined in a file that happens to match stays user code.
        assert!(!is_plumbing_frame(
            "myapp::push",
            "/home/u/library/alloc/src/x.rs"
        ));
    }

    #[test]
    fn return_types_are_skipped() {
        assert_eq!(
            without_return_type("void std::vector<int>::_M_realloc_insert<int>(int&&)"),
            "std::vector<int>::_M_realloc_insert<int>(int&&)"
        );
        assert_eq!(
            without_return_type("operator new(unsigned long)"),
            "operator new(unsigned long)"
        );
        assert_eq!(
            without_return_type("(anonymous namespace)::f(int)"),
            "(anonymous namespace)::f(int)"
        );
        assert_eq!(
            without_return_type("std::pair<int, int> const* (anonymous namespace)::g<1>(int)"),
            "(anonymous namespace)::g<1>(int)"
        );
        assert_eq!(without_return_type("main"), "main");
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
            "std::sort<int*>",
            "std::thread::_State_impl<x>::_M_run()",
            "<myapp::Table>::to_vec_of_rows",
            "myapp::strdup_all",
            "std::vector<int> make_vector<int>(unsigned long)",
            "(anonymous namespace)::build(int)",
            "operator bool_like(int)",
        ] {
            assert!(!is_allocator_plumbing(f), "{f}");
        }
    }

    #[test]
    fn library_plumbing_is() {
        for f in [
            "__rdl_alloc",
            "__rustc::__rdl_alloc",
            "__rustc::__rust_alloc",
            "__rustc::__rg_realloc",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "alloc::raw_vec::RawVecInner<A>::reserve::do_reserve_and_handle",
            "<[u8]>::to_vec",
            "<[T]>::to_vec_in::<alloc::alloc::Global>",
            "<alloc::vec::Vec<u32>>::push",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "<hashbrown::raw::RawTableInner>::fallible_with_capacity",
            "std::collections::hash::map::HashMap<K,V,S>::insert",
            "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::_M_create(unsigned long&, unsigned long)",
            "std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > >::_M_realloc_insert<char const*&>(__gnu_cxx::__normal_iterator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*, std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > >, char const*&)",
            "std::_Rb_tree<int, std::pair<int const, int>, std::_Select1st<std::pair<int const, int> >, std::less<int>, std::allocator<std::pair<int const, int> > >::_M_emplace_hint_unique<>()",
            "std::__1::vector<int, std::__1::allocator<int> >::__push_back_slow_path<int>(int&&)",
            "void std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > >::_M_realloc_insert<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >(__gnu_cxx::__normal_iterator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*, std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > >, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >&&)",
            "std::__detail::_Hash_node<std::pair<int const, int>, false>* std::__detail::_Hashtable_alloc<std::allocator<std::__detail::_Hash_node<std::pair<int const, int>, false> > >::_M_allocate_node<std::piecewise_construct_t const&, std::tuple<int const&>, std::tuple<> >(std::piecewise_construct_t const&, std::tuple<int const&>&&, std::tuple<>&&)",
            "std::__allocated_ptr<std::allocator<std::_Sp_counted_ptr_inplace<int, std::allocator<void>, (__gnu_cxx::_Lock_policy)2> > > std::__allocate_guarded<std::allocator<std::_Sp_counted_ptr_inplace<int, std::allocator<void>, (__gnu_cxx::_Lock_policy)2> > >(std::allocator<std::_Sp_counted_ptr_inplace<int, std::allocator<void>, (__gnu_cxx::_Lock_policy)2> >&)",
            "wcsdup",
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
