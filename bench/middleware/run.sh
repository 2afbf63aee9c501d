#!/usr/bin/env bash
# Middleware throughput: a .gor file replayed as fast as possible to
# --output-null, without a middleware, through a Python echo and through a
# C echo. A file input waits for the middleware, so nothing is dropped and
# the rate is the middleware path's throughput.
#
#   bench/middleware/run.sh [REQUESTS=50000]
#
# Prints messages/second of each run and the middleware runs as a share of
# the no-middleware rate. Set SKIP_BUILD=1 to use an existing release build
# (BIN=path overrides the binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-50000}
WORK=$(mktemp -d /tmp/middleware-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [[ -z "${SKIP_BUILD:-}" && -z "${BIN:-}" ]]; then
    swift build -c release --product goreplay 2>&1 | tail -1
fi
BIN=${BIN:-.build/release/goreplay}
cc -O2 -o "$WORK/echo" bench/middleware/echo.c
python3 bench/replay/make_gor.py "$REQUESTS" "$WORK/requests.gor"

# run NAME [goreplay flags...]: prints "NAME messages seconds rate"
run() {
    local name=$1
    shift
    local start end
    start=$(date +%s.%N)
    "$BIN" --input-file "$WORK/requests.gor|100000000%" --output-null "$@" 2> "$WORK/$name.err" > /dev/null || true
    end=$(date +%s.%N)
    local count
    count=$(grep -o 'output null: sent [0-9]*' "$WORK/$name.err" | tr -dc '0-9')
    python3 -c "s=$end-$start; print('$name', ${count:-0}, round(s, 2), round(${count:-0}/s))"
}

echo "== $REQUESTS requests, $(nproc) cores, $BIN"
BASE=$(run none)
PY=$(run python --middleware "python3 bench/middleware/echo.py")
C=$(run c --middleware "$WORK/echo")
for line in "$BASE" "$PY" "$C"; do
    set -- $line
    echo "$1: $2 messages in $3 s = $4 msg/s"
done
python3 - "$BASE" "$PY" "$C" <<'PY'
import sys
base = float(sys.argv[1].split()[3])
for line in sys.argv[2:]:
    name, count, secs, rate = line.split()
    print(f"{name} echo middleware: {float(rate) / base * 100:.1f}% of the no-middleware rate")
PY
grep -h '^goreplay: middleware' "$WORK/python.err" "$WORK/c.err" || true
