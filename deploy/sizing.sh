#!/usr/bin/env bash
# Memory and disk per order (docs/deploy.md, "Sizing"). Starts the simulator and agents (release
# build) on loopback and prints, per order:
#   1. pending: N orders posted with the first poll an hour away: growth of the agent's resident
#      memory and of its store (database and write-ahead log);
#   2. finished: N orders that were never sent, so each is polled until it counts as not_found
#      and is forgotten; its key stays in the store for the duplicate window (24 h by default).
# Usage: deploy/sizing.sh [N]   (default 20000; needs curl and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
batch=1000
cargo build --release --locked --quiet
bin="$PWD/target/release/itniotech-exporter"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

listening() { # log file -> 127.0.0.1:port of its "listening" line
    for _ in $(seq 100); do
        addr="$(grep -o 'listening.*127\.0\.0\.1:[0-9]*' "$1" 2>/dev/null \
            | grep -o '127\.0\.0\.1:[0-9]*' | head -1 || true)"
        if [ -n "$addr" ]; then echo "$addr"; return; fi
        sleep 0.1
    done
    echo "no listening line in $1" >&2
    exit 1
}
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }
post() { # agent, app id
    for ((i = 0; i < n; i += batch)); do
        seq "$i" $((i + batch - 1)) \
            | awk -v app="$2" '{printf "{\"appId\":\"%s\",\"orderId\":\"sizing-order-%08d\",\"flowId\":2}\n", app, $1}' \
            | curl -sf -o /dev/null -H 'Content-Type: application/x-ndjson' --data-binary @- \
                "http://$1/api/v1/orders"
    done
}
agent() { # name, extra flags... -> sets $addr and $pid
    ITNIOTECH_API_KEY=demoKey1 ITNIOTECH_API_SECRET=demoSecret1 "$bin" run \
        --web.listen-address 127.0.0.1:0 --api.base-url "http://$sim" \
        --storage.path "$work/$1" "${@:2}" >"$work/$1.log" 2>&1 &
    pid=$!
    addr="$(listening "$work/$1.log")"
    until curl -sf "http://$addr/-/ready" >/dev/null; do sleep 0.2; done
}

"$bin" simulate --web.listen-address 127.0.0.1:0 >"$work/sim.log" 2>&1 &
sim="$(listening "$work/sim.log")"

agent pending --poll.first-delay 1h
rss0="$(awk '/^VmRSS/ {print $2 * 1024}' "/proc/$pid/status")"
db0="$(bytes "$work/pending/itniotech-exporter.db")"
post "$addr" sizeApp1
sleep 2
rss1="$(awk '/^VmRSS/ {print $2 * 1024}' "/proc/$pid/status")"
db1="$(bytes "$work/pending/itniotech-exporter.db")"
wal1="$(bytes "$work/pending/itniotech-exporter.db-wal")"
echo "1. $(metric "$addr" itniotech_exporter_orders_pending) orders pending"
echo "   resident memory: $rss0 -> $rss1 bytes, $(((rss1 - rss0) / n)) bytes per pending order"
echo "   database: $db0 -> $db1 bytes, $(((db1 - db0) / n)) bytes per pending order" \
    "(+ write-ahead log $wal1 bytes)"

agent finished --poll.first-delay 1s --api.max-rps 5000 --api.concurrency 32
post "$addr" sizeApp2
until [ "$(metric "$addr" itniotech_exporter_orders_pending)" = "0" ]; do sleep 1; done
db2="$(bytes "$work/finished/itniotech-exporter.db")"
wal2="$(bytes "$work/finished/itniotech-exporter.db-wal")"
echo "2. $(curl -s "http://$addr/metrics" | awk '/^itniotech_otp_orders_total/ {s += $2} END {print s}')" \
    "orders finished and forgotten"
free2="$(python3 -c 'import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(c.execute("PRAGMA freelist_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0])' \
    "$work/finished/itniotech-exporter.db")"
echo "   database: $db2 bytes, of which $free2 free pages (reused by new orders):" \
    "$(((db2 - free2) / n)) bytes per forgotten order (+ write-ahead log $wal2 bytes)"
