//! Demangling of Rust (legacy and v0) and C++ (Itanium) symbol names.

use std::borrow::Cow;

/// Demangles `name` when it is a mangled Rust or C++ symbol; returns it unchanged otherwise.
///
/// Rust names lose their hash (`a::b::h0123…` → `a::b`, v0 crate disambiguators dropped), so
/// names are stable across builds.
///
/// ```
/// use tidemark_analyzer::symbolize::demangle;
/// assert_eq!(demangle("_ZN3foo3bar17h0123456789abcdefE"), "foo::bar");
/// assert_eq!(demangle("_RNvCs1234_7mycrate4main"), "mycrate::main");
/// assert_eq!(demangle("_Z3fooi"), "foo(int)");
/// assert_eq!(demangle("malloc"), "malloc");
/// ```
pub fn demangle(name: &str) -> Cow<'_, str> {
    // Symbols may carry a leading underscore on some platforms and a `.llvm.NNN` or `.cold`
    // suffix added by optimizations; both demanglers handle the suffixes they know.
    if name.starts_with("_R") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return Cow::Owned(format!("{d:#}"));
        }
    }
    if name.starts_with("_ZN") && looks_like_legacy_rust(name) {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return Cow::Owned(format!("{d:#}"));
        }
    }
    if name.starts_with("_Z") {
        let (core, suffix) = split_clone_suffix(name);
        if let Ok(sym) = cpp_demangle::Symbol::new(core) {
            let opts = cpp_demangle::DemangleOptions::default();
            if let Ok(d) = sym.demangle(&opts) {
                return Cow::Owned(if suffix.is_empty() {
                    d
                } else {
                    format!("{d} [{}]", suffix.trim_start_matches('.'))
                });
            }
        }
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return Cow::Owned(format!("{d:#}"));
        }
    }
    Cow::Borrowed(name)
}

/// True when a demangled name has a path (`a::b`), not counting paths inside generic arguments:
/// `finish_grow<alloc::alloc::Global>` is not qualified, `alloc::raw_vec::finish_grow` is.
///
/// ```
/// use tidemark_analyzer::symbolize::is_qualified;
/// assert!(is_qualified("tm_churn::churn_keep"));
/// assert!(is_qualified("<T as core::clone::Clone>::clone"));
/// assert!(!is_qualified("finish_grow<alloc::alloc::Global>"));
/// assert!(!is_qualified("main"));
/// assert!(!is_qualified("map_or_else<&str, fn(&str) -> alloc::string::String>"));
/// ```
pub fn is_qualified(name: &str) -> bool {
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in name.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            // `fn(&str) -> String` inside generic arguments: an arrow closes nothing.
            '>' if prev == '-' => {}
            '>' | ')' | ']' => depth = depth.saturating_sub(1),
            ':' if prev == ':' && depth == 0 => return true,
            _ => {}
        }
        prev = c;
    }
    false
}

/// Legacy Rust symbols end in a hash component `17h` + 16 hex digits + `E`, possibly followed
/// by a `.llvm.…`-style suffix.
fn looks_like_legacy_rust(name: &str) -> bool {
    let core = name.split('.').next().unwrap_or(name);
    let Some(body) = core.strip_suffix('E') else {
        return false;
    };
    body.len() > 19 && {
        let tail = &body[body.len() - 19..];
        tail.starts_with("17h") && tail[3..].bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// Splits GCC clone suffixes (`.constprop.0`, `.isra.0`, `.cold`, `.part.1`) off a C++ name.
fn split_clone_suffix(name: &str) -> (&str, &str) {
    match name.find('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_and_v0() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h1234567890abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(
            demangle("_ZN3std2rt10lang_start17h0123456789abcdefE.llvm.123"),
            "std::rt::lang_start"
        );
        assert_eq!(
            demangle("_RNvNtCs1234_5alloc7raw_vec11finish_grow"),
            "alloc::raw_vec::finish_grow"
        );
    }

    #[test]
    fn cpp_is_not_mistaken_for_rust() {
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangle("_Znwm"), "operator new(unsigned long)");
        assert_eq!(demangle("_Z3bari.cold"), "bar(int) [cold]");
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("_start"), "_start");
        assert_eq!(demangle("_Zgarbage"), "_Zgarbage");
    }
}
