#!/usr/bin/env bash
# Replay benchmark: goreplay vs wrk against the same local nginx, same run.
#
#   [GOREPLAY=path/to/goreplay] bench/replay/run.sh [REQUESTS=100000] [CONNECTIONS=50]
#
# Prints requests/second, CPU and peak memory of goreplay replaying a
# REQUESTS-record .gor file as fast as possible over CONNECTIONS keep-alive
# connections, and wrk's rate at the same concurrency, with each one's CPU
# per 100,000 requests. Needs nginx (apt-get install nginx-light), wrk, perf
# and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${1:-100000}
CONNS=${2:-50}
WORK=$(mktemp -d /tmp/replay-bench.XXXXXX)
. bench/replay/nginx-target.sh
trap 'replay_target_down "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }

# GOREPLAY=path uses that binary (e.g. one built with --scratch-path
# .build-release-bench); otherwise a release build into .build.
if [[ -n "${GOREPLAY:-}" ]]; then
    BIN=$GOREPLAY
else
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        swift build -c release --product goreplay 2>&1 | tail -1
    fi
    BIN=.build/release/goreplay
fi
echo "== machine: $(uptime)"

replay_target_up "$WORK" "$REQUESTS"

echo "== goreplay: $REQUESTS requests, $CONNS connections, nginx (1 worker) on 127.0.0.1:$PORT"
# perf stat's task-clock (CPU ms, all threads) per 100,000 requests is the
# figure that holds still when other work shares the cores; the rate does not.
perf stat -x, -e task-clock -o "$WORK/replay.perf" /usr/bin/time -v "$BIN" --input-file "$WORK/requests.gor|100000000%" \
    --output-http "http://127.0.0.1:$PORT" --output-http-workers "$CONNS" \
    --output-http-queue-len "$REQUESTS" 2> "$WORK/replay.err" > /dev/null || true
grep '^goreplay:' "$WORK/replay.err"
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/replay.err")
SECS=$(python3 -c "p='$WALL'.split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(p))))")
SENT=$(grep -o 'responses [0-9]*, failed' "$WORK/replay.err" | head -1 | tr -dc '0-9')
RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/replay.err")
CPU=$(awk -F': ' '/Percent of CPU this job got/ {print $2}' "$WORK/replay.err")
REPLAY_RPS=$(python3 -c "print(round(${SENT:-0}/$SECS))")
REPLAY_MS=$(awk -F, '/task-clock/ {print $1}' "$WORK/replay.perf")
REPLAY_CPU100K=$(python3 -c "print(round($REPLAY_MS*100000/max(1,${SENT:-0})))")
echo "goreplay: ${SENT:-0} responses in ${SECS}s = $REPLAY_RPS req/s, CPU $CPU, $REPLAY_CPU100K CPU-ms per 100k, peak RSS ${RSS} KiB"

echo "== goreplay, memory check: the same file looped for 10 s (queue 1000, drops counted)"
/usr/bin/time -v "$BIN" --input-file "$WORK/requests.gor|100000000%" --input-file-loop --exit-after 10s \
    --output-http "http://127.0.0.1:$PORT" --output-http-workers "$CONNS" 2> "$WORK/loop.err" > /dev/null || true
grep '^goreplay: summary' "$WORK/loop.err"
echo "goreplay looped: peak RSS $(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/loop.err") KiB"

echo "== wrk: 2 threads, $CONNS connections, 10 s, same server"
perf stat -x, -e task-clock -o "$WORK/wrk.perf" wrk -t2 -c"$CONNS" -d10s "http://127.0.0.1:$PORT/government/news/item-1?page=1" > "$WORK/wrk.out"
WRK_RPS=$(awk '/Requests\/sec/ {print int($2)}' "$WORK/wrk.out")
WRK_REQS=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
WRK_MS=$(awk -F, '/task-clock/ {print $1}' "$WORK/wrk.perf")
grep -E 'Latency|Requests/sec' "$WORK/wrk.out"
echo "wrk: $WRK_REQS requests, $(python3 -c "print(round($WRK_MS*100000/max(1,$WRK_REQS)))") CPU-ms per 100k"
echo "== result: goreplay $REPLAY_RPS req/s vs wrk $WRK_RPS req/s = $(python3 -c "print(round(100*$REPLAY_RPS/$WRK_RPS))")% of wrk"
