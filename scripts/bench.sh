#!/usr/bin/env bash
# Runs the pipeline benchmarks with short measurement times and prints the figures that matter
# as ratios taken from this one run (the build machine is shared and noisy: absolute numbers
# drift between runs, ratios within one run are what we trust). Needs jq.
# Extra arguments go to criterion, e.g. `scripts/bench.sh store_commit` to run one group.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "bench.sh needs jq" >&2; exit 1; }

cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3 --noplot "$@"

crit="${CARGO_TARGET_DIR:-target}/criterion"
# Median of one benchmark in nanoseconds (per iteration), or empty when it did not run.
ns() {
    local f="$crit/$1/new/estimates.json"
    [[ -f $f ]] && jq -r '.median.point_estimate' "$f"
}
# fmt NANOSECONDS -> human duration
fmt() { awk -v n="$1" 'BEGIN {
    if (n >= 1e6) printf "%.2f ms", n / 1e6; else if (n >= 1e3) printf "%.2f µs", n / 1e3;
    else printf "%.0f ns", n }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

parse=$(ns parse_record/order_record)
account=$(ns account_record/first_poll)
account_known=$(ns account_record/first_poll_country_known)
apply=$(ns account_record/ledger_apply)
separate=$(ns store_commit/separate_tx_256)
batched=$(ns store_commit/one_tx_256)
enqueue=$(ns store_commit/tracker_enqueue_256)
singles=$(ns store_commit/tracker_enqueue_256_concurrent_singles)
render=$(ns render_metrics/ledger_10k)
number=$(ns country/from_number)
mcc=$(ns country/from_mcc)

echo
echo "== pipeline figures (medians; a filtered run leaves the other groups at their last results) =="
if [[ -n $parse && -n $account ]]; then
    per_record=$(calc "%f" "$parse + $account")
    echo "parse+account per record: $(fmt "$per_record") (parse $(fmt "$parse"), on_record $(fmt "$account"))"
    echo "  -> one core parses and accounts $(calc "%.0f" "1e9 / $per_record") records/s"
fi
if [[ -n $parse && -n $account && -n $apply ]]; then
    full=$(calc "%f" "$parse + $account + $apply")
    echo "parse+account+ledger apply per record: $(fmt "$full"); 100 records/s use $(calc "%.2f" "100 * $full / 1e7")% of a core"
fi
if [[ -n $account && -n $account_known ]]; then
    echo "on_record first poll / with country already known = $(calc "%.1f" "$account / $account_known")× (country::from_number on the receiver)"
fi
[[ -n $apply ]] && echo "ledger apply of one record's updates (10k-series ledger): $(fmt "$apply")"
if [[ -n $separate && -n $batched ]]; then
    echo "store: 256 separate commits / one batched commit = $(calc "%.1f" "$separate / $batched")×"
    echo "  separate: $(fmt "$(calc "%f" "$separate / 256")") per order ($(calc "%.0f" "256e9 / $separate") orders/s); batched: $(fmt "$batched") per 256 orders ($(calc "%.0f" "256e9 / $batched") orders/s)"
fi
[[ -n $enqueue ]] && echo "Tracker::enqueue of 256 orders in one call: $(fmt "$enqueue")"
[[ -n $singles && -n $separate ]] && echo "256 concurrent one-order enqueues: $(fmt "$singles") (= $(calc "%.1f" "$separate / $singles")× faster than 256 separate commits: group commit)"
[[ -n $render ]] && echo "render 10k series: $(fmt "$render") per scrape"
[[ -n $number && -n $mcc ]] && echo "country::from_number: $(fmt "$number"), from_mcc: $(fmt "$mcc") (= $(calc "%.0f" "$number / $mcc")×)"
