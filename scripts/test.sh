#!/usr/bin/env bash
# Runs every test of orgsync on a fresh machine: the Rust workspace (unit, property and
# integration tests against the in-process emulator, SQLite and PostgreSQL), then the
# conformance suite that drives the emulator with Google's own Python client.
#
# PostgreSQL: tests use postgres://postgres@127.0.0.1:5432/test (override with
# ORGSYNC_TEST_POSTGRES_URL). With CI=true a missing PostgreSQL fails the run loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

# `--tests` is every unit and integration test target (the workspace has no benches or
# examples); unlike `--all-targets` it skips libraries marked `test = false`, such as the
# testkit, instead of linking an empty test binary for them.
#
# cargo-nextest, where installed, runs the tests of all binaries side by side (each test
# in its own process), where `cargo test` runs one binary after another and waits for
# each binary's slowest test; the tests and their assertions are the same either way.
if cargo nextest --version >/dev/null 2>&1; then
  echo "==> cargo nextest run --workspace --tests"
  cargo nextest run --workspace --tests --no-fail-fast
else
  echo "==> cargo test --workspace --tests"
  cargo test --workspace --tests
fi

echo "==> conformance suite (google-api-python-client against the emulator)"
# The CLI's integration tests above built target/debug/orgsync. Building it again with
# `cargo build -p orgsync` would resolve features for that one package, which differ
# from the whole workspace's, and recompile several crates for nothing.
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/orgsync"
if [[ ! -x "$BIN" ]]; then
  echo "test.sh: $BIN was not built by cargo test; run: cargo build -p orgsync" >&2
  exit 1
fi
ORGSYNC_BIN="$BIN" bash conformance/run.sh

echo "==> all tests passed"
