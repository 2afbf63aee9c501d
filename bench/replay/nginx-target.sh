# Sourced by run.sh and profile.sh: the replay benchmarks' target, one nginx worker answering
# "ok" on a free 127.0.0.1 port, and REQUESTS generated records.
#   replay_target_up WORK REQUESTS   sets PORT and NGINX_PID, writes WORK/requests.gor
#   replay_target_down WORK          stops that nginx (by pid) and removes WORK
NGINX_PID=""

replay_target_up() {
    local work=$1 requests=$2
    command -v nginx >/dev/null || { echo "nginx missing: apt-get install -y nginx-light" >&2; exit 1; }
    python3 bench/replay/make_gor.py "$requests" "$work/requests.gor"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$PORT; location / { return 200 "ok\n"; } }
}
CONF
    nginx -c "$work/nginx.conf" -p "$work" &
    NGINX_PID=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
}

replay_target_down() {
    if [[ -n "$NGINX_PID" ]]; then kill "$NGINX_PID" 2>/dev/null || true; fi
    rm -rf "$1"
}
