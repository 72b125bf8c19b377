#!/usr/bin/env bash
# Like for like (issue #13): the same close-first workload at the same loss
# through the model (`teardown serve` over UDP) and through the kernel
# (`teardown serve --kernel-listen` in a network namespace, nftables loss),
# back to back with the same loadgen, then the model alone at 1 M live.
#
# Live population = every connection entry the server host holds, TIME-WAIT
# included: for the kernel the namespace's sockstat `inuse + tw` (peak of the
# 1 s samples), for the model the table's `resident.peak_entries`. The kernel
# run lasts long enough for its TIME-WAIT (60 s each) to pile up past
# $KERNEL_LIVE; the model run then opens that many connections (all still
# resident: TIME-WAIT is 60 s there too), and once more $MODEL_LIVE.
# Both hosts get the same TIME-WAIT limit ($TW_BUCKETS): the namespace's
# net.ipv4.tcp_max_tw_buckets and the model's --max-tw-buckets.
#
# Needs root, iproute2, nftables and jq, and a release build:
#   cargo build --release -p teardown -p loadgen
#   scripts/like-for-like.sh [OUT_DIR]
# Knobs (environment): LOSS (0.01), KERNEL_SECS (75), SERVER_PROCS (2),
# CLIENT_WORKERS (8), KERNEL_CONCURRENCY (2000), MODEL_CONCURRENCY (200000), SOURCE_IPS (10.201.0.1-10.201.0.32),
# TW_BUCKETS (2000000), MODEL_LIVE (1000000), KERNEL_LIVE (200000).
set -euo pipefail

BIN=${BIN:-target/release}
OUT=${1:-$(mktemp -d /tmp/like-for-like.XXXXXX)}
LOSS=${LOSS:-0.01}
KERNEL_SECS=${KERNEL_SECS:-75}
SERVER_PROCS=${SERVER_PROCS:-2}
CLIENT_WORKERS=${CLIENT_WORKERS:-8}
# Concurrency is the client's knob, set per side to what its server sustains:
# past the kernel server's accept rate the accept queues overflow, handshakes
# are dropped after the client saw them complete, and those connections wait
# forever for a FIN (seen: 20,227 of 372,684 at 40,000); the model's clients
# need tens of thousands in flight to cover its loss stragglers.
KERNEL_CONCURRENCY=${KERNEL_CONCURRENCY:-2000}
MODEL_CONCURRENCY=${MODEL_CONCURRENCY:-200000}
SOURCE_IPS=${SOURCE_IPS:-10.201.0.1-10.201.0.32}
TW_BUCKETS=${TW_BUCKETS:-2000000}
MODEL_LIVE=${MODEL_LIVE:-1000000}
KERNEL_LIVE=${KERNEL_LIVE:-200000}
mkdir -p "$OUT"
TEARDOWN=$(realpath "$BIN/teardown")
LOADGEN=$(realpath "$BIN/loadgen")

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

echo "== kernel: ${KERNEL_SECS}s, $SERVER_PROCS server processes, $CLIENT_WORKERS loadgen workers, loss $LOSS" >&2
"$LOADGEN" --kernel --netns --loss "$LOSS" --netns-port 8080 \
    --server-cmd "sysctl -qw net.ipv4.tcp_max_tw_buckets=$TW_BUCKETS && exec $TEARDOWN serve \
--kernel-listen {addr} --allow-non-loopback --processes $SERVER_PROCS --threads 1 \
--listen 127.0.0.1:0 --metrics 127.0.0.1:0" \
    --workers "$CLIENT_WORKERS" --source-ips "$SOURCE_IPS" \
    --concurrency "$KERNEL_CONCURRENCY" --duration "${KERNEL_SECS}s" --timeout "$((KERNEL_SECS + 120))s" \
    --quiet --json "$OUT/kernel.json" >&2 || echo "kernel run: loadgen exited $? (see unfinished below)" >&2

# loadgen keeps the server's output in the temporary directory and names it in
# the report: it belongs with this run's other files.
server_log=$(jq -r '.netns.server_log // empty' "$OUT/kernel.json")
if [ -n "$server_log" ] && [ -f "$server_log" ]; then
    mv "$server_log" "$OUT/kernel-server.log"
    jq --arg log "$OUT/kernel-server.log" '.netns.server_log = $log' "$OUT/kernel.json" \
        > "$OUT/kernel.json.new" && mv "$OUT/kernel.json.new" "$OUT/kernel.json"
