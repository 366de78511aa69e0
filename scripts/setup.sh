#!/usr/bin/env bash
# Installs what the tests and benchmarks need when it is missing: gcc (the C fixtures, and static
# glibc for the statically-linked case), make (building the bundled jemalloc), heaptrack (the
# overhead comparison), chromium (the HTML report is rendered in headless Chromium), node and npm
# with puppeteer-core in analyzer/tests/browser/node_modules (the driver of the browser tests of
# `tidemark view`; it drives the system's Chromium and never downloads a browser). Idempotent: a
# tool that is already there is left alone, and apt-get runs only when something is absent (one
# `apt-get update` first). Run it as root, or with sudo available.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

need_cmd() { ! command -v "$1" >/dev/null 2>&1; }

missing=()
if need_cmd gcc; then missing+=(gcc); fi
if need_cmd make; then missing+=(make); fi
if need_cmd heaptrack || need_cmd heaptrack_print; then missing+=(heaptrack); fi
if need_cmd chromium; then missing+=(chromium); fi
if need_cmd node; then missing+=(nodejs); fi
if need_cmd npm; then missing+=(npm); fi
# gcc -static needs glibc's static archive (package libc6-dev, normally pulled in by gcc).
if ! [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && ! [ -e /usr/lib/libc.a ] \
    && ! ls /usr/lib/*-linux-gnu/libc.a >/dev/null 2>&1; then
    missing+=(libc6-dev)
fi

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
    say "gcc, make, heaptrack, chromium, node, npm, puppeteer-core and static libc are present"
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
