#!/usr/bin/env bash
# Recording overhead per allocator event: the same tm-churn binary (deep stacks) run plain, under
# `tidemark run` and under heaptrack, interleaved, several repetitions each. Prints a table and
# rewrites the results section of docs/performance.md (unless --no-update).
#
#   scripts/bench-overhead.sh [--reps N] [--threads N] [--iterations N] [--depth N] [--no-update]
#
# events     = malloc + free calls of the workload, from its ground truth (tm-churn --truth)
# overhead   = (median time under the tool - median plain time) / events, for two times:
#   total:      the whole command, including each tool's start-up and its work after the program
#               ends (tidemark embedding symbols and summarizing, heaptrack finishing its trace):
#               what a user waits for, the headline number and the ratio in bold
#   in-program: the workload's own wall time of its body (`elapsed_ms` of its truth): what the
#               recording costs the program while it runs, beside it
# For the whole command on several workloads (C built without frame pointers, python3), with
# profile sizes and the analyzer against heaptrack_print, see scripts/bench-wall.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3
threads=2
iterations=1000000
depth=25
update=1
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --iterations) iterations=$2; shift 2 ;;
        --depth) depth=$2; shift 2 ;;
        --no-update) update=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench-overhead: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'bench-overhead: %s\n' "$*" >&2; }

scripts/setup.sh >&2
say "building release binaries"
cargo build --release -p tidemark-fixtures -p tidemark-analyzer -p tidemark-preload >&2

target_dir=${CARGO_TARGET_DIR:-target}
churn="$target_dir/release/tm-churn"
tidemark="$target_dir/release/tidemark"
for f in "$churn" "$tidemark" "$target_dir/release/libtidemark_preload.so"; do
    [ -e "$f" ] || { say "missing $f after the build"; exit 2; }
done
command -v heaptrack >/dev/null || { say "heaptrack is not installed (scripts/setup.sh)"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
args=(--threads "$threads" --iterations "$iterations" --depth "$depth")

# Events from the workload's own count.
"$churn" "${args[@]}" --truth "$work/truth.json" >/dev/null
read -r allocations frees < <(awk '
    /"totals"/ { in_totals = 1 }
    in_totals && /"allocations"/ { gsub(/[^0-9]/, ""); a = $0 }
    in_totals && /"frees"/ { gsub(/[^0-9]/, ""); f = $0 }
    END { print a, f }' "$work/truth.json")
events=$((allocations + frees))
say "workload: tm-churn ${args[*]}: $allocations allocations + $frees frees = $events events"

now_ns() { date +%s%N; }
run_timed() { # mode rep -> prints elapsed ms
    local mode=$1 rep=$2 start end
    start=$(now_ns)
    case "$mode" in
        plain) "$churn" "${args[@]}" --truth "$work/$mode-$rep.json" >"$work/$mode-$rep.log" 2>&1 ;;
        tidemark) "$tidemark" run -o "$work/tm-$rep.tmk" -- "$churn" "${args[@]}" \
            --truth "$work/$mode-$rep.json" >"$work/$mode-$rep.log" 2>&1 ;;
        heaptrack) heaptrack -o "$work/ht-$rep" "$churn" "${args[@]}" \
            --truth "$work/$mode-$rep.json" >"$work/$mode-$rep.log" 2>&1 ;;
    esac || { say "$mode run $rep failed:"; cat "$work/$mode-$rep.log" >&2; exit 1; }
    end=$(now_ns)
    echo $(((end - start) / 1000000))
}

in_program_ms() { # truth file -> elapsed_ms of the workload body
    awk '/"elapsed_ms"/ { gsub(/[^0-9]/, ""); print; exit }' "$1"
}

declare -A times inprog
modes=(plain tidemark heaptrack)
for rep in $(seq 1 "$reps"); do
    for mode in "${modes[@]}"; do
        ms=$(run_timed "$mode" "$rep")
        ip=$(in_program_ms "$work/$mode-$rep.json")
        times[$mode]="${times[$mode]:-} $ms"
        inprog[$mode]="${inprog[$mode]:-} $ip"
        say "rep $rep/$reps $mode: in-program $ip ms, total $ms ms"
    done
    rm -f "$work"/tm-"$rep"* "$work"/ht-"$rep"*
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain_ms=$(median <<<"${times[plain]}")
tm_ms=$(median <<<"${times[tidemark]}")
ht_ms=$(median <<<"${times[heaptrack]}")
plain_ip=$(median <<<"${inprog[plain]}")
tm_ip=$(median <<<"${inprog[tidemark]}")
ht_ip=$(median <<<"${inprog[heaptrack]}")
per_event() { awk -v t="$1" -v p="$2" -v e="$events" 'BEGIN { printf "%.0f", (t - p) * 1e6 / e }'; }
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
tm_ns=$(per_event "$tm_ip" "$plain_ip")
ht_ns=$(per_event "$ht_ip" "$plain_ip")
tm_total_ns=$(per_event "$tm_ms" "$plain_ms")
ht_total_ns=$(per_event "$ht_ms" "$plain_ms")
ratio=$(ratio_of "$tm_ns" "$ht_ns")
total_ratio=$(ratio_of "$tm_total_ns" "$ht_total_ns")

table=$(cat <<TABLE
| run | whole command, median (ms) | added per event, whole command (ns) | in-program median (ms) | in-program runs (ms) | added per event, in-program (ns) |
|---|---:|---:|---:|---|---:|
| plain | $plain_ms | – | $plain_ip | ${inprog[plain]# } | – |
| tidemark run | $tm_ms | $tm_total_ns | $tm_ip | ${inprog[tidemark]# } | $tm_ns |
| heaptrack | $ht_ms | $ht_total_ns | $ht_ip | ${inprog[heaptrack]# } | $ht_ns |

events: $events (malloc + free calls: $allocations + $frees)

overhead ratio tidemark / heaptrack, whole command: **$total_ratio** (in-program, while the program runs: $ratio)
TABLE
)
echo "$table"

if [ "$update" = 1 ]; then
    doc=docs/performance.md
    cpu=$(awk -F: '/model name/ { gsub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
    section=$(cat <<SECTION
<!-- bench-overhead:begin (written by scripts/bench-overhead.sh) -->
Measured $(date -u +%Y-%m-%d) on: $cpu, $(nproc) cores, Linux $(uname -r),
$(rustc --version), $(heaptrack --version 2>/dev/null | head -1),
tidemark $(git rev-parse --short HEAD 2>/dev/null || echo unknown).

Command: \`scripts/bench-overhead.sh --reps $reps --threads $threads --iterations $iterations --depth $depth\`
(workload: \`tm-churn ${args[*]}\`)

$table
<!-- bench-overhead:end -->
SECTION
)
    if [ -f "$doc" ] && grep -q 'bench-overhead:begin' "$doc"; then
        SECTION="$section" awk '
            /bench-overhead:begin/ { print ENVIRON["SECTION"]; skip = 1; next }
            /bench-overhead:end/ { skip = 0; next }
            !skip { print }' "$doc" >"$work/doc" && cp "$work/doc" "$doc"
    else
        printf '\n%s\n' "$section" >>"$doc"
    fi
    say "updated $doc"
fi