fi

# The most entries the namespace held at one sample, and that sample's split.
kernel_live=$(jq '[.series[] | .server_netns.sockstat | .tw + .inuse] | max' "$OUT/kernel.json")

model() { # name connections
    local ready json=$OUT/$1.json
    coproc SERVE { exec "$TEARDOWN" serve --listen 127.0.0.1:0 --metrics 127.0.0.1:0 \
        --max-tw-buckets "$TW_BUCKETS" --json "$json" 2>/dev/null; }
    SERVER_PID=$SERVE_PID
    read -r ready <&"${SERVE[0]}"
    local udp=${ready#*udp=}; udp=${udp%% *}
    local metrics=${ready#*metrics=}; metrics=${metrics%% *}
    echo "== model ($1): $2 connections, loss $LOSS" >&2
    "$LOADGEN" --target "$udp" --metrics-url "http://$metrics/metrics" --connections "$2" \
        --concurrency "$MODEL_CONCURRENCY" --loss "$LOSS" --timeout 600s --quiet \
        --json "$OUT/$1-loadgen.json" >&2
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}
model model-same "$kernel_live"
model model-1m "$MODEL_LIVE"

# Steady rates: the kernel's median of its 1 s counts; the model's over its
# load window (loadgen's `teardowns_per_sec`: the model opens its whole
# population in well under a second, so a 1 s median would not exist). Whole
# runs, the loss stragglers' tail included (RTO backoff, the same on both):
# completed over the time to the last close.
k_steady=$(jq '.per_second.median' "$OUT/kernel.json")
k_whole=$(jq '.completed_per_sec' "$OUT/kernel.json")
k_tw=$(jq '.server_netns.kernel.sockstat.tw_peak' "$OUT/kernel.json")
k_slab=$(jq '.kernel.tw_slab_bytes_peak // 0' "$OUT/kernel.json")
row() { # label steady whole live bytes_per_tw
    printf '%-26s %12.0f %12.0f %10s %8s\n' "$1" "$2" "$3" "$4" "$5"
}
{
    printf '%-26s %12s %12s %10s %8s\n' run "steady/s" "whole run/s" "live peak" "B/TW"
    row "kernel (netns, loss $LOSS)" "$k_steady" "$k_whole" "$kernel_live" \
        "$(jq -n "if $k_tw > 0 then $k_slab / $k_tw | floor else 0 end")"
    for m in model-same model-1m; do
        row "$m" "$(jq '.teardowns_per_sec' "$OUT/$m-loadgen.json")" \
            "$(jq '.overall_teardowns_per_sec' "$OUT/$m-loadgen.json")" \
            "$(jq '.resident.peak_entries' "$OUT/$m.json")" \
            "$(jq '.memory.bytes_per_time_wait | floor' "$OUT/$m.json")"
    done
    echo "kernel: $(jq -c '{completed, unfinished, errors: ([.errors[]] | add), per_second: .per_second | del(.series), server_netns: .server_netns.kernel.sockstat, retrans: .server_netns.kernel.snmp.RetransSegs, dropped: [.netns.dropped_to_server, .netns.dropped_to_client]}' "$OUT/kernel.json")"
    for m in model-same model-1m; do
        echo "$m: $(jq -r '.summary' "$OUT/$m.json"); retransmitted $(jq '.segments.retransmitted' "$OUT/$m.json")"
    done
    ratio() { jq -n "$1 / $2 * 10 | floor / 10"; }
    echo "model-same / kernel: steady $(ratio "$(jq '.teardowns_per_sec' "$OUT/model-same-loadgen.json")" "$k_steady")x, whole run $(ratio "$(jq '.overall_teardowns_per_sec' "$OUT/model-same-loadgen.json")" "$k_whole")x"
    echo "kernel live >= $KERNEL_LIVE: $([ "$kernel_live" -ge "$KERNEL_LIVE" ] && echo yes || echo no)"
    echo "reports in $OUT"
} | tee "$OUT/summary.txt"
