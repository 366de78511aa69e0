#!/usr/bin/env bash
# Installs what the tests and benchmarks need when it is missing: gcc (the C fixtures, and static
# glibc for the statically-linked case), make (building the bundled jemalloc), heaptrack (the
# overhead comparison), chromium (the HTML report is rendered in headless Chromium), the
# allocators the foreign-allocator tests run programs on: libjemalloc-dev, libmimalloc-dev,
# libgoogle-perftools-dev (tcmalloc), and the consumers the export tests drive: golang-go
# (`go tool pprof`), valgrind (its DHAT viewer dh_view.html), chromium-driver and
# python3-selenium (dh_view.html is loaded in headless Chromium). Idempotent: a tool
# that is already there is left alone, and apt-get runs only when something is absent (one
# `apt-get update` first). Run it as root, or with sudo available.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

need_cmd() { ! command -v "$1" >/dev/null 2>&1; }

missing=()
if need_cmd gcc; then missing+=(gcc); fi
# g++: the C++ allocation-site test (analyzer/tests/sites.rs).
if need_cmd g++; then missing+=(g++); fi
# unshare: the disk-full test mounts a small tmpfs in a private mount namespace.
if need_cmd unshare; then missing+=(util-linux); fi
if need_cmd make; then missing+=(make); fi
if need_cmd heaptrack || need_cmd heaptrack_print; then missing+=(heaptrack); fi
if need_cmd chromium; then missing+=(chromium); fi
if need_cmd go; then missing+=(golang-go); fi
if ! [ -e /usr/libexec/valgrind/dh_view.html ] && ! [ -e /usr/lib/valgrind/dh_view.html ]; then
    missing+=(valgrind)
fi
if need_cmd chromedriver; then missing+=(chromium-driver); fi
# Debian's Selenium is installed for the system interpreter, which the tests call by path.
if ! /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1; then missing+=(python3-selenium); fi
# gcc -static needs glibc's static archive (package libc6-dev, normally pulled in by gcc).
if ! [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && ! [ -e /usr/lib/libc.a ] \
    && ! ls /usr/lib/*-linux-gnu/libc.a >/dev/null 2>&1; then
    missing+=(libc6-dev)
fi
# Other allocators: the preload must forward to them (analyzer/tests/hostile.rs).
need_lib() { ! ls /usr/lib/*-linux-gnu/"$1" >/dev/null 2>&1; }
if need_lib libjemalloc.so; then missing+=(libjemalloc-dev); fi
if need_lib libmimalloc.so; then missing+=(libmimalloc-dev); fi
if need_lib libtcmalloc.so; then missing+=(libgoogle-perftools-dev); fi

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is not on PATH: install a stable Rust toolchain (rustup) first"
    exit 2
fi

if [ ${#missing[@]} -eq 0 ]; then
    say "gcc, g++, unshare, make, heaptrack, chromium, static libc, jemalloc, mimalloc, tcmalloc" \
        "and the export consumers (go, valgrind, chromedriver, selenium) are present; nothing to install"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${missing[*]}; apt-get is not available here, install them with your package manager"
    exit 2
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        say "missing: ${missing[*]}; run this script as root (or install sudo)"
        exit 2
    fi
fi

say "installing: ${missing[*]}"
say "running: apt-get update"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
say "running: apt-get install -y --no-install-recommends ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
say "done"
