#!/usr/bin/env bash
# What the user waits for: whole-command wall time of the same program run plain, under
# `tidemark run` and under heaptrack, interleaved (plain, tidemark, heaptrack, plain, ...), on
# several workloads: C churn and deep recursion built without frame pointers (their loop
# counters live in rbp), a Rust workload, and a real program (python3). Also the profile size
# per event against heaptrack's .zst, and `tidemark summary` and `tidemark flamegraph` against
# `heaptrack_print` on the same run's files.
#
#   scripts/bench-wall.sh [--reps N] [--quick] [--more]
#
# --more adds five more real programs, none built with frame pointers: GCC's C++ front end
# (cc1plus) compiling a small file, jq parsing a 60,000-object JSON file (630,000 blocks live
# at once), perl filling hashes and arrays (240,000 reallocs), sqlite3 inserting and indexing
# 200,000 rows in memory (400,000 reallocs), and node (V8: JIT code, four garbage-collector
# threads beside the main one, OpenSSL's start-up) filling a Map and a JSON string; a burst
# of 300 threads allocating at once (profiler/preload/tests/programs/burst.c: the writer's
# ordering of many threads and its backpressure); and 3,000,000 blocks live at once, each
# freed long after it was made (liveset.c: the recorder's table of live blocks).
#
# Prints one table; every figure is the median of N runs (default 5). "added" is the median
# wall time under the tool minus the plain median; "ratio" is tidemark's added time over
# heaptrack's (the issue's target: at most 0.2). Nothing is written into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5
quick=0
more=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --more) more=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "bench-wall: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'bench-wall: %s\n' "$*" >&2; }

