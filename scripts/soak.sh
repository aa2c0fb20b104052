#!/usr/bin/env bash
# The full-size soak and chaos run (docs/reliability.md): 10,000 orders through the simulator
# with chaos on (30 % timeouts and 5xx, malformed JSON, -18, an auth blip, a vendor clock jump
# past the timestamp window), the agent killed with kill -9 at 20 random moments and restarted
# on the same store, the store's disk full for a minute (a size-limited tmpfs: run as root),
# then every business counter compared exactly with the simulator's ground truth.
#
# CI runs the same test at a smaller size (tests/soak, through scripts/test.sh). Override the
# size with SOAK_ORDERS, SOAK_RATE (orders/s), SOAK_KILLS, SOAK_DISK_FULL_SECS,
# SOAK_AUTH_BLIP_SECS, SOAK_SEED. Takes about 13 minutes on 2 cores (plus the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "NOTICE: not root: the full-disk phase needs a tmpfs mount and will be skipped" >&2
fi
export SOAK_ORDERS="${SOAK_ORDERS:-10000}"
export SOAK_RATE="${SOAK_RATE:-20}"
export SOAK_KILLS="${SOAK_KILLS:-20}"
export SOAK_DISK_FULL_SECS="${SOAK_DISK_FULL_SECS:-60}"
export SOAK_AUTH_BLIP_SECS="${SOAK_AUTH_BLIP_SECS:-30}"
export SOAK_SEED="${SOAK_SEED:-$(date +%s)}"
echo "soak: $SOAK_ORDERS orders at $SOAK_RATE/s, $SOAK_KILLS kills, disk full ${SOAK_DISK_FULL_SECS}s, seed $SOAK_SEED"
cargo test --release --locked --test soak -- --nocapture --test-threads 1
