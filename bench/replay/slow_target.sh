#!/usr/bin/env bash
# Slow-target benchmark (issue 13): replay a recording to a local target that
# answers every request after a fixed delay, with GOV.UK's flag line, and
# report drops, lag behind the recorded schedule and peak RSS.
#
#   bench/replay/slow_target.sh [COUNT=30000]
#
# Two runs: COUNT requests recorded at 300/s to a 200 ms target, then COUNT
# at 2,000/s to a 50 ms target. Each run is bounded: the target stops after
# COUNT/RATE + 60 s and goreplay gets --exit-after COUNT/RATE + 90 s.
# EXTRA_FLAGS are added to goreplay's line (e.g. --output-http-workers 10 for
# the old fixed pool). Needs python3 and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-30000}
WORK=$(mktemp -d /tmp/slow-target.XXXXXX)
TARGET_PID=""
cleanup() {
    if [[ -n "$TARGET_PID" ]]; then kill "$TARGET_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${SKIP_BUILD:-}" ]]; then
    swift build -c release --product goreplay 2>&1 | tail -1
fi
BIN=${GOREPLAY:-.build/release/goreplay}

run() {
    local rate=$1 delay_ms=$2
    python3 - "$COUNT" "$rate" "$WORK/in.gor" <<'PY'
import os, sys
count, rate, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
separator = "\n\U0001F435\U0001F648\U0001F649\n".encode()
start = 1_700_000_000_000_000_000
with open(path, "wb") as out:
    for i in range(count):
        payload = (f"GET /item/{i} HTTP/1.1\r\nHost: www.gov.uk\r\nUser-Agent: Mozilla/5.0 (bench)\r\n"
                   "Accept: text/html\r\nAccept-Encoding: gzip\r\n\r\n").encode()
        meta = f"1 {os.urandom(12).hex()} {start + round(i * 1e9 / rate)} 50000\n".encode()
        out.write(meta + payload + separator)
PY
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 bench/replay/slow_target.py "$port" "$delay_ms" "$rate" "$COUNT" "$WORK/target.txt" &
    TARGET_PID=$!
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
    local bound
    bound=$(python3 -c "print(int($COUNT / $rate + 90))")
    echo "== $COUNT requests recorded at $rate/s, target answers in $delay_ms ms (GOV.UK's flags, default workers)"
    # GOV.UK's line (router::gor): -output-http-method GET/HEAD/OPTIONS, an
    # https:// target (here a local http one), everything else default.
    /usr/bin/time -v "$BIN" --input-file "$WORK/in.gor" --output-http "http://127.0.0.1:$port" \
        -output-http-method GET -output-http-method HEAD -output-http-method OPTIONS \
        --exit-after "${bound}s" ${EXTRA_FLAGS:-} 2> "$WORK/replay.err" > /dev/null || true
    wait "$TARGET_PID" || true
    TARGET_PID=""
    grep '^goreplay: summary\|^goreplay: output' "$WORK/replay.err" || tail -5 "$WORK/replay.err"
    echo "target: $(cat "$WORK/target.txt")"
    echo "goreplay: peak RSS $(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/replay.err") KiB, CPU $(awk -F': ' '/Percent of CPU this job got/ {print $2}' "$WORK/replay.err"), wall $(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/replay.err")"
}

run 300 200
if [[ -z "${ONLY_FIRST:-}" ]]; then run 2000 50; fi
