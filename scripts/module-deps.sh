#!/bin/sh
# The analyzer's top-level modules and the other top-level modules each one's code names
# (`crate::<module>` paths; tests, comments and doc comments left out), then whether they form a
# cycle. Exit status 1 on a cycle. docs/architecture.md states the order this must keep.
set -eu
cd "$(dirname "$0")/../analyzer/src"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for m in $(ls -d */ *.rs | sed 's#/$##; s#\.rs$##' | sort -u | grep -v '^lib$' | grep -v '^main$'); do
  # A module is `m.rs` and/or the directory `m/`.
  files=$( { [ -f "$m.rs" ] && echo "$m.rs"; [ -d "$m" ] && find "$m" -name '*.rs' ! -name 'tests.rs'; } || true)
  deps=$(for f in $files; do
           # Each file up to its inline test module; comment lines dropped.
           awk '/^#\[cfg\(test\)\]/ { held = $0; next }
                held != "" && /^(pub\(crate\) )?mod tests \{/ { exit }
                held != "" { print held; held = "" }
                { print }' "$f" | grep -v '^[[:space:]]*//' || true
         done | grep -o 'crate::[a-z_]*' | sed 's/crate:://' | sort -u | grep -vx "$m" | tr '\n' ' ' || true)
  echo "$m: $deps"
  for d in $deps; do echo "$m $d" >>"$out"; done
done
# tsort reports a cycle on stderr and exits non-zero.
if tsort "$out" >/dev/null 2>&1; then
  echo "no import cycle between top-level modules"
else
  echo "import cycle:" && tsort "$out" 2>&1 >/dev/null | sed 's/^/  /'
  exit 1
fi
