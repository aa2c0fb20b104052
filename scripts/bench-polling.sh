#!/usr/bin/env bash
# Record calls per finalised order, attempt freshness and order-outcome delay of the order
# schedules (current fixed intervals, a naive 15 s poller, the freshness scheduler at 10/30/60 s)
# side by side, per traffic mix, on a simulated clock (benches/polling.rs; docs/performance.md,
# "Polling"). The figures depend only on the seed, not on the machine.
# POLLING_BENCH_DETAIL=1 adds, per schedule, how many orders took 1, 2, … 6+ calls.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench polling "$@"
