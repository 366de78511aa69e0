#!/usr/bin/env bash
# Installs what the tests and benchmarks need when it is missing: gcc (the C fixtures, and static
# glibc for the statically-linked case), make (building the bundled jemalloc), heaptrack (the
# overhead comparison), chromium (the HTML report is rendered in headless Chromium), the
# allocators the foreign-allocator tests run programs on: libjemalloc-dev, libmimalloc-dev,
# libgoogle-perftools-dev (tcmalloc), the consumers the export tests drive: golang-go
# (`go tool pprof`), valgrind (its DHAT viewer dh_view.html), chromium-driver and
# python3-selenium (dh_view.html is loaded in headless Chromium), and node and npm with
# puppeteer-core in analyzer/tests/browser/node_modules (the driver of the browser tests of
# `tidemark view`; it drives the system's Chromium and never downloads a browser), and libc6-dbg
# (glibc's debug symbols). Idempotent: a
# tool that is already there is left alone, and apt-get runs only when something is absent (one
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
# jq: one of the real programs of `scripts/bench-wall.sh --more`.
if need_cmd jq; then missing+=(jq); fi
# sqlite3: another real program of `scripts/bench-wall.sh --more` (node, below, is a third).
if need_cmd sqlite3; then missing+=(sqlite3); fi
if need_cmd heaptrack || need_cmd heaptrack_print; then missing+=(heaptrack); fi
if need_cmd chromium; then missing+=(chromium); fi
if need_cmd go; then missing+=(golang-go); fi
if ! [ -e /usr/libexec/valgrind/dh_view.html ] && ! [ -e /usr/lib/valgrind/dh_view.html ]; then
    missing+=(valgrind)
fi
if need_cmd chromedriver; then missing+=(chromium-driver); fi
# Debian's Selenium is installed for the system interpreter, which the tests call by path.
if ! /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1; then missing+=(python3-selenium); fi
if need_cmd node; then missing+=(nodejs); fi
if need_cmd npm; then missing+=(npm); fi
# gcc -static needs glibc's static archive (package libc6-dev, normally pulled in by gcc).
if ! [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && ! [ -e /usr/lib/libc.a ] \
    && ! ls /usr/lib/*-linux-gnu/libc.a >/dev/null 2>&1; then
    missing+=(libc6-dev)
fi
# glibc's debug symbols: the runtime-owned rules and the report tests name glibc's internal
# functions (allocate_dtv, _nl_*), which its stripped libraries do not carry.
if ! dpkg-query -W -f='${Status}' libc6-dbg 2>/dev/null | grep -q "ok installed"; then
    missing+=(libc6-dbg)
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

# The browser driver: puppeteer-core at the version package-lock.json pins, in a project-local
# folder. Runs after the system packages (it needs npm).
install_browser_driver() {
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/analyzer/tests/browser"
    if [ -d "$dir/node_modules/puppeteer-core" ]; then
        return 0
    fi
    say "installing puppeteer-core into $dir/node_modules (npm ci)"
    (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
}

if [ ${#missing[@]} -eq 0 ]; then
    install_browser_driver
    say "everything the tests and benchmarks need is present; nothing to install"
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
install_browser_driver
say "done"
