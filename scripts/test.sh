#!/usr/bin/env bash
# The project's test command (README): unit, integration, rule and drill tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Integration tests start the binary cargo builds for them (the restart, demo and drill tests
# run it as real processes); tests needing promtool/prometheus/amtool skip with a notice unless
# CI=true, where a missing tool fails.
# Everything `--all-targets` covers, in two runs: criterion benches (harness = false) reject
# libtest flags such as --test-threads, so they get their own run, which executes each
# benchmark once as a smoke test.
cargo test --locked --lib --bins --tests --examples -- --test-threads="${TEST_THREADS:-2}"
cargo test --locked --benches
