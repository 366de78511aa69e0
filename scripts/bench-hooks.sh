#!/usr/bin/env bash
# What the hooks cost the program's own threads, per malloc+free pair: thread CPU time
# (CLOCK_THREAD_CPUTIME_ID), so a busy machine's scheduling and the recorder's writer thread do
# not count. Beside bench-wall.sh's whole-command figures (the headline), for the issue's
# per-event targets: the churn at depths 10 and 40 (walk cache), one thread against two (no
# shared cache line written per event), and the unsampled fast path of sampling mode.
#
#   scripts/bench-hooks.sh [--reps N]
#
# Runs are interleaved (plain, then each recorder configuration, N times) and the table gives
# medians. The preload is used directly (LD_PRELOAD), without `tidemark run`.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=9
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "bench-hooks: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cargo build --release -p tidemark-preload >&2
lib="$(pwd)/${CARGO_TARGET_DIR:-target}/release/libtidemark_preload.so"
work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-hooks.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -fomit-frame-pointer -g -o "$work/threadcpu" profiler/preload/tests/programs/threadcpu.c -lpthread

n=2000000
# name | environment | arguments
configs=(
    "plain, 1 thread, depth 10||1 $n 10"
    "exact, 1 thread, depth 10|LD_PRELOAD=$lib|1 $n 10"
    "exact, 1 thread, depth 40|LD_PRELOAD=$lib|1 $n 40"
    "plain, 2 threads, depth 10||2 $n 10"
    "exact, 2 threads, depth 10|LD_PRELOAD=$lib|2 $n 10"
    "sampling 512 KiB, 1 thread, depth 10|LD_PRELOAD=$lib TIDEMARK_SAMPLE_RATE=524288|1 $n 10"
)
for i in "${!configs[@]}"; do : > "$work/r$i"; done
for r in $(seq 1 "$reps"); do
    for i in "${!configs[@]}"; do
        IFS='|' read -r _ envs args <<< "${configs[$i]}"
        # shellcheck disable=SC2086
        env $envs TIDEMARK_OUTPUT="$work/p.tmk" "$work/threadcpu" $args 2>/dev/null \
            | sed -n 's/^cpu_ns_per_pair=//p' >> "$work/r$i"
        rm -f "$work"/p*.tmk
    done
done
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '| configuration | thread CPU per malloc+free pair (median of %s) |\n|---|---|\n' "$reps"
for i in "${!configs[@]}"; do
    IFS='|' read -r name _ _ <<< "${configs[$i]}"
    printf '| %s | %s ns |\n' "$name" "$(median < "$work/r$i")"
done
