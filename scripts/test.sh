#!/usr/bin/env bash
# The whole suite: install what the tests need, build every crate in release mode (the tests run
# the release binaries: tidemark, libtidemark_preload.so, the fixtures), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "test.sh: cargo build --release --workspace"
cargo build --release --workspace
echo "test.sh: cargo test --release --workspace"
cargo test --release --workspace
