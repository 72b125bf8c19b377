#!/usr/bin/env bash
# Regenerates the committed baselines in results/baseline (see results/README.md):
#   - one `teardown sim --json --repeat K` report per named scenario, and
#   - the criterion suite's estimates.json files,
# each with a *.meta.json sidecar: git revision, date, machine, command.
#
# Usage: results/refresh.sh [--quick] [--no-bench] [--no-sim] [--repeat K] [--out DIR]
#   --quick     smoke run: TEARDOWN_BENCH_QUICK=1 and criterion --quick, repeat 1;
#               numbers not fit to commit (use with --out)
#   --no-bench  only the sim scenarios      --no-sim  only the criterion suite
#   --repeat K  runs per scenario (default 5)
#   --out DIR   where to write (default results/baseline)
# Honours CARGO_TARGET_DIR. Fails on the first error.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
out=results/baseline
repeat=5
quick=0
bench=1
sim=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; repeat=1 ;;
        --no-bench) bench=0 ;;
        --no-sim) sim=0 ;;
        --repeat) repeat=${2:?--repeat needs K}; shift ;;
        --out) out=${2:?--out needs DIR}; shift ;;
        *) echo "refresh.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$out"

# A JSON string literal.
js() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    printf '"%s"' "$s"
}

rev=$(git rev-parse HEAD)
dirty=false
git diff --quiet HEAD -- || dirty=true
cores=$(nproc)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)
kernel=$(uname -r)
rustc_v=$(rustc --version)

# meta FILE COMMAND SECONDS: the sidecar for one result.
meta() {
    cat > "$1" <<JSON
{
  "git_revision": $(js "$rev"),
  "git_dirty": $dirty,
  "date": $(js "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),
  "machine": {
    "cores": $cores,
    "cpu_model": $(js "$cpu"),
    "memory_kib": ${mem_kib:-0},
    "kernel": $(js "$kernel")
  },
  "rustc": $(js "$rustc_v"),
  "command": $(js "$2"),
  "seconds": $3
}
JSON
}

if [ "$sim" = 1 ]; then
    cargo build --release --quiet
    bin=$target/release/teardown
    # name|flags: the named scenarios. Keep them in step with results/README.md.
    scenarios=(
        "default|"
        "loss10|--loss 0.1"
        "runaway|--runaway-client 0.05 --runaway-server 0.05"
        "tw-fill-1m|--workload tw-fill --connections 1000000"
    )
    for s in "${scenarios[@]}"; do
        name=${s%%|*}
        flags=${s#*|}
        cmd="teardown sim${flags:+ $flags} --repeat $repeat --quiet --json $out/$name.json"
        echo "refresh: $cmd" >&2
        start=$(date +%s.%N)
        # shellcheck disable=SC2086 # flags are words on purpose
        "$bin" sim $flags --repeat "$repeat" --quiet --json "$out/$name.json"
        end=$(date +%s.%N)
        meta "$out/$name.meta.json" "$cmd" "$(echo "$end - $start" | bc)"
    done
fi

if [ "$bench" = 1 ]; then
    args=()
    if [ "$quick" = 1 ]; then
        export TEARDOWN_BENCH_QUICK=1
        args=(-- --quick)
    fi
    cmd="cargo bench${args[*]:+ ${args[*]}}"
    [ "$quick" = 1 ] && cmd="TEARDOWN_BENCH_QUICK=1 $cmd"
    echo "refresh: $cmd" >&2
    # Only estimates written by this run: target/criterion keeps benches that no longer exist.
    stamp=$(mktemp)
    start=$(date +%s.%N)
    cargo bench "${args[@]}"
    end=$(date +%s.%N)
    rm -rf "$out/criterion"
    mkdir -p "$out/criterion"
    (cd "$target/criterion" && find . -path '*/new/estimates.json' -newer "$stamp" -print0) |
        while IFS= read -r -d '' f; do
            rel=${f#./}
            rel=${rel%/new/estimates.json}
            mkdir -p "$out/criterion/$rel"
            cp "$target/criterion/$f" "$out/criterion/$rel/estimates.json"
        done
    rm -f "$stamp"
    meta "$out/criterion/meta.json" "$cmd" "$(echo "$end - $start" | bc)"
    echo "refresh: $(find "$out/criterion" -name estimates.json | wc -l) criterion estimates in $out/criterion" >&2
fi
