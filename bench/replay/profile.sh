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
NGINX_PID=""
cleanup() {
    if [[ -n "$NGINX_PID" ]]; then kill "$NGINX_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

python3 bench/replay/make_gor.py "$REQUESTS" "$WORK/requests.gor"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$PORT; location / { return 200 "ok\n"; } }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
perf record "$@" -o "$OUT" -- "$BIN" --input-file "$WORK/requests.gor|100000000%" \
    --output-http "http://127.0.0.1:$PORT" --output-http-workers "$CONNS" \
    --output-http-queue-len "$REQUESTS" 2>&1 >/dev/null | grep -E '^goreplay: (summary|output)'