scripts/setup.sh >&2
say "building release binaries"
cargo build --release -p tidemark-fixtures -p tidemark-analyzer -p tidemark-preload >&2
target_dir=${CARGO_TARGET_DIR:-target}
rel="$target_dir/release"
tidemark="$rel/tidemark"
command -v heaptrack >/dev/null || { say "heaptrack is not installed (scripts/setup.sh)"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-wall.XXXXXX")
trap 'rm -rf "$work"' EXIT
cflags=(-O2 -fomit-frame-pointer -g)
gcc "${cflags[@]}" -o "$work/bench" profiler/preload/tests/programs/bench.c
gcc "${cflags[@]}" -o "$work/walkload" profiler/preload/tests/programs/walkload.c -lpthread

n=2000000
[ "$quick" = 1 ] && n=500000
py_loops=200000
[ "$quick" = 1 ] && py_loops=50000
cat > "$work/alloc.py" <<EOF
# Allocation-heavy Python: dicts, lists and strings made and dropped.
d = {}
for i in range($py_loops):
    s = str(i) * 3
    d[i % 5000] = [s, (i, s), {"k": s}]
print(len(d))
EOF

# name | command (run from $work)
workloads=(
    "C churn, depth 10, 1 thread|$work/walkload churn 10 $n"
    "C recursion, 40 deep, 16 sites|$work/bench 40 $((n / 2)) vary"
    "Rust tm-churn, 2 threads|$rel/tm-churn --threads 2 --iterations $((n / 4))"
    "python3 (PYTHONMALLOC=malloc)|/usr/bin/python3 $work/alloc.py"
)

if [ "$more" = 1 ]; then
    for tool in g++ jq perl sqlite3 node; do
        command -v "$tool" >/dev/null || { say "--more needs $tool (scripts/setup.sh)"; exit 2; }
    done
    cc1plus=$(g++ -print-prog-name=cc1plus)
    printf '#include <map>\n#include <string>\n#include <vector>\nint main() { std::map<std::string, std::vector<int>> m; m["a"].push_back(1); return (int)m.size(); }\n' > "$work/s.cpp"
    /usr/bin/python3 -c "
import json
print(json.dumps([{'id': i, 'name': 'n' * (i % 30), 'tags': [str(j) for j in range(i % 10)]} for i in range(60000)]))" > "$work/big.json"
    gcc "${cflags[@]}" -o "$work/burst" profiler/preload/tests/programs/burst.c -lpthread
    gcc "${cflags[@]}" -o "$work/liveset" profiler/preload/tests/programs/liveset.c
    cat > "$work/fill.pl" <<'EOF'
my %h; for my $i (1..300000) { my $s = "k" x ($i % 50); $h{$i % 20000} = [$s, {a => $s}]; } print scalar(keys %h), "\n";
EOF
    cat > "$work/rows.sql" <<'EOF'
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
  INSERT INTO t SELECT x, printf('row-%d-%s', x, hex(randomblob(8))), x * 1.5 FROM c;
COMMIT;
CREATE INDEX ib ON t(b);
SELECT count(*), sum(length(b)) FROM t WHERE b LIKE 'row-1%';
SELECT substr(b, 1, 7), count(*) FROM t GROUP BY substr(b, 1, 7) ORDER BY 2 DESC LIMIT 3;
EOF
    cat > "$work/fill.js" <<'EOF'
const m = new Map();
for (let i = 0; i < 300000; i++) {
    m.set('k' + i, { v: 'x'.repeat(i % 50), a: [i, i + 1] });
    if (i % 3 == 0) m.delete('k' + (i - 1));
}
const s = JSON.stringify([...m.entries()].slice(0, 50000));
console.log(s.length, JSON.parse(s).length);
EOF
    workloads+=(
        "cc1plus (g++ -O1, a small C++ file)|$cc1plus -quiet -imultiarch $(gcc -print-multiarch) -D_GNU_SOURCE -O1 $work/s.cpp -o /dev/null"
        "jq (60,000-object JSON)|jq length $work/big.json"
        "perl (hashes and arrays)|perl $work/fill.pl"
        "sqlite3 (200,000 rows in memory)|sqlite3 -init $work/rows.sql :memory: .quit"
        "node (a Map and JSON; 5 threads)|node $work/fill.js"
        "C burst, 300 threads at once|$work/burst 20000 300"
        "C live set, 3M blocks|$work/liveset 3000000"
    )
fi

now_ns() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf '| workload | plain | tidemark run | heaptrack | tidemark added / heaptrack added | tidemark bytes | heaptrack .zst bytes | summary / heaptrack_print | flamegraph / heaptrack_print |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for w in "${workloads[@]}"; do
    name=${w%%|*}
    cmd=${w#*|}
    : > "$work/plain.t"; : > "$work/tm.t"; : > "$work/ht.t"; : > "$work/sum.t"; : > "$work/htp.t"; : > "$work/fg.t"
    for r in $(seq 1 "$reps"); do
        rm -f "$work"/p.tmk "$work"/ht.*
        t0=$(now_ns); env PYTHONMALLOC=malloc $cmd >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/plain.t"
        t0=$(now_ns); env PYTHONMALLOC=malloc "$tidemark" run -o "$work/p.tmk" -- $cmd >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/tm.t"
        t0=$(now_ns); env PYTHONMALLOC=malloc heaptrack -o "$work/ht" $cmd >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/ht.t"
        ht_file=$(ls "$work"/ht*.zst 2>/dev/null | head -1)
        t0=$(now_ns); "$tidemark" summary "$work/p.tmk" >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/sum.t"
        t0=$(now_ns); "$tidemark" flamegraph -o "$work/p.svg" "$work/p.tmk" >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/fg.t"
        t0=$(now_ns); heaptrack_print "$ht_file" >/dev/null 2>&1; t1=$(now_ns)
        echo $(( (t1 - t0) / 1000000 )) >> "$work/htp.t"
        tm_bytes=$(stat -c %s "$work/p.tmk")
        ht_bytes=$(stat -c %s "$ht_file")
    done
    plain=$(median < "$work/plain.t"); tm=$(median < "$work/tm.t"); ht=$(median < "$work/ht.t")
    sum=$(median < "$work/sum.t"); htp=$(median < "$work/htp.t"); fg=$(median < "$work/fg.t")
    ratio=$(awk -v p="$plain" -v t="$tm" -v h="$ht" 'BEGIN { if (h - p > 0) printf "%.2f", (t - p) / (h - p); else print "n/a" }')
    sratio=$(awk -v s="$sum" -v h="$htp" 'BEGIN { if (h > 0) printf "%.2f", s / h; else print "n/a" }')
    fratio=$(awk -v s="$fg" -v h="$htp" 'BEGIN { if (h > 0) printf "%.2f", s / h; else print "n/a" }')
    printf '| %s | %s ms | %s ms | %s ms | %s | %s | %s | %s | %s |\n' \
        "$name" "$plain" "$tm" "$ht" "$ratio" "$tm_bytes" "$ht_bytes" "$sratio" "$fratio"
done
