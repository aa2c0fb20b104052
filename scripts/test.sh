#!/usr/bin/env bash
# The project's test command (README): unit, integration, rule and drill tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The restart and drill tests start the release binary; build it once up front.
cargo build --release --locked
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-2}"
