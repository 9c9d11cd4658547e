#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the binaries the end-to-end tests
# start, then the whole workspace's tests. Needs root (namespaces, bridges, veths).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads="${CNET_TEST_THREADS:-4}"
