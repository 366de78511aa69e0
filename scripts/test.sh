#!/usr/bin/env bash
# The whole suite: install what the tests need, build every crate in release mode (the tests run
# the release binaries: tidemark, libtidemark_preload.so, the fixtures), then run every test, and
# check that the analyzer's top-level modules import each other without a cycle.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "test.sh: cargo build --release --workspace"
cargo build --release --workspace
echo "test.sh: cargo test --release --workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The module order (docs/architecture.md): one more check, counted like a test.
echo "test.sh: scripts/module-deps.sh"
if sh scripts/module-deps.sh; then
    deps_passed=1 deps_failed=0
else
    deps_passed=0 deps_failed=1
    echo "test.sh: import cycle between the analyzer's top-level modules (see above)"
    [ "$status" -ne 0 ] || status=1
fi
set -e
# One closing line over every test binary (cargo prints one `test result` line per binary) and
# the module check.
awk -v p="$deps_passed" -v f="$deps_failed" '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) s += $i
        }
    }
    END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
