#!/usr/bin/env bash
# Soak test of `teardown serve` on loopback: loadgen with loss, runaway clients
# and every attack kind for --duration seconds, while the server's RSS and entry
# counts are sampled every second into a CSV. Fails (exit 1) if memory or entries
# grow without bound, if loadgen leaves a connection unaccounted for, or if the
# server's final report is missing or shows a leak. See "Soak" in docs/service.md.
#
# usage: scripts/soak.sh [--short] [--duration SECS] [--rate R] [--bin-dir DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=60
rate=10000
bin_dir=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --short) duration=15 ;;
        --duration) duration="$2"; shift ;;
        --rate) rate="$2"; shift ;;
        --bin-dir) bin_dir="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n 2,8p "$0"; exit 0 ;;
        *) echo "soak: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
case "$duration" in ''|*[!0-9]*) echo "soak: --duration must be whole seconds" >&2; exit 2 ;; esac
[ "$duration" -ge 6 ] || { echo "soak: --duration must be at least 6 s" >&2; exit 2; }

if [ -z "$bin_dir" ]; then
    bin_dir="${CARGO_TARGET_DIR:-target}/release"
    if [ ! -x "$bin_dir/teardown" ] || [ ! -x "$bin_dir/loadgen" ]; then
        cargo build --release --workspace
    fi
fi
for b in teardown loadgen; do
    [ -x "$bin_dir/$b" ] || { echo "soak: $bin_dir/$b not found" >&2; exit 2; }
done
[ -n "$out" ] || out="$(mktemp -d -t teardown-soak.XXXXXX)"
mkdir -p "$out"

# Engine time runs 20x faster than real time: TIME-WAIT's 60 s take 3 s, so the
# table reaches its steady size within the first third of even the short run.
scale=0.05
connections=$((rate * duration))
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

"$bin_dir/teardown" serve --listen 127.0.0.1:0 --metrics 127.0.0.1:0 --threads 2 \
    --time-scale "$scale" --hold 2s --json "$out/server.json" \
    >"$out/server.out" 2>"$out/server.err" &
server_pid=$!
ready=""
for _ in $(seq 1 100); do
    ready="$(grep -m1 '^serving ' "$out/server.out" || true)"
    [ -n "$ready" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "soak: FAIL: the server did not start" >&2
    cat "$out/server.err" >&2
    exit 1
fi
udp="$(sed -n 's/.*udp=\([^ ]*\).*/\1/p' <<<"$ready")"
metrics="$(sed -n 's/.*metrics=\([^ ]*\).*/\1/p' <<<"$ready")"
echo "soak: server pid $server_pid udp=$udp metrics=$metrics; ${duration}s at ${rate}/s; output in $out"

"$bin_dir/loadgen" --target "$udp" --metrics-url "http://$metrics/metrics" \
    --time-scale "$scale" --threads 2 --connections "$connections" --rate "$rate" \
    --concurrency 50000 --loss 0.01 --runaway-client 0.01 \
    --attack blind-rst,inwindow-rst,syn-timewait,syn-lastack,fin-unknown,old-duplicate \
    --attack-rate 2000 --timeout "$((duration + 60))s" --quiet --json "$out/loadgen.json" \
    >"$out/loadgen.out" 2>"$out/loadgen.err" &
loadgen_pid=$!

metric() { awk -v k="$1" '$1 == k { print $2; exit }' <<<"$2"; }
csv="$out/soak.csv"
echo "t,rss_kb,entries,time_wait,heap_live_bytes" >"$csv"
start=$(date +%s.%N)
while kill -0 "$loadgen_pid" 2>/dev/null; do
    t=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo "")
    m="$(curl -s --max-time 1 "http://$metrics/metrics" || true)"
    entries=$(metric teardown_host_entries "$m")
    tw=$(metric 'teardown_connections{state="time_wait"}' "$m")
    heap=$(metric teardown_process_heap_live_bytes "$m")
    [ -n "$rss" ] && [ -n "$entries" ] && echo "$t,$rss,$entries,${tw:-0},${heap:-0}" >>"$csv"
    sleep 1
done
loadgen_rc=0
wait "$loadgen_pid" || loadgen_rc=$?

kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""

fail=0
cat "$out/loadgen.out"
if [ "$loadgen_rc" -ne 0 ]; then
    echo "soak: FAIL: loadgen exited $loadgen_rc (connections unaccounted for, or an error):" >&2
    tail -5 "$out/loadgen.err" >&2
    fail=1
fi
if [ "$server_rc" -ne 0 ] || ! grep -Eq '^  "leaked": 0,?$' "$out/server.json" 2>/dev/null; then
    echo "soak: FAIL: the server exited $server_rc or its report $out/server.json is missing or shows a leak" >&2
    fail=1
fi

# Unbounded growth: over the steady part of the load phase (d/3 <= t < d, the
# first third fills TIME-WAIT), for each series: the median of the last third is
# more than 5 % above the median of the middle third AND a least-squares line
# through the whole steady part rises by more than 5 % of its mean across it.
# Medians shrug off a few odd samples; the fit asks that the growth be a trend.
verdict="$(awk -F, -v d="$duration" '
    NR == 1 { next }
    $1 < d { n++; t[n] = $1; rss[n] = $2; ent[n] = $3 }
    function median(a, k,    i, j, x) {
        for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function judge(name, v,    i, m, l, km, kl, mid, last, sx, sy, sxx, sxy, k, slope, rise) {
        km = kl = k = sx = sy = sxx = sxy = 0
        split("", m); split("", l)
        for (i = 1; i <= n; i++) {
            if (t[i] < d / 3) continue
            if (t[i] < 2 * d / 3) m[++km] = v[i]; else l[++kl] = v[i]
            k++; sx += t[i]; sy += v[i]; sxx += t[i] * t[i]; sxy += t[i] * v[i]
        }
        if (km < 2 || kl < 2) { printf "%s: too few samples (%d, %d)\n", name, km, kl; bad = 1; return }
        mid = median(m, km); last = median(l, kl)
        slope = (k * sxy - sx * sy) / (k * sxx - sx * sx)
        rise = slope * (2 * d / 3) / (sy / k)
        printf "%s: median %d in the middle third, %d in the last (%+.1f%%); trend %+.1f%% over the steady part\n", \
            name, mid, last, 100 * (last / mid - 1), 100 * rise
        if (last > 1.05 * mid && rise > 0.05) { printf "%s grows without bound\n", name; bad = 1 }
    }
    END {
        bad = 0
        judge("rss_kb", rss)
        judge("entries", ent)
        print (bad ? "FAIL" : "OK")
    }' "$csv")"
echo "$verdict"
if [ "$(tail -1 <<<"$verdict")" != "OK" ]; then
    echo "soak: FAIL: memory or entries grow without bound (samples in $csv)" >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    exit 1
fi
echo "soak: OK ($(($(wc -l <"$csv") - 1)) samples in $csv)"
