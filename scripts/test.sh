#!/usr/bin/env bash
# The project's test command (README): unit, integration, rule and drill tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The restart and drill tests start the release binary; build it once up front.
cargo build --release --locked
# Everything `--all-targets` covers, in two runs: criterion benches (harness = false) reject
# libtest flags such as --test-threads, so they get their own run, which executes each
# benchmark once as a smoke test.
cargo test --locked --lib --bins --tests --examples -- --test-threads="${TEST_THREADS:-2}"
cargo test --locked --benches
