#!/usr/bin/env bash
# In-process recording overhead: the same churn loop (allocate + free pairs of mixed sizes, a
# 64-block live window) under four global allocators, side by side in one invocation:
#   plain System | Tracking<System> counters only | Tracking<System> recording | dhat::Alloc recording
# (and Tracking<Jemalloc> for reference). Prints a table and rewrites the "In-process" section
# of docs/performance.md unless --no-update.
#
#   scripts/bench-inprocess.sh [--reps N] [--pairs N] [--no-update]
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5
pairs=2000000
update=1
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --no-update) update=0; shift ;;
        *) echo "usage: $0 [--reps N] [--pairs N] [--no-update]" >&2; exit 2 ;;
    esac
done

echo "bench-inprocess: cargo build --release -p tidemark-fixtures-inprocess" >&2
cargo build --release -q -p tidemark-fixtures-inprocess
bin=target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name | command (the binary prints {"ns_per_pair": …})
runs=(
    "plain System|$bin/tm-inproc-plain --bench $pairs"
    "Tracking<System>, counters only|$bin/tm-inproc-system --bench $pairs"
    "Tracking<Jemalloc>, counters only|$bin/tm-inproc-jemalloc --bench $pairs"
    "Tracking<System>, recording|$bin/tm-inproc-system --bench $pairs --profile $tmp/t.tmk"
    "Tracking<Jemalloc>, recording|$bin/tm-inproc-jemalloc --bench $pairs --profile $tmp/j.tmk"
    "dhat::Alloc, recording|$bin/tm-inproc-dhat --bench $pairs --profile $tmp/dhat.json"
)

declare -A samples
for ((r = 1; r <= reps; r++)); do
    echo "bench-inprocess: round $r of $reps" >&2
    for entry in "${runs[@]}"; do
        name=${entry%%|*}
        cmd=${entry#*|}
        ns=$($cmd 2>/dev/null | sed -n 's/.*"ns_per_pair":\([0-9.]*\).*/\1/p')
        samples[$name]="${samples[$name]:-} $ns"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
plain=$(echo "${samples[plain System]}" | median)

table="| allocator | median ns per alloc+free pair | runs | added over plain System |
|---|---:|---|---:|"
for entry in "${runs[@]}"; do
    name=${entry%%|*}
    m=$(echo "${samples[$name]}" | median)
    added=$(awk -v m="$m" -v p="$plain" 'BEGIN { printf "%.0f", m - p }')
    [ "$name" = "plain System" ] && added="–"
    runs_fmt=$(echo "${samples[$name]}" | awk '{for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? " " : ""), $i}')
    table+="
| $name | $(printf '%.0f' "$m") | $runs_fmt | $added |"
done
t_rec=$(echo "${samples[Tracking<System>, recording]}" | median)
d_rec=$(echo "${samples[dhat::Alloc, recording]}" | median)
ratio=$(awk -v t="$t_rec" -v d="$d_rec" -v p="$plain" 'BEGIN { printf "%.2f", (t - p) / (d - p) }')

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section="<!-- bench-inprocess:begin (written by scripts/bench-inprocess.sh) -->
Measured $(date +%Y-%m-%d) on: ${cpu:-unknown CPU}, $(nproc) cores, $(rustc --version),
tidemark $(git rev-parse --short HEAD 2>/dev/null || echo unknown).

Command: \`scripts/bench-inprocess.sh --reps $reps --pairs $pairs\`

$table

Recording overhead ratio tidemark / dhat (Tracking<System> vs dhat::Alloc, each minus plain):
**$ratio**
<!-- bench-inprocess:end -->"

echo "$section"
if [ "$update" = 1 ]; then
    doc=docs/performance.md
    if grep -q 'bench-inprocess:begin' "$doc"; then
        python3 - "$doc" "$section" <<'EOF'
import sys, re
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- bench-inprocess:begin.*?<!-- bench-inprocess:end -->", lambda _: section, text, flags=re.S)
open(path, "w").write(text)
EOF
    else
        printf '\n## In-process recording (Tracking<A>) against dhat\n\n%s\n%s\n' \
            "The same loop of allocate+free pairs under each global allocator; dhat records a backtrace per allocation under a global lock, tidemark unwinds with cached DWARF rules into per-thread buffers." \
            "$section" >> "$doc"
    fi
    echo "bench-inprocess: updated $doc" >&2
fi
