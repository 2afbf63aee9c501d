#!/usr/bin/env bash
# Capture benchmark: nginx on loopback under wrk load at several rates; the
# capture engine (release build, test-mode run) counts the requests it
# captured intact; nginx's access log is the ground truth.
#
# Usage (as root): bench/capture/run.sh [duration-seconds]
# TRACK=1 also captures responses (--input-raw-track-response).
# Prints one table row per rate. Every load run is bounded by -d (<= 10 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-5}
(( DURATION <= 10 )) || { echo "duration must be <= 10 s" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "live capture needs root" >&2; exit 2; }

WORK=$(mktemp -d /tmp/capture-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NGINX_PID=""
cleanup() {
    [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (release, testable)..." >&2
echo "duration ${DURATION}s per rate, track-response=${TRACK:-0}; cpu% = capture CPU seconds / load seconds" >&2
swift build -c release --build-tests -Xswiftc -enable-testing 2>&1 | tail -1 >&2
TESTS=$(ls -d .build/release/*PackageTests.xctest | head -1)

mkdir -p "$WORK/logs"
cat > "$WORK/nginx.conf" <<CONF
daemon off;
worker_processes 1;
error_log $WORK/logs/error.log;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
    access_log $WORK/logs/access.log;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 "ok\n"; }
    }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
sleep 0.5

# wrk paces each connection with a per-request delay (ms, integer).
cat > "$WORK/pace.lua" <<'LUA'
local d = tonumber(os.getenv("PACE_MS") or "0")
function delay() return d end
LUA

printf "%-14s %9s %9s %9s %9s %10s %8s %9s %s\n" "load" "server" "server/s" "captured" "intact" "intact%" "cpu%load" "rss_MiB" "given_up/gaps/kernel_drops"
# label connections pace_ms
for spec in "1k 10 10" "2.5k 25 10" "5k 50 10" "10k 100 10" "20k 200 10" "max-c50 50 0" "max-c200 200 0"; do
    read -r label conns pace <<<"$spec"
    before=$(wc -l < "$WORK/logs/access.log" 2>/dev/null || echo 0)
    out="$WORK/capture-$label.out"
    CAPTURE_BENCH_PORT=$PORT CAPTURE_BENCH_SECONDS=$((DURATION + 4)) CAPTURE_BENCH_TRACK_RESPONSE=${TRACK:-0} \
        "$TESTS" --testing-library swift-testing --filter CaptureBenchmark > "$out" 2>&1 &
    capture_pid=$!
    for _ in $(seq 100); do grep -q BENCH_READY "$out" && break; sleep 0.1; done
    PACE_MS=$pace wrk -t2 -c"$conns" -d"${DURATION}s" -s "$WORK/pace.lua" "http://127.0.0.1:$PORT/" > "$WORK/wrk-$label.out" 2>&1
    wait "$capture_pid" || true
    after=$(wc -l < "$WORK/logs/access.log")
    served=$((after - before))
    line=$(grep '^BENCH ' "$out" || echo "BENCH captured_requests=0 intact_requests=0 cpu_percent=0 peak_rss_kib=0")
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${line#BENCH }"; }
    requests=$(get captured_requests); intact=$(get intact_requests); cpu=$(python3 -c "print(f'{100*$(get cpu_seconds)/$DURATION:.1f}')"); rss=$(get peak_rss_kib)
    given=$(get given_up); drops=$(get kernel_drops); gaps=$(get gaps)
    pct=$(python3 -c "print(f'{100*$intact/max($served,1):.3f}')")
    rate=$(python3 -c "print(f'{$served/$DURATION:.0f}')")
    printf "%-14s %9s %9s %9s %9s %10s %8s %9s %s\n" "$label" "$served" "$rate" "$requests" "$intact" "$pct" "$cpu" "$((rss/1024))" "${given:-?}/${gaps:-?}/${drops:-?}"
    grep '^BENCH_VARIANT' "$out" || true
done
