#!/usr/bin/env bash
# Profile one replay: goreplay replays a generated REQUESTS-record .gor file
# as fast as possible to a local nginx (1 worker), under `perf record`.
#
#   GOREPLAY=path/to/goreplay bench/replay/profile.sh OUT.data [REQUESTS=100000] [CONNECTIONS=50] [perf record flags...]
#
# e.g. `... profile.sh /tmp/flat.data 100000 50 -F 2999` for a flat profile,
# `-F 999 --call-graph dwarf,8192` for callers (perf script), then
# `perf report -i OUT.data --no-children --sort comm,dso` by thread and library.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: profile.sh OUT.data [REQUESTS] [CONNECTIONS] [perf record flags]}
REQUESTS=${2:-100000}
CONNS=${3:-50}
shift $(($# < 3 ? $# : 3))
BIN=${GOREPLAY:?set GOREPLAY to a release build of goreplay}
WORK=$(mktemp -d /tmp/replay-profile.XXXXXX)
. bench/replay/nginx-target.sh
trap 'replay_target_down "$WORK"' EXIT

replay_target_up "$WORK" "$REQUESTS"
perf record "$@" -o "$OUT" -- "$BIN" --input-file "$WORK/requests.gor|100000000%" \
    --output-http "http://127.0.0.1:$PORT" --output-http-workers "$CONNS" \
    --output-http-queue-len "$REQUESTS" 2>&1 >/dev/null | grep -E '^goreplay: (summary|output)'
